"""Freshness/quality health check over latest.json and the manifests it names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_synth.core.names import DatasetNameError
from airflow_synth.core.publish.health import (
    DatasetHealthError,
    check_dataset_health,
    enforce_health,
)
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.core.publish.store import FileObjectStore, publish_dataset, read_latest

pytestmark = pytest.mark.unit


def publish(store: FileObjectStore, tmp_path: Path, run: str, quality: float) -> None:
    data = tmp_path / f"{run}.parquet"
    data.write_bytes(b"rows")
    layout = DatasetLayout("synthetic", "users", run)
    manifest = {"rows": 1, "synthesis": {"scores": {"quality_score": quality}}}
    publish_dataset(store, layout, {"data.parquet": data}, manifest)


def test_a_fresh_dataset_no_worse_than_before_is_healthy(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    publish(store, tmp_path, "run1", 0.85)
    publish(store, tmp_path, "run2", 0.84)
    report = check_dataset_health(store, "users")
    assert report.healthy, report.problems
    assert (report.run, report.quality, report.previous_quality) == ("run2", 0.84, 0.85)
    enforce_health(report)  # does not raise


def test_stale_dataset_fails_with_its_age(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    publish(store, tmp_path, "run1", 0.85)
    later = datetime.now(UTC) + timedelta(hours=30)
    report = check_dataset_health(store, "users", max_age=timedelta(hours=26), now=later)
    assert len(report.problems) == 1 and "older than the limit of 26.0 h" in report.problems[0]
    with pytest.raises(DatasetHealthError, match="'users' is unhealthy"):
        enforce_health(report)


def test_quality_drop_beyond_the_margin_fails(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    publish(store, tmp_path, "run1", 0.90)
    publish(store, tmp_path, "run2", 0.80)
    report = check_dataset_health(store, "users", max_quality_drop=0.05)
    assert report.problems == [
        "quality score fell from 0.900 to 0.800, more than the allowed 0.05: check the "
        "source data and the model"
    ]
    assert check_dataset_health(store, "users", max_quality_drop=0.2).healthy


def test_a_rerun_of_the_same_run_keeps_the_previous_one(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    publish(store, tmp_path, "run1", 0.9)
    publish(store, tmp_path, "run2", 0.8)
    publish(store, tmp_path, "run2", 0.8)  # re-run: must not compare run2 with itself
    latest = read_latest(store, "users")
    assert latest["previous_manifest_uri"] == "s3://synthetic/users/run1/manifest.json"
    report = check_dataset_health(store, "users")
    assert (report.run, report.quality, report.previous_quality) == ("run2", 0.8, 0.9)


def test_never_published_is_unhealthy(tmp_path: Path) -> None:
    report = check_dataset_health(FileObjectStore(tmp_path), "users")
    assert report.problems == ["dataset 'users' was never published (no latest.json)"]


def test_the_dataset_is_looked_up_by_its_name_as_it_is(tmp_path: Path) -> None:
    """No rewriting: "users " or "Users" are refused, not mapped onto ``users/``."""
    store = FileObjectStore(tmp_path / "bucket")
    publish(store, tmp_path, "run1", 0.85)
    for name in ("Users", "users ", "users/"):
        with pytest.raises(DatasetNameError, match=repr(name)):
            check_dataset_health(store, name)
