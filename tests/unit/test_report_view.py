"""The UI's report view and "Synthetic datasets" page, without servers.

- The catalog logic (:mod:`airflow_synth.ui.catalog`) over an in-memory store: which
  datasets, which runs (published and refused), newest first, who sees what, escaping.
- The FastAPI app: every page carries the CSP and ``nosniff``; a slow S3 read in one
  request does not stall another request on the same server (endpoints run in the
  threadpool, not on the event loop) — a real uvicorn server, the S3 read patched to sleep.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from airflow_synth.ui import catalog, report_view

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
BUCKET = "synthetic"


class DictStore:
    """A :class:`catalog.CatalogStore` over a dict of key -> JSON body."""

    def __init__(self, objects: dict[str, Any]) -> None:
        self.objects = {k: json.dumps(v).encode() for k, v in objects.items()}
        self.bucket = BUCKET
        self.reads = 0

    def list_folders(self, prefix: str) -> list[str]:
        found = {
            key.removeprefix(prefix).split("/", 1)[0]
            for key in self.objects
            if key.startswith(prefix) and "/" in key.removeprefix(prefix)
        }
        return sorted(found)

    def get_bytes(self, key: str) -> bytes | None:
        self.reads += 1
        return self.objects.get(key)


def manifest(dataset: str, run: str, hours_ago: float, dag_id: str | None, **extra: Any) -> dict:
    report = f"s3://{BUCKET}/{dataset}/{run}/attempt-x/report.html"
    body = {
        "dataset": dataset,
        "run": run,
        "rows": 1500,
        "published_at": (NOW - timedelta(hours=hours_ago)).isoformat(),
        "source": {"sql_file": "q.sql", **({"airflow": {"dag_id": dag_id}} if dag_id else {})},
        "synthesis": {
            "synthesizer": "gaussian_copula",
            "scores": {
                "quality_score": 0.8712,
                "dependence_preservation": 0.9,
                "exact_match_rate": 0.0,
                "near_copy_rate": 0.01,
                "dcr_share": 0.48,
            },
            "gates": [
                {"metric": "quality_score", "passed": True, "waived": False},
                {"metric": "dcr_share", "passed": True, "waived": False},
                {"metric": "dependence_preservation", "passed": True, "waived": True},
            ],
            **extra,
        },
        "reports": {"report.html": report},
    }
    return body


def bucket_objects() -> dict[str, Any]:
    return {
        # two published runs of "bookings", latest is r2; one refused run
        "bookings/r1/manifest.json": manifest("bookings", "r1", 30, "esl_bookings"),
        "bookings/r2/manifest.json": manifest(
            "bookings",
            "r2",
            2,
            "esl_bookings",
            model_reuse={
                "decision": "reused",
                "reason": "reused model of run r1 (age 3.0 h, drift 0.010 <= 0.1)",
                "model_run": "r1",
            },
        ),
        "bookings/r2/attempt-x/report.html": "<html>report</html>",
        "bookings/latest.json": {"dataset": "bookings", "run": "r2"},
        "bookings/_failed/r3/failed.json": {
            "dataset": "bookings",
            "run": "r3",
            "failed_at": (NOW - timedelta(hours=1)).isoformat(),
            "failed_gates": ["quality_score"],
            "report_uri": f"s3://{BUCKET}/bookings/_failed/r3/report.html",
            "airflow": {"dag_id": "esl_bookings"},
        },
        # another DAG's dataset, and one from before the DAG was recorded
        "secret/r1/manifest.json": manifest("secret", "r1", 5, "esl_secret"),
        "secret/latest.json": {"dataset": "secret", "run": "r1"},
        "legacy/r0/manifest.json": manifest("legacy", "r0", 50, None),
        "legacy/latest.json": {"dataset": "legacy", "run": "r0"},
        # not datasets
        "_models/bookings/r2/attempt-x/model.json": {},
        "half/r9/attempt-y/data.parquet": {},
    }


def only(*dag_ids: str | None):
    return lambda dag_id: dag_id in dag_ids


def test_the_catalog_lists_datasets_with_their_latest_run_to_allowed_users() -> None:
    store = DictStore(bucket_objects())
    assert catalog.dataset_names(store) == ["bookings", "half", "legacy", "secret"]

    entries = catalog.catalog(store, only("esl_bookings"))
    assert [e.dataset for e in entries] == ["bookings"]  # not secret, not legacy, not half
    row = entries[0].latest
    assert (row.run, row.status, row.rows, row.latest) == ("r2", "published", 1500, True)
    assert (row.quality, row.dependence, row.dcr_share) == (0.8712, 0.9, 0.48)
    assert [(g.metric, g.outcome) for g in row.gates] == [
        ("quality_score", "pass"),
        ("dcr_share", "pass"),
        ("dependence_preservation", "waived"),
    ]
    # the decision said once: "reused from run r1 (...)", not "reused / reused model of ..."
    assert (row.model_decision, row.model_reason) == (
        "reused",
        "reused from run r1 (age 3.0 h, drift 0.010 <= 0.1)",
    )
    assert entries[0].failed_runs == 1

    # a manifest that names no DAG: only for whoever may read every DAG (callback gets None)
    everyone = catalog.catalog(store, lambda dag_id: True)
    assert [e.dataset for e in everyone] == ["bookings", "legacy", "secret"]
    assert [e.dataset for e in catalog.catalog(store, only("esl_bookings", None))] == [
        "bookings",
        "legacy",
    ]


def test_the_history_lists_published_and_refused_runs_newest_first() -> None:
    store = DictStore(bucket_objects())
    rows = catalog.run_history(store, "bookings", only("esl_bookings"))
    assert [(r.run, r.status, r.latest) for r in rows] == [
        ("r3", "failed", False),
        ("r2", "published", True),
        ("r1", "published", False),
    ]
    assert [(g.metric, g.outcome) for g in rows[0].gates] == [("quality_score", "fail")]
    assert catalog.run_history(store, "bookings", only("esl_secret")) == []
    assert catalog.run_history(store, "../bookings", lambda d: True) == []


def test_pages_escape_whatever_the_manifests_say() -> None:
    evil = "<script>alert(1)</script>"
    objects = bucket_objects()
    objects["bookings/r2/manifest.json"]["synthesis"]["model_reuse"]["reason"] = evil
    objects["bookings/r2/manifest.json"]["synthesis"]["gates"][0]["metric"] = evil
    store = DictStore(objects)
    entries = catalog.catalog(store, lambda d: True)
    page = catalog.render_index(entries, NOW, "/synth", BUCKET)
    history = catalog.render_history(
        "bookings", catalog.run_history(store, "bookings", lambda d: True), NOW, "/synth"
    )
    for html in (page, history):
        assert "<script" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="/synth/datasets/bookings/runs/r2/report"' in page
    assert 'href="/synth/datasets/bookings/runs/r2/manifest.json"' in page
    assert 'href="/synth/datasets/bookings/failed/r3/report"' in history
    assert "2 h" in page and "0.871" in page and "1,500" in page
    assert 'class="pass">pass: &lt;script&gt;alert(1)&lt;/script&gt;, dcr_share</span>' in page
    assert "waived: dependence_preservation" in page
    assert '<span class="fail">FAIL quality_score</span>' in history  # the refused run


def test_names_that_are_not_one_key_segment_are_refused() -> None:
    for bad in ("..", "a/b", "_failed", "_models", "", ".hidden", "a..b"):
        assert not catalog.is_segment(bad), bad
    for good in ("bookings", "manual__2026-12-05T10_00_00.123_00_00", "scheduled__x"):
        assert catalog.is_segment(good), good


# -- the FastAPI app --------------------------------------------------------------------------
@pytest.fixture
def open_app() -> Iterator[Any]:
    """The app with the user, the access checks and the store replaced (unit level)."""
    from airflow.api_fastapi.core_api.security import get_user

    store = DictStore(bucket_objects())
    overrides = report_view.app.dependency_overrides
    overrides[get_user] = lambda: object()
    overrides[report_view.READ_XCOM] = lambda: None
    overrides[report_view.READ_TASK_INSTANCE] = lambda: None
    overrides[report_view.catalog_store] = lambda: store
    overrides[report_view.dag_reader] = lambda: only("esl_bookings")
    overrides[report_view.report_reader] = lambda: only("esl_bookings")
    try:
        yield store
    finally:
        overrides.clear()


def test_every_page_carries_the_csp_and_nosniff(open_app, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    monkeypatch.setattr(report_view, "report_location", lambda *a: {"report_uri": "s3://b/x"})
    monkeypatch.setattr(report_view, "read_report", lambda uri, conn: "<html>r</html>")
    client = TestClient(report_view.app)
    for path in (
        "/report?dag_id=d&run_id=r&task_id=t",
        "/datasets",
        "/datasets/bookings",
        "/datasets/bookings/runs/r2/report",
        "/datasets/bookings/runs/r2/manifest.json",
        "/datasets/bookings/failed/r3/failed.json",
    ):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)
        csp = response.headers["content-security-policy"]
        for directive in (
            "default-src 'none'",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'self'",
        ):
            assert directive in csp, (path, csp)
        assert "script-src" not in csp
        assert response.headers["x-content-type-options"] == "nosniff", path
    # a run of a DAG the user may not read is "not found", like a missing one
    assert client.get("/datasets/secret/runs/r1/manifest.json").status_code == 404
    assert client.get("/datasets/secret").status_code == 404
    assert client.get("/datasets/bookings/runs/nope/report").status_code == 404


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_slow_s3_read_does_not_stall_other_requests(open_app, monkeypatch) -> None:
    """The report view reads S3 synchronously; run on the event loop (``async def``) a 2 s
    read would hold every other request of the server for 2 s."""
    import uvicorn
    from fastapi import FastAPI

    slow_s = 2.0

    def slow_read(uri: str, conn: str) -> str:
        time.sleep(slow_s)
        return "<html>slow</html>"

    monkeypatch.setattr(report_view, "report_location", lambda *a: {"report_uri": "s3://b/x"})
    monkeypatch.setattr(report_view, "read_report", slow_read)
    server_app = FastAPI()  # as in the API server: our app mounted beside Airflow's routes

    @server_app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"ok": "yes"}

    server_app.mount("/synth", report_view.app)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(server_app, host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        slow: dict[str, Any] = {}
        worker = threading.Thread(
            target=lambda: slow.update(
                r=requests.get(f"{base}/synth/report?dag_id=d&run_id=r&task_id=t", timeout=30)
            )
        )
        worker.start()
        time.sleep(0.5)  # the slow request is inside its S3 read now
        began = time.monotonic()
        assert requests.get(f"{base}/ping", timeout=30).json() == {"ok": "yes"}
        took = time.monotonic() - began
        worker.join(30)
        assert slow["r"].status_code == 200 and slow["r"].text == "<html>slow</html>"
        assert took < 0.5, f"/ping waited {took:.2f} s behind the slow report read"
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_query_string_dag_id_does_not_unlock_datasets_that_name_no_dag(monkeypatch) -> None:
    """A manifest that records no DAG needs access to every DAG. Airflow's DAG check, asked
    without a DAG id, falls back to ``?dag_id=`` of the request: a user who may read one
    DAG must not see such a dataset by adding that DAG to the URL."""
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    class OneDagOnly(SimpleAuthManager):
        def is_authorized_dag(self, *, method, user, access_entity=None, details=None):
            return getattr(details, "id", None) == "mine"

    objects = {k: v for k, v in bucket_objects().items() if k.startswith("legacy/")}
    store = DictStore(objects)
    monkeypatch.setattr(api_app._AuthManagerState, "instance", OneDagOnly())
    overrides = report_view.app.dependency_overrides
    overrides[get_user] = lambda: SimpleAuthManagerUser(username="u", role="viewer")
    overrides[report_view.catalog_store] = lambda: store
    try:
        client = TestClient(report_view.app)
        for query in ("", "?dag_id=mine"):
            page = client.get(f"/datasets{query}")
            assert page.status_code == 200 and "legacy" not in page.text, query
            assert client.get(f"/datasets/legacy/runs/r0/manifest.json{query}").status_code == 404
    finally:
        overrides.clear()
