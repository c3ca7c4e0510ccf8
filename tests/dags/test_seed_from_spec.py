"""The seed_database_from_spec DAG seeds the e-commerce spec into its own database.

The declared truths are then checked with SQL straight from the database, against the
spec's answer key: exact shares, monthly refund rates, children per parent, FK integrity.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from dagtest_helpers import load_dag_module

from airflow_synth.datagen import answer_key, load_spec

pytestmark = pytest.mark.dags

SPEC = Path(__file__).resolve().parents[2] / "specs" / "ecommerce.yaml"
ROWS = {"customers": 1_500}


@pytest.fixture(scope="module")
def shop_dsn(local_stack, airflow_home) -> str:
    local_stack.pg.create_database("shop")
    dsn = local_stack.pg.dsn("shop")
    os.environ["AIRFLOW_CONN_SHOP_TEST_DB"] = dsn
    return dsn


@pytest.fixture(scope="module")
def seed_dag(dags_folder: Path):
    dag = load_dag_module(dags_folder / "seed_from_spec.py").dag
    assert dag.dag_id == "seed_database_from_spec"
    return dag


@pytest.fixture(scope="module")
def seeded(shop_dsn, seed_dag):
    conf = {"spec": "ecommerce.yaml", "conn_id": "shop_test_db", "rows": ROWS, "seed": 5}
    return seed_dag.test(run_conf=conf), conf


def query(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def test_the_run_succeeds_and_loads_every_table(seeded, shop_dsn) -> None:
    dag_run, _ = seeded
    assert dag_run.state == "success"
    counts = dict(
        query(
            shop_dsn,
            "SELECT 'customers', count(*) FROM customers UNION ALL "
            "SELECT 'products', count(*) FROM products UNION ALL "
            "SELECT 'devices', count(*) FROM devices UNION ALL "
            "SELECT 'transactions', count(*) FROM transactions",
        )
    )
    key = answer_key(load_spec(SPEC), rows=ROWS)
    per_customer = key["transactions_per_customer"].expected
    assert counts["customers"] == 1_500 == key["customers_rows"].expected["count"].item()
    assert counts["transactions"] == int((per_customer["key"] * per_customer["count"]).sum())
    assert counts["products"] == 400 and counts["devices"] == 1_200


def test_sql_finds_the_declared_truths_exactly(seeded, shop_dsn) -> None:
    key = answer_key(load_spec(SPEC), rows=ROWS)
    shares = dict(query(shop_dsn, "SELECT payment_method, count(*) FROM transactions GROUP BY 1"))
    expected = key["payment_method_shares"].expected
    assert shares == dict(zip(expected["key"], expected["count"], strict=True))

    refunds = query(
        shop_dsn,
        "SELECT to_char(created_at, 'YYYY-MM'), count(*) FILTER (WHERE refunded), count(*) "
        "FROM transactions GROUP BY 1 ORDER BY 1",
    )
    rate = key["refund_rate_by_month"].expected
    assert refunds == list(
        zip(rate["key"], rate["count"].tolist(), rate["of"].tolist(), strict=True)
    )

    per_customer = query(
        shop_dsn,
        "SELECT n, count(*) FROM (SELECT c.id, count(t.id) AS n FROM customers c "
        "LEFT JOIN transactions t ON t.customer_id = c.id GROUP BY c.id) s GROUP BY n ORDER BY n",
    )
    children = key["transactions_per_customer"].expected
    assert per_customer == list(
        zip(children["key"].tolist(), children["count"].tolist(), strict=True)
    )
    opted_in = query(shop_dsn, "SELECT count(*) FILTER (WHERE marketing_opt_in) FROM customers")
    assert opted_in[0][0] == key["opt_in_rate"].expected["count"].item()


def test_every_foreign_key_points_at_an_existing_row(seeded, shop_dsn) -> None:
    joined = query(
        shop_dsn,
        "SELECT count(*) FROM transactions t JOIN customers c ON c.id = t.customer_id "
        "JOIN products p ON p.id = t.product_id JOIN devices d ON d.id = t.device_id",
    )
    assert joined == query(shop_dsn, "SELECT count(*) FROM transactions")
    constraints = query(
        shop_dsn,
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'transactions'::regclass "
        "AND contype = 'f'",
    )
    assert constraints == [(3,)]  # dropped for the load, restored after it


def test_a_second_run_with_the_same_settings_loads_nothing(seeded, shop_dsn, seed_dag) -> None:
    _, conf = seeded
    before = query(shop_dsn, "SELECT loaded_at FROM synth_seed_info WHERE spec_name = 'shop'")
    again = seed_dag.test(run_conf=conf)
    assert again.state == "success"
    assert query(shop_dsn, "SELECT loaded_at FROM synth_seed_info WHERE spec_name = 'shop'") == (
        before
    )
