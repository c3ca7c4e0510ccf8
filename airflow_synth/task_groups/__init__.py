"""TaskGroup factories: the whole ESL chain in one call."""

from airflow_synth.task_groups.esl import ESLConfig, esl_task_group

__all__ = ["ESLConfig", "esl_task_group"]
