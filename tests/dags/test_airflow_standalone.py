"""``make airflow`` for real: the runner as a user starts it, driven through the REST API.

The runner (``python -m airflow_synth.demo.standalone``) starts in a subprocess with its own
state folder, exactly as ``make airflow`` does: its own PostgreSQL (also the metadata DB) and S3
server, the LocalExecutor, Airflow's four components. The tests then check what a user relies
on: the metadata DB is PostgreSQL, only 127.0.0.1 is listened on, a run triggered as from the
UI's Trigger form succeeds and publishes, and a SIGTERM (or a SIGHUP, even in mid-start) stops
every process the runner started and frees every port within a bounded time.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest
import requests
from dagtest_helpers import (
    api_session,
    published_key,
    run_manifest,
    trigger_and_wait,
    wait_for_dag,
)

from airflow_synth.demo.standalone import (
    METADATA_DATABASE,
    wait_healthy,
)
from airflow_synth.local import LocalStack
from airflow_synth.local.ports import find_free_port, is_port_free
from airflow_synth.local.process import descendants, pid_alive, process_argv, wait_until

pytestmark = pytest.mark.dags

PROJECT = Path(__file__).resolve().parents[2]
DAG_ID = "esl_airbnb_bookings"
#: What the runner must take to stop everything after SIGTERM/SIGHUP (measured: see README).
STOP_BOUND_S = 60.0
#: A small seed: the trigger test asks for 40 rows only.
RUNNER_ARGS = ("--users", "300", "--sessions-per-user", "15")


# --------------------------------------------------------------------------------------------
# Processes and sockets, read from /proc
# --------------------------------------------------------------------------------------------
def _decode_address(hex_addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    # /proc/net/tcp6: four 32-bit words, each in host (little-endian) byte order
    return ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))


def listening_sockets(pids: set[int]) -> list[tuple[str, int, int]]:
    """(address, port, pid) of every TCP socket in LISTEN state that one of ``pids`` holds."""
    owner: dict[int, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owner[int(target[len("socket:[") : -1])] = pid
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            rows = fh.read().splitlines()[1:]
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state == "0A" and inode in owner:
                addr, port = local.split(":")
                found.append((str(_decode_address(addr)), int(port, 16), owner[inode]))
    return found


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def processes_of_state_dir(state_dir: Path, skip: int | None = None) -> set[int]:
    """Live processes that belong to this state folder, found without the runner's tree.

    By argv (weed's ``-dir``, the postmaster's ``-D``, wherever its cluster lives) or by
    ``AIRFLOW_HOME`` in the environment (every Airflow process and task), plus their children.
    """
    cluster = LocalStack(state_dir).pg.cluster_dir
    markers = [str(state_dir)] + ([str(cluster)] if cluster else [])
    home = f"AIRFLOW_HOME={state_dir / 'airflow'}".encode()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (os.getpid(), skip):
            continue
        pid = int(entry)
        argv = " ".join(process_argv(pid))
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            environ = []
        if (any(m in argv for m in markers) or home in environ) and pid_alive(pid):
            found.add(pid)
    return found | descendants(found)


# --------------------------------------------------------------------------------------------
# The runner, as `make airflow` starts it
# --------------------------------------------------------------------------------------------
@dataclass
class Runner:
    proc: subprocess.Popen
    port: int
    state_dir: Path
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stack(self) -> LocalStack:
        """The runner's servers, found again through its state file (ports, pids)."""
        stack = LocalStack(self.state_dir)
        stack.pg.is_running()  # reads the live port
        stack.s3.is_running()
        return stack

    def processes(self) -> set[int]:
        """The runner's whole tree plus anything else of its state folder."""
        # the runner itself is watched through its Popen only (reaping it here would lose
        # its exit code)
        return descendants([self.proc.pid]) | processes_of_state_dir(
            self.state_dir, skip=self.proc.pid
        )


def _runner_env() -> dict[str, str]:
    """The environment of a user's shell: none of the test session's Airflow settings."""
    keep_synth = {"SYNTH_PG_BIN"}
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIRFLOW") and (not k.startswith("SYNTH_") or k in keep_synth)
    }


def launch_runner(state_dir: Path) -> Runner:
    port = find_free_port()
    log_path = state_dir.parent / f"{state_dir.name}-runner.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow_synth.demo.standalone",
                "--port",
                str(port),
                "--state-dir",
                str(state_dir),
                *RUNNER_ARGS,
            ],
            cwd=PROJECT,
            env=_runner_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # like a shell's job: signals reach it only when sent
        )
    return Runner(proc, port, state_dir, log_path)


def cleanup_runner(runner: Runner) -> None:
    """Safety net after a failed test: nothing of the runner may outlive the session."""
    if runner.proc.poll() is None:
        runner.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            runner.proc.wait(timeout=120)
    for pid in runner.processes():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if runner.proc.poll() is None:
        runner.proc.kill()
        runner.proc.wait(timeout=10)
    LocalStack(runner.state_dir).destroy()  # also the PostgreSQL cluster kept in /tmp


@pytest.fixture(scope="module")
def make_airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    runner = launch_runner(tmp_path_factory.mktemp("make-airflow") / "state")
    try:
        began = time.monotonic()
        try:
            wait_healthy(runner.port, timeout=420, proc=runner.proc)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n--- runner log ---\n{runner.log()[-5000:]}") from exc
        print(f"\n[make airflow] healthy after {time.monotonic() - began:.1f} s")
        yield runner
    finally:
        cleanup_runner(runner)


@pytest.fixture(scope="module")
def api(make_airflow: Runner) -> requests.Session:
    return api_session(make_airflow.base)


def _component(runner: Runner, name: str) -> int:
    """Pid of one Airflow component: a child of the runner running ``airflow <name>``
    (some rewrite their title, e.g. ``airflow api_server -- host:...``)."""
    for pid in descendants([runner.proc.pid]):
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        words = " ".join(process_argv(pid)).split()
        head = " ".join(Path(w).name for w in words[:3])
        if int(stat[1]) == runner.proc.pid and re.search(
            rf"\bairflow {re.escape(name)}\b|\bairflow {re.escape(name.replace('-', '_'))}\b",
            head,
        ):
            return pid
    raise AssertionError(f"no airflow {name} process below the runner")


# --------------------------------------------------------------------------------------------
# Tests (module order: the SIGTERM test ends the shared runner, so it comes last)
# --------------------------------------------------------------------------------------------
def test_metadata_db_is_the_local_postgresql_with_the_local_executor(make_airflow: Runner) -> None:
    stack = make_airflow.stack()
    # the scheduler runs the LocalExecutor: its worker processes (titled by Airflow) below it
    scheduler = _component(make_airflow, "scheduler")
    titles = [" ".join(process_argv(pid)) for pid in descendants([scheduler])]
    assert any(t.startswith("airflow worker -- LocalExecutor") for t in titles), titles
    log = (stack.state_dir / "airflow" / "components" / "scheduler.log").read_text()
    assert "Loaded executor: :LocalExecutor:" in log
    # the components really keep their state there: live scheduler, DAG processor, triggerer
    expected = {"SchedulerJob", "DagProcessorJob", "TriggererJob"}
    jobs: set[str] = set()

    def all_heartbeating() -> bool:
        with psycopg.connect(stack.pg.dsn(METADATA_DATABASE)) as conn:
            jobs.update(
                row[0]
                for row in conn.execute(
                    "SELECT job_type FROM job WHERE state = 'running' "
                    "AND latest_heartbeat > now() - interval '2 minutes'"
                )
            )
        return expected <= jobs

    assert wait_until(all_heartbeating, 120, interval=2), jobs
    body = requests.get(f"{make_airflow.base}/api/v2/monitor/health", timeout=10).json()
    assert body["metadatabase"]["status"] == "healthy"
    assert not (stack.state_dir / "airflow" / "airflow.db").exists(), "an SQLite DB was created"


def test_everything_listens_on_127_0_0_1_only(make_airflow: Runner) -> None:
    sockets = listening_sockets(make_airflow.processes())
    ports = {port for _, port, _ in sockets}
    stack = make_airflow.stack()
    assert {make_airflow.port, stack.pg.port, stack.s3.port} <= ports
    exposed = [
        (address, port, " ".join(process_argv(pid))[:80])
        for address, port, pid in sockets
        if not _is_loopback(address)
    ]
    assert exposed == []


def test_trigger_through_the_rest_api_runs_and_publishes(
    make_airflow: Runner, api: requests.Session
) -> None:
    base = make_airflow.base
    wait_for_dag(api, base, DAG_ID)
    listed = api.get(f"{base}/api/v2/dags", params={"tags": "esl"}, timeout=30).json()
    assert {DAG_ID, "esl_airbnb_bookings_nightly"} <= {d["dag_id"] for d in listed["dags"]}
    run_id, state = trigger_and_wait(
        api,
        base,
        DAG_ID,
        # 40 rows are too few to measure dependence: waived, as a user must say so
        {"rows": 40, "seed": 2, "synthesizer": "gaussian_copula", "min_dependence": None},
    )
    assert state == "success"

    # the tasks ran in the LocalExecutor's worker processes, below the scheduler
    titles = [" ".join(process_argv(pid)) for pid in make_airflow.processes()]
    assert any(t.startswith("airflow worker -- LocalExecutor") for t in titles), titles

    stack = make_airflow.stack()
    s3 = stack.s3.client()
    manifest = run_manifest(s3, stack.BUCKET, "airbnb_bookings", run_id)
    body = s3.get_object(Bucket=stack.BUCKET, Key=published_key(manifest, "data.parquet"))[
        "Body"
    ].read()
    assert pq.read_table(io.BytesIO(body)).num_rows == 40

    # the load task's "Synthetic data report" extra link opens the published report
    links = api.get(
        f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/esl.load/links", timeout=30
    ).json()["extra_links"]
    assert "Synthetic data report" in links, links
    link = links["Synthetic data report"]
    assert link.startswith(f"{base}/synth/report?")
    page = api.get(link, timeout=30)
    assert page.status_code == 200
    assert page.text.startswith("<!DOCTYPE html>")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    published = s3.get_object(Bucket=stack.BUCKET, Key=published_key(manifest, "report.html"))
    assert page.text == published["Body"].read().decode("utf-8")
    # ... and only for a logged-in user
    assert requests.get(link, timeout=30).status_code in (401, 403)


def _assert_stops_everything(runner: Runner, sig: signal.Signals) -> float:
    """Send ``sig`` to the runner alone; everything it started must end, every port free."""
    before = runner.processes()
    ports = {port for _, port, _ in listening_sockets(before)} | {runner.port}
    assert len(before) >= 3, before
    began = time.monotonic()
    runner.proc.send_signal(sig)
    try:
        code = runner.proc.wait(timeout=STOP_BOUND_S + 30)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"runner still running {STOP_BOUND_S + 30:.0f} s after {sig.name}\n"
            + runner.log()[-3000:]
        ) from None
    took = time.monotonic() - began
    print(f"\n[make airflow] {sig.name}: runner exited after {took:.1f} s")
    assert code == 0, runner.log()[-3000:]
    assert took < STOP_BOUND_S
    # nothing is left: neither what ran before the signal nor anything of its state folder
    assert wait_until(lambda: not any(pid_alive(p) for p in before), 5.0), [
        (p, " ".join(process_argv(p))[:80]) for p in before if pid_alive(p)
    ]
    assert processes_of_state_dir(runner.state_dir) == set()
    assert wait_until(lambda: all(is_port_free(p) for p in ports), 5.0), [
        p for p in ports if not is_port_free(p)
    ]
    assert re.search(rf"\[airflow\] {sig.name}: stopping", runner.log())
    return took


def test_sigterm_stops_everything_it_started(make_airflow: Runner) -> None:
    # the runner's PostgreSQL and S3 server are among what it started
    stack = make_airflow.stack()
    assert {stack.pg.pid, stack.s3.pid} <= make_airflow.processes()
    _assert_stops_everything(make_airflow, signal.SIGTERM)


def test_sighup_in_mid_start_stops_everything_it_started(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A terminal closed while Airflow is still coming up: nothing may be left behind."""
    runner = launch_runner(tmp_path_factory.mktemp("make-airflow-hup") / "state")
    try:
        started = wait_until(
            lambda: "[airflow] starting" in runner.log() or runner.proc.poll() is not None,
            300,
            interval=0.2,
        )
        assert started and runner.proc.poll() is None, runner.log()[-3000:]
        # the components were spawned a moment ago and are still starting up
        for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
            _component(runner, name)
        _assert_stops_everything(runner, signal.SIGHUP)
    finally:
        cleanup_runner(runner)
