"""Helpers shared by the DAG tests (kept out of conftest so test modules can import them)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

DAG_FILES = Path(__file__).resolve().parent / "dag_files"


def load_dag_module(path: Path) -> Any:
    """Import a DAG file (from the session dags folder) as a fresh module."""
    spec = importlib.util.spec_from_file_location(f"_test_dag_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def staged_objects(s3_client: Any, dag_id: str) -> list[str]:
    """What a DAG's runs left in the private staging bucket (real or synthetic rows staged
    between tasks): empty once every run's teardown ran."""
    from airflow_synth.local.stack import STAGING_BUCKET

    pages = s3_client.get_paginator("list_objects_v2").paginate(
        Bucket=STAGING_BUCKET, Prefix=f"runs/{dag_id}/"
    )
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))
