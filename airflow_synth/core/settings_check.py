"""Check a run's whole configuration before the first real row is read.

Why this exists: each step validates its own settings, but the synthesize step runs
*after* the extract step has queried the source and copied real rows into staging. A
typo in a synthesizer name, a bad gate threshold or a missing SQL file must not cost a
query against a production database and a copy of its rows; it must fail the first task.
So the extract step receives the settings of the later steps too (the task groups fill
them in) and hands them to :func:`validate_run_settings`.

This module decides nothing on its own: every rule belongs to the validator that the
later step uses as well (:func:`~airflow_synth.core.engine.synthesizers.resolve_synthesizer`
or a hook's ``synthesizer_spec``, :meth:`CheckSettings.from_mapping`, the coercers of
:mod:`airflow_synth.core.coerce`, :func:`~airflow_synth.core.extract.sql.resolve_sql_file`), so
the early check and the real step cannot disagree. Connection ids are only *collected*
here; looking them up needs Airflow and happens in the task (``airflow_synth.preflight``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_synth.core.assess.checks import CheckSettings
from airflow_synth.core.coerce import as_bool, as_dict, as_float, as_int, as_text
from airflow_synth.core.engine.reuse import reuse_settings_from
from airflow_synth.core.engine.shards import shard_count
from airflow_synth.core.engine.synthesizers import SynthesizerSpec, resolve_synthesizer
from airflow_synth.core.errors import SynthesizerConfigError
from airflow_synth.core.extract.sql import read_sql_file, resolve_sql_file

#: Turns (name, params) into a validated spec; a ``SynthHook`` adds its connection defaults.
SpecResolver = Callable[[str | None, dict[str, Any]], SynthesizerSpec]

#: Settings of the single-table synthesize step.
SYNTHESIZER_KEYS = ("synthesizer", "synthesizer_params", "epochs")
#: Settings of the multi-table synthesize step (besides ``seed`` and ``checks``);
#: ``fixed_combinations`` is accepted as is (every value reads as a boolean).
MULTITABLE_KEYS = (
    "max_parents",
    "scale",
    "max_orphan_share",
    "fixed_combinations",
    "engine",
    "synthesizers",
    "max_training_rows",
)
#: The multi-table engines (see :mod:`airflow_synth.core.steps`).
MULTITABLE_ENGINES = ("per_table", "hma")
#: The nightly refresh's model reuse (see :mod:`airflow_synth.core.engine.reuse`).
REUSE_KEYS = ("reuse_model", "max_drift", "max_model_age_hours")
#: Where the later steps write: looked up by the task, not here.
STORE_KEYS = ("aws_conn_id", "bucket", "synth_conn_id")
TARGET_KEYS = ("target_conn_id", "target_schema", "load_to_target")
KNOWN_KEYS = (
    *SYNTHESIZER_KEYS,
    "num_rows",
    "shards",
    "seed",
    *REUSE_KEYS,
    "checks",
    *MULTITABLE_KEYS,
    *STORE_KEYS,
    *TARGET_KEYS,
)


@dataclass(frozen=True)
class RunSettings:
    """The validated settings of a run; ``None`` where a setting was not given."""

    spec: SynthesizerSpec | None = None
    checks: CheckSettings | None = None
    numbers: dict[str, int | float | None] = field(default_factory=dict)
    sql_files: dict[str, Path] = field(default_factory=dict)
    aws_conn_id: str | None = None
    bucket: str | None = None
    synth_conn_id: str | None = None
    #: True when the store settings were given: the later steps write to that bucket
    store_given: bool = False
    #: None when no target load is configured or it is switched off for this run
    target_conn_id: str | None = None
    target_schema: str | None = None


def store_settings(settings: Mapping[str, Any] | None) -> dict[str, str | None]:
    """``aws_conn_id``, ``bucket`` and ``synth_conn_id`` from the settings (empty -> None)."""
    values = settings or {}
    return {key: as_text(values.get(key)) for key in STORE_KEYS}


def synthesizer_spec_for(
    synthesizer: Any,
    synthesizer_params: Any,
    epochs: Any,
    resolve_spec: SpecResolver = resolve_synthesizer,
) -> SynthesizerSpec:
    """The spec the synthesize step trains: name + params, ``epochs`` for neural models.

    An ``epochs`` key in ``synthesizer_params`` wins over the ``epochs`` setting, and a
    model not trained in epochs ignores it (the synthesize step logs that).
    """
    params = as_dict(synthesizer_params, "synthesizer_params")
    spec = resolve_spec(as_text(synthesizer), params)
    epochs_value = as_int(epochs, "epochs")
    if epochs_value and spec.is_neural and "epochs" not in params:
        spec = resolve_spec(spec.name, {**params, "epochs": epochs_value})
    return spec


def validate_run_settings(
    settings: Mapping[str, Any] | None,
    *,
    resolve_spec: SpecResolver = resolve_synthesizer,
    sql_files: Mapping[str, str] | None = None,
    sql_dirs: Iterable[str | Path] = (),
) -> RunSettings:
    """Validate the settings of every step of a run; raise on the first bad one.

    :param settings: the later steps' settings as given to the extract task (rendered
        templates: numbers and mappings may arrive as text). Unknown keys are refused, so
        a misspelt setting cannot be silently ignored.
    :param resolve_spec: validates the synthesizer; the task passes its ``SynthHook``'s
        ``synthesizer_spec`` so defaults from a ``synth`` connection are checked too.
    :param sql_files: ``{name: sql_file}`` that the extract will read (all of them are
        found and read now, so the third table's missing file fails before the first
        table is queried).
    :param sql_dirs: where relative SQL file names are looked up.
    """
    values = dict(settings or {})
    unknown = sorted(set(values) - set(KNOWN_KEYS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], KNOWN_KEYS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SynthesizerConfigError(
            f"Unknown setting {unknown[0]!r} to validate.{hint} Known: {', '.join(KNOWN_KEYS)}."
        )
    spec = None
    if any(key in values for key in SYNTHESIZER_KEYS):
        spec = synthesizer_spec_for(
            values.get("synthesizer"),
            values.get("synthesizer_params"),
            values.get("epochs"),
            resolve_spec,
        )
    checks = None
    if "checks" in values:
        checks = CheckSettings.from_mapping(as_dict(values["checks"], "checks"))
    numbers: dict[str, int | float | None] = {}
    check_multitable_engine(values)
    for key in ("num_rows", "seed", "max_parents", "max_training_rows", "shards"):
        if key in values:
            numbers[key] = as_int(values[key], key)
    if numbers.get("shards"):
        shard_count(numbers.get("num_rows") or 1, int(numbers["shards"]))  # in range?
    if any(key in values for key in REUSE_KEYS):  # in range? (no store is read here)
        reuse_settings_from(*(values.get(key) for key in REUSE_KEYS))
    for key in ("scale", "max_orphan_share"):
        if key in values:
            numbers[key] = as_float(values[key], key, default=1.0)
    target_conn_id = target_schema = None
    if as_text(values.get("target_conn_id")) and as_bool(values.get("load_to_target", True)):
        target_conn_id = as_text(values["target_conn_id"])
        target_schema = as_text(values.get("target_schema"))
        if target_schema is None:
            raise SynthesizerConfigError(
                "target_schema is empty: name the schema of the target database to load into."
            )
    found = {
        name: resolve_sql_file(sql_file, sql_dirs)
        for name, sql_file in (sql_files or {}).items()
        if sql_file
    }
    for path in found.values():
        read_sql_file(path)  # an empty or undecodable file fails here too
    return RunSettings(
        spec=spec,
        checks=checks,
        numbers=numbers,
        sql_files=found,
        **store_settings(values),
        store_given=any(key in values for key in STORE_KEYS),
        target_conn_id=target_conn_id,
        target_schema=target_schema,
    )


def check_multitable_engine(values: Mapping[str, Any]) -> None:
    """``engine`` is known and every name in ``synthesizers`` (one, or per table) resolves."""
    engine = as_text(values.get("engine"))
    if engine is not None and engine not in MULTITABLE_ENGINES:
        close = difflib.get_close_matches(engine, MULTITABLE_ENGINES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SynthesizerConfigError(
            f"engine {engine!r} is not a multi-table engine.{hint} Choose one of "
            f"{', '.join(MULTITABLE_ENGINES)}."
        )
    chosen = values.get("synthesizers")
    if isinstance(chosen, str) and chosen.strip().startswith("{"):
        chosen = as_dict(chosen, "synthesizers")
    names = chosen.values() if isinstance(chosen, Mapping) else [chosen]
    for name in names:
        if as_text(name) is not None:
            resolve_synthesizer(as_text(name))
