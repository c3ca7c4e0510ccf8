"""``make demo``: the ESL pipeline end to end on the embedded local stack.

Starts (or reuses) the local PostgreSQL and S3 server, applies the source migrations,
seeds the demo data (skipped when already seeded with the same settings), runs the
``esl_airbnb_bookings`` DAG under ``dag.test()`` and prints a summary read back from the
published manifest. Every step is idempotent, so a second ``make demo`` is faster.

What a person sees: one line per phase as it starts and ends, then the summary (rows,
scores, gate verdicts, time per phase), a local copy of ``report.html`` and the manifest,
and how to browse the published bucket. Airflow's and the libraries' logs go to a file under
``<state>/demo/logs/`` whose path is printed first and last. The servers stay up afterwards
(so the printed ``s3://`` URIs can be opened) unless ``--stop`` is given.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from airflow_synth.demo.console import PhaseProgress, first_line, listening, logs_to_file

logger = logging.getLogger(__name__)

DAG_ID = "esl_airbnb_bookings"
MULTITABLE_DAG_ID = "esl_airbnb_multitable"
MULTITABLE_DATASET = "airbnb_multitable"
MULTITABLE_SCHEMA = "airbnb_synthetic"
DATASET = "airbnb_bookings"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m airflow_synth.demo", description=__doc__)
    parser.add_argument("--users", type=int, default=10_000, help="demo users (default 10000)")
    parser.add_argument(
        "--sessions-per-user", type=float, default=100, help="average sessions per user (100)"
    )
    parser.add_argument("--rows", type=int, default=0, help="synthetic rows (0: as extracted)")
    parser.add_argument("--synthesizer", default="auto")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--state-dir", type=Path, default=None, help="default: <repo>/.local")
    parser.add_argument(
        "--stop",
        action="store_true",
        help="stop PostgreSQL and S3 at the end (default: leave them running so the "
        "published bucket can be browsed; `make stack-down` stops them)",
    )
    parser.add_argument(  # the default since the servers stay up; kept for old scripts
        "--keep-running", action="store_true", help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--min-quality",
        type=float,
        default=None,
        help="quality gate threshold (0..1) for this run; e.g. 0.999 to see a failed gate",
    )
    parser.add_argument(
        "--multitable",
        action="store_true",
        help=f"run {MULTITABLE_DAG_ID} instead: users + sessions with foreign keys intact, "
        "loaded into the local synthetic_staging database",
    )
    parser.add_argument(
        "--engine",
        default="per_table",
        choices=["per_table", "hma"],
        help="multi-table engine: per_table (full size, default) or hma (a subset)",
    )
    parser.add_argument(
        "--max-parents", type=int, default=1_000, help="multi-table hma: users to train on"
    )
    return parser


def ensure_airflow_db(env: dict[str, str]) -> None:
    """``airflow db migrate`` once per Airflow home (it is idempotent, but costs seconds)."""
    home = Path(env["AIRFLOW_HOME"])
    marker = home / ".migrated"
    home.mkdir(parents=True, exist_ok=True)
    if marker.is_file() and (home / "airflow.db").is_file():
        return
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run(
        [str(airflow), "db", "migrate"],
        env={**os.environ, **env},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    marker.write_text("ok\n")


def load_dag(dag_file: Path, dag_id: str) -> Any:
    """Import a DAG file as a module and return its DAG object."""
    spec = importlib.util.spec_from_file_location(f"_demo_{dag_id}", dag_file)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module.dag


def main(argv: Sequence[str] | None = None) -> int:
    """``make demo``; the exit code (1 when a step or the DAG run failed, 130 on Ctrl-C).

    Everything but the ``[demo]`` lines and the summary goes to the log file, from before
    Airflow is imported, so its handlers are set up on the file."""
    args = _parser().parse_args(argv)
    from airflow_synth.demo.environment import project_dir
    from airflow_synth.local import LocalStack

    started = time.monotonic()
    project = project_dir()
    stack = LocalStack(args.state_dir)
    log_path = demo_dir(stack) / "logs" / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.log"
    with logs_to_file(log_path) as terminal:

        def say(line: str = "") -> None:
            print(line, file=terminal, flush=True)

        say(f"[demo] Airflow's task logs and library logs go to {log_path}")
        progress = PhaseProgress(say, started=started)
        try:
            code = _demo(args, project, stack, progress, say, log_path)
        except Exception as exc:  # the traceback goes to the log; the terminal gets a line
            traceback.print_exc()  # sys.stderr is the log file here
            say(f"[demo] FAILED: {first_line(exc)}")
            say(f"[demo] the traceback is in {log_path}")
            code = 1
        except KeyboardInterrupt:
            say("[demo] interrupted")
            code = 130
        finally:
            if args.stop and not args.keep_running:
                stack.stop()
        running = stack.is_running()  # after a failed start, too: say what is true
        dataset = MULTITABLE_DATASET if args.multitable else DATASET
        for line in after_lines(stack, dataset, running=running):
            say(line)
        say(f"[demo] total {time.monotonic() - started:.1f}s; full log: {log_path}")
    return code


def _demo(
    args: argparse.Namespace,
    project: Path,
    stack: Any,
    progress: PhaseProgress,
    say: Callable[[str], None],
    log_path: Path,
) -> int:
    """Servers, seed, Airflow DB, then the DAG; the exit code."""
    from airflow_synth.demo.environment import airflow_environment

    say(f"[demo] local PostgreSQL and S3 server under {stack.state_dir}")
    with progress.timed("servers"):
        stack.start()
    env = airflow_environment(stack.state_dir / "airflow", stack.connection_env(), project=project)
    os.environ.update(env)  # before Airflow is imported
    say(f"[demo] source data: {args.users} users x ~{args.sessions_per_user:g} sessions")
    with progress.timed("seed"):
        seed = seed_source(
            stack,
            project,
            users=args.users,
            sessions_per_user=args.sessions_per_user,
            seed=args.seed,
        )
    with progress.timed("airflow db"):
        ensure_airflow_db(env)
    if args.multitable:
        return run_multitable(stack, project, args, seed, progress, say, log_path)
    conf: dict[str, Any] = {
        "rows": args.rows,
        "synthesizer": args.synthesizer,
        "epochs": args.epochs,
        "seed": args.seed,
    }
    if args.min_quality is not None:
        conf["min_quality"] = args.min_quality
    return run_single(stack, project, conf, seed, progress, say, log_path)


def demo_dir(stack: Any) -> Path:
    """Where the demo keeps its logs and local copies: ``<state>/demo``."""
    return Path(stack.state_dir) / "demo"


def run_single(
    stack: Any,
    project: Path,
    conf: dict[str, Any],
    seed: Any,
    progress: PhaseProgress,
    say: Callable[[str], None],
    log_path: Path,
    *,
    dag_id: str = DAG_ID,
    dataset: str = DATASET,
) -> int:
    """Run the single-table DAG with progress lines, copy its report and manifest, print
    the summary (or what failed and where its report is); the exit code."""
    dag_run = run_dag(project, dag_id, conf, progress, say)
    if str(getattr(dag_run, "state", "unknown")) != "success":
        say(failure_text(dag_run, progress, stack, dataset, log_path))
        return 1
    manifest = _read_manifest(stack, dag_run.run_id, dataset)
    local = demo_dir(stack) / "reports" / dataset / str(manifest.get("run") or "run")
    copies = copy_published(stack, manifest, local)
    say(
        summary(
            manifest,
            seed,
            progress.durations,
            copies=copies,
            log_path=log_path,
            total=progress.clock() - progress.started,
        )
    )
    return 0


def run_multitable(
    stack: Any,
    project: Path,
    args: argparse.Namespace,
    seed: Any,
    progress: PhaseProgress,
    say: Callable[[str], None],
    log_path: Path,
) -> int:
    """``--multitable``: run the multi-table DAG, load the set into synthetic_staging."""
    conf = {
        "engine": args.engine,
        "max_parents": args.max_parents,
        "seed": args.seed,
        "load_to_target": True,
        "target_schema": MULTITABLE_SCHEMA,
    }
    dag_run = run_dag(project, MULTITABLE_DAG_ID, conf, progress, say)
    if str(getattr(dag_run, "state", "unknown")) != "success":
        say(failure_text(dag_run, progress, stack, MULTITABLE_DATASET, log_path))
        return 1
    manifest = _read_manifest(stack, dag_run.run_id, MULTITABLE_DATASET)
    say(multitable_summary(manifest, seed, progress.durations, stack.connection_env()))
    return 0


def run_dag(
    project: Path,
    dag_id: str,
    conf: dict[str, Any],
    progress: PhaseProgress,
    say: Callable[[str], None],
) -> Any:
    """Run a ready-made DAG with ``dag.test()``, a progress line per task start and end;
    the finished DAG run (``dag.test()`` does not raise when a task fails)."""
    say(f"[demo] running DAG {dag_id} with {conf}")
    progress.begin("dag start", until_next=True)  # parse, serialize, first task's start-up
    dag = load_dag(project / "dags" / f"{dag_id}.py", dag_id)
    with listening(progress):
        return dag.test(run_conf=conf)


def failure_text(
    dag_run: Any, progress: PhaseProgress, stack: Any, dataset: str, log_path: Path
) -> str:
    """What failed, why (the error's own text: names, counts and scores, never a cell
    value) and where to read more: the failed gate's report, copied locally, and the log."""
    from airflow_synth.runtime import quarantined_report_uri

    state = str(getattr(dag_run, "state", "unknown"))
    lines = ["", "=" * 72, f"airflow-synth demo: the DAG run ended in state {state!r}", "=" * 72]
    for failure in progress.failures:
        lines.append(f"failed phase         : {failure.phase}")
        text = str(failure.error or "").strip().splitlines()
        name = type(failure.error).__name__ if failure.error is not None else "error"
        lines += [f"  {name}: {text[0] if text else ''}", *(f"  {t}" for t in text[1:20])]
        report = quarantined_report_uri(failure.error) if failure.error is not None else None
        if report:
            from airflow_synth.core.names import safe_key_part

            run = safe_key_part(str(getattr(dag_run, "run_id", "run")))
            dest = demo_dir(stack) / "reports" / dataset / "_failed" / run
            try:
                copy = download_uri(stack, report, dest / "report.html")
                lines.append(f"report (local copy)  : {copy.as_uri()}")
            except Exception as exc:  # noqa: BLE001 - the S3 URI below still says where
                logger.warning("could not copy the failed gate's report: %s", exc)
            lines.append(f"report               : {report}")
    if not progress.failures:
        lines.append("no task reported a failure; the log says why")
    lines += [f"full log             : {log_path}", "=" * 72]
    return "\n".join(lines)


def download_uri(stack: Any, uri: str, dest: Path) -> Path:
    """Copy ``s3://bucket/key`` from the local S3 server to ``dest``."""
    from airflow_synth.demo.browse import split_uri

    bucket, key = split_uri(uri, stack.BUCKET)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stack.s3.client().download_file(bucket, key, str(dest))
    return dest


def copy_published(stack: Any, manifest: dict[str, Any], dest: Path) -> dict[str, Path]:
    """Local copies of the run's ``report.html`` and manifest (they open without the
    servers, e.g. in a browser from a ``file://`` URI)."""
    copies: dict[str, Path] = {}
    report = (manifest.get("reports") or {}).get("report.html")
    if report:
        copies["report.html"] = download_uri(stack, report, dest / "report.html")
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    copies["manifest.json"] = path
    return copies


def after_lines(stack: Any, dataset: str, *, running: bool) -> list[str]:
    """How to look into the published bucket, and how to stop (or restart) the servers;
    commands name the state folder when it is not the default one."""
    from airflow_synth.demo.browse import filer_port, filer_url
    from airflow_synth.local.stack import default_state_dir

    state = Path(stack.state_dir)
    custom = state.resolve() != default_state_dir().expanduser().resolve()
    flag = f" --state-dir {state}" if custom else ""
    python = _venv_python()
    browse = f"{python} -m airflow_synth.demo.browse{flag} s3://{stack.BUCKET}/{dataset}/"
    down = f"{python} -m airflow_synth.local down{flag}" if custom else "make stack-down"
    up = f"{python} -m airflow_synth.local up{flag}" if custom else "make stack-up"
    lines = ["[demo] browse the published bucket:", f"         {browse}"]
    port = filer_port(state) if running else None
    if port:
        lines.append(f"         or open {filer_url(port, stack.BUCKET, dataset + '/')}")
    if running:
        lines.append(f"[demo] PostgreSQL and the S3 server are still running; stop them: {down}")
    else:
        lines.append(f"[demo] the servers are stopped; to browse, start them again: {up}")
    return lines


def _venv_python() -> str:
    """This interpreter as a person would type it: relative to the repository if inside."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def seed_source(
    stack: Any,
    project: Path,
    *,
    users: int = 10_000,
    sessions_per_user: float = 100,
    seed: int = 42,
) -> Any:
    """Apply the source migrations and seed the demo data (both no-ops when done already)."""
    from airflow_synth.demo.migrations import apply_migrations
    from airflow_synth.demo.seed import seed_demo_database

    with stack.pg.connect(stack.DATABASE) as conn:
        applied = apply_migrations(conn, project / "sql" / "migrations")
        if applied:
            print(f"[demo] applied migrations: {', '.join(applied)}", flush=True)
        print(
            f"[demo] seeding {users} users x ~{sessions_per_user:g} sessions "
            "(skipped if already seeded) ...",
            flush=True,
        )
        return seed_demo_database(
            conn,
            n_users=users,
            avg_sessions_per_user=sessions_per_user,
            seed=seed,
        )


def _read_manifest(stack: Any, run_id: str, dataset: str = DATASET) -> dict[str, Any]:
    from airflow_synth.core.publish.layout import DatasetLayout

    layout = DatasetLayout(bucket=stack.BUCKET, dataset=dataset, run=run_id)
    body = stack.s3.client().get_object(Bucket=stack.BUCKET, Key=layout.manifest_key)["Body"]
    return json.loads(body.read())


def manifest_uri_of(manifest: dict[str, Any]) -> str | None:
    """Where a manifest says it lives: the run's manifest (what readers of the run find),
    else the publish attempt's own copy."""
    return manifest.get("run_manifest_uri") or manifest.get("manifest_uri")


def gate_verdict(gates: Sequence[dict[str, Any]]) -> str:
    """``8 of 8 passed``, or which failed with value and threshold (scores, no cell value)."""
    if not gates:
        return "none"
    failed = [g for g in gates if not g.get("passed")]
    text = f"{len(gates) - len(failed)} of {len(gates)} passed"
    if failed:

        def one(g: dict[str, Any]) -> str:
            value, threshold = g.get("value"), g.get("threshold")
            sign = ">=" if g.get("kind") == "min" else "<="
            shown = "n/a" if value is None else f"{value:.3f}"
            limit = "" if threshold is None else f" (needs {sign} {threshold:g})"
            return f"{g.get('metric')} {shown}{limit}"

        text += "; FAILED: " + ", ".join(one(g) for g in failed)
    return text


def score_lines(synthesis: dict[str, Any]) -> list[str]:
    """Fidelity, privacy, filter and gate lines of the summary."""
    scores = synthesis.get("scores") or {}

    def fmt(key: str) -> str:
        value = scores.get(key)
        return "n/a" if value is None else f"{value:.3f}"

    filters = synthesis.get("filters") or {}
    gates = synthesis.get("gates") or []
    return [
        f"fidelity             : quality {fmt('quality_score')} (shapes {fmt('column_shapes')}, "
        f"pair trends {fmt('column_pair_trends')}), dependence {fmt('dependence_preservation')}"
        f", diagnostic {fmt('diagnostic')}",
        f"privacy              : exact-match rate {fmt('exact_match_rate')}, DCR share "
        f"{fmt('dcr_share')}, NNDR median {fmt('nndr_median')}",
        f"filters (rows drop.) : similarity {filters.get('similarity', 0)}, outlier "
        f"{filters.get('outlier', 0)}",
        f"gates                : {gate_verdict(gates)}",
    ]


def _seconds(items: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in items.items()) or "n/a"


def summary(
    manifest: dict[str, Any],
    seed: Any,
    phases: dict[str, float],
    *,
    copies: dict[str, Path] | None = None,
    log_path: Path | None = None,
    total: float | None = None,
) -> str:
    """The closing summary of ``make demo``: what came out, how good, how long, and where
    to look (local copies first: they open without the servers)."""
    work = manifest.get("timings_seconds", {})
    synthesis = manifest.get("synthesis", {})
    table = (manifest.get("tables") or {}).get((manifest.get("load_order") or [None])[0]) or {}
    seeded = "loaded now" if getattr(seed, "loaded", False) else "already loaded"
    copies = copies or {}
    report_copy = copies.get("report.html")
    lines = [
        "",
        "=" * 72,
        "airflow-synth demo: extract -> synthesize -> load finished",
        "=" * 72,
        f"source data          : {seed.n_users} users, {seed.n_sessions} sessions ({seeded})",
        f"rows extracted       : {manifest['source'].get('rows_extracted')}",
        f"synthesizer          : {synthesis.get('synthesizer', {}).get('name')} "
        f"{synthesis.get('synthesizer', {}).get('params') or ''} seed={synthesis.get('seed')}",
        f"rows published       : {manifest['rows']} ({len(manifest['columns'])} columns)",
        *score_lines(synthesis),
        f"time per phase (s)   : {_seconds(phases)}",
        f"work in the tasks (s): {_seconds(work)}",
        *([f"total                : {total:.1f} s"] if total is not None else []),
        "-" * 72,
        *([f"report (local copy)  : {report_copy.resolve().as_uri()}"] if report_copy else []),
        *(
            [f"manifest (local copy): {copies['manifest.json']}"]
            if "manifest.json" in copies
            else []
        ),
        f"dataset              : {table.get('uri')}",
        f"manifest             : {manifest_uri_of(manifest)}",
        f"model                : {synthesis.get('model_uri')}",
        f"report               : {manifest.get('reports', {}).get('report.html')}",
        *([f"full log             : {log_path}"] if log_path else []),
        "=" * 72,
    ]
    return "\n".join(lines)


def multitable_summary(
    manifest: dict[str, Any], seed: Any, timings: dict[str, float], env: dict[str, str]
) -> str:
    """The closing summary of ``make demo DEMO_ARGS=--multitable``."""
    synthesis = manifest.get("synthesis", {})
    scores = synthesis.get("scores") or {}
    subset = (synthesis.get("subset") or {}).get("tables", {})
    gates = synthesis.get("gates") or []
    target = env.get("AIRFLOW_CONN_SYNTH_TARGET_DB", "synth_target_db")
    lines = [
        "",
        "=" * 72,
        "airflow-synth demo: multi-table extract -> synthesize -> load finished",
        "=" * 72,
        f"source data          : {seed.n_users} users, {seed.n_sessions} sessions",
        f"engine               : {(synthesis.get('synthesizer') or {}).get('name')}",
        "trained on           : "
        + "; ".join(f"{t} {s['training_rows']:,} of {s['real_rows']:,}" for t, s in subset.items()),
        "published            : "
        + ", ".join(f"{t} {info['rows']:,} rows" for t, info in manifest["tables"].items()),
        f"integrity            : {(synthesis.get('integrity') or {}).get('score')} "
        "(share of foreign keys pointing at a synthetic parent)",
        "multi-table quality  : "
        + ", ".join(
            f"{k} {scores[k]:.3f}"
            for k in (
                "quality_score",
                "column_shapes",
                "column_pair_trends",
                "cardinality",
                "intertable_trends",
            )
            if scores.get(k) is not None
        ),
        f"gates                : {gate_verdict(gates)}",
        f"time per phase (s)   : {_seconds(timings)}",
        f"work in the tasks (s): {_seconds(manifest.get('timings_seconds', {}))}",
        f"manifest             : {manifest_uri_of(manifest)}",
        f"loaded into          : schema {MULTITABLE_SCHEMA} of {target}",
        "=" * 72,
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
