"""Load a published synthetic dataset (a table or a set) into a target database.

The manifest is the only source of truth of what a publication holds: its tables, keys,
relationships, load order and the URI of every file (under the publish attempt that wrote
them; never a key built here). A single feature table is a set of one, so the same reader
loads both.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from airflow_synth.core.errors import PublishError
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.core.publish.store import ObjectStore
from airflow_synth.core.target.postgres import (
    TargetColumn,
    TargetForeignKey,
    TargetTable,
    load_tables_into_postgres,
)


def load_published_set(
    store: ObjectStore, layout: DatasetLayout, conn: Any, schema: str
) -> dict[str, Any]:
    """Copy a published dataset into ``schema`` of a target database, atomically.

    Reads the manifest, downloads the tables to a temporary folder and loads them in one
    transaction, parents first; the previous load in that schema is replaced when the
    transaction commits.
    """
    manifest_uri = layout.uri(layout.manifest_key)
    raw = store.get_bytes(layout.manifest_key)
    if raw is None:
        raise PublishError(
            f"No manifest at {manifest_uri}: the set was not published (or was deleted); "
            "publish it first. Nothing was loaded."
        )
    manifest = json.loads(raw)
    if not manifest.get("tables") or not manifest.get("load_order"):
        raise PublishError(
            f"{manifest_uri} lists no tables (published by an older airflow-synth); "
            "publish the dataset again, then load it. Nothing was loaded."
        )
    with tempfile.TemporaryDirectory(prefix="airflow_synth_target_") as tmp:
        tables = []
        for index, name in enumerate(manifest["load_order"]):
            info = manifest["tables"][name]
            path = Path(tmp) / f"table-{index}.parquet"
            _download_table(store, layout, info, path)
            tables.append(
                TargetTable(
                    name=name,
                    path=path,
                    primary_key=tuple(info.get("primary_key") or ()),
                    columns=tuple(
                        TargetColumn(c["name"], c.get("pg_type")) for c in info["columns"]
                    ),
                )
            )
        foreign_keys = [
            TargetForeignKey(
                child=r["child"],
                child_columns=tuple(r["child_key"]),
                parent=r["parent"],
                parent_columns=tuple(r["parent_key"]),
            )
            for r in manifest.get("relationships", [])
        ]
        result = load_tables_into_postgres(
            conn,
            schema,
            tables,
            foreign_keys,
            source={
                "manifest": manifest_uri,
                "dataset": manifest["dataset"],
                "run": manifest["run"],
            },
        )
    return result.to_xcom()


def _download_table(
    store: ObjectStore, layout: DatasetLayout, info: Mapping[str, Any], path: Path
) -> None:
    """The table of a manifest entry into one local Parquet file (its parts one after the
    other, when it was sampled in shards), read from the URIs the manifest lists."""
    uris = [part["uri"] for part in info.get("parts") or [{"uri": info["uri"]}]]
    writer = None
    try:
        for uri in uris:
            data = store.get_bytes(layout.key_of(uri))
            if data is None:
                raise PublishError(f"{uri} is missing; nothing was loaded.")
            if len(uris) == 1:
                path.write_bytes(data)
                return
            table = pq.read_table(pa.BufferReader(data))
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
