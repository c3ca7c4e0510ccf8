"""Every PostgreSQL type a feature query can return, against the session's real PostgreSQL.

A table with one column of every type of the server's own catalogue (``pg_type``: base
types, their arrays, ranges and multiranges) plus an enum, a composite, domains and
extension types is extracted: every type is either accepted with its documented treatment
or refused, before any row is read, in one message naming each refused column, its type
and what to write instead (and those suggestions run). Accepted types are extracted,
synthesized and loaded back: an interval comes back as a duration, times as times, and no
published value of a column issued fresh (uuid, inet, cidr, declared JSON and MAC
addresses) equals a real one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_synth.core.assess.checks import CheckSettings
from airflow_synth.core.contract import parse_contract
from airflow_synth.core.engine.synthesizers import resolve_synthesizer
from airflow_synth.core.extract import columnar, pg_types
from airflow_synth.core.extract.pg_types import ColumnTypeError
from airflow_synth.core.extract.stream import stream_query_to_parquet
from airflow_synth.core.steps import REAL_FILE, run_extract, run_synthesize
from airflow_synth.core.target.postgres import TargetTable, load_tables_into_postgres
from airflow_synth.local import LocalStack

pytestmark = pytest.mark.integration

DATABASE = "pg_types_it"
SESSION_TZ = "America/Los_Angeles"

#: The built-in types a feature query may return as they are (everything else of
#: pg_catalog is refused without a contract): spelled out here, not taken from the module.
ACCEPTED = {
    "bool": pg_types.MODELLED,
    "int2": pg_types.MODELLED,
    "int4": pg_types.MODELLED,
    "int8": pg_types.MODELLED,
    "float4": pg_types.MODELLED,
    "float8": pg_types.MODELLED,
    "numeric": pg_types.MODELLED,
    "date": pg_types.MODELLED,
    "time": pg_types.MODELLED,
    "timetz": pg_types.MODELLED,
    "timestamp": pg_types.MODELLED,
    "timestamptz": pg_types.MODELLED,
    "interval": pg_types.MODELLED,
    "text": pg_types.TEXT,
    "varchar": pg_types.TEXT,
    "bpchar": pg_types.TEXT,
    "name": pg_types.TEXT,
    "char": pg_types.TEXT,
    "uuid": pg_types.FRESH,
    "inet": pg_types.FRESH,
    "cidr": pg_types.FRESH,
}
#: Refused unless the contract declares them ``role: pii`` (or ``role: modelled``).
DECLARABLE = {"json", "jsonb", "macaddr", "macaddr8"}
#: Columns of types made in the test database: name -> (type, its name in messages,
#: accepted handling or None); a domain is described as its base type.
EXTRA = {
    "x_enum": ("mood", "mood", pg_types.CATEGORY),
    "x_enum_array": ("mood[]", "mood[]", None),
    "x_composite": ("pair", "pair", None),
    "x_domain_int": ("positive", "int4", pg_types.MODELLED),
    "x_domain_jsonb": ("document", "jsonb", None),
    "x_user_range": ("floatrange", "floatrange", None),
}
EXTENSION_COLUMNS = {
    "x_citext": ("citext", "citext", pg_types.TEXT),
    "x_hstore": ("hstore", "hstore", None),
}
#: Literals for the refused types whose suggested replacement is run on real values.
SAMPLE_VALUES = {
    "bytea": "'\\xdeadbeef'",
    "json": '\'{"key": "a"}\'',
    "jsonb": '\'{"key": "a"}\'',
    "xml": "'<a>text</a>'",
    "jsonpath": "'$.a'",
    "tsvector": "'a fat cat'",
    "tsquery": "'fat & cat'",
    "bit": "B'1'",
    "varbit": "B'101'",
    "point": "'(1,2)'",
    "lseg": "'[(0,0),(3,4)]'",
    "box": "'(0,0),(2,2)'",
    "path": "'[(0,0),(3,4)]'",
    "polygon": "'((0,0),(0,2),(2,2))'",
    "circle": "'<(1,1),2>'",
    "money": "'12.34'",
    "macaddr": "'08:00:2b:01:02:03'",
    "macaddr8": "'08:00:2b:01:02:03:04:05'",
    "oid": "42",
    "regclass": "'pg_class'",
    "regtype": "'int4'",
    "int4range": "'[1,5)'",
    "tstzrange": "'[2024-01-01,2024-02-01)'",
    "nummultirange": "'{[1,2]}'",
    "_int4": "'{1,2,3}'",
    "_text": "'{a,b}'",
}


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dsn(local_stack: LocalStack) -> Iterator[str]:
    pg = local_stack.pg
    pg.drop_database(DATABASE)
    pg.create_database(DATABASE)
    url = pg.dsn(DATABASE)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
        conn.execute("CREATE TYPE pair AS (a integer, b text)")
        conn.execute("CREATE DOMAIN positive AS integer CHECK (VALUE > 0)")
        conn.execute("CREATE DOMAIN document AS jsonb")
        conn.execute("CREATE TYPE floatrange AS RANGE (subtype = float8)")
        for extension in ("citext", "hstore"):
            # contrib not installed: the other columns still count
            with contextlib.suppress(psycopg.Error):
                conn.execute(f"CREATE EXTENSION IF NOT EXISTS {extension}")
    yield url
    pg.drop_database(DATABASE)


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, options=f"-c TimeZone={SESSION_TZ}") as connection:
        yield connection


def catalogue(dsn: str) -> list[tuple[int, str, str, str, str]]:
    """Every type of pg_catalog that a table column can have: base types, arrays of base
    types and ranges, ranges and multiranges (oid, name, typtype, category, format)."""
    with psycopg.connect(dsn) as other:
        return other.execute(
            """
            SELECT t.oid::int8, t.typname, t.typtype, t.typcategory, format_type(t.oid, NULL)
            FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
            WHERE t.typnamespace = 'pg_catalog'::regnamespace
              AND t.typtype IN ('b', 'e', 'r', 'm')
              AND (e.oid IS NULL OR e.typtype IN ('b', 'e', 'r', 'm'))
              AND coalesce(e.typname, '') <> 'cstring'
            ORDER BY t.oid
            """
        ).fetchall()


def column_of(typname: str) -> str:
    return "t_" + typname


@pytest.fixture(scope="module")
def every_type(dsn: str) -> dict[str, tuple[str, str, str | None]]:
    """The table ``every_type``: one column per type, a row of NULLs and a row of samples.

    Returns {column: (type as written, its name in messages, accepted handling or None)}.
    """
    columns: dict[str, tuple[str, str, str | None]] = {}
    for _, typname, _, _, written in catalogue(dsn):
        label = typname[1:] + "[]" if typname.startswith("_") else typname
        columns[column_of(typname)] = (written, label, ACCEPTED.get(typname))
    with psycopg.connect(dsn, autocommit=True) as conn:
        present = {r[0] for r in conn.execute("SELECT extname FROM pg_extension").fetchall()}
        extras = dict(EXTRA)
        extras.update({c: spec for c, spec in EXTENSION_COLUMNS.items() if spec[0] in present})
        columns.update(extras)
        body = ", ".join(f"{name} {written}" for name, (written, *_) in columns.items())
        conn.execute(f"CREATE TABLE every_type (id integer PRIMARY KEY, {body})")
        conn.execute("INSERT INTO every_type (id) VALUES (1)")
        samples = {column_of(t): v for t, v in SAMPLE_VALUES.items() if column_of(t) in columns}
        conn.execute(
            f"INSERT INTO every_type (id, {', '.join(samples)}) "
            f"VALUES (2, {', '.join(samples.values())})"
        )
    return columns


def refused_lines(message: str) -> dict[str, str]:
    """{column: its line} of a ColumnTypeError's list."""
    return {
        m.group(1): m.group(0)
        for m in re.finditer(r"^  - (\S+) \((.+?)\): .*$", message, flags=re.MULTILINE)
    }


# --------------------------------------------------------------------------------------------
# the treatment table against the server's catalogue
# --------------------------------------------------------------------------------------------
def test_every_builtin_type_has_a_listed_treatment_and_its_fixed_oid(dsn: str) -> None:
    """A base type of this server that the table does not list fails here (add it)."""
    base = [row for row in catalogue(dsn) if row[2] == "b" and row[3] != "A"]
    assert len(base) >= 60
    missing = sorted(name for _, name, *_ in base if name not in pg_types.TREATMENTS)
    assert missing == []
    server = {oid: name for oid, name, *_ in base}
    assert {oid: server.get(oid) for oid in pg_types.BUILTIN_OIDS} == pg_types.BUILTIN_OIDS
    assert set(pg_types.BUILTIN_OIDS.values()) == set(pg_types.TREATMENTS)
    for name in ACCEPTED:
        assert pg_types.TREATMENTS[name].handling == ACCEPTED[name], name
    for name in set(server.values()) - set(ACCEPTED):
        expected = pg_types.DECLARED if name in DECLARABLE else pg_types.REFUSED
        assert pg_types.TREATMENTS[name].handling == expected, name


# --------------------------------------------------------------------------------------------
# one column of every type: refused before any row is read, one message for all
# --------------------------------------------------------------------------------------------
#: Evaluating this column on any row fails (division by zero): a refusal that mentions the
#: types, not the division, proves no row was computed.
EVERY_TYPE_SQL = (
    "SELECT *, 1 / (id - id) AS boom, ROW(id, 'x') AS a_record, pg_sleep(0) AS a_void "
    "FROM every_type ORDER BY id"
)


def expected_refusals(every_type: dict, declared: set[str] = frozenset()) -> set[str]:
    refused = {c for c, (*_, handling) in every_type.items() if handling is None}
    refused |= {"a_record", "a_void"}
    return refused - declared


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_a_table_of_every_type_is_refused_before_any_row_naming_each_column(
    dsn: str, every_type, tmp_path: Path, monkeypatch, driver: str
) -> None:
    def no_rows(_: Any) -> Any:
        raise AssertionError("the rows were opened before the types were checked")

    monkeypatch.setattr(columnar, "connect", no_rows)
    if driver == "psycopg":
        source: Any = psycopg.connect(dsn, options=f"-c TimeZone={SESSION_TZ}")
    else:
        import psycopg2

        source = psycopg2.connect(dsn)
    try:
        with pytest.raises(ColumnTypeError) as err:
            run_extract(source, EVERY_TYPE_SQL, tmp_path, sql_name="sql/features/every_type.sql")
    finally:
        source.close()
    message = str(err.value)
    assert "division by zero" not in message
    assert message.startswith("The query in sql/features/every_type.sql returns ")
    assert "no row was read" in message
    lines = refused_lines(message)
    assert set(lines) == expected_refusals(every_type)
    for column, (_, label, _) in every_type.items():
        if column in lines:
            assert lines[column].startswith(f"  - {column} ({label}): "), lines[column]
    assert "  - a_void (void): " in lines["a_void"]
    assert not (tmp_path / REAL_FILE).exists()
    assert list(tmp_path.iterdir()) == []


def test_refused_lines_say_what_to_write_instead(dsn: str, every_type, conn, tmp_path) -> None:
    with pytest.raises(ColumnTypeError) as err:
        run_extract(conn, EVERY_TYPE_SQL, tmp_path, sql_name="every_type.sql")
    lines = refused_lines(str(err.value))
    assert "write octet_length(t_bytea) AS t_bytea_bytes instead" in lines["t_bytea"]
    assert "write t_jsonb->>'key' AS t_jsonb_key instead" in lines["t_jsonb"]
    assert "`role: pii`" in lines["t_jsonb"] and "`role: pii`" in lines["x_domain_jsonb"]
    assert "cardinality(t__int4) AS t__int4_count" in lines["t__int4"]
    assert "cardinality(x_enum_array)" in lines["x_enum_array"]
    assert "t_point[0] AS t_point_x, t_point[1] AS t_point_y" in lines["t_point"]
    assert "lower(t_int4range) AS t_int4range_lower" in lines["t_int4range"]
    assert "t_money::numeric AS t_money" in lines["t_money"]
    assert "(x_composite).field" in lines["x_composite"]
    assert "x_user_range (floatrange): a range" in lines["x_user_range"]


def test_the_suggested_sql_is_accepted_and_runs(dsn: str, every_type, conn, tmp_path) -> None:
    """Every replacement the message suggests is valid SQL of accepted types (run on a row
    of NULLs and a row of sample values)."""
    items = ["id"]
    for column, (*_, handling) in every_type.items():
        if handling is not None:
            continue
        described = pg_types.describe_query(conn, f"SELECT {column} FROM every_type", None, "q")
        items += pg_types.instead_expressions(column, pg_types.treatment_of(described[0]))
    assert len(items) > 100
    sql = f"SELECT {', '.join(items)} FROM every_type ORDER BY id"
    result = run_extract(conn, sql, tmp_path, sql_name="instead.sql")
    assert result["rows"] == 2
    staged = pq.read_table(tmp_path / REAL_FILE).to_pylist()
    assert staged[1]["t_bytea_bytes"] == 4 and staged[1]["t_jsonb_key"] == "a"
    assert staged[1]["t_point_x"] == 1.0 and staged[1]["t_point_y"] == 2.0
    assert staged[1]["t__int4_count"] == 3 and staged[1]["t_money"] == 12.34
    assert staged[1]["t_macaddr_vendor"] == "08:00:2b:00:00:00"


def test_a_contract_accepts_json_and_mac_addresses_as_pii(dsn, every_type, conn, tmp_path) -> None:
    declared = {column_of(t) for t in DECLARABLE} | {"x_domain_jsonb"}
    contract = parse_contract(
        {"columns": [{"name": c, "type": "string", "role": "pii"} for c in sorted(declared)]},
        source="<contract of table 'every_type'>",
    )
    described = pg_types.describe_query(conn, EVERY_TYPE_SQL, None, "every_type.sql")
    with pytest.raises(ColumnTypeError) as err:
        pg_types.decide(described, "every_type.sql", contract)
    assert set(refused_lines(str(err.value))) == expected_refusals(every_type, declared)


def test_accepted_columns_get_their_handling_as_field_metadata(conn, every_type, tmp_path) -> None:
    accepted = [c for c, (*_, handling) in every_type.items() if handling is not None]
    sql = f"SELECT id, {', '.join(accepted)} FROM every_type ORDER BY id"
    run_extract(conn, sql, tmp_path, sql_name="accepted.sql")
    schema = pq.read_schema(tmp_path / REAL_FILE)
    recorded = pg_types.schema_types(schema)
    assert {c: recorded[c]["handling"] for c in accepted} == {c: every_type[c][2] for c in accepted}
    assert recorded["t_uuid"]["pii_kind"] == "uuid"
    assert recorded["x_enum"]["type"] == "mood"
    assert schema.field("t_interval").type == pa.duration("us")
    assert schema.field("t_timetz").type == pa.time64("us")


# --------------------------------------------------------------------------------------------
# accepted types: extract, synthesize, load back
# --------------------------------------------------------------------------------------------
ROWS = 160
ACCEPTED_SQL = f"""
SELECT g AS id,
       floor(random() * 7)::int2 AS small, floor(random() * 900)::int4 AS medium,
       floor(random() * 1e10)::int8 AS big, (random() * 50)::float4 AS real4,
       random() * 1e3 AS double8, round((random() * 500)::numeric, 2) AS amount,
       random() < 0.3 AS flag,
       date '2024-01-01' + floor(random() * 365)::int AS day,
       timestamp '2024-01-01' + random() * interval '90 days' AS seen,
       timestamptz '2024-01-01 00:00+00' + random() * interval '90 days' AS seen_tz,
       time '06:00' + random() * interval '14 hours' AS at_time,
       timetz '06:00+02' + random() * interval '14 hours' AS at_timetz,
       make_interval(days => floor(random() * 5)::int, hours => floor(random() * 24)::int,
                     mins => floor(random() * 60)::int, secs => round(random()::numeric * 60, 3))
         + CASE WHEN random() < 0.1 THEN interval '1 mon' ELSE interval '0' END
         - CASE WHEN random() < 0.06 THEN interval '6 days' ELSE interval '0' END AS span,
       (ARRAY['sad', 'ok', 'happy'])[1 + floor(random() * 3)::int]::mood AS mood,
       'label ' || floor(random() * 4) AS label, ('v' || floor(random() * 3))::varchar(5) AS short,
       ('c' || floor(random() * 2))::char(3) AS code, ('n' || floor(random() * 2))::name AS a_name,
       md5(g::text)::uuid AS token,
       ('10.0.' || (g / 250) || '.' || (g % 250 + 1))::inet AS ip,
       ('10.' || g || '.0.0/16')::cidr AS net,
       jsonb_build_object('tier', (ARRAY['gold', 'silver'])[1 + g % 2], 'visits', g) AS doc,
       ('08:00:2b:01:' || lpad(to_hex(g / 256), 2, '0') || ':' || lpad(to_hex(g % 256), 2, '0'))
         ::macaddr AS mac
FROM generate_series(1, {ROWS}) AS g
ORDER BY g
"""
ACCEPTED_CONTRACT = {
    "primary_key": "id",
    "columns": [
        {"name": "id", "type": "integer"},
        *({"name": n, "type": "integer"} for n in ("small", "medium", "big")),
        *({"name": n, "type": "float"} for n in ("real4", "double8", "amount")),
        {"name": "flag", "type": "boolean"},
        {"name": "day", "type": "date"},
        {"name": "seen", "type": "timestamp"},
        {"name": "seen_tz", "type": "timestamp"},
        {"name": "at_time", "type": "time"},
        {"name": "at_timetz", "type": "time"},
        {"name": "span", "type": "duration"},
        *({"name": n, "type": "string"} for n in ("mood", "label", "short", "code", "a_name")),
        *({"name": n, "type": "string"} for n in ("token", "ip", "net")),
        {"name": "doc", "type": "string", "role": "pii"},
        {"name": "mac", "type": "string", "role": "pii"},
    ],
}
FRESH = {"token": "uuid", "ip": "inet", "net": "cidr", "doc": "jsonb", "mac": "macaddr"}


@pytest.fixture(scope="module")
def accepted(dsn: str, tmp_path_factory) -> dict[str, Any]:
    """The accepted types extracted (psycopg 3 and 2) and synthesized once."""
    tmp = tmp_path_factory.mktemp("pg_types")
    contract = parse_contract(ACCEPTED_CONTRACT, source="accepted.contract.yaml")
    with psycopg.connect(dsn, options=f"-c TimeZone={SESSION_TZ}") as conn:
        conn.execute("SELECT setseed(0.25)")
        conn.execute(f"CREATE TABLE accepted AS {ACCEPTED_SQL}")
        conn.commit()
        extract = run_extract(
            conn,
            "SELECT * FROM accepted ORDER BY id",
            tmp / "adbc",
            sql_name="accepted.sql",
            contract=contract,
        )
    import psycopg2

    old = psycopg2.connect(dsn, options=f"-c TimeZone={SESSION_TZ}")
    try:
        rows = run_extract(
            old,
            "SELECT * FROM accepted ORDER BY id",
            tmp / "rows",
            sql_name="accepted.sql",
            contract=contract,
        )
    finally:
        old.close()
    (tmp / "out").mkdir()
    result = run_synthesize(
        tmp / "adbc" / REAL_FILE,
        tmp / "out",
        dataset="accepted",
        spec=resolve_synthesizer("gaussian_copula"),
        seed=5,
        contract=contract,
        # the columns are functions of one number: no filter, gates only reported
        checks=CheckSettings(similarity_filter=False, outlier_filter=False),
        enforce_gates_=False,
    )
    return {"tmp": tmp, "extract": extract, "rows": rows, "result": result}


def test_accepted_types_are_staged_with_their_arrow_types(accepted, dsn) -> None:
    staged = pq.read_table(accepted["tmp"] / "adbc" / REAL_FILE)
    assert accepted["extract"]["columns"][11:14] == [
        ["at_time", "time"],
        ["at_timetz", "time"],
        ["span", "duration"],
    ]
    types = {f.name: f.type for f in staged.schema}
    assert types["span"] == pa.duration("us")
    assert types["at_time"] == types["at_timetz"] == pa.time64("us")
    with psycopg.connect(dsn) as other:
        reference = other.execute(
            "SELECT span, at_time, (at_timetz AT TIME ZONE 'UTC')::time, token, mood::text "
            "FROM accepted ORDER BY id"
        ).fetchall()
    got = staged.select(["span", "at_time", "at_timetz", "token", "mood"]).to_pylist()
    for row, (span, at_time, utc_time, token, mood) in zip(got, reference, strict=True):
        assert row == {
            "span": span,
            "at_time": at_time,
            "at_timetz": utc_time,
            "token": str(token),
            "mood": mood,
        }
    # the row path (psycopg 2) writes the same file
    by_rows = pq.read_table(accepted["tmp"] / "rows" / REAL_FILE)
    assert by_rows.equals(staged)
    assert pg_types.schema_types(by_rows.schema) == pg_types.schema_types(staged.schema)


def test_an_interval_counts_a_month_as_30_days_and_a_year_as_365(conn, tmp_path) -> None:
    sql = (
        "SELECT interval '1 year 2 mons 3 days 04:05:06.7' AS a, "
        "interval '-1 year -3 mons' AS b, interval '-5 days 01:00' AS c, NULL::interval AS d"
    )
    for path, source in (("adbc", conn), ("stream", None)):
        out = tmp_path / path
        if source is None:
            import psycopg2

            old = psycopg2.connect(conn.info.dsn)
            try:
                stream_query_to_parquet(old, sql, out / "x.parquet")
            finally:
                old.close()
        else:
            run_extract(source, sql, out, sql_name="spans.sql")
        files = list(out.glob("*.parquet"))
        row = pq.read_table(files[0]).to_pylist()[0]
        assert row == {
            "a": dt.timedelta(days=365 + 60 + 3, hours=4, minutes=5, seconds=6.7),
            "b": dt.timedelta(days=-365 - 90),
            "c": dt.timedelta(days=-5, hours=1),
            "d": None,
        }


def test_no_published_value_of_a_fresh_column_equals_a_real_one(accepted, dsn) -> None:
    tmp = accepted["tmp"]
    synthetic = pq.read_table(tmp / "out" / "synthetic.parquet")
    assert synthetic.num_rows == ROWS
    assert synthetic.schema.field("span").type == pa.duration("us")
    quality = json.loads((tmp / "out" / "quality.json").read_text())
    roles = {r["name"]: r for r in quality["columns_roles"]}
    for column in ("token", "ip", "net"):
        assert roles[column]["role"] == "pii"
        assert roles[column]["reason"].startswith("PostgreSQL type "), roles[column]
    assert roles["token"]["kind"] == "uuid" and roles["ip"]["kind"] == "ip_address"
    assert roles["doc"]["role"] == roles["mac"]["role"] == "pii"
    assert roles["mood"]["role"] == "modelled" and roles["span"]["role"] == "modelled"
    # compared by PostgreSQL itself, as its own types
    with psycopg.connect(dsn, autocommit=True) as conn:
        load_tables_into_postgres(
            conn, "synth", [TargetTable("accepted", tmp / "out" / "synthetic.parquet")]
        )
        for column, pg_type in FRESH.items():
            value = f"s.{column}" if column == "mac" else f"s.{column}::{pg_type}"
            real = f"a.{column}::text" if column == "mac" else f"a.{column}"
            leaked = conn.execute(
                f"SELECT count(*) FROM synth.accepted s WHERE s.{column} IS NOT NULL "
                f"AND {value} IN (SELECT {real} FROM public.accepted a)"
            ).fetchone()[0]
            assert leaked == 0, column
        assert (
            conn.execute(
                "SELECT count(*) FROM synth.accepted s JOIN public.accepted a "
                "ON s.doc::jsonb = a.doc OR s.doc::jsonb ?& array['tier', 'visits'] IS NOT TRUE"
            ).fetchone()[0]
            == 0
        )  # fresh documents keep the keys, none equals a real one


def test_a_modelled_interval_and_times_round_trip_to_postgresql(accepted, dsn) -> None:
    tmp = accepted["tmp"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        load_tables_into_postgres(
            conn, "back", [TargetTable("accepted", tmp / "adbc" / REAL_FILE, ("id",))]
        )
        types = dict(
            conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'back.accepted'::regclass AND attnum > 0"
            ).fetchall()
        )
        assert types["span"] == "interval"
        assert types["at_time"] == types["at_timetz"] == "time without time zone"
        same = conn.execute(
            "SELECT count(*) FROM back.accepted b JOIN public.accepted a USING (id) "
            "WHERE b.span = a.span AND b.at_time = a.at_time "
            "AND b.at_timetz = (a.at_timetz AT TIME ZONE 'UTC')::time"
        ).fetchone()[0]
        assert same == ROWS
        # the synthetic durations are durations too, within the real range
        load_tables_into_postgres(
            conn, "synth2", [TargetTable("accepted", tmp / "out" / "synthetic.parquet")]
        )
        low, high, real_low, real_high = conn.execute(
            "SELECT (SELECT min(span) FROM synth2.accepted), (SELECT max(span) FROM "
            "synth2.accepted), min(span), max(span) FROM public.accepted"
        ).fetchone()
        assert real_low <= low <= high <= real_high
