"""The extract's guard on the real PostgreSQL: read-only transactions with a statement
timeout and an idle-in-transaction timeout, on every connection the extract uses (the
``DECLARE`` that describes the query, the ADBC connection that reads the rows, the psycopg 2
row path), and the source's own settings kept.

Runs in a scratch database of this module (``extract_guard``), dropped at the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest
from psycopg.pq import TransactionStatus

from airflow_synth.core.errors import ExtractError
from airflow_synth.core.extract import pg_types, session
from airflow_synth.core.extract.stream import stream_query_to_parquet
from airflow_synth.local import LocalStack

pytestmark = pytest.mark.integration

DATABASE = "extract_guard"
#: What the rows of the ADBC connection's (or the row path's) transaction say about it.
SETTINGS_SQL = (
    "SELECT current_setting('statement_timeout') AS statement_timeout, "
    "current_setting('idle_in_transaction_session_timeout') AS idle, "
    "current_setting('transaction_read_only') AS read_only"
)


@pytest.fixture(scope="module")
def dsn(local_stack: LocalStack) -> Iterator[str]:
    pg = local_stack.pg
    pg.drop_database(DATABASE)
    pg.create_database(DATABASE)
    url = pg.dsn(DATABASE)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE tickets")
        # IMMUTABLE (a lie): PostgreSQL folds the call while *planning*, so the DECLARE
        # that only describes the query already runs it; nextval is not undone by rollback
        conn.execute(
            "CREATE FUNCTION next_ticket() RETURNS bigint LANGUAGE sql IMMUTABLE "
            "AS $$ SELECT nextval('tickets') $$"
        )
    yield url
    pg.drop_database(DATABASE)


def extract(conn, sql: str, tmp_path: Path, name: str = "t.parquet") -> dict:
    """The single row of ``sql`` as the extract wrote it."""
    result = stream_query_to_parquet(conn, sql, tmp_path / name, sql_name="guard.sql")
    return pq.read_table(result.path).to_pylist()[0]


def ticket(dsn: str) -> tuple[int, bool]:
    """Where the sequence stands (``is_called`` tells a fresh sequence from a used one)."""
    with psycopg.connect(dsn, autocommit=True) as other:
        return other.execute("SELECT last_value, is_called FROM tickets").fetchone()


@pytest.mark.parametrize("driver", ["psycopg3 (ADBC reads)", "psycopg2 (row path)"])
def test_the_rows_are_read_read_only_with_the_default_timeouts(dsn, tmp_path, driver):
    """Nothing set on the source: 1 h per statement, 10 min idle in a transaction."""
    if driver.startswith("psycopg3"):
        with psycopg.connect(dsn) as conn:
            row = extract(conn, SETTINGS_SQL, tmp_path)
    else:
        import psycopg2

        conn = psycopg2.connect(dsn)
        try:
            row = extract(conn, SETTINGS_SQL, tmp_path)
        finally:
            conn.close()
    assert row == {"statement_timeout": "1h", "idle": "10min", "read_only": "on"}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("-c statement_timeout=4h", {"statement_timeout": "4h", "idle": "10min"}),
        (  # 0 chosen deliberately for this connection: no limit, kept
            "-c statement_timeout=0 -c idle_in_transaction_session_timeout=2min",
            {"statement_timeout": "0", "idle": "2min"},
        ),
    ],
)
def test_timeouts_set_on_the_connection_are_kept(dsn, tmp_path, options, expected):
    """The Airflow connection's extra ``{"options": "-c statement_timeout=4h"}`` reaches
    the connection PostgresHook makes; the ADBC connection keeps those values."""
    with psycopg.connect(dsn, options=options) as conn:
        row = extract(conn, SETTINGS_SQL, tmp_path)
    assert row == {**expected, "read_only": "on"}


def test_timeouts_set_for_the_role_or_database_are_kept(local_stack, dsn, tmp_path):
    local_stack.pg.connect(DATABASE, autocommit=True).execute(
        f"ALTER DATABASE {DATABASE} SET statement_timeout = '90s'"
    ).connection.close()
    try:
        with psycopg.connect(dsn) as conn:
            row = extract(conn, SETTINGS_SQL, tmp_path)
    finally:
        with local_stack.pg.connect(DATABASE, autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE {DATABASE} RESET statement_timeout")
    assert row["statement_timeout"] == "90s" and row["idle"] == "10min"


@pytest.mark.parametrize("driver", ["psycopg3", "psycopg2"])
def test_a_query_running_past_the_statement_timeout_is_cancelled(dsn, tmp_path, driver):
    options = "-c statement_timeout=300ms"
    if driver == "psycopg3":
        conn = psycopg.connect(dsn, options=options)
    else:
        import psycopg2

        conn = psycopg2.connect(dsn, options=options)
    started = time.monotonic()
    try:
        with pytest.raises(ExtractError, match="canceling statement due to statement timeout"):
            extract(conn, "SELECT 1 AS x, pg_sleep(5) AS slept", tmp_path)
    finally:
        conn.close()
    assert time.monotonic() - started < 4
    assert list(tmp_path.iterdir()) == []


def test_the_describing_transaction_is_read_only_too(dsn, tmp_path):
    """The DECLARE plans the query, and planning can run a function (here one that takes
    a ticket from a sequence, which no rollback gives back): read-only, it cannot."""
    before = ticket(dsn)
    with psycopg.connect(dsn) as conn:
        with pytest.raises(ExtractError, match="cannot execute nextval.. in a read-only"):
            extract(conn, "SELECT next_ticket() AS n", tmp_path)
        assert conn.info.transaction_status == TransactionStatus.IDLE
        with pytest.raises(ExtractError, match="read-only"):
            pg_types.describe_query(conn, "SELECT next_ticket() AS n", None, "guard.sql")
    assert ticket(dsn) == before


def test_the_source_connection_is_not_left_idle_in_a_transaction_while_adbc_reads(dsn, tmp_path):
    """The DECLARE's transaction ends before ADBC reads: with an idle timeout shorter than
    the read, the task's connection is still usable afterwards (it was killed before)."""
    options = "-c idle_in_transaction_session_timeout=400ms"
    with psycopg.connect(dsn, options=options) as conn:
        sql = "SELECT g AS n, pg_sleep(0.3) AS slept FROM generate_series(1, 4) AS g"
        result = stream_query_to_parquet(conn, sql, tmp_path / "slow.parquet")
        assert result.rows == 4
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_transaction_left_idle_is_ended_by_the_server(dsn):
    """The idle-in-transaction timeout applies (a task that hangs holding the source's
    transaction open loses it, and with it any lock)."""
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cursor:
            chosen = session.guard_transaction(cursor, {"idle_in_transaction_session_timeout": 300})
        assert chosen["idle_in_transaction_session_timeout"] == 300
        time.sleep(1.0)
        with pytest.raises(psycopg.Error, match="idle-in-transaction timeout"):
            conn.execute("SELECT 1").fetchone()
