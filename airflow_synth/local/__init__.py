"""Embedded local stack: a real PostgreSQL 15 and a real S3 server (SeaweedFS), no Docker.

    from airflow_synth.local import LocalStack
    with LocalStack(tmp_dir) as stack:
        stack.pg.dsn("userbookings"); stack.s3.client(); stack.connection_env()

Command line: ``python -m airflow_synth.local up|down|status|env [--state-dir DIR]``, and
``dev-env|dev-shell`` (``make dev-shell``: run your own DAG files on the stack; see
:mod:`airflow_synth.local.devshell`).
Imports no Airflow, so it serves tests and scripts alike.
"""

from airflow_synth.local.postgres import LocalPostgres
from airflow_synth.local.process import LocalStackError
from airflow_synth.local.s3server import LocalS3Server
from airflow_synth.local.stack import LocalStack, default_state_dir

__all__ = [
    "LocalPostgres",
    "LocalS3Server",
    "LocalStack",
    "LocalStackError",
    "default_state_dir",
]
