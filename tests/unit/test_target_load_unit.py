"""Pure parts of the target loader: type mapping, load order, validation, CSV rendering.

No database: every check here must fire before the loader touches one. The last test proves
that with a connection object that fails on any use.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_synth.core.errors import SynthError
from airflow_synth.core.target.postgres import (
    TargetColumn,
    TargetForeignKey,
    TargetLoadError,
    TargetLoadResult,
    TargetTable,
    _csv_chunks,
    _fit_name,
    _unique_name,
    advisory_lock_key,
    load_order,
    load_tables_into_postgres,
    plan_load,
    postgres_type_for,
    validate_pg_type,
)

pytestmark = pytest.mark.unit


# --------------------------------------------------------------------------------------------
# postgres_type_for
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arrow_type", "expected"),
    [
        (pa.bool_(), "boolean"),
        (pa.int8(), "smallint"),
        (pa.uint8(), "smallint"),
        (pa.int16(), "smallint"),
        (pa.uint16(), "integer"),
        (pa.int32(), "integer"),
        (pa.uint32(), "bigint"),
        (pa.int64(), "bigint"),
        (pa.uint64(), "numeric(20,0)"),
        (pa.float16(), "real"),
        (pa.float32(), "real"),
        (pa.float64(), "double precision"),
        (pa.decimal128(12, 2), "numeric(12,2)"),
        (pa.string(), "text"),
        (pa.large_string(), "text"),
        (pa.dictionary(pa.int32(), pa.string()), "text"),
        (pa.null(), "text"),
        (pa.binary(), "bytea"),
        (pa.date32(), "date"),
        (pa.date64(), "date"),
        (pa.timestamp("ns"), "timestamp without time zone"),
        (pa.timestamp("us", tz="UTC"), "timestamp with time zone"),
        (pa.timestamp("ms", tz="Europe/Paris"), "timestamp with time zone"),
        (pa.time64("us"), "time without time zone"),
        (pa.duration("ms"), "interval"),
    ],
)
def test_postgres_type_for_maps_arrow_types_without_loss(
    arrow_type: pa.DataType, expected: str
) -> None:
    assert postgres_type_for(arrow_type) == expected


@pytest.mark.parametrize(
    "arrow_type",
    [pa.list_(pa.int32()), pa.struct([("a", pa.int32())]), pa.map_(pa.string(), pa.int8())],
)
def test_postgres_type_for_refuses_nested_types(arrow_type: pa.DataType) -> None:
    with pytest.raises(TargetLoadError, match="cast the column"):
        postgres_type_for(arrow_type)


# --------------------------------------------------------------------------------------------
# load_order
# --------------------------------------------------------------------------------------------
def _fk(child: str, parent: str) -> TargetForeignKey:
    return TargetForeignKey(child, (f"{parent}_id",), parent, ("id",))


def test_load_order_puts_parents_first_for_a_chain_given_backwards() -> None:
    fks = [_fk("bookings", "sessions"), _fk("sessions", "users")]
    assert load_order(["bookings", "sessions", "users"], fks) == ["users", "sessions", "bookings"]


def test_load_order_keeps_the_given_order_where_free() -> None:
    fks = [_fk("sessions", "users")]
    assert load_order(["b", "sessions", "a", "users"], fks) == ["b", "a", "users", "sessions"]


def test_load_order_diamond_and_self_reference() -> None:
    fks = [
        _fk("orders", "users"),
        _fk("orders", "shops"),
        _fk("items", "orders"),
        TargetForeignKey("users", ("manager_id",), "users", ("id",)),  # hierarchy: allowed
    ]
    order = load_order(["items", "orders", "users", "shops"], fks)
    assert order == ["users", "shops", "orders", "items"]


def test_load_order_names_the_tables_of_a_cycle() -> None:
    fks = [_fk("a", "b"), _fk("b", "c"), _fk("c", "a"), _fk("d", "a")]
    with pytest.raises(TargetLoadError, match="cycle") as err:
        load_order(["d", "a", "b", "c"], fks)
    message = str(err.value)
    assert "a -> b -> c -> a" in message
    assert "d ->" not in message  # d only hangs off the cycle


def test_load_order_refuses_an_unknown_table_and_duplicates() -> None:
    with pytest.raises(TargetLoadError, match="'ghosts', which is not in the set"):
        load_order(["users"], [_fk("ghosts", "users")])
    with pytest.raises(TargetLoadError, match="twice"):
        load_order(["users", "users"], [])


# --------------------------------------------------------------------------------------------
# plan_load validation (before any database work)
# --------------------------------------------------------------------------------------------
@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    users = tmp_path / "users.parquet"
    sessions = tmp_path / "sessions.parquet"
    pq.write_table(pa.table({"id": [1, 2], "name": ["a", "b"]}), users)
    pq.write_table(
        pa.table({"session_id": [1, 2], "user_id": [1, 2], "device": ["x", "y"]}), sessions
    )
    return {"users": users, "sessions": sessions}


def _set(files: dict[str, Path]) -> tuple[list[TargetTable], list[TargetForeignKey]]:
    tables = [
        TargetTable("sessions", files["sessions"], ("session_id",)),
        TargetTable("users", files["users"], ("id",)),
    ]
    return tables, [TargetForeignKey("sessions", ("user_id",), "users", ("id",))]


def test_plan_orders_and_types_columns(files: dict[str, Path]) -> None:
    tables, fks = _set(files)
    tables[1] = TargetTable(
        "users", files["users"], ("id",), (TargetColumn("name", "varchar(40)"), TargetColumn("id"))
    )
    plan = plan_load("staging", tables, fks, {"run_id": "r1"})
    assert plan.order == ["users", "sessions"]
    users = plan.tables[0]
    assert users.columns == ("name", "id")  # the declared order, not the file's
    assert users.pg_types == ("varchar(40)", "bigint")
    assert users.num_rows == 2
    assert plan.tables[1].columns == ("session_id", "user_id", "device")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda t, f: (t, [TargetForeignKey("sessions", ("user_id",), "people", ("id",))]),
            "'people', which is not in the set",
        ),
        (
            lambda t, f: (t, [TargetForeignKey("sessions", ("uid",), "users", ("id",))]),
            r"columns \['uid'\] are not columns of table 'sessions'",
        ),
        (
            lambda t, f: (t, [TargetForeignKey("sessions", ("user_id",), "users", ("name",))]),
            "must be the parent's primary key",
        ),
        (
            lambda t, f: (
                t,
                [TargetForeignKey("sessions", ("user_id", "device"), "users", ("id",))],
            ),
            "same, non-zero number",
        ),
        (
            lambda t, f: ([t[0], TargetTable("users", t[1].path, ("user_key",))], f),
            "primary-key column 'user_key' is not in",
        ),
        (
            lambda t, f: (
                [t[0], TargetTable("users", t[1].path, ("id",), (TargetColumn("name"),))],
                f,
            ),
            "primary-key column 'id' is left out",
        ),
        (
            lambda t, f: (
                [
                    t[0],
                    TargetTable(
                        "users", t[1].path, ("id",), (TargetColumn("id"), TargetColumn("email"))
                    ),
                ],
                f,
            ),
            r"columns \['email'\] are not in",
        ),
        (lambda t, f: ([t[0], TargetTable("", t[1].path)], []), "non-empty string"),
        (lambda t, f: ([t[0], TargetTable("x" * 64, t[1].path)], []), "63-byte"),
        (lambda t, f: ([t[0], TargetTable("_synth_loads", t[1].path)], []), "reserves"),
        (lambda t, f: ([t[0], TargetTable("sessions", t[1].path)], []), "appears twice"),
        (
            lambda t, f: ([t[0], TargetTable("users", t[1].path.with_name("nope.parquet"))], []),
            "does not exist",
        ),
        (
            lambda t, f: (
                [
                    t[0],
                    TargetTable(
                        "users", t[1].path, ("id",), (TargetColumn("id", "int; DROP TABLE x"),)
                    ),
                ],
                f,
            ),
            "not a PostgreSQL type name",
        ),
        (
            lambda t, f: (
                [
                    t[0],
                    TargetTable(
                        "users", t[1].path, ("id",), (TargetColumn("id"), TargetColumn("id"))
                    ),
                ],
                f,
            ),
            "columns appear twice",
        ),
        (
            lambda t, f: (t, [*f, TargetForeignKey("users", ("id",), "sessions", ("session_id",))]),
            "cycle",
        ),
    ],
)
def test_plan_refuses_bad_input_with_a_clear_message(files, mutate, message) -> None:  # noqa: ANN001
    tables, fks = mutate(*_set(files))
    with pytest.raises(TargetLoadError, match=message):
        plan_load("staging", tables, fks)


@pytest.mark.parametrize("schema", ["", "pg_catalog", "pg_temp", "information_schema", "s" * 64])
def test_plan_refuses_bad_schema_names(files: dict[str, Path], schema: str) -> None:
    with pytest.raises(TargetLoadError):
        plan_load(schema, *_set(files))


def test_plan_refuses_an_unserialisable_source_and_an_empty_set(files: dict[str, Path]) -> None:
    with pytest.raises(TargetLoadError, match="JSON"):
        plan_load("staging", *_set(files), source={"when": dt.datetime(2026, 1, 1)})
    with pytest.raises(TargetLoadError, match="no tables"):
        plan_load("staging", [], [])


def test_plan_refuses_nested_parquet_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": [1], "tags": [["a", "b"]]}), path)
    with pytest.raises(TargetLoadError, match="column 'tags'"):
        plan_load("staging", [TargetTable("t", path, ("id",))])
    # ... but the column can be left out
    plan = plan_load("staging", [TargetTable("t", path, ("id",), (TargetColumn("id"),))])
    assert plan.tables[0].columns == ("id",)


def test_validation_happens_before_the_connection_is_used(files: dict[str, Path]) -> None:
    class Untouchable:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"the loader used the connection ({name}) before validating")

    tables, _ = _set(files)
    bad_fk = [TargetForeignKey("sessions", ("user_id",), "users", ("nope",))]
    with pytest.raises(TargetLoadError) as err:
        load_tables_into_postgres(Untouchable(), "staging", tables, bad_fk)  # type: ignore[arg-type]
    assert isinstance(err.value, SynthError)


# --------------------------------------------------------------------------------------------
# CSV rendering for COPY
# --------------------------------------------------------------------------------------------
def test_csv_keeps_null_apart_from_empty_text_and_quotes_awkward_text(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    nasty = ["", None, "tab\there", "line\nbreak\r\n", 'q"uote', "back\\slash", "\\.", "ünï 😀"]
    pq.write_table(pa.table({"s": nasty, "n": list(range(len(nasty)))}), path)
    plan = plan_load("staging", [TargetTable("t", path)])
    text = b"".join(_csv_chunks(plan.tables[0], batch_rows=3)).decode()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert [r[0] for r in rows] == ["" if v is None else v for v in nasty]
    # NULL is an unquoted empty field, the empty string a quoted one (what COPY csv expects)
    assert text.splitlines()[0] == '"",0'
    assert text.splitlines()[1] == ",1"


def test_csv_renders_bytea_interval_and_time_zones(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(
        pa.table(
            {
                "b": pa.array([b"\x00\xff", None]),
                "d": pa.array([dt.timedelta(seconds=1, microseconds=5), None], pa.duration("us")),
                "tz": pa.array(
                    [dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC), None],
                    pa.timestamp("us", tz="Asia/Kolkata"),
                ),
                "dec": pa.array([Decimal("12.50"), None], pa.decimal128(6, 2)),
            }
        ),
        path,
    )
    plan = plan_load("staging", [TargetTable("t", path)])
    rows = list(csv.reader(io.StringIO(b"".join(_csv_chunks(plan.tables[0], 10)).decode())))
    assert rows[0][:2] == ["\\x00ff", "1000005 microseconds"]
    assert rows[0][2] == "2026-01-01 17:30:00.000000+0530"  # same instant, explicit offset
    assert rows[0][3] == "12.50"
    assert rows[1] == ["", "", "", ""]


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------
def test_advisory_lock_key_is_stable_signed_64_bit_and_per_schema() -> None:
    key = advisory_lock_key("staging")
    assert key == advisory_lock_key("staging")
    assert key != advisory_lock_key("staging2")
    assert -(2**63) <= key < 2**63


def test_fit_name_stays_within_63_bytes_on_a_character_boundary() -> None:
    assert _fit_name("users", "pkey") == "users_pkey"
    name = _fit_name("é" * 40, "pkey")
    assert len(name.encode()) <= 63
    assert name.endswith("_pkey")
    name.encode().decode("utf-8")  # still valid UTF-8


def test_result_to_xcom_is_plain_data() -> None:
    result = TargetLoadResult(
        "staging", {"users": 2, "sessions": 5}, ["users", "sessions"], [], 1.23456
    )
    assert result.to_xcom() == {
        "schema": "staging",
        "tables": {"users": 2, "sessions": 5},
        "load_order": ["users", "sessions"],
        "replaced": [],
        "rows": 7,
        "seconds": 1.235,
    }


@pytest.mark.parametrize(
    "pg_type",
    [
        "text",
        "varchar(40)",
        "numeric(12, 2)",
        "double precision",
        "character varying(10)",
        "timestamp with time zone",
        "timestamp(3) without time zone",
        "public.citext",
        "int[]",
    ],
)
def test_pg_type_accepts_real_type_names(pg_type: str) -> None:
    assert validate_pg_type(pg_type, "here") == pg_type


@pytest.mark.parametrize(
    "pg_type",
    [
        "int; DROP TABLE users",
        "text primary key",
        "int references users(1)",
        "text default 'x'",
        'text" , "y',
        "int -- comment",
        "",
    ],
)
def test_pg_type_refuses_anything_that_could_add_sql(pg_type: str) -> None:
    with pytest.raises(TargetLoadError, match="not a PostgreSQL type name"):
        validate_pg_type(pg_type, "here")


def test_unique_name_numbers_colliding_constraint_names() -> None:
    used: set[str] = set()
    assert _unique_name("t_a_b_fkey", used) == "t_a_b_fkey"
    assert _unique_name("t_a_b_fkey", used) == "t_a_b_fkey2"
    assert _unique_name("t_a_b_fkey", used) == "t_a_b_fkey3"
