"""Extract logic without a database (core.extract.stream, sql.error_line, run_extract).

A fake DB-API connection stands in for psycopg: it hands out a named cursor whose
``description`` carries PostgreSQL type OIDs and whose rows come in ``fetchmany`` batches.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_synth.core.contract import parse_contract
from airflow_synth.core.errors import (
    ContractError,
    EmptyExtractError,
    ExtractError,
    SourceConnectionLostError,
)
from airflow_synth.core.extract import columnar, session
from airflow_synth.core.extract.columnar import (
    NATIVE_OIDS,
    ReadError,
    conform,
    conninfo_for,
    read_tables,
    select_with_casts,
    server_cast,
)
from airflow_synth.core.extract.sql import error_line, sql_hash
from airflow_synth.core.extract.stream import (
    READ_ONLY,
    ExtractResult,
    _extract_error,
    arrow_schema_for,
    stream_query_to_parquet,
)
from airflow_synth.core.steps import REAL_FILE, run_extract

pytestmark = pytest.mark.unit


class Column(NamedTuple):
    """The two attributes of a psycopg cursor description entry that the extract reads."""

    name: str
    type_code: int


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.description: list[Column] | None = None
        self.itersize: int | None = None
        self._rows: list[tuple] = []
        self._fetches = 0

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.cursor_closed = True

    def execute(self, sql: str, parameters: Any = None) -> None:
        if sql == session.TIMEOUTS:  # every transaction's second statement: the timeouts
            self.conn.guards.append(parameters)
            return
        self.conn.executed.append((sql, parameters))
        if sql == READ_ONLY:  # every transaction's first statement: no result
            return
        if self.conn.execute_error is not None:
            raise self.conn.execute_error
        self.description = list(self.conn.columns)
        self._rows = list(self.conn.rows)

    def fetchall(self) -> list[tuple]:  # the timeouts chosen (only the guard fetches all)
        return [("idle_in_transaction_session_timeout", "10min", 600000)]

    def fetchmany(self, size: int) -> list[tuple]:
        self._fetches += 1
        if self.conn.fail_on_fetch == self._fetches:
            raise ConnectionError("server closed the connection unexpectedly")
        self.conn.fetch_sizes.append(size)
        batch, self._rows = self._rows[:size], self._rows[size:]
        return batch


class FakeConnection:
    def __init__(
        self,
        columns: Sequence[Column] = (),
        rows: Sequence[tuple] = (),
        *,
        execute_error: Exception | None = None,
        fail_on_fetch: int | None = None,
    ) -> None:
        self.columns = columns
        self.rows = rows
        self.execute_error = execute_error
        self.fail_on_fetch = fail_on_fetch
        self.executed: list[tuple[str, Any]] = []
        self.guards: list[Any] = []  # the timeouts statement's parameters, per transaction
        self.fetch_sizes: list[int] = []
        self.cursor_names: list[str | None] = []
        self.cursors: list[FakeCursor] = []
        self.rollbacks = 0
        self.cursor_closed = False

    def cursor(self, name: str | None = None) -> FakeCursor:
        self.cursor_names.append(name)
        cursor = FakeCursor(self)
        self.cursors.append(cursor)
        return cursor

    def rollback(self) -> None:
        self.rollbacks += 1


class FakeDiag:
    def __init__(
        self,
        message_primary: str | None = None,
        statement_position: str | None = None,
        message_hint: str | None = None,
    ) -> None:
        self.message_primary = message_primary
        self.statement_position = statement_position
        self.message_hint = message_hint


class FakeDbError(Exception):
    """Shaped like psycopg's errors: a message plus a ``diag`` object."""

    def __init__(self, text: str, diag: FakeDiag | None) -> None:
        super().__init__(text)
        self.diag = diag


SQL = "SELECT id,\n       agee\nFROM users\nWHERE id > %(min_id)s\n"

USER_COLUMNS = [
    Column("id", 20),
    Column("name", 25),
    Column("balance", 1700),
    Column("active", 16),
    Column("signup", 1082),
    Column("seen", 1114),
    Column("seen_tz", 1184),
    Column("token", 2950),  # uuid: not in the OID map
]
USER_ROWS = [
    (
        i,
        None if i == 3 else f"user{i}",
        None if i == 2 else Decimal(f"{i}.25"),
        None if i == 4 else i % 2 == 0,
        date(2024, 1, i),
        datetime(2024, 1, i, 12, 0, 0, 5),
        datetime(2024, 1, i, 8, tzinfo=UTC),
        None if i == 5 else uuid.UUID(int=i),
    )
    for i in range(1, 8)
]


# --------------------------------------------------------------------------------------------
# arrow_schema_for
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("oid", "arrow_type"),
    [
        (16, pa.bool_()),
        (20, pa.int64()),
        (21, pa.int16()),
        (23, pa.int32()),
        (26, pa.int64()),
        (700, pa.float32()),
        (701, pa.float64()),
        (1700, pa.float64()),
        (1082, pa.date32()),
        (1114, pa.timestamp("us")),
        (1184, pa.timestamp("us", tz="UTC")),
        (18, pa.string()),
        (19, pa.string()),
        (25, pa.string()),
        (1042, pa.string()),
        (1043, pa.string()),
        (2950, pa.string()),  # uuid
        (114, pa.string()),  # json
        (3802, pa.string()),  # jsonb
        (1186, pa.duration("us")),  # interval
        (1083, pa.time64("us")),  # time
        (1266, pa.time64("us")),  # timetz, in UTC
    ],
)
def test_arrow_type_for_each_postgres_oid(oid: int, arrow_type: pa.DataType) -> None:
    schema = arrow_schema_for([Column("c", oid)])
    assert schema.field("c").type == arrow_type


def test_arrow_schema_keeps_names_and_order() -> None:
    schema = arrow_schema_for(USER_COLUMNS)
    assert schema.names == [c.name for c in USER_COLUMNS]
    assert [str(t) for t in schema.types] == [
        "int64",
        "string",
        "double",
        "bool",
        "date32[day]",
        "timestamp[us]",
        "timestamp[us, tz=UTC]",
        "string",
    ]


def test_arrow_schema_accepts_any_object_with_name_and_type_code() -> None:
    description = [SimpleNamespace(name="x", type_code=23, display_size=None)]
    assert arrow_schema_for(description) == pa.schema([("x", pa.int32())])
    assert arrow_schema_for([]) == pa.schema([])


# --------------------------------------------------------------------------------------------
# error_line
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("position", "expected"),
    [
        (1, "line 1, column 1: SELECT id,"),
        (8, "line 1, column 8: SELECT id,"),
        (11, "line 1, column 11: SELECT id,"),  # the newline itself ends line 1
        (12, "line 2, column 1: agee"),
        (19, "line 2, column 8: agee"),
        (24, "line 3, column 1: FROM users"),
        (len(SQL), "line 4, column 22: WHERE id > %(min_id)s"),  # its newline
        (None, ""),
        (0, ""),
    ],
)
def test_error_line(position: int | None, expected: str) -> None:
    assert error_line(SQL, position) == expected


def test_error_line_position_past_the_end_has_no_text() -> None:
    assert error_line("SELECT 1\n", 50) == "line 2, column 1: "


def test_error_line_with_windows_line_endings() -> None:
    sql = "SELECT 1\r\nFROM nope\r\n"
    assert error_line(sql, sql.index("nope") + 1) == "line 2, column 6: FROM nope"


# --------------------------------------------------------------------------------------------
# _extract_error
# --------------------------------------------------------------------------------------------
def test_extract_error_names_file_line_and_says_nothing_was_published() -> None:
    position = SQL.index("agee") + 1
    exc = FakeDbError(
        'ERROR:  column "agee" does not exist\nLINE 2: ...',
        FakeDiag(
            message_primary='column "agee" does not exist',
            statement_position=str(position),  # psycopg2 reports it as text
            message_hint='Perhaps you meant to reference the column "users.age".',
        ),
    )
    error = _extract_error(exc, SQL, "features/users.sql")
    assert isinstance(error, ExtractError)
    assert str(error).splitlines() == [
        'The query in features/users.sql failed in the database: column "agee" does not exist',
        "  at line 2, column 8: agee (of the rendered SQL)",
        '  hint: Perhaps you meant to reference the column "users.age".',
        "Fix the SQL file and re-run; nothing was extracted or published.",
    ]


def test_extract_error_without_diag_uses_the_exception_text() -> None:
    error = _extract_error(RuntimeError("  connection refused \n"), SQL, "q.sql")
    message = str(error)
    assert message.startswith("The query in q.sql failed in the database: connection refused\n")
    assert "  at line" not in message and "hint:" not in message
    assert message.endswith("nothing was extracted or published.")


def test_extract_error_with_empty_diag_falls_back_to_text() -> None:
    exc = FakeDbError("permission denied for table users", FakeDiag())
    message = str(_extract_error(exc, SQL, "q.sql"))
    assert "failed in the database: permission denied for table users" in message
    assert "  at line" not in message


# --------------------------------------------------------------------------------------------
# stream_query_to_parquet
# --------------------------------------------------------------------------------------------
def test_stream_writes_every_row_in_batches(tmp_path: Path) -> None:
    conn = FakeConnection(USER_COLUMNS, USER_ROWS)
    out = tmp_path / "staged" / "real.parquet"
    result = stream_query_to_parquet(
        conn, SQL, out, {"min_id": 0}, batch_rows=3, sql_name="features/users.sql"
    )
    assert isinstance(result, ExtractResult)
    assert result.path == out and out.is_file()
    assert result.rows == 7
    assert result.bytes == out.stat().st_size
    assert result.seconds >= 0
    assert result.columns == [
        ("id", "integer"),
        ("name", "string"),
        ("balance", "float"),
        ("active", "boolean"),
        ("signup", "date"),
        ("seen", "timestamp"),
        ("seen_tz", "timestamp"),
        ("token", "string"),
    ]
    # one Parquet row group per fetched batch: memory stays bounded by batch_rows
    assert pq.ParquetFile(out).metadata.num_row_groups == 3
    assert conn.fetch_sizes == [3, 3, 3, 3]
    assert conn.cursor_names == [None, "airflow_synth_extract"]  # read-only, server-side
    assert conn.cursors[1].itersize == 3
    # read-only first; then the values are bound by the driver, not formatted
    assert conn.executed == [(READ_ONLY, None), (SQL, {"min_id": 0})]
    assert conn.rollbacks == 1
    assert not list(out.parent.glob("*.partial"))


def test_stream_converts_values(tmp_path: Path) -> None:
    conn = FakeConnection(USER_COLUMNS, USER_ROWS)
    out = tmp_path / "real.parquet"
    stream_query_to_parquet(conn, SQL, out, batch_rows=4)
    table = pq.read_table(out)
    assert table.schema == arrow_schema_for(USER_COLUMNS)
    data = table.to_pydict()
    assert data["id"] == list(range(1, 8))
    assert data["name"][2] is None and data["name"][0] == "user1"
    assert data["balance"][:3] == [1.25, None, 3.25]  # Decimal -> float64
    assert data["active"][:5] == [False, True, False, None, False]
    assert data["signup"][6] == date(2024, 1, 7)
    assert data["seen"][0] == datetime(2024, 1, 1, 12, 0, 0, 5)
    assert data["seen_tz"][0] == datetime(2024, 1, 1, 8, tzinfo=UTC)
    assert data["token"][0] == "00000000-0000-0000-0000-000000000001"  # uuid -> str
    assert data["token"][4] is None


def test_stream_passes_no_parameters_as_none(tmp_path: Path) -> None:
    conn = FakeConnection([Column("a", 23)], [(1,)])
    stream_query_to_parquet(conn, "SELECT 100 % 7", tmp_path / "r.parquet", {})
    # an empty mapping must not switch the driver into %-placeholder mode
    assert conn.executed[1:] == [("SELECT 100 % 7", None)]


def test_empty_result_is_an_error_and_leaves_no_file(tmp_path: Path) -> None:
    conn = FakeConnection(USER_COLUMNS, [])
    out = tmp_path / "real.parquet"
    with pytest.raises(EmptyExtractError) as err:
        stream_query_to_parquet(conn, SQL, out, sql_name="features/users.sql")
    message = str(err.value)
    assert "features/users.sql returned 0 rows" in message
    assert "Nothing was trained or published" in message
    assert isinstance(err.value, ExtractError)
    assert list(tmp_path.iterdir()) == []
    assert conn.rollbacks == 1


def test_empty_result_allowed_writes_an_empty_file_with_the_schema(tmp_path: Path) -> None:
    conn = FakeConnection(USER_COLUMNS, [])
    out = tmp_path / "real.parquet"
    result = stream_query_to_parquet(conn, SQL, out, allow_empty=True)
    assert result.rows == 0
    table = pq.read_table(out)
    assert table.num_rows == 0
    assert table.schema == arrow_schema_for(USER_COLUMNS)


def test_database_error_becomes_extract_error(tmp_path: Path) -> None:
    position = SQL.index("users") + 1
    db_error = FakeDbError(
        'relation "users" does not exist',
        FakeDiag('relation "users" does not exist', str(position)),
    )
    conn = FakeConnection(execute_error=db_error)
    out = tmp_path / "real.parquet"
    with pytest.raises(ExtractError) as err:
        stream_query_to_parquet(conn, SQL, out, sql_name="features/users.sql")
    assert not isinstance(err.value, EmptyExtractError)
    message = str(err.value)
    assert "features/users.sql" in message
    assert "line 3, column 6: FROM users" in message
    assert err.value.__cause__ is db_error
    assert list(tmp_path.iterdir()) == []
    assert conn.rollbacks == 1 and conn.cursor_closed


def test_failure_mid_stream_leaves_no_partial_file(tmp_path: Path) -> None:
    conn = FakeConnection(USER_COLUMNS, USER_ROWS, fail_on_fetch=2)
    out = tmp_path / "real.parquet"
    with pytest.raises(SourceConnectionLostError, match="lost .server closed the connection"):
        stream_query_to_parquet(conn, SQL, out, batch_rows=3, sql_name="users.sql")
    assert list(tmp_path.iterdir()) == []
    assert conn.rollbacks == 1


def test_rollback_failure_does_not_mask_the_result(tmp_path: Path) -> None:
    conn = FakeConnection([Column("a", 23)], [(1,), (2,)])

    def broken_rollback() -> None:
        raise ConnectionError("connection already closed")

    conn.rollback = broken_rollback  # type: ignore[method-assign]
    result = stream_query_to_parquet(conn, "SELECT a FROM t", tmp_path / "r.parquet")
    assert result.rows == 2


def test_extract_result_to_xcom_is_small_and_json_safe(tmp_path: Path) -> None:
    path = tmp_path / "real.parquet"
    result = ExtractResult(path, 3, [("a", "integer")], 1.23456, 99)
    xcom = result.to_xcom()
    assert json.loads(json.dumps(xcom)) == {
        "staging_uri": path.resolve().as_uri(),
        "rows": 3,
        "columns": [["a", "integer"]],
        "seconds": 1.235,
        "bytes": 99,
    }


# --------------------------------------------------------------------------------------------
# run_extract (steps): streaming plus the contract check
# --------------------------------------------------------------------------------------------
def _contract(*columns: tuple[str, str]) -> Any:
    return parse_contract(
        {"columns": [{"name": n, "type": t} for n, t in columns]},
        source="sql/features/users.contract.yaml",
    )


def test_run_extract_returns_xcom_with_sql_hash_and_contract(tmp_path: Path) -> None:
    conn = FakeConnection([Column("id", 20), Column("name", 25)], [(1, "a"), (2, "b")])
    contract = _contract(("id", "integer"), ("name", "string"))
    result = run_extract(conn, SQL, tmp_path, sql_name="features/users.sql", contract=contract)
    assert result["rows"] == 2
    assert result["sql_file"] == "features/users.sql"
    assert result["sql_sha256"] == sql_hash(SQL)
    assert result["contract_file"] == "sql/features/users.contract.yaml"
    assert result["staging_uri"] == (tmp_path / REAL_FILE).resolve().as_uri()
    assert pq.read_table(tmp_path / REAL_FILE).num_rows == 2
    # the single-table result names its SQL file; "source" would be read as manifest lineage
    assert "source" not in result


def test_run_extract_contract_violation_deletes_the_real_rows(tmp_path: Path) -> None:
    conn = FakeConnection([Column("id", 20), Column("email", 25)], [(1, "a@x.org")])
    contract = _contract(("id", "integer"), ("name", "string"))
    with pytest.raises(ContractError) as err:
        run_extract(conn, SQL, tmp_path, sql_name="features/users.sql", contract=contract)
    assert "- name (string)" in str(err.value)
    assert "+ email (string)" in str(err.value)
    assert not (tmp_path / REAL_FILE).exists()


def test_run_extract_without_contract(tmp_path: Path) -> None:
    conn = FakeConnection([Column("x", 701)], [(0.5,)])
    result = run_extract(conn, "SELECT x", tmp_path, sql_name="q.sql", parameters=[1])
    assert result["contract_file"] is None
    assert result["columns"] == [["x", "float"]]
    assert conn.executed[-1] == ("SELECT x", [1])  # after the types were described


# --------------------------------------------------------------------------------------------
# the ADBC reader (core.extract.columnar): casts, connection string, batches, errors
# --------------------------------------------------------------------------------------------
def test_select_without_casts_is_the_query_on_lines_of_its_own() -> None:
    sql = "SELECT id, name\nFROM users -- all of them\n"
    assert select_with_casts(sql, [20, 25, 1042, 1184]) == sql
    assert select_with_casts("SELECT id FROM users; \n", [20]) == "SELECT id FROM users\n"
    assert select_with_casts("SELECT 1 -- one", [23]) == "SELECT 1 -- one\n"


def test_select_with_casts_renames_by_position_and_survives_comments() -> None:
    sql = "SELECT * FROM t; -- the whole table\n"
    assert select_with_casts(sql.replace("; --", " --"), [1700, 25, 2950, 26, 3802]) == (
        "SELECT c1::float8, c2, c3::text, c4::int8, c5::text FROM (\n"
        "SELECT * FROM t -- the whole table\n"
        ") AS airflow_synth_q(c1, c2, c3, c4, c5)"
    )
    assert select_with_casts("SELECT 1.5;\n", [1700]).splitlines()[1] == "SELECT 1.5"


@pytest.mark.parametrize(
    ("oid", "cast"),
    [(16, None), (20, None), (1042, None), (1114, None), (19, None), (1700, "float8")]
    + [(26, "int8"), (2950, "text"), (114, "text"), (3802, "text"), (1083, None)]
    + [(18, "text"), (1009, "text"), (17, "text"), (1266, "({c} AT TIME ZONE 'UTC')::time")]
    + [(1186, "((extract(epoch FROM {c}) - extract(year FROM {c}) * 21600) * 1000000)::int8")],
)
def test_server_cast_per_oid(oid: int, cast: str | None) -> None:
    assert server_cast(oid) == cast


def test_every_native_oid_has_the_arrow_type_adbc_gives() -> None:
    """ADBC's own mapping (verified in the integration tests) for the OIDs read as is."""
    adbc = {16: "bool", 20: "int64", 21: "int16", 23: "int32", 700: "float", 701: "double"}
    adbc |= {1082: "date32[day]", 1114: "timestamp[us]", 1184: "timestamp[us, tz=UTC]"}
    adbc |= {1083: "time64[us]"}
    adbc |= {oid: "string" for oid in (19, 25, 1042, 1043)}
    assert set(adbc) == NATIVE_OIDS
    for oid, arrow_type in adbc.items():
        assert str(arrow_schema_for([Column("c", oid)]).field("c").type) == arrow_type


def test_conninfo_is_read_only_utf8_and_quotes_every_value() -> None:
    conninfo = conninfo_for(
        {"host": "db.example", "port": "5432", "dbname": "my db", "user": "o'neil"},
        password="pa ss'\\word",
    )
    assert conninfo == (
        "host='db.example' port='5432' dbname='my db' user='o\\'neil' "
        "options='-c default_transaction_read_only=on' client_encoding='UTF8' "
        "password='pa ss\\'\\\\word'"
    )


def test_conninfo_keeps_the_source_options_and_needs_no_password() -> None:
    conninfo = conninfo_for({"host": "h", "options": "-c TimeZone=Asia/Kolkata"}, None)
    assert "options='-c TimeZone=Asia/Kolkata -c default_transaction_read_only=on'" in conninfo
    assert "password" not in conninfo


def test_the_adbc_connection_gets_the_timeouts_after_the_source_options() -> None:
    """The timeouts the describing transaction chose come after the source's own options
    (libpq: the later ``-c`` wins), and read-only last."""
    options = session.adbc_options(
        {"statement_timeout": 3_600_000, "idle_in_transaction_session_timeout": 600_000}
    )
    conninfo = conninfo_for({"host": "h", "options": "-c statement_timeout=5"}, None, options)
    assert (
        "options='-c statement_timeout=5 -c idle_in_transaction_session_timeout=600000 "
        "-c statement_timeout=3600000 -c default_transaction_read_only=on'" in conninfo
    )


def _batch_of(**columns: pa.Array) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))


def test_conform_takes_the_described_names_and_types() -> None:
    schema = pa.schema([("id", pa.int64()), ("id", pa.int64()), ("x", pa.float64())])
    batch = _batch_of(
        c1=pa.array([1, 2]), c2=pa.array([3, None]), c3=pa.array([0.5, 1.0], pa.float32())
    )
    conformed = conform(batch, schema)
    assert conformed.schema == schema
    assert conformed.column(2).to_pylist() == [0.5, 1.0]
    with pytest.raises(ExtractError, match="2 columns where 3 were described"):
        conform(batch.select([0, 1]), schema)


@pytest.mark.parametrize(
    ("arrow_type", "value"),
    [
        (pa.timestamp("us"), -9_222_425_352_054_775_809),  # how ADBC sends 'infinity'
        (pa.timestamp("us", tz="UTC"), -9_222_425_352_054_775_808),  # '-infinity'
        (pa.date32(), -2_147_472_691),
    ],
)
def test_conform_refuses_infinite_dates_naming_the_column(arrow_type, value) -> None:
    schema = pa.schema([("seen", arrow_type)])
    storage = pa.int32() if arrow_type == pa.date32() else pa.int64()
    finite = pa.array([0, None], storage).cast(arrow_type)
    assert conform(_batch_of(c1=finite), schema).num_rows == 2
    infinite = pa.array([0, value, None], storage).cast(arrow_type)
    with pytest.raises(ExtractError, match="column 'seen' holds an infinite"):
        conform(_batch_of(c1=infinite), schema)
    lowest = pa.array([-210_866_803_200_000_000 if storage == pa.int64() else -2_440_588])
    assert conform(_batch_of(c1=lowest.cast(storage).cast(arrow_type)), schema).num_rows == 1


class FakeAdbcCursor:
    def __init__(self, source: FakeAdbc) -> None:
        self.source = source

    def __enter__(self) -> FakeAdbcCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, query: str) -> None:
        self.source.queries.append(query)

    def fetch_record_batch(self) -> Iterator[pa.RecordBatch]:
        yield from self.source.batches


class FakeAdbc:
    """An ADBC connection that hands out the given record batches."""

    def __init__(self, batches: list[pa.RecordBatch]) -> None:
        self.batches = batches
        self.queries: list[str] = []
        self.closed = False

    def __enter__(self) -> FakeAdbc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True

    def cursor(self) -> FakeAdbcCursor:
        return FakeAdbcCursor(self)


def test_read_tables_cuts_adbc_batches_into_tables_of_batch_rows(monkeypatch) -> None:
    sizes = [3, 7, 1, 4]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    batches = [
        _batch_of(c1=pa.array(range(start, start + n)))
        for start, n in zip(starts, sizes, strict=True)
    ]
    source = FakeAdbc(batches)
    monkeypatch.setattr(columnar, "connect", lambda conn, options="": source)
    schema = pa.schema([("id", pa.int64())])
    tables = list(read_tables(object(), "SELECT id FROM t", schema, [20], batch_rows=5))
    assert [t.num_rows for t in tables] == [5, 5, 5]
    assert [v for t in tables for v in t.column("id").to_pylist()] == list(range(15))
    assert all(t.schema == schema for t in tables)
    assert source.queries == ["SELECT id FROM t\n"] and source.closed


def test_read_tables_turns_a_failure_while_streaming_into_a_read_error(monkeypatch) -> None:
    """pyarrow raises the driver's text (which quotes the value) from the reader: it is
    reduced to a ReadError, and the original is not chained."""

    def failing() -> Iterator[pa.RecordBatch]:
        yield _batch_of(c1=pa.array([1, 2]))
        raise OSError(
            "[libpq] Query failed [PGRES_FATAL_ERROR]: ERROR:  invalid input syntax for "
            'type integer: "SECRET-7"'
        )

    source = FakeAdbc([])
    source.batches = failing()  # type: ignore[assignment]
    monkeypatch.setattr(columnar, "connect", lambda conn, options="": source)
    tables = read_tables(object(), "SELECT n FROM t", pa.schema([("n", pa.int64())]), [20], 1)
    assert next(tables).num_rows == 1
    assert next(tables).num_rows == 1
    with pytest.raises(ReadError) as err:
        next(tables)
    assert "SECRET" not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert source.closed  # the driver's connection is closed on the way out


def test_server_error_keeps_the_message_not_the_statement_or_values() -> None:
    exc = RuntimeError(
        "INVALID_DATA: [libpq] Failed to execute query: could not begin COPY: ERROR:  x\n\n"
        "Query was: COPY (SELECT * FROM t WHERE name = 'Alice Secret') TO STDOUT"
    )
    exc.details = [  # type: ignore[attr-defined]
        (b"PG_DIAG_MESSAGE_PRIMARY", b'invalid input syntax for type integer: "SECRET-1"'),
        (b"PG_DIAG_SQLSTATE", b"22P02"),
    ]
    exc.sqlstate = "22P02"  # type: ignore[attr-defined]
    error = str(_extract_error(ReadError(exc), SQL, "q.sql"))
    assert "invalid input syntax for type integer" in error and "values withheld" in error
    assert "SECRET" not in error and "Alice" not in error and "Query was" not in error
    # pyarrow's errors while streaming carry only libpq's text
    streamed = ReadError(
        OSError(
            "[libpq] Execution error [PGRES_FATAL_ERROR]: ERROR:  invalid input syntax for "
            'type integer: "SECRET-1"\nCONTEXT:  SQL function'
        )
    )
    assert streamed.diag.message_primary == 'invalid input syntax for type integer: "SECRET-1"'
    assert "SECRET" not in str(streamed)
    plain = ReadError(RuntimeError("IO: [libpq] connection lost\nQuery was: COPY (x)"))
    assert plain.diag.message_primary == "IO: [libpq] connection lost"


def test_connect_error_names_the_server_never_the_password(monkeypatch) -> None:
    import adbc_driver_postgresql.dbapi as adbc

    def refuse(conninfo: str) -> None:
        assert "password='hunter2'" in conninfo
        raise RuntimeError("IO: [libpq] Failed to connect: bad password hunter2")

    monkeypatch.setattr(adbc, "connect", refuse)
    info = SimpleNamespace(
        password="hunter2",
        host="db",
        port=5432,
        dbname="src",
        get_parameters=lambda: {"host": "db", "port": "5432", "dbname": "src"},
    )
    with pytest.raises(ExtractError) as err:
        columnar.connect(SimpleNamespace(info=info))
    text = str(err.value)
    assert "read-only connection to db:5432/src" in text
    assert "hunter2" not in text and "***" in text
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_a_database_error_while_fetching_is_wrapped_without_its_values(tmp_path: Path) -> None:
    class FetchFails(FakeConnection):
        def cursor(self, name: str | None = None) -> FakeCursor:
            cursor = super().cursor(name)

            def fetchmany(size: int) -> list[tuple]:
                raise FakeDbError('invalid input syntax for type integer: "SECRET"', FakeDiag())

            cursor.fetchmany = fetchmany  # type: ignore[method-assign]
            return cursor

    conn = FetchFails(USER_COLUMNS, USER_ROWS)
    with pytest.raises(ExtractError) as err:
        stream_query_to_parquet(conn, SQL, tmp_path / "r.parquet", sql_name="q.sql")
    assert "SECRET" not in str(err.value) and "values withheld" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert list(tmp_path.iterdir()) == [] and conn.rollbacks == 1


def test_the_file_appears_under_its_name_only_when_complete(tmp_path: Path) -> None:
    """While rows stream, only the ``.partial`` file exists; a reader never sees half."""
    out = tmp_path / "real.parquet"
    seen: list[tuple[bool, bool]] = []

    class Watched(FakeConnection):
        def cursor(self, name: str | None = None) -> FakeCursor:
            cursor = super().cursor(name)
            fetch = cursor.fetchmany

            def fetchmany(size: int) -> list[tuple]:
                seen.append((out.exists(), out.with_name("real.parquet.partial").exists()))
                return fetch(size)

            cursor.fetchmany = fetchmany  # type: ignore[method-assign]
            return cursor

    stream_query_to_parquet(Watched(USER_COLUMNS, USER_ROWS), SQL, out, batch_rows=3)
    assert len(seen) == 4
    assert all(not final for final, _ in seen)  # never under its final name mid-stream
    assert all(partial for _, partial in seen[1:])  # written beside it
    assert out.is_file() and not out.with_name("real.parquet.partial").exists()
