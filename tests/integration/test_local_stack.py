"""The embedded stack runs real servers: PostgreSQL 15 and an S3 endpoint that checks signatures."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import psycopg
import pytest
from botocore.exceptions import ClientError

from airflow_synth.local import LocalS3Server, LocalStack, LocalStackError
from airflow_synth.local.ports import read_state
from airflow_synth.local.process import pid_alive

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------- PostgreSQL
def test_postgres_is_a_real_postgresql_15_on_loopback(source_dsn: str) -> None:
    with psycopg.connect(source_dsn) as conn:
        version = conn.execute("SELECT version()").fetchone()[0]
        assert version.startswith("PostgreSQL 15."), version
        assert conn.execute("SELECT current_database()").fetchone()[0] == "userbookings"
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
        assert conn.execute("SHOW fsync").fetchone()[0] == "off"


def test_create_and_drop_database_are_idempotent(local_stack: LocalStack) -> None:
    pg = local_stack.pg
    assert pg.create_database("scratch_db") is True
    assert pg.create_database("scratch_db") is False
    with psycopg.connect(pg.dsn("scratch_db")) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "scratch_db"
    pg.drop_database("scratch_db")
    pg.drop_database("scratch_db")
    with pytest.raises(psycopg.OperationalError, match="scratch_db"):
        psycopg.connect(pg.dsn("scratch_db"), connect_timeout=5)


# ---------------------------------------------------------------------------- S3
def test_s3_put_get_round_trip(s3_client) -> None:
    body = os.urandom(256 * 1024)
    s3_client.head_bucket(Bucket="synthetic")
    s3_client.put_object(Bucket="synthetic", Key="roundtrip/blob.bin", Body=body)
    listed = s3_client.list_objects_v2(Bucket="synthetic", Prefix="roundtrip/")
    assert [o["Key"] for o in listed["Contents"]] == ["roundtrip/blob.bin"]
    assert s3_client.get_object(Bucket="synthetic", Key="roundtrip/blob.bin")["Body"].read() == body
    s3_client.delete_object(Bucket="synthetic", Key="roundtrip/blob.bin")
    assert s3_client.list_objects_v2(Bucket="synthetic", Prefix="roundtrip/")["KeyCount"] == 0


@pytest.mark.parametrize(
    ("access_key", "secret_key", "codes"),
    [
        ("minioadmin", "wrong-secret", {"SignatureDoesNotMatch", "InvalidAccessKeyId"}),
        ("nobody", "minioadmin", {"InvalidAccessKeyId"}),
    ],
)
def test_s3_rejects_wrong_credentials(
    local_stack: LocalStack, access_key: str, secret_key: str, codes: set[str]
) -> None:
    client = local_stack.s3.client(access_key=access_key, secret_key=secret_key)
    with pytest.raises(ClientError) as err:
        client.list_objects_v2(Bucket="synthetic")
    assert err.value.response["Error"]["Code"] in codes


def test_create_bucket_is_idempotent(local_stack: LocalStack) -> None:
    assert local_stack.s3.create_bucket("scratch-bucket") is True
    assert local_stack.s3.create_bucket("scratch-bucket") is False
    names = {b["Name"] for b in local_stack.s3.client().list_buckets()["Buckets"]}
    assert {"synthetic", "scratch-bucket"} <= names


def test_s3_start_error_includes_the_log_tail(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = LocalS3Server(tmp_path, port=busy.getsockname()[1], start_timeout=30)
        with pytest.raises(LocalStackError, match=r"(?s)weed\.log.*Port allocation failed"):
            server.start()
    assert server.pid is None


def test_s3_server_with_lost_state_is_adopted_not_twinned(tmp_path: Path) -> None:
    server = LocalS3Server(tmp_path)
    try:
        server.start()
        pid, port = server.pid, server.port
        (tmp_path / "stack.json").unlink()  # e.g. deleted by hand while the server runs
        again = LocalS3Server(tmp_path)
        again.start()
        assert (again.pid, again.port) == (pid, port)
        (tmp_path / "stack.json").unlink()
        LocalS3Server(tmp_path).stop()
        assert not pid_alive(pid)
    finally:
        server.destroy()


# ---------------------------------------------------------------------------- the stack
def test_connection_env_reaches_both_servers(local_stack: LocalStack) -> None:
    env = local_stack.connection_env()
    assert set(env) == {
        "AIRFLOW_CONN_USERBOOKINGS_DB",
        "AIRFLOW_CONN_SYNTH_S3",
        "AIRFLOW_CONN_SYNTH_TARGET_DB",
    }
    with psycopg.connect(env["AIRFLOW_CONN_USERBOOKINGS_DB"]) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "userbookings"
    uri = urlsplit(env["AIRFLOW_CONN_SYNTH_S3"])
    query = {k: v[0] for k, v in parse_qs(uri.query).items()}
    assert uri.scheme == "aws"
    assert query == {"endpoint_url": local_stack.s3.endpoint_url, "region_name": "us-east-1"}
    client = boto3.client(
        "s3",
        endpoint_url=query["endpoint_url"],
        region_name=query["region_name"],
        aws_access_key_id=unquote(uri.username or ""),
        aws_secret_access_key=unquote(uri.password or ""),
    )
    assert "synthetic" in {b["Name"] for b in client.list_buckets()["Buckets"]}


def test_start_on_a_running_stack_is_a_no_op(local_stack: LocalStack) -> None:
    before = local_stack.status()
    local_stack.start()
    assert local_stack.status() == before
    assert before["postgres"]["running"] and before["s3"]["running"]


def test_restart_keeps_data_and_ports_beside_another_stack(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """A second stack runs next to the session's one, and comes back intact after a stop."""
    state_dir = tmp_path / "second"
    try:
        first = LocalStack(state_dir)
        first.start()
        assert first.pg.port != local_stack.pg.port
        assert first.s3.port != local_stack.s3.port
        with first.pg.connect("userbookings", autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        first.s3.client().put_object(Bucket="synthetic", Key="kept.txt", Body=b"kept")
        saved = read_state(state_dir)
        old_pids = (first.pg.pid, first.s3.pid)
        cluster_dir = first.pg.cluster_dir  # may lie in /tmp: pytest's base dir is 0700
        assert cluster_dir is not None

        first.stop()
        assert not first.pg.is_running() and not first.s3.is_running()
        assert not any(pid_alive(pid) for pid in old_pids)

        again = LocalStack(state_dir)  # a fresh object knows only the state dir
        again.start()
        state = read_state(state_dir)
        assert state["postgres"]["port"] == saved["postgres"]["port"]
        assert state["s3"]["port"] == saved["s3"]["port"]
        assert state["s3"]["internal_ports"] == saved["s3"]["internal_ports"]
        with again.pg.connect("userbookings") as conn:
            assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]
        body = again.s3.client().get_object(Bucket="synthetic", Key="kept.txt")["Body"].read()
        assert body == b"kept"
    finally:
        LocalStack(state_dir).destroy()
    assert not cluster_dir.exists() and not state_dir.joinpath("s3").exists()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_synth.local", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_up_leaves_servers_running_until_down(tmp_path: Path) -> None:
    state_dir = tmp_path / "cli"
    try:
        up = _cli("up", "--state-dir", str(state_dir))
        assert up.returncode == 0, up.stderr
        state = json.loads((state_dir / "stack.json").read_text())
        pids = (state["postgres"]["pid"], state["s3"]["pid"])
        assert all(pid_alive(pid) for pid in pids), "servers died with the `up` process"
        assert _cli("status", "--state-dir", str(state_dir)).returncode == 0

        env = _cli("env", "--state-dir", str(state_dir))
        assert env.returncode == 0, env.stderr
        exported = dict(
            shlex.split(line)[1].split("=", 1) for line in env.stdout.splitlines() if line
        )
        with psycopg.connect(exported["AIRFLOW_CONN_USERBOOKINGS_DB"]) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert "endpoint_url=http%3A%2F%2F127.0.0.1%3A" in exported["AIRFLOW_CONN_SYNTH_S3"]

        down = _cli("down", "--state-dir", str(state_dir))
        assert down.returncode == 0, down.stderr
        assert not any(pid_alive(pid) for pid in pids)
        status = _cli("status", "--state-dir", str(state_dir))
        assert status.returncode == 1
        assert "stopped" in status.stdout
    finally:
        LocalStack(state_dir).destroy()
