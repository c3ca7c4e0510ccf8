"""The ready-made maintenance DAG runs under ``dag.test()`` and sweeps old leftovers.

A task folder and a local run staging folder that a killed worker left 30 hours ago are
removed; a fresh one stays (the sweeper itself is tested in ``tests/unit/test_sweep.py``
and, on the real servers with killed workers, in ``tests/faults/``).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from airflow_synth.core.extract.staging import run_staging_dir

pytestmark = pytest.mark.dags


def aged(path: Path, hours: float) -> Path:
    then = time.time() - hours * 3600
    for item in [path, *path.rglob("*")]:
        os.utime(item, (then, then))
    return path


def test_the_maintenance_dag_sweeps_what_killed_runs_left(
    project_dag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp, staging = tmp_path / "tmp", tmp_path / "staging"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # this test's own, not the machine's
    monkeypatch.setenv("SYNTH_STAGING_DIR", str(staging))
    task_folder = temp / "airflow-synth-task-killed"
    task_folder.mkdir()
    (task_folder / "real.parquet").write_bytes(b"real rows")
    aged(task_folder, 30)
    old_run = run_staging_dir("esl_airbnb_bookings", "manual__crashed", "airbnb_bookings", staging)
    (old_run / "real.parquet").write_bytes(b"real rows")
    aged(old_run, 30)
    fresh_run = run_staging_dir("esl_airbnb_bookings", "manual__now", "airbnb_bookings", staging)

    dag_run = project_dag("synth_maintenance").test(run_conf={"sweep_after_hours": 24})

    assert dag_run.state == "success"
    assert not task_folder.exists() and not old_run.exists()
    assert fresh_run.is_dir()
