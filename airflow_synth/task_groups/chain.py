"""The ESL chain as both task groups wire it: one table or a table set, the same steps.

``esl_task_group`` and ``esl_multitable_task_group`` differ only in their extract and in the
operators they choose; the group id, the store settings handed to every step, the order
``extract >> synthesize >> publish (>> load_target)`` and the staging teardown are decided
here once, so the two groups cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from airflow.sdk import BaseOperator, TaskGroup, chain

from airflow_synth.operators.base import settings_of
from airflow_synth.operators.cleanup import ESLCleanupOperator

#: The object-store settings every step after the extract takes (and the extract validates).
STORE_FIELDS = ("aws_conn_id", "bucket", "synth_conn_id")


class ChainConfig(Protocol):
    """What the chain needs from ``ESLConfig`` and ``MultiTableConfig`` alike."""

    dataset: str
    aws_conn_id: str | None
    bucket: str | None
    synth_conn_id: str | None
    formats: Sequence[str] | str
    staging_dir: str | None
    task_kwargs: Mapping[str, Any]


def store_settings(config: ChainConfig) -> dict[str, Any]:
    """``aws_conn_id``, ``bucket`` and ``synth_conn_id`` of the config."""
    return settings_of(config, STORE_FIELDS)


def esl_group(
    config: ChainConfig, group_id: str | None, group_kwargs: Mapping[str, Any]
) -> TaskGroup:
    """The TaskGroup of one chain: ``esl_<dataset>`` unless a group id is given."""
    return TaskGroup(group_id or f"esl_{config.dataset}", **group_kwargs)


def add_chain_after_extract(
    config: ChainConfig,
    extract: BaseOperator,
    *,
    synthesize_class: type[BaseOperator],
    synthesis: Mapping[str, Any],
    publish_class: type[BaseOperator],
    publish_task_id: str,
    load_target: Callable[[], BaseOperator] | None = None,
) -> None:
    """Add ``synthesize``, the publish task and ``cleanup_staging`` after ``extract``.

    ``cleanup_staging`` is a teardown of ``extract``: the run's staged real rows are removed
    whether the run succeeded or failed, without deciding the run's state. ``load_target``
    (built after the teardown, then run between publish and it) loads a published set
    into a database.
    """
    common = dict(config.task_kwargs)
    store = store_settings(config)
    synthesize = synthesize_class(
        task_id="synthesize",
        extract=extract.output,
        dataset=config.dataset,
        **synthesis,
        **store,
        **common,
    )
    publish = publish_class(
        task_id=publish_task_id,
        extract=extract.output,
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
        **common,
    )
    after_publish = [load_target()] if load_target else []
    chain(extract, synthesize, publish, *after_publish, cleanup.as_teardown(setups=extract))
