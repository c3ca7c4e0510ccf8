"""``make airflow`` for real: airflow standalone, a trigger through the REST API, a success.

This is what a user does in the UI (press Trigger, fill the Params form, watch the run),
driven through ``/api/v2`` against a real scheduler, API server and DAG processor.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.demo.standalone import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    start_standalone,
    stop_standalone,
    wait_healthy,
)
from airflow_synth.local.ports import find_free_port

pytestmark = pytest.mark.dags

DAG_ID = "esl_airbnb_bookings"
SYNTHESIZER = "gaussian_copula"


@pytest.fixture(scope="module")
def airflow_api(airflow_home: Path, seeded_source, local_stack):
    port = find_free_port()
    log_path = airflow_home / "standalone-test.log"
    proc = start_standalone(dict(os.environ), port, log_path)
    try:
        wait_healthy(port, timeout=300, proc=proc)
        base = f"http://127.0.0.1:{port}"
        token = requests.post(
            f"{base}/auth/token",
            json={"username": ADMIN_USER, "password": ADMIN_PASSWORD},
            timeout=30,
        ).json()["access_token"]
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        yield base, session
    finally:
        stop_standalone(proc)


def _wait_for_dag(base: str, session: requests.Session, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if session.get(f"{base}/api/v2/dags/{DAG_ID}", timeout=30).status_code == 200:
            return
        time.sleep(2)
    raise AssertionError(f"{DAG_ID} never appeared in the API")


def test_trigger_through_the_rest_api_runs_and_publishes(airflow_api, s3_client) -> None:
    base, session = airflow_api
    _wait_for_dag(base, session)
    listed = session.get(f"{base}/api/v2/dags", params={"tags": "esl"}, timeout=30).json()
    assert {DAG_ID, "esl_airbnb_bookings_nightly"} <= {d["dag_id"] for d in listed["dags"]}

    response = session.patch(f"{base}/api/v2/dags/{DAG_ID}", json={"is_paused": False}, timeout=30)
    assert response.status_code == 200
    run = session.post(
        f"{base}/api/v2/dags/{DAG_ID}/dagRuns",
        json={
            "logical_date": None,
            # 40 rows are too few to measure dependence: waived, as a user must say so
            "conf": {
                "rows": 40,
                "seed": 2,
                "synthesizer": "gaussian_copula",
                "min_dependence": None,
            },
        },
        timeout=30,
    ).json()
    run_id = run["dag_run_id"]

    state, deadline = None, time.monotonic() + 420
    while time.monotonic() < deadline:
        state = session.get(f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", timeout=30).json()[
            "state"
        ]
        if state in ("success", "failed"):
            break
        time.sleep(3)
    assert state == "success"

    layout = DatasetLayout("synthetic", "airbnb_bookings", run_id)
    body = s3_client.get_object(Bucket="synthetic", Key=layout.data_key())["Body"].read()
    assert pq.read_table(io.BytesIO(body)).num_rows == 40

    # the load task's "Synthetic data report" extra link opens the published report
    links = session.get(
        f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/esl.load/links", timeout=30
    ).json()["extra_links"]
    assert "Synthetic data report" in links, links
    link = links["Synthetic data report"]
    assert link.startswith(f"{base}/synth/report?")
    page = session.get(link, timeout=30)
    assert page.status_code == 200
    assert page.text.startswith("<!DOCTYPE html>")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    published = s3_client.get_object(Bucket="synthetic", Key=layout.key("report.html"))
    assert page.text == published["Body"].read().decode("utf-8")
    # ... and only for a logged-in user
    assert requests.get(link, timeout=30).status_code in (401, 403)
