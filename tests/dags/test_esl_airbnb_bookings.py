"""The ready-made ESL DAG end to end on the real PostgreSQL and S3 server (``dag.test()``)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from dagtest_helpers import load_dag_module, published_key, run_manifest, staged_objects

from airflow_synth.core.names import safe_key_part
from airflow_synth.core.publish.layout import DatasetLayout

pytestmark = pytest.mark.dags

BUCKET = "synthetic"
DATASET = "airbnb_bookings"
FEATURE_SQL = Path(__file__).resolve().parents[2] / "sql/features/session_features_by_user.sql"

# Postgres result type -> the Arrow type the published column must have (written
# independently of airflow_synth's own mapping, so a wrong mapping there fails here).
EXPECTED_ARROW = {
    "varchar": "string",
    "text": "string",
    "bpchar": "string",
    "int8": "int64",
    "int4": "int32",
    "float8": "double",
    "date": "date32[day]",
    "timestamp": "timestamp[us]",
    "bool": "bool",
}


def s3_json(s3_client, key: str) -> dict[str, Any]:
    return json.loads(s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def s3_table(s3_client, key: str, fmt: str = "parquet") -> pa.Table:
    body = io.BytesIO(s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    return pq.read_table(body) if fmt == "parquet" else pacsv.read_csv(body)


def real_feature_table(dsn: str) -> tuple[list[tuple[str, str]], list[tuple]]:
    """The feature query's columns (name, pg type) and rows, straight from Postgres."""
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(FEATURE_SQL.read_text())
        columns = [(d.name, conn.adapters.types.get(d.type_code).name) for d in cur.description]
        return columns, cur.fetchall()


@pytest.fixture(scope="module")
def bookings_run(seeded_source, project_dag, s3_client) -> Any:
    dag_run = project_dag("esl_airbnb_bookings").test(
        run_conf={"rows": 0, "synthesizer": "gaussian_copula", "seed": 11, "csv": True}
    )
    return dag_run


def test_the_run_succeeds(bookings_run) -> None:
    assert bookings_run.state == "success"


def test_published_table_has_the_sources_columns_types_and_row_count(
    bookings_run, s3_client, source_dsn: str
) -> None:
    manifest = run_manifest(s3_client, BUCKET, DATASET, bookings_run.run_id)
    table = s3_table(s3_client, published_key(manifest, "data.parquet"))
    columns, rows = real_feature_table(source_dsn)

    assert table.num_rows == len(rows) == manifest["rows"]
    assert table.column_names == [name for name, _ in columns]
    assert [str(f.type) for f in table.schema] == [EXPECTED_ARROW[t] for _, t in columns]
    assert [c["name"] for c in manifest["columns"]] == table.column_names
    assert manifest["source"]["rows_extracted"] == len(rows)
    assert manifest["source"]["postgres_conn_id"] == "userbookings_db"
    assert "password" not in json.dumps(manifest["source"]).lower()


def test_no_real_row_or_id_is_copied_verbatim(bookings_run, s3_client, source_dsn: str) -> None:
    manifest = run_manifest(s3_client, BUCKET, DATASET, bookings_run.run_id)
    synthetic = s3_table(s3_client, published_key(manifest, "data.parquet")).to_pylist()
    columns, real_rows = real_feature_table(source_dsn)
    names = [name for name, _ in columns]
    real_ids = {row[0] for row in real_rows}
    real_without_id = {row[1:] for row in real_rows}
    synthetic_without_id = {tuple(r[n] for n in names[1:]) for r in synthetic}

    assert not real_ids & {r["user_id"] for r in synthetic}
    assert not real_without_id & synthetic_without_id
    # and the synthetic table is not degenerate: categories and numbers vary like the real ones
    assert len({r["country_destination"] for r in synthetic}) > 3
    assert len({r["n_actions"] for r in synthetic}) > 20


def test_manifest_is_complete_and_latest_points_at_it(bookings_run, s3_client) -> None:
    layout = DatasetLayout(BUCKET, DATASET, bookings_run.run_id)
    manifest = s3_json(s3_client, layout.manifest_key)
    latest = s3_json(s3_client, layout.latest_key)
    attempt = layout.for_attempt(manifest["attempt"]["id"])

    assert latest["manifest_uri"] == manifest["manifest_uri"]
    assert latest["run_manifest_uri"] == layout.uri(layout.manifest_key)
    assert manifest["manifest_uri"] == layout.uri(attempt.attempt_manifest_key)
    assert manifest["synthesis"]["synthesizer"]["name"] == "gaussian_copula"
    assert manifest["synthesis"]["seed"] == 11
    assert manifest["versions"]["sdv"].startswith("2.")
    assert set(manifest["timings_seconds"]) >= {"extract", "fit", "sample", "load"}
    assert len(manifest["source"]["sql_sha256"]) == 64
    published = {f["name"] for f in manifest["files"]}
    assert published == {
        "data.parquet",
        "data.csv",
        "metadata.json",
        "quality.json",
        "privacy.json",
        "report.html",
    }
    assert manifest["reports"] == {
        name: layout.uri(attempt.key(name))
        for name in ("quality.json", "privacy.json", "report.html")
    }
    for entry in manifest["files"]:
        head = s3_client.head_object(Bucket=BUCKET, Key=entry["uri"].split(f"{BUCKET}/", 1)[1])
        assert head["ContentLength"] == entry["bytes"]
    model_info = s3_json(s3_client, published_key(manifest, "model.json"))
    assert model_info["versions"]["sdv"] == manifest["versions"]["sdv"]
    assert manifest["synthesis"]["model_uri"] == layout.uri(attempt.model_key)
    # the model, its record for the next run's reuse decision and the reusable table model
    assert {f["name"] for f in manifest["model"]["files"]} == {
        "model.pkl",
        "model.json",
        "fingerprint.json",
        "table_model.pkl",
    }
    # an on-demand run trains: reuse is the nightly DAG's
    assert manifest["synthesis"]["model_reuse"]["decision"] == "retrained"
    assert manifest["synthesis"]["model_reuse"]["reason"] == "retrained: reuse_model is off"


def test_csv_copy_matches_the_parquet(bookings_run, s3_client) -> None:
    manifest = run_manifest(s3_client, BUCKET, DATASET, bookings_run.run_id)
    parquet = s3_table(s3_client, published_key(manifest, "data.parquet"))
    csv = s3_table(s3_client, published_key(manifest, "data.csv"), fmt="csv")
    assert csv.num_rows == parquet.num_rows
    assert csv.column_names == parquet.column_names
    assert csv.column("user_id").to_pylist() == parquet.column("user_id").to_pylist()


def test_published_metadata_reveals_no_real_extremes(bookings_run, s3_client) -> None:
    manifest = run_manifest(s3_client, BUCKET, DATASET, bookings_run.run_id)
    metadata = s3_json(s3_client, published_key(manifest, "metadata.json"))
    columns = metadata["tables"][DATASET]["columns"]
    assert "user_id" not in columns  # the key is issued fresh, never modelled
    roles = {r["name"]: r for r in metadata["columns_roles"]}
    assert roles["user_id"]["role"] == "key" and roles["age"]["role"] == "modelled"
    text = json.dumps(metadata)
    assert "range_min" not in text and "range_values" not in text


def test_staged_real_rows_are_gone_after_the_run(bookings_run, s3_client) -> None:
    assert staged_objects(s3_client, "esl_airbnb_bookings") == []


def test_tasks_hand_rows_on_through_the_private_staging_bucket(bookings_run) -> None:
    """No step assumes it runs where the previous one ran: XComs name staged objects in the
    private staging bucket (never a worker's local path), and never the published bucket."""
    ti = next(t for t in bookings_run.get_task_instances() if t.task_id == "esl.extract")
    extract = ti.xcom_pull(task_ids="esl.extract")
    synthesis = ti.xcom_pull(task_ids="esl.assess")
    run = safe_key_part(bookings_run.run_id)
    prefix = f"s3://synthetic-staging/runs/esl_airbnb_bookings/{run}/"
    assert extract["staging_uri"].startswith(prefix)
    assert synthesis["synthetic_uri"].startswith(prefix)
    assert all(uri.startswith(prefix) for uri in synthesis["report_uris"].values())
    # the model waits for the publish step in private staging too, never in the bucket
    assert set(synthesis["model_files"]) == {
        "model.pkl",
        "model.json",
        "fingerprint.json",
        "table_model.pkl",
    }
    assert all(uri.startswith(prefix) for uri in synthesis["model_files"].values())
    assert "file://" not in json.dumps([extract, synthesis])


def test_rows_param_controls_the_published_row_count(seeded_source, project_dag, s3_client) -> None:
    dag_run = project_dag("esl_airbnb_bookings").test(
        run_conf={"rows": 123, "seed": 1, "min_dependence": None}
    )  # 123 rows are too few to measure dependence: a user must waive it, as here
    assert dag_run.state == "success"
    layout = DatasetLayout(BUCKET, DATASET, dag_run.run_id)
    manifest = run_manifest(s3_client, BUCKET, DATASET, dag_run.run_id)
    assert s3_table(s3_client, published_key(manifest, "data.parquet")).num_rows == 123
    assert s3_json(s3_client, layout.latest_key)["run"] == layout.run


def test_reports_are_published_with_scores_that_passed_the_gates(bookings_run, s3_client) -> None:
    manifest = run_manifest(s3_client, BUCKET, DATASET, bookings_run.run_id)
    quality = s3_json(s3_client, published_key(manifest, "quality.json"))
    privacy = s3_json(s3_client, published_key(manifest, "privacy.json"))
    synthesis = manifest["synthesis"]

    assert 0.7 <= quality["score"] <= 1 and quality["score"] == synthesis["scores"]["quality_score"]
    assert len(quality["worst_columns"]) == 5
    assert privacy["exact_match_rate"] <= 0.01
    assert 0.3 < privacy["dcr_share"] <= 0.6
    assert privacy["rows"]["holdout"] == synthesis["holdout_rows"] > 0
    assert (
        synthesis["training_rows"] + synthesis["holdout_rows"]
        == manifest["source"]["rows_extracted"]
    )
    assert {g["metric"] for g in synthesis["gates"]} == {
        "quality_score",
        "dependence_preservation",
        "exact_match_rate",
        "near_copy_rate",
        "dcr_share",
        "filtered_share",
        "rules_held",
        "pii_leak",
    }
    assert all(g["passed"] for g in synthesis["gates"])
    assert set(synthesis["filters"]) == {"similarity", "outlier"}
    html = s3_client.get_object(Bucket=BUCKET, Key=published_key(manifest, "report.html"))[
        "Body"
    ].read()
    assert html.startswith(b"<!DOCTYPE html>") and b"dcr_share" in html.lower().replace(b" ", b"_")


def test_load_task_records_the_report_for_the_extra_link(bookings_run, s3_client) -> None:
    ti = next(t for t in bookings_run.get_task_instances() if t.task_id == "esl.load")
    value = ti.xcom_pull(task_ids="esl.load")
    manifest = run_manifest(s3_client, BUCKET, DATASET, bookings_run.run_id)
    assert value["report_uri"] == manifest["reports"]["report.html"]
    assert value["manifest_uri"] == manifest["manifest_uri"]
    assert value["aws_conn_id"] == "synth_s3"


def test_health_dag_passes_on_a_fresh_dataset_and_alerts_on_a_stale_one(
    bookings_run, dags_folder: Path, capfd
) -> None:
    dags = load_dag_module(dags_folder / "esl_airbnb_bookings.py")
    fresh = dags.health_dag.test(run_conf={"max_age_hours": 26, "max_quality_drop": 1.0})
    assert fresh.state == "success"
    capfd.readouterr()
    stale = dags.health_dag.test(run_conf={"max_age_hours": 0, "max_quality_drop": 1.0})
    assert stale.state == "failed"
    assert "older than the limit of 0.0 h" in "".join(capfd.readouterr())


def test_dry_run_trains_and_reports_but_publishes_nothing(seeded_source, project_dag, s3_client):
    dag_run = project_dag("esl_airbnb_bookings").test(
        run_conf={"dry_run": True, "rows": 5000, "min_quality": 0.999}
    )
    assert dag_run.state == "success"  # a missed gate is reported, not enforced
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states["esl.assess"] == "success" and states["esl.load"] == "skipped"
    synthesis = next(
        ti for ti in dag_run.get_task_instances() if ti.task_id == "esl.assess"
    ).xcom_pull(task_ids="esl.assess")
    assert synthesis["rows"] <= 1_000  # capped at the dry-run size
    assert synthesis["model_files"] == {}  # a dry run keeps no model
    assert not next(g for g in synthesis["gates"] if g["metric"] == "quality_score")["passed"]
    layout = DatasetLayout(BUCKET, DATASET, dag_run.run_id)
    for prefix in (layout.run_prefix, layout.models_run_prefix):
        assert s3_client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("KeyCount", 0) == 0
