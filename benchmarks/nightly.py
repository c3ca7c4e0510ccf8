"""A nightly refresh that reuses its model vs one that retrains: seconds side by side.

The nightly DAG's synthesize work (``train`` >> ``sample`` >> ``assess``, here in one
process through :func:`~airflow_synth.core.steps.run_synthesize`) on the demo's users table
(``specs/userbookings.yaml``) at ``--rows`` rows, GaussianCopula, filters and gates as
shipped. Night 1 trains and keeps its model and record (what the publish step uploads
next to ``model.pkl``); each later "night" sees the same users plus 1% new ones (drift
~0.01) and either retrains (``reuse_model`` off) or reuses night 1's model. The two
alternate, the first round a warm-up, medians of ``--repeats`` rounds. Extract and load
are the same work in both and are not part of the measurement (the published rows and
reports are the same size); the reused night pays for the fingerprint and loading the
model instead of the fit.

    python -m benchmarks nightly [--rows 20000] [--repeats 3]

``--stack`` measures whole nightly runs instead: a throwaway local stack (PostgreSQL, S3
server, Airflow home under a temporary folder), the demo source seeded with ``--rows``
users, and ``esl_airbnb_bookings_nightly`` run under ``dag.test()``: night 1 trains, then
a night that must retrain (``max_model_age_hours`` 0: the model is "too old"; the split
stays keyed so the next night can reuse) alternates with a night that reuses (the source
unchanged). Whole-run seconds (the DAG run) and the train task's seconds, medians.

    python -m benchmarks nightly --stack [--rows 20000] [--sessions-per-user 10] [--repeats 2]
        [--synthesizer gaussian_copula]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd


def night(real: Path, work: Path, plan: Any) -> dict[str, Any]:
    """One night's synthesize work; its seconds, the train step's and what was decided."""
    from airflow_synth.core.assess.checks import CheckSettings
    from airflow_synth.core.engine.synthesizers import resolve_synthesizer
    from airflow_synth.core.steps import sharded, train_table
    from airflow_synth.core.steps.finish import _Run

    work.mkdir(parents=True, exist_ok=True)
    checks = CheckSettings()
    started = time.monotonic()
    fit = train_table(
        real,
        dataset="users",
        spec=resolve_synthesizer("gaussian_copula"),
        seed=7,
        checks=checks,
        reuse=plan,
    )
    trained = time.monotonic()
    samples = sharded.sample_all_shards(fit, real, work)
    result = sharded.finish_shards(
        fit,
        real,
        samples,
        work,
        _Run(
            dataset="users",
            seed=7,
            scale=1.0,
            checks=checks,
            layout=None,
            save_model=True,
            enforce_gates_=True,
            max_parents=None,
        ),
    )
    return {
        "seconds": time.monotonic() - started,
        "train": trained - started,
        "fit": result["fit_seconds"],
        "sample": result["sample_seconds"],
        "checks": result["checks_seconds"],
        "decision": result["model_reuse"]["reason"],
        "quality": result["scores"]["quality_score"],
        "gates": all(g["passed"] for g in result["gates"]),
        "model_files": result["model_files"],
    }


def stack_nights(rows: int, sessions_per_user: float, repeats: int, synthesizer: str | None) -> int:
    """Whole nightly DAG runs on a throwaway local stack (see the module docstring)."""
    from airflow_synth.demo.environment import airflow_environment, project_dir
    from airflow_synth.demo.runner import ensure_airflow_db, seed_source
    from airflow_synth.local import LocalStack

    project = project_dir()
    with tempfile.TemporaryDirectory(prefix="bench-nightly-stack-") as tmp:
        stack = LocalStack(Path(tmp) / "state")
        stack.start()
        try:
            env = airflow_environment(
                stack.state_dir / "airflow", stack.connection_env(), project=project
            )
            os.environ.update(env)  # before Airflow is imported
            seeding = time.monotonic()
            seed_source(stack, project, users=rows, sessions_per_user=sessions_per_user, seed=3)
            print(f"seeded {rows:,} users in {time.monotonic() - seeding:.0f} s")
            ensure_airflow_db(env)
            spec = importlib.util.spec_from_file_location(
                "_bench_bookings", project / "dags" / "esl_airbnb_bookings.py"
            )
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            dag = module.nightly_dag
            return _run_nights(dag, stack, repeats, synthesizer)
        finally:
            stack.stop()


def _run_nights(dag: Any, stack: Any, repeats: int, synthesizer: str | None) -> int:
    from airflow_synth.demo.runner import _read_manifest

    def one(name: str, max_age: float) -> dict[str, Any]:
        conf = {"reuse_model": True, "max_model_age_hours": max_age, "seed": 42, "rows": 0}
        if synthesizer:
            conf["synthesizer"] = synthesizer
        run = dag.test(run_conf=conf)
        assert str(run.state) == "success", f"{name} night failed"
        tis = {ti.task_id: ti for ti in run.get_task_instances()}
        train = tis["esl.train"]
        manifest = _read_manifest(stack, run.run_id, "airbnb_bookings")
        synthesis = manifest["synthesis"]
        return {
            "seconds": (run.end_date - run.start_date).total_seconds(),
            "train": (train.end_date - train.start_date).total_seconds(),
            "fit": synthesis["fit_seconds"],
            "rows": manifest["rows"],
            "quality": synthesis["scores"]["quality_score"],
            "decision": synthesis["model_reuse"]["reason"],
        }

    first = one("first", 168)
    print(f"night 1: {first['seconds']:.1f} s, {first['rows']:,} rows ({first['decision']})")
    runs: dict[str, list[dict[str, Any]]] = {"retrained": [], "reused": []}
    ages = {"retrained": 0.0, "reused": 168.0}
    for round_ in range(repeats + 1):  # round 0 is the warm-up
        order = ["reused", "retrained"] if round_ % 2 == 0 else ["retrained", "reused"]
        if round_ == 0:
            order = ["retrained", "reused"]  # a reused night needs a model of reuse: first
        for name in order:
            measured = one(name, ages[name])
            if round_ or not repeats:
                runs[name].append(measured)
            print(
                f"  round {round_} {name:>9}: run {measured['seconds']:.1f} s, train task "
                f"{measured['train']:.1f} s (fit {measured['fit']:.1f} s), quality "
                f"{measured['quality']:.4f} -- {measured['decision']}"
            )

    def median(items: list[dict[str, Any]], key: str) -> float:
        return statistics.median(item[key] for item in items)

    retrained, reused = runs["retrained"], runs["reused"]
    print(f"\nmedians over {len(reused)} round(s) after the warm-up ({first['rows']:,} rows)")
    for name, items in runs.items():
        print(
            f"  {name:>9}: whole run {median(items, 'seconds'):.1f} s, train task "
            f"{median(items, 'train'):.1f} s, quality {median(items, 'quality'):.4f}"
        )
    print(
        f"  reused / retrained: whole run "
        f"{median(reused, 'seconds') / median(retrained, 'seconds'):.3f}x, train task "
        f"{median(reused, 'train') / median(retrained, 'train'):.3f}x"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks nightly")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stack", action="store_true", help="whole DAG runs on a local stack")
    parser.add_argument("--sessions-per-user", type=float, default=10)
    parser.add_argument(
        "--synthesizer",
        default=None,
        help="--stack: the Trigger form's synthesizer (default: the DAG's)",
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.stack:
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return stack_nights(args.rows, args.sessions_per_user, args.repeats, args.synthesizer)
    import json

    from airflow_synth.core.engine.reuse import ModelRecord, ReusePlan, ReuseSettings
    from airflow_synth.core.steps.staged import load_staged
    from airflow_synth.demo.generate import generate_users

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-nightly-") as tmp:
        users = generate_users(args.rows, seed=3).drop(columns=["id"])
        first, later = Path(tmp) / "night1.parquet", Path(tmp) / "later.parquet"
        users.to_parquet(first, index=False)
        extra = generate_users(max(args.rows // 100, 1), seed=4).drop(columns=["id"])
        pd.concat([users, extra], ignore_index=True).to_parquet(later, index=False)
        on = ReuseSettings(enabled=True)
        trained = night(first, Path(tmp) / "night1", ReusePlan(on, run="night-1"))
        print(f"night 1: {trained['seconds']:.1f} s ({trained['decision']})")
        files = {n: Path(u.removeprefix("file://")) for n, u in trained["model_files"].items()}
        record = ModelRecord.from_dict(json.loads(files["fingerprint.json"].read_text()))
        model_path = files["table_model.pkl"]
        plans = {
            "retrained": lambda: ReusePlan(ReuseSettings(enabled=False), run="night-n"),
            "reused": lambda: ReusePlan(
                on, record, load_model=lambda: load_staged(model_path), run="night-n"
            ),
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in plans}
        for round_ in range(args.repeats + 1):  # round 0 is the warm-up
            order = list(plans) if round_ % 2 == 0 else list(plans)[::-1]
            for name in order:
                measured = night(later, Path(tmp) / f"{name}-{round_}", plans[name]())
                if round_ or not args.repeats:
                    runs[name].append(measured)
                print(
                    f"  round {round_} {name:>9}: {measured['seconds']:.1f} s (train step "
                    f"{measured['train']:.1f} s, fit {measured['fit']:.1f} s, sample "
                    f"{measured['sample']:.1f} s, checks {measured['checks']:.1f} s), quality "
                    f"{measured['quality']:.4f}, gates {'pass' if measured['gates'] else 'FAIL'}"
                    f" -- {measured['decision']}"
                )

    def median(items: list[dict[str, Any]], key: str) -> float:
        return statistics.median(item[key] for item in items)

    retrained, reused = runs["retrained"], runs["reused"]
    print(f"\nmedians over {len(reused)} round(s) after the warm-up ({args.rows:,} rows)")
    for name, items in runs.items():
        print(
            f"  {name:>9}: train step {median(items, 'train'):.1f} s, synthesize work "
            f"{median(items, 'seconds'):.1f} s, quality {median(items, 'quality'):.4f}"
        )
    print(
        f"  reused / retrained: train step "
        f"{median(reused, 'train') / median(retrained, 'train'):.3f}x, synthesize work "
        f"{median(reused, 'seconds') / median(retrained, 'seconds'):.3f}x"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0
