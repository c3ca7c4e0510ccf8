"""``S3ObjectStore`` and ``SynthHook`` against the session's real S3 server (SeaweedFS).

Everything goes through an Airflow AWS connection given as an ``AIRFLOW_CONN_*``
environment variable (no metadata DB involved), exactly as a deployment configures it.
Every test works under its own unique prefix or dataset in bucket ``synthetic`` and
deletes it afterwards; contents are always checked with the plain boto3 client.
"""

from __future__ import annotations

import hashlib
import json
import socket
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.client import BaseClient

from airflow_synth.core.assess.checks import CheckSettings
from airflow_synth.core.engine.reuse import RECORD_FILE, TABLE_MODEL_FILE
from airflow_synth.core.engine.synthesizers import resolve_synthesizer
from airflow_synth.core.errors import (
    ConnectionConfigError,
    PublishError,
    StorageUnavailableError,
)
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.core.publish.store import publish_dataset, read_latest, read_manifest
from airflow_synth.core.steps import run_load, run_synthesize
from airflow_synth.hooks.object_store import S3ObjectStore
from airflow_synth.hooks.synth import SynthHook
from airflow_synth.local import LocalStack

pytestmark = pytest.mark.integration

BUCKET = "synthetic"
CONN_ID = "synth_s3"
ENV = "AIRFLOW_CONN_SYNTH_S3"


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------
def delete_prefix(client: BaseClient, prefix: str) -> None:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    for obj in listed:
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])


def keys_under(client: BaseClient, prefix: str) -> list[str]:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(obj["Key"] for obj in listed)


@pytest.fixture
def good_conn(local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> str:
    """The stack's ``synth_s3`` connection, set before any hook looks it up."""
    uri = local_stack.connection_env()[ENV]
    assert "minioadmin:minioadmin@" in uri
    monkeypatch.setenv(ENV, uri)
    return uri


@pytest.fixture
def prefix(s3_client: BaseClient) -> Iterator[str]:
    """A unique key prefix in bucket ``synthetic``, emptied after the test."""
    value = f"it-store-{uuid.uuid4().hex[:12]}/"
    yield value
    delete_prefix(s3_client, value)


@pytest.fixture
def dataset(s3_client: BaseClient) -> Iterator[str]:
    """A unique dataset name; its published runs and models are deleted after the test."""
    value = f"it_ds_{uuid.uuid4().hex[:12]}"
    yield value
    delete_prefix(s3_client, f"{value}/")
    delete_prefix(s3_client, f"_models/{value}/")


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------
# object store round trip
# --------------------------------------------------------------------------------------------
def test_round_trip_of_every_operation(good_conn, prefix, s3_client, tmp_path):
    store = S3ObjectStore(CONN_ID, BUCKET)
    blob = np.random.default_rng(1).bytes(3 * 1024 * 1024 + 17)  # more than one chunk
    local = tmp_path / "blob.bin"
    local.write_bytes(blob)

    store.put_file(local, f"{prefix}a/blob.bin")
    store.put_bytes(b'{"x": 1}', f"{prefix}a/small.json")
    store.put_bytes(b"", f"{prefix}b/empty")
    store.put_bytes(b"first", f"{prefix}b/over")
    store.put_bytes(b"second", f"{prefix}b/over")  # replace=True: overwriting is allowed

    # what the server holds, read with the plain client
    body = s3_client.get_object(Bucket=BUCKET, Key=f"{prefix}a/blob.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(blob).digest()
    assert s3_client.get_object(Bucket=BUCKET, Key=f"{prefix}b/over")["Body"].read() == b"second"

    assert store.get_bytes(f"{prefix}a/blob.bin") == blob
    assert store.get_bytes(f"{prefix}a/small.json") == b'{"x": 1}'
    assert store.get_bytes(f"{prefix}b/empty") == b""
    assert store.size(f"{prefix}a/blob.bin") == len(blob)
    assert store.size(f"{prefix}b/empty") == 0
    assert store.size(f"{prefix}b/over") == len(b"second")
    assert store.size(f"{prefix}missing") is None

    assert store.list_keys(prefix) == [
        f"{prefix}a/blob.bin",
        f"{prefix}a/small.json",
        f"{prefix}b/empty",
        f"{prefix}b/over",
    ]
    assert store.list_keys(f"{prefix}b/") == [f"{prefix}b/empty", f"{prefix}b/over"]
    assert store.list_keys(f"{prefix}nothing/") == []

    downloaded = store.download(f"{prefix}a/blob.bin", tmp_path / "down.bin")
    assert downloaded.read_bytes() == blob

    store.delete_keys([f"{prefix}a/blob.bin", f"{prefix}b/over", f"{prefix}never-existed"])
    store.delete_keys([])  # nothing to do, no request
    assert keys_under(s3_client, prefix) == [f"{prefix}a/small.json", f"{prefix}b/empty"]
    assert store.get_bytes(f"{prefix}a/blob.bin") is None


def test_list_keys_returns_more_than_one_page(good_conn, prefix):
    """S3 lists 1000 keys per page; the store must not stop at the first page."""
    store = S3ObjectStore(CONN_ID, BUCKET)
    keys = [f"{prefix}k{i:04d}" for i in range(1_005)]
    client = store.hook.get_conn()
    for key in keys:
        client.put_object(Bucket=BUCKET, Key=key, Body=b"")
    assert store.list_keys(prefix) == keys
    store.delete_keys(keys)
    assert store.list_keys(prefix) == []


def test_get_bytes_of_a_missing_key_is_none(good_conn, prefix):
    store = S3ObjectStore(CONN_ID, BUCKET)
    assert store.get_bytes(f"{prefix}does/not/exist.json") is None
    assert store.size(f"{prefix}does/not/exist.json") is None


# --------------------------------------------------------------------------------------------
# check(): the connection and bucket are usable, or the error says what to fix
# --------------------------------------------------------------------------------------------
def test_check_passes_on_the_good_connection(good_conn):
    S3ObjectStore(CONN_ID, BUCKET).check()
    ok, message = SynthHook(aws_conn_id=CONN_ID, bucket=BUCKET).test_connection()
    assert ok, message
    assert message == f"Bucket {BUCKET!r} reachable through {CONN_ID!r}."


def test_check_with_a_wrong_secret(local_stack, monkeypatch):
    uri = local_stack.connection_env()[ENV].replace("minioadmin:minioadmin", "minioadmin:wrong")
    assert ":wrong@" in uri
    monkeypatch.setenv("AIRFLOW_CONN_SYNTH_S3_BADSECRET", uri)
    with pytest.raises(ConnectionConfigError) as err:
        S3ObjectStore("synth_s3_badsecret", BUCKET).check()
    text = str(err.value)
    assert text.startswith(f"Cannot use bucket {BUCKET!r} through connection 'synth_s3_badsecret'")
    assert "Check the access key and secret of connection 'synth_s3_badsecret'." in text
    ok, message = SynthHook(aws_conn_id="synth_s3_badsecret", bucket=BUCKET).test_connection()
    assert not ok and "access key and secret" in message


def test_check_with_a_missing_bucket(good_conn):
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ConnectionConfigError) as err:
        S3ObjectStore(CONN_ID, bucket).check()
    text = str(err.value)
    assert f"through connection {CONN_ID!r}" in text
    assert f"Create bucket {bucket!r} or point the task at an existing bucket." in text


def test_check_with_an_undefined_connection_id(monkeypatch):
    conn_id = f"synth_s3_undefined_{uuid.uuid4().hex[:6]}"
    monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id.upper()}", raising=False)
    with pytest.raises(ConnectionConfigError) as err:
        S3ObjectStore(conn_id, BUCKET).check()
    text = str(err.value)
    assert f"through connection {conn_id!r}" in text
    assert f"Create the Airflow connection {conn_id!r}" in text
    assert f"AIRFLOW_CONN_{conn_id.upper()}" in text


def test_check_with_nothing_listening_on_the_endpoint(local_stack, monkeypatch):
    """A stopped server: the error names the connection, says the outage is transient
    (a task retry is safe) and still points at endpoint_url in case it is wrong."""
    query = parse_qs(urlsplit(local_stack.connection_env()[ENV]).query)
    extra = {
        "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "region_name": query["region_name"][0],
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
    }
    uri = f"aws://minioadmin:minioadmin@/?__extra__={quote(json.dumps(extra), safe='')}"
    monkeypatch.setenv("AIRFLOW_CONN_SYNTH_S3_CLOSED", uri)
    with pytest.raises(StorageUnavailableError) as err:
        S3ObjectStore("synth_s3_closed", BUCKET).check()
    text = str(err.value)
    assert "through connection 'synth_s3_closed'" in text
    assert extra["endpoint_url"] in text  # botocore's message names the endpoint
    assert "transient: the S3 server could not be reached" in text
    assert "botocore legacy mode, 2 attempts in all" in text  # the connection's own retries
    assert "the endpoint_url of connection 'synth_s3_closed' points at it" in text


# --------------------------------------------------------------------------------------------
# publish_dataset through S3
# --------------------------------------------------------------------------------------------
class RecordingStore(S3ObjectStore):
    """The real S3 store, recording each write and what the bucket held just before it."""

    def __init__(self, client: BaseClient, watch: str) -> None:
        super().__init__(CONN_ID, BUCKET)
        self.client, self.watch = client, watch
        self.events: list[tuple[str, str]] = []
        self.present_before: dict[str, list[str]] = {}

    def _record(self, op: str, key: str) -> None:
        self.events.append((op, key))
        self.present_before[key] = keys_under(self.client, self.watch)

    def put_file(self, path: Path, key: str) -> None:
        self._record("put", key)
        super().put_file(path, key)

    def put_bytes(self, data: bytes, key: str) -> None:
        self._record("put", key)
        super().put_bytes(data, key)

    def delete_keys(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        self.events.extend(("delete", key) for key in keys)
        super().delete_keys(keys)


def write_files(folder: Path, rows: int, with_csv: bool) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table({"id": pa.array(range(rows), pa.int64()), "v": [f"v{i}" for i in range(rows)]})
    files = {"data.parquet": folder / "data.parquet", "metadata.json": folder / "metadata.json"}
    pq.write_table(table, files["data.parquet"])
    files["metadata.json"].write_text(json.dumps({"rows": rows}), encoding="utf-8")
    if with_csv:
        files["data.csv"] = folder / "data.csv"
        table.to_pandas().to_csv(files["data.csv"], index=False)
    return files


def check_manifest_matches_the_bucket(s3_client, layout, manifest, files):
    assert [entry["name"] for entry in manifest["files"]] == list(files)
    layout = layout.for_attempt(manifest["attempt"]["id"])
    for entry in manifest["files"]:
        key = layout.key(entry["name"])
        assert entry["uri"] == f"s3://{BUCKET}/{key}"
        body = s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert entry["bytes"] == len(body) == files[entry["name"]].stat().st_size
        assert entry["sha256"] == hashlib.sha256(body).hexdigest()


def test_publish_writes_files_then_manifest_then_latest(good_conn, dataset, s3_client, tmp_path):
    layout = DatasetLayout(bucket=BUCKET, dataset=dataset, run="manual__2026-01-02T03:04:05+00:00")
    assert layout.run == "manual__2026-01-02T03_04_05_00_00"
    files = write_files(tmp_path / "run1", rows=50, with_csv=True)
    store = RecordingStore(s3_client, f"{dataset}/")

    published = publish_dataset(store, layout, files, {"dataset": dataset, "rows": 50})
    attempt = layout.for_attempt(published.attempt)

    data_keys = [attempt.key(name) for name in files]
    puts = [key for op, key in store.events if op == "put"]
    assert puts == [
        *data_keys,
        attempt.attempt_manifest_key,
        layout.manifest_key,
        layout.latest_key,
    ]
    assert not [event for event in store.events if event[0] == "delete"]  # nothing hidden
    # when the run's manifest was written, every file was already there, and no pointer yet
    assert store.present_before[layout.manifest_key] == sorted(
        [*data_keys, attempt.attempt_manifest_key]
    )
    assert layout.manifest_key in store.present_before[layout.latest_key]

    assert keys_under(s3_client, f"{dataset}/") == sorted(
        [*data_keys, attempt.attempt_manifest_key, layout.manifest_key, layout.latest_key]
    )
    manifest = json.loads(
        s3_client.get_object(Bucket=BUCKET, Key=layout.manifest_key)["Body"].read()
    )
    assert manifest["dataset"] == dataset and manifest["rows"] == 50
    assert manifest["manifest_version"] == 2
    check_manifest_matches_the_bucket(s3_client, layout, manifest, files)
    assert read_manifest(store, layout) == manifest

    latest = json.loads(s3_client.get_object(Bucket=BUCKET, Key=layout.latest_key)["Body"].read())
    assert latest["manifest_uri"] == f"s3://{BUCKET}/{attempt.attempt_manifest_key}"
    assert latest["run_manifest_uri"] == f"s3://{BUCKET}/{layout.manifest_key}"
    assert latest["run"] == layout.run and latest["dataset"] == dataset
    assert latest["published_at"] == manifest["published_at"]
    assert read_latest(store, dataset) == latest

    assert published.manifest_uri == latest["manifest_uri"]
    assert published.latest_uri == f"s3://{BUCKET}/{layout.latest_key}"
    assert published.data_uris == {name: f"s3://{BUCKET}/{attempt.key(name)}" for name in files}
    assert published.rows == 50


def test_republish_writes_a_new_attempt_and_the_old_one_stays_readable(
    good_conn, dataset, s3_client, tmp_path
):
    layout = DatasetLayout(bucket=BUCKET, dataset=dataset, run="run_1")
    store = S3ObjectStore(CONN_ID, BUCKET)
    first = write_files(tmp_path / "first", rows=30, with_csv=True)
    one = publish_dataset(store, layout, first, {"rows": 30})
    first_manifest = read_manifest(store, layout)

    again = write_files(tmp_path / "again", rows=40, with_csv=False)
    two = publish_dataset(store, layout, again, {"rows": 40})

    old, new = layout.for_attempt(one.attempt), layout.for_attempt(two.attempt)
    assert keys_under(s3_client, new.attempt_prefix) == sorted(
        [new.key("data.parquet"), new.key("metadata.json"), new.attempt_manifest_key]
    )
    manifest = read_manifest(store, layout)
    assert manifest["rows"] == 40
    assert manifest["published_at"] >= first_manifest["published_at"]
    check_manifest_matches_the_bucket(s3_client, layout, manifest, again)
    parquet = s3_client.get_object(Bucket=BUCKET, Key=new.key("data.parquet"))["Body"].read()
    assert pq.read_table(pa.BufferReader(parquet)).num_rows == 40  # the new content
    # a reader of the first manifest still reads its files, bytes and checksums as listed
    check_manifest_matches_the_bucket(s3_client, layout, first_manifest, first)
    assert old.key("data.csv") in keys_under(s3_client, old.attempt_prefix)


# --------------------------------------------------------------------------------------------
# models: saved by the synthesize step, published with the run, loaded by SynthHook
# --------------------------------------------------------------------------------------------
def training_frame(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows),
            "income": rng.normal(50_000, 12_000, rows).round(2),
            "segment": rng.choice(["a", "b", "c"], rows),
            "active": rng.random(rows) < 0.3,
        }
    )


def test_synth_hook_loads_the_model_published_with_the_run(good_conn, dataset, s3_client, tmp_path):
    frame = training_frame()
    staged = tmp_path / "real.parquet"
    frame.to_parquet(staged, index=False)
    run = "scheduled__2026-01-01T00:00:00+00:00"
    layout = DatasetLayout(bucket=BUCKET, dataset=dataset, run=run)
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    result = run_synthesize(
        staged,
        out_dir,
        dataset=dataset,
        spec=resolve_synthesizer("gaussian_copula", {}),
        num_rows=60,
        seed=11,
        save_model=True,
        layout=layout,
        # 200 rows are too few to measure dependence: waived here, as a user must say so
        checks=CheckSettings.from_mapping({"min_dependence": None}),
    )
    assert result["rows"] == 60
    assert result["training_rows"] + result["holdout_rows"] == 200  # 20% held out
    assert keys_under(s3_client, f"_models/{dataset}/") == []  # nothing before publishing
    published = run_load(
        S3ObjectStore(CONN_ID, BUCKET),
        layout,
        synthetic_path=[Path(u.removeprefix("file://")) for u in result["part_uris"]],
        metadata_path=Path(result["metadata_uri"].removeprefix("file://")),
        source={},
        synthesis=result,
        timings={},
    )
    attempt = layout.for_attempt(published["attempt"])
    assert published["model_uri"] == f"s3://{BUCKET}/{attempt.model_key}"
    model_folder = attempt.model_key.rsplit("/", 1)[0]
    assert keys_under(s3_client, f"_models/{dataset}/") == sorted(
        [
            attempt.model_key,
            attempt.model_info_key,
            # what a later run needs to reuse the model (nightly reuse): its record, and
            # the table model with its rules
            f"{model_folder}/{RECORD_FILE}",
            f"{model_folder}/{TABLE_MODEL_FILE}",
        ]
    )
    info = json.loads(
        s3_client.get_object(Bucket=BUCKET, Key=attempt.model_info_key)["Body"].read()
    )
    assert info["dataset"] == dataset and info["run"] == layout.run and info["seed"] == 11
    assert info["synthesizer"]["name"] == "gaussian_copula"
    assert info["versions"] == result["versions"]

    work = tmp_path / "work"
    work.mkdir()
    hook = SynthHook(aws_conn_id=CONN_ID, bucket=BUCKET)
    model = hook.load_model(dataset, run, work)
    assert list(work.iterdir()) == []  # the downloaded pickle is removed after loading
    assert type(model).__name__ == "ProfiledSynthesizer"  # decodes the column profile
    assert type(model.synthesizer).__name__ == "GaussianCopulaSynthesizer"
    sampled = model.sample(num_rows=25)  # SDV 2.0: {table name: DataFrame}
    assert list(sampled) == [layout.dataset]
    sample = sampled[layout.dataset]
    assert len(sample) == 25
    assert list(sample.columns) == list(frame.columns)
    assert set(sample["segment"].dropna()) <= {"a", "b", "c"}
    assert sample["age"].between(18, 89).all()


def test_load_model_of_a_run_never_published_names_its_manifest(good_conn, dataset, tmp_path):
    hook = SynthHook(aws_conn_id=CONN_ID, bucket=BUCKET)
    with pytest.raises(PublishError, match=rf"No manifest at s3://{BUCKET}/{dataset}/nope/"):
        hook.load_model(dataset, "nope", tmp_path)


def test_load_model_of_a_run_published_without_a_model_says_so(good_conn, dataset, tmp_path):
    layout = DatasetLayout(bucket=BUCKET, dataset=dataset, run="dry")
    files = write_files(tmp_path / "dry", rows=5, with_csv=False)
    publish_dataset(S3ObjectStore(CONN_ID, BUCKET), layout, files, {"rows": 5})
    hook = SynthHook(aws_conn_id=CONN_ID, bucket=BUCKET)
    with pytest.raises(PublishError, match="published without one"):
        hook.load_model(dataset, "dry", tmp_path)
