"""``make airflow``: Airflow's UI and scheduler on the embedded local stack.

Starts the local PostgreSQL and S3 server, seeds the demo source database if needed, and runs
Airflow's components (api-server, scheduler, dag-processor, triggerer) with this repository's
DAGs, the connections pointing at the local servers, and a known admin login (printed).

- Metadata DB: the database ``airflow`` on the local PostgreSQL (created if missing), with the
  LocalExecutor. Not SQLite: there, tasks of a UI-triggered run stalled on the execution API
  (a single writer) and failed with empty logs.
- Everything listens on 127.0.0.1 only: the api-server is bound to it, and the scheduler and
  triggerer run without their log servers (those bind all interfaces; with the LocalExecutor
  the api-server reads the task logs from the shared local folder anyway).
- Ctrl-C, SIGTERM and SIGHUP (a closed terminal) all stop the same way: Airflow's components
  and every process they started, then the servers this run started (a stack that already ran,
  e.g. from ``make stack-up``, keeps running). The runner makes itself the "subreaper" of
  everything it starts, so even a process whose parent died is found and stopped.

The helpers here are also used by the tests that drive Airflow through its REST API.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType

import requests

from airflow_synth.local.process import descendants, pid_alive, wait_until

ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"
#: The Airflow metadata database on the local PostgreSQL (beside ``userbookings``).
METADATA_DATABASE = "airflow"
#: ``airflow <component> ...`` argument vectors; ``{port}`` is the API port.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "api-server": ("api-server", "--host", "127.0.0.1", "--port", "{port}"),
    "scheduler": ("scheduler", "--skip-serve-logs"),
    "dag-processor": ("dag-processor",),
    "triggerer": ("triggerer", "--skip-serve-logs"),
}
#: Signals that stop ``make airflow``, all in the same way.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


def metadata_db_environment(postgres_dsn: str) -> dict[str, str]:
    """Airflow settings for a PostgreSQL metadata DB (``postgresql://...`` DSN) + LocalExecutor.

    The driver is psycopg 3 (``postgresql+psycopg``): the postgres provider requires it, and
    Airflow tunes its engine for it whenever it is installed.
    """
    scheme, sep, rest = postgres_dsn.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a postgresql:// DSN: {postgres_dsn!r}")
    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg://{rest}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    }


def standalone_environment(env: Mapping[str, str], port: int) -> dict[str, str]:
    """Process environment for Airflow's components (venv first on PATH, chosen ports).

    The executor defaults to the LocalExecutor unless ``env`` names another. The scheduler's
    and triggerer's log servers default to fixed ports (8793/8794); they get free ones too,
    for callers that run them, so two stacks on one machine do not collide.
    """
    from airflow_synth.local.ports import find_free_port

    log_port = find_free_port(exclude=[port])
    trigger_log_port = find_free_port(exclude=[port, log_port])
    venv_bin = str(Path(sys.executable).parent)
    merged = {**os.environ, **env}
    merged["PATH"] = venv_bin + os.pathsep + merged.get("PATH", "")
    merged.setdefault("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    merged["AIRFLOW__API__HOST"] = "127.0.0.1"
    merged["AIRFLOW__API__PORT"] = str(port)
    merged["AIRFLOW__API__BASE_URL"] = f"http://127.0.0.1:{port}"
    merged["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://127.0.0.1:{port}/execution/"
    merged["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(log_port)
    merged["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(trigger_log_port)
    merged["AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL"] = "5"
    merged["AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL"] = "5"
    return merged


def write_admin_password(airflow_home: Path) -> None:
    """Pre-seed the simple auth manager's password file so the login is known."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    path = airflow_home / "simple_auth_manager_passwords.json.generated"
    path.write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD}))


def migrate_metadata_db(env: Mapping[str, str]) -> None:
    """``airflow db migrate`` (idempotent; also writes ``airflow.cfg`` with the shared secrets
    before the components start, so they do not race to generate different ones)."""
    subprocess.run(
        [_airflow_bin(), "db", "migrate"],
        env={**os.environ, **env},
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )


class AirflowProcesses:
    """Airflow's components, each the leader of its own process group, stopped as one.

    Each component gets its own session so that a terminal's Ctrl-C reaches only the runner,
    which then stops them in order. ``poll()``/``returncode``/``pid`` mirror ``Popen``.
    """

    def __init__(self, procs: Mapping[str, subprocess.Popen], log_dir: Path) -> None:
        self.procs = dict(procs)
        self.log_dir = log_dir
        self.exited: str | None = None
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        return next(iter(self.procs.values())).pid

    def poll(self) -> int | None:
        """None while every component runs; else the exit code of the first that ended."""
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                self.exited, self.returncode = name, code
                return code
        return None

    def wait(self, interval: float = 1.0) -> int:
        while self.poll() is None:
            time.sleep(interval)
        assert self.returncode is not None
        return self.returncode

    def pids(self) -> set[int]:
        """The live components and every live process below them."""
        roots = {p.pid for p in self.procs.values() if pid_alive(p.pid)}
        return roots | descendants([p.pid for p in self.procs.values()])

    def stop(self, timeout: float = 30.0) -> float:
        """SIGTERM to every component's group, then to stragglers; SIGKILL after ``timeout``.

        Task processes lead process groups of their own, and a process can outlive its
        parent, so what is waited for is the whole tree as first seen, re-read on every poll.
        Returns the seconds it took.
        """
        began = time.monotonic()
        tracked = self.pids()
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)

        def gone() -> bool:
            for proc in self.procs.values():
                proc.poll()  # reap our own children
            tracked.update(descendants(tracked))
            tracked.difference_update({pid for pid in tracked if not pid_alive(pid)})
            return not tracked

        if not wait_until(gone, timeout / 2, interval=0.2):
            _send(tracked, signal.SIGTERM)  # e.g. tasks whose supervisor is gone
            if not wait_until(gone, timeout / 2, interval=0.2):
                _send(tracked, signal.SIGKILL)
                wait_until(gone, 10.0, interval=0.1)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        return time.monotonic() - began


def _send(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def start_standalone(
    env: Mapping[str, str],
    port: int,
    log_dir: Path,
    components: Mapping[str, Sequence[str]] = COMPONENTS,
) -> AirflowProcesses:
    """Start Airflow's components (metadata DB already migrated), one log file each."""
    write_admin_password(Path(env["AIRFLOW_HOME"]))
    full_env = standalone_environment(env, port)
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, args in components.items():
            argv = [_airflow_bin(), *(a.format(port=port) for a in args)]
            with open(log_dir / f"{name}.log", "ab") as log:
                procs[name] = subprocess.Popen(
                    argv,
                    env=full_env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
    except BaseException:
        AirflowProcesses(procs, log_dir).stop()
        raise
    return AirflowProcesses(procs, log_dir)


def wait_healthy(
    port: int, timeout: float = 180.0, proc: AirflowProcesses | subprocess.Popen | None = None
) -> None:
    """Poll ``/api/v2/monitor/health`` until scheduler and metadatabase are healthy."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/api/v2/monitor/health"
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            which = getattr(proc, "exited", None) or "airflow"
            raise RuntimeError(f"{which} exited with code {proc.returncode}")
        try:
            body = requests.get(url, timeout=2).json()
            statuses = {k: v.get("status") for k, v in body.items() if isinstance(v, dict)}
            if statuses.get("metadatabase") == "healthy" and statuses.get("scheduler") == "healthy":
                return
            last = str(statuses)
        except (requests.RequestException, ValueError) as exc:
            last = str(exc)
        time.sleep(1)
    raise TimeoutError(f"Airflow at port {port} not healthy after {timeout:.0f} s: {last}")


def stop_standalone(proc: AirflowProcesses, timeout: float = 30.0) -> float:
    """Stop Airflow's components and all their processes; returns the seconds it took."""
    return proc.stop(timeout)


# ------------------------------------------------------------------------------------------
# Signals: SIGINT, SIGTERM and SIGHUP all mean "stop", once
# ------------------------------------------------------------------------------------------
class _StopSignals:
    """The first stop signal raises KeyboardInterrupt (the Ctrl-C path); later ones are ignored.

    Inside ``deferred()`` (starting servers, spawning the components) the signal is remembered
    and raised only at the end, so every process started there is known when cleanup runs.
    """

    def __init__(self) -> None:
        self.stopping = False
        self.pending: int | None = None
        self._defer = 0

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            return
        if self._defer:
            self.pending = signum
            return
        self._raise(signum)

    def _raise(self, signum: int) -> None:
        self.stopping = True
        raise KeyboardInterrupt(signal.Signals(signum).name)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1
        if not self._defer and self.pending is not None and not self.stopping:
            self._raise(self.pending)


def _become_subreaper() -> bool:
    """Make orphaned descendants reparent to this process (Linux), so none escapes cleanup."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _stop_leftovers(timeout: float = 10.0) -> set[int]:
    """SIGTERM, then SIGKILL, whatever still runs below this process; returns what it found."""
    left = descendants([os.getpid()])
    if left:
        _send(left, signal.SIGTERM)
        if not wait_until(lambda: not any(pid_alive(p) for p in left), timeout, interval=0.1):
            _send({p for p in left if pid_alive(p)}, signal.SIGKILL)
            wait_until(lambda: not any(pid_alive(p) for p in left), 5.0, interval=0.1)
    return left


def _say(text: str) -> None:
    """Print, even when the terminal is gone (SIGHUP): the cleanup must not fail on it."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m airflow_synth.demo.standalone")
    parser.add_argument("--port", type=int, default=8080, help="UI/API port (default 8080)")
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--users", type=int, default=10_000, help="demo users to seed")
    parser.add_argument(
        "--sessions-per-user", type=float, default=100, help="average sessions per user (100)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from airflow_synth.demo.environment import airflow_environment, project_dir
    from airflow_synth.demo.runner import seed_source
    from airflow_synth.local import LocalStack
    from airflow_synth.local.ports import find_free_port, is_port_free

    args = _parser().parse_args(argv)
    signals = _StopSignals()
    signals.install()
    _become_subreaper()
    began = time.monotonic()
    stack = LocalStack(args.state_dir)
    started_pg = started_s3 = False
    airflow: AirflowProcesses | None = None
    code = 0
    try:
        with signals.deferred():
            started_pg, started_s3 = not stack.pg.is_running(), not stack.s3.is_running()
            print(f"[airflow] local PostgreSQL and S3 server under {stack.state_dir}", flush=True)
            stack.start()
        stack.pg.create_database(METADATA_DATABASE)
        env = airflow_environment(
            stack.state_dir / "airflow", stack.connection_env(), project=project_dir()
        )
        env.update(metadata_db_environment(stack.pg.dsn(METADATA_DATABASE)))
        seed_source(
            stack, project_dir(), users=args.users, sessions_per_user=args.sessions_per_user
        )
        print("[airflow] migrating the metadata DB (PostgreSQL database 'airflow') ...", flush=True)
        migrate_metadata_db(env)
        port = args.port if is_port_free(args.port) else find_free_port()
        if port != args.port:
            print(f"[airflow] port {args.port} is busy, using {port}")
        log_dir = stack.state_dir / "airflow" / "components"
        with signals.deferred():
            airflow = start_standalone(env, port, log_dir)
        print(f"[airflow] starting (logs: {log_dir}) ...", flush=True)
        wait_healthy(port, proc=airflow)
        print(
            f"\n[airflow] ready in {time.monotonic() - began:.0f} s: http://127.0.0.1:{port}  "
            f"login {ADMIN_USER} / {ADMIN_PASSWORD}\n"
            "[airflow] DAGs: esl_airbnb_bookings (press Trigger), esl_airbnb_bookings_nightly, "
            "seed_userbookings_db\n"
            "[airflow] Ctrl-C (or SIGTERM/SIGHUP) stops Airflow, PostgreSQL and the S3 server.",
            flush=True,
        )
        airflow.wait()
        _say(f"[airflow] {airflow.exited} exited with code {airflow.returncode}; stopping")
        code = 1
    except KeyboardInterrupt as exc:
        _say(f"\n[airflow] {exc or 'SIGINT'}: stopping ...")
    finally:
        signals.stopping = True  # a second Ctrl-C must not cut the cleanup short
        stopping = time.monotonic()
        try:
            if airflow is not None:
                airflow.stop()
        finally:
            try:
                if started_s3:
                    stack.s3.stop()
            finally:
                if started_pg:
                    stack.pg.stop()
                left = _stop_leftovers()
                if left:
                    _say(f"[airflow] stopped {len(left)} leftover process(es)")
        kept = [n for n, s in (("PostgreSQL", started_pg), ("S3", started_s3)) if not s]
        _say(
            f"[airflow] stopped in {time.monotonic() - stopping:.1f} s"
            + (f" ({' and '.join(kept)} left running: not started here)" if kept else "")
        )
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
