"""Demo source data: a stand-in for Kaggle's Airbnb "new user bookings" tables.

The demo needs a source database that looks and behaves like a real product database, so
that extracting, synthesizing and judging the synthetic copy is meaningful: skewed
categories, NULLs where real systems leave them, implausible values that real users type
(age 2014), and correlations a good synthesizer should keep (users who browse more book
more; app sign-ups come from phones). The real Kaggle data cannot be downloaded here and may
not be redistributed, so ``specs/userbookings.yaml`` declares the same columns with roughly
the same marginals as ``train_users_2.csv`` and ``sessions.csv``, plus declared truths (the
monthly booking rate, sign-up method and gender shares, sessions per user) that the
generator in :mod:`airflow_synth.datagen` honours exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from airflow_synth.datagen.generate import generate
from airflow_synth.datagen.spec import DataSpec, load_spec

#: The demo's spec, relative to the repository root (override with SYNTH_SPECS_DIR).
DEMO_SPEC = "userbookings.yaml"


def demo_spec_path() -> Path:
    """``specs/userbookings.yaml`` of this checkout (or of ``$SYNTH_SPECS_DIR``)."""
    folder = os.environ.get("SYNTH_SPECS_DIR")
    if folder:
        return Path(folder) / DEMO_SPEC
    from airflow_synth.demo.environment import project_dir

    return project_dir() / "specs" / DEMO_SPEC


def demo_spec() -> DataSpec:
    """The demo's data spec, checked."""
    return load_spec(demo_spec_path())


def generate_users(n_users: int = 10_000, seed: int = 42) -> pd.DataFrame:
    """The demo ``users`` table in memory, for tests and benchmarks that need realistic rows.

    Text columns are ``object`` (None for NULL) and dates ``datetime64[ns]`` (NaT), the
    plain dtypes a feature query's result has; the rows are those ``seed_demo_database``
    loads for the same ``n_users`` and ``seed``.
    """
    if n_users < 0:
        raise ValueError(f"n_users must be >= 0, got {n_users}")
    frames = [
        frame
        for _, frame in generate(
            demo_spec(), seed=seed, rows={"users": n_users}, tables=["users"], batch_rows=1 << 62
        )
    ]
    users = pd.concat(frames, ignore_index=True)
    for name, column in users.items():
        if isinstance(column.dtype, pd.CategoricalDtype):
            users[name] = column.astype(object).where(column.notna(), None)
        elif column.dtype.kind == "M":
            users[name] = column.astype("datetime64[ns]")
    return users
