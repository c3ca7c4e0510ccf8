"""Build a complete ESL DAG for one feature table (the ready-made DAGs use this).

Like astronomer-cosmos' ``DbtDag`` next to its ``DbtTaskGroup``: :func:`esl_dag` is a DAG
holding exactly one :func:`~airflow_synth.task_groups.esl_task_group`, with the standard
Trigger form (:func:`~airflow_synth.params.esl_params`) wired to it. A feature table is
declared once (dataset, SQL file, connections) and gets an on-demand and a scheduled DAG
from the same declaration.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from airflow.sdk import DAG

from airflow_synth.params import config_from_params, esl_params
from airflow_synth.task_groups import esl_task_group


def esl_dag(
    dag_id: str,
    table: Mapping[str, Any],
    *,
    schedule: Any = None,
    sql_dirs: list[str] | None = None,
    params: Mapping[str, Any] | None = None,
    start_date: datetime = datetime(2026, 1, 1),
    **dag_kwargs: Any,
) -> DAG:
    """A DAG running the ESL chain for ``table`` (the :class:`ESLConfig` fields as a mapping).

    :param params: overrides of the Trigger form's defaults (``rows``, ``synthesizer``, ...).
    :param sql_dirs: folders searched for ``table["sql_file"]`` (``template_searchpath``).
    """
    dag_kwargs.setdefault("catchup", False)
    dag_kwargs.setdefault("tags", ["airflow-synth", "esl"])
    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        start_date=start_date,
        template_searchpath=sql_dirs,
        render_template_as_native_obj=True,
        params=esl_params(**dict(params or {})),
        **dag_kwargs,
    ) as dag:
        esl_task_group(config_from_params(**dict(table)), group_id="esl")
    return dag
