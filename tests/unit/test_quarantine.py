"""A failed gate leaves the user a report to read (runtime.quarantine_gate_failure + UI).

The Airflow-facing half of the quarantine, without servers: the reports of a
:class:`QualityGateError` are uploaded to ``<dataset>/_failed/<run>/`` of a folder-backed
store, the URI is logged, appended to the error and pushed to XCom, the operators' extra
link switches on, and the report view finds the quarantined report when no published one
exists. S3 being down must not hide the gate error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import HTTPException

from airflow_synth.core.errors import QualityGateError
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.core.publish.store import FAILED_INDEX, FileObjectStore, read_latest
from airflow_synth.runtime import (
    FAILED_REPORT_XCOM_KEY,
    quarantine_gate_failure,
    quarantined_report_uri,
)
from airflow_synth.ui import report_view
from airflow_synth.ui.links import SyntheticReportLink

pytestmark = pytest.mark.unit

GATE_MESSAGE = (
    "Dataset 'users': the synthetic table failed 2 gate(s), so nothing was published:\n"
    "  FAIL quality_score = 0.6100 (must be >= 0.999)\n"
    "  FAIL dcr_share = 0.7000 (must be <= 0.6)\n"
    "See the report for details."
)


class FakeHook:
    """The two things quarantine needs from ``SynthHook``: the store and the connection id."""

    aws_conn_id = "synth_s3"

    def __init__(self, store: Any) -> None:
        self.store = store

    def get_conn(self) -> Any:
        return self.store


class FakeTI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


class DownStore(FileObjectStore):
    def put_file(self, path: Path, key: str) -> None:
        raise ConnectionError("Could not connect to the endpoint URL")


@pytest.fixture
def layout() -> DatasetLayout:
    return DatasetLayout("synthetic", "users", "manual__2026-01-01T00:00:00+00:00")


@pytest.fixture
def gate_error(tmp_path: Path) -> QualityGateError:
    reports = {}
    for name in ("report.html", "quality.json", "privacy.json", "metadata.json"):
        reports[name] = tmp_path / "staging" / name
        reports[name].parent.mkdir(exist_ok=True)
        reports[name].write_text(f"<{name}>")
    return QualityGateError(GATE_MESSAGE, reports=reports)


def test_a_failed_gate_publishes_its_reports_and_says_where(
    tmp_path: Path,
    layout: DatasetLayout,
    gate_error: QualityGateError,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    ti = FakeTI()
    caplog.set_level(logging.INFO)
    uri = quarantine_gate_failure({"ti": ti}, FakeHook(store), layout, gate_error)
    expected = "s3://synthetic/users/_failed/manual__2026-01-01T00_00_00_00_00/report.html"
    assert uri == expected
    assert f"Gate failed; the reports are at {expected}" in caplog.text
    assert str(gate_error).endswith(f"The reports are at {expected}")
    assert str(gate_error).startswith(GATE_MESSAGE)  # the gate lines stay first
    assert quarantined_report_uri(gate_error) == expected
    pushed = ti.pushed[FAILED_REPORT_XCOM_KEY]
    assert pushed["report_uri"] == expected and pushed["aws_conn_id"] == "synth_s3"
    assert set(pushed["files"]) == {*gate_error.reports, FAILED_INDEX}
    index = store.get_bytes(layout.failed_key(FAILED_INDEX)) or b""
    assert b'"quality_score"' in index and b'"dcr_share"' in index  # the failed gates, named
    assert all(k.startswith(layout.failed_prefix) for k in store.list_keys(""))
    assert read_latest(store, "users") is None


def test_s3_down_logs_a_warning_and_keeps_the_gate_error(
    tmp_path: Path,
    layout: DatasetLayout,
    gate_error: QualityGateError,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ti = FakeTI()
    uri = quarantine_gate_failure({"ti": ti}, FakeHook(DownStore(tmp_path)), layout, gate_error)
    assert uri is None
    assert str(gate_error) == GATE_MESSAGE
    assert quarantined_report_uri(gate_error) is None
    assert ti.pushed == {}
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert "could not be quarantined" in warning.getMessage()
    assert "users/_failed/" in warning.getMessage()


def test_an_error_without_reports_quarantines_nothing(
    tmp_path: Path, layout: DatasetLayout
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    error = QualityGateError(GATE_MESSAGE)
    assert quarantine_gate_failure({}, FakeHook(store), layout, error) is None
    assert store.list_keys("") == []


@pytest.mark.parametrize("published", [True, False])
def test_the_extra_link_follows_the_recorded_report(published: bool) -> None:
    operator = SimpleNamespace(_report_published=published)
    key = SimpleNamespace(dag_id="d", run_id="r", task_id="esl.synthesize", map_index=-1)
    link = SyntheticReportLink().get_link(operator, ti_key=key)
    assert bool(link) is published
    if published:
        assert "/synth/report?" in link and "task_id=esl.synthesize" in link


def test_synthesize_operators_carry_the_report_link() -> None:
    from airflow_synth.decorators.synthesize import _SynthesizeDecoratedOperator
    from airflow_synth.operators.multitable import MultiTableSynthesizeOperator
    from airflow_synth.operators.synthesize import ESLSynthesizeOperator

    for operator in (
        ESLSynthesizeOperator,
        MultiTableSynthesizeOperator,
        _SynthesizeDecoratedOperator,
    ):
        names = [link.name for link in operator.operator_extra_links]
        assert names == ["Synthetic data report"], operator


def test_the_operator_switches_its_link_on_when_the_gate_failed(
    monkeypatch: pytest.MonkeyPatch, gate_error: QualityGateError
) -> None:
    from airflow_synth.operators import synthesize as module

    def failing(*args: Any, **kwargs: Any) -> dict[str, Any]:
        gate_error.quarantined_report_uri = "s3://b/users/_failed/r/report.html"  # type: ignore[attr-defined]
        raise gate_error

    monkeypatch.setattr(module, "execute_synthesize", failing)
    operator = module.ESLSynthesizeOperator(
        task_id="synthesize", extract={}, dataset="users", aws_conn_id="a", bucket="b"
    )
    with pytest.raises(QualityGateError):
        operator.execute({})
    assert operator._report_published is True


def test_the_report_view_falls_back_to_the_quarantined_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quarantined = {"report_uri": "s3://b/users/_failed/r/report.html", "aws_conn_id": "s"}
    xcoms = {"return_value": None, FAILED_REPORT_XCOM_KEY: quarantined}
    monkeypatch.setattr(report_view, "_task_xcom", lambda d, r, t, m, key: xcoms[key])
    assert report_view.report_location("d", "r", "esl.synthesize") == quarantined
    published = {"report_uri": "s3://b/users/r/report.html", "aws_conn_id": "s"}
    xcoms["return_value"] = published
    assert report_view.report_location("d", "r", "esl.load") == published
    xcoms.update({"return_value": None, FAILED_REPORT_XCOM_KEY: None})
    with pytest.raises(HTTPException) as missing:
        report_view.report_location("d", "r", "esl.synthesize")
    assert missing.value.status_code == 404


def test_a_report_removed_since_is_a_404_that_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """A quarantine goes when a later attempt of the run publishes: the old link says so."""
    from botocore.exceptions import ClientError

    class GoneHook:
        def __init__(self, aws_conn_id: str) -> None:
            pass

        def read_key(self, key: str, bucket_name: str) -> str:
            raise ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")

    import airflow.providers.amazon.aws.hooks.s3 as s3_module

    monkeypatch.setattr(s3_module, "S3Hook", GoneHook)
    with pytest.raises(HTTPException) as gone:
        report_view.read_report("s3://b/users/_failed/r/report.html", "s")
    assert gone.value.status_code == 404 and "published again" in gone.value.detail
