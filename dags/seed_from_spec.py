"""Create and seed a database from a data spec (``specs/*.yaml``).

Applies the versioned migrations the spec names, then fills its tables with generated rows
whose declared truths (rates per month, shares, children per parent) hold exactly; the
task's return value lists the rows loaded per table. A re-run with the same spec, sizes and
seed does nothing; tick *force* to reload. See "Declared-truth source data and golden
tests" in the README for the spec format.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Param, task

SPECS_DIR = os.environ.get("SYNTH_SPECS_DIR") or str(
    Path(__file__).resolve().parent.parent / "specs"
)

with DAG(
    dag_id="seed_database_from_spec",
    description="Create and seed a database from a declared-truth data spec",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "spec": Param(
            "ecommerce.yaml",
            type="string",
            title="Spec",
            description="A file in the specs folder (e.g. ecommerce.yaml, userbookings.yaml) "
            "or an absolute path.",
        ),
        "conn_id": Param(
            "shop_db", type="string", title="Postgres connection id of the target database"
        ),
        "rows": Param(
            {},
            type="object",
            title="Rows per table",
            description='Override fixed row counts, e.g. {"customers": 20000}; {} keeps the '
            "spec's sizes.",
        ),
        "seed": Param(42, type="integer", title="Random seed"),
        "force": Param(False, type="boolean", title="Reload even if already seeded"),
    },
    tags=["airflow-synth", "datagen"],
    doc_md=__doc__,
) as dag:

    @task
    def seed(params: dict | None = None) -> dict:
        from dataclasses import asdict

        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from airflow_synth.datagen import answer_key, load_spec, seed_database

        path = Path(params["spec"])
        spec = load_spec(path if path.is_absolute() else Path(SPECS_DIR) / path)
        rows = {str(k): int(v) for k, v in (params["rows"] or {}).items()}
        with PostgresHook(postgres_conn_id=params["conn_id"]).get_conn() as conn:
            result = seed_database(
                conn, spec, seed=int(params["seed"]), rows=rows, force=bool(params["force"])
            )
        for name, truth in answer_key(spec, rows=rows).items():
            print(f"declared truth {name} ({truth.kind}): {truth.overall:.6g}")
        return {**asdict(result), "migrations_applied": list(result.migrations_applied)}

    seed()
