"""Multi-table HMA on the demo's users/sessions: how cost grows with the training subset.

SDV's HMA fits one small model per parent row's children, so fit time and memory grow with
the number of parents (and children) it is given; on the demo's 10k users / ~1M sessions
it does not finish on 2 cores. The pipeline therefore trains on an integrity-preserving
subset (``max_parents`` sampled users with **all** their sessions, see
:mod:`airflow_synth.core.engine.subset`). This benchmark measures that path at several sizes.

Data: the demo spec (``specs/userbookings.yaml``) generated in-process through
:mod:`airflow_synth.datagen` (no PostgreSQL), ``--users`` users (default 10,000, about 100
sessions each), written to Parquet as the extract step would stage it. Then, for each size
in ``--sizes``, in its own child process (so peak memory is per size):
``integrity_subset`` (20% holdout as in the pipeline) -> ``build_multitable_metadata`` ->
``fit_hma`` -> ``sample_hma(scale=1)`` -> ``check_integrity``.

Prints subset / fit / sample seconds, peak resident memory (VmHWM after imports and the
input, i.e. what the subset + HMA needed) and the ratios against the smallest size measured
in the same run (the baseline): a ratio close to the size ratio means linear growth.
The full-data reference is extrapolated from the largest size's per-parent cost unless
``--full`` asks to run it (hours of CPU on 2 cores; do not).

``--compare`` puts the two engines side by side on the same data instead, each in its own
child process, alternating for ``--repeats`` rounds after a warm-up round, medians printed:
the HMA path as the pipeline runs it by default (``max_parents`` 1,000 subset, sampled at
``scale=1``; its full-size time extrapolated at its per-parent cost) and the per-table
engine at the **full size** (as many users as real, each with a learned number of sessions;
GaussianCopula per table, training bounded at 100,000 rows per table). For each: fit and
sample seconds, synthetic rows, integrity, and the children-per-parent histogram distance
(total variation, zero-session users included) against the real table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
folder, parents, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
from pathlib import Path
import pyarrow.parquet as pq
from airflow_synth.core.frames import to_training_frame
from airflow_synth.core.assess.set_quality import check_integrity
from airflow_synth.core.engine.hma import build_multitable_metadata, fit_hma, sample_hma
from airflow_synth.core.relations import TableSet
from airflow_synth.core.engine.subset import integrity_subset
import sdv.multi_table  # noqa: F401  (imports are not the method's memory)

table_set = TableSet.from_dict(json.loads(Path(folder, "table_set.json").read_text()))
paths = {name: Path(folder, f"{name}.parquet") for name in table_set.order}


def status_mb(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


try:  # reset the peak (VmHWM): imports are not the method
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
except OSError:
    pass
loaded_mb = status_mb("VmRSS")
out = {"parents": parents}
started = time.perf_counter()
subset = integrity_subset(
    paths, table_set, Path(folder, f"subset-{parents}"), max_parents=parents,
    holdout_share=0.2, seed=seed,
)
train = {n: to_training_frame(pq.read_table(p)) for n, p in subset.train_paths.items()}
out["subset_s"] = time.perf_counter() - started
out["rows"] = {n: len(f) for n, f in train.items()}
metadata = build_multitable_metadata(train, table_set)
synthesizer, out["fit_s"] = fit_hma(train, metadata, seed)
sampled, out["sample_s"] = sample_hma(synthesizer, 1.0, seed)
out["synthetic_rows"] = {n: len(f) for n, f in sampled.items()}
out["integrity"] = check_integrity(sampled, table_set)["score"]
out["peak_mb"] = status_mb("VmHWM")
if out["peak_mb"] != out["peak_mb"]:  # no /proc: the whole process's peak
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["loaded_mb"] = loaded_mb
print(json.dumps(out))
"""


ENGINE_CHILD = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
folder, engine, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
from pathlib import Path
import pyarrow.parquet as pq
from airflow_synth.core.assess.relationships import check_integrity, children_per_parent
from airflow_synth.core.frames import to_training_frame
from airflow_synth.core.relations import TableSet

table_set = TableSet.from_dict(json.loads(Path(folder, "table_set.json").read_text()))
paths = {name: Path(folder, f"{name}.parquet") for name in table_set.order}
real = {n: to_training_frame(pq.read_table(p)) for n, p in paths.items()}
out = {"engine": engine}
if engine == "hma":
    from airflow_synth.core.engine.hma import build_multitable_metadata, fit_hma, sample_hma
    from airflow_synth.core.engine.subset import integrity_subset
    subset = integrity_subset(paths, table_set, Path(folder, "subset"), max_parents=1000,
                              holdout_share=0.2, seed=seed)
    train = {n: to_training_frame(pq.read_table(p)) for n, p in subset.train_paths.items()}
    metadata = build_multitable_metadata(train, table_set)
    model, out["fit_s"] = fit_hma(train, metadata, seed)
    sampled, out["sample_s"] = sample_hma(model, 1.0, seed)
    parents = len(sampled[table_set.order[0]])
    full = len(real[table_set.order[0]])
    out["full_size_s"] = out["fit_s"] + out["sample_s"] * full / max(parents, 1)
else:
    from airflow_synth.core.engine.set_run import run_set_engine
    from airflow_synth.core.steps import classify_set, learned_columns
    from airflow_synth.core.engine.synthesizers import resolve_synthesizer
    roles = classify_set(real, table_set, {})
    frames = {n: real[n][learned_columns(roles[n])] for n in table_set.order}
    spec = resolve_synthesizer("gaussian_copula")
    run = run_set_engine(frames, table_set, roles, dict.fromkeys(table_set.order, spec),
                         seed=seed, scale=1.0, holdout_share=0.2)
    sampled, out["fit_s"], out["sample_s"] = run.sampled, run.fit_seconds, run.sample_seconds
    out["full_size_s"] = out["fit_s"] + out["sample_s"]
out["synthetic_rows"] = {n: len(f) for n, f in sampled.items()}
out["integrity"] = check_integrity(sampled, table_set)["score"]
out["distance"] = children_per_parent(real, sampled, table_set)["distance"]
print(json.dumps(out))
"""


def run_engine(folder: Path, engine: str, seed: int, timeout: float) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", ENGINE_CHILD, str(folder), engine, str(seed)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"engine {engine} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(folder: Path, seed: int, repeats: int, timeout: float) -> None:
    """HMA (pipeline default subset) vs the per-table engine at full size, alternating."""
    import statistics

    runs: dict[str, list[dict]] = {"hma": [], "per_table": []}
    for round_ in range(repeats + 1):  # round 0 warms up (imports, page cache)
        for engine in ("hma", "per_table"):
            result = run_engine(folder, engine, seed, timeout)
            if round_:
                runs[engine].append(result)
            print(
                f"round {round_} {engine:9s}: fit {result['fit_s']:7.1f} s  sample "
                f"{result['sample_s']:7.1f} s  rows {result['synthetic_rows']}  integrity "
                f"{result['integrity']}  children-per-parent distance {result['distance']:.3f}",
                flush=True,
            )
    med = {
        engine: {
            key: statistics.median(r[key] for r in results)
            for key in ("fit_s", "sample_s", "full_size_s", "distance")
        }
        for engine, results in runs.items()
    }
    print(f"medians of {repeats} round(s) after a warm-up:")
    for engine, m in med.items():
        print(
            f"  {engine:9s}: fit {m['fit_s']:7.1f} s  sample {m['sample_s']:7.1f} s  "
            f"full size (users as real) {m['full_size_s'] / 60:6.1f} min  "
            f"children-per-parent distance {m['distance']:.3f}"
        )
    print(
        f"ratio per_table / hma: full-size time "
        f"{med['per_table']['full_size_s'] / med['hma']['full_size_s']:.2f}x, distance "
        f"{med['per_table']['distance'] / max(med['hma']['distance'], 1e-9):.2f}x"
    )


def build_data(users: int, seed: int, folder: Path) -> str:
    """The demo users/sessions as Parquet plus the set's description (keys, relationship)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_synth.core.relations import TableShape, build_table_set
    from airflow_synth.datagen import generate
    from airflow_synth.demo.generate import demo_spec

    started = time.perf_counter()
    writers: dict[str, pq.ParquetWriter] = {}
    rows: dict[str, int] = {}
    columns: dict[str, tuple[str, ...]] = {}
    spec = demo_spec()
    try:
        for name, frame in generate(spec, seed=seed, rows={"users": users}, batch_rows=200_000):
            for column in frame.columns:  # plain values, as an extract stages them
                if frame[column].dtype.name == "category":
                    frame[column] = frame[column].astype(object).where(frame[column].notna())
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if name not in writers:
                writers[name] = pq.ParquetWriter(folder / f"{name}.parquet", table.schema)
                columns[name] = tuple(frame.columns)
            writers[name].write_table(table.cast(writers[name].schema))
            rows[name] = rows.get(name, 0) + len(frame)
    finally:
        for writer in writers.values():
            writer.close()
    shapes = {
        name: TableShape(name, columns[name], ("id",) if "id" in columns[name] else ())
        for name in columns
    }
    table_set = build_table_set(shapes, declared=["sessions.user_id -> users.id"])
    (folder / "table_set.json").write_text(json.dumps(table_set.to_dict()))
    sizes = ", ".join(f"{name} {count:,}" for name, count in rows.items())
    return f"{sizes} rows generated from {spec.name} in {time.perf_counter() - started:.1f} s"


def run_child(folder: Path, parents: int, seed: int, timeout: float) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(parents), str(seed)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"HMA at {parents} parents failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=10_000, help="users in the full data")
    parser.add_argument(
        "--sizes", default="250,500,1000,2000", help="max_parents values (comma-separated)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per size")
    parser.add_argument(
        "--full",
        action="store_true",
        help="also fit on every user (very slow; default: extrapolate)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="HMA (default subset) vs the per-table engine at full size, side by side",
    )
    parser.add_argument("--repeats", type=int, default=1, help="--compare rounds after warm-up")
    args = parser.parse_args(argv)
    if args.compare:
        with tempfile.TemporaryDirectory(prefix="bench-multitable-") as tmp:
            print(build_data(args.users, args.seed, Path(tmp)))
            compare(Path(tmp), args.seed, args.repeats, args.timeout)
        return 0
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if args.full:
        sizes.append(int(args.users * 0.8))  # all users but the 20% holdout

    with tempfile.TemporaryDirectory(prefix="bench-multitable-") as tmp:
        folder = Path(tmp)
        print(build_data(args.users, args.seed, folder))
        results = []
        for parents in sizes:
            r = run_child(folder, parents, args.seed, args.timeout)
            results.append(r)
            print(
                f"{parents:>6} parents ({r['rows']['sessions']:>9,} sessions): subset "
                f"{r['subset_s']:6.2f} s  fit {r['fit_s']:8.2f} s  sample {r['sample_s']:7.2f} s"
                f"  peak {r['peak_mb']:6.0f} MB (+{r['peak_mb'] - r['loaded_mb']:.0f} MB)  "
                f"synthetic {r['synthetic_rows']['users']:,} users / "
                f"{r['synthetic_rows']['sessions']:,} sessions, integrity {r['integrity']}",
                flush=True,
            )
        base = results[0]
        print(f"ratios against the smallest size ({base['parents']} parents, same run):")
        for r in results:
            extra = (r["peak_mb"] - r["loaded_mb"]) / (base["peak_mb"] - base["loaded_mb"])
            print(
                f"{r['parents']:>6} parents: size {r['parents'] / base['parents']:5.1f}x  "
                f"sessions {r['rows']['sessions'] / base['rows']['sessions']:5.1f}x  "
                f"fit {r['fit_s'] / base['fit_s']:5.1f}x  "
                f"sample {r['sample_s'] / base['sample_s']:5.1f}x  "
                f"peak {r['peak_mb'] / base['peak_mb']:5.2f}x  "
                f"(+MB {extra:5.2f}x)"
            )
        if not args.full:
            top = results[-1]
            full = int(args.users * 0.8)
            per_parent = (top["fit_s"] + top["sample_s"]) / top["parents"]
            print(
                f"full data ({full:,} training users = all {args.users:,} but the 20% holdout): "
                f"not run; at the largest size's {per_parent * 1000:.1f} ms per parent "
                f"(fit + sample) it would take about {per_parent * full / 60:.0f} min if cost "
                "stayed linear (more if it grows faster, see the ratios above)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
