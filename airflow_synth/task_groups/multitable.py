"""One call that adds the multi-table ESL chain to any DAG: the chain of ``esl_task_group``
(:func:`~airflow_synth.task_groups.chain.esl_chain_group`) over a table set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar

from airflow.sdk import TaskGroup

from airflow_synth.operators.multitable import (
    MultiTableCollectOperator,
    MultiTableExtractTableOperator,
    MultiTableFitOperator,
    MultiTablePlanExtractOperator,
    MultiTablePrepareOperator,
    MultiTablePublishOperator,
    MultiTableSynthesizeOperator,
)
from airflow_synth.task_groups.chain import ChainConfig, ChainSteps, FanOut, esl_chain_group


@dataclass(frozen=True)
class MultiTableConfig(ChainConfig):
    """Everything that defines one multi-table ESL chain: the :class:`ChainConfig` fields,
    the tables with their relationships, the set's synthesis settings and the target.

    String fields may be Jinja templates (``"{{ params.max_parents }}"``). Leave
    ``target_conn_id`` empty to publish to S3 only; set it (and ``target_schema``) to also
    load each published set into a test or staging database.
    """

    steps: ClassVar[ChainSteps] = ChainSteps(
        MultiTablePlanExtractOperator,
        MultiTableSynthesizeOperator,
        MultiTablePublishOperator,
        fan_out=FanOut(
            plan=(MultiTablePrepareOperator, "prepare"),
            work=(MultiTableFitOperator, "fit"),
            gather=(MultiTableSynthesizeOperator, "synthesize"),
            work_argument="table",
            gather_arguments=("prepared", "fits"),
            gather_settings=True,
        ),
        extract_fan_out=(
            (MultiTableExtractTableOperator, "extract_table"),
            (MultiTableCollectOperator, "collect"),
        ),
    )
    tables: Sequence[str] | Mapping[str, str | None]
    _: KW_ONLY
    schema: str = "public"
    relationships: Sequence[str | Mapping[str, Any]] | str | None = None
    primary_keys: Mapping[str, str] | None = None
    #: per-table contracts (file or inline mapping), e.g. to declare PII; see the README
    contracts: Mapping[str, str | Mapping[str, Any]] | None = None
    max_parents: int | str | None = None
    scale: float | str | None = None
    main_table: str | None = None
    max_orphan_share: float | str | None = None
    #: keep real combinations of columns that determine each other: for all tables, or
    #: ``{table: False}`` to switch it off for some
    fixed_combinations: bool | str | Mapping[str, bool] = True
    #: "per_table" (default) or "hma"; see MultiTableSynthesizeOperator
    engine: str | None = None
    #: per_table: one synthesizer name or {table: name}
    synthesizers: str | Mapping[str, str] | None = None
    max_training_rows: int | str | None = None
    target_conn_id: str | None = None
    target_schema: str | None = None
    load_to_target: bool | str = True


def esl_multitable_task_group(
    config: MultiTableConfig, group_id: str | None = None, **group_kwargs: Any
) -> TaskGroup:
    """Add extract (checks everything, reads no row) -> extract_table (mapped: one task per
    table) -> collect (describes the set) -> prepare -> fit (mapped: one task per table, on
    any worker) ->
    synthesize (samples the set parents first, assesses, gates, saves the model) -> publish
    (-> load_target) + staging teardown. With ``engine="hma"`` (one model for the set) the
    synthesize task fits it and the fit task has nothing to do.

    ``cleanup_staging`` is a teardown of ``extract``: the run's staged real rows are removed
    whether the run succeeded or failed. ``extract`` is also given the settings of the later
    tasks (``validate=``), so a bad check or size or a missing connection (object store,
    ``synth``, target database) fails it before the first table is queried.
    """
    return esl_chain_group(config, group_id, group_kwargs, target=_target_settings(config))


def _target_settings(config: MultiTableConfig) -> dict[str, Any]:
    """The target-database settings, or {} when the set is published to S3 only."""
    if not config.target_conn_id:
        return {}
    return {
        "target_conn_id": config.target_conn_id,
        "target_schema": config.target_schema or config.dataset,
        "load_to_target": config.load_to_target,
    }
