"""Privacy measurement: airflow-synth's DCR/filters against sdmetrics' DCRBaselineProtection.

Builds an Airbnb-users-like table (12 mixed columns: dates, numbers with NULLs, skewed
categoricals), splits it into training and holdout rows (80/20 of ``--rows``), makes
``--rows`` synthetic rows with SDV's GaussianCopula fitted on the training rows (or, with
``--synthetic independent``, a fresh draw from the generator: an ideal synthesizer), then
times, each in its own child process so peak memory (max RSS) is per method:

* sdmetrics ``DCRBaselineProtection.compute_breakdown`` on ``--baseline-rows`` real and
  synthetic rows (its cost is real x synthetic pandas cross-merges: ~2 minutes at 5k);
* ours, ``PrivacyEvaluator`` setup + ``filter`` + ``report`` on *all* ``--rows`` synthetic
  rows (train 0.8 x rows, holdout 0.2 x rows), and the same at ``--baseline-rows``.

Prints seconds, peak resident memory (and how much of it came on top of the loaded input)
and the ratio ours_time / baseline_time (target: below 0.1).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLUMNS = {
    "date_account_created": "datetime",
    "date_first_booking": "datetime",
    "gender": "categorical",
    "age": "numerical",
    "signup_method": "categorical",
    "signup_flow": "numerical",
    "language": "categorical",
    "affiliate_channel": "categorical",
    "signup_app": "categorical",
    "first_device_type": "categorical",
    "first_browser": "categorical",
    "country_destination": "categorical",
}

CHILD = r"""
import json, resource, sys, time
import pandas as pd
method, folder, rows, train_rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
kinds = json.loads(sys.argv[5])
real = pd.read_parquet(f"{folder}/real.parquet")
synthetic = pd.read_parquet(f"{folder}/synthetic.parquet").head(rows)
if method == "sdmetrics":  # imports before the memory baseline: they are not the method
    from sdmetrics.single_table import DCRBaselineProtection
else:
    from airflow_synth.core.assess.privacy import PrivacyEvaluator


def status_mb(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


try:  # reset the peak (VmHWM) so loading the input does not count as the method's peak
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
except OSError:
    pass
loaded_mb = status_mb("VmRSS")
out = {"rows": len(synthetic)}
if method == "sdmetrics":
    metadata = {"columns": {c: {"sdtype": k} for c, k in kinds.items()}}
    started = time.perf_counter()
    result = DCRBaselineProtection.compute_breakdown(
        real_data=real.head(train_rows)[list(kinds)], synthetic_data=synthetic[list(kinds)],
        metadata=metadata, table_name=None,
    )
    out["seconds"] = time.perf_counter() - started
    out["score"] = result["score"]
else:
    train, holdout = real.head(train_rows), real.iloc[train_rows:]
    started = time.perf_counter()
    evaluator = PrivacyEvaluator(train, holdout, kinds, exclude=["id"])
    setup = time.perf_counter()
    result = evaluator.filter(synthetic)
    filtered = time.perf_counter()
    report = evaluator.report(synthetic)
    done = time.perf_counter()
    out.update(seconds=done - started, setup=setup - started, filter=filtered - setup,
               report=done - filtered, dropped=result.dropped,
               dcr_share=report["dcr_share"], exact_match_rate=report["exact_match_rate"],
               dcr_share_full=report["dcr_share_full_train"],
               exact_match_rate_real=report["exact_match_rate_holdout_to_train"],
               stats=evaluator._index.last_stats)
out["peak_mb"] = status_mb("VmHWM")
if out["peak_mb"] != out["peak_mb"]:  # no /proc: the whole process's peak
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["loaded_mb"] = loaded_mb
print(json.dumps(out))
"""


def build_tables(rows: int, synthetic: str, folder: Path) -> str:
    """Write real.parquet (train then holdout rows) and synthetic.parquet; describe them."""
    from airflow_synth.demo.generate import generate_users

    train_rows = int(rows * 0.8)
    holdout_rows = rows - train_rows
    users = generate_users(train_rows + holdout_rows + rows, seed=2026)
    users = users.sample(frac=1.0, random_state=0).reset_index(drop=True)
    real = users.iloc[: train_rows + holdout_rows][["id", *COLUMNS]]
    real.to_parquet(folder / "real.parquet")
    started = time.perf_counter()
    if synthetic == "independent":
        fake = users.iloc[train_rows + holdout_rows :][["id", *COLUMNS]]
        how = "independent draw from the generator"
    else:
        from sdv.metadata import Metadata
        from sdv.single_table import GaussianCopulaSynthesizer

        train = real.head(train_rows)[list(COLUMNS)]
        metadata = Metadata.detect_from_dataframes({"users": train})
        for column, kind in COLUMNS.items():
            metadata.update_column(column, table_name="users", sdtype=kind)
        model = GaussianCopulaSynthesizer(metadata)
        model.fit({"users": train})
        fake = model.sample(rows)
        fake = fake["users"] if isinstance(fake, dict) else fake
        fake.insert(0, "id", [f"s{i}" for i in range(len(fake))])
        how = "SDV GaussianCopula"
    fake.reset_index(drop=True).to_parquet(folder / "synthetic.parquet")
    return f"{how} ({time.perf_counter() - started:.1f} s)"


def run_child(method: str, folder: Path, rows: int, train_rows: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, method, str(folder), str(rows), str(train_rows),
         json.dumps(COLUMNS)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{method} benchmark failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000, help="synthetic rows (ours)")
    parser.add_argument(
        "--baseline-rows", type=int, default=5_000, help="rows for sdmetrics (0: skip it)"
    )
    parser.add_argument(
        "--synthetic", choices=("gaussian_copula", "independent"), default="gaussian_copula"
    )
    args = parser.parse_args(argv)
    train_rows = int(args.rows * 0.8)

    with tempfile.TemporaryDirectory(prefix="bench-privacy-") as tmp:
        folder = Path(tmp)
        how = build_tables(args.rows, args.synthetic, folder)
        print(
            f"table: {len(COLUMNS)} columns + id, train {train_rows}, holdout "
            f"{args.rows - train_rows}, synthetic {args.rows}: {how}"
        )
        base = None
        if args.baseline_rows > 0:
            base = run_child("sdmetrics", folder, args.baseline_rows, args.baseline_rows)
            print(
                f"sdmetrics DCRBaselineProtection {base['rows']:>7} x {args.baseline_rows} rows:"
                f" {base['seconds']:8.2f} s  peak {base['peak_mb']:6.0f} MB "
                f"(+{base['peak_mb'] - base['loaded_mb']:.0f} MB)  score {base['score']:.3f}"
            )
        sizes = [args.baseline_rows] if 0 < args.baseline_rows < args.rows else []
        for rows in [*sizes, args.rows]:
            ours = run_child("ours", folder, rows, train_rows)
            print(
                f"ours setup+filter+report        {ours['rows']:>7} x {train_rows} rows: "
                f"{ours['seconds']:8.2f} s  peak {ours['peak_mb']:6.0f} MB "
                f"(+{ours['peak_mb'] - ours['loaded_mb']:.0f} MB)  [setup {ours['setup']:.2f} s"
                f", filter {ours['filter']:.2f} s, report {ours['report']:.2f} s; dropped "
                f"{ours['dropped']}, dcr_share {ours['dcr_share']} (full train "
                f"{ours['dcr_share_full']}), exact_match_rate "
                f"{ours['exact_match_rate']} (fresh real rows {ours['exact_match_rate_real']})]"
            )
        print(f"search: {ours['stats']}")
        if base is not None:
            print(
                f"ratio ours ({args.rows} rows) / sdmetrics ({args.baseline_rows} rows): time "
                f"{ours['seconds'] / base['seconds']:.3f}x (target < 0.1), peak memory "
                f"{ours['peak_mb'] / base['peak_mb']:.2f}x"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
