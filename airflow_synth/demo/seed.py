"""Load generated demo data into the source database, fast and only when needed.

``make demo`` calls this on every run; the first run loads ~1M rows in a few seconds, later
runs see that the same settings are already loaded and return at once. Rows go in with
binary ``COPY`` while they are generated, in batches, so memory stays bounded however many
sessions are requested. Everything happens in one transaction (TRUNCATE, load, bookkeeping):
a failure, or an interrupted run, leaves the previous data in place.

The tables come from the migrations in ``sql/migrations`` (see
:func:`airflow_synth.demo.migrations.apply_migrations`); apply those first.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from airflow_synth.core.errors import SynthError
from airflow_synth.demo.generate import GENERATOR_VERSION, generate_users, iter_sessions
from airflow_synth.demo.migrations import require_no_open_transaction

#: Column -> PostgreSQL type sent in the binary COPY (must match V1__create_users_and_sessions).
USERS_COPY_TYPES: tuple[tuple[str, str], ...] = (
    ("id", "text"),
    ("date_account_created", "date"),
    ("timestamp_first_active", "timestamp"),
    ("date_first_booking", "date"),
    ("gender", "text"),
    ("age", "float8"),
    ("signup_method", "text"),
    ("signup_flow", "int4"),
    ("language", "text"),
    ("affiliate_channel", "text"),
    ("affiliate_provider", "text"),
    ("first_affiliate_tracked", "text"),
    ("signup_app", "text"),
    ("first_device_type", "text"),
    ("first_browser", "text"),
    ("country_destination", "text"),
)
SESSIONS_COPY_TYPES: tuple[tuple[str, str], ...] = (
    ("user_id", "text"),
    ("action", "text"),
    ("action_type", "text"),
    ("action_detail", "text"),
    ("device_type", "text"),
    ("secs_elapsed", "float8"),
)
SEED_INFO_TABLE = "demo_seed_info"


class DemoSeedError(SynthError):
    """The demo database cannot be seeded (usually: migrations not applied)."""


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
    """Fill ``users`` and ``sessions`` with generated demo data, unless already there.

    Does nothing (and returns ``loaded=False``) when ``demo_seed_info`` says the same
    ``n_users``, ``avg_sessions_per_user``, ``seed`` and generator version are loaded and
    the row counts still match; ``force=True`` reloads anyway. ``conn`` is a psycopg 3
    connection with no open transaction; this function commits.
    """
    if n_users < 0 or avg_sessions_per_user < 0:
        raise ValueError(
            f"n_users and avg_sessions_per_user must be >= 0, got {n_users} and "
            f"{avg_sessions_per_user}"
        )
    require_no_open_transaction(conn, "seed_demo_database")
    started = time.perf_counter()
    settings = (int(n_users), float(avg_sessions_per_user), int(seed), GENERATOR_VERSION)
    with conn.transaction():
        _require_tables(conn)
        # Serialise concurrent seeders: the second one then finds the data loaded.
        conn.execute(
            sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(sql.Identifier(SEED_INFO_TABLE))
        )
        if not force:
            loaded = _loaded_counts_if_same(conn, settings)
            if loaded is not None:
                return SeedResult(
                    loaded=False,
                    n_users=loaded[0],
                    n_sessions=loaded[1],
                    avg_sessions_per_user=settings[1],
                    seed=settings[2],
                    generator_version=GENERATOR_VERSION,
                    seconds=time.perf_counter() - started,
                )

        conn.execute("TRUNCATE sessions, users")
        clock = _Stopwatch()
        with clock:
            users = generate_users(n_users, seed)
        n_loaded_users = _copy(conn, "users", USERS_COPY_TYPES, [users])
        sessions = clock.iterate(iter_sessions(users, seed, avg_sessions_per_user, batch_rows))
        with _deferred_foreign_keys_and_indexes(conn, "sessions"):
            n_sessions = _copy(conn, "sessions", SESSIONS_COPY_TYPES, sessions)
        conn.execute("ANALYZE users, sessions")
        seconds = time.perf_counter() - started
        info = sql.Identifier(SEED_INFO_TABLE)
        conn.execute(sql.SQL("DELETE FROM {}").format(info))
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (n_users, avg_sessions_per_user, seed, generator_version, "
                "users_loaded, sessions_loaded, load_seconds) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            ).format(info),
            (*settings, n_loaded_users, n_sessions, seconds),
        )
    return SeedResult(
        loaded=True,
        n_users=n_loaded_users,
        n_sessions=n_sessions,
        avg_sessions_per_user=settings[1],
        seed=settings[2],
        generator_version=GENERATOR_VERSION,
        seconds=time.perf_counter() - started,
        generate_seconds=clock.seconds,
    )


def _require_tables(conn: psycopg.Connection) -> None:
    names = ("users", "sessions", SEED_INFO_TABLE)
    found = conn.execute(
        "SELECT to_regclass(%s), to_regclass(%s), to_regclass(%s)", names
    ).fetchone()
    missing = [name for name, oid in zip(names, found or (), strict=True) if oid is None]
    if missing:
        raise DemoSeedError(
            f"Tables {', '.join(missing)} do not exist in database "
            f"{conn.info.dbname!r}. Apply the migrations in sql/migrations first "
            "(airflow_synth.demo.migrations.apply_migrations, which `make demo` runs)."
        )


def _loaded_counts_if_same(
    conn: psycopg.Connection, settings: tuple[int, float, int, str]
) -> tuple[int, int] | None:
    """(users, sessions) counts when exactly these settings are loaded and intact."""
    row = conn.execute(
        sql.SQL(
            "SELECT n_users, avg_sessions_per_user, seed, generator_version, users_loaded, "
            "sessions_loaded FROM {}"
        ).format(sql.Identifier(SEED_INFO_TABLE))
    ).fetchone()
    if row is None or tuple(row[:4]) != settings:
        return None
    # Guard against tables emptied or edited by hand since the load (cheap at demo sizes).
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM sessions)"
    ).fetchone()
    return (row[4], row[5]) if counts == (row[4], row[5]) else None


@contextmanager
def _deferred_foreign_keys_and_indexes(conn: psycopg.Connection, table: str) -> Iterator[None]:
    """Drop ``table``'s foreign keys and plain indexes for a bulk load, then restore them.

    Checking the foreign key row by row and growing the index during COPY made loading 1M
    sessions ~15 s instead of ~3 s; re-adding them afterwards checks and builds in one pass
    each. Their definitions are read from the catalog, so the migrations stay the only
    place that declares them. Callers run this inside a transaction: on failure nothing of
    it is visible, and other sessions wait on the table lock rather than see it bare.
    """
    regclass = sql.Identifier(table).as_string(conn)
    foreign_keys = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
        (regclass,),
    ).fetchall()
    indexes = conn.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
        "ORDER BY c.relname",
        (regclass,),
    ).fetchall()
    for name, _ in foreign_keys:
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(name)
            )
        )
    for name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    yield
    for _, definition in indexes:
        conn.execute(definition.encode("utf-8"))
    for name, definition in foreign_keys:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)
            )
        )


class _Stopwatch:
    """Adds up the time spent producing data, to tell generation from loading."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc_info: object) -> None:
        self.seconds += time.perf_counter() - self._started

    def iterate(self, frames: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        iterator = iter(frames)
        while True:
            with self:
                frame = next(iterator, None)
            if frame is None:
                return
            yield frame


def _python_column(values: pd.Series, pg_type: str) -> list:
    """One column as Python objects for ``write_row``, missing values as None."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        # Look up each category once; code -1 (missing) picks the appended None.
        categories = np.append(np.asarray(values.cat.categories, dtype=object), None)
        return categories[values.cat.codes.to_numpy()].tolist()
    array = values.to_numpy()
    if pg_type == "date":
        return array.astype("datetime64[D]").astype(object).tolist()
    if pg_type == "timestamp":
        return array.astype("datetime64[us]").astype(object).tolist()
    if pg_type == "float8":
        array = array.astype(float)
        return np.where(np.isnan(array), None, array).tolist()
    if pg_type in ("int2", "int4", "int8"):
        return array.astype(np.int64).tolist()
    return values.astype(object).where(values.notna(), None).tolist()


def _copy(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[tuple[str, str]],
    frames: Iterable[pd.DataFrame],
) -> int:
    """Binary COPY of ``frames`` into ``table``; returns the number of rows written."""
    names = [name for name, _ in columns]
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    rows = 0
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types([pg_type for _, pg_type in columns])
        for frame in frames:
            data = [_python_column(frame[name], pg_type) for name, pg_type in columns]
            for row in zip(*data, strict=True):
                copy.write_row(row)
            rows += len(frame)
    return rows
