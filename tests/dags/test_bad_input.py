"""Bad input fails the run with a message naming what to fix, and publishes nothing.

A run that fails a *gate* publishes its reports, and only those, to the quarantine
``<dataset>/_failed/<run>/`` (single-table TaskGroup, multi-table, ``@task.synthesize``):
the error and the log name the report's URI, the task's "Synthetic data report" link and
the report view lead to it, and no data, model, manifest or ``latest.json`` is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dagtest_helpers import DAG_FILES, load_dag_module, staged_objects

from airflow_synth.core.names import safe_key_part

pytestmark = pytest.mark.dags

BUCKET = "synthetic"

# case -> (failing task, phrases the task's error must contain)
EXPECTED = {
    "missing_sql": ("extract", ["features/does_not_exist.sql", "not found", "Looked in"]),
    "sql_error": ("extract", ["syntax_error.sql", "failed in the database", "line 3"]),
    "zero_rows": ("extract", ["zero_rows.sql", "returned 0 rows"]),
    "unknown_synthesizer": (
        "extract",
        ["Unknown synthesizer 'gausian_copula'", "Did you mean 'gaussian_copula'"],
    ),
    "bad_parameter": ("extract", ["no parameter 'epoch'", "Did you mean 'epochs'"]),
    "missing_postgres_connection": (
        "extract",
        ["'no_such_db'", "Create the Airflow connection", "AIRFLOW_CONN_NO_SUCH_DB"],
    ),
    "wrong_s3_credentials": (
        "extract",
        ["synth_s3_wrong_secret", "Check the access key and secret"],
    ),
    "contract_mismatch": (
        "extract",
        [
            "contract_mismatch.contract.yaml",
            "- language (string): in the contract but not returned",
            "~ age: contract says float, query returns string",
        ],
    ),
    "quality_gate": (
        "assess",
        ["FAIL quality_score", "(must be >= 0.999)", "nothing was published"],
    ),
    "unknown_check": ("extract", ["Unknown check setting 'max_dcr'", "'max_dcr_share'"]),
}


#: cases whose failure is a missed gate: their reports are quarantined, nothing else
QUARANTINED = {"quality_gate"}


@pytest.fixture(scope="module")
def bad_dags(seeded_source, dags_folder: Path):
    return load_dag_module(dags_folder / "bad_input_dags.py")


def test_every_bad_input_case_is_covered(bad_dags) -> None:
    assert set(bad_dags.CASES) == set(EXPECTED)
    assert (DAG_FILES / "bad_input_dags.py").is_file()


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_input_fails_clearly_and_publishes_nothing(
    case, bad_dags, s3_client, capfd, caplog
) -> None:
    failing_task, phrases = EXPECTED[case]
    dag = getattr(bad_dags, f"dag_{case}")

    dag_run = dag.test()
    output = "".join(capfd.readouterr())

    assert dag_run.state == "failed"
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states[f"esl.{failing_task}"] == "failed"
    assert states["esl.load"] in ("upstream_failed", "failed")
    for phrase in phrases:
        assert phrase in output, f"{phrase!r} missing from the task error"
    if case in QUARANTINED:
        assert_only_reports_quarantined(
            s3_client,
            dataset=f"bad_{case}",
            dag_run=dag_run,
            task_id=f"esl.{failing_task}",
            output=output,
            log_text=caplog.text,
            reports={"report.html", "quality.json", "privacy.json", "metadata.json"},
            main_report="report.html",
        )
    else:
        assert keys_under(s3_client, f"bad_{case}/") == [], "a failed run published something"
    assert staged_objects(s3_client, f"bad_input_{case}") == [], "staged rows were left behind"


# --------------------------------------------------------------------------------------------
# A failed gate: reports quarantined under <dataset>/_failed/<run>/, nothing else published
# --------------------------------------------------------------------------------------------
def keys_under(s3_client: Any, prefix: str) -> list[str]:
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def assert_only_reports_quarantined(
    s3_client: Any,
    *,
    dataset: str,
    dag_run: Any,
    task_id: str,
    output: str,
    log_text: str,
    reports: set[str],
    main_report: str,
) -> None:
    """Reports (and failed.json) in the quarantine; no data, model, manifest or pointer;
    the URI in the log and the error; the XCom, the extra link and the report view agree."""
    from airflow_synth.ui import report_view
    from airflow_synth.ui.links import SyntheticReportLink

    prefix = f"{dataset}/_failed/{safe_key_part(dag_run.run_id)}/"
    keys = keys_under(s3_client, f"{dataset}/")
    assert keys, "the failed gate left no report to read"
    assert [k for k in keys if not k.startswith(prefix)] == [], "published outside _failed/"
    names = {k.removeprefix(prefix) for k in keys}
    assert reports | {"failed.json"} <= names, names
    assert not [n for n in names if n.rsplit("/", 1)[-1].startswith(("data.", "model."))]
    assert not [n for n in names if n.endswith(("manifest.json", "latest.json", ".parquet"))]
    assert keys_under(s3_client, f"_models/{dataset}/") == [], "a refused model was saved"
    assert f"{dataset}/latest.json" not in keys

    report_uri = f"s3://{BUCKET}/{prefix}{main_report}"
    assert f"Gate failed; the reports are at {report_uri}" in log_text  # the task log
    assert f"The reports are at {report_uri}" in output  # the error message
    index = json.loads(
        s3_client.get_object(Bucket=BUCKET, Key=prefix + "failed.json")["Body"].read()
    )
    assert "quality_score" in index["failed_gates"]
    assert index["report_uri"] == report_uri and index["published"] is False

    # XCom and extra link, as the API server reads them after the task ended
    location = report_view.report_location(dag_run.dag_id, dag_run.run_id, task_id)
    assert location["report_uri"] == report_uri
    assert location["aws_conn_id"] == "synth_s3"
    link = report_view._task_xcom(
        dag_run.dag_id, dag_run.run_id, task_id, -1, SyntheticReportLink().xcom_key
    )
    assert link and "/synth/report?" in link and f"dag_id={dag_run.dag_id}" in link
    html = report_view.read_report(location["report_uri"], location["aws_conn_id"])
    stored = s3_client.get_object(Bucket=BUCKET, Key=prefix + main_report)["Body"].read()
    assert html == stored.decode("utf-8") and "<html" in html.lower()


def test_report_view_serves_the_quarantined_report_to_allowed_users_only(
    bad_dags, s3_client, monkeypatch
) -> None:
    """Through the FastAPI app: the quarantined report.html for the failed assess task,
    with the CSP header; 403 for a user who may read the DAG but not its XComs (Airflow's
    own XCom access check, decided by a real auth manager)."""
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient
    from ui_auth_manager import NO_XCOM_USER, RestrictedAuthManager

    from airflow_synth.ui import report_view

    dag_run = bad_dags.dag_quality_gate.test()
    assert dag_run.state == "failed"
    monkeypatch.setattr(api_app._AuthManagerState, "instance", RestrictedAuthManager())
    user = {"now": SimpleAuthManagerUser(username="reader", role="viewer")}
    report_view.app.dependency_overrides[get_user] = lambda: user["now"]
    query = {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id, "task_id": "esl.assess"}
    try:
        client = TestClient(report_view.app)
        allowed = client.get("/report", params=query)
        user["now"] = SimpleAuthManagerUser(username=NO_XCOM_USER, role="viewer")
        refused = client.get("/report", params=query)
    finally:
        report_view.app.dependency_overrides.clear()
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["content-security-policy"] == report_view.REPORT_CSP
    key = f"bad_quality_gate/_failed/{safe_key_part(dag_run.run_id)}/report.html"
    stored = s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode("utf-8")
    assert allowed.text == stored
    assert refused.status_code == 403

    # the Synthetic datasets page lists the refused run (read from the real bucket), by DAG
    from airflow_synth.ui import catalog

    store = report_view.S3Catalog("synth_s3", BUCKET)
    rows = catalog.run_history(store, "bad_quality_gate", lambda dag_id: True)
    run = safe_key_part(dag_run.run_id)
    (row,) = [r for r in rows if r.run == run]
    assert (row.status, row.dag_id, row.has_report) == ("failed", dag_run.dag_id, True)
    assert "quality_score" in [g.metric for g in row.gates if g.outcome == "fail"]
    assert catalog.run_history(store, "bad_quality_gate", lambda dag_id: False) == []


@pytest.fixture(scope="module")
def gate_dags(seeded_source, dags_folder: Path):
    return load_dag_module(dags_folder / "gate_failure_dags.py")


def test_multitable_gate_failure_quarantines_reports_only(
    gate_dags, s3_client, capfd, caplog
) -> None:
    dag_run = gate_dags.dag_multitable.test()
    output = "".join(capfd.readouterr())
    assert dag_run.state == "failed"
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states["esl.synthesize"] == "failed"
    assert states["esl.publish"] in ("upstream_failed", "failed")
    assert_only_reports_quarantined(
        s3_client,
        dataset="gate_fail_mt",
        dag_run=dag_run,
        task_id="esl.synthesize",
        output=output,
        log_text=caplog.text,
        reports={"quality.json", "metadata.json", "reports/users/report.html"},
        main_report="reports/users/report.html",
    )


def test_decorator_gate_failure_quarantines_reports_only(
    gate_dags, s3_client, capfd, caplog
) -> None:
    dag_run = gate_dags.dag_decorator.test()
    output = "".join(capfd.readouterr())
    assert dag_run.state == "failed"
    assert {ti.task_id: ti.state for ti in dag_run.get_task_instances()} == {
        "users_frame": "failed"
    }
    assert_only_reports_quarantined(
        s3_client,
        dataset="gate_fail_deco",
        dag_run=dag_run,
        task_id="users_frame",
        output=output,
        log_text=caplog.text,
        reports={"report.html", "quality.json", "privacy.json", "metadata.json"},
        main_report="report.html",
    )
