"""The pieces the single-table and multi-table Airflow shells share (written once)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflow_synth.core.errors import ConnectionConfigError, QualityGateError
from airflow_synth.operators.base import SyntheticReportLinked, settings_of
from airflow_synth.runtime import gate_failures_quarantined, s3_failures_named, step_timings

pytestmark = pytest.mark.unit

HOOK = SimpleNamespace(aws_conn_id="synth_s3", bucket="synthetic")


def _error_from(module: str) -> Exception:
    """An exception whose class lives in ``module`` (how the S3 translation tells them apart)."""
    return type("ClientError", (Exception,), {"__module__": module})("AccessDenied")


@pytest.mark.parametrize("module", ["botocore.exceptions", "airflow.exceptions"])
def test_s3_failures_are_named_by_connection_and_bucket(module: str) -> None:
    with pytest.raises(ConnectionConfigError) as raised, s3_failures_named(HOOK):  # type: ignore[arg-type]
        raise _error_from(module)
    assert "'synthetic' through connection 'synth_s3'" in str(raised.value)


def test_other_failures_and_named_ones_pass_unchanged() -> None:
    named = ConnectionConfigError("already says what to fix")
    with pytest.raises(ConnectionConfigError) as raised, s3_failures_named(HOOK):  # type: ignore[arg-type]
        raise named
    assert raised.value is named
    with pytest.raises(ValueError), s3_failures_named(HOOK):  # type: ignore[arg-type]
        raise ValueError("a bug, not the store")


def test_a_failed_gate_is_quarantined_then_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_synth import runtime

    seen: list[Any] = []
    monkeypatch.setattr(runtime, "quarantine_gate_failure", lambda *args: seen.append(args))
    error = QualityGateError("FAIL quality_score")
    with pytest.raises(QualityGateError), gate_failures_quarantined({}, HOOK, "layout"):  # type: ignore[arg-type]
        raise error
    assert seen == [({}, HOOK, "layout", error)]


def test_step_timings_read_both_xcoms() -> None:
    timings = step_timings({"seconds": 1.5}, {"fit_seconds": 2.0})
    assert timings == {"extract": 1.5, "fit": 2.0, "sample": 0.0}


def test_the_report_link_follows_what_the_task_recorded() -> None:
    task = SyntheticReportLinked()
    assert task.note_published_report({"report_uri": "s3://b/d/r/report.html"}) == {
        "report_uri": "s3://b/d/r/report.html"
    }
    assert task._report_published is True
    task.note_published_report({"report_uri": None})
    assert task._report_published is False
    gate = QualityGateError("FAIL dcr_share")
    gate.quarantined_report_uri = "s3://b/d/_failed/r/report.html"  # type: ignore[attr-defined]
    with pytest.raises(QualityGateError), task.noting_quarantined_report():
        raise gate
    assert task._report_published is True


def test_settings_of_passes_a_group_on_under_its_names() -> None:
    config = SimpleNamespace(seed=1, checks={"min_quality": 0.5}, other="x")
    assert settings_of(config, ("seed", "checks")) == {"seed": 1, "checks": {"min_quality": 0.5}}


def test_one_publish_step_serves_a_table_and_a_set() -> None:
    """A table is a set of one: both publish operators and both old names run one step."""
    from airflow_synth import runtime
    from airflow_synth.operators import ESLLoadOperator, MultiTablePublishOperator

    assert runtime.execute_load is runtime.execute_publish
    assert runtime.execute_multitable_publish is runtime.execute_publish
    assert ESLLoadOperator.execute is MultiTablePublishOperator.execute
    assert (ESLLoadOperator.chain_task_id, MultiTablePublishOperator.chain_task_id) == (
        "load",
        "publish",
    )


@pytest.mark.parametrize("fails", [False, True])
@pytest.mark.parametrize("where", ["local folder", "object store"])
def test_an_extract_that_fails_leaves_no_staging_behind(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, fails: bool, where: str
) -> None:
    """Both extracts stage through ``source_and_staging``: the workspace is made after the
    source was reached. A local staging folder is kept on success (the next task on this
    machine reads it) and removed when the extract fails; with object-store staging the
    task's own folder is removed either way (its files travel through the bucket)."""
    from airflow_synth import runtime

    monkeypatch.delenv("SYNTH_STAGING_DIR", raising=False)
    closed: list[bool] = []
    conn = SimpleNamespace(close=lambda: closed.append(True))
    monkeypatch.setattr(runtime, "postgres_connection", lambda conn_id: conn)
    checked: list[str] = []  # the staging bucket is reached before the query runs
    monkeypatch.setattr(
        "airflow_synth.hooks.object_store.S3ObjectStore.check",
        lambda store: checked.append(store.bucket),
    )
    context = {"dag": SimpleNamespace(dag_id="dag"), "run_id": "run"}
    staging = str(tmp_path / "staging") if where == "local folder" else None
    seen: list[Any] = []

    def stage() -> Any:
        with runtime.source_and_staging(context, "ds", "src", staging) as (got, workspace):
            assert got is conn and workspace.local.is_dir()
            assert (workspace.staging is None) is (where == "local folder")
            assert checked == ([] if where == "local folder" else ["synthetic-staging"])
            seen.append(workspace.local)
            if fails:
                raise RuntimeError("the query failed")

    if fails:
        with pytest.raises(RuntimeError):
            stage()
    else:
        stage()
    kept = where == "local folder" and not fails
    assert seen[0].is_dir() is kept
    assert closed == [True]


def test_both_configs_share_the_chain_fields_and_take_them_by_keyword() -> None:
    from airflow_synth.task_groups import ESLConfig, MultiTableConfig
    from airflow_synth.task_groups.chain import ChainConfig

    table = ESLConfig("users", "users.sql", seed=3, bucket="b")
    tables = MultiTableConfig("shop", ["users", "orders"], seed=3, bucket="b")
    for config in (table, tables):
        assert isinstance(config, ChainConfig)
        assert settings_of(config, ("seed", "bucket", "postgres_conn_id")) == {
            "seed": 3,
            "bucket": "b",
            "postgres_conn_id": "postgres_default",
        }
    with pytest.raises(TypeError):
        ESLConfig("users", "users.sql", "postgres_src")  # type: ignore[misc]
