"""Load the demo data into the source database, fast and only when needed.

``make demo`` calls this on every run; the first run loads ~1M rows in a few seconds, later
runs see that the same settings are already loaded and return at once. The rows come from
the checked-in spec ``specs/userbookings.yaml`` and are loaded by the generic spec loader
(:func:`airflow_synth.datagen.seed_database`: binary COPY while generating, foreign keys and
indexes rebuilt once, one transaction, bookkeeping in ``synth_seed_info``).

The tables come from the migrations in ``sql/migrations`` (see
:func:`airflow_synth.demo.migrations.apply_migrations`); apply those first.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from airflow_synth.datagen.generate import GENERATOR_VERSION
from airflow_synth.datagen.load import SeedError, seed_database
from airflow_synth.demo.generate import demo_spec

#: Raised when the demo database cannot be seeded (usually: migrations not applied).
DemoSeedError = SeedError


@dataclass(frozen=True)
class SeedResult:
    """What :func:`seed_demo_database` did."""

    #: False when the same settings were already loaded and nothing was done.
    loaded: bool
    n_users: int
    n_sessions: int
    avg_sessions_per_user: float
    seed: int
    generator_version: str
    #: Wall time of the whole call.
    seconds: float
    #: Part of ``seconds`` spent generating data (the rest is mostly COPY and indexing).
    generate_seconds: float = 0.0


def seed_demo_database(
    conn: psycopg.Connection,
    n_users: int = 10_000,
    avg_sessions_per_user: float = 100,
    seed: int = 42,
    force: bool = False,
    batch_rows: int = 200_000,
) -> SeedResult:
    """Fill ``users`` and ``sessions`` from the demo spec, unless already there.

    ``n_users`` resizes the spec's ``users`` table and ``avg_sessions_per_user`` sets the
    average of its sessions-per-user distribution (its shape, the 7.5% of users without
    sessions and bookers browsing more, stay as declared). Does nothing (``loaded=False``)
    when the same settings, spec and generator version are loaded and the row counts still
    match; ``force=True`` reloads anyway. ``conn`` has no open transaction; this commits.
    """
    if n_users < 0 or avg_sessions_per_user < 0:
        raise ValueError(
            f"n_users and avg_sessions_per_user must be >= 0, got {n_users} and "
            f"{avg_sessions_per_user}"
        )
    result = seed_database(
        conn,
        demo_spec(),
        seed=seed,
        rows={"users": int(n_users)},
        per_parent_mean={"sessions": float(avg_sessions_per_user)},
        force=force,
        batch_rows=batch_rows,
        migrate=False,
    )
    return SeedResult(
        loaded=result.loaded,
        n_users=result.rows["users"],
        n_sessions=result.rows["sessions"],
        avg_sessions_per_user=float(avg_sessions_per_user),
        seed=int(seed),
        generator_version=GENERATOR_VERSION,
        seconds=result.seconds,
        generate_seconds=result.generate_seconds,
    )
