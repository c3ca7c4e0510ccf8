"""The first task's check that the whole run is configured, before any real row is read.

The extract steps (operators, TaskFlow tasks, task groups) call :func:`preflight` with the
settings of the steps that follow them. It validates those settings with the same rules
the later steps use (:func:`airflow_synth.core.settings_check.validate_run_settings`) and
looks up every connection the later steps will use, so a typo fails the extract task,
before the source is queried and before anything is staged, instead of the synthesize or
load task after real rows were copied.

Runs only inside a task: connections are never looked up while a DAG file is parsed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from airflow_synth.core.errors import ConnectionConfigError
from airflow_synth.core.settings_check import RunSettings, store_settings, validate_run_settings
from airflow_synth.hooks.synth import SynthHook

log = logging.getLogger(__name__)


def preflight(
    settings: Mapping[str, Any] | None,
    *,
    sql_files: Mapping[str, str] | None = None,
    sql_dirs: Iterable[str | Path] = (),
) -> RunSettings:
    """Validate the later steps' settings and look up their connections; raise on a miss.

    :param settings: what the later steps will be given (synthesizer, parameters, epochs,
        checks, rows, seed, multi-table sizes, ``aws_conn_id``/``bucket``/``synth_conn_id``,
        ``target_conn_id``/``target_schema``/``load_to_target``). Empty: nothing to check.
    """
    store = store_settings(settings)
    hook = SynthHook(
        store["synth_conn_id"], aws_conn_id=store["aws_conn_id"], bucket=store["bucket"]
    )
    checked = validate_run_settings(
        settings, resolve_spec=hook.synthesizer_spec, sql_files=sql_files, sql_dirs=sql_dirs
    )
    if checked.store_given:
        _ = hook.settings  # the synth connection, when one is named: must exist, right type
        hook.get_conn().check()  # looks the AWS connection up first, then reaches the bucket
    if checked.target_conn_id:
        lookup_connection(
            checked.target_conn_id,
            role="the target database of the load_target step",
            conn_type="Postgres",
            example="postgresql://user:pass@host:5432/db",
        )
    if settings:
        log.info(
            "Configuration checked before reading any row: synthesizer %s, checks %s, %s",
            checked.spec.describe() if checked.spec else "-",
            checked.checks.to_dict() if checked.checks else "-",
            f"bucket {hook.bucket!r} via {hook.aws_conn_id!r}" if checked.store_given else "",
        )
    return checked


def lookup_connection(conn_id: str, *, role: str, conn_type: str, example: str) -> Any:
    """The Airflow connection ``conn_id``, or an error naming it and how to create it."""
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException and the SDK's lookup errors
        raise ConnectionConfigError(
            f"Airflow connection {conn_id!r} ({role}) is not defined: {exc}\n"
            f"Create the Airflow connection {conn_id!r} (type {conn_type!r}), e.g. with "
            f"AIRFLOW_CONN_{conn_id.upper()}={example}"
        ) from exc
