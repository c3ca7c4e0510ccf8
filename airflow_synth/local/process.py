"""Process helpers shared by the local servers: liveness, polling, stopping, log tails."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Collection
from pathlib import Path


class LocalStackError(RuntimeError):
    """A local server could not be set up, started or stopped; the message says what to fix."""


def pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as dead).

    A server started by this very process (the pytest session) becomes a zombie after it
    exits until it is reaped; ``os.kill(pid, 0)`` would still succeed, so reap it here.
    """
    if not pid or pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    fields = stat.rsplit(")", 1)[-1].split()
    if not (fields and fields[0] in ("Z", "X")):
        return True
    # A multi-threaded process (Go's weed) shows its leader as a zombie while other threads
    # still exit and still hold its sockets: dead only once no other thread is left.
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def process_argv(pid: int) -> list[str]:
    """The argument vector of ``pid`` ([] if unknown), to tell our server from a reused pid."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def process_cmdline(pid: int) -> str:
    """The command line of ``pid`` as one string ("" if unknown)."""
    return " ".join(process_argv(pid))


def find_processes(match: Callable[[list[str]], bool]) -> list[int]:
    """Pids of live processes whose argument vector satisfies ``match`` (Linux /proc)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    own = os.getpid()
    found = []
    for entry in entries:
        if entry.isdigit() and int(entry) != own:
            pid = int(entry)
            argv = process_argv(pid)
            if argv and match(argv) and pid_alive(pid):
                found.append(pid)
    return sorted(found)


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


def descendants(roots: Collection[int]) -> set[int]:
    """Live descendants of ``roots`` (children, grandchildren, ...), roots excluded (Linux /proc).

    One snapshot of the process table: a process that an ancestor forks after it, or that is
    reparented away (its parent died) before it, is not found.
    """
    try:
        entries = [int(e) for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return set()
    children: dict[int, list[int]] = {}
    for pid in entries:
        parent = _parent_of(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {pid for pid in found if pid_alive(pid)}


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _signal(pid: int, sig: int) -> None:
    """Signal the whole process group when ``pid`` leads one (servers we start do)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def terminate(pid: int, *, sig: int = signal.SIGTERM, timeout: float = 15.0) -> bool:
    """Stop ``pid`` with ``sig``, falling back to SIGKILL after ``timeout`` seconds.

    Returns True when the process ended on the first signal, False when it had to be killed.
    """
    if not pid_alive(pid):
        return True
    _signal(pid, sig)
    if wait_until(lambda: not pid_alive(pid), timeout):
        return True
    _signal(pid, signal.SIGKILL)
    if not wait_until(lambda: not pid_alive(pid), 10.0):
        raise LocalStackError(f"process {pid} survived SIGKILL")
    return False


def log_tail(path: Path, lines: int = 30, start: int = 0) -> str:
    """The last ``lines`` lines of a log file from byte ``start`` on, for error messages."""
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read()
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    text = data.decode(errors="replace").rstrip()
    if not text:
        return f"(log {path} is empty)"
    return "\n".join(text.splitlines()[-lines:])
