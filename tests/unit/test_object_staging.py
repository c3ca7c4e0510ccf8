"""Staging in an object store: a task's files reach the next task on any worker.

``ObjectStaging`` against a directory-backed object store (the S3 side is the same calls on
``S3ObjectStore``; the DAG tests run it against the session's real S3 server).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_synth.core.extract.staging import ObjectStaging, StagingLocation
from airflow_synth.core.publish.store import FileObjectStore

pytestmark = pytest.mark.unit


def _staging(tmp_path: Path, worker: str) -> ObjectStaging:
    local = tmp_path / worker
    local.mkdir()
    store = FileObjectStore(tmp_path / "bucket")
    return ObjectStaging(store, "synthetic-staging", "runs", "dag/run_1/users", local)


def test_a_result_staged_on_one_worker_is_fetched_on_another(tmp_path: Path) -> None:
    """Every local file the XCom result names travels; names elsewhere stay as they are."""
    first = _staging(tmp_path, "worker-a")
    real = first.local / "real" / "users.parquet"
    real.parent.mkdir()
    real.write_bytes(b"PAR1 real rows")
    result = {
        "staging_uri": real.as_uri(),
        "tables": {"users": {"staging_uri": real.as_uri(), "rows": 3}},
        "table_files": {"users": str(real)},
        "staging_dir": str(first.local),
        "sql_file": "/opt/sql/users.sql",  # not in the workspace: left alone
    }
    staged = first.stage(result)
    uri = "s3://synthetic-staging/runs/dag/run_1/users/real/users.parquet"
    assert staged["staging_uri"] == uri
    assert staged["tables"]["users"] == {"staging_uri": uri, "rows": 3}
    assert staged["table_files"] == {"users": uri}
    assert staged["staging_dir"] == "s3://synthetic-staging/runs/dag/run_1/users/"
    assert staged["sql_file"] == "/opt/sql/users.sql"
    assert str(first.local) not in repr(staged)  # nothing local reaches XCom

    second = _staging(tmp_path, "worker-b")
    fetched = second.fetch(staged)
    copy = second.local / "real" / "users.parquet"
    assert fetched["staging_uri"] == copy.as_uri()
    assert copy.read_bytes() == b"PAR1 real rows"
    assert fetched["staging_dir"] == str(second.local)


def test_the_teardown_removes_every_object_of_the_run_and_only_those(tmp_path: Path) -> None:
    run = _staging(tmp_path, "worker-a")
    (run.local / "a.parquet").write_bytes(b"a")
    run.stage({"x": str(run.local / "a.parquet")})
    other = ObjectStaging(run.store, "synthetic-staging", "runs", "dag/run_2/users", run.local)
    other.stage({"x": str(run.local / "a.parquet")})
    assert run.remove() == 1
    assert run.store.list_keys("runs/dag/run_1/") == []
    assert run.store.list_keys("runs/dag/run_2/") == ["runs/dag/run_2/users/a.parquet"]


def test_a_staged_name_cannot_escape_the_workspace(tmp_path: Path) -> None:
    run = _staging(tmp_path, "worker-a")
    with pytest.raises(ValueError, match="outside the workspace"):
        run.fetch({"x": run.uri + "../../../etc/passwd"})


@pytest.mark.parametrize(
    ("value", "bucket", "prefix", "local"),
    [
        ("s3://private-staging", "private-staging", "runs", False),
        ("s3://shared/airflow/staging/", "shared", "airflow/staging", False),
        ("/var/lib/airflow-staging", None, "runs", True),
        ("file:///var/lib/airflow-staging", None, "runs", True),
    ],
)
def test_staging_locations(value: str, bucket: str | None, prefix: str, local: bool) -> None:
    location = StagingLocation.parse(value)
    assert location.bucket == bucket and location.prefix == prefix
    assert location.in_object_store is not local
    assert (location.local_root == Path("/var/lib/airflow-staging")) is local


def test_a_staging_location_must_be_s3_or_local() -> None:
    with pytest.raises(ValueError, match="neither"):
        StagingLocation.parse("gs://bucket/prefix")
    with pytest.raises(ValueError, match="names no bucket"):
        StagingLocation.parse("s3:///prefix")
