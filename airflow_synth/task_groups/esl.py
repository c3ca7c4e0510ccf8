"""One call that adds extract -> synthesize -> load (+ staging teardown) to any DAG.

Like astronomer-cosmos' ``DbtTaskGroup``, the ready-made DAGs in ``dags/`` and a user's own
DAG are built from the same small :class:`ESLConfig`, so there is one way to wire the chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import TaskGroup

from airflow_synth.operators import ESLExtractOperator, ESLLoadOperator, ESLSynthesizeOperator
from airflow_synth.operators.base import settings_of
from airflow_synth.runtime import AUTO, SYNTHESIS_FIELDS
from airflow_synth.task_groups.chain import add_chain_after_extract, esl_group, store_settings


@dataclass(frozen=True)
class ESLConfig:
    """Everything that defines one feature table's ESL chain.

    String fields may be Jinja templates (``"{{ params.rows }}"``), rendered at run time.
    """

    dataset: str
    sql_file: str
    postgres_conn_id: str = "postgres_default"
    aws_conn_id: str | None = None
    bucket: str | None = None
    synth_conn_id: str | None = None
    synthesizer: str | None = None
    synthesizer_params: Mapping[str, Any] | str | None = None
    num_rows: int | str | None = None
    seed: int | str | None = None
    epochs: int | str | None = None
    checks: Mapping[str, Any] | str | None = None
    parameters: Mapping[str, Any] | Sequence[Any] | None = None
    contract_file: str | None = AUTO
    formats: Sequence[str] = ("parquet",)
    staging_dir: str | None = None
    dry_run: bool | str = False
    task_kwargs: Mapping[str, Any] = field(default_factory=dict)


def esl_task_group(
    config: ESLConfig, group_id: str | None = None, **group_kwargs: Any
) -> TaskGroup:
    """Add the ESL chain for ``config`` to the current DAG and return its TaskGroup.

    Tasks: ``extract`` (a setup), ``synthesize``, ``load`` and ``cleanup_staging`` (a
    teardown: it deletes the run's staged real rows whether the run succeeded or failed,
    without deciding the run's state).

    ``extract`` is also given the settings of ``synthesize`` and ``load`` (``validate=``), so
    an unknown synthesizer, a bad check or a missing connection fails it before the query.
    """
    synthesis = settings_of(config, SYNTHESIS_FIELDS)
    with esl_group(config, group_id, group_kwargs) as group:
        extract = ESLExtractOperator(
            task_id="extract",
            sql_file=config.sql_file,
            dataset=config.dataset,
            postgres_conn_id=config.postgres_conn_id,
            parameters=config.parameters,
            contract_file=config.contract_file,
            staging_dir=config.staging_dir,
            dry_run=config.dry_run,
            validate={**synthesis, **store_settings(config)},
            **config.task_kwargs,
        )
        add_chain_after_extract(
            config,
            extract,
            synthesize_class=ESLSynthesizeOperator,
            synthesis=synthesis,
            publish_class=ESLLoadOperator,
            publish_task_id="load",
        )
    return group
