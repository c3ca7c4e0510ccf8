"""The PostgreSQL type treatment table (core.extract.pg_types) and where its decisions go.

Without a database: the table itself, the decision over a query's columns (one error for
every refused column, contracts that accept JSON), the describe step against a fake
DB-API connection (no row fetched), the decision carried in the staged file to the roles
step, and durations and times through the row path and the training frame.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_synth.core.contract import LOGICAL_TYPES, logical_type, parse_contract
from airflow_synth.core.errors import ExtractError
from airflow_synth.core.extract import pg_types, session, stream
from airflow_synth.core.extract.columnar import select_with_casts
from airflow_synth.core.extract.pg_types import (
    ARRAY,
    BUILTIN_OIDS,
    CATEGORY,
    COMPOSITE,
    DECLARED,
    ENUM,
    EXTENSION,
    FRESH,
    MODELLED,
    PSEUDO,
    RANGE,
    REFUSED,
    TEXT,
    TREATMENTS,
    UNLISTED,
    ColumnType,
    ColumnTypeError,
    decide,
    describe_query,
    field_metadata,
    instead_expressions,
    schema_types,
    treatment_of,
)
from airflow_synth.core.frames import conform_to_schema, to_training_frame
from airflow_synth.core.profile.roles import MODELLED as MODELLED_ROLE
from airflow_synth.core.profile.roles import PII, classify_columns
from airflow_synth.core.steps import REAL_FILE, run_extract

pytestmark = pytest.mark.unit


def col(name: str, type_name: str, **kwargs: Any) -> ColumnType:
    oid = next((o for o, n in BUILTIN_OIDS.items() if n == type_name), 99_999)
    return ColumnType(name, kwargs.pop("oid", oid), type_name, **kwargs)


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------
def test_every_listed_type_has_its_oid_and_a_complete_treatment() -> None:
    assert set(BUILTIN_OIDS.values()) == set(TREATMENTS)
    assert len(set(BUILTIN_OIDS.values())) == len(BUILTIN_OIDS)
    for name, treatment in {**TREATMENTS, "array": ARRAY, "range": RANGE}.items():
        if treatment.handling in (REFUSED, DECLARED):  # the message says what to do
            assert treatment.instead or treatment.advice, name
        if treatment.handling in (FRESH, DECLARED):  # the fresh generator's kind
            assert treatment.pii_kind, name
        for expression, _ in treatment.instead:
            assert "{col}" in expression, name


@pytest.mark.parametrize(
    ("type_name", "handling"),
    [
        ("int2", MODELLED),
        ("int8", MODELLED),
        ("numeric", MODELLED),
        ("float4", MODELLED),
        ("bool", MODELLED),
        ("date", MODELLED),
        ("timestamptz", MODELLED),
        ("time", MODELLED),
        ("timetz", MODELLED),
        ("interval", MODELLED),
        ("text", TEXT),
        ("varchar", TEXT),
        ("bpchar", TEXT),
        ("name", TEXT),
        ("char", TEXT),
        ("uuid", FRESH),
        ("inet", FRESH),
        ("cidr", FRESH),
        ("json", DECLARED),
        ("jsonb", DECLARED),
        ("macaddr", DECLARED),
        ("macaddr8", DECLARED),
        ("bytea", REFUSED),
        ("money", REFUSED),
        ("xml", REFUSED),
        ("tsvector", REFUSED),
        ("point", REFUSED),
        ("polygon", REFUSED),
        ("bit", REFUSED),
        ("oid", REFUSED),
        ("regclass", REFUSED),
        ("pg_lsn", REFUSED),
        ("xid8", REFUSED),
    ],
)
def test_builtin_treatments(type_name: str, handling: str) -> None:
    assert treatment_of(col("c", type_name)).handling == handling


def test_kinds_of_types_follow_rules() -> None:
    assert treatment_of(col("a", "_int4", category="A")) is ARRAY
    assert treatment_of(col("a", "int2vector", category="A")) is ARRAY
    assert treatment_of(col("m", "mood", typtype="e", category="E", schema="public")) is ENUM
    assert treatment_of(col("p", "pair", typtype="c", category="C", schema="public")) is COMPOSITE
    assert treatment_of(col("r", "record", typtype="p", category="P")) is COMPOSITE
    assert treatment_of(col("r", "int4range", typtype="r", category="R")) is RANGE
    assert treatment_of(col("r", "datemultirange", typtype="m", category="R")) is RANGE
    assert treatment_of(col("v", "void", typtype="p", category="P")) is PSEUDO
    assert treatment_of(col("c", "citext", schema="public")).handling == TEXT
    assert treatment_of(col("h", "hstore", schema="public")) is EXTENSION
    assert treatment_of(col("x", "some_future_type")) is UNLISTED
    assert ENUM.handling == CATEGORY


# --------------------------------------------------------------------------------------------
# deciding over a query's columns
# --------------------------------------------------------------------------------------------
MIXED = [
    col("id", "int4"),
    col("raw", "bytea"),
    col("label", "text"),
    col("doc", "jsonb"),
    col("Tags", "_text", category="A", display="text[]"),
    col("token", "uuid"),
    col("spot", "point"),
]


def test_one_error_names_every_refused_column_its_type_and_what_to_write() -> None:
    with pytest.raises(ColumnTypeError) as err:
        decide(MIXED, "sql/features/orders.sql")
    message = str(err.value)
    assert isinstance(err.value, ExtractError)
    assert message.startswith("The query in sql/features/orders.sql returns 4 column(s) ")
    assert "no row was read" in message
    lines = [line for line in message.splitlines() if line.startswith("  - ")]
    assert [line.split(":")[0] for line in lines] == [
        "  - raw (bytea)",
        "  - doc (jsonb)",
        "  - Tags (text[])",
        "  - spot (point)",
    ]
    assert "write octet_length(raw) AS raw_bytes instead" in lines[0]
    assert "doc->>'key' AS doc_key" in lines[1] and "`role: pii`" in lines[1]
    assert 'cardinality("Tags") AS "Tags_count"' in lines[2]  # odd names quoted
    assert "spot[0] AS spot_x, spot[1] AS spot_y" in lines[3]
    for accepted in ("id", "label", "token"):
        assert f"  - {accepted} (" not in message


def test_accepted_columns_are_decided_in_order_with_their_metadata() -> None:
    columns = [col("id", "int8"), col("at", "interval"), col("token", "uuid")]
    decisions = decide(columns, "q.sql")
    assert [d.handling for d in decisions] == [MODELLED, MODELLED, FRESH]
    meta = field_metadata(decisions)
    assert json.loads(meta[2][pg_types.FIELD_KEY]) == {
        "type": "uuid",
        "handling": "fresh",
        "pii_kind": "uuid",
    }
    schema = pa.schema(
        [pa.field(c.name, pa.string(), metadata=m) for c, m in zip(columns, meta, strict=True)]
    )
    assert schema_types(schema)["at"] == {"type": "interval", "handling": "modelled"}
    assert schema_types(pa.schema([("x", pa.int64())])) == {}


def contract_of(*columns: dict[str, Any], primary_key: str | None = None) -> Any:
    raw: dict[str, Any] = {"columns": list(columns)}
    if primary_key:
        raw["primary_key"] = primary_key
    return parse_contract(raw, source="sql/features/orders.contract.yaml")


@pytest.mark.parametrize(
    "spec",
    [
        {"role": "pii"},
        {"role": "pii", "pii_kind": "json"},
        {"pii": True},
        {"role": "modelled"},
        {"sdtype": "categorical"},
        {"sdtype": "id"},
    ],
)
def test_a_contract_accepts_json_with_a_declared_role(spec: dict[str, Any]) -> None:
    contract = contract_of({"name": "doc", "type": "string", **spec})
    decisions = decide([col("doc", "jsonb"), col("mac", "macaddr")][:1], "q.sql", contract)
    assert decisions[0].handling == DECLARED and decisions[0].declared in ("pii", "modelled")


def test_a_contract_does_not_accept_json_as_a_key_nor_a_refused_type() -> None:
    contract = contract_of(
        {"name": "doc", "type": "string"},
        {"name": "raw", "type": "string", "role": "pii"},
        primary_key="doc",
    )
    with pytest.raises(ColumnTypeError) as err:
        decide([col("doc", "json"), col("raw", "bytea")], "q.sql", contract)
    assert "  - doc (json): " in str(err.value) and "  - raw (bytea): " in str(err.value)


def test_an_identifier_type_cannot_be_declared_learned() -> None:
    for spec in ({"role": "modelled"}, {"sdtype": "categorical"}):
        contract = contract_of({"name": "token", "type": "string", **spec})
        with pytest.raises(ColumnTypeError) as err:
            decide([col("token", "uuid")], "q.sql", contract)
        assert "  - token (uuid): identifier" in str(err.value)
        assert "remove `role: modelled`" in str(err.value)
        assert "sql/features/orders.contract.yaml" in str(err.value)
    for spec in ({"role": "pii"}, {"role": "key"}):
        contract = contract_of({"name": "token", "type": "string", **spec})
        assert decide([col("token", "uuid")], "q.sql", contract)[0].handling == FRESH


def test_instead_expressions_quote_odd_names() -> None:
    assert instead_expressions("Raw Data", TREATMENTS["bytea"]) == [
        'octet_length("Raw Data") AS "Raw Data_bytes"'
    ]
    assert instead_expressions("price", TREATMENTS["money"]) == ["price::numeric AS price"]
    assert instead_expressions("l", TREATMENTS["line"]) == []


# --------------------------------------------------------------------------------------------
# describing a query without reading a row (a fake DB-API connection)
# --------------------------------------------------------------------------------------------
class Column(NamedTuple):
    name: str
    type_code: int


class FakeCursor:
    def __init__(self, conn: FakeConnection, name: str | None) -> None:
        self.conn, self.name = conn, name
        self.description: list[Column] | None = None
        self.itersize = 0
        self._rows: list[tuple] = []
        self._result: list[tuple] = []

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, sql: str, parameters: Any = None) -> None:
        if sql == session.TIMEOUTS:  # the guard's second statement: the timeouts chosen
            self.conn.guards.append(parameters)
            self._result = [("statement_timeout", "1h", 3_600_000)]
            return
        self.conn.executed.append((self.name, sql, parameters))
        self.query = sql.encode()  # what psycopg 2 says it sent
        if sql.startswith("DECLARE") and self.conn.declare_error is not None:
            raise self.conn.declare_error
        if sql.startswith("SELECT t.oid::int8"):
            wanted = {int(o) for o in parameters[0].strip("{}").split(",")}
            self._result = [r for r in self.conn.catalog if r[0] in wanted]
            return
        self.description = list(self.conn.columns)
        self._rows = list(self.conn.rows)

    def fetchall(self) -> list[tuple]:
        return self._result

    def fetchmany(self, size: int) -> list[tuple]:
        self.conn.fetched += 1
        batch, self._rows = self._rows[:size], self._rows[size:]
        return batch


class FakeConnection:
    """A psycopg 2 style connection: DECLARE/FETCH describe, a named cursor streams rows."""

    def __init__(self, columns: list[Column], rows: list[tuple] = (), catalog=()) -> None:
        self.columns, self.rows, self.catalog = columns, list(rows), list(catalog)
        self.executed: list[tuple[str | None, str, Any]] = []
        self.guards: list[Any] = []  # the timeouts statement's parameters
        self.rollbacks = 0
        self.fetched = 0
        self.declare_error: Exception | None = None

    def cursor(self, name: str | None = None) -> FakeCursor:
        return FakeCursor(self, name)

    def rollback(self) -> None:
        self.rollbacks += 1


#: The guard's defaults as bound to its timeouts statement: 1 h per statement, 10 min idle.
DEFAULT_MS = {"statement": 3_600_000, "idle": 600_000}


#: pg_type rows as the lookup returns them: oid, typname, typtype, category, schema,
#: display, base type (domains)
CATALOG = [
    (16_400, "mood", "e", "E", "public", "mood", 0),
    (16_401, "_text", "b", "A", "pg_catalog", "text[]", 0),
    (16_402, "money_domain", "d", "N", "public", "money_domain", 16_403),
    (16_403, "inner_domain", "d", "N", "public", "inner_domain", 790),
    (16_404, "citext", "b", "S", "public", "citext", 0),
]


def test_describe_declares_fetches_nothing_and_looks_up_unknown_types() -> None:
    conn = FakeConnection(
        [Column("id", 23), Column("m", 16_400), Column("tags", 16_401), Column("d", 16_402)],
        rows=[(1, "ok", "{a}", "1.00")],
        catalog=CATALOG,
    )
    columns = describe_query(conn, "SELECT * FROM t WHERE x > %(x)s", {"x": 1}, "t.sql")
    statements = [sql for _, sql, _ in conn.executed]
    assert statements[0] == stream.READ_ONLY  # then the timeouts, in the same transaction
    assert conn.guards == [{"explicit": list(session.EXPLICIT_SOURCES), **DEFAULT_MS}]
    assert (
        statements[1]
        == 'DECLARE "airflow_synth_describe" CURSOR FOR SELECT * FROM t WHERE x > %(x)s'
    )
    assert conn.executed[1][2] == {"x": 1}
    assert statements[2] == 'FETCH FORWARD 0 FROM "airflow_synth_describe"'
    assert statements[3].startswith("SELECT t.oid::int8")
    assert conn.fetched == 0 and conn.rollbacks == 1
    assert [(c.name, c.label, c.typtype) for c in columns] == [
        ("id", "int4", "b"),
        ("m", "mood", "e"),
        ("tags", "text[]", "b"),
        ("d", "money", "b"),  # a domain over a domain over money: money
    ]
    assert [treatment_of(c).handling for c in columns] == [MODELLED, CATEGORY, REFUSED, REFUSED]


def test_describe_of_builtin_types_needs_no_lookup() -> None:
    conn = FakeConnection([Column("id", 20), Column("at", 1186)])
    describe_query(conn, "SELECT 1", None, "q.sql")
    assert len(conn.executed) == 3 and conn.executed[1][2] is None


class FakeDiag:
    message_primary = 'column "agee" does not exist'
    statement_position = "63"  # in the DECLARE it received (44 characters before SELECT)
    message_hint = None


class FakeDbError(Exception):
    diag = FakeDiag()


def test_describe_errors_name_the_line_of_the_sql_file_and_roll_back() -> None:
    conn = FakeConnection([Column("id", 20)])
    conn.declare_error = FakeDbError('column "agee" does not exist')
    sql = "SELECT id,\n       agee\nFROM users"
    with pytest.raises(ExtractError) as err:
        describe_query(conn, sql, None, "features/users.sql")
    assert 'features/users.sql failed in the database: column "agee" does not exist' in str(
        err.value
    )
    assert "at line 2, column 8: agee (of the rendered SQL)" in str(err.value)
    assert conn.rollbacks == 1


def test_run_extract_refuses_before_the_rows_are_opened(tmp_path: Path) -> None:
    conn = FakeConnection([Column("id", 20), Column("raw", 17)], rows=[(1, b"\x00")])
    with pytest.raises(ColumnTypeError, match=r"  - raw \(bytea\): "):
        run_extract(conn, "SELECT id, raw FROM t", tmp_path, sql_name="t.sql")
    assert [name for name, *_ in conn.executed if name] == []  # no named (streaming) cursor
    assert conn.fetched == 0 and list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# the row path (psycopg 2), the ADBC casts, the contract's logical types
# --------------------------------------------------------------------------------------------
UTC_PLUS_2 = dt.timezone(dt.timedelta(hours=2))


def test_row_path_writes_durations_times_and_utc_times_with_the_decisions(tmp_path) -> None:
    columns = [Column("span", 1186), Column("at", 1083), Column("at_tz", 1266), Column("u", 2950)]
    rows = [
        (
            dt.timedelta(days=428, microseconds=7),
            dt.time(12, 30),
            dt.time(1, 0, tzinfo=UTC_PLUS_2),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ),
        (None, None, None, None),
    ]
    conn = FakeConnection(columns, rows)
    result = run_extract(conn, "SELECT 1", tmp_path, sql_name="q.sql")
    assert result["columns"] == [
        ["span", "duration"],
        ["at", "time"],
        ["at_tz", "time"],
        ["u", "string"],
    ]
    table = pq.read_table(tmp_path / REAL_FILE)
    assert table.schema.field("span").type == pa.duration("us")
    assert table.to_pylist()[0] == {
        "span": dt.timedelta(days=428, microseconds=7),
        "at": dt.time(12, 30),
        "at_tz": dt.time(23, 0),  # 01:00+02 is 23:00 UTC
        "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    }
    assert schema_types(table.schema)["u"]["handling"] == FRESH
    assert schema_types(table.schema)["span"]["handling"] == MODELLED


def test_adbc_casts_intervals_to_microseconds_and_times_to_utc() -> None:
    sql = select_with_casts("SELECT * FROM t", [1186, 1266, 869, 1083])
    assert sql.splitlines()[0] == (
        "SELECT ((extract(epoch FROM c1) - extract(year FROM c1) * 21600) * 1000000)::int8, "
        "(c2 AT TIME ZONE 'UTC')::time, format('%s', c3), c4 FROM ("
    )


def test_contracts_know_times_and_durations() -> None:
    assert {"time", "duration"} <= set(LOGICAL_TYPES)
    assert logical_type(pa.duration("us")) == "duration"
    assert logical_type(pa.time64("us")) == "time"
    contract = parse_contract({"columns": [{"name": "span", "type": "duration"}]})
    assert contract.columns[0].type == "duration"


# --------------------------------------------------------------------------------------------
# the decision in the staged file: the training frame and the roles
# --------------------------------------------------------------------------------------------
def staged_table(n: int = 60) -> pa.Table:
    rng = np.random.default_rng(1)
    decisions = decide(
        [
            col("batch", "uuid"),
            col("contact", "mood", typtype="e", schema="public"),
            col("span", "interval"),
            col("at", "time"),
            col("note", "text"),
        ],
        "q.sql",
    )
    meta = field_metadata(decisions)
    schema = pa.schema(
        [
            pa.field("batch", pa.string(), metadata=meta[0]),
            pa.field("contact", pa.string(), metadata=meta[1]),
            pa.field("span", pa.duration("us"), metadata=meta[2]),
            pa.field("at", pa.time64("us"), metadata=meta[3]),
            pa.field("note", pa.string(), metadata=meta[4]),
        ]
    )
    return pa.table(
        {
            # few distinct values: content detection alone would learn it as a category
            "batch": [f"k{i % 3}" for i in range(n)],
            # a name that detection takes for a person's name
            "contact": rng.choice(["email", "phone", "letter"], n).tolist(),
            "span": [dt.timedelta(seconds=int(s)) for s in rng.integers(-3600, 86_400 * 40, n)],
            "at": [dt.time(int(h), int(m)) for h, m in rng.integers(0, [24, 60], (n, 2))],
            "note": rng.choice(["a", "b"], n).tolist(),
        },
        schema=schema,
    )


def test_the_roles_step_follows_the_type_decisions() -> None:
    frame = to_training_frame(staged_table())
    roles = {r.name: r for r in classify_columns(frame)}
    assert (roles["batch"].role, roles["batch"].kind) == (PII, "uuid")
    assert roles["batch"].reason == "PostgreSQL type uuid"
    assert (roles["contact"].role, roles["contact"].kind) == (MODELLED_ROLE, "categorical")
    assert roles["span"].role == roles["at"].role == roles["note"].role == MODELLED_ROLE
    # without the decisions, the name and the content decide (as for a DataFrame)
    plain = classify_columns(frame.set_axis(frame.columns, axis=1).copy().pipe(_no_attrs))
    assert {r.name: r.role for r in plain}["batch"] == MODELLED_ROLE
    assert {r.name: r.role for r in plain}["contact"] == PII


def _no_attrs(frame: pd.DataFrame) -> pd.DataFrame:
    frame.attrs.clear()
    return frame


def test_a_declared_role_and_the_key_win_over_the_type() -> None:
    frame = to_training_frame(staged_table())
    contract = parse_contract(
        {
            "columns": [
                {"name": "batch", "type": "string", "role": "pii", "pii_kind": "identifier"},
                {"name": "contact", "type": "string", "role": "pii"},
            ]
        }
    )
    roles = {r.name: r for r in classify_columns(frame, contract=contract)}
    assert roles["batch"].kind == "identifier" and roles["contact"].role == PII
    keyed = {r.name: r for r in classify_columns(frame, primary_key=["batch"])}
    assert keyed["batch"].role == "key"


def test_durations_and_times_are_learned_as_seconds_and_written_back(tmp_path) -> None:
    table = staged_table()
    frame = to_training_frame(table)
    assert frame["span"].dtype == frame["at"].dtype == np.float64
    assert frame["span"].iloc[0] == table.column("span")[0].as_py().total_seconds()
    at = table.column("at")[0].as_py()
    assert frame["at"].iloc[0] == at.hour * 3600 + at.minute * 60
    assert conform_to_schema(frame, table.schema).equals(table)
    # sampled values: off the microsecond grid, a time a hair outside the day, NULLs
    sampled = pd.DataFrame(
        {
            "batch": ["x", None],
            "contact": ["email", "phone"],
            "span": [1.0000004, np.nan],
            "at": [-0.5, 86_400.2],
            "note": ["a", "b"],
        }
    )
    back = conform_to_schema(sampled, table.schema).to_pylist()
    assert back[0]["span"] == dt.timedelta(seconds=1) and back[1]["span"] is None
    assert back[0]["at"] == dt.time(0, 0) and back[1]["at"] == dt.time(23, 59, 59, 999_999)
    # a user's DataFrame with timedeltas conforms too
    user = sampled.assign(span=pd.to_timedelta([90, 30], unit="s"))
    assert conform_to_schema(user, table.schema).column("span").to_pylist()[1] == dt.timedelta(
        seconds=30
    )
