"""Fault injection on the real local servers (``pytest -k fault_injection``).

Each fault is made for real: a PostgreSQL backend terminated and a PostgreSQL server
killed mid-extract, an S3 server (SeaweedFS) SIGKILLed mid-load and mid-staging, an S3
endpoint that answers ``503 SlowDown``, a worker process SIGKILLed mid-fit, a staging disk
that fills up (a small tmpfs where this machine lets us mount one, else a staged file
bound to ``/dev/full``), two runs of one dataset at once. Each asserts what the user is
promised: a clear error that names what failed and says whether it is transient, no
partial dataset visible to readers, no real rows left after the sweeper, and that the
rerun succeeds.

A fault that kills a server kills its own throwaway server (started here like
``airflow_synth.local`` starts them), never the session's shared ones. Steps run through
``airflow_synth.runtime`` (what every operator, TaskFlow task and TaskGroup calls) with the
connections as ``AIRFLOW_CONN_*`` variables; a run that must be killed runs in a
subprocess (``tests/faults/esl_run.py``), like a worker's task.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import psycopg
import pyarrow.parquet as pq
import pytest

from airflow_synth import runtime
from airflow_synth.core.errors import (
    DiskFullError,
    SourceConnectionLostError,
    StorageUnavailableError,
)
from airflow_synth.core.extract.staging import path_from_uri
from airflow_synth.hooks.object_store import MAX_ATTEMPTS, S3ObjectStore
from airflow_synth.hooks.synth import SynthHook
from airflow_synth.local import LocalStack
from airflow_synth.local.postgres import LocalPostgres
from airflow_synth.local.s3server import LocalS3Server
from airflow_synth.maintenance import execute_sweep

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "esl_run.py"
SESSION_S3 = "synth_s3"
SESSION_PG = "userbookings_db"
# A feature query whose size is a bound parameter: real-looking rows (ids, emails) made
# by the server, so any size streams without a table to load first.
FEATURES_SQL = """\
SELECT g AS user_id,
       'user' || g || '@example.com' AS email,
       (g * 7919 %% 97) AS nights,
       round(((g * 104729) %% 10000) / 100.0, 2)::float8 AS price,
       (ARRAY['fr', 'de', 'us', 'gb', 'es'])[1 + g %% 5] AS country,
       (g %% 3 = 0) AS booked
FROM generate_series(1::bigint, %(n)s::bigint) AS g
"""
GATES_OFF = {
    "min_quality": None,
    "min_dependence": None,
    "max_exact_match_rate": None,
    "max_near_copy_rate": None,
    "max_dcr_share": None,
    "min_rules_held": None,
    "similarity_filter": False,
    "outlier_filter": False,
}
SYNTHESIS = {"synthesizer": "gaussian_copula", "seed": 7, "checks": GATES_OFF}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
@pytest.fixture
def sql_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / "features.sql").write_text(FEATURES_SQL)
    return folder


@pytest.fixture
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """This test's own temp dir (task folders) and local staging root, so a sweep with
    age 0 can never reach what other tests or other sessions on this machine stage."""
    temp, staging = tmp_path / "tmp", tmp_path / "local-staging"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setenv("SYNTH_STAGING_DIR", str(staging))
    return SimpleNamespace(temp=temp, staging=staging)


@pytest.fixture
def session_conns(local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in local_stack.connection_env().items():
        monkeypatch.setenv(name, value)


def context(sql_dir: Path, run_id: str, dag_id: str = "faults", **extra: Any) -> dict[str, Any]:
    dag = SimpleNamespace(
        dag_id=dag_id, template_searchpath=[str(sql_dir)], fileloc=None, user_defined_macros=None
    )
    return {"dag": dag, "run_id": run_id, **extra}


def extract(ctx: dict[str, Any], conn_id: str, rows: int, staging: str, **store: Any) -> dict:
    return runtime.execute_extract(
        ctx,
        sql_file="features.sql",
        dataset="faults",
        postgres_conn_id=conn_id,
        render=lambda text: text,
        parameters={"n": rows},
        contract_file=None,
        staging_dir=staging,
        **store,
    )


def aws_conn(name: str, server: LocalS3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    extra = {"endpoint_url": server.endpoint_url, "region_name": server.region}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{name.upper()}",
        f"aws://{server.access_key}:{server.secret_key}@/?__extra__="
        + quote(json.dumps(extra), safe=""),
    )
    return name


def keys(client: Any, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def streaming_copy(dsn: str) -> list[int]:
    """Backends running our extract's COPY right now (ADBC reads rows with COPY)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE state = 'active' "
            "AND query ILIKE 'COPY%generate_series%' AND pid <> pg_backend_pid()"
        ).fetchall()
    return [pid for (pid,) in rows]


def partial_bigger_than(folder: Path, size: int) -> bool:
    return any(p.stat().st_size > size for p in folder.rglob("*.partial") if p.is_file())


# --------------------------------------------------------------------------------------------
# PostgreSQL killed mid-extract
# --------------------------------------------------------------------------------------------
def test_a_backend_terminated_mid_extract_is_retried_on_a_new_connection(
    local_stack: LocalStack,
    session_conns: None,
    sql_dir: Path,
    private_dirs: SimpleNamespace,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """pg_terminate_backend on the COPY while 2M rows stream: the table is read again
    (the staged file is whole, never half), the log says why."""
    rows, dsn = 2_000_000, local_stack.pg.dsn(LocalStack.DATABASE)
    killed: list[int] = []

    def kill_once() -> None:
        wait_for(lambda: partial_bigger_than(private_dirs.staging, 1_000_000), 60, "rows")
        pids = streaming_copy(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for pid in pids:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        killed.extend(pids)

    killer = threading.Thread(target=kill_once, daemon=True)
    killer.start()
    with caplog.at_level(logging.WARNING, logger="airflow_synth.core.extract.retry"):
        result = extract(context(sql_dir, "manual__terminated"), SESSION_PG, rows, "")
    killer.join(5)
    assert killed, "the extract finished before its backend could be terminated"
    assert f"The source connection '{SESSION_PG}' was lost while extracting" in caplog.text
    assert "terminating connection due to administrator command" in caplog.text
    staged = path_from_uri(result["staging_uri"])
    assert result["rows"] == rows and pq.read_metadata(staged).num_rows == rows
    assert not list(private_dirs.staging.rglob("*.partial"))
    assert runtime.execute_cleanup(context(sql_dir, "manual__terminated"), dataset="faults")


@pytest.fixture
def throwaway_pg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalPostgres]:
    """A PostgreSQL of this test only (it gets killed), as connection ``fault_pg``."""
    pg = LocalPostgres(tmp_path / "pg-state")
    pg.start()
    try:
        pg.create_database("source")
        monkeypatch.setenv("AIRFLOW_CONN_FAULT_PG", pg.dsn("source"))
        yield pg
    finally:
        pg.destroy()


def test_a_postgres_server_killed_mid_extract_fails_transient_naming_file_and_connection(
    throwaway_pg: LocalPostgres, sql_dir: Path, private_dirs: SimpleNamespace
) -> None:
    """The server dies (immediate shutdown, as on a crash) while rows stream and stays
    down: every retry is refused, then one clear error; nothing staged; restarted, the
    rerun succeeds."""
    rows = 2_000_000

    def kill() -> None:
        wait_for(lambda: partial_bigger_than(private_dirs.staging, 1_000_000), 60, "rows")
        postmaster = throwaway_pg._postmaster()
        assert postmaster is not None
        os.kill(postmaster[0], signal.SIGQUIT)  # immediate shutdown: backends die at once

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    started = time.monotonic()
    with pytest.raises(SourceConnectionLostError) as raised:
        extract(context(sql_dir, "manual__killed"), "fault_pg", rows, "")
    killer.join(5)
    text = str(raised.value)
    assert f"Extracting {sql_dir / 'features.sql'} through connection 'fault_pg' failed" in text
    assert "4 attempts" in text and time.monotonic() - started > 6  # backoff 1 + 2 + 4 s
    assert "transient: the source connection was lost; Airflow task retries are safe" in text
    assert raised.value.transient
    assert files_under(private_dirs.staging) == []  # nothing staged, no partial file

    throwaway_pg.stop()  # clears what the crash left, then up again
    throwaway_pg.start()
    result = extract(context(sql_dir, "manual__killed"), "fault_pg", 1_000, "")
    assert result["rows"] == 1_000
    runtime.execute_cleanup(context(sql_dir, "manual__killed"), dataset="faults")
    assert files_under(private_dirs.staging) == []


# --------------------------------------------------------------------------------------------
# S3 killed mid-load and mid-staging; S3 throttling
# --------------------------------------------------------------------------------------------
PUT_FILE = S3ObjectStore.put_file


class S3Fault:
    """A throwaway SeaweedFS (buckets ``synthetic`` and ``synthetic-staging``) that can be
    SIGKILLed at the N-th upload through our store, and started again on its data."""

    def __init__(self, state: Path) -> None:
        self.server = LocalS3Server(state)
        self.server.start()
        for bucket in ("synthetic", "synthetic-staging"):
            self.server.create_bucket(bucket)
        self.uploads = 0

    def kill(self) -> None:
        for pid in self.server._weed_pids():
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not self.server._weed_pids(), 10, "weed to die")

    def restart(self) -> None:
        self.server.stop()  # clears what the killed one left
        self.server.start()

    def kill_at_upload(self, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
        """SIGKILL the server just before our store's ``n``-th file upload."""
        original = PUT_FILE
        self.uploads = 0

        def put_file(store: S3ObjectStore, path: Path, key: str) -> None:
            self.uploads += 1
            if self.uploads == n:
                self.kill()
            original(store, path, key)

        monkeypatch.setattr(S3ObjectStore, "put_file", put_file)

    def stop_killing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(S3ObjectStore, "put_file", PUT_FILE)


@pytest.fixture
def s3_fault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Fault]:
    fault = S3Fault(tmp_path / "s3-state")
    aws_conn("fault_s3", fault.server, monkeypatch)
    try:
        yield fault
    finally:
        fault.server.destroy()


def manifest(client: Any, key: str) -> dict[str, Any]:
    return json.loads(client.get_object(Bucket="synthetic", Key=key)["Body"].read())


def test_an_s3_server_killed_mid_load_fails_transient_and_readers_keep_the_last_publication(
    local_stack: LocalStack,
    session_conns: None,
    s3_fault: S3Fault,
    sql_dir: Path,
    private_dirs: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run published once; its rerun's load loses the server at the 2nd upload: a
    transient error naming bucket and connection, the earlier manifest and latest.json
    untouched and readable (every file it lists matches its checksum), no manifest of the
    failed attempt; the server back, the rerun publishes."""
    ctx = context(sql_dir, "manual__load")
    hook = SynthHook(aws_conn_id="fault_s3", bucket="synthetic")
    store = {"aws_conn_id": "fault_s3", "bucket": "synthetic"}
    staged = extract(ctx, SESSION_PG, 2_000, "", **store)
    synthesis = runtime.execute_synthesize(
        ctx, extract=staged, dataset="faults", hook=hook, **SYNTHESIS
    )
    first = runtime.execute_publish(
        ctx, extract=staged, synthesis=synthesis, dataset="faults", hook=hook
    )
    client = s3_fault.server.client()
    run_manifest, latest_key = "faults/manual__load/manifest.json", "faults/latest.json"
    before = manifest(client, run_manifest), manifest(client, latest_key)

    s3_fault.kill_at_upload(monkeypatch, 2)
    with pytest.raises(StorageUnavailableError) as raised:
        runtime.execute_publish(
            ctx, extract=staged, synthesis=synthesis, dataset="faults", hook=hook
        )
    text = str(raised.value)
    assert "Cannot use bucket 'synthetic' through connection 'fault_s3'" in text
    assert "transient: the S3 server could not be reached" in text
    assert f"{MAX_ATTEMPTS} attempts in all" in text and "Airflow task retries are safe" in text
    assert "Nothing readers see changed" in text
    assert "Check the endpoint_url and credentials" not in text

    s3_fault.stop_killing(monkeypatch)
    s3_fault.restart()
    client = s3_fault.server.client()
    assert (manifest(client, run_manifest), manifest(client, latest_key)) == before
    for entry in before[0]["files"]:  # the old publication, read through its manifest
        body = client.get_object(Bucket="synthetic", Key=entry["uri"].split("/", 3)[3])
        assert hashlib.sha256(body["Body"].read()).hexdigest() == entry["sha256"]
    attempt_manifests = [
        k for k in keys(client, "synthetic", "faults/manual__load/") if k.endswith("/manifest.json")
    ]  # the failed attempt wrote none: readers cannot reach it
    assert attempt_manifests == sorted([run_manifest, before[0]["manifest_uri"].split("/", 3)[3]])
    published_attempt = before[0]["attempt"]["id"]
    assert all(  # and no model of the failed attempt
        f"/{published_attempt}/" in key for key in keys(client, "synthetic", "_models/faults/")
    )

    again = runtime.execute_publish(
        ctx, extract=staged, synthesis=synthesis, dataset="faults", hook=hook
    )
    assert again["attempt"] != first["attempt"]
    assert manifest(client, latest_key)["manifest_uri"] == again["manifest_uri"]
    runtime.execute_cleanup(ctx, dataset="faults")
    assert files_under(private_dirs.staging) == []


def test_an_s3_server_killed_mid_staging_fails_transient_and_stages_nothing(
    session_conns: None,
    s3_fault: S3Fault,
    sql_dir: Path,
    private_dirs: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The staging bucket's server dies as the extract hands its rows on: a transient
    error naming the staging bucket (not "create the bucket"), the task's local copy of the
    real rows removed, nothing staged; the server back, the rerun stages and cleans up."""
    ctx = context(sql_dir, "manual__staging")
    store = {"aws_conn_id": "fault_s3", "bucket": "synthetic"}
    s3_fault.kill_at_upload(monkeypatch, 1)
    with pytest.raises(StorageUnavailableError) as raised:
        extract(ctx, SESSION_PG, 5_000, "s3://synthetic-staging/runs", **store)
    text = str(raised.value)
    assert text.startswith("Staging real rows between tasks failed.")
    assert "'synthetic-staging' through connection 'fault_s3'" in text
    assert "transient" in text and "create it" not in text
    assert files_under(private_dirs.temp) == []  # the task folder went with the task

    s3_fault.stop_killing(monkeypatch)
    s3_fault.restart()
    client = s3_fault.server.client()
    assert keys(client, "synthetic-staging", "runs/") == []
    result = extract(ctx, SESSION_PG, 5_000, "s3://synthetic-staging/runs", **store)
    assert result["staging_uri"].startswith("s3://synthetic-staging/runs/faults/manual__staging/")
    hook = SynthHook(aws_conn_id="fault_s3", bucket="synthetic")
    runtime.execute_cleanup(ctx, dataset="faults", staging_dir=result["staging"], hook=hook)
    assert keys(client, "synthetic-staging", "runs/") == []


class SlowDown(BaseHTTPRequestHandler):
    """An S3 endpoint that throttles every request (``503 SlowDown``), counting them."""

    requests = 0
    seen: list[str] = []

    def _throttle(self) -> None:
        type(self).requests += 1
        type(self).seen.append(f"{self.command} {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _throttle

    def log_message(self, *args: Any) -> None:  # quiet
        pass


def test_a_throttling_s3_server_is_retried_with_backoff_then_named_transient(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowDown)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = SimpleNamespace(
            endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
            region="us-east-1",
            access_key="k",
            secret_key="s",
        )
        aws_conn("throttled_s3", endpoint, monkeypatch)  # type: ignore[arg-type]
        hook = SynthHook(aws_conn_id="throttled_s3", bucket="synthetic")
        SlowDown.requests = 0
        started = time.monotonic()
        with pytest.raises(StorageUnavailableError) as raised, runtime.s3_failures_named(hook):
            S3ObjectStore("throttled_s3", "synthetic").put_bytes(b"{}", "faults/x.json")
        assert SlowDown.requests == MAX_ATTEMPTS, SlowDown.seen  # retried, with backoff
        assert time.monotonic() - started > 0.1
        text = str(raised.value)
        assert "SlowDown" in text and "transient" in text and "'throttled_s3'" in text
    finally:
        server.shutdown()


# --------------------------------------------------------------------------------------------
# the task process killed mid-fit; the sweeper
# --------------------------------------------------------------------------------------------
def spec(dataset: str, run_id: str, staging: str, sql_dir: Path, steps: list[str], **more: Any):
    return {
        "dag_id": "faults",
        "run_id": run_id,
        "dataset": dataset,
        "postgres_conn_id": SESSION_PG,
        "sql_dir": str(sql_dir),
        "sql_file": "features.sql",
        "parameters": {"n": more.pop("rows", 4_000)},
        "aws_conn_id": SESSION_S3,
        "bucket": "synthetic",
        "staging": staging,
        "synthesis": SYNTHESIS,
        "steps": steps,
        **more,
    }


class Run:
    """One run's steps in a subprocess (``esl_run.py``), like a worker's task; its log
    lines are read as they come."""

    def __init__(self, spec_: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(RUNNER), json.dumps(spec_)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, marker: str, timeout: float = 180) -> None:
        wait_for(
            lambda: marker in self.log or self.process.poll() is not None,
            timeout,
            f"{marker!r} in the run's log",
        )
        assert marker in self.log, self.log[-3000:]

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no finally, no teardown
        self.process.wait(30)
        self._reader.join(5)

    def finish(self, timeout: float = 240) -> dict[str, Any]:
        assert self.process.stdout is not None
        out = self.process.stdout.read()  # until the run ends
        self.process.wait(timeout)
        self._reader.join(5)
        assert self.process.returncode == 0, self.log[-4000:]
        return json.loads(out.strip().splitlines()[-1])


def test_a_worker_killed_mid_fit_leaves_real_rows_that_the_sweeper_removes(
    local_stack: LocalStack,
    session_conns: None,
    sql_dir: Path,
    private_dirs: SimpleNamespace,
    s3_client: Any,
) -> None:
    """SIGKILL while the model trains: no teardown runs, so the run's real rows stay in
    the staging bucket and in the task's folder; the sweeper (age 0) removes both, and the
    rerun succeeds."""
    dataset, prefix = "faults_fit", f"faults-{uuid.uuid4().hex[:8]}"
    staging = f"s3://synthetic-staging/{prefix}"
    steps = ["extract", "train"]
    run = Run(spec(dataset, "manual__fit", staging, sql_dir, steps, rows=30_000))
    run.wait_for_line("Training with")  # the fit has begun
    run.kill()
    assert run.process.returncode == -signal.SIGKILL, run.log[-3000:]
    staged = keys(s3_client, "synthetic-staging", f"{prefix}/")
    assert f"{prefix}/faults/manual__fit/{dataset}/real.parquet" in staged
    left = [p for p in private_dirs.temp.glob("airflow-synth-task-*") if any(p.rglob("*.parquet"))]
    assert left, "the killed task's folder with its real rows"

    hook = SynthHook(aws_conn_id=SESSION_S3, bucket="synthetic")
    report = execute_sweep(
        {}, hook=hook, sweep_after_hours=0, staging_dir=staging, datasets=[dataset], prune=False
    )
    assert report["staged_runs"] == [f"{staging}/faults/manual__fit/{dataset}/"]
    assert [Path(p).name for p in report["task_folders"]] == [p.name for p in left]
    assert keys(s3_client, "synthetic-staging", f"{prefix}/") == []
    assert list(private_dirs.temp.glob("airflow-synth-task-*")) == []

    steps = ["extract", "train", "cleanup"]
    done = Run(spec(dataset, "manual__fit", staging, sql_dir, steps, rows=30_000)).finish()
    assert done["extract"]["rows"] == 30_000 and done["cleanup"] is True
    assert keys(s3_client, "synthetic-staging", f"{prefix}/") == []


# --------------------------------------------------------------------------------------------
# the staging disk fills up
# --------------------------------------------------------------------------------------------
def mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
    )
    return result.returncode == 0


def test_a_full_staging_disk_names_the_folder_and_leaves_no_partial_file(
    session_conns: None, sql_dir: Path, private_dirs: SimpleNamespace, tmp_path: Path
) -> None:
    """A local staging folder on a 1 MiB tmpfs (where mounting is allowed; otherwise the
    staged file is bound to /dev/full, which fails every write with ENOSPC) and a table
    of 1M rows (several MiB staged): the error names the staging folder and its free
    space, nothing is left there; with room, the rerun succeeds."""
    small = tmp_path / "small-disk"
    mounted = mount_tmpfs(small, "1m")
    ctx = context(sql_dir, "manual__full")
    try:
        if not mounted:  # no mount here: the kernel's ENOSPC from /dev/full instead
            folder = small / "faults" / "manual__full" / "faults"
            folder.mkdir(parents=True)
            (folder / "real.parquet.partial").symlink_to("/dev/full")
        with pytest.raises(DiskFullError) as raised:
            extract(ctx, SESSION_PG, 1_000_000, str(small))
        text = str(raised.value)
        run_folder = small.resolve() / "faults" / "manual__full" / "faults"
        assert f"No space left on the device of {run_folder}" in text
        assert " free of " in text and "staging_dir= or $SYNTH_STAGING_DIR" in text
        assert "Nothing was published" in text
        assert files_under(small) == []  # no partial file, no real row

        if mounted:
            subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
        result = extract(ctx, SESSION_PG, 1_000_000, str(small))
        assert result["rows"] == 1_000_000
        runtime.execute_cleanup(ctx, dataset="faults", staging_dir=str(small))
        assert files_under(small) == []
    finally:
        if mounted:
            subprocess.run(["umount", str(small)], check=False)


# --------------------------------------------------------------------------------------------
# two runs of one dataset at once
# --------------------------------------------------------------------------------------------
def test_two_runs_of_one_dataset_at_once_both_publish_and_keep_each_others_staging(
    local_stack: LocalStack,
    session_conns: None,
    sql_dir: Path,
    private_dirs: SimpleNamespace,
    s3_client: Any,
) -> None:
    """Two runs (distinct run ids) extract, synthesize and publish the same dataset at the
    same time, the second sweeping leftovers at its start while the first is in flight:
    both succeed, neither removes the other's staged rows, latest.json ends at the newer
    run whatever the finishing order; each cleanup removes its own run only."""
    dataset, prefix = f"faults_twins_{uuid.uuid4().hex[:6]}", f"faults-{uuid.uuid4().hex[:8]}"
    staging = f"s3://synthetic-staging/{prefix}"
    steps = ["extract", "synthesize", "publish"]
    runs = {
        "manual__a": "2026-03-01T00:00:00+00:00",
        "manual__b": "2026-03-02T00:00:00+00:00",
    }
    # B starts once A has staged its real rows: B's start sweep runs while A is in flight
    a = Run(spec(dataset, "manual__a", staging, sql_dir, steps, logical_date=runs["manual__a"]))
    a.wait_for_line("DONE extract")
    b = Run(spec(dataset, "manual__b", staging, sql_dir, steps, logical_date=runs["manual__b"]))
    done = {"manual__a": a.finish(), "manual__b": b.finish()}
    assert "Sweep of leftovers older than 24 h" in b.log
    for run_id in runs:
        published = json.loads(
            s3_client.get_object(Bucket="synthetic", Key=f"{dataset}/{run_id}/manifest.json")[
                "Body"
            ].read()
        )
        assert published["rows"] == 4_000
        assert done[run_id]["publish"]["run_manifest_uri"].endswith(f"{run_id}/manifest.json")
        # the other run's start sweep left this run's staged real rows alone
        assert f"{prefix}/faults/{run_id}/{dataset}/real.parquet" in keys(
            s3_client, "synthetic-staging", f"{prefix}/"
        )
    latest = json.loads(
        s3_client.get_object(Bucket="synthetic", Key=f"{dataset}/latest.json")["Body"].read()
    )
    assert latest["run"] == "manual__b"

    hook = SynthHook(aws_conn_id=SESSION_S3, bucket="synthetic")
    runtime.execute_cleanup(
        context(sql_dir, "manual__a"), dataset=dataset, staging_dir=staging, hook=hook
    )
    left = keys(s3_client, "synthetic-staging", f"{prefix}/")
    assert left and all(k.startswith(f"{prefix}/faults/manual__b/") for k in left)
    runtime.execute_cleanup(
        context(sql_dir, "manual__b"), dataset=dataset, staging_dir=staging, hook=hook
    )
    assert keys(s3_client, "synthetic-staging", f"{prefix}/") == []
    for key in keys(s3_client, "synthetic", f"{dataset}/") + keys(
        s3_client, "synthetic", f"_models/{dataset}/"
    ):
        s3_client.delete_object(Bucket="synthetic", Key=key)


def test_each_run_sweeps_old_leftovers_first_and_never_its_own_staging(
    local_stack: LocalStack,
    session_conns: None,
    sql_dir: Path,
    private_dirs: SimpleNamespace,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The extract sweeps leftovers older than the age (24 h) before it reads a row; a
    sweep at age 0 sweeps every other run, but the run that sweeps keeps its own staging."""
    stale = private_dirs.staging / "faults" / "manual__crashed" / "faults"
    stale.mkdir(parents=True)
    (stale / "real.parquet").write_bytes(b"real rows of a run whose worker died")
    then = time.time() - 30 * 3600
    for path in (stale, stale / "real.parquet"):
        os.utime(path, (then, then))
    ctx = context(sql_dir, "manual__self")
    with caplog.at_level(logging.INFO, logger="airflow_synth.maintenance"):
        extract(ctx, SESSION_PG, 1_000, "")
    assert not stale.exists()
    assert "Sweep of leftovers older than 24 h: removed 1 local staging folder(s)" in caplog.text
    other = context(sql_dir, "manual__other")
    extract(other, SESSION_PG, 1_000, "")
    hook = SynthHook(aws_conn_id=SESSION_S3, bucket="synthetic")
    report = execute_sweep(ctx, hook=hook, sweep_after_hours=0, datasets=["faults"], prune=False)
    assert [Path(p).parent.name for p in report["local_folders"]] == ["manual__other"]
    assert (private_dirs.staging / "faults" / "manual__self" / "faults" / "real.parquet").exists()
    runtime.execute_cleanup(ctx, dataset="faults")
    assert files_under(private_dirs.staging) == []
