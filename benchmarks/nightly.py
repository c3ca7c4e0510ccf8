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
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks nightly")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
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
