"""Publishing never destroys what was published (airflow_synth.core.publish.store).

Every publish attempt writes under keys no other attempt uses; the run's manifest and
``latest.json`` switch only once every file is up, and only forward; a failed attempt
leaves the previous publication, its files and the pointer as they were; superseded
attempts are pruned only after a grace period; the model travels with its publication.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_synth.core.errors import PublishError
from airflow_synth.core.publish import pointer
from airflow_synth.core.publish.layout import DatasetLayout, attempt_started, new_attempt_id
from airflow_synth.core.publish.store import (
    ATTEMPT_GRACE,
    FileObjectStore,
    prune_attempts,
    publish_dataset,
    publish_failed_reports,
    read_latest,
    read_manifest,
)

pytestmark = pytest.mark.unit

BUCKET = "synthetic"


class FailingNthPut(FileObjectStore):
    """Fails the ``fail_at``-th upload of a file (1-based) with a dropped connection."""

    def __init__(self, root: Path, fail_at: int | None = None) -> None:
        super().__init__(root)
        self.fail_at = fail_at
        self.puts = 0

    def put_file(self, path: Path, key: str) -> None:
        self.puts += 1
        if self.puts == self.fail_at:
            raise ConnectionResetError("connection reset by peer")
        super().put_file(path, key)


class FailingKey(FileObjectStore):
    """Fails any write of a key ending with ``suffix`` (files and small objects alike)."""

    def __init__(self, root: Path, suffix: str) -> None:
        super().__init__(root)
        self.suffix = suffix

    def put_bytes(self, data: bytes, key: str) -> None:
        if key.endswith(self.suffix):
            raise ConnectionResetError("connection reset by peer")
        super().put_bytes(data, key)


class PlainStore(FileObjectStore):
    """A store without conditional writes (a server that ignores If-Match)."""

    def supports_conditional_writes(self) -> bool:
        return False


def local_files(folder: Path, tag: str) -> dict[str, Path]:
    """A publication's files; their content differs per ``tag``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in ("data/part-00000.parquet", "data/part-00001.parquet", "metadata.json"):
        path = folder / name.replace("/", "_")
        path.write_bytes(f"{tag}:{name}:".encode() * (50 + len(tag)))
        out[name] = path
    return out


def model_files(folder: Path, tag: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pkl").write_bytes(f"model {tag}".encode() * 10)
    (folder / "model.json").write_bytes(json.dumps({"tag": tag}).encode())
    return {"model.pkl": folder / "model.pkl", "model.json": folder / "model.json"}


def read_through(store: FileObjectStore, manifest: dict[str, Any]) -> dict[str, bytes]:
    """What a reader holding ``manifest`` reads: every file by the URI it lists, checked
    against the manifest's size and sha256 (fails the test on any mismatch)."""
    seen = {}
    for entry in manifest["files"] + (manifest.get("model") or {}).get("files", []):
        data = store.get_bytes(entry["uri"].removeprefix(f"s3://{BUCKET}/"))
        assert data is not None, f"{entry['uri']} is gone"
        assert len(data) == entry["bytes"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["uri"]
        seen[entry["name"]] = data
    return seen


@pytest.fixture
def layout() -> DatasetLayout:
    return DatasetLayout(BUCKET, "users", "scheduled__2026-01-02T00:00:00+00:00")


RUN_DATE = datetime(2026, 1, 2, tzinfo=UTC)


def publish(store: FileObjectStore, layout: DatasetLayout, folder: Path, tag: str, **kw: Any):
    return publish_dataset(
        store,
        layout,
        local_files(folder / tag, tag),
        {"rows": 2, "tag": tag},
        model_files=model_files(folder / tag / "model", tag),
        run_date=kw.pop("run_date", RUN_DATE),
        **kw,
    )


# --------------------------------------------------------------------------------------------
# a failed rerun changes nothing readers can reach
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fail_at", [1, 2, 3, 4, 5])
def test_a_rerun_failing_at_any_upload_leaves_the_old_publication_whole(
    tmp_path: Path, layout: DatasetLayout, fail_at: int
) -> None:
    """Uploads 1-3 are the files, 4-5 the model: whichever fails, the previous manifest,
    every file it names (same bytes, same sha256) and latest.json stay as they were, and the
    failed attempt's uploads are removed."""
    store = FailingNthPut(tmp_path / "bucket")
    first = publish(store, layout, tmp_path, "old")
    before = {key: store.get_bytes(key) for key in store.list_keys("")}
    old_manifest = read_manifest(store, layout) or {}
    old_latest = read_latest(store, "users")
    old_bytes = read_through(store, old_manifest)

    store.puts, store.fail_at = 0, fail_at
    with pytest.raises(PublishError) as caught:
        publish(store, layout, tmp_path, "new")
    assert "connection reset by peer" in str(caught.value)
    assert "Nothing readers see changed" in str(caught.value)

    assert read_manifest(store, layout) == old_manifest
    assert read_latest(store, "users") == old_latest
    assert read_through(store, old_manifest) == old_bytes  # same bytes, checksums match
    assert old_manifest["manifest_uri"] == first.manifest_uri
    # nothing of the failed attempt is left, and nothing of the old one was touched
    assert {key: store.get_bytes(key) for key in store.list_keys("")} == before


def test_a_rerun_whose_manifest_write_fails_changes_nothing(
    tmp_path: Path, layout: DatasetLayout
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    publish(store, layout, tmp_path, "old")
    before = {key: store.get_bytes(key) for key in store.list_keys("")}
    failing = FailingKey(tmp_path / "bucket", "/manifest.json")
    with pytest.raises(PublishError, match="connection reset by peer"):
        publish(failing, layout, tmp_path, "new")
    assert {key: store.get_bytes(key) for key in store.list_keys("")} == before


# --------------------------------------------------------------------------------------------
# a successful rerun: new attempt, old files kept for readers of the old manifest
# --------------------------------------------------------------------------------------------
def test_a_rerun_writes_a_new_attempt_and_old_readers_keep_reading(
    tmp_path: Path, layout: DatasetLayout
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    first = publish(store, layout, tmp_path, "old")
    held = read_manifest(store, layout) or {}  # a reader holds the old manifest
    second = publish(store, layout, tmp_path, "new")

    assert first.attempt != second.attempt
    assert first.manifest_uri != second.manifest_uri
    assert first.run_manifest_uri == second.run_manifest_uri == layout.uri(layout.manifest_key)
    current = read_manifest(store, layout) or {}
    assert current["tag"] == "new" and current["attempt"]["id"] == second.attempt
    assert current["manifest_uri"] == second.manifest_uri
    # the attempt's own manifest is the same body, and stays
    attempt = layout.for_attempt(second.attempt)
    assert json.loads(store.get_bytes(attempt.attempt_manifest_key) or b"{}") == current
    # the reader of the old manifest still reads the old bytes, checksums matching
    assert read_through(store, held)["metadata.json"].startswith(b"old:")
    assert read_through(store, current)["metadata.json"].startswith(b"new:")
    # latest moved to the new attempt of the same run
    latest = read_latest(store, "users") or {}
    assert latest["manifest_uri"] == second.manifest_uri
    assert latest["attempt"]["id"] == second.attempt
    assert second.latest_moved


def test_the_manifest_lists_exactly_its_own_files_under_its_attempt(
    tmp_path: Path, layout: DatasetLayout
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    publish(store, layout, tmp_path, "old")
    published = publish(store, layout, tmp_path, "new")
    manifest = read_manifest(store, layout) or {}
    attempt = layout.for_attempt(published.attempt)
    listed = {e["uri"].removeprefix(f"s3://{BUCKET}/") for e in manifest["files"]}
    assert listed == {attempt.key(n) for n in local_files(tmp_path / "x", "x")}
    assert set(store.list_keys(attempt.attempt_prefix)) == listed | {attempt.attempt_manifest_key}
    model = {e["uri"].removeprefix(f"s3://{BUCKET}/") for e in manifest["model"]["files"]}
    assert model == {attempt.model_key, attempt.model_info_key}
    assert manifest["model"]["uri"] == attempt.uri(attempt.model_key)
    assert set(store.list_keys(attempt.model_prefix)) == model


def test_every_write_of_an_attempt_is_under_its_own_prefix_then_manifests_then_latest(
    tmp_path: Path, layout: DatasetLayout
) -> None:
    writes: list[str] = []

    class Recording(FileObjectStore):
        def put_bytes(self, data: bytes, key: str) -> None:
            writes.append(key)
            super().put_bytes(data, key)

    store = Recording(tmp_path / "bucket")
    publish(store, layout, tmp_path, "old")
    writes.clear()
    published = publish(store, layout, tmp_path, "new")
    attempt = layout.for_attempt(published.attempt)
    files = [attempt.key(n) for n in ("data/part-00000.parquet", "data/part-00001.parquet")]
    files.append(attempt.key("metadata.json"))
    assert writes == [
        *files,
        attempt.model_key,
        attempt.model_info_key,
        attempt.attempt_manifest_key,
        layout.manifest_key,
        layout.latest_key,
    ]


# --------------------------------------------------------------------------------------------
# latest.json and the run's manifest move forward only
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("store_kind", [FileObjectStore, PlainStore])
def test_two_runs_finishing_in_reverse_order_leave_latest_at_the_newer(
    tmp_path: Path, store_kind: type[FileObjectStore]
) -> None:
    store = store_kind(tmp_path / "bucket")
    older = DatasetLayout(BUCKET, "users", "scheduled__2026-01-01")
    newer = DatasetLayout(BUCKET, "users", "scheduled__2026-01-02")
    late = publish(store, newer, tmp_path, "newer", run_date=datetime(2026, 1, 2, tzinfo=UTC))
    early = publish(store, older, tmp_path, "older", run_date="2026-01-01T00:00:00+00:00")
    latest = read_latest(store, "users") or {}
    assert latest["run"] == newer.run
    assert latest["manifest_uri"] == late.manifest_uri
    assert late.latest_moved and not early.latest_moved
    # the older run is published all the same: its own manifest is readable
    assert (read_manifest(store, older) or {})["tag"] == "older"
    # and in the right order, latest moves on
    newest = DatasetLayout(BUCKET, "users", "scheduled__2026-01-03")
    publish(store, newest, tmp_path, "newest", run_date=datetime(2026, 1, 3, tzinfo=UTC))
    latest = read_latest(store, "users") or {}
    assert latest["run"] == newest.run
    assert latest["previous_manifest_uri"] == newer.uri(newer.manifest_key)


def test_run_dates_compare_as_instants_whatever_their_zone(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    a = DatasetLayout(BUCKET, "users", "a")
    b = DatasetLayout(BUCKET, "users", "b")
    publish(store, a, tmp_path, "a", run_date="2026-01-02T01:00:00+02:00")  # 23:00 UTC
    publish(store, b, tmp_path, "b", run_date="2026-01-01T23:30:00+00:00")
    assert (read_latest(store, "users") or {})["run"] == "b"


def test_a_pointer_written_before_attempts_existed_is_moved_past(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    old = {"dataset": "users", "run": "legacy", "manifest_uri": "s3://synthetic/users/legacy/m"}
    store.put_bytes(json.dumps(old).encode(), "users/latest.json")
    publish(store, DatasetLayout(BUCKET, "users", "r1"), tmp_path, "t")
    latest = read_latest(store, "users") or {}
    assert latest["run"] == "r1"
    assert latest["previous_manifest_uri"] == "s3://synthetic/users/legacy/m"


def test_a_writer_that_gets_in_between_is_seen_and_the_decision_made_again(
    tmp_path: Path,
) -> None:
    """Conditional write: between our read and our write a newer run's pointer lands; our
    If-Match fails, we read again, see the newer run and leave it."""
    newer = {"run": "newer", "run_date": "2026-01-09T00:00:00.000000+00:00"}

    class Racing(FileObjectStore):
        raced = False

        def get_bytes_with_etag(self, key: str) -> tuple[bytes, str] | None:
            got = super().get_bytes_with_etag(key)
            if key.endswith("latest.json") and not self.raced:
                self.raced = True
                FileObjectStore.put_bytes(self, json.dumps(newer).encode(), key)
            return got

    store = Racing(tmp_path / "bucket")
    published = publish(store, DatasetLayout(BUCKET, "users", "older"), tmp_path, "o")
    assert store.raced
    assert not published.latest_moved
    assert read_latest(store, "users") == newer


def test_a_replaced_pointer_fails_the_if_match_and_is_decided_again(tmp_path: Path) -> None:
    """As above, over an existing pointer: the write carries If-Match of what was read."""
    newer = {"run": "newer", "run_date": "2026-01-09T00:00:00.000000+00:00"}

    class Racing(FileObjectStore):
        armed = False

        def get_bytes_with_etag(self, key: str) -> tuple[bytes, str] | None:
            got = super().get_bytes_with_etag(key)
            if key.endswith("latest.json") and self.armed:
                self.armed = False
                FileObjectStore.put_bytes(self, json.dumps(newer).encode(), key)
            return got

    store = Racing(tmp_path / "bucket")
    publish(store, DatasetLayout(BUCKET, "users", "oldest"), tmp_path, "a", run_date="2026-01-01")
    store.armed = True
    published = publish(store, DatasetLayout(BUCKET, "users", "older"), tmp_path, "o")
    assert not store.armed  # the race happened
    assert not published.latest_moved
    assert read_latest(store, "users") == newer


def test_the_fallback_reads_back_and_decides_again(tmp_path: Path) -> None:
    """Without conditional writes: our write lands, but a newer writer replaced it before
    the read-back; we read again and leave the newer one."""
    newer = {"run": "newer", "run_date": "2026-01-09T00:00:00.000000+00:00"}

    class Racing(PlainStore):
        raced = False

        def put_bytes(self, data: bytes, key: str) -> None:
            super().put_bytes(data, key)
            if key.endswith("latest.json") and not self.raced:
                self.raced = True
                super().put_bytes(json.dumps(newer).encode(), key)

    store = Racing(tmp_path / "bucket")
    published = publish(store, DatasetLayout(BUCKET, "users", "older"), tmp_path, "o")
    assert store.raced and not published.latest_moved
    assert read_latest(store, "users") == newer


def test_a_pointer_that_never_settles_fails_the_task(tmp_path: Path) -> None:
    class Busy(FileObjectStore):
        def put_bytes_if(self, data: bytes, key: str, **kw: Any) -> bool:
            if key.endswith("latest.json"):
                return False
            return super().put_bytes_if(data, key, **kw)

    store = Busy(tmp_path / "bucket")
    with pytest.raises(PublishError, match=rf"kept changing .*{pointer.MAX_TRIES} tries"):
        publish(store, DatasetLayout(BUCKET, "users", "r"), tmp_path, "t")


def test_an_older_attempt_finishing_late_does_not_replace_the_run_manifest(
    tmp_path: Path, layout: DatasetLayout
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    slow = layout.for_attempt(new_attempt_id(datetime.now(UTC) - timedelta(minutes=5)))
    quick = publish(store, layout, tmp_path, "quick")
    late = publish(store, slow, tmp_path, "slow")
    assert (read_manifest(store, layout) or {})["attempt"]["id"] == quick.attempt
    assert (read_latest(store, "users") or {})["manifest_uri"] == quick.manifest_uri
    assert not late.latest_moved
    # the late attempt stays readable through its own manifest (its task reported it)
    own = json.loads(store.get_bytes(late.manifest_uri.removeprefix(f"s3://{BUCKET}/")) or b"{}")
    assert own["tag"] == "slow"


# --------------------------------------------------------------------------------------------
# pruning superseded and failed attempts
# --------------------------------------------------------------------------------------------
def keys_of_attempt(store: FileObjectStore, layout: DatasetLayout, attempt: str) -> list[str]:
    one = layout.for_attempt(attempt)
    return store.list_keys(one.attempt_prefix) + store.list_keys(one.model_prefix)


def test_superseded_attempts_stay_for_the_grace_then_go(
    tmp_path: Path, layout: DatasetLayout
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    first = publish(store, layout, tmp_path, "one")
    second = publish(store, layout, tmp_path, "two")
    third = publish(store, layout, tmp_path, "three")
    # within the grace: every attempt stays (readers of any older manifest keep reading)
    for published in (first, second, third):
        assert keys_of_attempt(store, layout, published.attempt)
    # once the run's manifest names a newer attempt for longer than the grace
    gone = keys_of_attempt(store, layout, first.attempt)
    gone += keys_of_attempt(store, layout, second.attempt)
    later = datetime.now(UTC) + ATTEMPT_GRACE + timedelta(minutes=1)
    assert sorted(prune_attempts(store, layout, now=later)) == sorted(gone)
    assert not keys_of_attempt(store, layout, first.attempt)
    assert not keys_of_attempt(store, layout, second.attempt)
    assert keys_of_attempt(store, layout, third.attempt)  # the current one, always
    read_through(store, read_manifest(store, layout) or {})


def test_publishing_prunes_what_was_superseded_before_the_grace(
    tmp_path: Path, layout: DatasetLayout
) -> None:
    """At publish time the attempt just replaced stays; an attempt replaced by it longer
    than the grace ago goes."""
    store = FileObjectStore(tmp_path / "bucket")
    first = publish(store, layout, tmp_path, "one")
    second = publish(store, layout, tmp_path, "two")
    # pretend the second was published long ago
    manifest = read_manifest(store, layout) or {}
    manifest["published_at"] = (datetime.now(UTC) - ATTEMPT_GRACE * 2).isoformat()
    store.put_bytes(json.dumps(manifest).encode(), layout.manifest_key)
    third = publish(store, layout, tmp_path, "three")
    assert not keys_of_attempt(store, layout, first.attempt)
    assert keys_of_attempt(store, layout, second.attempt)  # replaced just now: stays
    assert keys_of_attempt(store, layout, third.attempt)


def test_unpublished_attempts_go_once_older_than_the_grace_and_young_ones_stay(
    tmp_path: Path, layout: DatasetLayout
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    publish(store, layout, tmp_path, "published")
    dead = layout.for_attempt(new_attempt_id(datetime.now(UTC) - ATTEMPT_GRACE * 2))
    young = layout.for_attempt()  # another attempt still uploading
    for one in (dead, young):
        store.put_bytes(b"half", one.key("data/part-00000.parquet"))
        store.put_bytes(b"model", one.model_key)
    deleted = prune_attempts(store, layout)
    assert sorted(deleted) == sorted([dead.key("data/part-00000.parquet"), dead.model_key])
    assert store.get_bytes(young.key("data/part-00000.parquet")) == b"half"


def test_latest_and_keep_protect_an_attempt(tmp_path: Path, layout: DatasetLayout) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    first = publish(store, layout, tmp_path, "one")
    second = publish(store, layout, tmp_path, "two")
    # latest.json still names the first attempt (e.g. its move happened, the second's not)
    latest = read_latest(store, "users") or {}
    latest["attempt"] = {"id": first.attempt}
    store.put_bytes(json.dumps(latest).encode(), layout.latest_key)
    later = datetime.now(UTC) + ATTEMPT_GRACE * 2
    assert prune_attempts(store, layout, now=later) == []
    assert keys_of_attempt(store, layout, first.attempt)
    assert prune_attempts(store, layout, now=later, keep=[second.attempt]) == []


def test_files_of_the_layout_before_attempts_count_as_one_published_attempt(
    tmp_path: Path, layout: DatasetLayout
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    legacy = {"dataset": "users", "run": layout.run, "published_at": "2020-01-01T00:00:00+00:00"}
    store.put_bytes(json.dumps(legacy).encode(), layout.manifest_key)
    store.put_bytes(b"old rows", f"{layout.run_prefix}data.parquet")
    assert prune_attempts(store, layout, now=datetime(2030, 1, 1, tzinfo=UTC)) == []  # current
    publish(store, layout, tmp_path, "new")
    assert store.get_bytes(f"{layout.run_prefix}data.parquet") == b"old rows"  # just replaced
    later = datetime.now(UTC) + ATTEMPT_GRACE * 2
    assert prune_attempts(store, layout, now=later) == [f"{layout.run_prefix}data.parquet"]


def test_pruning_never_touches_other_runs_or_the_quarantine_of_others(
    tmp_path: Path, layout: DatasetLayout
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    other = DatasetLayout(BUCKET, "users", layout.run + "0")  # a string-prefix neighbour
    publish(store, other, tmp_path, "other")
    publish(store, other, tmp_path, "other2")
    publish(store, layout, tmp_path, "one")
    publish(store, layout, tmp_path, "two")
    before = store.list_keys(other.run_prefix) + store.list_keys(other.models_run_prefix)
    prune_attempts(store, layout, now=datetime.now(UTC) + ATTEMPT_GRACE * 2)
    assert store.list_keys(other.run_prefix) + store.list_keys(other.models_run_prefix) == before


def test_a_failed_cleanup_does_not_fail_the_publication(
    tmp_path: Path, layout: DatasetLayout, caplog: pytest.LogCaptureFixture
) -> None:
    class NoList(FileObjectStore):
        def list_keys(self, prefix: str) -> list[str]:
            raise ConnectionResetError("listing failed")

    published = publish(NoList(tmp_path / "bucket"), layout, tmp_path, "t")
    assert published.latest_moved
    assert "cleaning up after it failed" in caplog.text


# --------------------------------------------------------------------------------------------
# the gate quarantine of an earlier attempt goes when the run is published
# --------------------------------------------------------------------------------------------
def test_a_published_rerun_removes_its_runs_quarantine_only(
    tmp_path: Path, layout: DatasetLayout
) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    report = tmp_path / "report.html"
    report.write_text("<html>failed</html>")
    other = DatasetLayout(BUCKET, "users", "another_run")
    publish_failed_reports(store, layout, {"report.html": report}, failed_gates=["q"])
    publish_failed_reports(store, other, {"report.html": report}, failed_gates=["q"])
    assert store.list_keys(layout.failed_prefix)
    publish(store, layout, tmp_path, "t")
    assert store.list_keys(layout.failed_prefix) == []
    assert store.list_keys(other.failed_prefix)


def test_a_failed_publish_keeps_the_quarantine(tmp_path: Path, layout: DatasetLayout) -> None:
    store = FailingNthPut(tmp_path / "bucket")
    report = tmp_path / "report.html"
    report.write_text("<html>failed</html>")
    publish_failed_reports(store, layout, {"report.html": report})
    store.puts, store.fail_at = 0, 2
    with pytest.raises(PublishError):
        publish(store, layout, tmp_path, "t")
    assert store.list_keys(layout.failed_prefix)


# --------------------------------------------------------------------------------------------
# the model travels with its publication only
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fail_at", [1, 3, 4, 5])
def test_a_first_publication_that_fails_leaves_no_model_and_no_data(
    tmp_path: Path, layout: DatasetLayout, fail_at: int
) -> None:
    store = FailingNthPut(tmp_path / "bucket", fail_at=fail_at)
    with pytest.raises(PublishError):
        publish(store, layout, tmp_path, "t")
    assert store.list_keys("") == []


def test_attempt_ids_are_unique_sortable_and_carry_their_start() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    ids = {new_attempt_id(moment) for _ in range(50)}
    assert len(ids) == 50
    assert {attempt_started(i) for i in ids} == {moment}
    assert new_attempt_id(moment) < new_attempt_id(moment + timedelta(microseconds=1))
    assert attempt_started("data") is None and attempt_started("attempt-x") is None
    with pytest.raises(ValueError, match="not an attempt id"):
        DatasetLayout(BUCKET, "users", "r", attempt="../x")
