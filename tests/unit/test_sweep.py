"""The sweeper: old leftovers go, fresh runs, kept runs and anything not ours stay.

On folder-backed stores with file times set back (the real servers, a task killed
mid-fit and two runs at once are in ``tests/faults/test_fault_injection.py``).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_synth.core.errors import ConnectionConfigError, SynthError, SynthesizerConfigError
from airflow_synth.core.extract.staging import RUN_MARKER, run_staging_dir
from airflow_synth.core.publish.store import FileObjectStore
from airflow_synth.core.sweep import (
    SweepReport,
    sweep,
    sweep_local_staging,
    sweep_published,
    sweep_staging_store,
    sweep_task_folders,
)
from airflow_synth.hooks.synth import SynthHook
from airflow_synth.maintenance import execute_sweep, sweep_age, sweep_at_run_start

pytestmark = pytest.mark.unit

HOURS = 3600


def age(path: Path, hours: float) -> None:
    """Set ``path`` (and everything in it) back by ``hours``."""
    then = time.time() - hours * HOURS
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(item, (then, then), follow_symlinks=False)


def put(store: FileObjectStore, key: str, hours: float = 0) -> None:
    store.put_bytes(b"real rows", key)
    if hours:
        age(store.root / key, hours)


def keys(store: FileObjectStore, prefix: str = "") -> list[str]:
    return store.list_keys(prefix)


# --- the staging bucket --------------------------------------------------------------------
def test_staged_runs_older_than_the_age_go_fresh_and_kept_ones_stay(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path / "staging")
    put(store, "runs/esl/old_run/users/real.parquet", hours=30)
    put(store, "runs/esl/old_run/users/train/fit.pkl", hours=29)
    put(store, "runs/esl/busy_run/users/real.parquet", hours=30)
    put(store, "runs/esl/busy_run/users/samples/part-0.parquet", hours=1)  # still writing
    put(store, "runs/esl/kept_run/users/real.parquet", hours=30)
    put(store, "other/esl/old_run/users/real.parquet", hours=30)  # not the staging prefix
    report = sweep_staging_store(store, "synthetic-staging", "runs", keep=[("esl", "kept_run")])
    assert report.staged_runs == ["s3://synthetic-staging/runs/esl/old_run/users/"]
    assert report.staged_objects == 2
    assert keys(store) == [
        "other/esl/old_run/users/real.parquet",
        "runs/esl/busy_run/users/real.parquet",
        "runs/esl/busy_run/users/samples/part-0.parquet",
        "runs/esl/kept_run/users/real.parquet",
    ]


def test_age_zero_sweeps_every_staged_run(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path / "staging")
    put(store, "runs/esl/r1/users/real.parquet")
    put(store, "runs/esl/r2/sessions/real/users.parquet")
    report = sweep_staging_store(store, "b", "runs", older_than=timedelta(0))
    assert len(report.staged_runs) == 2 and keys(store) == []


# --- local staging folders -----------------------------------------------------------------
def test_old_local_run_folders_go_with_their_empty_parents(tmp_path: Path) -> None:
    root = tmp_path / "staging"
    old = run_staging_dir("esl", "manual__1", "users", base=root)
    (old / "real.parquet").write_bytes(b"emails")
    fresh = run_staging_dir("esl", "manual__2", "users", base=root)
    (fresh / "real.parquet").write_bytes(b"emails")
    kept = run_staging_dir("esl", "manual__3", "users", base=root)
    age(old, 25)
    age(kept, 25)
    report = sweep_local_staging([root], keep=[("esl", "manual__3")])
    assert report.local_folders == [str(old)]
    assert not old.parent.exists()  # the run folder it left empty
    assert fresh.is_dir() and kept.is_dir()
    assert (root / RUN_MARKER).exists() is False  # the marker lives in the run folder


def test_folders_that_are_not_run_staging_are_never_swept(tmp_path: Path) -> None:
    """A staging root pointed at a shared folder by mistake loses nothing else."""
    root = tmp_path / "home"
    stranger = root / "projects" / "thesis" / "chapter1"
    stranger.mkdir(parents=True)
    (stranger / "notes.txt").write_text("mine")
    target = tmp_path / "elsewhere"
    (target / "real.parquet").parent.mkdir(parents=True)
    (target / "real.parquet").write_bytes(b"x")
    (root / "dag" / "run").mkdir(parents=True)
    (root / "dag" / "run" / "link").symlink_to(target)  # a symlink to a run-like folder
    age(root, 100)
    age(target, 100)
    report = sweep_local_staging([root])
    assert report.local_folders == []
    assert (stranger / "notes.txt").exists() and (target / "real.parquet").exists()


def test_folders_from_before_the_marker_are_recognised_by_their_real_rows(tmp_path: Path) -> None:
    folder = tmp_path / "staging" / "esl" / "manual__1" / "users"
    (folder / "real").mkdir(parents=True)
    (folder / "real" / "users.parquet").write_bytes(b"emails")
    age(folder, 48)
    assert sweep_local_staging([tmp_path / "staging"]).local_folders == [str(folder)]


def test_task_folders_a_killed_task_left_in_the_temp_dir(tmp_path: Path) -> None:
    old = tmp_path / "airflow-synth-task-abc"
    fresh = tmp_path / "airflow-synth-task-def"
    frame = tmp_path / "airflow-synth-frame-xyz"
    other = tmp_path / "pytest-of-root"
    for folder in (old, fresh, frame, other):
        folder.mkdir()
        (folder / "real.parquet").write_bytes(b"emails")
    for folder in (old, frame, other):
        age(folder, 30)
    report = sweep_task_folders([tmp_path])
    assert sorted(report.task_folders) == sorted([str(old), str(frame)])
    assert fresh.exists() and other.exists()


# --- the published bucket ------------------------------------------------------------------
ATTEMPT = "attempt-20260101T000000000000Z-0123abcd"


def published(tmp_path: Path) -> FileObjectStore:
    store = FileObjectStore(tmp_path / "synthetic")
    put(store, "sales/latest.json", hours=50)
    put(store, "sales/published/manifest.json", hours=50)
    put(store, f"sales/published/{ATTEMPT}/data.parquet", hours=50)
    put(store, f"_models/sales/published/{ATTEMPT}/model.pkl", hours=50)
    put(store, f"sales/died/{ATTEMPT}/data.parquet", hours=50)  # no manifest
    put(store, f"_models/sales/died/{ATTEMPT}/model.pkl", hours=50)
    put(store, f"sales/uploading/{ATTEMPT}/data.parquet", hours=0.1)  # in flight
    put(store, f"_models/sales/orphan/{ATTEMPT}/model.pkl", hours=50)  # a model, no run
    put(store, "sales/_failed/gated/report.html", hours=50)  # a gate's quarantine
    put(store, f"other/died/{ATTEMPT}/data.parquet", hours=50)
    put(store, "_airflow_synth/conditional-write-probe/abc", hours=50)
    return store


def test_manifest_less_runs_and_their_models_go(tmp_path: Path) -> None:
    store = published(tmp_path)
    report = sweep_published(store, "synthetic", datasets=["sales"])
    assert sorted(report.published_runs) == [
        "s3://synthetic/sales/died/",
        "s3://synthetic/sales/orphan/",
    ]
    assert report.published_objects == 3
    left = keys(store)
    assert f"sales/died/{ATTEMPT}/data.parquet" not in left
    assert f"_models/sales/died/{ATTEMPT}/model.pkl" not in left
    assert f"_models/sales/orphan/{ATTEMPT}/model.pkl" not in left
    for kept in (
        "sales/latest.json",
        "sales/published/manifest.json",
        f"sales/published/{ATTEMPT}/data.parquet",
        f"_models/sales/published/{ATTEMPT}/model.pkl",
        f"sales/uploading/{ATTEMPT}/data.parquet",
        "sales/_failed/gated/report.html",
        f"other/died/{ATTEMPT}/data.parquet",  # another dataset: not asked for
        "_airflow_synth/conditional-write-probe/abc",
    ):
        assert kept in left, kept


def test_every_dataset_when_none_is_named_and_kept_runs_stay(tmp_path: Path) -> None:
    store = published(tmp_path)
    report = sweep_published(store, "synthetic", keep=[("sales", "died")])
    assert sorted(report.published_runs) == [
        "s3://synthetic/other/died/",
        "s3://synthetic/sales/orphan/",
    ]


def test_prune_gives_published_runs_to_the_publishers_rule(tmp_path: Path) -> None:
    store = published(tmp_path)
    seen: list[Any] = []

    def prune(store: Any, layout: Any) -> list[str]:
        seen.append((layout.dataset, layout.run))
        return ["x", "y"]

    report = sweep_published(store, "synthetic", prune=True, prune_attempts=prune)
    assert seen == [("sales", "published")]
    assert report.pruned_objects == 2


# --- all places, one report ----------------------------------------------------------------
class BrokenStore:
    def list_objects(self, prefix: str) -> list:
        raise ConnectionError("server down")


def test_one_place_failing_is_a_warning_and_the_others_are_swept(tmp_path: Path) -> None:
    root = tmp_path / "staging"
    old = run_staging_dir("esl", "r1", "users", base=root)
    age(old, 30)
    report = sweep(
        staging_store=BrokenStore(),
        staging_bucket="synthetic-staging",
        staging_prefix="runs",
        local_roots=[root],
        published_store=published(tmp_path),
        published_bucket="synthetic",
    )
    assert report.local_folders == [str(old)]
    assert len(report.published_runs) == 3
    assert report.warnings == [
        "could not sweep s3://synthetic-staging/runs/: ConnectionError: server down"
    ]
    assert "removed 1 local staging folder(s)" in report.summary()
    assert "1 warning(s)" in report.summary()
    assert SweepReport().summary() == "nothing to sweep"


# --- the Airflow shell -----------------------------------------------------------------------
class LocalHook(SynthHook):
    """A SynthHook whose published bucket is a folder (no S3 in unit tests)."""

    def __init__(self, tmp_path: Path, extra: dict[str, Any] | None = None) -> None:
        super().__init__(None, aws_conn_id="synth_s3", bucket="synthetic")
        self.store = published(tmp_path)
        self.__dict__["settings"] = extra or {}

    def get_conn(self) -> Any:
        return self.store


def test_the_age_comes_from_the_argument_else_the_connection_else_24_hours(
    tmp_path: Path,
) -> None:
    assert sweep_age(LocalHook(tmp_path)).total_seconds() == 24 * HOURS
    hook = LocalHook(tmp_path, {"sweep_after_hours": "6"})
    assert sweep_age(hook).total_seconds() == 6 * HOURS
    assert sweep_age(hook, "0").total_seconds() == 0
    with pytest.raises(SynthesizerConfigError, match="sweep_after_hours must be a number"):
        sweep_age(hook, "-1")
    with pytest.raises(ConnectionConfigError, match="sweep_after_hours"):
        sweep_age(LocalHook(tmp_path, {"sweep_after_hours": "soon"}))


def context(run_id: str = "manual__now") -> dict[str, Any]:
    return {"dag": SimpleNamespace(dag_id="esl"), "run_id": run_id}


def test_the_maintenance_sweep_reports_what_it_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "staging"
    monkeypatch.setenv("SYNTH_STAGING_DIR", str(root))
    old = run_staging_dir("esl", "manual__old", "users", base=root)
    age(old, 30)
    hook = LocalHook(tmp_path)
    result = execute_sweep(context(), hook=hook, temp_dirs=[tmp_path / "tmp"], prune=False)
    assert result["local_folders"] == [str(old)]
    assert len(result["published_runs"]) == 3
    assert result["older_than_hours"] == 24


def test_the_maintenance_sweep_fails_visibly_when_a_place_could_not_be_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTH_STAGING_DIR", str(tmp_path / "staging"))
    hook = LocalHook(tmp_path)
    hook.store = BrokenStore()  # type: ignore[assignment]
    with pytest.raises(SynthError, match="could not sweep s3://synthetic/"):
        execute_sweep(context(), hook=hook, temp_dirs=[])


def test_a_run_start_sweep_keeps_its_own_run_and_never_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "staging"
    monkeypatch.setenv("SYNTH_STAGING_DIR", str(root))
    mine = run_staging_dir("esl", "manual__now", "sales", base=root)
    other = run_staging_dir("esl", "manual__old", "sales", base=root)
    age(mine, 30)  # a rerun of an old run: its own staging stays
    age(other, 30)
    hook = LocalHook(tmp_path)
    put(hook.store, f"sales/manual__now/{ATTEMPT}/data.parquet", hours=50)
    with caplog.at_level(logging.INFO, logger="airflow_synth.maintenance"):
        report = sweep_at_run_start(context(), "sales", hook)
    assert report is not None
    assert report.local_folders == [str(other)] and mine.is_dir()
    assert "s3://synthetic/sales/manual__now/" not in report.published_runs
    assert "s3://synthetic/other/died/" not in report.published_runs  # this dataset only
    assert "Sweep of leftovers older than 24 h: removed" in caplog.text

    broken = LocalHook(tmp_path, {"sweep_after_hours": "soon"})
    with caplog.at_level(logging.WARNING, logger="airflow_synth.maintenance"):
        assert sweep_at_run_start(context(), "sales", broken) is None
    assert "Sweeping leftovers of earlier runs failed" in caplog.text
