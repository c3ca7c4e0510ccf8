"""``make demo``: the ESL pipeline end to end on the embedded local stack.

Starts (or reuses) the local PostgreSQL and S3 server, applies the source migrations,
seeds the demo data (skipped when already seeded with the same settings), runs the
``esl_airbnb_bookings`` DAG under ``dag.test()`` and prints a summary read back from the
published manifest. Every step is idempotent, so a second ``make demo`` is faster.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
        "--keep-running", action="store_true", help="leave PostgreSQL and S3 running afterwards"
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
    args = _parser().parse_args(argv)
    from airflow_synth.demo.environment import airflow_environment, project_dir
    from airflow_synth.local import LocalStack

    project = project_dir()
    timings: dict[str, float] = {}
    started = time.monotonic()
    stack = LocalStack(args.state_dir)
    print(f"[demo] starting local PostgreSQL and S3 server under {stack.state_dir} ...", flush=True)
    stack.start()
    timings["servers"] = time.monotonic() - started
    try:
        env = airflow_environment(
            stack.state_dir / "airflow", stack.connection_env(), project=project
        )
        os.environ.update(env)  # before Airflow is imported
        step = time.monotonic()
        seed = seed_source(
            stack,
            project,
            users=args.users,
            sessions_per_user=args.sessions_per_user,
            seed=args.seed,
        )
        timings["seed"] = time.monotonic() - step
        step = time.monotonic()
        ensure_airflow_db(env)
        timings["airflow_db"] = time.monotonic() - step
        step = time.monotonic()
        if args.multitable:
            return run_multitable(stack, project, args, seed, timings, step)
        conf = {
            "rows": args.rows,
            "synthesizer": args.synthesizer,
            "epochs": args.epochs,
            "seed": args.seed,
        }
        manifest = run_dag(stack, project, DAG_ID, DATASET, conf, timings, step)
        if manifest is None:
            return 1
        print(summary(manifest, seed, timings))
        return 0
    finally:
        if not args.keep_running:
            stack.stop()


def run_multitable(
    stack: Any, project: Path, args: argparse.Namespace, seed: Any, timings: dict, step: float
) -> int:
    """``--multitable``: run the multi-table DAG, load the set into synthetic_staging."""
    conf = {
        "engine": args.engine,
        "max_parents": args.max_parents,
        "seed": args.seed,
        "load_to_target": True,
        "target_schema": MULTITABLE_SCHEMA,
    }
    manifest = run_dag(stack, project, MULTITABLE_DAG_ID, MULTITABLE_DATASET, conf, timings, step)
    if manifest is None:
        return 1
    print(multitable_summary(manifest, seed, timings, stack.connection_env()))
    return 0


def run_dag(
    stack: Any,
    project: Path,
    dag_id: str,
    dataset: str,
    conf: dict[str, Any],
    timings: dict[str, float],
    step: float,
) -> dict[str, Any] | None:
    """Run a ready-made DAG with ``dag.test()``; its published manifest, or None if it failed."""
    dag = load_dag(project / "dags" / f"{dag_id}.py", dag_id)
    print(f"[demo] running DAG {dag_id} with {conf} ...", flush=True)
    dag_run = dag.test(run_conf=conf)
    timings["dag"] = time.monotonic() - step
    state = str(getattr(dag_run, "state", "unknown"))
    if state != "success":
        print(f"[demo] DAG run ended in state {state!r}: see the task logs above.")
        return None
    return _read_manifest(stack, dag_run.run_id, dataset)


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


def score_lines(synthesis: dict[str, Any]) -> list[str]:
    """Fidelity, privacy, filter and gate lines of the summary."""
    scores = synthesis.get("scores") or {}

    def fmt(key: str) -> str:
        value = scores.get(key)
        return "n/a" if value is None else f"{value:.3f}"

    filters = synthesis.get("filters") or {}
    gates = synthesis.get("gates") or []
    verdicts = ", ".join(f"{g['metric']} {'PASS' if g['passed'] else 'FAIL'}" for g in gates)
    return [
        f"fidelity             : quality {fmt('quality_score')} (shapes {fmt('column_shapes')}, "
        f"pair trends {fmt('column_pair_trends')}), dependence {fmt('dependence_preservation')}"
        f", diagnostic {fmt('diagnostic')}",
        f"privacy              : exact-match rate {fmt('exact_match_rate')}, DCR share "
        f"{fmt('dcr_share')}, NNDR median {fmt('nndr_median')}",
        f"filters (rows drop.) : similarity {filters.get('similarity', 0)}, outlier "
        f"{filters.get('outlier', 0)}",
        f"gates                : {verdicts or 'none'}",
    ]


def summary(manifest: dict[str, Any], seed: Any, timings: dict[str, float]) -> str:
    """The closing summary of ``make demo``."""
    phases = manifest.get("timings_seconds", {})
    synthesis = manifest.get("synthesis", {})
    table = (manifest.get("tables") or {}).get((manifest.get("load_order") or [None])[0]) or {}
    seeded = "loaded now" if getattr(seed, "loaded", False) else "already loaded"
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
        "time per phase (s)   : " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()),
        "demo overhead (s)    : " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()),
        f"dataset              : {table.get('uri')}",
        f"manifest             : {manifest_uri_of(manifest)}",
        f"model                : {synthesis.get('model_uri')}",
        f"report               : {manifest.get('reports', {}).get('report.html')}",
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
    failed = [g["metric"] for g in gates if not g["passed"]]
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
        f"gates                : {len(gates) - len(failed)} of {len(gates)} passed",
        "time per phase (s)   : "
        + ", ".join(f"{k} {v:.1f}" for k, v in manifest.get("timings_seconds", {}).items()),
        "demo overhead (s)    : " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()),
        f"manifest             : {manifest_uri_of(manifest)}",
        f"loaded into          : schema {MULTITABLE_SCHEMA} of {target}",
        "=" * 72,
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
