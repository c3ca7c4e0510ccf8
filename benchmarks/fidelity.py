"""Fidelity side by side: airflow-synth's default synthesize step vs plain SDV GaussianCopula.

Three tables, all made here (no database needed):

* ``demo``: the demo's feature table (users of ``specs/userbookings.yaml`` with their
  session statistics, as ``sql/features/session_features_by_user.sql`` computes them);
* ``plans``: integer codes 1-19 without 12, a rate each code fixes, zero-inflated counts and
  spend, NULLs;
* ``orders``: shipped after ordered, a shipping method that fixes the fee, a refund that is
  NULL unless refunded, min <= avg <= max.

Engines: ``default`` (the synthesize step with ``synthesizer="auto"``: TabularARGN where
installed, plus the profile, the rules and the privacy filters), ``copula`` (the same step
on GaussianCopula), ``plain_argn`` (TabularARGN as its package ships it) and ``plain_sdv``
(SDV's GaussianCopula, nothing else); ``holdout`` (real rows no engine saw) is the yardstick.
All engines train on the same 80% of the rows (split by distinct row, seeded) and are
measured with one metric code against that training split and the 20% holdout: SDV
quality, dependence preservation, the share of rules of the real table broken on
synthetic rows (rules found on every training row), the largest point-mass share error
(points), Cramér's V of destination x booked (demo), the DCR median ratio synthetic /
holdout (1 = as close as unseen real rows; far above = rows where no real row is) and fit +
sample seconds. The engines alternate, the first round is a warm-up, medians of the
following ``--repeats`` rounds are printed, with each engine's time ratio to plain SDV.

    python -m benchmarks fidelity [--rows 10000] [--repeats 3] [--engines default,plain_sdv]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PROJECT = Path(__file__).resolve().parents[1]


# -- tables ------------------------------------------------------------------------------------
def demo_table(rows: int, seed: int) -> pd.DataFrame:
    from airflow_synth.datagen import generate_tables, load_spec

    tables = generate_tables(
        load_spec(PROJECT / "specs" / "userbookings.yaml"), seed=seed, rows={"users": rows}
    )
    users, sessions = tables["users"], tables["sessions"]
    stats = sessions.groupby("user_id").agg(
        n_actions=("action", "size"),
        n_distinct_action_types=("action_type", "nunique"),
        avg_secs_elapsed=("secs_elapsed", "mean"),
        max_secs_elapsed=("secs_elapsed", "max"),
        min_secs_elapsed=("secs_elapsed", "min"),
        total_secs_elapsed=("secs_elapsed", "sum"),
    )
    frame = users.set_index("id").join(stats, how="left")
    frame["n_actions"] = frame["n_actions"].fillna(0).astype("int64")
    frame["n_distinct_action_types"] = frame["n_distinct_action_types"].fillna(0).astype("int64")
    frame["booked"] = frame["date_first_booking"].notna()
    columns = [
        "gender",
        "age",
        "language",
        "signup_method",
        "date_account_created",
        "country_destination",
        "n_actions",
        "n_distinct_action_types",
        "avg_secs_elapsed",
        "max_secs_elapsed",
        "min_secs_elapsed",
        "total_secs_elapsed",
        "booked",
    ]
    out = frame[columns].reset_index(drop=True)
    for name in out.columns:  # as read from PostgreSQL: plain strings, not pandas categories
        if isinstance(out[name].dtype, pd.CategoricalDtype):
            out[name] = out[name].astype(object).where(out[name].notna(), None)
    out["age"] = out["age"].astype("float64")
    out["date_account_created"] = pd.to_datetime(out["date_account_created"])
    return out


def plans_table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    codes = np.array([c for c in range(1, 20) if c != 12])
    code = rng.choice(codes, rows)
    return pd.DataFrame(
        {
            "plan_code": code,
            "rate": 0.5 + code * 0.25,
            "visits": np.where(rng.random(rows) < 0.68, 0, rng.poisson(3, rows) + 1),
            "minutes": np.where(rng.random(rows) < 0.6, 0, rng.gamma(2, 60, rows).round() + 1),
            "spend": np.where(rng.random(rows) < 0.808, 0.0, rng.gamma(2, 40, rows).round(2)),
            "discount": np.where(rng.random(rows) < 0.2, np.nan, rng.uniform(0, 30, rows).round(1)),
            "age": rng.integers(18, 80, rows),
        }
    )


def orders_table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    fees = {"standard": 4.9, "express": 9.9, "pickup": 0.0}
    ordered = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300 * 24, rows), "h")
    shipping = rng.choice(list(fees), rows, p=[0.6, 0.3, 0.1])
    status = rng.choice(["delivered", "refunded", "open"], rows, p=[0.7, 0.1, 0.2])
    low = rng.gamma(2.0, 10.0, rows).round(2)
    high = (low + rng.gamma(2.0, 20.0, rows)).round(2)
    return pd.DataFrame(
        {
            "ordered_at": ordered,
            "shipped_at": ordered + pd.to_timedelta(rng.integers(2, 120, rows), "h"),
            "shipping": shipping,
            "fee": [fees[s] for s in shipping],
            "status": status,
            "refund": np.where(status == "refunded", rng.gamma(2.0, 15.0, rows).round(2), np.nan),
            "min_price": low,
            "avg_price": ((low + high) / 2).round(2),
            "max_price": high,
        }
    )


TABLES: dict[str, Callable[[int, int], pd.DataFrame]] = {
    "demo": demo_table,
    "plans": plans_table,
    "orders": orders_table,
}


# -- engines -----------------------------------------------------------------------------------
def run_pipeline(
    synthesizer: str, real: pd.DataFrame, seed: int, work: Path
) -> tuple[pd.DataFrame, float]:
    """The synthesize step as users get it (profile, rules, filters; gates reported)."""
    from airflow_synth.core.assess.checks import CheckSettings
    from airflow_synth.core.engine.synthesizers import resolve_synthesizer
    from airflow_synth.core.frames import read_training_frame
    from airflow_synth.core.steps import run_synthesize

    staged = work / "real.parquet"
    pq.write_table(pa.Table.from_pandas(real, preserve_index=False), staged)
    out = work / f"out_{time.monotonic_ns()}"
    out.mkdir()
    started = time.monotonic()
    run_synthesize(
        staged,
        out,
        dataset="bench",
        spec=resolve_synthesizer(synthesizer),
        seed=seed,
        checks=CheckSettings(),
        enforce_gates_=False,
    )
    seconds = time.monotonic() - started
    synthetic, _ = read_training_frame(out / "synthetic.parquet")
    return synthetic, seconds


def run_plain(train: pd.DataFrame, rows: int, seed: int) -> tuple[pd.DataFrame, float]:
    """SDV's GaussianCopula with detected metadata, nothing else."""
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    started = time.monotonic()
    metadata = Metadata.detect_from_dataframes({"t": train})
    synthesizer = GaussianCopulaSynthesizer(metadata)
    synthesizer.fit({"t": train})  # SDV 2.0: the dict form
    synthesizer._set_random_state(seed)  # noqa: SLF001
    sampled = synthesizer.sample(num_rows=rows)
    frame = sampled["t"] if isinstance(sampled, dict) else sampled
    return frame, time.monotonic() - started


def run_plain_argn(train: pd.DataFrame, rows: int, seed: int) -> tuple[pd.DataFrame, float]:
    """TabularARGN as its package ships it (10-minute budget), dtypes restored, nothing else."""
    from mostlyai.engine import TabularARGN

    from airflow_synth.core.engine.tabular_argn import _restore_dtypes

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as workspace:
        model = TabularARGN(max_training_time=10, workspace_dir=workspace, random_state=seed)
        model.fit(train)
        frame = model.sample(n_samples=rows)
    frame = _restore_dtypes(frame[list(train.columns)], dict(train.dtypes))
    return frame, time.monotonic() - started


#: name -> how to run it on (real rows, training rows, seed, work folder)
Engine = Callable[[pd.DataFrame, pd.DataFrame, int, Path], tuple[pd.DataFrame, float]]
ENGINES: dict[str, Engine] = {
    "default": lambda real, train, seed, work: run_pipeline("auto", real, seed, work),
    "copula": lambda real, train, seed, work: run_pipeline("gaussian_copula", real, seed, work),
    "plain_argn": lambda real, train, seed, work: run_plain_argn(train, len(real), seed),
    "plain_sdv": lambda real, train, seed, work: run_plain(train, len(real), seed),
}


# -- metrics -----------------------------------------------------------------------------------
def measure(
    name: str, train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, seconds: float
) -> dict[str, Any]:
    from airflow_synth.core.assess.dependence import cramers_v, dependence_preservation
    from airflow_synth.core.assess.fidelity import column_kinds, fidelity_report
    from airflow_synth.core.assess.privacy import PrivacyEvaluator
    from airflow_synth.core.engine.metadata import build_metadata
    from airflow_synth.core.profile.kinds import profile_columns
    from airflow_synth.core.profile.rules import RuleSet, discover_rules

    profiles = profile_columns(train)
    metadata = build_metadata(train, "t", None, {p.name: p.sdtype for p in profiles})
    kinds = column_kinds(metadata, "t")
    synthetic = synthetic[list(train.columns)]
    quality = fidelity_report(train, synthetic, metadata, "t")
    dependence = dependence_preservation(train, synthetic, kinds)
    rules = RuleSet(discover_rules(train, profiles)).report(train, synthetic)
    broken = max(
        (1 - r["synthetic_hold"] for r in rules["rules"] if r["synthetic_hold"] is not None),
        default=0.0,
    )
    mass_error = 0.0
    for profile in profiles:
        for mass in profile.point_masses:
            share = float((synthetic[profile.name] == mass.value).mean())
            mass_error = max(mass_error, abs(share - (train[profile.name] == mass.value).mean()))
        mass_error = max(
            mass_error, abs(synthetic[profile.name].isna().mean() - profile.null_share)
        )
    measured = {
        c: k for c, k in kinds.items() if k in ("numerical", "categorical", "datetime", "boolean")
    }
    evaluator = PrivacyEvaluator(train, holdout, measured, seed=0)
    report = evaluator.report(synthetic)
    dcr = report["dcr"]
    ratio = (dcr["synthetic_to_train"]["median"] or 0) / max(
        dcr["holdout_to_train"]["median"] or 1e-12, 1e-12
    )
    result = {
        "quality": quality["score"],
        "dependence": dependence.get("score"),
        "rules_broken_rows": broken,
        "rules": rules["count"],
        "point_mass_error_pts": 100 * mass_error,
        "dcr_median_ratio": ratio,
        "exact_match": report["exact_match_rate"],
        "seconds": seconds,
    }
    if name == "demo":

        def v(frame: pd.DataFrame) -> float:
            a = frame["country_destination"].astype(str).to_numpy()
            b = frame["booked"].astype(str).to_numpy()
            return cramers_v(a, b)

        result["V_destination_booked"] = v(synthetic)
        result["V_real"] = v(train)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks fidelity", description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--engines", default=",".join(ENGINES))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    from airflow_synth.core.assess.checks import split_holdout

    engines = args.engines.split(",")
    for name in args.tables.split(","):
        real = TABLES[name](args.rows, 7)
        train, holdout = split_holdout(real, 0.2, 1, columns=list(real.columns))
        runs: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(args.repeats + 1):  # round 0 warms up; the order alternates
                order = engines if round_ % 2 == 0 else engines[::-1]
                for engine in order:
                    synthetic, seconds = ENGINES[engine](real, train, 1 + round_, Path(tmp))
                    if round_:
                        runs[engine].append(measure(name, train, holdout, synthetic, seconds))
        # the yardstick: real rows the engines never saw, measured with the same code
        reference = measure(name, train, holdout, holdout, 0.0)
        print(f"\n== {name}: {len(real):,} rows, {real.shape[1]} columns, {args.repeats} rounds ==")
        print(f"{'metric':24s}" + "".join(f"{e:>12s}" for e in engines) + f"{'holdout':>12s}")
        for key in runs[engines[0]][0]:
            values = []
            for engine in engines:
                measured = [r[key] for r in runs[engine] if r.get(key) is not None]
                values.append(statistics.median(measured) if measured else float("nan"))
            ref = reference.get(key)
            print(
                f"{key:24s}"
                + "".join(f"{v:12.3f}" for v in values)
                + (f"{ref:12.3f}" if isinstance(ref, int | float) else f"{'-':>12s}")
            )
        base = statistics.median(r["seconds"] for r in runs[engines[-1]])
        for engine in engines[:-1]:
            ratio = statistics.median(r["seconds"] for r in runs[engine]) / base
            print(f"time ratio {engine}/{engines[-1]}: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
