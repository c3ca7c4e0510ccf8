"""Develop your own DAG against the local stack: ``make dev-shell`` and ``make dev-env``.

Running a user's DAG file locally needs an Airflow home with a migrated metadata DB, a DAGs
folder that holds the file (``dag.test()`` and ``airflow dags test`` both look the DAG up
there), ``LOAD_EXAMPLES=False``, the connections of the local servers, the folder of the
feature SQL and this checkout's virtual environment first on ``PATH``. This module computes
that environment in one place and writes it to ``<state-dir>/dev.env``:

- ``dev_environment`` (pure): the variables, built on the same
  :func:`~airflow_synth.demo.environment.airflow_environment` as ``make demo`` and
  ``make airflow``, with its own Airflow home (``<state-dir>/dev/airflow``, SQLite) so a
  user's DAG runs never mix with the demo's.
- ``render_env_file`` (pure): ``KEY=value`` lines that a POSIX shell reads with
  ``set -a; . .local/dev.env; set +a`` and that IDEs and direnv read as a dotenv file.
- ``prepare`` (I/O): start the stack if it is not running, seed the demo source database
  if needed (as ``make demo`` does), migrate the dev home once, write the file.
- ``run_shell``: ``$SHELL`` with that environment; on exit the servers that this call
  started are stopped again.

The DAGs folder is, by default, ``.``: Airflow resolves it against the folder each command
runs in, so ``python my_dag.py`` and ``airflow dags test <dag_id>`` find the DAGs of the
folder they are run from, whichever folder that is. ``--dags-folder DIR`` pins one folder.
Imports no Airflow (Airflow runs in the child processes).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from airflow_synth.local.stack import (
    BUCKET,
    POSTGRES_CONN_ENV,
    S3_CONN_ENV,
    SOURCE_DATABASE,
    STATE_DIR_ENV,
    TARGET_CONN_ENV,
    LocalStack,
)

#: The env file, relative to the stack's state folder.
ENV_FILE_NAME = "dev.env"
#: The dev Airflow home, relative to the stack's state folder (not the demo's ``airflow/``).
DEV_HOME = Path("dev") / "airflow"
#: DAGS_FOLDER meaning "the folder the command runs in" (Airflow resolves it per process).
CURRENT_FOLDER = "."
#: Variables whose value keeps the caller's own value after ours (``${PATH}``).
_APPENDS = {"PATH"}
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def dev_environment(
    connections: Mapping[str, str],
    *,
    airflow_home: Path,
    project: Path,
    venv: Path,
    state_dir: Path,
    dags_folder: Path | None = None,
) -> dict[str, str]:
    """The variables of the dev shell, in the order they are written (no I/O).

    ``PATH`` is ``<venv>/bin:${PATH}``: kept unexpanded so the file prepends to whatever
    ``PATH`` the reading shell or IDE has. ``dags_folder`` None means ``.`` (the folder each
    command runs in); a given folder is made absolute so it holds from anywhere.
    """
    from airflow_synth.demo.environment import airflow_environment

    venv = Path(venv).resolve()
    env = {
        "VIRTUAL_ENV": str(venv),
        "PATH": f"{venv / 'bin'}:${{PATH}}",
        **airflow_environment(Path(airflow_home), connections, project=Path(project)),
        STATE_DIR_ENV: str(Path(state_dir).resolve()),
    }
    env["AIRFLOW__CORE__DAGS_FOLDER"] = (
        str(Path(dags_folder).expanduser().resolve()) if dags_folder else CURRENT_FOLDER
    )
    return env


def _quote(value: str) -> str:
    """Single-quote a value unless it is plainly safe; dotenv readers strip the quotes."""
    if _SAFE_VALUE.fullmatch(value):
        return value
    return shlex.quote(value)


def render_env_file(env: Mapping[str, str]) -> str:
    """``KEY=value`` lines: for ``set -a; . FILE; set +a``, direnv's ``dotenv`` and IDEs.

    No ``export`` keyword (IDE env-file readers reject it), so a shell needs ``set -a``.
    ``PATH`` is double-quoted so that ``${PATH}`` expands; every other value is literal.
    """
    lines = [
        "# airflow-synth dev environment, written by `make dev-shell` / `make dev-env`.",
        "# Shell: set -a; . <this file>; set +a    IDE: use it as the run configuration's",
        "# env file, with the interpreter of the same .venv. Regenerated on every run.",
    ]
    for key, value in env.items():
        if key in _APPENDS:
            if '"' in value or "`" in value or "\\" in value:
                raise ValueError(f"{key} holds a character the env file cannot quote: {value!r}")
            lines.append(f'{key}="{value}"')
        else:
            lines.append(f"{key}={_quote(value)}")
    return "\n".join(lines) + "\n"


def expanded(env: Mapping[str, str], base: Mapping[str, str]) -> dict[str, str]:
    """``env`` applied on top of ``base`` as a shell would read the file (``${PATH}``)."""
    result = dict(base)
    for key, value in env.items():
        result[key] = value.replace(f"${{{key}}}", base.get(key, "")) if key in _APPENDS else value
    if result.get("PATH", "").endswith(":"):
        result["PATH"] = result["PATH"].rstrip(":")
    return result


def env_file_path(state_dir: Path) -> Path:
    return Path(state_dir) / ENV_FILE_NAME


def write_env_file(path: Path, env: Mapping[str, str]) -> Path:
    """Write the env file readable by its owner only: it holds the local S3 secret."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_env_file(env))
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


@dataclass
class DevEnvironment:
    """What :func:`prepare` set up: the env, its file, and which servers it started."""

    env: dict[str, str]
    env_file: Path
    stack: LocalStack
    started_postgres: bool
    started_s3: bool

    def stop_started(self) -> None:
        """Stop the servers this session started; a stack that already ran keeps running."""
        try:
            if self.started_s3:
                self.stack.s3.stop()
        finally:
            if self.started_postgres:
                self.stack.pg.stop()


def default_venv() -> Path:
    """The virtual environment this Python runs in (``make install``'s ``.venv``)."""
    return Path(sys.prefix)


def prepare(
    stack: LocalStack,
    *,
    dags_folder: Path | None = None,
    seed: bool = True,
    users: int = 10_000,
    sessions_per_user: float = 100,
    log=print,
) -> DevEnvironment:
    """Start the stack if needed, seed the demo DB if needed, migrate the dev home once,
    write ``<state-dir>/dev.env``. Idempotent: a second call only rewrites the file."""
    from airflow_synth.demo.environment import project_dir
    from airflow_synth.demo.runner import ensure_airflow_db, seed_source

    project = project_dir()
    started_pg, started_s3 = not stack.pg.is_running(), not stack.s3.is_running()
    if started_pg or started_s3:
        log(f"[dev] starting the local PostgreSQL and S3 server under {stack.state_dir} ...")
    stack.start()
    try:
        if seed:
            seed_source(stack, project, users=users, sessions_per_user=sessions_per_user)
        env = dev_environment(
            stack.connection_env(),
            airflow_home=stack.state_dir / DEV_HOME,
            project=project,
            venv=default_venv(),
            state_dir=stack.state_dir,
            dags_folder=dags_folder,
        )
        home = Path(env["AIRFLOW_HOME"])
        if not (home / "airflow.db").is_file():
            log(f"[dev] migrating the dev Airflow home {home} (once) ...")
        ensure_airflow_db(expanded(env, os.environ))
        path = write_env_file(env_file_path(stack.state_dir), env)
    except BaseException:
        DevEnvironment({}, Path(), stack, started_pg, started_s3).stop_started()
        raise
    return DevEnvironment(env, path, stack, started_pg, started_s3)


def banner(dev: DevEnvironment) -> str:
    """What the shell offers, printed when it starts (names and ports, no secrets)."""
    env, stack = dev.env, dev.stack
    dags = env["AIRFLOW__CORE__DAGS_FOLDER"]
    where = "the folder you run a command from" if dags == CURRENT_FOLDER else dags
    conns = ", ".join(
        key.removeprefix("AIRFLOW_CONN_").lower()
        for key in (POSTGRES_CONN_ENV, TARGET_CONN_ENV, S3_CONN_ENV)
        if key in env
    )
    started = [n for n, s in (("PostgreSQL", dev.started_postgres), ("S3", dev.started_s3)) if s]
    leave = (
        f"exit (or Ctrl-D) leaves and stops {' and '.join(started)} (started here)"
        if started
        else "exit (or Ctrl-D) leaves; the servers keep running (`make stack-down` stops them)"
    )
    return "\n".join(
        [
            "",
            "airflow-synth dev shell",
            f"  PostgreSQL  {stack.pg.dsn(SOURCE_DATABASE)}   S3 {stack.s3.endpoint_url} "
            f"(bucket {BUCKET})",
            f"  connections {conns}",
            f"  DAGs folder {where}",
            f"  SQL files   relative names are looked up in {env['SYNTH_SQL_DIR']} (SYNTH_SQL_DIR)",
            f"  Airflow     home {env['AIRFLOW_HOME']} (SQLite), python/airflow from "
            f"{env['VIRTUAL_ENV']}",
            "",
            "  python my_dag.py                 run a DAG file ending in dag.test()",
            "  airflow dags test <dag_id>       run a DAG of the current folder",
            "  airflow dags list --local        the DAGs (and import errors) of the current folder",
            "  python -m airflow_synth.local status   the servers",
            f"  env file    {dev.env_file}  (IDE / other shells: set -a; . FILE; set +a)",
            f"  {leave}",
            "",
        ]
    )


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run_shell(dev: DevEnvironment, *, shell: str | None = None, cwd: Path | None = None) -> int:
    """``$SHELL`` with the dev environment; returns its exit code, then stops what
    :func:`prepare` started.

    While the shell runs, Ctrl-C belongs to it: this process only notes SIGINT (a Python
    handler, not SIG_IGN, which the shell and its commands would inherit). SIGTERM and
    SIGHUP (a closed terminal) end this process through the cleanup.
    """
    shell = shell or os.environ.get("SHELL") or "/bin/bash"
    env = expanded(dev.env, os.environ)
    env["AIRFLOW_SYNTH_DEV_SHELL"] = "1"
    previous = {
        sig: signal.signal(sig, handler)
        for sig, handler in (
            (signal.SIGINT, lambda signum, frame: None),
            (signal.SIGTERM, _raise_exit),
            (signal.SIGHUP, _raise_exit),
        )
    }
    try:
        return subprocess.run([shell], env=env, cwd=cwd, check=False).returncode
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        dev.stop_started()
