"""Fixtures for DAG tests: one Airflow home per session, wired to the session's local stack.

The Airflow environment itself is set in the root conftest (before anything imports
Airflow); here the metadata DB is migrated once, the connections of the real PostgreSQL
and S3 server are exported, and the demo source database is seeded through our own
``seed_userbookings_db`` DAG.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dagtest_helpers import load_dag_module

from airflow_synth.local import LocalStack

#: Small demo source: big enough for SDV to learn something, small enough for ~2 s fits.
SOURCE_USERS = 1_000
SOURCE_SESSIONS_PER_USER = 15
SOURCE_SEED = 7


@pytest.fixture(scope="session")
def airflow_home(local_stack: LocalStack) -> Path:
    """A migrated Airflow home whose connections point at the session's real servers."""
    os.environ.update(local_stack.connection_env())
    wrong = local_stack.connection_env()["AIRFLOW_CONN_SYNTH_S3"].replace(
        "minioadmin:minioadmin", "minioadmin:not-the-secret"
    )
    os.environ["AIRFLOW_CONN_SYNTH_S3_WRONG_SECRET"] = wrong
    home = Path(os.environ["AIRFLOW_HOME"])
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    return home


@pytest.fixture(scope="session")
def dags_folder(airflow_home: Path) -> Path:
    return Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


@pytest.fixture(scope="session")
def project_dag(dags_folder: Path):
    """Load one of the ready-made DAGs by id (as Airflow would, from the dags folder)."""

    def load(dag_id: str) -> Any:
        return load_dag_module(dags_folder / f"{dag_id}.py").dag

    return load


@pytest.fixture(scope="session")
def seeded_source(airflow_home: Path, project_dag) -> Any:
    """The ``userbookings`` database migrated and seeded by the ``seed_userbookings_db`` DAG."""
    dag_run = project_dag("seed_userbookings_db").test(
        run_conf={
            "users": SOURCE_USERS,
            "avg_sessions_per_user": SOURCE_SESSIONS_PER_USER,
            "seed": SOURCE_SEED,
            "force": True,
        }
    )
    assert dag_run.state == "success", "seeding the demo source DB through its DAG failed"
    return dag_run
