"""Privacy filters: cost against sampling, rows dropped and replaced, and rates kept.

Three checks in one run (no database needed):

* ``fd``: a 50,000-row table whose sequence number, timestamp and ratio are exact functions
  of each other, plus a channel and a flag (held-out rows sit right between training rows,
  so the holdout's DCR cut-off collapses: the outlier filter used to drop 40,532 of 50,000
  rows and fail the run);
* ``demo``: the demo's feature table (:func:`benchmarks.fidelity.demo_table`) at 200,000
  rows;
* ``booking``: the demo table at the demo's 10,000 users (``--seeds`` tables): booking rate
  of the real rows, of the raw sample (the 10,000 rows the model produced, before the
  filters) and of the published rows (after the filters and their replacements).

For ``fd`` and ``demo`` the synthesize step (``run_synthesize``, default checks and filters,
the ``--synthesizer`` engine) and plain SDV GaussianCopula fit + sample (detected metadata,
the same training split) alternate; the first round warms up, medians of ``--repeats``
rounds are printed: seconds of each, the step's parts (model sampling, the filters, the
raw privacy measurement) and the ratios the issue sets (filters / sampling <= 0.3, step /
plain <= 1.2), then the rows each filter dropped and how they were replaced.

    python -m benchmarks filters [--tables fd,demo,booking] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.fidelity import demo_table


def fd_table(rows: int, seed: int) -> pd.DataFrame:
    """Columns that determine each other: ``seq`` (modelled: not named like a key), a
    timestamp of ``seq`` minutes and the ratio ``seq / rows``; a channel and a flag."""
    rng = np.random.default_rng(seed)
    seq = np.arange(1, rows + 1)
    return pd.DataFrame(
        {
            "seq": seq,
            "event_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(seq * 60, "s"),
            "progress": seq / rows,
            "channel": rng.choice(["web", "app"], rows),
            "member": rng.random(rows) < 0.3,
        }
    )


TABLES: dict[str, tuple[Callable[[int, int], pd.DataFrame], int]] = {
    "fd": (fd_table, 50_000),
    "demo": (demo_table, 200_000),
}


@contextmanager
def timed(cls: type, name: str, into: dict[str, float], key: str) -> Iterator[None]:
    """Add the seconds spent in ``cls.name`` to ``into[key]`` for the block."""
    original = getattr(cls, name)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            into[key] = into.get(key, 0.0) + time.perf_counter() - started

    setattr(cls, name, wrapper)
    try:
        yield
    finally:
        setattr(cls, name, original)


def run_step(
    real: pd.DataFrame, work: Path, synthesizer: str, observe: Callable | None = None
) -> dict[str, Any]:
    """The synthesize step with its defaults; seconds of the step and of its parts."""
    from airflow_synth.core.assess.assessment import SyntheticAssessor
    from airflow_synth.core.assess.checks import CheckSettings
    from airflow_synth.core.engine.profile_codec import ProfiledSynthesizer
    from airflow_synth.core.engine.synthesizers import resolve_synthesizer
    from airflow_synth.core.steps import run_synthesize

    staged = work / f"real_{len(real)}_{pd.util.hash_pandas_object(real).sum()}.parquet"
    if not staged.exists():
        pq.write_table(pa.Table.from_pandas(real, preserve_index=False), staged)
    out = work / f"out_{time.monotonic_ns()}"
    out.mkdir()
    parts: dict[str, float] = {}
    original_observe = SyntheticAssessor.observe
    if observe is not None:

        def spy(self: Any, batch: pd.DataFrame) -> None:
            observe(batch)
            original_observe(self, batch)

        SyntheticAssessor.observe = spy  # type: ignore[method-assign]
    try:
        with (
            timed(ProfiledSynthesizer, "sample", parts, "model_sampling"),
            timed(SyntheticAssessor, "screen", parts, "filters"),
            timed(SyntheticAssessor, "flush", parts, "privacy_measurement"),
        ):
            started = time.monotonic()
            result = run_synthesize(
                staged,
                out,
                dataset="bench",
                spec=resolve_synthesizer(synthesizer),
                seed=1,
                checks=CheckSettings(),
                enforce_gates_=False,
            )
            seconds = time.monotonic() - started
    finally:
        SyntheticAssessor.observe = original_observe  # type: ignore[method-assign]
    privacy = json.loads((out / "privacy.json").read_text())
    failed = [g["metric"] for g in result["gates"] if not g["passed"]]
    return {
        "seconds": seconds,
        "fit": result["fit_seconds"],
        "rows": result["rows"],
        "failed": failed,
        "filtered": privacy.get("filtered"),
        "filtered_share": privacy.get("filtered_share"),
        "extra_rows": (privacy.get("replacement") or {}).get("extra_rows_sampled"),
        "out": out,
        **parts,
    }


def run_plain(train: pd.DataFrame, rows: int) -> dict[str, float]:
    """SDV's GaussianCopula with detected metadata: fit, then sample ``rows``."""
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    started = time.monotonic()
    metadata = Metadata.detect_from_dataframes({"t": train})
    synthesizer = GaussianCopulaSynthesizer(metadata)
    synthesizer.fit({"t": train})
    fitted = time.monotonic()
    synthesizer._set_random_state(1)  # noqa: SLF001
    synthesizer.sample(num_rows=rows)
    done = time.monotonic()
    return {"seconds": done - started, "fit": fitted - started, "sampling": done - fitted}


def compare(name: str, repeats: int, synthesizer: str, work: Path) -> None:
    from airflow_synth.core.assess.checks import split_holdout

    make, rows = TABLES[name]
    real = make(rows, 7)
    train, _ = split_holdout(real, 0.2, 1, columns=list(real.columns))
    runs: dict[str, list[dict[str, Any]]] = {"step": [], "plain": []}
    for round_ in range(repeats + 1):  # round 0 warms up; the two alternate
        for engine in ("step", "plain") if round_ % 2 == 0 else ("plain", "step"):
            got = run_step(real, work, synthesizer) if engine == "step" else run_plain(train, rows)
            if round_:
                runs[engine].append(got)

    def med(engine: str, key: str) -> float:
        return statistics.median(float(r.get(key) or 0.0) for r in runs[engine])

    step, plain = runs["step"][-1], runs["plain"]
    print(f"\n== {name}: {len(real):,} rows x {real.shape[1]} columns, {synthesizer} ==")
    print(f"{'plain SDV fit + sample':34s} {med('plain', 'seconds'):8.2f} s")
    print(f"{'  of which sampling':34s} {med('plain', 'sampling'):8.2f} s")
    print(f"{'synthesize step (defaults)':34s} {med('step', 'seconds'):8.2f} s")
    for key, label in (
        ("fit", "fit"),
        ("model_sampling", "model sampling (incl. replacements)"),
        ("filters", "privacy filters"),
        ("privacy_measurement", "raw privacy measurement (exact)"),
    ):
        print(f"{'  ' + label:34s} {med('step', key):8.2f} s")
    sampling = med("step", "model_sampling")
    for label, top, bottom in (
        ("step / plain fit + sample (<= 1.2)", med("step", "seconds"), med("plain", "seconds")),
        ("filters / model sampling (<= 0.3)", med("step", "filters"), sampling),
        ("filters / plain SDV sampling", med("step", "filters"), med("plain", "sampling")),
    ):
        print(f"ratio {label:36s} {top / bottom:6.2f}")
    print(
        f"rows published {step['rows']:,} of {len(real):,}; filtered share "
        f"{step['filtered_share']}; extra rows drawn for replacements {step['extra_rows']}; "
        f"failed gates: {', '.join(step['failed']) or 'none'}"
    )
    for filter_name, counts in (step["filtered"] or {}).items():
        print(f"  {filter_name:10s} {json.dumps(counts)}")
    del plain


def booking(work: Path, synthesizer: str, seeds: int) -> None:
    """The demo's 10,000 users: booking rate real, raw sample, published."""
    real = demo_table(10_000, 7)
    print(f"\n== booking rate, demo table {len(real):,} rows, {synthesizer} ==")
    print(f"{'seed':>4s} {'real':>7s} {'raw':>7s} {'published':>9s} {'published-raw':>13s}")
    for seed in range(seeds):
        table = demo_table(10_000, 7 + seed)
        raw: list[tuple[int, int]] = []

        def observe(batch: pd.DataFrame, raw: list = raw) -> None:
            raw.append((int(batch["booked"].astype(bool).sum()), len(batch)))

        got = run_step(table, work, synthesizer, observe=observe)
        published = pd.read_parquet(got["out"] / "synthetic.parquet")["booked"].astype(bool)
        # the raw sample: the batch the model produced for the table, before any filter
        # (the extra rows drawn to replace removed ones come after it)
        raw_rate = raw[0][0] / raw[0][1]
        real_rate = table["booked"].mean()
        print(
            f"{seed:4d} {100 * real_rate:6.2f}% {100 * raw_rate:6.2f}% "
            f"{100 * published.mean():8.2f}% {100 * (published.mean() - raw_rate):+12.2f} pt"
        )
        outlier = (got["filtered"] or {}).get("outlier", {})
        print(f"     outlier filter: {json.dumps(outlier)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks filters", description=__doc__)
    parser.add_argument("--tables", default="fd,demo,booking")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3, help="booking check: demo tables")
    parser.add_argument("--synthesizer", default="gaussian_copula")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory(prefix="bench-filters-") as tmp:
        work = Path(tmp)
        for name in args.tables.split(","):
            if name == "booking":
                booking(work, args.synthesizer, args.seeds)
            else:
                compare(name, args.repeats, args.synthesizer, work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
