"""``make airflow``'s runner without starting Airflow: its settings and its stop signals.

The runner itself (PostgreSQL metadata DB, 127.0.0.1 only, stopping everything on SIGTERM and
SIGHUP) is tested for real in tests/dags/test_airflow_standalone.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from airflow_synth.demo.standalone import (
    COMPONENTS,
    STOP_SIGNALS,
    _StopSignals,
    metadata_db_environment,
    standalone_environment,
)
from airflow_synth.local.process import descendants, pid_alive, wait_until

pytestmark = pytest.mark.unit


@pytest.fixture
def stop_signals() -> Iterator[_StopSignals]:
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    signals = _StopSignals()
    signals.install()
    try:
        yield signals
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _deliver(sig: int) -> None:
    """Send ``sig`` to this process and give Python the chance to run its handler."""
    os.kill(os.getpid(), sig)
    for _ in range(100):
        time.sleep(0.001)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_each_stop_signal_takes_the_ctrl_c_path_once(stop_signals: _StopSignals, sig) -> None:
    with pytest.raises(KeyboardInterrupt, match=sig.name):
        _deliver(sig)
    assert stop_signals.stopping
    # a second signal (another Ctrl-C, a SIGTERM from a supervisor) cannot cut cleanup short
    for again in STOP_SIGNALS:
        _deliver(again)


def test_a_signal_while_starting_is_raised_once_the_start_is_done(
    stop_signals: _StopSignals,
) -> None:
    started = []
    with pytest.raises(KeyboardInterrupt, match="SIGHUP"), stop_signals.deferred():
        _deliver(signal.SIGHUP)
        started.append("servers")  # what the deferred block starts is recorded first
    assert started == ["servers"]


def test_metadata_db_is_postgresql_through_psycopg_3_with_the_local_executor() -> None:
    env = metadata_db_environment("postgresql://postgres@127.0.0.1:5999/airflow")
    assert env == {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg://postgres@127.0.0.1:5999/airflow",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    }
    with pytest.raises(ValueError, match="postgresql://"):
        metadata_db_environment("sqlite:////tmp/airflow.db")


def test_components_listen_on_loopback_only() -> None:
    env = standalone_environment({"AIRFLOW_HOME": "/tmp/x"}, 8123)
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    celery = standalone_environment({"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}, 8123)
    assert celery["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"  # a caller's choice stays
    # the log servers bind every interface: not started
    assert "--skip-serve-logs" in COMPONENTS["scheduler"]
    assert "--skip-serve-logs" in COMPONENTS["triggerer"]
    assert COMPONENTS["api-server"][1:3] == ("--host", "127.0.0.1")


def test_descendants_finds_grandchildren() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys; subprocess.run(['sleep', '30'])"],
    )
    try:
        # wait for the grandchild itself: the session's servers are children of this
        # process too, so counting this process's descendants proves nothing
        assert wait_until(lambda: len(descendants([child.pid])) >= 1, 10)
        assert child.pid in descendants([os.getpid()])
        found = descendants([child.pid])
        assert len(found) == 1 and all(pid_alive(p) for p in found)
    finally:
        for pid in descendants([child.pid]):
            os.kill(pid, signal.SIGKILL)
        child.kill()
        child.wait()
