"""The stress schema end to end with the per-table engine: Postgres -> synthesize -> S3 ->
a target schema that declares every key and foreign key, so PostgreSQL itself proves the
synthetic set's integrity (composite keys, a composite foreign key, a link table, a
self-reference, an optional parent, depth 4, 11 tables).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagtest_helpers import load_dag_module, published_key, run_manifest

from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.datagen import integrity_problems, load_spec, seed_database

pytestmark = pytest.mark.dags

REPO = Path(__file__).resolve().parents[2]
SPEC = load_spec(REPO / "specs" / "stress.yaml")
BUCKET = "synthetic"
TARGET_SCHEMA = "stress_synthetic"


@pytest.fixture(scope="module")
def stress_source(local_stack) -> Any:
    """The stress spec seeded into its own database, reachable as connection ``stress_src``."""
    name = f"stress_{uuid.uuid4().hex[:8]}"
    local_stack.pg.create_database(name)
    dsn = local_stack.pg.dsn(name)
    with psycopg.connect(dsn) as conn:
        seed_database(conn, SPEC, seed=3)
    os.environ["AIRFLOW_CONN_STRESS_SRC"] = dsn
    yield dsn
    os.environ.pop("AIRFLOW_CONN_STRESS_SRC", None)
    local_stack.pg.drop_database(name)


@pytest.fixture(scope="module")
def stress_run(stress_source, seeded_source, dags_folder: Path) -> Any:
    module = load_dag_module(dags_folder / "stress_dags.py")
    return module.stress_dag.test()


@pytest.fixture(scope="module")
def target_dsn(local_stack) -> str:
    return local_stack.connection_env()["AIRFLOW_CONN_SYNTH_TARGET_DB"]


def read_schema(dsn: str, schema: str, tables: list[str]) -> dict[str, Any]:
    import pandas as pd

    frames = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{schema}"."{table}"')
            frames[table] = pd.DataFrame(
                cursor.fetchall(), columns=[c.name for c in cursor.description]
            )
    return frames


def test_every_task_succeeds(stress_run) -> None:
    states = {ti.task_id: ti.state for ti in stress_run.get_task_instances()}
    assert stress_run.state == "success", states
    assert set(states.values()) == {"success"}


def test_postgres_holds_every_declared_key_of_the_synthetic_set(stress_run, target_dsn) -> None:
    """The target load declares each primary and foreign key; a violation would have failed
    the load. Check they are really there, composite ones included."""
    with psycopg.connect(target_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.relname, con.contype, array_length(con.conkey, 1) "
            "FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND con.contype IN ('p', 'f')",
            (TARGET_SCHEMA,),
        ).fetchall()
    keys = {(table, kind, width) for table, kind, width in rows}
    assert ("lineitem", "p", 2) in keys  # (order_id, line_number)
    assert ("partsupp", "p", 2) in keys  # the link table
    assert ("lineitem", "f", 2) in keys  # (part_id, supplier_id) -> partsupp
    assert ("employees", "f", 1) in keys  # the self-reference


def test_the_synthetic_set_keeps_every_shape_of_the_spec(stress_run, target_dsn) -> None:
    tables = list(SPEC.tables)
    frames = read_schema(target_dsn, TARGET_SCHEMA, tables)
    assert integrity_problems(SPEC, frames) == []
    assert frames["employees"]["manager_id"].isna().sum() >= 1
    assert 0 < frames["orders"]["clerk_id"].isna().mean() < 1


def test_sizes_follow_the_real_tables(stress_run, stress_source, target_dsn, s3_client) -> None:
    layout = DatasetLayout(BUCKET, "stress_set", stress_run.run_id)
    manifest = json.loads(
        s3_client.get_object(Bucket=BUCKET, Key=layout.manifest_key)["Body"].read()
    )
    assert manifest["synthesis"]["synthesizer"]["name"] == "per_table"
    real = manifest["source"]["tables"]
    for name, table in manifest["tables"].items():
        assert abs(table["rows"] / real[name]["rows"] - 1) < 0.25, name


def test_dates_after_their_parents_dates_hold_across_the_joins(stress_run, s3_client) -> None:
    """The spec's orders come after their customer's sign-up and lines ship after their
    order: discovered on the real tables, held on every synthetic row, reported."""
    manifest = run_manifest(s3_client, BUCKET, "stress_set", stress_run.run_id)
    quality = json.loads(
        s3_client.get_object(Bucket=BUCKET, Key=published_key(manifest, "quality.json"))[
            "Body"
        ].read()
    )
    rules = quality["cross_table_rules"]
    assert rules["count"] >= 2 and rules["held"] == 1.0, rules
    names = {(r["relationship"], r["child_column"], r["parent_column"]) for r in rules["rules"]}
    assert any(rel.startswith("orders.customer_id") for rel, _, _ in names), names
    assert quality["children_per_parent"]["relationships"]
    assert quality["integrity"]["passed"] is True
