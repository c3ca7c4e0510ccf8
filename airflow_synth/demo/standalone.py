"""``make airflow``: Airflow's UI and scheduler on the embedded local stack.

Starts the local PostgreSQL and S3 server, seeds the demo source database if needed, and
runs ``airflow standalone`` with this repository's DAGs, the connections pointing at the
local servers, and a known admin login (printed). Ctrl-C stops Airflow and the servers.
The helpers here are also used by the test that drives Airflow through its REST API.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import requests

ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"


def standalone_environment(env: Mapping[str, str], port: int) -> dict[str, str]:
    """Process environment for ``airflow standalone`` (venv first on PATH, chosen ports).

    The scheduler's and triggerer's log servers default to fixed ports (8793/8794); they get
    free ones too, so two stacks (or a stray Airflow) on one machine do not collide.
    """
    from airflow_synth.local.ports import find_free_port

    log_port = find_free_port(exclude=[port])
    trigger_log_port = find_free_port(exclude=[port, log_port])
    venv_bin = str(Path(sys.executable).parent)
    merged = {**os.environ, **env}
    merged["PATH"] = venv_bin + os.pathsep + merged.get("PATH", "")
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


def start_standalone(env: Mapping[str, str], port: int, log_path: Path) -> subprocess.Popen:
    """Start ``airflow standalone`` in its own process group, logging to ``log_path``."""
    write_admin_password(Path(env["AIRFLOW_HOME"]))
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "airflow"), "standalone"],
        env=standalone_environment(env, port),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_healthy(port: int, timeout: float = 180.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``/api/v2/monitor/health`` until scheduler and metadatabase are healthy."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/api/v2/monitor/health"
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"airflow standalone exited with code {proc.returncode}")
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


def stop_standalone(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Stop standalone and all its children (scheduler, api-server, ...)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def main(argv: Sequence[str] | None = None) -> int:
    from airflow_synth.demo.environment import airflow_environment, project_dir
    from airflow_synth.demo.runner import ensure_airflow_db, seed_source
    from airflow_synth.local import LocalStack
    from airflow_synth.local.ports import find_free_port, is_port_free

    parser = argparse.ArgumentParser(prog="python -m airflow_synth.demo.standalone")
    parser.add_argument("--port", type=int, default=8080, help="UI/API port (default 8080)")
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--users", type=int, default=10_000)
    args = parser.parse_args(argv)

    stack = LocalStack(args.state_dir)
    stack.start()
    proc = None
    try:
        env = airflow_environment(
            stack.state_dir / "airflow", stack.connection_env(), project=project_dir()
        )
        seed_source(stack, project_dir(), users=args.users)
        ensure_airflow_db(env)
        port = args.port if is_port_free(args.port) else find_free_port()
        if port != args.port:
            print(f"[airflow] port {args.port} is busy, using {port}")
        log_path = stack.state_dir / "airflow-standalone.log"
        proc = start_standalone(env, port, log_path)
        print(f"[airflow] starting (log: {log_path}) ...", flush=True)
        wait_healthy(port, proc=proc)
        print(
            f"\n[airflow] ready: http://127.0.0.1:{port}  login {ADMIN_USER} / {ADMIN_PASSWORD}\n"
            "[airflow] DAGs: esl_airbnb_bookings (press Trigger), esl_airbnb_bookings_nightly, "
            "seed_userbookings_db\n[airflow] Ctrl-C stops Airflow, PostgreSQL and the S3 server.",
            flush=True,
        )
        proc.wait()
    except KeyboardInterrupt:
        print("\n[airflow] stopping ...")
    finally:
        if proc is not None:
            stop_standalone(proc)
        stack.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
