"""specs/stress.yaml on a real PostgreSQL: every declared key enforced by the database itself.

The stress schema's migration declares every primary and foreign key, composite ones too.
``seed_database`` loads with COPY and re-adds each foreign key afterwards, which makes
PostgreSQL check every row; so a load that succeeds proves the generated data's integrity,
and these tests check that the constraints were really there, really checked, and are
still live.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from airflow_synth.datagen import integrity_problems, load_spec, seed_database
from airflow_synth.datagen.plan import make_plan

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SPEC = load_spec(REPO / "specs" / "stress.yaml")
SEED = 11


@pytest.fixture(scope="module")
def stress_dsn(local_stack) -> Iterator[str]:
    """A fresh database seeded from the stress spec (once for the module), dropped after."""
    name = f"stress_{uuid.uuid4().hex[:10]}"
    local_stack.pg.create_database(name)
    try:
        yield local_stack.pg.dsn(name)
    finally:
        local_stack.pg.drop_database(name)


@pytest.fixture(scope="module")
def seeded(stress_dsn: str):  # type: ignore[no-untyped-def]
    with psycopg.connect(stress_dsn) as conn:
        return seed_database(conn, SPEC, seed=SEED)


def query(dsn: str, text: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(text, params).fetchall()


def read_table(dsn: str, table: str) -> pd.DataFrame:
    """A table as pandas, whole-number columns as nullable Int64 (NULL stays NULL)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(f'SELECT * FROM "{table}"')
        frame = pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description])
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = %s",
                (table,),
            ).fetchall()
        )
    for column, kind in types.items():
        if kind in ("bigint", "integer", "smallint"):
            frame[column] = frame[column].astype("Int64")
    return frame


def constraints(dsn: str) -> dict[tuple[str, str], list[tuple]]:
    """(table, 'p' or 'f') -> [(columns, referenced table, referenced columns, validated)]."""
    rows = query(
        dsn,
        """
        SELECT c.conrelid::regclass::text, c.contype,
               ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
                     ORDER BY k.i),
               c.confrelid::regclass::text,
               ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                     JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n
                     ORDER BY k.i),
               c.convalidated
        FROM pg_constraint c
        JOIN pg_namespace s ON s.oid = c.connamespace AND s.nspname = 'public'
        WHERE c.contype IN ('p', 'f')
        """,
    )
    found: dict[tuple[str, str], list[tuple]] = {}
    for table, kind, columns, parent, parent_columns, valid in rows:
        found.setdefault((table, kind), []).append(
            (tuple(columns), parent if kind == "f" else None, tuple(parent_columns or ()), valid)
        )
    return found


def test_the_stress_spec_loads_with_every_row_count_of_the_plan(seeded, stress_dsn) -> None:
    plan = make_plan(SPEC)
    expected = {name: plan.tables[name].rows for name in SPEC.tables}
    assert seeded.loaded and seeded.rows == expected
    for table, rows in expected.items():
        assert query(stress_dsn, f'SELECT count(*) FROM "{table}"') == [(rows,)]
    assert expected["region"] == 5 and expected["partsupp"] == 800
    assert 4_500 <= expected["lineitem"] <= 5_500


def test_postgres_holds_every_declared_key_and_checked_every_foreign_key(
    seeded, stress_dsn
) -> None:
    found = constraints(stress_dsn)
    for name, table in SPEC.tables.items():
        assert found[(name, "p")] == [(table.key_columns, None, (), True)], name
    foreign = {
        (table, columns, parent, parent_columns)
        for (table, kind), entries in found.items()
        if kind == "f"
        for columns, parent, parent_columns, valid in entries
        if valid  # re-added after the COPY: every row was checked
    }
    for name, table in SPEC.tables.items():
        for column in table.columns.values():
            if column.type == "reference":
                fk = (name, column.output_columns, column.parent_table, column.parent_columns)
                assert fk in foreign, fk
    assert ("lineitem", ("part_id", "supplier_id"), "partsupp", ("part_id", "supplier_id")) in (
        foreign
    )
    assert ("employees", ("manager_id",), "employees", ("id",)) in foreign
    assert len(foreign) == sum(len(e) for (_, kind), e in found.items() if kind == "f")


def test_the_loaded_rows_have_every_shape_the_spec_declares(seeded, stress_dsn) -> None:
    frames = {name: read_table(stress_dsn, name) for name in SPEC.tables}
    assert integrity_problems(SPEC, frames) == []
    # line numbers 1..n per order; years 2020.. per employee, consecutive
    assert query(
        stress_dsn,
        "SELECT count(*) FROM (SELECT order_id FROM lineitem GROUP BY order_id "
        "HAVING min(line_number) <> 1 OR max(line_number) <> count(*)) gaps",
    ) == [(0,)]
    assert query(
        stress_dsn,
        "SELECT count(*) FROM (SELECT employee_id FROM salary_history GROUP BY employee_id "
        "HAVING min(year) <> 2020 OR max(year) - min(year) + 1 <> count(*)) gaps",
    ) == [(0,)]
    # the org chart: one root, and every employee reachable from it (no cycle)
    assert query(
        stress_dsn,
        """
        WITH RECURSIVE chart AS (
            SELECT id, 0 AS depth FROM employees WHERE manager_id IS NULL
            UNION ALL
            SELECT e.id, chart.depth + 1 FROM employees e JOIN chart ON e.manager_id = chart.id
        )
        SELECT count(*), count(DISTINCT id), (SELECT count(*) FROM employees) FROM chart
        """,
    ) == [(60, 60, 60)]
    # a nullable foreign key: some orders have no clerk, and exactly those are online
    nulls, online, total = query(
        stress_dsn,
        "SELECT count(*) FILTER (WHERE clerk_id IS NULL), "
        "count(*) FILTER (WHERE channel = 'online'), count(*) FROM orders",
    )[0]
    assert 0 < nulls == online < total
    # child dates after parent dates, down the chain
    assert query(
        stress_dsn,
        "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE o.order_date < c.signup_date",
    ) == [(0,)]
    assert query(
        stress_dsn,
        "SELECT count(*) FROM lineitem l JOIN orders o ON o.id = l.order_id "
        "WHERE l.ship_date <= o.order_date",
    ) == [(0,)]
    # the link table: every part has 4 different suppliers
    assert query(
        stress_dsn,
        "SELECT min(n), max(n), count(*) FROM "
        "(SELECT part_id, count(DISTINCT supplier_id) AS n FROM partsupp GROUP BY part_id) p",
    ) == [(4, 4, 200)]


def test_the_keys_stay_enforced_after_the_load(seeded, stress_dsn) -> None:
    order_id, line, part_id, supplier_id = query(
        stress_dsn, "SELECT order_id, line_number, part_id, supplier_id FROM lineitem LIMIT 1"
    )[0]
    # A supplier that exists, paired with a part it does not supply: only the composite
    # foreign key to partsupp can refuse this row.
    other = query(
        stress_dsn,
        "SELECT s.id FROM supplier s WHERE NOT EXISTS (SELECT 1 FROM partsupp p "
        "WHERE p.part_id = %s AND p.supplier_id = s.id) LIMIT 1",
        (part_id,),
    )[0][0]
    columns = "order_id, line_number, part_id, supplier_id, quantity, extended_price, "
    columns += "discount, line_status, return_flag, ship_mode, ship_date, receipt_date"
    insert = f"INSERT INTO lineitem ({columns}) VALUES (%s, %s, %s, %s, 1, 1, 0, 'F', 'A', "
    insert += "'AIR', '2030-01-01', '2030-01-02')"
    with psycopg.connect(stress_dsn) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
            conn.execute(insert, (order_id, line, part_id, supplier_id))
        with (
            pytest.raises(psycopg.errors.ForeignKeyViolation, match="partsupp"),
            conn.transaction(),
        ):
            conn.execute(insert, (order_id, 999, part_id, other))
        with pytest.raises(psycopg.errors.ForeignKeyViolation), conn.transaction():
            conn.execute("UPDATE employees SET manager_id = -1 WHERE manager_id IS NULL")


def test_seeding_again_with_the_same_settings_is_a_no_op(seeded, stress_dsn) -> None:
    with psycopg.connect(stress_dsn) as conn:
        again = seed_database(conn, SPEC, seed=SEED)
    assert not again.loaded and again.rows == seeded.rows
