"""(Re)create and seed the demo source database ``userbookings``.

Applies the versioned migrations in ``sql/migrations`` (a re-run applies nothing) and
fills ``users`` and ``sessions`` with generated Airbnb-like data (a re-run with the same
settings does nothing; tick *force* to reload). Uses the ``userbookings_db`` connection.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Param, task

SQL_DIR = os.environ.get("SYNTH_SQL_DIR") or str(Path(__file__).resolve().parent.parent / "sql")
CONN_ID = "userbookings_db"

with DAG(
    dag_id="seed_userbookings_db",
    description="Create and seed the demo source database (users, sessions)",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "users": Param(10_000, type="integer", minimum=1, title="Users"),
        "avg_sessions_per_user": Param(
            100, type="number", minimum=0, title="Average sessions per user"
        ),
        "seed": Param(42, type="integer", title="Random seed"),
        "force": Param(False, type="boolean", title="Reload even if already seeded"),
    },
    tags=["airflow-synth", "demo"],
    doc_md=__doc__,
) as dag:

    @task
    def apply_migrations(params: dict | None = None) -> list[str]:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from airflow_synth.demo.migrations import apply_migrations as apply

        with PostgresHook(postgres_conn_id=CONN_ID).get_conn() as conn:
            return apply(conn, Path(SQL_DIR) / "migrations")

    @task
    def seed(params: dict | None = None) -> dict:
        from dataclasses import asdict

        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from airflow_synth.demo.seed import seed_demo_database

        with PostgresHook(postgres_conn_id=CONN_ID).get_conn() as conn:
            result = seed_demo_database(
                conn,
                n_users=int(params["users"]),
                avg_sessions_per_user=float(params["avg_sessions_per_user"]),
                seed=int(params["seed"]),
                force=bool(params["force"]),
            )
        return asdict(result)

    apply_migrations() >> seed()
