"""Airflow-facing shells of the multi-table ESL steps (see :mod:`airflow_synth.runtime`).

Each function turns Airflow things (connections, the run id, the task context) into plain
values and calls :mod:`airflow_synth.core.multitable_steps`. Heavy imports happen inside
the functions so DAG files stay fast to parse.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from contextlib import closing
from typing import Any

from airflow_synth.core.checks import CheckSettings
from airflow_synth.core.coerce import as_float  # one rule for numbers, shared with core
from airflow_synth.core.contract import load_table_contracts, resolve_table_contracts
from airflow_synth.core.errors import SynthesizerConfigError
from airflow_synth.hooks.synth import SynthHook
from airflow_synth.preflight import preflight
from airflow_synth.runtime import (
    announce_publication,
    as_bool,
    as_dict,
    as_int,
    checked_store,
    gate_failures_quarantined,
    postgres_connection,
    run_layout,
    s3_failures_named,
    sql_search_dirs,
    staging_dir_for,
    step_timings,
)

log = logging.getLogger(__name__)

#: The multi-table synthesis settings that the extract checks up front (``validate=``) and
#: the synthesize task passes on as they are (besides ``main_table``).
MULTITABLE_SYNTHESIS_FIELDS = (
    "seed",
    "max_parents",
    "scale",
    "max_orphan_share",
    "fixed_combinations",
    "checks",
    "engine",
    "synthesizers",
    "max_training_rows",
)


def as_list(value: Any, name: str) -> list[Any]:
    """Accept lists and their JSON text (how params arrive when templates render to strings)."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [value]  # one relationship written as text
    if isinstance(value, Mapping) or not isinstance(value, Sequence):
        raise SynthesizerConfigError(f"{name} must be a list, got {value!r}.")
    return list(value)


def _per_table_switch(value: Any) -> bool | dict[str, bool | list[str]]:
    """``True``/``False`` for every table, or ``{table: bool or [columns never grouped]}``
    (JSON text too)."""
    if isinstance(value, str) and value.strip().startswith("{"):
        value = as_dict(value, "fixed_combinations")
    if isinstance(value, Mapping):
        return {
            str(table): [str(c) for c in flag] if isinstance(flag, list | tuple) else as_bool(flag)
            for table, flag in value.items()
        }
    return as_bool(value)


def execute_multitable_extract(
    context: Mapping[str, Any],
    *,
    tables: Any,
    dataset: str,
    postgres_conn_id: str,
    schema: str = "public",
    relationships: Any = None,
    primary_keys: Any = None,
    staging_dir: str | None = None,
    validate: Mapping[str, Any] | None = None,
    contracts: Any = None,
) -> dict[str, Any]:
    """Check the run's configuration, then stage every table of the set and describe it.

    ``validate`` holds the later steps' settings (see :func:`airflow_synth.preflight.preflight`);
    they and every table's SQL file are checked before the first table is queried.
    """
    from airflow_synth.core.multitable_steps import run_multitable_extract

    tables_value = tables if isinstance(tables, Mapping) else as_list(tables, "tables")
    sql_files = dict(tables_value) if isinstance(tables_value, Mapping) else {}
    preflight(validate, sql_files=sql_files, sql_dirs=sql_search_dirs(context))
    contract_refs = resolve_table_contracts(
        as_dict(contracts, "contracts"), sql_search_dirs(context)
    )
    target = staging_dir_for(context, dataset, staging_dir)
    with closing(postgres_connection(postgres_conn_id)) as conn:
        result = run_multitable_extract(
            conn,
            tables_value,
            target,
            schema=schema,
            relationships=as_list(relationships, "relationships"),
            primary_keys=as_dict(primary_keys, "primary_keys"),
            sql_dirs=sql_search_dirs(context),
            engine=(validate or {}).get("engine") or None,
        )
    return {**result, "postgres_conn_id": postgres_conn_id, "contracts": contract_refs}


def execute_multitable_synthesize(
    context: Mapping[str, Any],
    *,
    extract: Mapping[str, Any],
    dataset: str,
    hook: SynthHook,
    seed: Any = None,
    max_parents: Any = None,
    scale: Any = None,
    main_table: str | None = None,
    max_orphan_share: Any = None,
    fixed_combinations: Any = True,
    checks: Mapping[str, Any] | str | None = None,
    engine: str | None = None,
    synthesizers: Any = None,
    max_training_rows: Any = None,
) -> dict[str, Any]:
    """Validate settings (cheap), then train the set's model, sample, check, save it."""
    from pathlib import Path

    from airflow_synth.core.engine.set_run import DEFAULT_MAX_TRAINING_ROWS
    from airflow_synth.core.multitable_steps import (
        DEFAULT_ENGINE,
        DEFAULT_MAX_PARENTS,
        run_multitable_synthesize,
    )
    from airflow_synth.core.settings_check import check_multitable_engine
    from airflow_synth.core.subset import DEFAULT_MAX_ORPHAN_SHARE

    check_settings = CheckSettings.from_mapping(as_dict(checks, "checks"))
    parents = as_int(max_parents, "max_parents")
    training_rows = as_int(max_training_rows, "max_training_rows")
    check_multitable_engine({"engine": engine, "synthesizers": synthesizers})
    chosen = synthesizers
    if isinstance(chosen, str) and chosen.strip().startswith("{"):
        chosen = as_dict(chosen, "synthesizers")
    scale_value = as_float(scale, "scale", 1.0)
    orphan_share = as_float(max_orphan_share, "max_orphan_share", DEFAULT_MAX_ORPHAN_SHARE)
    store = checked_store(hook)
    layout = run_layout(context, hook, dataset)
    with gate_failures_quarantined(context, hook, layout):  # reports to <dataset>/_failed/<run>/
        return run_multitable_synthesize(
            extract,
            Path(extract["staging_dir"]) / "synthetic",
            dataset=dataset,
            seed=as_int(seed, "seed"),
            max_parents=DEFAULT_MAX_PARENTS if parents is None else (parents or None),
            scale=scale_value,
            main_table=main_table or None,
            max_orphan_share=orphan_share,
            fixed_combinations=_per_table_switch(fixed_combinations),
            checks=check_settings,
            model_store=store,
            layout=layout,
            contracts=load_table_contracts(extract.get("contracts") or {}),
            engine=(engine or "").strip() or DEFAULT_ENGINE,
            synthesizer=chosen or None,
            max_training_rows=(
                DEFAULT_MAX_TRAINING_ROWS if training_rows is None else (training_rows or None)
            ),
        )


def execute_multitable_publish(
    context: Mapping[str, Any],
    *,
    extract: Mapping[str, Any],
    synthesis: Mapping[str, Any],
    dataset: str,
    hook: SynthHook,
    formats: Sequence[str] = ("parquet",),
) -> dict[str, Any]:
    """Publish every table + reports under one manifest; attach it to the Asset event."""
    from airflow_synth.core.multitable_steps import run_multitable_publish

    layout = run_layout(context, hook, dataset)
    source = {
        "postgres_conn_id": extract.get("postgres_conn_id"),
        "schema": extract.get("schema"),
        "tables": {
            name: {"source": t.get("source"), "sql_sha256": t.get("sql_sha256"), "rows": t["rows"]}
            for name, t in extract["tables"].items()
        },
    }
    timings = {**step_timings(extract, synthesis), "checks": synthesis.get("checks_seconds", 0.0)}
    store = hook.get_conn()
    with s3_failures_named(hook):
        result = run_multitable_publish(
            store, layout, synthesis=synthesis, source=source, timings=timings, formats=formats
        )
    return announce_publication(context, hook, layout, result)


def execute_target_load(
    context: Mapping[str, Any],
    *,
    dataset: str,
    hook: SynthHook,
    target_conn_id: str,
    target_schema: str,
    enabled: Any = True,
) -> dict[str, Any]:
    """Load the run's published set into ``target_schema`` of ``target_conn_id``, atomically.

    Reads what to load from the run's manifest in the object store (synthetic data only),
    so it can also be re-run on its own to refresh a lower environment.
    """
    if not as_bool(enabled):
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException("loading into a target database is switched off")
    if not target_schema or not str(target_schema).strip():
        raise SynthesizerConfigError(
            "target_schema is empty: name the schema of the target database to load into."
        )
    from airflow_synth.core.multitable_steps import load_published_set

    layout = run_layout(context, hook, dataset)
    log.info("Loading %s into schema %s", layout.uri(layout.manifest_key), target_schema)
    with closing(postgres_connection(target_conn_id)) as conn:
        conn.rollback()  # start clean: the load runs its own single transaction
        conn.autocommit = True
        result = load_published_set(hook.get_conn(), layout, conn, str(target_schema).strip())
    log.info(
        "Loaded %s rows into %s (connection %s): %s",
        result.get("rows"),
        target_schema,
        target_conn_id,
        result.get("tables"),
    )
    return {**result, "target_conn_id": target_conn_id}
