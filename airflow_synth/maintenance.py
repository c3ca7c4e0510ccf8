"""The Airflow-facing shell of the sweeper (:mod:`airflow_synth.core.sweep`).

Two callers: every ESL run sweeps at its start, in the extract task before any row is read
(:func:`sweep_at_run_start`: the staging bucket's runs, the local staging roots and task
folders of this worker, the dataset's manifest-less published runs; logged, never fails
the run), and the maintenance task ``ESLSweepOperator`` (``dags/synth_maintenance.py``,
daily) sweeps every dataset of the bucket and prunes unreachable publish attempts
(:func:`execute_sweep`). The places come from the same store settings as the ESL steps
(``synth`` connection, ``aws_conn_id``, ``bucket``, ``staging_dir``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow_synth.core.errors import SynthError, SynthesizerConfigError
from airflow_synth.hooks.synth import SynthHook

log = logging.getLogger(__name__)


def sweep_age(hook: SynthHook, hours: Any = None) -> timedelta:
    """The sweep's age: ``hours`` (an operator argument) else the ``synth`` connection's
    ``sweep_after_hours`` else 24 hours; refused unless a number >= 0."""
    if hours in (None, ""):
        return timedelta(hours=hook.sweep_after_hours)
    try:
        value = float(hours)
    except (TypeError, ValueError):
        value = -1.0
    if not value >= 0:
        raise SynthesizerConfigError(
            f"sweep_after_hours must be a number of hours >= 0, got {hours!r}."
        )
    return timedelta(hours=value)


def _current_run(context: Mapping[str, Any]) -> tuple[str, str] | None:
    from airflow_synth.core.names import safe_key_part

    dag, run_id = context.get("dag"), context.get("run_id")
    if dag is None or not run_id:
        return None
    return safe_key_part(dag.dag_id), safe_key_part(run_id)


def sweep_leftovers(
    context: Mapping[str, Any],
    hook: SynthHook,
    *,
    older_than: timedelta,
    staging_dir: str | None = None,
    datasets: Iterable[str] | None = None,
    prune: bool = False,
    local_roots: Sequence[str | Path] = (),
    temp_dirs: Sequence[str | Path] | None = None,
    require_store: bool = True,
) -> Any:
    """Sweep the places of ``hook``'s settings (see :func:`airflow_synth.core.sweep.sweep`):
    the staging bucket's runs (or the local staging root), ``$SYNTH_STAGING_DIR`` and the
    default local staging root, ``local_roots``, the task folders in ``temp_dirs`` (default:
    this worker's temp dir), and the published bucket (``datasets``, default every one;
    without ``require_store``, only when its AWS connection is defined: a missing one would
    make boto3 fall back to AWS's own endpoint). The current run (``context``) is never
    touched."""
    from airflow_synth.core.extract.staging import staging_root
    from airflow_synth.core.sweep import sweep

    location = hook.staging(staging_dir)
    roots: list[str | Path] = [staging_root(None), *local_roots]
    if location.local_root is not None:
        roots.insert(0, location.local_root)
    current = _current_run(context)
    staging: dict[str, Any] = {}
    if location.in_object_store:
        staging = {
            "staging_store": hook.staging_store(location),
            "staging_bucket": location.bucket,
            "staging_prefix": location.prefix,
        }
    keep_published = []
    if current is not None and datasets is not None:
        keep_published = [(dataset, current[1]) for dataset in datasets]
    published = hook.get_conn() if require_store or _defined(hook.aws_conn_id) else None
    if published is None:
        log.info("No AWS connection %r: the published bucket is not swept", hook.aws_conn_id)
    return sweep(
        **staging,
        local_roots=roots,
        temp_dirs=temp_dirs,
        published_store=published,
        published_bucket=hook.bucket,
        datasets=None if datasets is None else list(datasets),
        older_than=older_than,
        keep_runs=[current] if current else [],
        keep_published=keep_published,
        prune=prune,
    )


def _defined(conn_id: str) -> bool:
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - AirflowNotFoundException and the like
        return False
    return True


def sweep_at_run_start(
    context: Mapping[str, Any], dataset: str, hook: SynthHook, staging_dir: str | None = None
) -> Any:
    """The sweep an ESL run does first (in the extract task, before any row is read): old
    leftovers of other runs of this worker, the staging bucket and this dataset's published
    runs; a failure is a warning, never the run's failure. The report, or None."""
    try:
        older_than = sweep_age(hook)
        report = sweep_leftovers(
            context,
            hook,
            older_than=older_than,
            staging_dir=staging_dir,
            datasets=[dataset],
            require_store=False,
        )
    except Exception as exc:  # noqa: BLE001 - sweeping is housekeeping, the run goes on
        log.warning(
            "Sweeping leftovers of earlier runs failed (%s: %s); the run goes on, the "
            "maintenance sweep (ESLSweepOperator) or the next run tries again",
            type(exc).__name__,
            exc,
        )
        return None
    hours = older_than.total_seconds() / 3600
    if report.warnings:
        log.warning(
            "Sweep of leftovers older than %g h: %s (%s)",
            hours,
            report.summary(),
            "; ".join(report.warnings),
        )
    else:
        log.info("Sweep of leftovers older than %g h: %s", hours, report.summary())
    return report


def execute_sweep(
    context: Mapping[str, Any],
    *,
    hook: SynthHook,
    sweep_after_hours: Any = None,
    staging_dir: str | None = None,
    datasets: Sequence[str] | None = None,
    prune: bool = True,
    local_roots: Sequence[str | Path] = (),
    temp_dirs: Sequence[str | Path] | None = None,
) -> dict[str, Any]:
    """The maintenance sweep (``ESLSweepOperator``): every place, every dataset (or
    ``datasets``), unreachable publish attempts pruned (``prune``). Its XCom is the report
    (locations and counts); it fails, after sweeping everything it could, when a place
    could not be swept, so the failure is seen."""
    older_than = sweep_age(hook, sweep_after_hours)
    report = sweep_leftovers(
        context,
        hook,
        older_than=older_than,
        staging_dir=staging_dir,
        datasets=datasets or None,
        prune=prune,
        local_roots=local_roots,
        temp_dirs=temp_dirs,
    )
    log.info("Sweep of leftovers older than %s: %s", older_than, report.summary())
    for where in (*report.staged_runs, *report.local_folders, *report.task_folders):
        log.info("  removed %s", where)
    for where in report.published_runs:
        log.info("  removed %s (no manifest)", where)
    if report.warnings:
        raise SynthError(
            "The sweep removed what it could but some places failed:\n  "
            + "\n  ".join(report.warnings)
        )
    return {**report.to_dict(), "older_than_hours": older_than.total_seconds() / 3600}
