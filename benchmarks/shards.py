"""Sampling a big table in shards on several workers vs in one shard on one worker.

The ready-made chain trains once and samples in shards, each a mapped task that any worker
runs. This measures what that buys: a model is trained once on the demo's users table
(``--train-rows`` rows, GaussianCopula, filters as shipped) and staged like the train task
stages it; then ``--rows`` rows are sampled

* in one shard by one "worker" (a fresh process limited to ``--cpus-per-worker`` CPUs), and
* in ``--shards`` shards by as many workers side by side (one process per shard, each with
  CPUs of its own),

each worker loading the staged fit and sampling its shard to its own part file, exactly as
the ``sample`` task does. The two alternate, the first round is a warm-up, medians of
``--repeats`` rounds; the ratio is one shard's wall time over the sharded wall time.

    python -m benchmarks shards [--rows 10000000] [--shards 2] [--repeats 1]

A worker needs ``--cpus-per-worker`` CPUs of its own: with 2 CPUs here, 2 workers of 1 CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path


def train(real: Path, fit_path: Path, rows: int, shards: int) -> list[dict]:
    """Train once (what the ``train`` task does) and stage the fit; the shard plan."""
    from airflow_synth.core.assess.checks import CheckSettings
    from airflow_synth.core.engine.synthesizers import resolve_synthesizer
    from airflow_synth.core.steps import train_table

    fit = train_table(
        real,
        dataset="users",
        spec=resolve_synthesizer("gaussian_copula"),
        num_rows=rows,
        seed=7,
        checks=CheckSettings.from_mapping({"min_dependence": None, "min_quality": None}),
        shards=shards,
    )
    fit.save(fit_path)
    return fit.plan()


def worker(real: str, fit_path: str, shard: str, out: str) -> None:
    """One shard in this process (what the ``sample`` task does on its worker)."""
    from airflow_synth.core.engine.shards import Shard
    from airflow_synth.core.steps import TableFit, sample_shard

    fit = TableFit.load(Path(fit_path))
    sample = sample_shard(fit, Path(real), Shard.from_dict(json.loads(shard)), Path(out))
    print(json.dumps({"rows": sample.rows, "seconds": sample.seconds}))


def run_workers(
    real: Path, fit_path: Path, plan: list[dict], out: Path, cpus: list[list[int]]
) -> tuple[float, int]:
    """Start one worker process per shard (each pinned to its CPUs), wait for all."""
    started = time.monotonic()
    procs = []
    for shard, mine in zip(plan, cpus, strict=False):
        env = {**os.environ, "SYNTH_CPU_THREADS": str(len(mine))}
        code = (
            "import sys, warnings; warnings.filterwarnings('ignore');"
            "from benchmarks.shards import worker; worker(*sys.argv[1:])"
        )
        argv = [sys.executable, "-c", code, str(real), str(fit_path), json.dumps(shard), str(out)]
        procs.append(
            subprocess.Popen(
                argv,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                preexec_fn=lambda mine=mine: os.sched_setaffinity(0, mine),  # noqa: PLW1509
            )
        )
    rows = 0
    for proc in procs:
        output, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"a shard worker failed (exit {proc.returncode})")
        rows += json.loads(output.decode().strip().splitlines()[-1])["rows"]
    return time.monotonic() - started, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks shards")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--cpus-per-worker", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    from airflow_synth.demo.generate import generate_users

    available = sorted(os.sched_getaffinity(0))
    per = args.cpus_per_worker
    if len(available) < per * args.shards:
        print(f"need {per * args.shards} CPUs for {args.shards} workers, have {len(available)}")
        return 1
    cpus = [available[i * per : (i + 1) * per] for i in range(args.shards)]
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        real = Path(tmp) / "users.parquet"
        generate_users(args.train_rows, seed=3).drop(columns=["id"]).to_parquet(real, index=False)
        fits = {}
        for count in (1, args.shards):
            fit_path = Path(tmp) / f"fit-{count}.pkl"
            fits[count] = (fit_path, train(real, fit_path, args.rows, count))
        print(
            f"{args.rows:,} rows sampled from a model trained on {args.train_rows:,} rows; "
            f"workers of {per} CPU(s) each"
        )
        times: dict[int, list[float]] = {1: [], args.shards: []}
        for round_ in range(args.repeats + 1):  # round 0 is the warm-up
            order = (1, args.shards) if round_ % 2 == 0 else (args.shards, 1)
            for count in order:
                fit_path, plan = fits[count]
                out = Path(tmp) / f"out-{count}-{round_}"
                seconds, rows = run_workers(real, fit_path, plan, out, cpus[:count])
                if round_ or not args.repeats:
                    times[count].append(seconds)
                print(
                    f"  round {round_}: {count} shard(s) on {count} worker(s): "
                    f"{seconds:.1f} s, {rows:,} rows"
                )
                for part in out.rglob("*.parquet"):
                    part.unlink()
    one, many = statistics.median(times[1]), statistics.median(times[args.shards])
    print(f"\nmedians over {len(times[1])} round(s) after the warm-up")
    print(
        f"  1 shard on 1 worker: {one:.1f} s; {args.shards} shards on {args.shards} "
        f"workers: {many:.1f} s"
    )
    print(f"  speed-up: {one / many:.2f}x (target for 2 shards on 2 workers: >= 1.8x)")
    return 0
