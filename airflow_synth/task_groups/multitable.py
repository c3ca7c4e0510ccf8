"""One call that adds the multi-table ESL chain to any DAG (the counterpart of esl_task_group)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import TaskGroup

from airflow_synth.operators.base import settings_of
from airflow_synth.operators.multitable import (
    MultiTableExtractOperator,
    MultiTablePublishOperator,
    MultiTableSynthesizeOperator,
    SyntheticPostgresLoadOperator,
)
from airflow_synth.runtime_multitable import MULTITABLE_SYNTHESIS_FIELDS
from airflow_synth.task_groups.chain import add_chain_after_extract, esl_group, store_settings


@dataclass(frozen=True)
class MultiTableConfig:
    """Everything that defines one multi-table ESL chain.

    String fields may be Jinja templates (``"{{ params.max_parents }}"``). Leave
    ``target_conn_id`` empty to publish to S3 only; set it (and ``target_schema``) to also
    load each published set into a test or staging database.
    """

    dataset: str
    tables: Sequence[str] | Mapping[str, str | None]
    postgres_conn_id: str = "postgres_default"
    schema: str = "public"
    relationships: Sequence[str | Mapping[str, Any]] | str | None = None
    primary_keys: Mapping[str, str] | None = None
    #: per-table contracts (file or inline mapping), e.g. to declare PII; see the README
    contracts: Mapping[str, str | Mapping[str, Any]] | None = None
    aws_conn_id: str | None = None
    bucket: str | None = None
    synth_conn_id: str | None = None
    seed: int | str | None = None
    max_parents: int | str | None = None
    scale: float | str | None = None
    main_table: str | None = None
    max_orphan_share: float | str | None = None
    #: keep real combinations of columns that determine each other: for all tables, or
    #: ``{table: False}`` to switch it off for some
    fixed_combinations: bool | str | Mapping[str, bool] = True
    checks: Mapping[str, Any] | str | None = None
    #: "per_table" (default) or "hma"; see MultiTableSynthesizeOperator
    engine: str | None = None
    #: per_table: one synthesizer name or {table: name}
    synthesizers: str | Mapping[str, str] | None = None
    max_training_rows: int | str | None = None
    formats: Sequence[str] | str = ("parquet",)
    target_conn_id: str | None = None
    target_schema: str | None = None
    load_to_target: bool | str = True
    staging_dir: str | None = None
    task_kwargs: Mapping[str, Any] = field(default_factory=dict)


def esl_multitable_task_group(
    config: MultiTableConfig, group_id: str | None = None, **group_kwargs: Any
) -> TaskGroup:
    """Add extract -> synthesize -> publish (-> load_target) + staging teardown.

    ``cleanup_staging`` is a teardown of ``extract``: the run's staged real rows are removed
    whether the run succeeded or failed. ``extract`` is also given the settings of the later
    tasks (``validate=``), so a bad check or size or a missing connection (object store,
    ``synth``, target database) fails it before the first table is queried.
    """
    store = store_settings(config)
    synthesis = settings_of(config, MULTITABLE_SYNTHESIS_FIELDS)
    target = _target_settings(config)
    with esl_group(config, group_id, group_kwargs) as group:
        extract = MultiTableExtractOperator(
            task_id="extract",
            tables=config.tables,
            dataset=config.dataset,
            postgres_conn_id=config.postgres_conn_id,
            schema=config.schema,
            relationships=config.relationships,
            primary_keys=config.primary_keys,
            staging_dir=config.staging_dir,
            validate={**synthesis, **store, **target},
            contracts=config.contracts,
            **config.task_kwargs,
        )

        def load_target() -> SyntheticPostgresLoadOperator:
            return SyntheticPostgresLoadOperator(
                task_id="load_target",
                dataset=config.dataset,
                target_conn_id=target["target_conn_id"],
                target_schema=target["target_schema"],
                enabled=target["load_to_target"],
                **store,
                **config.task_kwargs,
            )

        add_chain_after_extract(
            config,
            extract,
            synthesize_class=MultiTableSynthesizeOperator,
            synthesis={**synthesis, "main_table": config.main_table},
            publish_class=MultiTablePublishOperator,
            publish_task_id="publish",
            load_target=load_target if target else None,
        )
    return group


def _target_settings(config: MultiTableConfig) -> dict[str, Any]:
    """The target-database settings, or {} when the set is published to S3 only."""
    if not config.target_conn_id:
        return {}
    return {
        "target_conn_id": config.target_conn_id,
        "target_schema": config.target_schema or config.dataset,
        "load_to_target": config.load_to_target,
    }
