"""Atomic publishing to an object store (airflow_synth.core.publish.store, steps.run_load).

Consumers only ever go through a manifest (or the ``latest`` pointer), so the rules under
test are: the manifest is written last, a failure before it leaves no manifest, and every
file sits under the publish attempt's own prefix (reruns: ``test_publish_attempts.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from airflow_synth.core.errors import PublishError, SynthError
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.core.publish.store import (
    FAILED_INDEX,
    MANIFEST_VERSION,
    FileObjectStore,
    PublishedDataset,
    failed_report_uri,
    is_report_name,
    json_bytes,
    publish_dataset,
    publish_failed_reports,
    read_latest,
    read_manifest,
    sha256_file,
)
from airflow_synth.core.steps import run_load

pytestmark = pytest.mark.unit


class RecordingStore(FileObjectStore):
    """A FileObjectStore that records every write and delete, in order."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[tuple[str, str]] = []
        self.manifest_seen_during_upload: list[bool] = []
        self.watch_manifest: str | None = None

    def put_file(self, path: Path, key: str) -> None:
        if self.watch_manifest is not None:
            self.manifest_seen_during_upload.append(self.get_bytes(self.watch_manifest) is not None)
        self.calls.append(("put_file", key))
        FileObjectStore.put_bytes(self, Path(path).read_bytes(), key)  # not recorded twice

    def put_bytes(self, data: bytes, key: str) -> None:
        self.calls.append(("put_bytes", key))
        super().put_bytes(data, key)

    def delete_keys(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        self.calls.extend(("delete", k) for k in keys)
        super().delete_keys(keys)


class FailingStore(FileObjectStore):
    """Fails when uploading one particular key (a dropped connection mid-publish)."""

    def __init__(self, root: Path, fail_on: str) -> None:
        super().__init__(root)
        self.fail_on = fail_on

    def put_file(self, path: Path, key: str) -> None:
        if key.endswith(self.fail_on):
            raise ConnectionResetError("connection reset by peer")
        super().put_file(path, key)


class TruncatingStore(FileObjectStore):
    """Stores fewer bytes than it was given for one key (a silently truncated upload)."""

    def __init__(self, root: Path, truncate: str) -> None:
        super().__init__(root)
        self.truncate = truncate

    def put_file(self, path: Path, key: str) -> None:
        data = Path(path).read_bytes()
        self.put_bytes(data[:-3] if key.endswith(self.truncate) else data, key)


@pytest.fixture
def layout() -> DatasetLayout:
    return DatasetLayout("synthetic", "users", "manual__2024-03-01T10:00:00+00:00")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Three local files of different sizes, as the load step would publish them."""
    src = tmp_path / "src"
    src.mkdir()
    contents = {
        "data.parquet": b"PAR1" + bytes(range(256)) * 4 + b"PAR1",
        "data.csv": b"id,age\n1,30\n2,41\n",
        "metadata.json": b'{"tables": {}}',
    }
    out = {}
    for name, data in contents.items():
        (src / name).write_bytes(data)
        out[name] = src / name
    return out


MANIFEST = {"dataset": "users", "rows": 2, "source": {"conn_id": "userbookings_db"}}


# --------------------------------------------------------------------------------------------
# FileObjectStore
# --------------------------------------------------------------------------------------------
def test_file_store_round_trip(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    assert store.get_bytes("a/b.txt") is None
    assert store.size("a/b.txt") is None
    store.put_bytes(b"hello", "a/b.txt")
    store.put_bytes(b"x" * 10, "a/c/d.bin")
    store.put_bytes(b"top", "ab.txt")
    assert store.get_bytes("a/b.txt") == b"hello"
    assert store.size("a/c/d.bin") == 10
    assert store.list_keys("a/") == ["a/b.txt", "a/c/d.bin"]
    assert store.list_keys("a") == ["a/b.txt", "a/c/d.bin", "ab.txt"]
    assert store.list_keys("zzz") == []
    store.put_bytes(b"bye", "a/b.txt")  # overwrite
    assert store.get_bytes("a/b.txt") == b"bye"
    assert not list((tmp_path / "bucket").rglob("*.tmp"))
    store.delete_keys(["a/b.txt", "never/there"])
    assert store.list_keys("") == ["a/c/d.bin", "ab.txt"]


def test_file_store_put_file_copies_bytes(tmp_path: Path, files: dict[str, Path]) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    store.put_file(files["data.csv"], "x/data.csv")
    assert store.get_bytes("x/data.csv") == files["data.csv"].read_bytes()
    assert files["data.csv"].exists()  # a copy, not a move


# --------------------------------------------------------------------------------------------
# publish_dataset: happy path
# --------------------------------------------------------------------------------------------
def test_publish_uploads_files_and_a_complete_manifest(
    tmp_path: Path, layout: DatasetLayout, files: dict[str, Path]
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    published = publish_dataset(store, layout, files, MANIFEST)
    attempt = layout.for_attempt(published.attempt)

    for name, path in files.items():
        assert store.get_bytes(attempt.key(name)) == path.read_bytes()
    manifest = read_manifest(store, layout)
    assert manifest is not None
    assert manifest["manifest_version"] == MANIFEST_VERSION
    assert manifest["dataset"] == "users" and manifest["rows"] == 2
    assert manifest["source"] == {"conn_id": "userbookings_db"}
    assert [f["name"] for f in manifest["files"]] == ["data.parquet", "data.csv", "metadata.json"]
    for entry in manifest["files"]:
        data = files[entry["name"]].read_bytes()
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["uri"] == f"s3://synthetic/{attempt.key(entry['name'])}"
    published_at = datetime.fromisoformat(manifest["published_at"])
    assert published_at.tzinfo is not None
    assert abs((datetime.now(UTC) - published_at).total_seconds()) < 60
    assert manifest["attempt"]["id"] == published.attempt
    assert manifest["run_date"] == manifest["attempt"]["started_at"]  # no run date given
    assert "model" not in manifest  # no model given

    assert published.manifest_uri == layout.uri(attempt.attempt_manifest_key)
    assert published.run_manifest_uri == layout.uri(layout.manifest_key)
    assert manifest["manifest_uri"] == published.manifest_uri
    assert published.data_uris == {e["name"]: e["uri"] for e in manifest["files"]}
    assert published.latest_uri == "s3://synthetic/users/latest.json"
    assert published.rows == 2
    assert published.seconds >= 0


def test_manifest_is_written_after_every_file_and_latest_after_it(
    tmp_path: Path, layout: DatasetLayout, files: dict[str, Path]
) -> None:
    store = RecordingStore(tmp_path / "bucket")
    published = publish_dataset(store, layout, files, MANIFEST)
    attempt = layout.for_attempt(published.attempt)
    writes = [key for op, key in store.calls if op.startswith("put")]
    assert writes == [
        attempt.key("data.parquet"),
        attempt.key("data.csv"),
        attempt.key("metadata.json"),
        attempt.attempt_manifest_key,
        layout.manifest_key,
        layout.latest_key,
    ]


def test_latest_points_at_the_manifest(
    tmp_path: Path, layout: DatasetLayout, files: dict[str, Path]
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    assert read_latest(store, "users") is None
    publish_dataset(store, layout, files, MANIFEST)
    latest = read_latest(store, "users")
    manifest = read_manifest(store, layout)
    assert latest is not None and manifest is not None
    assert latest["manifest_uri"] == manifest["manifest_uri"]
    assert latest["run_manifest_uri"] == "s3://synthetic/" + layout.manifest_key
    assert latest["run"] == layout.run
    assert latest["dataset"] == "users"
    assert latest["published_at"] == manifest["published_at"]
    # the pointer resolves: strip the bucket and read the key it names
    key = latest["manifest_uri"].removeprefix("s3://synthetic/")
    assert json.loads(store.get_bytes(key) or b"null") == manifest


def test_latest_moves_to_the_newest_run_and_old_runs_stay(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    first = DatasetLayout("synthetic", "users", "run1")
    second = DatasetLayout("synthetic", "users", "run10")
    one = publish_dataset(store, first, files, MANIFEST)
    publish_dataset(store, second, {"data.parquet": files["data.parquet"]}, MANIFEST)
    assert (read_latest(store, "users") or {})["run"] == "run10"
    # run10's publish did not touch run1 even though "run1" is a string prefix of "run10"
    assert read_manifest(store, first) is not None
    old = first.for_attempt(one.attempt)
    assert store.get_bytes(old.key("data.csv")) == files["data.csv"].read_bytes()


def test_update_latest_false_leaves_the_pointer_alone(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    current = DatasetLayout("synthetic", "users", "current")
    backfill = DatasetLayout("synthetic", "users", "backfill")
    publish_dataset(store, current, files, MANIFEST)
    publish_dataset(store, backfill, files, MANIFEST, update_latest=False)
    assert read_manifest(store, backfill) is not None
    assert (read_latest(store, "users") or {})["run"] == "current"


# --------------------------------------------------------------------------------------------
# publish_dataset: failures
# --------------------------------------------------------------------------------------------
def test_failure_mid_upload_leaves_no_manifest_and_names_the_file(
    tmp_path: Path, layout: DatasetLayout, files: dict[str, Path]
) -> None:
    store = FailingStore(tmp_path / "bucket", fail_on="data.csv")
    with pytest.raises(PublishError) as err:
        publish_dataset(store, layout, files, MANIFEST)
    message = str(err.value)
    assert "Uploading data.csv to s3://synthetic/" + layout.run_prefix in message
    assert "/data.csv failed" in message
    assert "connection reset by peer" in message
    assert "Nothing readers see changed" in message
    assert isinstance(err.value.__cause__, ConnectionResetError)
    assert isinstance(err.value, SynthError)
    # the file uploaded before the failure was removed again; nothing makes the run visible
    assert read_manifest(store, layout) is None
    assert read_latest(store, "users") is None
    assert store.list_keys("") == []


def test_truncated_upload_is_detected_before_the_manifest(
    tmp_path: Path, layout: DatasetLayout, files: dict[str, Path]
) -> None:
    store = TruncatingStore(tmp_path / "bucket", truncate="metadata.json")
    with pytest.raises(PublishError) as err:
        publish_dataset(store, layout, files, MANIFEST)
    expected = files["metadata.json"].stat().st_size
    assert f"has {expected - 3} bytes after upload, expected {expected}" in str(err.value)
    assert "/metadata.json has" in str(err.value)
    assert read_manifest(store, layout) is None
    assert read_latest(store, "users") is None


# --------------------------------------------------------------------------------------------
# publish_dataset: re-publishing the same run (more in test_publish_attempts.py)
# --------------------------------------------------------------------------------------------
def test_republish_writes_a_new_attempt_and_never_overwrites_or_hides_the_old_one(
    tmp_path: Path, layout: DatasetLayout, files: dict[str, Path]
) -> None:
    store = RecordingStore(tmp_path / "bucket")
    first = publish_dataset(store, layout, files, MANIFEST)
    old_keys = {key: store.get_bytes(key) for key in store.list_keys(layout.run_prefix)}
    store.calls.clear()
    store.watch_manifest = layout.manifest_key

    smaller = {"data.parquet": files["data.parquet"], "metadata.json": files["metadata.json"]}
    second = publish_dataset(store, layout, smaller, {**MANIFEST, "rows": 5})

    assert not [call for call in store.calls if call[0] == "delete"]
    assert store.manifest_seen_during_upload == [True, True]  # the run stayed readable
    for key, data in old_keys.items():  # the old attempt's files: untouched
        if key != layout.manifest_key:
            assert store.get_bytes(key) == data
    written = {key for op, key in store.calls if op.startswith("put")}
    new = layout.for_attempt(second.attempt)
    assert written == {
        new.key("data.parquet"),
        new.key("metadata.json"),
        new.attempt_manifest_key,
        layout.manifest_key,
        layout.latest_key,
    }
    manifest = read_manifest(store, layout) or {}
    assert manifest["rows"] == 5
    assert [f["name"] for f in manifest["files"]] == ["data.parquet", "metadata.json"]
    assert first.attempt != second.attempt


def test_failed_republish_leaves_the_old_publication_readable(
    tmp_path: Path, layout: DatasetLayout, files: dict[str, Path]
) -> None:
    good = FileObjectStore(tmp_path / "bucket")
    publish_dataset(good, layout, files, MANIFEST)
    before = read_manifest(good, layout)
    failing = FailingStore(tmp_path / "bucket", fail_on="metadata.json")
    with pytest.raises(PublishError, match="Uploading metadata.json"):
        publish_dataset(failing, layout, files, MANIFEST)
    assert read_manifest(good, layout) == before


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def test_sha256_file_matches_hashlib_for_multi_chunk_file(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = bytes(range(256)) * (5 * 4096 + 7)  # > 1 MiB chunk size
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_json_bytes_serialises_dates_and_keeps_order() -> None:
    data = {"z": 1, "when": date(2024, 2, 29), "a": [Path("/x")]}
    decoded = json.loads(json_bytes(data))
    assert list(decoded) == ["z", "when", "a"]
    assert decoded["when"] == "2024-02-29"
    assert decoded["a"] == ["/x"]


def test_published_dataset_to_xcom_is_json_safe() -> None:
    published = PublishedDataset(
        "s3://b/m", {"data.parquet": "s3://b/d"}, "s3://b/l", 3, 1.23456, "s3://b/r", "a", True
    )
    xcom = published.to_xcom()
    assert json.loads(json.dumps(xcom)) == {
        "manifest_uri": "s3://b/m",
        "run_manifest_uri": "s3://b/r",
        "attempt": "a",
        "data_uris": {"data.parquet": "s3://b/d"},
        "latest_uri": "s3://b/l",
        "latest_moved": True,
        "rows": 3,
        "seconds": 1.235,
    }


# --------------------------------------------------------------------------------------------
# run_load (steps): the load step on top of publish_dataset
# --------------------------------------------------------------------------------------------
@pytest.fixture
def synthetic(tmp_path: Path) -> tuple[Path, Path, pa.Table]:
    table = pa.table(
        {
            "id": pa.array([3, 1, 2], pa.int64()),
            "country": pa.array(["DE", None, "FR"], pa.string()),
            "seen": pa.array(
                [datetime(2024, 1, 1, 12), None, datetime(2023, 5, 1)], pa.timestamp("us")
            ),
        }
    )
    work = tmp_path / "work"
    work.mkdir()
    pq.write_table(table, work / "synthetic.parquet")
    (work / "metadata.json").write_text('{"tables": {"users": {}}}', encoding="utf-8")
    return work / "synthetic.parquet", work / "metadata.json", table


SYNTHESIS: dict[str, Any] = {
    "synthetic_uri": "file:///private/staging/synthetic.parquet",
    "metadata_uri": "file:///private/staging/metadata.json",
    "synthesizer": {"name": "gaussian_copula", "params": {}},
    "seed": 7,
    "rows": 3,
    "training_rows": 300,
    "model_uri": None,
    "fit_seconds": 1.0,
    "sample_seconds": 0.1,
    "versions": {"sdv": "2.0.0"},
}


def test_run_load_publishes_parquet_csv_and_a_manifest_without_private_paths(
    tmp_path: Path, layout: DatasetLayout, synthetic: tuple[Path, Path, pa.Table]
) -> None:
    parquet_path, metadata_path, table = synthetic
    store = FileObjectStore(tmp_path / "bucket")
    result = run_load(
        store,
        layout,
        synthetic_path=parquet_path,
        metadata_path=metadata_path,
        source={"conn_id": "userbookings_db", "sql_file": "features/users.sql"},
        synthesis=SYNTHESIS,
        timings={"extract": 1.23456, "synthesize": 2},
        formats=("parquet", "csv"),
    )
    assert result["dataset_uri"] == "s3://synthetic/users"
    assert set(result["data_uris"]) == {"data.parquet", "metadata.json", "data.csv"}
    key = layout.for_attempt(result["attempt"]).key

    published = pq.read_table(store._path(key("data.parquet")))
    assert published.equals(table)
    # Arrow writes null as an empty field and "" as a quoted empty string: both survive
    csv_table = pacsv.read_csv(
        store._path(key("data.csv")),
        convert_options=pacsv.ConvertOptions(
            strings_can_be_null=True, quoted_strings_can_be_null=False
        ),
    )
    assert csv_table.column("id").to_pylist() == [3, 1, 2]
    assert csv_table.column("country").to_pylist() == ["DE", None, "FR"]

    manifest = read_manifest(store, layout) or {}
    assert manifest["rows"] == 3
    assert [c["name"] for c in manifest["columns"]] == ["id", "country", "seen"]
    assert manifest["columns"][2] == {
        "name": "seen",
        "arrow_type": "timestamp[us]",
        "logical_type": "timestamp",
    }
    assert "file://" not in json.dumps(manifest)  # staging paths never leave the worker
    assert set(manifest["synthesis"]) == {
        "synthesizer",
        "seed",
        "rows",
        "training_rows",
        "model_uri",
        "fit_seconds",
        "sample_seconds",
    }
    assert manifest["versions"] == {"sdv": "2.0.0"}
    assert manifest["timings_seconds"]["extract"] == 1.235
    assert manifest["timings_seconds"]["synthesize"] == 2.0
    assert manifest["timings_seconds"]["load"] >= 0
    assert manifest["run"] == layout.run and manifest["dataset"] == "users"


def test_run_load_parquet_only_by_default(
    tmp_path: Path, layout: DatasetLayout, synthetic: tuple[Path, Path, pa.Table]
) -> None:
    parquet_path, metadata_path, _ = synthetic
    store = FileObjectStore(tmp_path / "bucket")
    result = run_load(
        store,
        layout,
        synthetic_path=parquet_path,
        metadata_path=metadata_path,
        source={},
        synthesis=SYNTHESIS,
        timings={},
    )
    attempt = layout.for_attempt(result["attempt"])
    assert store.list_keys(layout.run_prefix) == sorted(
        [
            attempt.key("data.parquet"),
            attempt.key("metadata.json"),
            attempt.attempt_manifest_key,
            layout.manifest_key,
        ]
    )


@pytest.mark.parametrize("formats", [("csv",), ("parquet", "xlsx"), ()])
def test_run_load_rejects_bad_formats_before_uploading(
    tmp_path: Path,
    layout: DatasetLayout,
    synthetic: tuple[Path, Path, pa.Table],
    formats: tuple[str, ...],
) -> None:
    parquet_path, metadata_path, _ = synthetic
    store = FileObjectStore(tmp_path / "bucket")
    with pytest.raises(ValueError, match="must include 'parquet'"):
        run_load(
            store,
            layout,
            synthetic_path=parquet_path,
            metadata_path=metadata_path,
            source={},
            synthesis=SYNTHESIS,
            timings={},
            formats=formats,
        )
    assert store.list_keys("") == []


def test_a_missing_local_file_fails_before_the_published_run_is_touched(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    layout = DatasetLayout("synthetic", "users", "run1")
    data = tmp_path / "data.parquet"
    data.write_bytes(b"x" * 10)
    publish_dataset(store, layout, {"data.parquet": data}, {"rows": 1})
    with pytest.raises(PublishError, match="missing local files"):
        publish_dataset(store, layout, {"data.parquet": tmp_path / "gone.parquet"}, {"rows": 1})
    assert store.get_bytes(layout.manifest_key) is not None


# --------------------------------------------------------------------------------------------
# publish_failed_reports: a run that failed a gate leaves its reports, nothing else
# --------------------------------------------------------------------------------------------
@pytest.fixture
def gate_reports(tmp_path: Path) -> dict[str, Path]:
    """Report files as a failed gate hands them over (plus what must never be uploaded)."""
    src = tmp_path / "reports"
    (src / "reports" / "users").mkdir(parents=True)
    contents = {
        "report.html": b"<html>quality 0.61</html>",
        "quality.json": b'{"score": 0.61}',
        "privacy.json": b'{"dcr_share": 0.5}',
        "metadata.json": b'{"tables": {}}',
        "reports/users/report.html": b"<html>users</html>",
    }
    out = {}
    for name, data in contents.items():
        (src / name).write_bytes(data)
        out[name] = src / name
    return out


def test_failed_reports_go_to_the_quarantine_with_an_index(
    tmp_path: Path, layout: DatasetLayout, gate_reports: dict[str, Path]
) -> None:
    store = RecordingStore(tmp_path / "bucket")
    uris = publish_failed_reports(
        store, layout, gate_reports, failed_gates=["quality_score", "dcr_share"]
    )
    prefix = "users/_failed/manual__2024-03-01T10_00_00_00_00/"
    assert set(uris) == {*gate_reports, FAILED_INDEX}
    assert uris["report.html"] == f"s3://synthetic/{prefix}report.html"
    for name, path in gate_reports.items():
        assert store.get_bytes(prefix + name) == path.read_bytes()
    assert store.calls[-1] == ("put_bytes", prefix + FAILED_INDEX)  # the index comes last
    index = json.loads(store.get_bytes(prefix + FAILED_INDEX) or b"{}")
    assert index["failed_gates"] == ["quality_score", "dcr_share"]
    assert index["run"] == layout.run and index["dataset"] == "users"
    assert index["published"] is False
    assert index["report_uri"] == uris["report.html"]
    assert datetime.fromisoformat(index["failed_at"]).tzinfo is not None
    # nothing outside the quarantine: no run folder, no manifest, no pointer, no model
    assert all(key.startswith(prefix) for key in store.list_keys(""))
    assert read_latest(store, "users") is None
    assert read_manifest(store, layout) is None


def test_the_quarantine_refuses_data_and_models_whatever_it_is_given(
    tmp_path: Path, layout: DatasetLayout, gate_reports: dict[str, Path], files: dict[str, Path]
) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(b"pickle")
    given = {**gate_reports, **files, "model.pkl": model, "../escape.json": files["data.csv"]}
    store = FileObjectStore(tmp_path / "bucket")
    uris = publish_failed_reports(store, layout, given)
    keys = store.list_keys("")
    assert not [k for k in keys if k.rsplit("/", 1)[-1].startswith(("data.", "model."))]
    assert "model.pkl" not in uris and "data.parquet" not in uris and "data.csv" not in uris
    assert "../escape.json" not in uris
    assert "metadata.json" in uris  # a report file, value-free by construction


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("report.html", True),
        ("quality.json", True),
        ("reports/users/report.html", True),
        ("data.parquet", False),
        ("data.csv", False),
        ("reports/users/data.json", False),
        ("model.pkl", False),
        ("model.json", False),
        ("manifest.json", False),
        ("latest.json", False),
        ("../report.html", False),
        ("/report.html", False),
        ("reports//report.html", False),
        ("", False),
    ],
)
def test_is_report_name(name: str, allowed: bool) -> None:
    assert is_report_name(name) is allowed


def test_a_rerun_replaces_its_quarantine_and_leaves_other_runs_alone(
    tmp_path: Path, layout: DatasetLayout, gate_reports: dict[str, Path]
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    other = DatasetLayout("synthetic", "users", "other_run")
    publish_failed_reports(store, other, gate_reports)
    publish_failed_reports(store, layout, gate_reports)
    publish_failed_reports(store, layout, {"quality.json": gate_reports["quality.json"]})
    assert store.list_keys(layout.failed_prefix) == [
        layout.failed_key(FAILED_INDEX),
        layout.failed_key("quality.json"),
    ]
    assert len(store.list_keys(other.failed_prefix)) == len(gate_reports) + 1


def test_a_missing_report_is_listed_not_fatal(
    tmp_path: Path, layout: DatasetLayout, gate_reports: dict[str, Path]
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    uris = publish_failed_reports(store, layout, {**gate_reports, "extra.json": tmp_path / "no"})
    index = json.loads(store.get_bytes(layout.failed_key(FAILED_INDEX)) or b"{}")
    assert index["missing_reports"] == ["extra.json"]
    assert "extra.json" not in uris


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["quality.json", "report.html", FAILED_INDEX], "report.html"),
        (["quality.json", "reports/users/report.html", "reports/b/report.html"], "reports/users"),
        (["quality.json", FAILED_INDEX], FAILED_INDEX),
        ([], None),
    ],
)
def test_failed_report_uri_prefers_the_html_report(names: list[str], expected: str | None) -> None:
    uri = failed_report_uri({name: f"s3://b/ds/_failed/r/{name}" for name in names})
    assert (uri is None) if expected is None else (expected in (uri or ""))


def test_latest_never_points_into_the_quarantine(
    tmp_path: Path, gate_reports: dict[str, Path], files: dict[str, Path]
) -> None:
    """A failed run followed by nothing leaves no pointer; a later success points at its run."""
    store = FileObjectStore(tmp_path / "bucket")
    failed = DatasetLayout("synthetic", "users", "run_failed")
    publish_failed_reports(store, failed, gate_reports, failed_gates=["quality_score"])
    assert read_latest(store, "users") is None
    later = DatasetLayout("synthetic", "users", "run_ok")
    published = publish_dataset(store, later, files, MANIFEST)
    latest = read_latest(store, "users") or {}
    assert latest["manifest_uri"] == published.manifest_uri
    assert "_failed" not in json.dumps(latest)
    assert latest["previous_manifest_uri"] is None  # the failed run was never a publication
    assert store.list_keys(failed.failed_prefix)  # the quarantine stays readable
