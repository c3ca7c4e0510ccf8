"""``load_tables_into_postgres`` against the session's real PostgreSQL 15.

Everything runs in this module's own database (``target_load_test``), dropped at the end;
each test uses its own schema. Expected values come from the Parquet files themselves and
are compared with what a plain connection reads back, so the tests check the conversion,
not a guess about it. Concurrency is made deterministic with locks held by the test (a lock
on the bookkeeping table pauses the load after all rows are copied, the schema's advisory
lock pauses it before anything happens), never with sleeps.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_synth.core.target.postgres import (
    LOADS_TABLE,
    TargetColumn,
    TargetForeignKey,
    TargetLoadError,
    TargetLoadResult,
    TargetTable,
    advisory_lock_key,
    load_tables_into_postgres,
)
from airflow_synth.local import LocalStack

pytestmark = pytest.mark.integration

DATABASE = "target_load_test"
FK_SESSIONS = TargetForeignKey("sessions", ("user_id",), "users", ("id",))
FK_BOOKINGS = TargetForeignKey("bookings", ("session_id",), "sessions", ("session_id",))


@pytest.fixture(scope="module")
def dsn(local_stack: LocalStack) -> Iterator[str]:
    local_stack.pg.create_database(DATABASE)
    yield local_stack.pg.dsn(DATABASE)
    local_stack.pg.drop_database(DATABASE)


@pytest.fixture
def reader(dsn: str) -> Iterator[psycopg.Connection]:
    """A second, independent connection (autocommit: every statement sees the latest commit)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET statement_timeout = '5s'")  # a blocked read fails the test, not CI
        yield conn


def _write(path: Path, columns: dict[str, Any]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def _set(tmp: Path, users: int, sessions_per_user: int, tag: str) -> list[TargetTable]:
    """users + sessions, given children first (the loader must reorder)."""
    sid = list(range(1, users * sessions_per_user + 1))
    u = _write(
        tmp / f"users_{tag}.parquet",
        {"id": list(range(1, users + 1)), "name": [f"{tag}-{i}" for i in range(users)]},
    )
    s = _write(
        tmp / f"sessions_{tag}.parquet",
        {"session_id": sid, "user_id": [(i - 1) // sessions_per_user + 1 for i in sid]},
    )
    return [TargetTable("sessions", s, ("session_id",)), TargetTable("users", u, ("id",))]


def _load(dsn: str, schema: str, tables: list[TargetTable], fks=(FK_SESSIONS,), **kw: Any):  # noqa: ANN001, ANN202
    with psycopg.connect(dsn) as conn:
        return load_tables_into_postgres(conn, schema, tables, fks, **kw)


def _rows(conn: psycopg.Connection, schema: str, table: str, order_by: str) -> list[tuple]:
    query = psycopg.sql.SQL("SELECT * FROM {}.{} ORDER BY {}").format(
        psycopg.sql.Identifier(schema),
        psycopg.sql.Identifier(table),
        psycopg.sql.Identifier(order_by),
    )
    return conn.execute(query).fetchall()


def _parquet_rows(path: Path, order_by: str) -> list[tuple]:
    table = pq.read_table(path).sort_by(order_by)
    return [tuple(r.values()) for r in table.to_pylist()]


def _counts(conn: psycopg.Connection, schema: str) -> tuple[int, int]:
    return conn.execute(
        psycopg.sql.SQL(
            "SELECT (SELECT count(*) FROM {s}.users), (SELECT count(*) FROM {s}.sessions)"
        ).format(s=psycopg.sql.Identifier(schema))
    ).fetchone()


def _leftovers(conn: psycopg.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute("SELECT relname FROM pg_class WHERE relname LIKE '\\_synth\\_new%'")
    ]


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.02)


def _waiting_on(reader: psycopg.Connection, pid: int) -> str | None:
    row = reader.execute(
        "SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()
    return f"{row[0]}:{row[1]}" if row and row[0] == "Lock" else None


class _LoadThread(threading.Thread):
    """Runs a load on its own connection; exposes the backend pid before it starts."""

    def __init__(self, dsn: str, schema: str, tables: list[TargetTable]) -> None:
        super().__init__(daemon=True)
        self.conn = psycopg.connect(dsn)
        self.pid = self.conn.info.backend_pid
        self.args = (schema, tables)
        self.result: TargetLoadResult | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = load_tables_into_postgres(self.conn, *self.args, [FK_SESSIONS])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.conn.close()


# --------------------------------------------------------------------------------------------
# Values round-trip
# --------------------------------------------------------------------------------------------
NASTY_TEXT = [
    "plain",
    "",
    None,
    "tab\there",
    "new\nline\r\n",
    "back\\slash",
    "\\.",
    'q"uote,',
    "ünï 😀 ∑",
]


def test_values_of_every_type_round_trip_exactly(dsn: str, tmp_path: Path, reader) -> None:  # noqa: ANN001
    n = len(NASTY_TEXT)
    ts = dt.datetime(2026, 3, 29, 1, 30, 15, 123456)
    path = _write(
        tmp_path / "values.parquet",
        {
            "id": pa.array(range(n), pa.int64()),
            "small": pa.array([1, -2, None, 4, 5, 6, 7, 8, 9], pa.int16()),
            "f": [1.5, math.nan, None, math.inf, -math.inf, 1e300, 0.1, -0.0, 1 / 3],
            "flag": [True, False, None, True, False, True, False, True, None],
            "txt": NASTY_TEXT,
            "ts": pa.array(
                [ts + dt.timedelta(days=i) if i != 2 else None for i in range(n)],
                pa.timestamp("us"),
            ),
            "tstz": pa.array(
                [ts.replace(tzinfo=dt.UTC) + dt.timedelta(hours=i) for i in range(n)],
                pa.timestamp("us", tz="Europe/Paris"),
            ),
            "day": pa.array([dt.date(1999, 12, 31) + dt.timedelta(days=i) for i in range(n)]),
            "amount": pa.array(
                [Decimal("12.34"), None, *[Decimal(i) / 4 for i in range(n - 2)]],
                pa.decimal128(10, 2),
            ),
            "blob": pa.array([b"\x00\xff", None, b"", *[bytes([i]) for i in range(n - 3)]]),
            "wait": pa.array(
                [dt.timedelta(seconds=i, microseconds=7) for i in range(n)], pa.duration("us")
            ),
            "cat": pa.array(["a", "b", None, "a", "a", "b", "a", "b", "a"]).dictionary_encode(),
        },
    )
    result = _load(dsn, "values", [TargetTable("v", path, ("id",))], fks=())
    assert result.tables == {"v": n}

    got = _rows(reader, "values", "v", "id")
    expected = _parquet_rows(path, "id")
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        for name, gv, ev in zip(pq.read_schema(path).names, g, e, strict=True):
            if isinstance(ev, float) and math.isnan(ev):
                assert isinstance(gv, float) and math.isnan(gv), (name, gv)  # NaN, not NULL
            else:
                assert gv == ev, (name, gv, ev)  # aware datetimes compare as instants

    # and the same through pandas for the analyst's view of the columns
    frame = pd.DataFrame(got, columns=pq.read_schema(path).names)
    want = pq.read_table(path).to_pandas()
    for col in ("id", "f", "txt", "day"):
        pd.testing.assert_series_equal(frame[col], want[col], check_dtype=False, obj=col)
    pd.testing.assert_series_equal(
        pd.to_datetime(frame["ts"]).astype("datetime64[ns]"), want["ts"].astype("datetime64[ns]")
    )

    types = dict(
        reader.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'values' AND table_name = 'v'"
        ).fetchall()
    )
    assert types["tstz"] == "timestamp with time zone"
    assert types["ts"] == "timestamp without time zone"
    assert types["amount"] == "numeric"
    assert types["wait"] == "interval"
    assert types["small"] == "smallint"
    # NULL and '' stay apart in text
    assert reader.execute(
        "SELECT count(*) FILTER (WHERE txt IS NULL), count(*) FILTER (WHERE txt = '')"
        ' FROM "values".v'
    ).fetchone() == (1, 1)


def test_declared_columns_choose_order_subset_and_types(dsn: str, tmp_path: Path, reader) -> None:  # noqa: ANN001
    path = _write(
        tmp_path / "u.parquet", {"id": [1, 2], "name": ["ab", "cd"], "secret": ["x", "y"]}
    )
    table = TargetTable(
        "users", path, ("id",), (TargetColumn("name", "varchar(2)"), TargetColumn("id", "integer"))
    )
    _load(dsn, "declared", [table], fks=())
    cols = reader.execute(
        "SELECT column_name, data_type, character_maximum_length FROM information_schema.columns "
        "WHERE table_schema = 'declared' AND table_name = 'users' ORDER BY ordinal_position"
    ).fetchall()
    assert cols == [("name", "character varying", 2), ("id", "integer", None)]


# --------------------------------------------------------------------------------------------
# FK order, constraints, bookkeeping, rerun
# --------------------------------------------------------------------------------------------
def test_three_level_chain_given_backwards_loads_parents_first_with_live_constraints(
    dsn: str, tmp_path: Path, reader
) -> None:  # noqa: ANN001
    sessions, users = _set(tmp_path, users=3, sessions_per_user=2, tag="v1")
    bookings = TargetTable(  # no primary key: a plain child table
        "bookings",
        _write(tmp_path / "b.parquet", {"session_id": [1, 1, 6], "price": [9.5, 10.0, None]}),
    )
    result = _load(
        dsn,
        "chain",
        [bookings, sessions, users],
        fks=(FK_BOOKINGS, FK_SESSIONS),
        source={"run_id": "r1"},
    )
    assert result.load_order == ["users", "sessions", "bookings"]
    assert list(result.tables) == ["users", "sessions", "bookings"]
    assert result.tables == {"users": 3, "sessions": 6, "bookings": 3}
    assert result.replaced == []

    constraints = set(
        reader.execute(
            "SELECT conrelid::regclass::text, contype, conname, confrelid::regclass::text "
            "FROM pg_constraint WHERE connamespace = 'chain'::regnamespace"
        ).fetchall()
    )
    assert {
        ("chain.users", "p", "users_pkey", "-"),
        ("chain.sessions", "p", "sessions_pkey", "-"),
        ("chain.sessions", "f", "sessions_user_id_fkey", "chain.users"),
        ("chain.bookings", "f", "bookings_session_id_fkey", "chain.sessions"),
    } <= constraints
    assert _leftovers(reader) == []
    # Postgres itself now guards integrity
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        reader.execute("INSERT INTO chain.bookings VALUES (999, 1.0)")
    # statistics are there for the planner (pg_stats is transactional, unlike pg_stat_*)
    analyzed = reader.execute(
        "SELECT array_agg(DISTINCT tablename::text ORDER BY tablename::text) FROM pg_stats"
        " WHERE schemaname = 'chain'"
    ).fetchone()[0]
    assert analyzed == ["bookings", "sessions", "users"]
    record = reader.execute(
        f"SELECT tables, load_order, replaced, total_rows, source FROM chain.{LOADS_TABLE}"
    ).fetchall()
    assert record == [
        (
            {"users": 3, "sessions": 6, "bookings": 3},
            ["users", "sessions", "bookings"],
            [],
            12,
            {"run_id": "r1"},
        )
    ]


def test_rerun_replaces_the_previous_load_and_reports_it(dsn: str, tmp_path: Path, reader) -> None:  # noqa: ANN001
    first = _set(tmp_path, users=3, sessions_per_user=2, tag="v1")
    second = _set(tmp_path, users=5, sessions_per_user=1, tag="v2")
    assert _load(dsn, "rerun", first).replaced == []
    with psycopg.connect(dsn, autocommit=True) as conn:  # autocommit callers work the same
        result = load_tables_into_postgres(
            conn, "rerun", second, [FK_SESSIONS], source={"run_id": "r2"}
        )
    assert result.replaced == ["users", "sessions"]
    assert _counts(reader, "rerun") == (5, 5)  # replaced, not appended
    assert _rows(reader, "rerun", "users", "id") == _parquet_rows(second[1].path, "id")
    assert _rows(reader, "rerun", "sessions", "session_id") == _parquet_rows(
        second[0].path, "session_id"
    )
    loads = reader.execute(
        f"SELECT replaced, source FROM rerun.{LOADS_TABLE} ORDER BY load_id"
    ).fetchall()
    assert loads == [([], {}), (["users", "sessions"], {"run_id": "r2"})]
    assert _leftovers(reader) == []


# --------------------------------------------------------------------------------------------
# Atomicity
# --------------------------------------------------------------------------------------------
def test_fk_violation_in_the_second_table_keeps_the_old_set(
    dsn: str, tmp_path: Path, reader
) -> None:  # noqa: ANN001
    first = _set(tmp_path, users=3, sessions_per_user=2, tag="v1")
    _load(dsn, "atomic", first)
    before = (
        _rows(reader, "atomic", "users", "id"),
        _rows(reader, "atomic", "sessions", "session_id"),
    )

    _, users = _set(tmp_path, users=4, sessions_per_user=1, tag="v2")
    orphans = TargetTable(
        "sessions",
        _write(tmp_path / "orphans.parquet", {"session_id": [1, 2], "user_id": [1, 99]}),
        ("session_id",),
    )
    with pytest.raises(TargetLoadError) as err:
        _load(dsn, "atomic", [orphans, users])
    message = str(err.value)
    assert "sessions(user_id) -> users(id)" in message
    assert "(user_id)=(99)" in message
    assert "_synth_new" not in message  # private names are translated back
    assert "rolled back" in message

    after = (
        _rows(reader, "atomic", "users", "id"),
        _rows(reader, "atomic", "sessions", "session_id"),
    )
    assert after == before
    assert reader.execute(f"SELECT count(*) FROM atomic.{LOADS_TABLE}").fetchone()[0] == 1
    assert _leftovers(reader) == []


def test_bad_value_names_table_row_and_column_and_keeps_the_old_set(
    dsn: str, tmp_path: Path, reader
) -> None:  # noqa: ANN001
    _load(dsn, "badvalue", _set(tmp_path, users=2, sessions_per_user=1, tag="v1"))
    _, users = _set(tmp_path, users=2, sessions_per_user=1, tag="v2")
    bad = TargetTable(
        "sessions",
        _write(tmp_path / "bad.parquet", {"session_id": [1, 2, 3], "user_id": ["1", "2", "two"]}),
        ("session_id",),
        (TargetColumn("session_id"), TargetColumn("user_id", "bigint")),
    )
    with pytest.raises(TargetLoadError, match=r"table 'sessions', row 3, column user_id") as err:
        _load(dsn, "badvalue", [bad, users])
    assert 'invalid input syntax for type bigint: "two"' in str(err.value)
    assert _rows(reader, "badvalue", "users", "id") == [(1, "v1-0"), (2, "v1-1")]


def test_duplicate_primary_key_and_failed_first_load_leave_no_trace(
    dsn: str, tmp_path: Path, reader
) -> None:  # noqa: ANN001
    dup = TargetTable("users", _write(tmp_path / "dup.parquet", {"id": [1, 2, 2]}), ("id",))
    with pytest.raises(TargetLoadError, match=r"Key \(id\)=\(2\) is duplicated") as err:
        _load(dsn, "fresh_fail", [dup], fks=())
    assert "users_pkey" in str(err.value)
    # the schema itself was created inside the rolled-back transaction
    assert reader.execute("SELECT to_regnamespace('fresh_fail')").fetchone()[0] is None


# --------------------------------------------------------------------------------------------
# Concurrency
# --------------------------------------------------------------------------------------------
def test_reader_sees_the_old_set_mid_load_and_the_new_set_after_commit(
    dsn: str, tmp_path: Path, reader
) -> None:  # noqa: ANN001
    _load(dsn, "concurrent", _set(tmp_path, users=3, sessions_per_user=2, tag="v1"))
    new = _set(tmp_path, users=5, sessions_per_user=3, tag="v2")
    with psycopg.connect(dsn) as blocker:
        # Pause the load after all rows are copied and checked, right before the swap.
        blocker.execute(f"LOCK TABLE concurrent.{LOADS_TABLE} IN ACCESS EXCLUSIVE MODE")
        load = _LoadThread(dsn, "concurrent", new)
        load.start()
        _wait_until(lambda: _waiting_on(reader, load.pid) is not None, "the load waits")
        # Mid-load: the other connection reads the complete old set without blocking,
        # and none of the half-built new tables is visible.
        assert _counts(reader, "concurrent") == (3, 6)
        assert _rows(reader, "concurrent", "users", "id")[0] == (1, "v1-0")
        assert _leftovers(reader) == []
        blocker.rollback()
    load.join(timeout=10)
    assert load.error is None, load.error
    assert _counts(reader, "concurrent") == (5, 15)
    assert _rows(reader, "concurrent", "users", "id")[0] == (1, "v2-0")


def test_concurrent_loads_into_one_schema_serialise_on_its_advisory_lock(
    dsn: str, tmp_path: Path, reader
) -> None:  # noqa: ANN001
    with psycopg.connect(dsn) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_lock_key("serial"),))
        load = _LoadThread(dsn, "serial", _set(tmp_path, users=2, sessions_per_user=1, tag="v1"))
        load.start()
        _wait_until(lambda: _waiting_on(reader, load.pid) == "Lock:advisory", "the load waits")
        assert reader.execute("SELECT to_regnamespace('serial')").fetchone()[0] is None
        holder.commit()  # the "other load" ends
    load.join(timeout=10)
    assert load.error is None, load.error
    assert _counts(reader, "serial") == (2, 2)


def test_swap_gives_up_when_a_session_keeps_using_the_old_tables(
    dsn: str, tmp_path: Path, reader
) -> None:  # noqa: ANN001
    _load(dsn, "busy", _set(tmp_path, users=2, sessions_per_user=1, tag="v1"))
    with psycopg.connect(dsn) as lingering:
        lingering.execute("SELECT count(*) FROM busy.users")  # open transaction holds the table
        with pytest.raises(TargetLoadError, match="Another session kept using the old tables"):
            _load(
                dsn,
                "busy",
                _set(tmp_path, users=4, sessions_per_user=1, tag="v2"),
                lock_timeout_s=0.2,
            )
        lingering.rollback()
    assert _counts(reader, "busy") == (2, 2)


# --------------------------------------------------------------------------------------------
# Never touching what the set does not own
# --------------------------------------------------------------------------------------------
def test_outside_foreign_key_stops_the_load_naming_the_table(
    dsn: str, tmp_path: Path, reader
) -> None:  # noqa: ANN001
    _load(dsn, "owned", _set(tmp_path, users=2, sessions_per_user=1, tag="v1"))
    reader.execute("CREATE TABLE owned.audit (user_id bigint REFERENCES owned.users (id))")
    reader.execute("INSERT INTO owned.audit VALUES (1)")
    with pytest.raises(TargetLoadError) as err:
        _load(dsn, "owned", _set(tmp_path, users=3, sessions_per_user=1, tag="v2"))
    message = str(err.value)
    assert "owned.audit (constraint audit_user_id_fkey) references owned.users" in message
    assert "CASCADE" in message and "Nothing was changed" in message
    assert reader.execute("SELECT count(*) FROM owned.audit").fetchone()[0] == 1
    assert _counts(reader, "owned") == (2, 2)

    reader.execute("DROP TABLE owned.audit")
    reader.execute("CREATE VIEW owned.user_names AS SELECT name FROM owned.users")
    with pytest.raises(TargetLoadError, match=r"owned\.user_names reads owned\.users"):
        _load(dsn, "owned", _set(tmp_path, users=3, sessions_per_user=1, tag="v2"))
    assert _counts(reader, "owned") == (2, 2)


def test_connection_with_an_open_transaction_is_refused(dsn: str, tmp_path: Path, reader) -> None:  # noqa: ANN001
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(TargetLoadError, match="commit or roll it back"):
            load_tables_into_postgres(conn, "intrans", _set(tmp_path, 1, 1, "v1"), [FK_SESSIONS])
    assert reader.execute("SELECT to_regnamespace('intrans')").fetchone()[0] is None


def test_grants_on_replaced_tables_are_kept(dsn: str, tmp_path: Path, reader) -> None:  # noqa: ANN001
    role = "target_load_tester"
    reader.execute(f"DROP ROLE IF EXISTS {role}")
    reader.execute(f"CREATE ROLE {role}")
    try:
        _load(dsn, "grants", _set(tmp_path, users=2, sessions_per_user=1, tag="v1"))
        reader.execute(f"GRANT USAGE ON SCHEMA grants TO {role}")
        reader.execute(f"GRANT SELECT ON grants.users TO {role}")
        reader.execute(f"GRANT SELECT, INSERT ON grants.sessions TO {role} WITH GRANT OPTION")
        reader.execute("GRANT SELECT ON grants.sessions TO PUBLIC")
        query = (
            "SELECT table_name, grantee, privilege_type, is_grantable"
            " FROM information_schema.role_table_grants"
            " WHERE table_schema = 'grants' AND grantee <> current_user ORDER BY 1, 2, 3"
        )
        before = reader.execute(query).fetchall()
        assert len(before) == 4
        _load(dsn, "grants", _set(tmp_path, users=3, sessions_per_user=1, tag="v2"))
        assert reader.execute(query).fetchall() == before
        assert _counts(reader, "grants") == (3, 3)
    finally:
        reader.execute(f"DROP OWNED BY {role}")
        reader.execute(f"DROP ROLE {role}")


def test_a_published_single_table_loads_through_the_set_reader(
    dsn: str,
    tmp_path: Path,
    reader,  # noqa: ANN001
) -> None:
    """A single feature table is a set of one: its manifest is read by the same target
    load as a multi-table set, and Postgres holds exactly the published rows."""
    from airflow_synth.core.publish.layout import DatasetLayout
    from airflow_synth.core.publish.store import FileObjectStore
    from airflow_synth.core.steps import load_published_set, run_load

    synthetic = _write(
        tmp_path / "synthetic.parquet",
        {"id": [3, 1, 2], "plan": ["free", "pro", "basic"], "spend": [0.0, 12.5, 3.25]},
    )
    metadata = tmp_path / "metadata.json"
    metadata.write_text("{}")
    store = FileObjectStore(tmp_path / "bucket")
    layout = DatasetLayout("synthetic", "plans", "run1")
    run_load(
        store,
        layout,
        synthetic_path=synthetic,
        metadata_path=metadata,
        source={"sql_file": "plans.sql"},
        synthesis={},
        timings={},
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        result = load_published_set(store, layout, conn, "single_table")
    assert result["tables"] == {"plans": 3}
    assert _rows(reader, "single_table", "plans", "id") == _parquet_rows(synthetic, "id")


def test_a_table_published_in_parts_loads_whole(dsn: str, tmp_path: Path, reader) -> None:  # noqa: ANN001
    """A table sampled in shards is published as parts; the target holds every part's rows."""
    from airflow_synth.core.publish.layout import DatasetLayout
    from airflow_synth.core.publish.store import FileObjectStore
    from airflow_synth.core.steps import load_published_set, run_load

    parts = [
        _write(tmp_path / "p0.parquet", {"id": [1, 2], "plan": ["free", "pro"]}),
        _write(tmp_path / "p1.parquet", {"id": [3, 4, 5], "plan": ["basic", "pro", "free"]}),
    ]
    metadata = tmp_path / "metadata.json"
    metadata.write_text("{}")
    store = FileObjectStore(tmp_path / "bucket")
    layout = DatasetLayout("synthetic", "plans_parts", "run1")
    run_load(
        store,
        layout,
        synthetic_path=parts,
        metadata_path=metadata,
        source={"sql_file": "plans.sql"},
        synthesis={},
        timings={},
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        result = load_published_set(store, layout, conn, "parts_table")
    assert result["tables"] == {"plans_parts": 5}
    expected = sorted(_parquet_rows(parts[0], "id") + _parquet_rows(parts[1], "id"))
    assert _rows(reader, "parts_table", "plans_parts", "id") == expected
