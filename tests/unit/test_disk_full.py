"""A full disk names the folder, its free space and what to do (the real thing, a small
tmpfs, is in ``tests/faults/test_fault_injection.py``)."""

from __future__ import annotations

import errno
from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_synth.core.errors import DiskFullError
from airflow_synth.core.extract.staging import disk_full_named, is_disk_full
from airflow_synth.hooks.synth import SynthHook
from airflow_synth.workspace import task_workspace

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("error", "full"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        # pyarrow's writer: errno set, its own words around the kernel's
        (OSError(28, "Error writing bytes to file. Detail: [errno 28] No space left"), True),
        (OSError("IOError: No space left on device"), True),  # errno lost on the way
        (OSError(errno.EACCES, "Permission denied"), False),
        (ValueError("No space left on device"), False),
    ],
)
def test_a_full_disk_is_recognised(error: BaseException, full: bool) -> None:
    assert is_disk_full(error) is full


def test_the_error_names_the_folder_its_space_and_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(DiskFullError) as raised, disk_full_named(tmp_path, "the run's folder"):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "real.parquet"))
    text = str(raised.value)
    assert f"No space left on the device of {tmp_path}, the run's folder" in text
    assert f"(writing {tmp_path / 'real.parquet'})" in text
    assert " free of " in text  # the filesystem's space, measured
    assert "staging_dir= or $SYNTH_STAGING_DIR" in text and "$TMPDIR" in text
    assert "Nothing was published" in text
    assert raised.value.path == str(tmp_path)
    assert isinstance(raised.value.__cause__, OSError)


def test_other_os_errors_pass_unchanged(tmp_path: Path) -> None:
    with pytest.raises(PermissionError), disk_full_named(tmp_path, "x"):
        raise PermissionError(errno.EACCES, "Permission denied")


@pytest.mark.parametrize("staging", ["local", "object"])
def test_every_step_in_a_task_workspace_names_its_folder(tmp_path: Path, staging: str) -> None:
    context = {"dag": SimpleNamespace(dag_id="faults"), "run_id": "manual__1"}
    hook = SynthHook(aws_conn_id="synth_s3", bucket="synthetic")
    where = str(tmp_path / "staging") if staging == "local" else "s3://synthetic-staging/runs"
    with (
        pytest.raises(DiskFullError) as raised,
        task_workspace(context, "users", hook, where) as ws,
    ):
        local = ws.local
        raise OSError(errno.ENOSPC, "No space left on device")
    assert raised.value.path == str(local)
    what = "local staging folder" if staging == "local" else "working folder"
    assert what in str(raised.value)
