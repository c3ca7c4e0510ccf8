"""Extract logic without a database (core.extract.stream, sql.error_line, run_extract).

A fake DB-API connection stands in for psycopg: it hands out a named cursor whose
``description`` carries PostgreSQL type OIDs and whose rows come in ``fetchmany`` batches.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_synth.core.contract import parse_contract
from airflow_synth.core.errors import ContractError, EmptyExtractError, ExtractError
from airflow_synth.core.extract.sql import error_line, sql_hash
from airflow_synth.core.extract.stream import (
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
        self.conn.executed.append((sql, parameters))
        if self.conn.execute_error is not None:
            raise self.conn.execute_error
        self.description = list(self.conn.columns)
        self._rows = list(self.conn.rows)

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
        (1186, pa.string()),  # interval
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
    assert conn.cursor_names == ["airflow_synth_extract"]  # server-side cursor
    assert conn.cursors[0].itersize == 3
    assert conn.executed == [(SQL, {"min_id": 0})]  # bound by the driver, not formatted
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
    assert conn.executed == [("SELECT 100 % 7", None)]


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
    with pytest.raises(ConnectionError):
        stream_query_to_parquet(conn, SQL, out, batch_rows=3)
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
    assert conn.executed == [("SELECT x", [1])]
