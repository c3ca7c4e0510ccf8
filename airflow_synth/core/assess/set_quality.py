"""The set-level reports of the HMA path: integrity in its original shape, children per
parent as summary numbers, and SDV's multi-table Quality Report.

A published set with one dangling key breaks every join of every consumer, so integrity is
checked whatever the engine promises. No Airflow import.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sdv.metadata import Metadata

from airflow_synth.core.assess.relationships import check_integrity as assess_integrity
from airflow_synth.core.assess.relationships import children_per_parent
from airflow_synth.core.redact import library_errors, redacted_names
from airflow_synth.core.relations import TableSet


def check_integrity(frames: Mapping[str, pd.DataFrame], table_set: TableSet) -> dict[str, Any]:
    """Key uniqueness and foreign-key coverage of a set of tables, as a JSON-safe report.

    ``score`` is the share of checked child rows whose foreign key points at an existing
    parent (1.0 = every join keeps every row); ``passed`` also requires unique, non-NULL
    primary keys. Delegates to :func:`airflow_synth.core.assess.relationships.check_integrity`
    (composite keys, nullable relationships) with no relationship nullable, and keeps this
    report's original keys for its current readers.
    """
    report = assess_integrity(frames, table_set)
    return {
        "score": report["score"],
        "passed": report["passed"],
        "primary_keys": {
            name: {k: key[k] for k in ("column", "rows", "nulls", "duplicates")}
            for name, key in report["primary_keys"].items()
        },
        "relationships": [
            {k: rel[k] for k in ("relationship", "rows", "orphans", "nulls", "integrity")}
            for rel in report["relationships"]
        ],
    }


def cardinality_report(
    real: Mapping[str, pd.DataFrame], synthetic: Mapping[str, pd.DataFrame], table_set: TableSet
) -> list[dict[str, Any]]:
    """Children per parent, real vs synthetic: the numbers behind SDV's Cardinality score.

    The summary part of :func:`airflow_synth.core.assess.relationships.children_per_parent`
    (which also has the whole histogram and its distance).
    """
    return [
        {"relationship": row["relationship"], "real": row["real"], "synthetic": row["synthetic"]}
        for row in children_per_parent(real, synthetic, table_set)["relationships"]
    ]


def multitable_quality(
    real: Mapping[str, pd.DataFrame],
    synthetic: Mapping[str, pd.DataFrame],
    metadata: Metadata,
) -> dict[str, Any]:
    """SDV's multi-table Quality Report: shapes, pair trends, cardinality, intertable trends."""
    from sdv.evaluation import evaluate_quality

    started = time.monotonic()
    # a failure is a DataError (LibraryError) without the values SDV quotes; the gate fails
    with library_errors("SDV's multi-table quality report", redacted_names(dict(real))):
        report = evaluate_quality(dict(real), dict(synthetic), metadata, verbose=False)
    properties = {
        str(row["Property"]).lower().replace(" ", "_"): _number(row["Score"])
        for _, row in report.get_properties().iterrows()
    }
    return {
        "score": _number(report.get_score()),
        "properties": properties,
        "seconds": round(time.monotonic() - started, 3),
    }


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(number) else round(number, 6)
