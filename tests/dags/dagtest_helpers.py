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
