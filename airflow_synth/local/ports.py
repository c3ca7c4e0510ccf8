"""Free ports and the stack's state file (``<state_dir>/stack.json``).

Why ports are picked at runtime: several stacks (a developer's ``make demo``, a pytest session,
a CI job) share one machine, and SeaweedFS alone listens on a dozen ports, so no fixed port can
be assumed free. Why a state file: ``python -m airflow_synth.local up`` exits and leaves the
servers running; ``down``, ``env`` and ``status`` run later in other processes and must find
them again, and a restarted stack should come back on the same ports so that connection
strings already exported in a shell keep working.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import random
import socket
import tempfile
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
STATE_FILE_NAME = "stack.json"
# SeaweedFS derives gRPC ports as "HTTP port + 10000" in places that ignore the explicit flag.
GRPC_PORT_OFFSET = 10000


def is_port_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could bind ``host:port`` right now.

    SO_REUSEADDR mirrors what PostgreSQL and Go servers do, so a port that only has TIME_WAIT
    leftovers of a just-stopped server counts as free (and a restart can reuse it).
    """
    if not 0 < port < 65536:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def is_port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_free_port(host: str = LOOPBACK, exclude: Collection[int] = ()) -> int:
    """A port the kernel reports free (bind to port 0), avoiding ``exclude``.

    ``exclude`` holds ports already promised to another server of the same stack but not yet
    bound, which the kernel cannot know about.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in exclude:
            return port
    raise RuntimeError(f"no free TCP port found on {host} after 100 attempts")


def find_free_port_pair(
    host: str = LOOPBACK,
    offset: int = GRPC_PORT_OFFSET,
    exclude: Collection[int] = (),
    low: int = 10000,
) -> int:
    """A free port ``p`` whose partner ``p + offset`` is free too.

    Needed because a component of ``weed mini`` (its maintenance worker) dials the admin
    server's gRPC port as "admin HTTP port + 10000", ignoring ``-admin.port.grpc``.
    """
    high = 65535 - offset
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randrange(low, high)
        partner = port + offset
        if port in exclude or partner in exclude:
            continue
        if is_port_free(port, host) and is_port_free(partner, host):
            return port
    raise RuntimeError(f"no free TCP port pair (p, p+{offset}) found on {host}")


def choose_port(
    saved: int | None, host: str = LOOPBACK, exclude: Collection[int] = ()
) -> tuple[int, bool]:
    """Reuse ``saved`` if it is still free, else pick a new free port.

    Returns ``(port, reused)`` so callers can log why a port changed.
    """
    if saved and saved not in exclude and is_port_free(saved, host):
        return saved, True
    return find_free_port(host, exclude), False


def state_path(state_dir: Path) -> Path:
    return Path(state_dir) / STATE_FILE_NAME


def read_state(state_dir: Path) -> dict[str, Any]:
    """The whole state file, ``{}`` when missing or unreadable.

    A corrupt file is logged and treated as empty rather than fatal: the servers can still be
    found through their own pid files and ports are picked afresh.
    """
    path = state_path(state_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable state file %s: %s", path, exc)
        return {}
    if not isinstance(data, dict):
        logger.warning("ignoring state file %s: top level is not an object", path)
        return {}
    return data


def write_state(state_dir: Path, state: Mapping[str, Any]) -> None:
    """Replace the state file atomically (write a temp file, then rename)."""
    path = state_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".stack.", suffix=".json", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # no secrets inside; let other users run `status`
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Serialise read-modify-write cycles of the servers sharing one state file."""
    lock_path = Path(state_dir) / (STATE_FILE_NAME + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_section(state_dir: Path, section: str) -> dict[str, Any]:
    """One server's part of the state file (``{}`` if absent)."""
    value = read_state(state_dir).get(section)
    return dict(value) if isinstance(value, dict) else {}


def update_section(
    state_dir: Path, section: str, values: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Merge ``values`` into one section (``None`` deletes the section); returns the new state.

    Keys whose value is ``None`` are removed from the section.
    """
    with _locked(state_dir):
        state = read_state(state_dir)
        if values is None:
            state.pop(section, None)
        else:
            current = state.get(section)
            merged = dict(current) if isinstance(current, dict) else {}
            for key, value in values.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            state[section] = merged
        write_state(state_dir, state)
        return state
