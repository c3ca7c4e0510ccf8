"""The three ESL steps as plain functions: extract, synthesize, load.

Operators, TaskFlow tasks, the ``@task.synthesize`` decorator and the demo all call these,
so each rule (where files go, what is checked, what is recorded) exists once. Inputs and
outputs are paths, plain values and an :class:`~airflow_synth.core.publish.ObjectStore`;
the returned dicts are small and JSON-safe, made for XCom.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from airflow_synth.core.assessment import PRIVACY_MIN_ROWS, REPORT_FILE, SyntheticAssessor
from airflow_synth.core.checks import CheckSettings, enforce_gates, split_holdout
from airflow_synth.core.contract import TableContract, check_contract
from airflow_synth.core.engine.fresh import FreshColumns, count_leaks
from airflow_synth.core.engine.table_model import fit_table_model
from airflow_synth.core.errors import ContractError, DataError
from airflow_synth.core.extract.sql import sql_hash
from airflow_synth.core.extract.stream import DEFAULT_BATCH_ROWS, stream_query_to_parquet
from airflow_synth.core.frames import read_training_frame
from airflow_synth.core.metadata import public_metadata
from airflow_synth.core.profile.roles import (
    ColumnRole,
    classify_columns,
    describe_roles,
    fresh_columns,
    modelled_columns,
)
from airflow_synth.core.publish.layout import DatasetLayout, safe_key_part
from airflow_synth.core.publish.manifest import build_manifest
from airflow_synth.core.publish.store import ObjectStore, json_bytes, publish_dataset
from airflow_synth.core.synthesize import library_versions, sample_to_parquet
from airflow_synth.core.synthesizers import SynthesizerSpec

log = logging.getLogger(__name__)

REAL_FILE = "real.parquet"
SYNTHETIC_FILE = "synthetic.parquet"
METADATA_FILE = "metadata.json"
OUTPUT_FORMATS = ("parquet", "csv")
#: What of a synthesize result goes into the manifest (local staging paths never do).
PUBLIC_SYNTHESIS_KEYS = (
    "synthesizer",
    "seed",
    "rows",
    "training_rows",
    "holdout_rows",
    "model_uri",
    "fit_seconds",
    "sample_seconds",
    "checks_seconds",
    "scores",
    "filters",
    "gates",
    "checks",
)


def run_extract(
    conn: Any,
    sql: str,
    staging_dir: Path,
    *,
    sql_name: str,
    parameters: Mapping[str, Any] | Sequence[Any] | None = None,
    contract: TableContract | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    max_rows: int | None = None,
) -> dict[str, Any]:
    """Stream the query's rows into ``staging_dir`` and check them against the contract.

    A contract violation deletes the staged rows before raising: nothing real is left
    behind by a run that cannot go on. ``max_rows`` (dry runs) bounds the extract by
    wrapping the query in ``SELECT * FROM (...) LIMIT n``.
    """
    if max_rows is not None:
        sql = limit_query(sql, max_rows)
    staged = Path(staging_dir) / REAL_FILE
    result = stream_query_to_parquet(
        conn, sql, staged, parameters, batch_rows=batch_rows, sql_name=sql_name
    )
    if contract is not None:
        try:
            check_contract(contract, result.columns)
        except ContractError:
            staged.unlink(missing_ok=True)
            raise
    log.info(
        "Extracted %d rows x %d columns from %s in %.1f s (%d bytes staged)",
        result.rows,
        len(result.columns),
        sql_name,
        result.seconds,
        result.bytes,
    )
    return {
        **result.to_xcom(),
        "sql_file": sql_name,
        "sql_sha256": sql_hash(sql),
        "contract_file": contract.source if contract is not None else None,
    }


def limit_query(sql: str, max_rows: int) -> str:
    """The query bounded to ``max_rows`` rows (trailing semicolons removed first)."""
    body = sql.rstrip().rstrip(";").rstrip()
    return f"SELECT * FROM (\n{body}\n) AS airflow_synth_bounded LIMIT {int(max_rows)}"


def run_synthesize(
    staged_path: Path,
    out_dir: Path,
    *,
    dataset: str,
    spec: SynthesizerSpec,
    num_rows: int | None = None,
    seed: int | None = None,
    contract: TableContract | None = None,
    model_store: ObjectStore | None = None,
    layout: DatasetLayout | None = None,
    checks: CheckSettings | None = None,
    enforce_gates_: bool = True,
) -> dict[str, Any]:
    """Train on the staged rows (minus a holdout), sample, assess, then save the model.

    With ``enforce_gates_=False`` (dry runs) failed gates are logged, not raised.

    The synthetic Parquet has exactly the staged file's schema. Sampled batches pass the
    privacy filters; the final table gets its fidelity and privacy reports and the gates
    decide: a failed gate raises :class:`QualityGateError` after the reports are written
    and summarised in the log, and before the model is saved, so nothing leaves the run.
    """
    checks = checks or CheckSettings()
    out_dir = Path(out_dir)
    table = safe_key_part(dataset)
    frame, schema = read_training_frame(staged_path)
    roles = classify_columns(frame, contract=contract)
    for line in describe_roles(roles):
        log.info(line)
    modelled = require_modelled(roles, dataset)
    fresh = FreshColumns(frame, roles, seed=seed or 0)
    columns = list(frame.columns)
    train, holdout = split_holdout(frame[modelled], checks.holdout_share, seed, columns=modelled)
    log.info("Training on %d rows, %d held out to measure privacy", len(train), len(holdout))
    model = fit_table_model(train, table, spec, contract=contract, seed=seed)
    synthesizer, profiles, rules, metadata = (
        model.synthesizer,
        model.profiles,
        model.rules,
        model.metadata,
    )
    fit_seconds = model.fit_seconds
    assessor = SyntheticAssessor(train, holdout, metadata, table, checks, seed=seed or 0)
    wanted = int(num_rows) if num_rows else len(frame)
    assessor.expect(max(wanted, PRIVACY_MIN_ROWS))
    rows, sample_seconds = sample_to_parquet(
        synthesizer,
        wanted,
        schema,
        out_dir / SYNTHETIC_FILE,
        table,
        screen=assessor.screen if assessor.filtering else None,
        strata=assessor.strata,
        replacements=assessor.replacements,
        max_filtered_share=checks.max_filtered_share,
        observe=assessor.observe,
        complete=lambda batch: fresh.complete(batch, columns),
    )
    extra = assessor.top_up(lambda n: synthesizer.sample(num_rows=n)[table])
    if extra:
        log.info("Privacy judged on %d more sampled rows (not published)", extra)
    synthetic, _ = read_training_frame(out_dir / SYNTHETIC_FILE)
    leaks = count_leaks(synthetic, frame, [r.name for r in fresh_columns(roles)])
    del frame
    synthetic = synthetic[modelled]
    settings = {
        "dataset": dataset,
        "run": layout.run if layout is not None else None,
        "synthesizer": spec.describe(),
        "seed": seed,
        "rows": rows,
        "training_rows": len(train),
        "holdout_rows": len(holdout),
    }
    assessment = assessor.assess(
        synthetic,
        out_dir,
        settings,
        title=f"{dataset}: synthetic copy",
        fresh_leaks=leaks,
        roles=[r.to_dict() for r in roles],
        rules=rules,
    )
    for line in assessment.summary_lines():
        log.info(line)
    metadata_path = out_dir / METADATA_FILE
    metadata_path.write_bytes(json_bytes(public_metadata(metadata, roles, profiles)))
    if enforce_gates_:
        enforce_gates(
            assessment.gates,
            where=f"Dataset {dataset!r}",
            reports={**assessment.files, METADATA_FILE: metadata_path},
        )
    elif not assessment.passed:
        log.warning("DRY RUN: a real run would stop here: %s", assessment.summary_lines()[-1])
    versions = library_versions()
    model_uri = None
    if model_store is not None and layout is not None:
        model_uri = save_model(
            model_store, layout, synthesizer, out_dir, spec.describe(), seed, versions
        )
    return {
        "synthetic_uri": (out_dir / SYNTHETIC_FILE).resolve().as_uri(),
        "metadata_uri": metadata_path.resolve().as_uri(),
        "report_uris": {name: path.resolve().as_uri() for name, path in assessment.files.items()},
        "rows": rows,
        "training_rows": len(train),
        "holdout_rows": len(holdout),
        "fit_seconds": round(fit_seconds, 3),
        "sample_seconds": round(sample_seconds, 3),
        "checks_seconds": round(assessment.seconds, 3),
        "synthesizer": spec.describe(),
        "seed": seed,
        "model_uri": model_uri,
        "scores": assessment.scores(),
        "filters": assessment.filters,
        "gates": [g.to_dict() for g in assessment.gates],
        "checks": checks.to_dict(),
        "versions": versions,
    }


def require_modelled(roles: Sequence[ColumnRole], dataset: str) -> list[str]:
    """The modelled columns; a table of keys and PII only has nothing to learn."""
    modelled = modelled_columns(roles)
    if not modelled:
        raise DataError(
            f"Dataset {dataset!r}: every column is a key or PII ("
            + ", ".join(f"{r.name}: {r.kind}" for r in roles)
            + "), so there is nothing to learn. Mark the columns to learn with "
            "'role: modelled' in the contract, or add analytic columns to the query."
        )
    return modelled


def save_model(
    store: ObjectStore,
    layout: DatasetLayout,
    synthesizer: Any,
    work_dir: Path,
    synthesizer_info: Mapping[str, Any],
    seed: int | None,
    versions: Mapping[str, str],
) -> str:
    """Upload the fitted synthesizer and a small JSON describing how to load it."""
    local = Path(work_dir) / "model.pkl"
    synthesizer.save(str(local))
    try:
        store.put_file(local, layout.model_key)
    finally:
        local.unlink(missing_ok=True)
    info = {
        "dataset": layout.dataset,
        "run": layout.run,
        "synthesizer": dict(synthesizer_info),
        "seed": seed,
        "versions": dict(versions),
        "load_with": "airflow_synth.core.engine.profile_codec.load_model(path)",
        "columns": "the modelled columns only: keys and PII are issued fresh by the pipeline",
    }
    store.put_bytes(json_bytes(info), layout.model_info_key)
    log.info("Saved model to %s", layout.uri(layout.model_key))
    return layout.uri(layout.model_key)


def write_csv(parquet_path: Path, csv_path: Path) -> Path:
    """Convert the synthetic Parquet to CSV batch by batch (bounded memory)."""
    parquet = pq.ParquetFile(parquet_path)
    with pacsv.CSVWriter(csv_path, parquet.schema_arrow) as writer:
        for batch in parquet.iter_batches(batch_size=65_536):
            writer.write_batch(batch)
    return csv_path


def check_formats(formats: Sequence[str]) -> None:
    """Output formats must include Parquet (what manifests and loaders read) and be known."""
    unknown = [f for f in formats if f not in OUTPUT_FORMATS]
    if unknown or "parquet" not in formats:
        raise ValueError(
            f"output formats must include 'parquet' and be among {OUTPUT_FORMATS}; got {formats}"
        )


def run_load(
    store: ObjectStore,
    layout: DatasetLayout,
    *,
    synthetic_path: Path,
    metadata_path: Path,
    source: Mapping[str, Any],
    synthesis: Mapping[str, Any],
    timings: Mapping[str, float],
    formats: Sequence[str] = ("parquet",),
    reports: Mapping[str, Path] | None = None,
) -> dict[str, Any]:
    """Publish the synthetic table, its metadata, its reports and the manifest (last).

    ``reports`` maps file names (``quality.json``, ``privacy.json``, ``report.html``) to
    local paths; the manifest links each one under ``reports``.
    """
    started = time.monotonic()
    check_formats(formats)
    synthetic_path = Path(synthetic_path)
    files: dict[str, Path] = {"data.parquet": synthetic_path, "metadata.json": Path(metadata_path)}
    if "csv" in formats:
        files["data.csv"] = write_csv(synthetic_path, synthetic_path.with_suffix(".csv"))
    files.update({name: Path(path) for name, path in (reports or {}).items()})
    parquet = pq.ParquetFile(synthetic_path)
    manifest = build_manifest(
        dataset=layout.dataset,
        run=layout.run,
        rows=parquet.metadata.num_rows,
        schema=parquet.schema_arrow,
        source=source,
        synthesis={k: synthesis[k] for k in PUBLIC_SYNTHESIS_KEYS if k in synthesis},
        timings=timings,
        versions=synthesis.get("versions", {}),
        extra={"reports": {name: layout.uri(layout.key(name)) for name in reports or {}}},
    )
    published = publish_dataset(store, layout, files, manifest, load_started=started)
    report_uri = layout.uri(layout.key(REPORT_FILE)) if REPORT_FILE in (reports or {}) else None
    return {**published.to_xcom(), "dataset_uri": layout.dataset_uri, "report_uri": report_uri}


def load_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))
