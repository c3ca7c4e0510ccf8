"""The manifest: everything a consumer (or an auditor) needs to trust a published run.

It records what the data is (rows, columns and types), where it came from (connection
id, never credentials; SQL file and hash), how it was made (synthesizer, parameters,
seed, model location, library versions) and how long each phase took.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from airflow_synth.core.contract import logical_type


def schema_description(schema: pa.Schema) -> list[dict[str, str]]:
    """Columns of a schema as JSON: name, Arrow type and logical type."""
    return [
        {"name": f.name, "arrow_type": str(f.type), "logical_type": logical_type(f.type)}
        for f in schema
    ]


def build_manifest(
    *,
    dataset: str,
    run: str,
    rows: int,
    schema: pa.Schema,
    source: Mapping[str, Any],
    synthesis: Mapping[str, Any],
    timings: Mapping[str, float],
    versions: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the manifest body; :func:`publish_dataset` adds files and publication time."""
    return {
        "dataset": dataset,
        "run": run,
        "rows": rows,
        "columns": schema_description(schema),
        "source": dict(source),
        "synthesis": dict(synthesis),
        "timings_seconds": {k: round(float(v), 3) for k, v in timings.items()},
        "versions": dict(versions),
        **dict(extra or {}),
    }
