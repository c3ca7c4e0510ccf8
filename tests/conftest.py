"""Shared pytest setup for the whole suite.

Sections:
  0. Airflow environment: one Airflow home per session, set before anything imports Airflow.
  1. Marker policy: every test is `unit`, `integration` or `dags`, or collection fails.
  2. Local stack: one real PostgreSQL + one real S3 server per test session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.client import BaseClient

from airflow_synth.demo.environment import airflow_environment
from airflow_synth.local import LocalStack

# --------------------------------------------------------------------------------------------
# 0. Airflow environment (module level: must happen before the first `import airflow`)
# --------------------------------------------------------------------------------------------
PROJECT = Path(__file__).resolve().parents[1]
SESSION_ROOT = Path(tempfile.mkdtemp(prefix="airflow-synth-tests-"))
SESSION_DAGS = SESSION_ROOT / "dags"


def _session_dags_folder() -> Path:
    """The ready-made DAGs plus the tests' own DAG files, linked into one dags folder."""
    SESSION_DAGS.mkdir()
    sources = [*sorted((PROJECT / "dags").glob("*.py"))]
    sources += sorted((PROJECT / "tests" / "dags" / "dag_files").glob("*.py"))
    for source in sources:
        (SESSION_DAGS / source.name).symlink_to(source)
    return SESSION_DAGS


os.environ.update(airflow_environment(SESSION_ROOT / "airflow", {}, project=PROJECT))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_session_dags_folder())
os.environ["SYNTH_TEST_SQL_DIR"] = str(PROJECT / "tests" / "dags" / "sql")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("SYNTH_KEEP_TEST_HOME"):  # debugging: keep Airflow logs and staging
        print(f"\nkept the session's Airflow home and staging under {SESSION_ROOT}")
        return
    shutil.rmtree(SESSION_ROOT, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# 1. Marker policy
# --------------------------------------------------------------------------------------------
TEST_KINDS = ("unit", "integration", "dags")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fail collection when a test has no kind marker, so none silently escapes the split."""
    unmarked = [
        item.nodeid
        for item in items
        if not any(item.get_closest_marker(kind) for kind in TEST_KINDS)
    ]
    if unmarked:
        raise pytest.UsageError(
            f"tests without one of the markers {', '.join(TEST_KINDS)} "
            "(set a module-level `pytestmark = pytest.mark.<kind>`):\n  " + "\n  ".join(unmarked)
        )


# --------------------------------------------------------------------------------------------
# 2. Local stack (real PostgreSQL 15 + SeaweedFS S3), shared by the session
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A started LocalStack in a temp dir; stopped and deleted at session end, even on failure."""
    stack = LocalStack(tmp_path_factory.mktemp("local-stack"))
    try:
        stack.start()
        yield stack
    finally:
        stack.destroy()


@pytest.fixture(scope="session")
def source_dsn(local_stack: LocalStack) -> str:
    """DSN of the `userbookings` database (created empty by the stack)."""
    return local_stack.pg.dsn(LocalStack.DATABASE)


@pytest.fixture(scope="session")
def s3_client(local_stack: LocalStack) -> BaseClient:
    """boto3 S3 client for the session's server; bucket `synthetic` exists."""
    return local_stack.s3.client()
