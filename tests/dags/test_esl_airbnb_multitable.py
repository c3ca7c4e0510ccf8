"""The multi-table DAG end to end on the real PostgreSQL and S3 server (``dag.test()``).

Checks what a consumer relies on: both tables published under one manifest, every synthetic
foreign key pointing at a synthetic parent, cardinality near the real one (the whole
children-per-parent histogram), a full-size set from per-table training splits (the
default engine) and SDV's HMA on a subset when asked, the optional load into a target
database (FKs enforced by Postgres, a re-run replacing the previous load), staged real rows
gone, and bad input (cycles, parents without keys, orphans, a wrong relationship) failing
before anything is published.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from dagtest_helpers import load_dag_module, published_key, staged_objects

from airflow_synth.core.publish.layout import DatasetLayout

pytestmark = pytest.mark.dags

BUCKET = "synthetic"
DATASET = "airbnb_multitable"
TARGET_SCHEMA = "airbnb_synthetic_test"


def s3_json(s3_client, key: str) -> dict[str, Any]:
    return json.loads(s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def s3_frame(s3_client, key: str):
    body = s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body)).to_pandas()


@pytest.fixture(scope="module")
def target_dsn(local_stack) -> str:
    return local_stack.connection_env()["AIRFLOW_CONN_SYNTH_TARGET_DB"]


@pytest.fixture(scope="module")
def multitable_run(seeded_source, project_dag, s3_client) -> Any:
    return project_dag("esl_airbnb_multitable").test(
        run_conf={  # the default engine (per_table), full size
            "seed": 5,
            # the users table's few columns keep too little dependence to gate on: waived
            "min_dependence": None,
            "load_to_target": True,
            "target_schema": TARGET_SCHEMA,
        }
    )


@pytest.fixture(scope="module")
def manifest(multitable_run, s3_client) -> dict[str, Any]:
    layout = DatasetLayout(BUCKET, DATASET, multitable_run.run_id)
    return s3_json(s3_client, layout.manifest_key)


def test_the_run_succeeds_with_every_task(multitable_run) -> None:
    states = {ti.task_id: ti.state for ti in multitable_run.get_task_instances()}
    assert multitable_run.state == "success", states
    assert states == {
        "esl.extract": "success",
        "esl.extract_table": "success",  # one mapped task per table
        "esl.collect": "success",
        "esl.prepare": "success",
        "esl.fit": "success",  # one mapped task per table
        "esl.synthesize": "success",
        "esl.publish": "success",
        "esl.load_target": "success",
        "esl.cleanup_staging": "success",
    }


def test_one_manifest_names_both_tables_their_keys_and_the_catalog_relationship(
    manifest, multitable_run
) -> None:
    assert manifest["kind"] == "multi_table"
    assert manifest["load_order"] == ["users", "sessions"]
    assert manifest["relationships"] == [
        {
            "parent": "users",
            "parent_key": ["id"],
            "child": "sessions",
            "child_key": ["user_id"],
            "source": "catalog",
        }
    ]
    assert manifest["tables"]["users"]["primary_key"] == ["id"]
    assert manifest["tables"]["sessions"]["primary_key"] == []
    published = {f["name"] for f in manifest["files"]}
    assert {"tables/users.parquet", "tables/sessions.parquet", "quality.json"} <= published
    assert {"reports/users/privacy.json", "reports/sessions/privacy.json"} <= published
    assert manifest["rows"] == sum(t["rows"] for t in manifest["tables"].values())


def test_every_synthetic_session_points_at_a_synthetic_user(manifest, s3_client) -> None:
    users = s3_frame(s3_client, published_key(manifest, "tables/users.parquet"))
    sessions = s3_frame(s3_client, published_key(manifest, "tables/sessions.parquet"))
    assert len(users) == manifest["tables"]["users"]["rows"] > 0
    assert len(sessions) == manifest["tables"]["sessions"]["rows"] > 0
    assert users["id"].is_unique and users["id"].notna().all()
    assert sessions["user_id"].notna().all()
    assert sessions["user_id"].isin(set(users["id"])).all()
    quality = s3_json(s3_client, published_key(manifest, "quality.json"))
    assert quality["integrity"]["score"] == 1.0 and quality["integrity"]["passed"] is True


def test_each_table_trained_on_its_own_split_and_the_set_is_full_size(
    manifest, source_dsn: str
) -> None:
    split = manifest["synthesis"]["subset"]
    with psycopg.connect(source_dsn) as conn:
        real_users = conn.execute("SELECT count(*) FROM users").fetchone()[0]
        real_sessions = conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
    assert split["engine"] == manifest["synthesis"]["synthesizer"]["name"] == "per_table"
    users, sessions = split["tables"]["users"], split["tables"]["sessions"]
    assert users["real_rows"] == real_users and sessions["real_rows"] == real_sessions
    assert users["training_rows"] + users["holdout_rows"] == real_users
    assert 0 < users["holdout_rows"] < real_users / 2
    assert sessions["owner"] == "sessions.user_id -> users.id"
    # full size: as many users as real, sessions per user learned (about the real total)
    assert manifest["tables"]["users"]["rows"] == real_users
    assert 0.75 <= manifest["tables"]["sessions"]["rows"] / real_sessions <= 1.25


def test_cardinality_follows_the_real_data(manifest, s3_client) -> None:
    quality = s3_json(s3_client, published_key(manifest, "quality.json"))
    (card,) = quality["cardinality"]
    real, synthetic = card["real"], card["synthetic"]
    assert 0.75 * real["mean"] <= synthetic["mean"] <= 1.25 * real["mean"]
    # the whole histogram, zero-session users included (0 = identical, 1 = disjoint)
    assert quality["children_per_parent"]["distance"] < 0.3
    gates = {g["metric"]: g["passed"] for g in manifest["synthesis"]["gates"]}
    assert gates["referential_integrity"] and gates["quality_score"]
    assert {"users.dcr_share", "sessions.dcr_share", "sessions.exact_match_rate"} <= set(gates)
    assert manifest["reports"]["reports/report.html"].endswith("/reports/report.html")


def test_the_set_is_loaded_into_the_target_with_enforced_foreign_keys(
    manifest, target_dsn: str
) -> None:
    with psycopg.connect(target_dsn) as conn:
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {TARGET_SCHEMA}.{table}").fetchone()[0]
            for table in ("users", "sessions")
        }
        fks = conn.execute(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f' AND connamespace = %s::regnamespace",
            (TARGET_SCHEMA,),
        ).fetchall()
        loads = conn.execute(
            f"SELECT source->>'manifest' FROM {TARGET_SCHEMA}._synth_loads ORDER BY loaded_at"
        ).fetchall()
    assert counts == {name: t["rows"] for name, t in manifest["tables"].items()}
    assert fks == [(f"{TARGET_SCHEMA}.sessions", f"{TARGET_SCHEMA}.users")]
    assert loads[-1][0].endswith(f"/{manifest['run']}/manifest.json")


def test_a_rerun_replaces_the_previous_load(multitable_run, project_dag, target_dsn) -> None:
    again = project_dag("esl_airbnb_multitable").test(
        run_conf={  # SDV's HMA stays selectable: a 60-user subset
            "engine": "hma",
            "max_parents": 60,
            "seed": 6,
            "min_dependence": None,
            "load_to_target": True,
            "target_schema": TARGET_SCHEMA,
        }
    )
    assert again.state == "success"
    with psycopg.connect(target_dsn) as conn:
        users = conn.execute(f"SELECT count(*) FROM {TARGET_SCHEMA}.users").fetchone()[0]
        orphans = conn.execute(
            f"SELECT count(*) FROM {TARGET_SCHEMA}.sessions s "
            f"LEFT JOIN {TARGET_SCHEMA}.users u ON u.id = s.user_id WHERE u.id IS NULL"
        ).fetchone()[0]
    assert users == 60 and orphans == 0


def test_staged_real_rows_are_removed(multitable_run, s3_client) -> None:
    assert staged_objects(s3_client, "esl_airbnb_multitable") == []


# ------------------------------------------------------------------------------- bad input

BAD_EXPECTED = {
    "cyclic_fks": ("extract", ["form a cycle", "cyc_a -> cyc_b -> cyc_a"]),
    "parent_without_pk": ("extract", ["'nopk_parent' is a parent", "has no primary key"]),
    "many_orphans": (
        "prepare",
        ["orph_child.parent_id -> orph_parent.id does not match the data", "(30.0%)"],
    ),
    "mismatched_relationship": (
        "prepare",
        ["sessions.action -> users.id does not match the data", "(100.0%)"],
    ),
}


@pytest.fixture(scope="module")
def bad_schema(seeded_source, source_dsn: str) -> None:
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute(
            """
            DROP SCHEMA IF EXISTS mt_bad CASCADE;
            CREATE SCHEMA mt_bad;
            CREATE TABLE mt_bad.cyc_a (id int PRIMARY KEY, b_id int, v text);
            CREATE TABLE mt_bad.cyc_b (id int PRIMARY KEY, a_id int REFERENCES mt_bad.cyc_a);
            ALTER TABLE mt_bad.cyc_a ADD FOREIGN KEY (b_id) REFERENCES mt_bad.cyc_b;
            CREATE TABLE mt_bad.nopk_parent (id int, v text);
            CREATE TABLE mt_bad.nopk_child (parent_id int, w double precision);
            INSERT INTO mt_bad.nopk_parent SELECT g, 'x' || g FROM generate_series(1, 50) g;
            INSERT INTO mt_bad.nopk_child SELECT 1 + g % 50, g FROM generate_series(1, 200) g;
            CREATE TABLE mt_bad.orph_parent (id int PRIMARY KEY, v text);
            CREATE TABLE mt_bad.orph_child (id int PRIMARY KEY, parent_id int, w double precision);
            INSERT INTO mt_bad.orph_parent SELECT g, 'p' || g FROM generate_series(1, 100) g;
            -- 300 of 1000 child rows point at ids 1001+ (no such parent)
            INSERT INTO mt_bad.orph_child
                SELECT g, CASE WHEN g <= 300 THEN 1000 + g ELSE 1 + g % 100 END, g
                FROM generate_series(1, 1000) g;
            INSERT INTO mt_bad.cyc_a VALUES (1, NULL, 'a');
            INSERT INTO mt_bad.cyc_b VALUES (1, 1);
            """
        )


@pytest.fixture(scope="module")
def bad_dags(bad_schema, dags_folder: Path):
    return load_dag_module(dags_folder / "multitable_bad_dags.py")


def test_every_bad_multitable_case_is_covered(bad_dags) -> None:
    assert set(bad_dags.CASES) == set(BAD_EXPECTED)


@pytest.mark.parametrize("case", sorted(BAD_EXPECTED))
def test_bad_multitable_input_fails_clearly_and_publishes_nothing(
    case, bad_dags, s3_client, capfd
) -> None:
    failing_task, phrases = BAD_EXPECTED[case]
    dag_run = getattr(bad_dags, f"dag_{case}").test()
    output = "".join(capfd.readouterr())

    assert dag_run.state == "failed"
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states[f"esl.{failing_task}"] == "failed"
    assert states["esl.publish"] in ("upstream_failed", "failed")
    # the teardown runs when the extract (its setup) succeeded; otherwise the extract itself
    # removed what it had staged
    assert states["esl.cleanup_staging"] == (
        "success" if failing_task != "extract" else "upstream_failed"
    )
    for phrase in phrases:
        assert phrase in output, f"{phrase!r} missing from the task error"
    for prefix in (f"mt_bad_{case}/", f"_models/mt_bad_{case}/"):
        listed = s3_client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        assert listed.get("KeyCount", 0) == 0, f"a failed run left objects under {prefix}"
    assert staged_objects(s3_client, f"mt_bad_{case}") == [], "staged rows were left behind"
