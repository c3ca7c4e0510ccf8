"""Helpers shared by the DAG tests (kept out of conftest so test modules can import them)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

DAG_FILES = Path(__file__).resolve().parent / "dag_files"


def load_dag_module(path: Path) -> Any:
    """Import a DAG file (from the session dags folder) as a fresh module."""
    spec = importlib.util.spec_from_file_location(f"_test_dag_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def staged_objects(s3_client: Any, dag_id: str) -> list[str]:
    """What a DAG's runs left in the private staging bucket (real or synthetic rows staged
    between tasks): empty once every run's teardown ran."""
    from airflow_synth.local.stack import STAGING_BUCKET

    pages = s3_client.get_paginator("list_objects_v2").paginate(
        Bucket=STAGING_BUCKET, Prefix=f"runs/{dag_id}/"
    )
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def run_manifest(s3_client: Any, bucket: str, dataset: str, run_id: str) -> dict[str, Any]:
    """The published run's manifest: what a reader of (dataset, run) finds first."""
    import json

    from airflow_synth.core.publish.layout import DatasetLayout

    layout = DatasetLayout(bucket, dataset, run_id)
    return json.loads(s3_client.get_object(Bucket=bucket, Key=layout.manifest_key)["Body"].read())


def published_key(manifest: dict[str, Any], name: str) -> str:
    """The key of the file ``name`` (``data.parquet``, ``quality.json``, ``model.pkl``, ...)
    as the manifest lists it: tests read what readers read, never a guessed key."""
    entries = manifest["files"] + (manifest.get("model") or {}).get("files", [])
    (uri,) = [entry["uri"] for entry in entries if entry["name"] == name]
    return uri.split("://", 1)[1].split("/", 1)[1]


# -- driving a running Airflow through its REST API -------------------------------------------
def api_session(base: str) -> Any:
    """A ``requests`` session logged in as the demo admin (simple auth manager)."""
    import requests

    from airflow_synth.demo.standalone import ADMIN_PASSWORD, ADMIN_USER

    token = requests.post(
        f"{base}/auth/token",
        json={"username": ADMIN_USER, "password": ADMIN_PASSWORD},
        timeout=30,
    ).json()["access_token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def wait_for_dag(session: Any, base: str, dag_id: str, timeout: float = 180) -> None:
    """Until the DAG processor has parsed ``dag_id`` and the API knows it."""
    import time

    deadline = time.monotonic() + timeout
    while session.get(f"{base}/api/v2/dags/{dag_id}", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, f"{dag_id} never appeared in the API"
        time.sleep(2)


def trigger_and_wait(
    session: Any, base: str, dag_id: str, conf: dict[str, Any], timeout: float = 420
) -> tuple[str, str | None]:
    """Unpause ``dag_id``, trigger it with ``conf`` as the Trigger form would; (run id, final
    state) once the run finished or ``timeout`` passed."""
    import time

    wait_for_dag(session, base, dag_id)
    response = session.patch(f"{base}/api/v2/dags/{dag_id}", json={"is_paused": False}, timeout=30)
    assert response.status_code == 200, response.text
    run = session.post(
        f"{base}/api/v2/dags/{dag_id}/dagRuns",
        json={"logical_date": None, "conf": conf},
        timeout=30,
    ).json()
    run_id = run["dag_run_id"]
    state, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = session.get(f"{base}/api/v2/dags/{dag_id}/dagRuns/{run_id}", timeout=30).json()[
            "state"
        ]
        if state in ("success", "failed"):
            break
        time.sleep(3)
    return run_id, state
