"""Nightly model reuse end to end: the nightly chain (``esl_dag`` with ``reuse_model`` on)
runs four times under ``dag.test()`` on the session's real PostgreSQL and S3 server.

1. no earlier model: trains, publishes the model with its ``fingerprint.json``;
2. 20 new source rows (drift ~0.02): reuses the model (no fit: ``fit_seconds`` 0), the
   gates pass on today's rows and the run republishes the model with its training time;
3. ``max_model_age_hours`` 0: the model is too old, retrains;
4. a source column shifted: retrains, naming the drift and the column.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import psycopg
import pytest
from dagtest_helpers import published_key, run_manifest

pytestmark = pytest.mark.dags

BUCKET = "synthetic"
DATASET = "reuse_nightly"
ROWS = 800


def _rows(count: int, seed: int, first_id: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    nights = rng.gamma(2.0, 2.0, count).round(2)
    countries = rng.choice(["US", "FR", "DE", "IT"], count, p=[0.4, 0.3, 0.2, 0.1])
    spend = (nights * 80 + rng.normal(0, 20, count)).round(2)
    stays = rng.poisson(3, count)
    return [
        (first_id + i, float(nights[i]), str(countries[i]), float(spend[i]), int(stays[i]))
        for i in range(count)
    ]


def _execute(dsn: str, sql: str, rows: list[tuple] | None = None) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        if rows is None:
            cur.execute(sql)
        else:
            cur.executemany(sql, rows)


INSERT = "INSERT INTO reuse_nightly_source VALUES (%s, %s, %s, %s, %s)"


@pytest.fixture(scope="module")
def source(airflow_home, source_dsn: str) -> str:
    _execute(
        source_dsn,
        "DROP TABLE IF EXISTS reuse_nightly_source; CREATE TABLE reuse_nightly_source "
        "(guest_id bigint PRIMARY KEY, nights float8, country text, spend float8, stays int4)",
    )
    _execute(source_dsn, INSERT, _rows(ROWS, seed=1, first_id=1_000_000))
    return source_dsn


def _model_file(s3_client: Any, manifest: dict[str, Any], name: str) -> bytes:
    key = published_key(manifest, name)
    return s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def nights(source: str, project_dag, s3_client) -> list[dict[str, Any]]:
    """The four runs' (run, manifest) in order; the source changed between them."""
    dag = project_dag("reuse_dags")
    manifests = []

    def night(**conf: Any) -> dict[str, Any]:
        run = dag.test(run_conf=conf)
        assert run.state == "success", f"run {len(manifests) + 1} failed"
        manifest = run_manifest(s3_client, BUCKET, DATASET, run.run_id)
        manifests.append(manifest)
        return manifest

    night()
    _execute(source, INSERT, _rows(20, seed=2, first_id=2_000_000))  # 20 new guests
    night()
    night(max_model_age_hours=0)
    _execute(source, "UPDATE reuse_nightly_source SET nights = nights + 6")
    night(max_model_age_hours=168)  # dag.test() keeps the last run's conf in the params
    return manifests


def test_the_first_night_trains_and_stores_the_fingerprint(nights, s3_client) -> None:
    first = nights[0]["synthesis"]
    assert first["model_reuse"] == {
        "decision": "retrained",
        "reason": "retrained: no earlier model",
        "model_run": None,
        "model_age_hours": None,
        "drift": None,
        "max_drift": 0.1,
        "max_model_age_hours": 168.0,
    }
    assert first["fit_seconds"] > 0
    assert first["fingerprint"]["rows"] == ROWS and first["fingerprint"]["columns"] == 5
    record = json.loads(_model_file(s3_client, nights[0], "fingerprint.json"))
    assert record["trained_run"] == nights[0]["run"] and record["holdout"]["method"] == "keyed_hash"
    text = json.dumps(record)
    assert '"US"' not in text and "1000000" not in text  # no label, no key value


def test_the_second_night_reuses_the_model_without_fitting(nights, s3_client) -> None:
    second = nights[1]["synthesis"]
    reuse = second["model_reuse"]
    assert reuse["decision"] == "reused" and reuse["model_run"] == nights[0]["run"]
    assert reuse["reason"].startswith(f"reused model of run {nights[0]['run']} (age ")
    assert 0 < reuse["drift"] <= 0.1 and reuse["model_age_hours"] < 1
    assert second["fit_seconds"] == 0.0  # no model was fitted
    assert nights[1]["timings_seconds"]["fit"] == 0.0
    assert all(gate["passed"] for gate in second["gates"]) and second["gates"]
    assert second["rows"] == ROWS + 20 and second["holdout_rows"] > 100
    # republished, keeping when and where it was trained (its age keeps counting)
    first = json.loads(_model_file(s3_client, nights[0], "fingerprint.json"))
    again = json.loads(_model_file(s3_client, nights[1], "fingerprint.json"))
    assert again["trained_at"] == first["trained_at"]
    assert again["trained_run"] == nights[0]["run"] and again["reused_by"] == [nights[1]["run"]]
    assert _model_file(s3_client, nights[1], "table_model.pkl")


def test_the_reports_say_whether_the_model_was_reused(nights, s3_client) -> None:
    """report.html's header names the decision: a reader must see the model did not learn
    from this night's rows."""
    import html

    def report(night: dict[str, Any]) -> str:
        page = _model_file(s3_client, night, "report.html").decode()
        return html.unescape(re.sub(r"<[^>]+>", "", page))  # the text a reader sees

    assert f"Model: reused from run {nights[0]['run']} (age " in report(nights[1])
    assert "Model: retrained: no earlier model" in report(nights[0])


def test_a_model_older_than_the_limit_is_retrained(nights) -> None:
    reuse = nights[2]["synthesis"]["model_reuse"]
    assert reuse["decision"] == "retrained" and reuse["max_model_age_hours"] == 0.0
    assert reuse["reason"].startswith("retrained: model older than 0 h (age ")
    assert nights[2]["synthesis"]["fit_seconds"] > 0


def test_a_drifted_source_is_retrained_naming_the_column(nights) -> None:
    reuse = nights[3]["synthesis"]["model_reuse"]
    assert reuse["decision"] == "retrained" and reuse["drift"] > 0.1
    assert reuse["model_run"] == nights[2]["run"]
    assert reuse["reason"].startswith("retrained: drift ")
    assert reuse["reason"].endswith("> 0.1 on column nights")
    assert nights[3]["synthesis"]["fit_seconds"] > 0
