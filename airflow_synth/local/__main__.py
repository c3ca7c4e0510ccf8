"""``python -m airflow_synth.local up|down|status|env|dev-env|dev-shell [--state-dir DIR]``.

- ``up``: start PostgreSQL and the S3 server in the background (they keep running after this
  command exits), create database ``userbookings`` and bucket ``synthetic``; ports and pids
  go to ``<state-dir>/stack.json``.
- ``down``: stop both; data stays for the next ``up``.
- ``status``: what runs where; exit code 0 if both run, 1 otherwise.
- ``env``: ``export AIRFLOW_CONN_...=...`` lines for the shell:
  ``eval "$(.venv/bin/python -m airflow_synth.local env)"``.
- ``dev-env``: ``up``, seed the demo source DB if needed, migrate a dev Airflow home once and
  write ``<state-dir>/dev.env`` (everything a user's DAG needs: see
  :mod:`airflow_synth.local.devshell`); the servers keep running.
- ``dev-shell``: the same, then ``$SHELL`` with that environment (``make dev-shell``);
  leaving it stops the servers it started.

Logs go to stderr so that ``env``'s stdout stays clean for ``eval``.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from airflow_synth.local.process import LocalStackError
from airflow_synth.local.stack import LocalStack, default_state_dir


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_synth.local",
        description="Run the embedded PostgreSQL + S3 stack without Docker.",
    )
    parser.add_argument("command", choices=("up", "down", "status", "env", "dev-env", "dev-shell"))
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help=f"folder for data, logs and stack.json (default: {default_state_dir()})",
    )
    dev = parser.add_argument_group("dev-env / dev-shell")
    dev.add_argument(
        "--dags-folder",
        type=Path,
        default=None,
        help="pin AIRFLOW__CORE__DAGS_FOLDER to DIR (the shell starts there); default: the "
        "folder each command runs in",
    )
    dev.add_argument(
        "--no-seed", action="store_true", help="leave the demo source database as it is"
    )
    dev.add_argument("--users", type=int, default=10_000, help="demo users to seed (10000)")
    dev.add_argument(
        "--sessions-per-user", type=float, default=100, help="average sessions per user (100)"
    )
    return parser


def _dev(stack: LocalStack, args: argparse.Namespace):
    from airflow_synth.local.devshell import prepare

    return prepare(
        stack,
        dags_folder=args.dags_folder,
        seed=not args.no_seed,
        users=args.users,
        sessions_per_user=args.sessions_per_user,
        log=lambda text: print(text, file=sys.stderr, flush=True),
    )


def _dev_env(stack: LocalStack, args: argparse.Namespace) -> int:
    dev = _dev(stack, args)
    print(f"wrote {dev.env_file}")
    print(f"use it:  set -a; . {shlex.quote(str(dev.env_file))}; set +a")
    print("or as the env file of your IDE's run configuration (interpreter: .venv/bin/python)")
    return 0


def _dev_shell(stack: LocalStack, args: argparse.Namespace) -> int:
    from airflow_synth.local.devshell import banner, run_shell

    dev = _dev(stack, args)
    print(banner(dev), flush=True)
    return run_shell(dev, cwd=args.dags_folder)


def _up(stack: LocalStack) -> int:
    stack.start()
    env = stack.connection_env()
    print(f"PostgreSQL  {stack.pg.dsn(stack.DATABASE)}  (pid {stack.pg.pid})")
    print(f"S3          {stack.s3.endpoint_url}  bucket {stack.BUCKET}  (pid {stack.s3.pid})")
    print(f"state       {stack.state_file}")
    print(f"connections {', '.join(env)}")
    print('load them:  eval "$(.venv/bin/python -m airflow_synth.local env)"')
    return 0


def _down(stack: LocalStack) -> int:
    stack.stop()
    print(f"stopped; data kept in {stack.state_dir}")
    return 0


def _status(stack: LocalStack) -> int:
    status = stack.status()
    pg, s3 = status["postgres"], status["s3"]
    print(f"state dir   {status['state_dir']}")
    for name, part, where in (
        ("PostgreSQL", pg, pg["cluster_dir"]),
        ("S3", s3, s3["data_dir"]),
    ):
        if part["running"]:
            print(
                f"{name:<11} running on 127.0.0.1:{part['port']} (pid {part['pid']}), data {where}"
            )
        else:
            print(f"{name:<11} stopped (last port {part['port']}), data {where}")
    return 0 if pg["running"] and s3["running"] else 1


def _env(stack: LocalStack) -> int:
    if stack.pg.port is None or stack.s3.port is None:
        print(f"no stack state in {stack.state_dir}: run `up` first", file=sys.stderr)
        return 1
    if not stack.is_running():
        print(f"warning: the stack in {stack.state_dir} is not running", file=sys.stderr)
    for key, value in stack.connection_env().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    stack = LocalStack(args.state_dir)
    commands = {"up": _up, "down": _down, "status": _status, "env": _env}
    try:
        if args.command == "dev-env":
            return _dev_env(stack, args)
        if args.command == "dev-shell":
            return _dev_shell(stack, args)
        return commands[args.command](stack)
    except LocalStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
