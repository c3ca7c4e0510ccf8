"""The embedded local stack: one PostgreSQL and one S3 server sharing a state folder.

Used by ``make demo``, ``make airflow`` and the integration tests, so that everything runs
against real servers without Docker. ``start()`` also creates what the project's pipelines
expect: the source database ``userbookings``, the bucket ``synthetic`` and the database
``synthetic_staging`` (a stand-in for a test/staging environment that multi-table runs
can load their synthetic sets into).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

from airflow_synth.local.ports import state_path
from airflow_synth.local.postgres import LocalPostgres
from airflow_synth.local.s3server import DEFAULT_REGION, LocalS3Server

logger = logging.getLogger(__name__)

SOURCE_DATABASE = "userbookings"
TARGET_DATABASE = "synthetic_staging"
TARGET_CONN_ENV = "AIRFLOW_CONN_SYNTH_TARGET_DB"
BUCKET = "synthetic"
#: The private bucket real rows are staged in between the tasks of a run (SynthHook's
#: default staging for the bucket above), with a lifecycle rule as the teardown's backstop.
STAGING_BUCKET = f"{BUCKET}-staging"
POSTGRES_CONN_ENV = "AIRFLOW_CONN_USERBOOKINGS_DB"
S3_CONN_ENV = "AIRFLOW_CONN_SYNTH_S3"
STATE_DIR_ENV = "SYNTH_LOCAL_DIR"


def default_state_dir() -> Path:
    """``$SYNTH_LOCAL_DIR``, else ``<repo>/.local`` for a source checkout, else ``./.local``."""
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():
        return repo / ".local"
    return Path.cwd() / ".local"


class LocalStack:
    """PostgreSQL + S3 under one state dir; a context manager that starts and stops both."""

    DATABASE = SOURCE_DATABASE
    BUCKET = BUCKET
    STAGING_BUCKET = STAGING_BUCKET

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        access_key: str = "minioadmin",
        secret_key: str = "minioadmin",
        region: str = DEFAULT_REGION,
    ) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self.state_dir = self.state_dir.expanduser().resolve()
        self.pg = LocalPostgres(self.state_dir)
        self.s3 = LocalS3Server(
            self.state_dir, access_key=access_key, secret_key=secret_key, region=region
        )

    @property
    def state_file(self) -> Path:
        return state_path(self.state_dir)

    def start(self) -> None:
        """Start both servers (each a no-op if it already runs), then the database and bucket.

        If the S3 server fails, a PostgreSQL started by this very call is stopped again, so a
        failed ``start()`` leaves nothing new running.
        """
        began = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        pg_was_running = self.pg.is_running()
        self.pg.start()
        try:
            self.s3.start()
            self.pg.create_database(self.DATABASE)
            self.pg.create_database(TARGET_DATABASE)
            self.s3.create_bucket(self.BUCKET)
            self.s3.create_bucket(self.STAGING_BUCKET)
            self.s3.expire_objects(self.STAGING_BUCKET, days=1)
        except BaseException:
            if not pg_was_running:
                self.pg.stop()
            raise
        logger.info(
            "local stack ready in %.1fs (state: %s)", time.monotonic() - began, self.state_file
        )

    def stop(self) -> None:
        """Stop both servers; data stays in the state dir. Both are tried even if one fails."""
        try:
            self.s3.stop()
        finally:
            self.pg.stop()

    def destroy(self) -> None:
        """Stop both servers and delete their data (including a PostgreSQL cluster in /tmp)."""
        try:
            self.s3.destroy()
        finally:
            self.pg.destroy()

    def is_running(self) -> bool:
        return self.pg.is_running() and self.s3.is_running()

    def status(self) -> dict[str, Any]:
        """What runs where, for ``python -m airflow_synth.local status`` and for tests."""
        pg_running, s3_running = self.pg.is_running(), self.s3.is_running()
        return {
            "state_dir": str(self.state_dir),
            "postgres": {
                "running": pg_running,
                "pid": self.pg.pid if pg_running else None,
                "port": self.pg.port,
                "cluster_dir": str(self.pg.cluster_dir) if self.pg.cluster_dir else None,
            },
            "s3": {
                "running": s3_running,
                "pid": self.s3.pid if s3_running else None,
                "port": self.s3.port,
                "data_dir": str(self.s3.data_dir),
                "log": str(self.s3.log_path),
            },
        }

    def connection_env(self) -> dict[str, str]:
        """``AIRFLOW_CONN_*`` variables that point Airflow at this stack."""
        s3 = self.s3
        query = urlencode({"endpoint_url": s3.endpoint_url, "region_name": s3.region})
        return {
            POSTGRES_CONN_ENV: self.pg.dsn(self.DATABASE),
            TARGET_CONN_ENV: self.pg.dsn(TARGET_DATABASE),
            S3_CONN_ENV: (
                f"aws://{quote(s3.access_key, safe='')}:{quote(s3.secret_key, safe='')}@/?{query}"
            ),
        }

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
