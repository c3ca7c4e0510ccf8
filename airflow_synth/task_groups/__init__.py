"""TaskGroup factories: the whole ESL chain in one call."""

from airflow_synth.task_groups.esl import ESLConfig, esl_task_group
from airflow_synth.task_groups.multitable import MultiTableConfig, esl_multitable_task_group

__all__ = ["ESLConfig", "MultiTableConfig", "esl_multitable_task_group", "esl_task_group"]
