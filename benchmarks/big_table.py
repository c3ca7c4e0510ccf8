"""A big table trained on a bounded sample vs on every row: time and quality side by side.

The synthesize step trains each table on a seeded sample of at most ``max_training_rows``
rows and samples the full size all the same. This measures what the bound costs in
quality and saves in time: the demo's users table (``specs/userbookings.yaml``) at
``--rows`` rows, synthesized with GaussianCopula (filters and gates as shipped) once on
every row (``max_training_rows=0``) and once on ``--bound`` rows, the two alternating, the
first round a warm-up, medians of ``--repeats`` rounds. Quality is SDV's quality score of
the published rows against the same real rows.

    python -m benchmarks big_table [--rows 1000000] [--bound 200000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq


def synthesize(real: Path, work: Path, rows: int, bound: int | None) -> dict[str, Any]:
    from airflow_synth.core.assess.checks import CheckSettings
    from airflow_synth.core.engine.synthesizers import resolve_synthesizer
    from airflow_synth.core.steps import run_synthesize

    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = run_synthesize(
        real,
        work,
        dataset="users",
        spec=resolve_synthesizer("gaussian_copula"),
        num_rows=rows,
        seed=7,
        checks=CheckSettings.from_mapping({"min_dependence": None, "min_quality": None}),
        enforce_gates_=False,
        max_training_rows=bound,
    )
    return {
        "seconds": time.monotonic() - started,
        "fit": result["fit_seconds"],
        "sample": result["sample_seconds"],
        "quality": result["scores"]["quality_score"],
        "training_rows": result["training_rows"],
        "rows": result["rows"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks big_table")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bound", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    from airflow_synth.demo.generate import generate_users

    with tempfile.TemporaryDirectory(prefix="bench-big-table-") as tmp:
        real = Path(tmp) / "users.parquet"
        generate_users(args.rows, seed=3).drop(columns=["id"]).to_parquet(real, index=False)
        print(f"{args.rows:,} real rows, {pq.read_metadata(real).num_columns} columns")
        runs: dict[str, list[dict[str, Any]]] = {"every row": [], "bounded": []}
        for round_ in range(args.repeats + 1):  # round 0 is the warm-up
            for name, bound in (("every row", None), ("bounded", args.bound)):
                measured = synthesize(real, Path(tmp) / f"{name}-{round_}", args.rows, bound)
                if round_ or not args.repeats:
                    runs[name].append(measured)
                print(
                    f"  round {round_} {name:>9}: {measured['seconds']:.1f} s (fit "
                    f"{measured['fit']:.1f} s on {measured['training_rows']:,} rows), quality "
                    f"{measured['quality']:.4f}"
                )
    full, bounded = runs["every row"], runs["bounded"]

    def median(items: list[dict[str, Any]], key: str) -> float:
        return statistics.median(item[key] for item in items)

    print(f"\nmedians over {len(full)} round(s) after the warm-up")
    for name, items in runs.items():
        print(
            f"  {name:>9}: fit {median(items, 'fit'):.1f} s, total "
            f"{median(items, 'seconds'):.1f} s, quality {median(items, 'quality'):.4f}"
        )
    print(
        f"  fit time bounded / every row: {median(bounded, 'fit') / median(full, 'fit'):.3f}x; "
        f"quality difference {median(bounded, 'quality') - median(full, 'quality'):+.4f} "
        "(targets: <= 0.1x, within 0.01)"
    )
    return 0
