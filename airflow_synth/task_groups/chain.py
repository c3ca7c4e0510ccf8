"""The ESL chain, built once for a table and for a table set: one builder, one config shape.

A single table is a table set of one. ``esl_task_group`` and ``esl_multitable_task_group``
both call :func:`esl_chain_group` with their config; the config's :class:`ChainSteps` names
the operators, and the operators' own names tables (``extract_fields``,
``settings_fields``) say which config fields each step takes. The group id, the store
settings handed to every step, the settings the extract checks first (``validate=``), the
order ``extract >> synthesize >> publish (>> load_target)`` and the staging teardown are
decided here once, so the two groups cannot drift apart. A table's synthesis runs as
``train >> sample (mapped, one task per shard) >> assess``, a set's as ``prepare >> fit
(mapped, one task per table) >> synthesize``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar

from airflow.sdk import TaskGroup, chain

from airflow_synth.core.names import check_dataset_name
from airflow_synth.operators.base import (
    ExtractOperatorBase,
    PublishOperatorBase,
    SynthesizeOperatorBase,
    settings_of,
)
from airflow_synth.operators.cleanup import ESLCleanupOperator
from airflow_synth.runtime import EXTRACT_FIELDS

#: The object-store settings every step after the extract takes (and the extract validates).
STORE_FIELDS = ("aws_conn_id", "bucket", "synth_conn_id")


@dataclass(frozen=True)
class ChainSteps:
    """The operators of one kind of chain (a table or a set). Each names what it takes:
    the extract its ``extract_fields``, the synthesize step its ``settings_fields`` (and the
    ``checked_fields`` among them the extract validates first), the publish step the
    ``chain_task_id`` it gets here."""

    extract: type[ExtractOperatorBase]
    synthesize: type[SynthesizeOperatorBase]
    publish: type[PublishOperatorBase]
    #: the synthesis spread over tasks (see :class:`FanOut`); None: one synthesize task
    fan_out: FanOut | None = None
    #: a set's extract as a plan (``extract``) fanned out: ``((table operator, task id),
    #: (collect operator, task id))``, one mapped task per table; None: one extract task
    extract_fan_out: tuple[tuple[type[Any], str], tuple[type[Any], str]] | None = None


@dataclass(frozen=True)
class FanOut:
    """A synthesis as ``plan >> work (mapped over plan's XCom) >> gather``: a table's
    ``train >> sample >> assess`` (one task per shard), a set's ``prepare >> fit >>
    synthesize`` (one task per table). ``plan`` and ``gather`` (when ``gather_settings``)
    take the synthesize step's settings; ``work`` gets each element of plan's XCom as
    ``work_argument``; ``gather`` gets plan's and work's XComs as ``gather_arguments``."""

    plan: tuple[type[Any], str]
    work: tuple[type[Any], str]
    gather: tuple[type[Any], str]
    work_argument: str
    gather_arguments: tuple[str, str]
    gather_settings: bool = False


@dataclass(frozen=True)
class ChainConfig:
    """What every chain's config holds, a table's (``ESLConfig``) and a set's
    (``MultiTableConfig``) alike: where the rows come from and go, the object store, the
    seed and gates, and the arguments every task of the group gets (``task_kwargs``).

    Besides ``dataset`` (and the subclass's ``sql_file`` or ``tables``) fields are passed by
    keyword. String fields may be Jinja templates, rendered at run time.
    """

    #: the chain's operators (set by each kind of config)
    steps: ClassVar[ChainSteps]
    dataset: str
    _: KW_ONLY
    postgres_conn_id: str = "postgres_default"
    aws_conn_id: str | None = None
    bucket: str | None = None
    synth_conn_id: str | None = None
    seed: int | str | None = None
    #: gate thresholds, holdout and filters (see ``CheckSettings``)
    checks: Mapping[str, Any] | str | None = None
    formats: Sequence[str] | str = ("parquet",)
    staging_dir: str | None = None
    task_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """The dataset name is checked when the config is made (DAG parse time, no I/O):
        a name outside the allowed set fails the DAG file's import, naming it."""
        check_dataset_name(self.dataset, templated_ok=True)


def store_settings(config: ChainConfig) -> dict[str, Any]:
    """``aws_conn_id``, ``bucket`` and ``synth_conn_id`` of the config."""
    return settings_of(config, STORE_FIELDS)


def esl_chain_group(
    config: ChainConfig,
    group_id: str | None,
    group_kwargs: Mapping[str, Any],
    *,
    target: Mapping[str, Any] | None = None,
) -> TaskGroup:
    """Add ``extract >> synthesize >> publish (>> load_target)`` + staging teardown.

    The group is ``esl_<dataset>`` unless a group id is given. ``cleanup_staging`` is a
    teardown of ``extract``: the run's staged real rows are removed whether the run
    succeeded or failed, without deciding the run's state. ``target`` (the settings of
    ``SyntheticPostgresLoadOperator``, ``load_to_target`` as ``enabled``) adds
    ``load_target`` between the publish task and the teardown.
    """
    steps = config.steps
    common = dict(config.task_kwargs)
    store = store_settings(config)
    target = dict(target or {})
    with TaskGroup(group_id or f"esl_{config.dataset}", **group_kwargs) as group:
        extract = steps.extract(
            task_id="extract",
            **settings_of(config, (*EXTRACT_FIELDS, *steps.extract.extract_fields)),
            validate={**settings_of(config, steps.synthesize.checked_fields), **store, **target},
            **common,
        )
        extraction = _extraction_tasks(config, extract, common)
        extracted = extraction[-1]  # what the later steps take as ``extract``
        synthesis = _synthesis_tasks(config, extracted, store, common)
        synthesize = synthesis[-1]
        publish = steps.publish(
            task_id=steps.publish.chain_task_id,
            extract=extracted.output,
            synthesis=synthesize.output,
            dataset=config.dataset,
            formats=config.formats,
            **store,
            **common,
        )
        cleanup = ESLCleanupOperator(
            task_id="cleanup_staging",
            dataset=config.dataset,
            staging_dir=config.staging_dir,
            **store,
            **common,
        )
        after_publish = [_load_target(config, target, store, common)] if target else []
        chain(
            *extraction,
            *synthesis,
            publish,
            *after_publish,
            cleanup.as_teardown(setups=extract),
        )
    return group


def _extraction_tasks(config: ChainConfig, extract: Any, common: Mapping[str, Any]) -> list[Any]:
    """The extraction of the chain: the ``extract`` task, or (a set's steps with
    ``extract_fan_out``) the extract as a plan >> ``extract_table`` (one mapped task per
    table) >> ``collect`` (describes the set); the last task's XCom is the extract result."""
    fan = config.steps.extract_fan_out
    if fan is None:
        return [extract]
    (work_step, work_id), (gather_step, gather_id) = fan
    tables = work_step.partial(task_id=work_id, dataset=config.dataset, **common).expand(
        table=extract.output
    )
    collect = gather_step(
        task_id=gather_id,
        plan=extract.output,
        tables=tables.output,
        dataset=config.dataset,
        **common,
    )
    return [extract, tables, collect]


def _synthesis_tasks(
    config: ChainConfig, extract: Any, store: Mapping[str, Any], common: Mapping[str, Any]
) -> list[Any]:
    """The synthesis of the chain: one ``synthesize`` task, or its :class:`FanOut` (a
    table's ``train >> sample >> assess``, a set's ``prepare >> fit >> synthesize``); the
    last task's XCom is what the publish step takes."""
    steps = config.steps
    settings = settings_of(config, steps.synthesize.settings_fields)
    given = {"extract": extract.output, "dataset": config.dataset, **store, **common}
    fan = steps.fan_out
    if fan is None:
        return [steps.synthesize(task_id="synthesize", **given, **settings)]
    (plan_step, plan_id), (work_step, work_id), (gather_step, gather_id) = (
        fan.plan,
        fan.work,
        fan.gather,
    )
    plan = plan_step(task_id=plan_id, **given, **settings)
    work = work_step.partial(task_id=work_id, **given).expand(**{fan.work_argument: plan.output})
    into_plan, into_work = fan.gather_arguments
    gather = gather_step(
        task_id=gather_id,
        **given,
        **(settings if fan.gather_settings else {}),
        **{into_plan: plan.output, into_work: work.output},
    )
    return [plan, work, gather]


def _load_target(
    config: ChainConfig,
    target: Mapping[str, Any],
    store: Mapping[str, Any],
    common: Mapping[str, Any],
) -> Any:
    """The ``load_target`` task: loads the published set into a database."""
    from airflow_synth.operators.multitable import SyntheticPostgresLoadOperator

    return SyntheticPostgresLoadOperator(
        task_id="load_target",
        dataset=config.dataset,
        target_conn_id=target["target_conn_id"],
        target_schema=target["target_schema"],
        enabled=target["load_to_target"],
        **store,
        **common,
    )
