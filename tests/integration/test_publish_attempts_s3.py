"""Publish attempts, forward-only ``latest.json`` and conditional writes on the session's
real S3 server (SeaweedFS), through an Airflow AWS connection.

A rerun whose N-th upload fails leaves the old manifest readable with matching checksums
and ``latest.json`` untouched; two runs finishing in reverse order leave ``latest`` at the
newer one (with conditional writes, and with the read-compare-write fallback); writers
racing on ``latest.json`` end at the newest.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient

from airflow_synth.core.errors import PublishError
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.core.publish.pointer import conditional_writes, rank, replace_forward
from airflow_synth.core.publish.store import publish_dataset, read_latest, read_manifest
from airflow_synth.hooks.conditional import ConditionalWrites, with_conditional_writes
from airflow_synth.hooks.object_store import S3ObjectStore
from airflow_synth.local import LocalStack

pytestmark = pytest.mark.integration

BUCKET = "synthetic"
CONN_ID = "synth_s3"


def keys_under(client: BaseClient, prefix: str) -> list[str]:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(obj["Key"] for obj in listed)


def delete_prefix(client: BaseClient, prefix: str) -> None:
    for key in keys_under(client, prefix):
        client.delete_object(Bucket=BUCKET, Key=key)


@pytest.fixture
def conn(local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SYNTH_S3", local_stack.connection_env()["AIRFLOW_CONN_SYNTH_S3"]
    )


@pytest.fixture
def dataset(s3_client: BaseClient) -> Iterator[str]:
    value = f"it_attempts_{uuid.uuid4().hex[:12]}"
    yield value
    delete_prefix(s3_client, f"{value}/")
    delete_prefix(s3_client, f"_models/{value}/")


def store() -> Any:
    return with_conditional_writes(S3ObjectStore(CONN_ID, BUCKET))


class FailingNthUpload:
    """The real S3 store, whose ``fail_at``-th file upload dies (a connection dropped)."""

    def __init__(self, inner: Any, fail_at: int) -> None:
        self.inner, self.fail_at, self.uploads = inner, fail_at, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_file(self, path: Path, key: str) -> None:
        self.uploads += 1
        if self.uploads == self.fail_at:
            raise ConnectionResetError("connection reset by peer")
        self.inner.put_file(path, key)


def files_of(folder: Path, tag: str) -> tuple[dict[str, Path], dict[str, Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in ("data/part-00000.parquet", "data/part-00001.parquet", "report.html"):
        path = folder / name.replace("/", "_")
        path.write_bytes(f"{tag} {name} ".encode() * 200)
        files[name] = path
    model = {}
    for name in ("model.pkl", "model.json"):
        path = folder / name
        path.write_bytes(f"{tag} {name}".encode() * 20)
        model[name] = path
    return files, model


def publish(target: Any, layout: DatasetLayout, folder: Path, tag: str, run_date: Any) -> Any:
    files, model = files_of(folder / tag, tag)
    return publish_dataset(
        target, layout, files, {"rows": 2, "tag": tag}, model_files=model, run_date=run_date
    )


def read_through(client: BaseClient, manifest: dict[str, Any]) -> dict[str, bytes]:
    """Every file the manifest lists, by its URI, checked against its size and sha256."""
    seen = {}
    for entry in manifest["files"] + manifest["model"]["files"]:
        key = entry["uri"].removeprefix(f"s3://{BUCKET}/")
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert len(body) == entry["bytes"]
        assert hashlib.sha256(body).hexdigest() == entry["sha256"], entry["uri"]
        seen[entry["name"]] = body
    return seen


def test_the_server_honours_conditional_writes_and_the_probe_says_so(
    conn: None, dataset: str, s3_client: BaseClient
) -> None:
    target = store()
    assert isinstance(target, ConditionalWrites)
    assert conditional_writes(target)
    key = f"{dataset}/probe.json"
    assert target.put_bytes_if(b"1", key, if_none_match=True)
    assert not target.put_bytes_if(b"2", key, if_none_match=True)
    body, etag = target.get_bytes_with_etag(key)
    assert body == b"1"
    assert not target.put_bytes_if(b"3", key, if_match='"not-the-etag"')
    assert target.put_bytes_if(b"4", key, if_match=etag)
    assert s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"4"
    assert target.get_bytes_with_etag(f"{dataset}/nothing") is None
    assert keys_under(s3_client, "_airflow_synth/") == []  # the probe cleaned up


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4, 5])
def test_a_rerun_failing_at_its_nth_upload_leaves_the_old_publication_readable(
    conn: None, dataset: str, s3_client: BaseClient, tmp_path: Path, fail_at: int
) -> None:
    """Uploads 1-3 are the run's files, 4-5 its model. After the failure: the run's
    manifest is the old one, every file it lists has the listed bytes and sha256, the
    pointer is unchanged, and nothing of the failed attempt is left in the bucket."""
    layout = DatasetLayout(BUCKET, dataset, "scheduled__2026-01-05T00:00:00+00:00")
    run_date = datetime(2026, 1, 5, tzinfo=UTC)
    publish(store(), layout, tmp_path, "old", run_date)
    old_manifest = read_manifest(store(), layout)
    old_latest = read_latest(store(), dataset)
    old_bytes = read_through(s3_client, old_manifest)
    before = keys_under(s3_client, f"{dataset}/") + keys_under(s3_client, f"_models/{dataset}/")

    with pytest.raises(PublishError, match="connection reset by peer"):
        publish(FailingNthUpload(store(), fail_at), layout, tmp_path, "new", run_date)

    assert read_manifest(store(), layout) == old_manifest
    assert read_latest(store(), dataset) == old_latest
    assert read_through(s3_client, old_manifest) == old_bytes
    after = keys_under(s3_client, f"{dataset}/") + keys_under(s3_client, f"_models/{dataset}/")
    assert after == before


@pytest.mark.parametrize("conditional", [True, False])
def test_two_runs_finishing_in_reverse_order_leave_latest_at_the_newer(
    conn: None, dataset: str, tmp_path: Path, conditional: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not conditional:  # a server that ignores If-Match: the read-compare-write fallback
        monkeypatch.setitem(ConditionalWrites._support, (CONN_ID, BUCKET), False)
    target = store()
    assert conditional_writes(target) is conditional
    older = DatasetLayout(BUCKET, dataset, "scheduled__2026-01-01T00:00:00+00:00")
    newer = DatasetLayout(BUCKET, dataset, "scheduled__2026-01-02T00:00:00+00:00")
    late = publish(target, newer, tmp_path, "newer", datetime(2026, 1, 2, tzinfo=UTC))
    early = publish(target, older, tmp_path, "older", datetime(2026, 1, 1, tzinfo=UTC))
    latest = read_latest(target, dataset)
    assert latest["run"] == newer.run and latest["manifest_uri"] == late.manifest_uri
    assert late.latest_moved and not early.latest_moved
    assert read_manifest(target, older)["tag"] == "older"  # published all the same


def test_racing_writers_leave_latest_at_the_newest(conn: None, dataset: str) -> None:
    """Eight publications move the pointer at once, in no particular order: with
    conditional writes the newest always ends up named, whoever writes last."""
    key = f"{dataset}/latest.json"
    base = datetime(2026, 1, 1, tzinfo=UTC)
    bodies = [
        {"run": f"r{i}", "run_date": (base + timedelta(days=i)).isoformat()} for i in range(8)
    ]
    order = [3, 7, 0, 5, 1, 6, 2, 4]

    def move(body: dict[str, Any]) -> Any:
        return replace_forward(store(), key, lambda cur: body if rank(body) > rank(cur) else None)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(move, [bodies[i] for i in order]))
    assert json.loads(store().get_bytes(key))["run"] == "r7"
