"""A real PostgreSQL 15 cluster in a local folder, started and stopped from Python.

Why not a container: Docker has no engine on the machines this project runs on. The Debian
``postgresql-15`` package's server binaries are enough for a private cluster listening only on
127.0.0.1. ``initdb``/``pg_ctl`` refuse to run as root, so as root they run as the ``postgres``
system user through ``runuser``; Python itself never runs as that user.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg import sql

from airflow_synth.local.ports import LOOPBACK, choose_port, is_port_open, read_section
from airflow_synth.local.ports import update_section as _update_section
from airflow_synth.local.process import (
    LocalStackError,
    log_tail,
    pid_alive,
    process_cmdline,
    terminate,
    wait_until,
)

logger = logging.getLogger(__name__)

DEFAULT_PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_BIN_ENV = "SYNTH_PG_BIN"
SECTION = "postgres"
SERVER_USER = "postgres"
# sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107
_ADDRESS_IN_USE = ("could not bind", "Address already in use")


def pg_bin_dir() -> Path:
    """The directory with ``initdb``/``pg_ctl``/``postgres``, or an error saying how to get it."""
    bin_dir = Path(os.environ.get(PG_BIN_ENV) or DEFAULT_PG_BIN)
    missing = [n for n in ("initdb", "pg_ctl", "postgres") if not (bin_dir / n).is_file()]
    if missing:
        raise LocalStackError(
            f"PostgreSQL server binaries not found in {bin_dir} (missing: {', '.join(missing)}). "
            "Install them with `apt-get install -y postgresql-15`, or set "
            f"{PG_BIN_ENV} to a directory holding initdb, pg_ctl and postgres."
        )
    return bin_dir


class LocalPostgres:
    """One PostgreSQL cluster under ``<state_dir>/postgres`` (trust auth, loopback only).

    The ``postgres`` superuser needs no password: the server listens on 127.0.0.1 only and
    exists for demos and tests. ``fsync=off`` trades crash safety for speed, which is right
    for throw-away data but means a machine crash may corrupt the cluster.
    """

    host = LOOPBACK
    user = SERVER_USER

    def __init__(
        self, state_dir: Path, port: int | None = None, *, start_timeout: float = 60.0
    ) -> None:
        self.state_dir = Path(state_dir).expanduser().resolve()
        self._explicit_port = port
        self.start_timeout = start_timeout
        saved = read_section(self.state_dir, SECTION).get("port")
        self.port: int | None = port or (int(saved) if saved else None)
        self._as_root = os.geteuid() == 0

    # ------------------------------------------------------------------ locations
    @property
    def preferred_dir(self) -> Path:
        """Where the cluster lives when the server user can reach it."""
        return self.state_dir / "postgres"

    @property
    def fallback_dir(self) -> Path:
        """Where the cluster lives when it cannot: a /tmp folder keyed by the state dir.

        Needed when running as root with the state dir under a folder the ``postgres`` user
        cannot traverse (``/root``, pytest's 0700 temp base), or when the socket path would
        exceed the kernel's 107-byte limit.
        """
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        return Path("/tmp") / f"airflow-synth-pg-{os.getuid()}-{digest}"

    @property
    def cluster_dir(self) -> Path | None:
        """The folder holding ``data/``, ``server.log`` and the socket; None before initdb."""
        saved = read_section(self.state_dir, SECTION).get("cluster_dir")
        candidates = [Path(saved)] if saved else []
        candidates += [self.preferred_dir, self.fallback_dir]
        for candidate in candidates:
            if (candidate / "data" / "PG_VERSION").is_file():
                return candidate
        return None

    @property
    def log_path(self) -> Path | None:
        cluster = self.cluster_dir
        return cluster / "server.log" if cluster else None

    # ------------------------------------------------------------------ connection
    def dsn(self, dbname: str = "postgres") -> str:
        """``postgresql://postgres@127.0.0.1:PORT/dbname`` (no password: trust auth)."""
        if self.port is None:
            raise LocalStackError("PostgreSQL port unknown: start() the server first")
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", *, autocommit: bool = False) -> psycopg.Connection:
        """A psycopg connection to ``dbname`` (the caller closes it)."""
        return psycopg.connect(self.dsn(dbname), connect_timeout=5, autocommit=autocommit)

    # ------------------------------------------------------------------ state
    def _postmaster(self) -> tuple[int, int] | None:
        """``(pid, port)`` of a live postmaster of this cluster, from ``postmaster.pid``."""
        cluster = self.cluster_dir
        if cluster is None:
            return None
        try:
            lines = (cluster / "data" / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, IndexError, ValueError):
            return None
        if not pid_alive(pid) or "postgres" not in process_cmdline(pid):
            return None
        return pid, port

    def is_running(self) -> bool:
        """True when this cluster's postmaster lives and accepts TCP connections."""
        info = self._postmaster()
        if info is None:
            return False
        self.port = info[1]
        return is_port_open(info[1], self.host)

    @property
    def pid(self) -> int | None:
        info = self._postmaster()
        return info[0] if info else None

    # ------------------------------------------------------------------ privileges
    def _cmd(self, argv: list[str]) -> list[str]:
        """Run server binaries as ``postgres`` when we are root (they refuse root)."""
        if not self._as_root:
            return argv
        runuser = shutil.which("runuser")
        if runuser is None:
            raise LocalStackError(
                "running as root needs `runuser` (util-linux) to drop to postgres"
            )
        return [runuser, "-u", SERVER_USER, "--", *argv]

    def _server_ids(self) -> tuple[int, int]:
        if not self._as_root:
            return os.getuid(), os.getgid()
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise LocalStackError(
                "running as root needs a `postgres` system user to run the server "
                "(`apt-get install -y postgresql-15` creates it)"
            ) from None
        return entry.pw_uid, entry.pw_gid

    def _own(self, path: Path) -> None:
        if self._as_root:
            uid, gid = self._server_ids()
            os.chown(path, uid, gid)

    def _server_can_use(self, directory: Path) -> bool:
        """Whether the server user can write ``directory`` (and so traverse its parents)."""
        if len(str(directory / ".s.PGSQL.65535")) > _MAX_SOCKET_PATH:
            return False
        directory.mkdir(parents=True, exist_ok=True)
        if not self._as_root:
            return os.access(directory, os.W_OK | os.X_OK)
        self._own(directory)
        probe = subprocess.run(
            self._cmd(["test", "-w", str(directory), "-a", "-x", str(directory)]),
            cwd="/",
            capture_output=True,
        )
        return probe.returncode == 0

    def _prepare_cluster_dir(self) -> Path:
        existing = self.cluster_dir
        if existing is not None:
            return existing
        preferred = self.preferred_dir
        if self._server_can_use(preferred):
            return preferred
        if preferred.is_dir() and not any(preferred.iterdir()):
            preferred.rmdir()
        fallback = self.fallback_dir
        logger.info(
            "the %s user cannot reach %s; keeping the PostgreSQL cluster in %s instead "
            "(found again from this state dir on every start)",
            SERVER_USER,
            preferred,
            fallback,
        )
        fallback.mkdir(mode=0o700, exist_ok=True)
        uid, _ = self._server_ids()
        owner = fallback.stat().st_uid
        if owner not in (uid, os.getuid()):
            raise LocalStackError(f"{fallback} belongs to uid {owner}, not to us; remove it")
        self._own(fallback)
        return fallback

    # ------------------------------------------------------------------ lifecycle
    def _initdb(self, bin_dir: Path, cluster: Path) -> None:
        data = cluster / "data"
        if (data / "PG_VERSION").is_file():
            return
        if data.exists():  # left over from an interrupted initdb
            shutil.rmtree(data)
        logger.info("initialising PostgreSQL cluster in %s", data)
        result = subprocess.run(
            self._cmd(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    SERVER_USER,
                    "-A",
                    "trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]
            ),
            cwd=cluster,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise LocalStackError(
                f"initdb failed in {data} (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )

    def start(self) -> None:
        """Start the server (initialising the cluster on first use); no-op if it runs.

        Port: the explicit one, else the one saved in ``stack.json`` if still free, else a
        new free port; a port lost to a race is retried with another one.
        """
        if self.is_running():
            if self._explicit_port and self._explicit_port != self.port:
                raise LocalStackError(
                    f"PostgreSQL already runs on port {self.port}, not {self._explicit_port}: "
                    "stop() it first"
                )
            logger.info("PostgreSQL already running on %s:%s", self.host, self.port)
            return
        began = time.monotonic()
        bin_dir = pg_bin_dir()
        cluster = self._prepare_cluster_dir()
        self._initdb(bin_dir, cluster)
        data, log = cluster / "data", cluster / "server.log"
        for attempt in range(3):
            if self._explicit_port:
                port = self._explicit_port
            else:
                saved = self.port if attempt == 0 else None
                port, reused = choose_port(saved, self.host)
                if saved and not reused:
                    logger.info("PostgreSQL port %s is taken; using %s", saved, port)
            log_start = log.stat().st_size if log.exists() else 0
            options = (
                f"-p {port} -k {shlex.quote(str(cluster))} "
                f"-c listen_addresses={self.host} -c fsync=off"
            )
            result = subprocess.run(
                self._cmd(
                    [
                        str(bin_dir / "pg_ctl"),
                        "-D",
                        str(data),
                        "-l",
                        str(log),
                        "-w",
                        "-t",
                        str(int(self.start_timeout)),
                        "-o",
                        options,
                        "start",
                    ]
                ),
                cwd=cluster,
                capture_output=True,
                text=True,
                # The postmaster must outlive this Python process and ignore its Ctrl-C.
                start_new_session=True,
            )
            if result.returncode == 0:
                break
            tail = log_tail(log, start=log_start)
            if not self._explicit_port and any(m in tail for m in _ADDRESS_IN_USE):
                logger.info("PostgreSQL lost port %s to another process; retrying", port)
                continue
            raise LocalStackError(
                f"PostgreSQL failed to start on {self.host}:{port} "
                f"(pg_ctl exit {result.returncode}): {result.stdout}{result.stderr}\n"
                f"--- {log} ---\n{tail}"
            )
        else:
            raise LocalStackError(f"PostgreSQL found no free port; see {log}")
        self.port = port
        if not wait_until(self._accepts_queries, self.start_timeout, interval=0.1):
            raise LocalStackError(
                f"PostgreSQL on {self.host}:{port} does not accept queries after "
                f"{self.start_timeout:.0f}s\n--- {log} ---\n{log_tail(log)}"
            )
        _update_section(
            self.state_dir, SECTION, {"port": port, "cluster_dir": str(cluster), "pid": self.pid}
        )
        logger.info("PostgreSQL ready on %s:%s in %.1fs", self.host, port, time.monotonic() - began)

    def _accepts_queries(self) -> bool:
        try:
            with self.connect("postgres") as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def stop(self) -> None:
        """Fast shutdown (``pg_ctl -m fast``); SIGINT/SIGKILL if pg_ctl cannot do it."""
        info = self._postmaster()
        cluster = self.cluster_dir
        if info is None or cluster is None:
            return
        pid = info[0]
        began = time.monotonic()
        try:
            bin_dir = pg_bin_dir()
        except LocalStackError:
            bin_dir = None
        if bin_dir is not None:
            subprocess.run(
                self._cmd(
                    [
                        str(bin_dir / "pg_ctl"),
                        "-D",
                        str(cluster / "data"),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        "60",
                        "stop",
                    ]
                ),
                cwd=cluster,
                capture_output=True,
                text=True,
            )
        if pid_alive(pid):  # pg_ctl missing or failed: SIGINT is PostgreSQL's fast shutdown
            terminate(pid, sig=signal.SIGINT, timeout=30.0)
        _update_section(self.state_dir, SECTION, {"pid": None})
        logger.info("PostgreSQL stopped in %.1fs", time.monotonic() - began)

    def destroy(self) -> None:
        """Stop the server and delete the cluster (wherever it lives) and its saved state."""
        self.stop()
        for directory in {self.preferred_dir, self.fallback_dir, self.cluster_dir}:
            if directory is not None and directory.exists():
                shutil.rmtree(directory)
        _update_section(self.state_dir, SECTION, None)

    # ------------------------------------------------------------------ databases
    def create_database(self, name: str) -> bool:
        """Create database ``name`` unless it exists; returns True if it was created."""
        with self.connect("postgres", autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if exists.fetchone():
                return False
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:
                return False
        return True

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting its sessions."""
        with self.connect("postgres", autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
