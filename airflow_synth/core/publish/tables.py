"""The publish step over a table set: every table, its reports, then ONE manifest.

A single feature table is a set of one and keeps its familiar layout (``data.parquet``
beside its reports); a set of several tables puts each under ``tables/<name>.parquet``.
Either way the manifest lists every table (URI, rows, key, columns), the relationships and
the load order, so one reader (:mod:`airflow_synth.core.target.published`, the health
check, the UI) understands every publication, and consumers see a run only once the
manifest is written last. Every file goes under the publish attempt's own prefix (see
:mod:`~airflow_synth.core.publish.layout`), the fitted model too (under ``_models/``),
uploaded by this step with the run's files, so a run that never publishes leaves no model.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.core.publish.manifest import schema_description
from airflow_synth.core.publish.store import ObjectStore, publish_dataset
from airflow_synth.core.relations import TableSet, TableShape

OUTPUT_FORMATS = ("parquet", "csv")
#: The manifest's ``kind``: one feature table, or a set of related tables.
TABLE_KIND, SET_KIND = "table", "multi_table"
SINGLE_TABLE_FILE = "data.parquet"
TABLES_DIR = "tables"
#: What of a synthesize result goes into the manifest (local staging paths never do).
PUBLIC_SYNTHESIS_KEYS = (
    "synthesizer",
    "seed",
    "scale",
    "subset",
    "rows",
    "training_rows",
    "holdout_rows",
    "max_training_rows",
    "fit_seconds",
    "sample_seconds",
    "checks_seconds",
    "shards",
    "integrity",
    "scores",
    "filters",
    "gates",
    "checks",
    # reused or retrained, and why (the nightly refresh); a summary of the extract's
    # fingerprint (counts and a schema hash; the profile stays with the private model)
    "model_reuse",
    "fingerprint",
)


def write_csv(parquet_path: Path, csv_path: Path) -> Path:
    """Convert a synthetic Parquet file to CSV batch by batch (bounded memory)."""
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


def table_key(table_set: TableSet, name: str) -> str:
    """Where a table's Parquet goes in the run folder (one rule for every reader)."""
    if table_set.relationships or len(table_set.tables) > 1:
        return f"{TABLES_DIR}/{name}.parquet"
    return SINGLE_TABLE_FILE


def part_keys(key: str, count: int) -> list[str]:
    """The keys of a table's parts: the table's own key for one file, else
    ``<key without .parquet>/part-<n>.parquet`` (a folder any Parquet reader reads whole)."""
    if count == 1:
        return [key]
    folder = key.removesuffix(".parquet")
    return [f"{folder}/part-{index:05d}.parquet" for index in range(count)]


def publish_tables(
    store: ObjectStore,
    layout: DatasetLayout,
    *,
    table_set: TableSet,
    table_files: Mapping[str, Path | Sequence[Path]],
    files: Mapping[str, Path],
    reports: Sequence[str],
    source: Mapping[str, Any],
    synthesis: Mapping[str, Any],
    timings: Mapping[str, float],
    formats: Sequence[str] = ("parquet",),
    model_files: Mapping[str, Path] | None = None,
    run_date: datetime | str | None = None,
) -> dict[str, Any]:
    """Upload every table (Parquet, and CSV if asked), ``files`` (metadata, reports), the
    model (``model_files``: ``model.pkl``, ``model.json``), then the manifest naming them
    all; ``reports`` are the names of ``files`` the manifest links under ``reports``.
    ``run_date`` (the run's logical date or start) decides whether ``latest.json`` moves.

    A table sampled in shards is a list of part files: published as ``.../part-<n>.parquet``
    under the table's folder, its manifest entry's ``uri`` the folder and ``parts`` each
    part (with its rows), so a reader of the folder or of the parts sees the whole table.
    """
    started = time.monotonic()
    check_formats(formats)
    layout = layout if layout.attempt is not None else layout.for_attempt()
    upload = dict(files)
    tables: dict[str, Any] = {}
    sizes: dict[str, int] = {}  # bytes of each table's Parquet file(s), for lineage
    for name in table_set.order:
        given = table_files[name]
        paths = [Path(p) for p in given] if isinstance(given, list | tuple) else [Path(given)]
        keys = part_keys(table_key(table_set, name), len(paths))
        parts = []
        for key, path in zip(keys, paths, strict=True):
            upload[key] = path
            if "csv" in formats:
                upload[key.removesuffix(".parquet") + ".csv"] = write_csv(
                    path, path.with_suffix(".csv")
                )
            rows = pq.ParquetFile(path).metadata.num_rows
            parts.append({"uri": layout.uri(layout.key(key)), "rows": rows})
        sizes[name] = sum(path.stat().st_size for path in paths)
        shape = table_set.tables[name]
        tables[name] = {
            "uri": parts[0]["uri"]
            if len(parts) == 1
            else layout.uri(layout.key(table_key(table_set, name).removesuffix(".parquet"))) + "/",
            "rows": sum(part["rows"] for part in parts),
            "primary_key": list(shape.primary_key),
            "columns": _columns(shape, pq.read_schema(paths[0])),
        }
        if len(parts) > 1:
            tables[name]["parts"] = parts
    first = table_files[table_set.order[0]]
    first_path = Path(first[0] if isinstance(first, list | tuple) else first)
    single = table_key(table_set, table_set.order[0]) == SINGLE_TABLE_FILE
    manifest: dict[str, Any] = {
        "dataset": layout.dataset,
        "run": layout.run,
        "kind": TABLE_KIND if single else SET_KIND,
        "rows": sum(t["rows"] for t in tables.values()),
    }
    if single:  # a table's columns at the top, as single-table consumers read them
        manifest["columns"] = schema_description(pq.read_schema(first_path))
    manifest.update(
        {
            "tables": tables,
            "relationships": [r.to_dict() for r in table_set.relationships],
            "load_order": list(table_set.order),
            "source": dict(source),
            "synthesis": {
                **{k: synthesis[k] for k in PUBLIC_SYNTHESIS_KEYS if k in synthesis},
                # the model travels with this publication (None: a run without a model)
                "model_uri": layout.uri(layout.model_key) if model_files else None,
            },
            "timings_seconds": {k: round(float(v), 3) for k, v in timings.items()},
            "versions": dict(synthesis.get("versions", {})),
            "reports": {name: layout.uri(layout.key(name)) for name in reports},
        }
    )
    published = publish_dataset(
        store,
        layout,
        upload,
        manifest,
        load_started=started,
        model_files=model_files,
        run_date=run_date,
    )
    return {
        **published.to_xcom(),
        "dataset_uri": layout.dataset_uri,
        "tables": {name: t["uri"] for name, t in tables.items()},
        # names, types and counts only: what the publish task's OpenLineage output reports
        "table_schemas": {
            name: {
                "rows": t["rows"],
                "bytes": sizes[name],
                "columns": [[c["name"], c.get("arrow_type")] for c in t["columns"]],
            }
            for name, t in tables.items()
        },
        "reports": dict(manifest["reports"]),
        "model_uri": manifest["synthesis"]["model_uri"],
    }


def _columns(shape: TableShape, schema: Any) -> list[dict[str, Any]]:
    """Each column's name, database type (when the source said) and Arrow/logical type."""
    described = {c["name"]: c for c in schema_description(schema)}
    return [
        {**column, **described.get(column["name"], {})} for column in shape.to_dict()["columns"]
    ]


def table_of_one(name: str, parquet_path: Path) -> TableSet:
    """A single feature table as a table set of one (no key declared, no relationship)."""
    columns = tuple(pq.read_schema(parquet_path).names)
    return TableSet(tables={name: TableShape(name, columns)}, relationships=(), order=(name,))
