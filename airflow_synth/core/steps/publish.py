"""The publish step's two front doors, over the one :func:`publish_tables`.

``run_load`` takes a single-table synthesize result (a set of one), ``run_multitable_publish``
a table set's; both publish through the same upload-then-manifest rule. The synthesize
step's fitted model (``model_files`` of its result: ``model.pkl``, ``model.json`` in the
task's workspace) is published with the run, under the same attempt, before the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_synth.core.assess.assessment import REPORT_FILE
from airflow_synth.core.extract.staging import path_from_uri
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.core.publish.store import ObjectStore
from airflow_synth.core.publish.tables import publish_tables, table_of_one
from airflow_synth.core.relations import TableSet
from airflow_synth.core.steps.finish import METADATA_FILE, QUALITY_FILE, REPORTS_DIR


def run_load(
    store: ObjectStore,
    layout: DatasetLayout,
    *,
    synthetic_path: Path | Sequence[Path],
    metadata_path: Path,
    source: Mapping[str, Any],
    synthesis: Mapping[str, Any],
    timings: Mapping[str, float],
    formats: Sequence[str] = ("parquet",),
    reports: Mapping[str, Path] | None = None,
    run_date: datetime | str | None = None,
) -> dict[str, Any]:
    """Publish one synthetic table, its metadata, its reports, its model and the manifest
    (last).

    ``synthetic_path`` is the table's file, or its part files when it was sampled in shards
    (published as ``data/part-<n>.parquet``).

    ``reports`` maps file names (``quality.json``, ``privacy.json``, ``report.html``) to
    local paths; the manifest links each one under ``reports``.
    """
    reports = {name: Path(path) for name, path in (reports or {}).items()}
    parts = (
        [Path(p) for p in synthetic_path]
        if isinstance(synthetic_path, list | tuple)
        else [Path(synthetic_path)]
    )
    result = publish_tables(
        store,
        layout,
        table_set=table_of_one(layout.dataset, parts[0]),
        table_files={layout.dataset: parts if len(parts) > 1 else parts[0]},
        files={METADATA_FILE: Path(metadata_path), **reports},
        reports=list(reports),
        source=source,
        synthesis=synthesis,
        timings=timings,
        formats=formats,
        model_files=model_files_of(synthesis),
        run_date=run_date,
    )
    return {**result, "report_uri": result["reports"].get(REPORT_FILE)}


def model_files_of(synthesis: Mapping[str, Any]) -> dict[str, Path]:
    """The model files a synthesize result names (local paths or ``file://`` URIs, as the
    task's workspace fetched them); {} for a run without a model (a dry run)."""
    return {
        name: path_from_uri(str(uri)) for name, uri in (synthesis.get("model_files") or {}).items()
    }


def run_multitable_publish(
    store: ObjectStore,
    layout: DatasetLayout,
    *,
    synthesis: Mapping[str, Any],
    source: Mapping[str, Any],
    timings: Mapping[str, float],
    formats: Sequence[str] = ("parquet",),
    run_date: datetime | str | None = None,
) -> dict[str, Any]:
    """Upload every table, the reports, metadata and model, then ONE manifest naming them
    all."""
    table_set = TableSet.from_dict(synthesis["table_set"])
    reports = {name: path_from_uri(path) for name, path in synthesis["report_files"].items()}
    result = publish_tables(
        store,
        layout,
        table_set=table_set,
        table_files={name: path_from_uri(path) for name, path in synthesis["table_files"].items()},
        files={
            METADATA_FILE: path_from_uri(synthesis["metadata_uri"]),
            QUALITY_FILE: path_from_uri(synthesis["quality_uri"]),
            **reports,
        },
        reports=[QUALITY_FILE, *reports],
        source=source,
        synthesis=synthesis,
        timings=timings,
        formats=formats,
        model_files=model_files_of(synthesis),
        run_date=run_date,
    )
    report = f"{REPORTS_DIR}/{table_set.order[0]}/report.html"
    return {**result, "report_uri": result["reports"].get(report)}
