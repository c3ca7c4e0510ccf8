"""Environment for running Airflow against the embedded local stack.

``make demo``, ``make airflow`` and the test suite all point Airflow at the same things:
an Airflow home (SQLite metadata DB) inside the state folder, this repository's ``dags/``
and ``sql/`` folders, a private staging folder, and the ``AIRFLOW_CONN_*`` variables of the
local PostgreSQL and S3 server. Computing that in one function keeps the three in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def project_dir() -> Path:
    """The repository root (the folder holding ``dags/`` and ``sql/``)."""
    here = Path(__file__).resolve().parents[2]
    if (here / "dags").is_dir() and (here / "sql").is_dir():
        return here
    cwd = Path.cwd()
    if (cwd / "dags").is_dir() and (cwd / "sql").is_dir():
        return cwd
    raise FileNotFoundError(
        "Cannot find the project's dags/ and sql/ folders: run this from the repository root."
    )


def airflow_environment(
    airflow_home: Path,
    connections: Mapping[str, str],
    *,
    project: Path | None = None,
    staging_dir: Path | None = None,
) -> dict[str, str]:
    """Environment variables that configure Airflow for the local stack (no I/O)."""
    project = project or project_dir()
    airflow_home = Path(airflow_home).resolve()
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "SYNTH_SQL_DIR": str(project / "sql"),
        # the UI's "Synthetic datasets" page: the bucket the ready-made DAGs publish to
        "AIRFLOW__SYNTH__AWS_CONN_ID": "synth_s3",
        "AIRFLOW__SYNTH__BUCKET": "synthetic",
        # staging: the stack's private bucket (SynthHook's default), as on a real deployment;
        # a local folder only when asked for (LocalExecutor)
        **({"SYNTH_STAGING_DIR": str(Path(staging_dir).resolve())} if staging_dir else {}),
        **dict(connections),
    }
