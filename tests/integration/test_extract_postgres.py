"""``stream_query_to_parquet`` / ``run_extract`` against the session's real PostgreSQL 15.

Everything runs in a scratch database of this module (``extract_it``), dropped at the end,
so the shared ``userbookings`` database is never touched. Expected values always come from
a plain psycopg cursor on the same server, so the test checks the extract's conversion,
not a guess about what the driver returns.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg.pq import TransactionStatus

from airflow_synth.core.contract import parse_contract
from airflow_synth.core.errors import ContractError, EmptyExtractError, ExtractError
from airflow_synth.core.extract import columnar
from airflow_synth.core.extract.sql import sql_hash
from airflow_synth.core.extract.stream import stream_query_to_parquet
from airflow_synth.core.steps import REAL_FILE, run_extract
from airflow_synth.local import LocalStack

pytestmark = pytest.mark.integration

columnar_connect = columnar.connect
DATABASE = "extract_it"
#: A session time zone far from UTC, so a timestamptz that is not converted shows up.
SESSION_TZ = "Asia/Kolkata"
INJECTION = "x'; DROP TABLE accounts; --"


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dsn(local_stack: LocalStack) -> Iterator[str]:
    """The module's own database with the tables the tests read."""
    pg = local_stack.pg
    pg.drop_database(DATABASE)  # a leftover of an aborted earlier run
    pg.create_database(DATABASE)
    url = pg.dsn(DATABASE)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """
            CREATE TABLE typed (
                id integer PRIMARY KEY,
                flag boolean, small smallint, medium integer, big bigint,
                real4 real, double8 double precision, amount numeric(14, 4),
                note text, label varchar(20), code char(5),
                day date, seen timestamp, seen_tz timestamptz,
                token uuid, doc jsonb
            )
            """
        )
        conn.execute(
            """
            INSERT INTO typed VALUES
              (1, true, -32768, -2147483648, -9223372036854775808, 1.5, 0.1,
               -1234567890.1234, 'héllo, wörld ✓', 'varchar value', 'ab',
               '0001-01-01', '2024-02-29 23:59:59.999999', '2024-06-30 23:30:00+00',
               'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
               '{"a": 1, "b": [true, null, "x"], "c": {"d": "é"}}'),
              (2, false, 32767, 2147483647, 9223372036854775807, -3.25, 1e308,
               0.0001, '', '', 'abcde',
               '9999-12-31', '1970-01-01 00:00:00', '1999-12-31 23:59:59.5-08',
               '00000000-0000-0000-0000-000000000000', '[1, "two", false]'),
              (3, NULL, NULL, NULL, NULL, NULL, NULL,
               NULL, NULL, NULL, NULL,
               NULL, NULL, NULL, NULL, NULL),
              (4, true, 0, 0, 0, 0, '-Infinity',
               0, E'line one\\nline two\\ttab', 'x', ' ',
               '2000-01-01', '2038-01-19 03:14:08', '2038-01-19 03:14:08+05:30',
               'ffffffff-ffff-ffff-ffff-ffffffffffff', 'true')
            """
        )
        conn.execute(
            """
            CREATE TABLE big AS
            SELECT g AS id,
                   'label ' || (g % 97) AS label,
                   (g * 1.25)::numeric(12, 2) AS amount,
                   timestamp '2024-01-01' + g * interval '1 minute' AS at
            FROM generate_series(1, 25000) AS g
            """
        )
        conn.execute("CREATE TABLE accounts (id integer PRIMARY KEY, name text NOT NULL)")
        conn.execute(
            "INSERT INTO accounts VALUES (1, 'alice'), (2, 'bob'), (3, %s), (4, 'carol')",
            (INJECTION,),
        )
        conn.execute("CREATE TABLE touched (id integer)")
        conn.execute(
            """
            CREATE FUNCTION touch(i integer) RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
            BEGIN
                INSERT INTO touched VALUES (i);
                RETURN i;
            END $$
            """
        )
    yield url
    pg.drop_database(DATABASE)


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    """A psycopg 3 connection as PostgresHook hands it out (not autocommit)."""
    with psycopg.connect(dsn, options=f"-c TimeZone={SESSION_TZ}") as connection:
        yield connection


def fetch_plain(dsn: str, sql: str, params: Any = None) -> list[tuple]:
    """The rows as an ordinary psycopg client cursor returns them (the reference)."""
    with psycopg.connect(dsn, options=f"-c TimeZone={SESSION_TZ}") as other:
        return other.execute(sql, params).fetchall()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------------------------
# types and values
# --------------------------------------------------------------------------------------------
TYPED_SQL = "SELECT * FROM typed ORDER BY id"

EXPECTED_SCHEMA = pa.schema(
    [
        ("id", pa.int32()),
        ("flag", pa.bool_()),
        ("small", pa.int16()),
        ("medium", pa.int32()),
        ("big", pa.int64()),
        ("real4", pa.float32()),
        ("double8", pa.float64()),
        ("amount", pa.float64()),
        ("note", pa.string()),
        ("label", pa.string()),
        ("code", pa.string()),
        ("day", pa.date32()),
        ("seen", pa.timestamp("us")),
        ("seen_tz", pa.timestamp("us", tz="UTC")),
        ("token", pa.string()),
        ("doc", pa.string()),
    ]
)


def test_every_mapped_type_round_trips_with_nulls(conn: psycopg.Connection, dsn, tmp_path):
    out = tmp_path / "typed.parquet"
    result = stream_query_to_parquet(conn, TYPED_SQL, out, sql_name="typed.sql", batch_rows=3)

    table = pq.read_table(out)
    assert table.schema.remove_metadata() == EXPECTED_SCHEMA
    assert result.rows == table.num_rows == 4
    assert result.columns == [
        ("id", "integer"),
        ("flag", "boolean"),
        ("small", "integer"),
        ("medium", "integer"),
        ("big", "integer"),
        ("real4", "float"),
        ("double8", "float"),
        ("amount", "float"),
        ("note", "string"),
        ("label", "string"),
        ("code", "string"),
        ("day", "date"),
        ("seen", "timestamp"),
        ("seen_tz", "timestamp"),
        ("token", "string"),
        ("doc", "string"),
    ]
    assert result.bytes == out.stat().st_size

    names = table.column_names
    reference = fetch_plain(dsn, TYPED_SQL)
    got = table.to_pylist()
    assert len(got) == len(reference)
    for row, ref in zip(got, reference, strict=True):
        expected = dict(zip(names, ref, strict=True))
        for name in names:
            value, want = row[name], expected[name]
            if want is None:
                assert value is None, (name, row["id"], value)
                continue
            assert value is not None, (name, row["id"])
            if name == "real4":  # float4 is stored as float32: exact at that precision
                assert value == float(np.float32(want)), (name, value, want)
            elif name == "amount":
                assert isinstance(want, Decimal)
                assert value == float(want)
            elif name == "seen_tz":
                assert want.utcoffset() == timedelta(hours=5, minutes=30)  # session TZ
                assert value.utcoffset() == timedelta(0)  # written as UTC
                assert value == want  # same instant
            elif name == "token":
                assert value == str(want)
            elif name == "doc":  # JSON text, not a Python repr
                assert json.loads(value) == want, value
            else:
                assert value == want, (name, row["id"], value, want)
                assert type(value) is type(want), (name, type(value), type(want))

    # the spelled-out edge cases, so a wrong reference could not hide a wrong value
    first, second, nulls, fourth = got
    assert first["big"] == -(2**63) and second["big"] == 2**63 - 1
    assert first["small"] == -32768 and second["small"] == 32767
    assert first["amount"] == -1234567890.1234
    assert first["note"] == "héllo, wörld ✓"
    assert first["code"] == "ab   "  # bpchar keeps its padding
    assert second["note"] == "" and second["label"] == ""  # empty is not NULL
    assert first["day"].isoformat() == "0001-01-01" and second["day"].isoformat() == "9999-12-31"
    assert first["seen"].isoformat() == "2024-02-29T23:59:59.999999"
    assert first["seen_tz"].isoformat() == "2024-06-30T23:30:00+00:00"
    assert second["seen_tz"].isoformat() == "2000-01-01T07:59:59.500000+00:00"
    assert fourth["seen_tz"].isoformat() == "2038-01-18T21:44:08+00:00"
    assert fourth["double8"] == float("-inf")
    assert fourth["note"] == "line one\nline two\ttab"
    assert first["token"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert json.loads(first["doc"]) == {"a": 1, "b": [True, None, "x"], "c": {"d": "é"}}
    assert json.loads(second["doc"]) == [1, "two", False]
    assert fourth["doc"] == "true"
    assert all(v is None for k, v in nulls.items() if k != "id")
    # null counts survive in the Parquet statistics too (SDV sees real missing values)
    assert all(table.column(name).null_count == 1 for name in names if name != "id")


def test_rows_are_read_by_adbc_in_a_read_only_connection(conn, tmp_path, monkeypatch):
    """A psycopg 3 connection's rows come through ADBC, not a row at a time."""
    import airflow_synth.core.extract.stream as stream

    opened: list[Any] = []

    def spy(source: Any, options: str = "") -> Any:
        connection = columnar_connect(source, options)
        opened.append(connection)
        return connection

    monkeypatch.setattr(columnar, "connect", spy)
    monkeypatch.setattr(stream, "_batch", None)  # the row-at-a-time converter: unused
    result = stream_query_to_parquet(
        conn, "SELECT id, label FROM big", tmp_path / "b.parquet", batch_rows=10_000
    )
    assert result.rows == 25_000 and len(opened) == 1
    meta = pq.ParquetFile(result.path).metadata
    assert [meta.row_group(i).num_rows for i in range(3)] == [10_000, 10_000, 5_000]


def test_the_extract_cannot_write_to_the_source(conn: psycopg.Connection, dsn, tmp_path):
    """A query that writes (here a volatile function) fails: the source stays untouched."""
    sql = "SELECT id, touch(id) AS touched FROM accounts ORDER BY id"
    staging = tmp_path / "staging"
    with pytest.raises(ExtractError) as err:
        stream_query_to_parquet(conn, sql, staging / "t.parquet", sql_name="writes.sql")
    assert "writes.sql failed in the database: cannot execute INSERT in a read-only" in str(
        err.value
    )
    assert leftovers(staging) == []
    assert fetch_plain(dsn, "SELECT count(*) FROM touched")[0][0] == 0
    assert_usable(conn)


def test_a_psycopg2_connection_writes_the_same_file(dsn: str, conn, tmp_path):
    """PostgresHook before SQLAlchemy 2 hands out psycopg 2: the row path, same result."""
    import psycopg2  # a dependency of the postgres provider

    old = psycopg2.connect(dsn, options=f"-c TimeZone={SESSION_TZ}")
    try:
        by_rows = stream_query_to_parquet(old, TYPED_SQL, tmp_path / "rows.parquet")
        assert old.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    finally:
        old.close()
    by_copy = stream_query_to_parquet(conn, TYPED_SQL, tmp_path / "copy.parquet")
    assert by_rows.columns == by_copy.columns
    assert pq.read_table(by_rows.path).equals(pq.read_table(by_copy.path))


def test_types_without_an_arrow_match_arrive_in_postgres_text_form(conn, tmp_path):
    """Numbers are cast to float8 by the server (rounded as float(Decimal) is), intervals
    become durations; anything else without an Arrow type arrives as PostgreSQL prints it
    (an inet host without the /32 its ::text would add)."""
    sql = """
        SELECT 0.1::numeric AS tenth, 123456789.123456789::numeric AS long_num,
               'NaN'::numeric AS nan, 1e-7::numeric AS tiny, 42::oid AS an_oid,
               interval '1 day 2 hours' AS span, ARRAY[1, NULL, 3] AS ints,
               '10.0.0.1/8'::inet AS net, 'x'::"char" AS one_char, 'pg'::name AS a_name,
               '\\xdead'::bytea AS raw, NULL::interval AS no_span, '10.0.0.2'::inet AS host
    """
    out = tmp_path / "text.parquet"
    stream_query_to_parquet(conn, sql, out)
    table = pq.read_table(out)
    assert [str(t) for t in table.schema.types] == (
        ["double"] * 4 + ["int64", "duration[us]"] + ["string"] * 5 + ["duration[us]", "string"]
    )
    row = table.to_pylist()[0]
    assert row["tenth"] == float(Decimal("0.1"))
    assert row["long_num"] == float(Decimal("123456789.123456789"))
    assert np.isnan(row["nan"])
    assert row["tiny"] == float(Decimal("1e-7"))
    assert row["an_oid"] == 42
    assert row["span"] == timedelta(days=1, hours=2)
    assert row["ints"] == "{1,NULL,3}"
    assert row["net"] == "10.0.0.1/8"
    assert row["one_char"] == "x" and row["a_name"] == "pg"
    assert row["raw"] == "\\xdead"
    assert row["no_span"] is None
    assert row["host"] == "10.0.0.2"


def test_duplicate_column_names_and_a_trailing_comment(conn, tmp_path):
    """The COPY wraps the query: a ``;``, a trailing ``--`` comment and two columns of the
    same name (a join) must survive that."""
    sql = "SELECT a.id, b.id, 1.5::numeric AS x\nFROM accounts a JOIN accounts b USING (id);"
    sql += " -- both ids"
    out = tmp_path / "dup.parquet"
    result = stream_query_to_parquet(conn, sql.replace("; --", "\n--"), out)
    assert result.columns == [("id", "integer"), ("id", "integer"), ("x", "float")]
    assert pq.ParquetFile(out).metadata.num_rows == 4
    result = stream_query_to_parquet(conn, "SELECT id FROM accounts;\n", out)
    assert result.rows == 4


def test_many_batches_become_row_groups_in_order(conn: psycopg.Connection, dsn, tmp_path):
    sql = "SELECT id, label, amount, at FROM big ORDER BY id"
    out = tmp_path / "big.parquet"
    result = stream_query_to_parquet(conn, sql, out, batch_rows=1_000, sql_name="big.sql")

    assert result.rows == 25_000
    parquet = pq.ParquetFile(out)
    assert parquet.metadata.num_rows == 25_000
    assert parquet.metadata.num_row_groups == 25
    assert [parquet.metadata.row_group(i).num_rows for i in range(25)] == [1_000] * 25

    data = parquet.read().to_pydict()
    reference = fetch_plain(dsn, sql)
    assert data["id"] == list(range(1, 25_001))
    assert data["label"] == [r[1] for r in reference]
    assert data["amount"] == [float(r[2]) for r in reference]
    assert data["at"] == [r[3] for r in reference]
    assert leftovers(tmp_path) == ["big.parquet"]


def test_last_partial_batch_is_written(conn: psycopg.Connection, tmp_path):
    out = tmp_path / "part.parquet"
    sql = "SELECT id FROM big WHERE id <= 2500 ORDER BY id"
    result = stream_query_to_parquet(conn, sql, out, batch_rows=1_000)
    meta = pq.ParquetFile(out).metadata
    assert result.rows == 2_500
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [1_000, 1_000, 500]


# --------------------------------------------------------------------------------------------
# parameters are bound
# --------------------------------------------------------------------------------------------
def test_named_parameter_is_bound_as_data(conn: psycopg.Connection, dsn, tmp_path):
    sql = "SELECT id, name FROM accounts\nWHERE name = %(name)s\nORDER BY id\n"
    out = tmp_path / "one.parquet"
    result = stream_query_to_parquet(conn, sql, out, {"name": INJECTION}, sql_name="acc.sql")
    assert result.rows == 1
    assert pq.read_table(out).to_pylist() == [{"id": 3, "name": INJECTION}]
    # the table survived and still has every row
    assert fetch_plain(dsn, "SELECT to_regclass('accounts') IS NOT NULL")[0][0] is True
    assert fetch_plain(dsn, "SELECT count(*) FROM accounts")[0][0] == 4


def test_injection_attempt_matches_nothing(conn: psycopg.Connection, dsn, tmp_path):
    """Formatted into the SQL, ``' OR '1'='1`` would return all four rows."""
    sql = "SELECT id, name FROM accounts WHERE name = %(name)s"
    with pytest.raises(EmptyExtractError):
        stream_query_to_parquet(conn, sql, tmp_path / "x.parquet", {"name": "nobody' OR '1'='1"})
    with pytest.raises(EmptyExtractError):
        stream_query_to_parquet(
            conn, sql, tmp_path / "y.parquet", {"name": "'; DROP TABLE accounts; --"}
        )
    assert fetch_plain(dsn, "SELECT count(*) FROM accounts")[0][0] == 4
    assert leftovers(tmp_path) == []


def test_positional_parameters_and_percent_literals(conn: psycopg.Connection, tmp_path):
    sql = "SELECT id, id %% 2 AS odd FROM accounts WHERE id > %s ORDER BY id"
    out = tmp_path / "pos.parquet"
    stream_query_to_parquet(conn, sql, out, (2,))
    assert pq.read_table(out).to_pylist() == [{"id": 3, "odd": 1}, {"id": 4, "odd": 0}]
    # without parameters a literal % stays a literal (no placeholder mode)
    stream_query_to_parquet(conn, "SELECT 100 % 7 AS r", out, {})
    assert pq.read_table(out).to_pylist() == [{"r": 2}]


# --------------------------------------------------------------------------------------------
# failures
# --------------------------------------------------------------------------------------------
def assert_usable(conn: psycopg.Connection) -> None:
    assert conn.info.transaction_status == TransactionStatus.IDLE
    assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (4,)
    conn.rollback()


@pytest.mark.parametrize(
    ("sql", "params", "message", "where"),
    [
        pytest.param(
            "SELECT id,\n       name\nFROM accounts\nWHERE id > %(min_id)s\n  AND nmae = 'a'\n",
            {"min_id": 0},
            'column "nmae" does not exist',
            "line 5, column 7: AND nmae = 'a'",
            id="unknown-column-after-a-parameter",
        ),
        pytest.param(
            "SELECT nope FROM accounts",
            None,
            'column "nope" does not exist',
            "line 1, column 8: SELECT nope FROM accounts",
            id="first-line",
        ),
        pytest.param(
            "-- features\nSELECT id\nFROM acounts\n",
            None,
            'relation "acounts" does not exist',
            "line 3, column 6: FROM acounts",
            id="unknown-table",
        ),
        pytest.param(
            "SELECT id\nFROM accounts\nWHERE id = 1 AND AND\n",
            None,
            'syntax error at or near "AND"',
            "line 3, column 18: WHERE id = 1 AND AND",
            id="syntax",
        ),
    ],
)
def test_sql_error_names_file_and_line_and_leaves_nothing(
    conn: psycopg.Connection, tmp_path, sql, params, message, where
):
    staging = tmp_path / "staging"
    with pytest.raises(ExtractError) as err:
        stream_query_to_parquet(
            conn, sql, staging / "real.parquet", params, sql_name="features/accounts.sql"
        )
    assert not isinstance(err.value, EmptyExtractError)
    text = str(err.value)
    assert text.startswith(f"The query in features/accounts.sql failed in the database: {message}")
    assert f"at {where} (of the rendered SQL)" in text, text
    assert isinstance(err.value.__cause__, psycopg.Error)
    assert leftovers(staging) == []  # neither the file nor a .partial
    assert_usable(conn)


def test_a_row_error_quotes_no_value(conn: psycopg.Connection, tmp_path):
    """A cast that fails on a real value: the error names the file, never the value."""
    sql = "SELECT id, ('SECRET-' || name || '-42')::integer AS n FROM accounts"
    with pytest.raises(ExtractError) as err:
        stream_query_to_parquet(conn, sql, tmp_path / "real.parquet", sql_name="cast.sql")
    text = str(err.value)
    assert "cast.sql failed in the database: invalid input syntax for type integer" in text
    assert "SECRET" not in text and "values withheld" in text
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert_usable(conn)


def test_error_while_streaming_removes_the_partial_file(conn: psycopg.Connection, tmp_path):
    """A row that fails mid-stream (after batches were written) leaves nothing behind."""
    sql = "SELECT id, 1 / (id - 2500) AS boom FROM big"  # no ORDER BY: fails at row 2500
    staging = tmp_path / "staging"
    with pytest.raises(ExtractError) as err:
        stream_query_to_parquet(
            conn, sql, staging / "real.parquet", batch_rows=1_000, sql_name="boom.sql"
        )
    assert str(err.value).startswith(
        "The query in boom.sql failed in the database: division by zero"
    )
    assert err.value.__cause__ is None  # an error about the rows: no driver traceback
    assert leftovers(staging) == []
    assert_usable(conn)


def test_a_row_error_after_batches_were_written_quotes_no_value(conn, tmp_path):
    """The cast fails at row 20,000, long after the first row groups were written."""
    sql = (
        "SELECT id, CASE WHEN id = 20000 THEN ('SECRET-' || label || '-42')::integer "
        "ELSE id END AS n FROM big ORDER BY id"
    )
    staging = tmp_path / "staging"
    with pytest.raises(ExtractError) as err:
        stream_query_to_parquet(
            conn, sql, staging / "real.parquet", batch_rows=1_000, sql_name="late.sql"
        )
    text = str(err.value)
    assert "late.sql failed in the database: invalid input syntax for type integer" in text
    assert "SECRET" not in text and "values withheld" in text
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert leftovers(staging) == []
    assert_usable(conn)


@pytest.mark.parametrize(
    "value", ["'infinity'::timestamp", "'-infinity'::timestamptz", "'infinity'::date"]
)
def test_an_infinite_timestamp_is_refused_naming_the_column(conn, tmp_path, value):
    sql = f"SELECT id, CASE WHEN id = 3 THEN {value} END AS seen FROM accounts"
    staging = tmp_path / "staging"
    with pytest.raises(ExtractError, match="column 'seen' holds an infinite"):
        stream_query_to_parquet(conn, sql, staging / "real.parquet", sql_name="inf.sql")
    assert leftovers(staging) == []
    assert_usable(conn)


def test_zero_rows_is_an_error_and_leaves_no_file(conn: psycopg.Connection, tmp_path):
    staging = tmp_path / "staging"
    with pytest.raises(EmptyExtractError) as err:
        stream_query_to_parquet(
            conn,
            "SELECT * FROM accounts WHERE id > %(min_id)s",
            staging / "real.parquet",
            {"min_id": 100},
            sql_name="features/empty.sql",
        )
    assert "features/empty.sql returned 0 rows" in str(err.value)
    assert leftovers(staging) == []
    assert_usable(conn)


def test_zero_rows_allowed_writes_an_empty_file_with_the_schema(conn, tmp_path):
    out = tmp_path / "empty.parquet"
    result = stream_query_to_parquet(
        conn, "SELECT id, name FROM accounts WHERE false", out, allow_empty=True
    )
    table = pq.read_table(out)
    assert result.rows == table.num_rows == 0
    assert table.schema.remove_metadata() == pa.schema([("id", pa.int32()), ("name", pa.string())])


# --------------------------------------------------------------------------------------------
# transaction
# --------------------------------------------------------------------------------------------
def test_extract_transaction_is_rolled_back(conn: psycopg.Connection, dsn, tmp_path):
    """The source connection's transaction (the DECLARE) ends; it extracts again."""
    result = stream_query_to_parquet(conn, "SELECT id FROM accounts", tmp_path / "t.parquet")
    assert result.rows == 4
    assert conn.info.transaction_status == TransactionStatus.IDLE
    again = stream_query_to_parquet(conn, "SELECT id FROM accounts", tmp_path / "again.parquet")
    assert again.rows == 4
    assert_usable(conn)


def test_the_row_path_is_read_only_too(dsn: str, tmp_path):
    """psycopg 2 (the row path) runs the query in the task's transaction, made read-only."""
    import psycopg2  # a dependency of the postgres provider

    old = psycopg2.connect(dsn)
    try:
        sql = "SELECT id, touch(id) AS touched FROM accounts ORDER BY id"
        with pytest.raises(ExtractError, match="cannot execute INSERT in a read-only"):
            stream_query_to_parquet(old, sql, tmp_path / "t.parquet", batch_rows=2)
        assert old.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        again = stream_query_to_parquet(old, "SELECT id FROM accounts", tmp_path / "a.parquet")
        assert again.rows == 4
    finally:
        old.close()
    assert fetch_plain(dsn, "SELECT count(*) FROM touched")[0][0] == 0
    assert leftovers(tmp_path) == ["a.parquet"]


# --------------------------------------------------------------------------------------------
# run_extract
# --------------------------------------------------------------------------------------------
ACCOUNTS_SQL = "SELECT id, name FROM accounts WHERE id >= %(min_id)s ORDER BY id"


def accounts_contract(columns: list[dict[str, str]]) -> Any:
    return parse_contract(
        {"table": "accounts", "columns": columns}, source="features/accounts.contract.yaml"
    )


def test_no_value_reaches_the_log(conn: psycopg.Connection, tmp_path, caplog):
    """Every log line of an extract (ours and the libraries', at DEBUG) is free of values."""
    caplog.set_level(logging.DEBUG)
    staging = tmp_path / "staging"
    run_extract(conn, "SELECT * FROM accounts", staging, sql_name="acc.sql", batch_rows=1)
    with pytest.raises(ExtractError):
        run_extract(
            conn,
            "SELECT id, (name || '-x')::integer FROM accounts",
            staging,
            sql_name="bad.sql",
        )
    assert "acc.sql" in caplog.text
    for value in ("alice", "bob", "carol", INJECTION):
        assert value not in caplog.text, value


def test_run_extract_checks_the_contract_and_reports(conn: psycopg.Connection, tmp_path):
    contract = accounts_contract(
        [{"name": "id", "type": "integer"}, {"name": "name", "type": "string"}]
    )
    staging = tmp_path / "staging"
    info = run_extract(
        conn,
        ACCOUNTS_SQL,
        staging,
        sql_name="features/accounts.sql",
        parameters={"min_id": 2},
        contract=contract,
        batch_rows=2,
    )
    staged = staging / REAL_FILE
    assert info["staging_uri"] == staged.resolve().as_uri()
    assert info["rows"] == 3
    assert info["columns"] == [["id", "integer"], ["name", "string"]]
    assert info["sql_file"] == "features/accounts.sql"
    assert info["sql_sha256"] == sql_hash(ACCOUNTS_SQL)
    assert info["contract_file"] == "features/accounts.contract.yaml"
    assert info["bytes"] == staged.stat().st_size
    json.dumps(info)  # XCom-safe
    assert pq.read_table(staged).column("id").to_pylist() == [2, 3, 4]
    assert_usable(conn)


def test_run_extract_contract_mismatch_deletes_the_staged_file(conn: psycopg.Connection, tmp_path):
    contract = accounts_contract(
        [
            {"name": "id", "type": "integer"},
            {"name": "name", "type": "integer"},
            {"name": "age", "type": "integer"},
        ]
    )
    staging = tmp_path / "staging"
    with pytest.raises(ContractError) as err:
        run_extract(
            conn,
            ACCOUNTS_SQL,
            staging,
            sql_name="features/accounts.sql",
            parameters={"min_id": 0},
            contract=contract,
        )
    text = str(err.value)
    assert "features/accounts.contract.yaml" in text
    assert "- age (integer)" in text
    assert "~ name: contract says integer, query returns string" in text
    assert leftovers(staging) == []  # the real rows were staged, then deleted
    assert_usable(conn)


# --------------------------------------------------------------------------------------------
# bounded memory
# --------------------------------------------------------------------------------------------
MEMORY_ROWS = 300_000
#: ~700 characters of distinct text per row: 300k rows are ~200 MB as text, far more as
#: Python objects, while one 10k-row batch is a few MB.
WIDE_TEMPLATE = """
SELECT g AS id,
       repeat(md5(g::text), 8) AS a,
       repeat(md5((g + 1)::text), 8) AS b,
       repeat(md5((g + 2)::text), 6) AS c,
       g * 0.5 AS x
FROM generate_series(1, {rows}) AS g
"""
WIDE_SQL = WIDE_TEMPLATE.format(rows=MEMORY_ROWS)

#: The measuring child forks once more and measures in the grandchild: Linux carries the
#: RSS high-water mark of the process image that exec replaced (here: this pytest
#: process, via subprocess's vfork) into ``ru_maxrss``, so a directly spawned child would
#: report pytest's own peak. A fresh fork starts from the small child after its imports.
CHILD = textwrap.dedent(
    """
    import os, resource, sys, traceback
    import psycopg
    import pyarrow.parquet  # the same imports in both modes: equal baselines
    from airflow_synth.core.extract.stream import stream_query_to_parquet

    dsn, sql, mode, out = sys.argv[1:5]
    pid = os.fork()
    if pid == 0:
        try:
            with psycopg.connect(dsn) as conn:
                if mode == "stream":
                    rows = stream_query_to_parquet(conn, sql, out, batch_rows=10_000).rows
                else:
                    rows = len(conn.cursor().execute(sql).fetchall())
            peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
            print(rows, peak_kib, flush=True)
            os._exit(0)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
    """
)


def child_peak(dsn: str, mode: str, out: Path, sql: str = WIDE_SQL) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, dsn, sql, mode, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows, peak = done.stdout.split()
    return int(rows), int(peak)


def test_streaming_memory_stays_well_below_fetchall(dsn: str, tmp_path, record_property):
    out = tmp_path / "wide.parquet"
    stream_rows, stream_kib = child_peak(dsn, "stream", out)
    all_rows, fetchall_kib = child_peak(dsn, "fetchall", out)
    record_property("peak_rss_stream_mib", stream_kib // 1024)
    record_property("peak_rss_fetchall_mib", fetchall_kib // 1024)
    print(f"peak RSS: stream {stream_kib // 1024} MiB, fetchall {fetchall_kib // 1024} MiB")
    assert stream_rows == all_rows == MEMORY_ROWS
    assert pq.ParquetFile(out).metadata.num_row_groups == MEMORY_ROWS // 10_000
    assert stream_kib < 0.8 * fetchall_kib, (stream_kib, fetchall_kib)
    # and the difference is the data, not noise: fetchall holds 100+ MiB more
    assert fetchall_kib - stream_kib > 100 * 1024, (stream_kib, fetchall_kib)


def test_peak_memory_does_not_grow_with_the_rows(dsn: str, tmp_path, record_property):
    """Three times the rows, the same peak (the goal: 10M rows within 1.2x of 1M rows).

    Both sizes are past the start-up of the pipeline (the driver's first 16 MB batches,
    the Parquet writer's buffers): at 300k rows the peak has reached its plateau.
    """
    out = tmp_path / "wide.parquet"
    small_rows, small_kib = child_peak(dsn, "stream", out)
    big_rows, big_kib = child_peak(dsn, "stream", out, WIDE_TEMPLATE.format(rows=3 * MEMORY_ROWS))
    record_property("peak_rss_small_mib", small_kib // 1024)
    record_property("peak_rss_big_mib", big_kib // 1024)
    assert (small_rows, big_rows) == (MEMORY_ROWS, 3 * MEMORY_ROWS)
    assert big_kib <= 1.2 * small_kib, (small_kib, big_kib)
