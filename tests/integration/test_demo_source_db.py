"""The demo source database on a real PostgreSQL: migrations, seeding and the feature query.

Each test gets its own fresh database on the session's server (the shared `userbookings`
database stays untouched), so these tests pass in any order and beside any other test.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from airflow_synth.core.contract import contract_diff, contract_path_for, load_contract
from airflow_synth.datagen import answer_key, generate_tables
from airflow_synth.datagen import load as load_module
from airflow_synth.demo.generate import demo_spec
from airflow_synth.demo.migrations import (
    HISTORY_TABLE,
    MigrationError,
    apply_migrations,
    discover_migrations,
)
from airflow_synth.demo.seed import DemoSeedError, seed_demo_database

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO / "sql" / "migrations"
FEATURE_SQL = REPO / "sql" / "features" / "session_features_by_user.sql"


@pytest.fixture
def demo_dsn(source_dsn: str) -> Iterator[str]:
    """DSN of a new, empty database on the session's PostgreSQL, dropped afterwards."""
    name = f"demo_test_{uuid.uuid4().hex[:12]}"
    admin_dsn = make_conninfo(source_dsn, dbname="postgres")
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(source_dsn, dbname=name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def conn(demo_dsn: str) -> Iterator[psycopg.Connection]:
    """A connection like ``PostgresHook.get_conn()`` gives: psycopg 3, not autocommit."""
    with psycopg.connect(demo_dsn) as connection:
        yield connection


def fetch(dsn: str, query: str) -> list[tuple]:
    """Run a read-only query on a separate connection (keeps ``conn`` out of a transaction)."""
    with psycopg.connect(dsn, autocommit=True) as other:
        return other.execute(query).fetchall()


def schema_snapshot(dsn: str) -> dict[str, list[tuple]]:
    """Tables, columns, indexes and constraints of the public schema (without the loader's
    own bookkeeping table ``synth_seed_info``, created on the first load)."""
    return {
        "columns": fetch(
            dsn,
            "SELECT table_name, ordinal_position, column_name, data_type, is_nullable "
            "FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name <> 'synth_seed_info' ORDER BY 1, 2",
        ),
        "indexes": fetch(
            dsn,
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename <> 'synth_seed_info' ORDER BY 1",
        ),
        "constraints": fetch(
            dsn,
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
            "AND conrelid::regclass::text <> 'synth_seed_info' ORDER BY 1, 2",
        ),
    }


def demo_tables(n_users: int, avg_sessions: float, seed: int) -> dict[str, pd.DataFrame]:
    """The demo tables as seed_demo_database loads them, in memory."""
    return generate_tables(
        demo_spec(), seed=seed, rows={"users": n_users}, per_parent_mean={"sessions": avg_sessions}
    )


def seed_info(dsn: str, *columns: str) -> list[tuple]:
    return fetch(
        dsn, f"SELECT {', '.join(columns)} FROM synth_seed_info WHERE spec_name = 'userbookings'"
    )


def table_counts(dsn: str) -> tuple[int, int]:
    return fetch(dsn, "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM sessions)")[0]


# --- migrations ----------------------------------------------------------------------------


def test_migrations_apply_once_and_a_rerun_changes_nothing(
    conn: psycopg.Connection, demo_dsn: str
) -> None:
    applied = apply_migrations(conn, MIGRATIONS)
    assert applied == sorted(p.name for p in MIGRATIONS.glob("V*.sql"))
    schema = schema_snapshot(demo_dsn)
    tables = {row[0] for row in schema["columns"]}
    assert {"users", "sessions", HISTORY_TABLE} <= tables
    assert "demo_seed_info" not in tables  # created by V2, dropped by V3 (spec loader now)
    assert tuple(name for name, definition in schema["indexes"] if "(user_id)" in definition) == (
        "sessions_user_id_idx",
    )
    history = fetch(demo_dsn, f"SELECT version, script, applied_at FROM {HISTORY_TABLE}")

    assert apply_migrations(conn, MIGRATIONS) == []
    assert schema_snapshot(demo_dsn) == schema
    assert fetch(demo_dsn, f"SELECT version, script, applied_at FROM {HISTORY_TABLE}") == history
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_migrations_work_on_an_autocommit_connection_too(demo_dsn: str) -> None:
    with psycopg.connect(demo_dsn, autocommit=True) as autocommit:
        assert len(apply_migrations(autocommit, MIGRATIONS)) >= 2
        assert apply_migrations(autocommit, MIGRATIONS) == []


def test_an_edited_applied_migration_stops_everything(
    conn: psycopg.Connection, demo_dsn: str, tmp_path: Path
) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    apply_migrations(conn, folder)
    v1 = folder / "V1__create_users_and_sessions.sql"
    v1.write_text(v1.read_text() + "\nALTER TABLE users ADD COLUMN sneaky int;\n")
    (folder / "V99__new_table.sql").write_text("CREATE TABLE should_not_exist (x int);\n")

    with pytest.raises(MigrationError, match=r"V1__create_users_and_sessions\.sql was changed"):
        apply_migrations(conn, folder)
    assert fetch(demo_dsn, "SELECT to_regclass('should_not_exist')") == [(None,)]


def test_a_failing_migration_leaves_nothing_behind(
    conn: psycopg.Connection, demo_dsn: str, tmp_path: Path
) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    (folder / "V90__half_good.sql").write_text(
        "CREATE TABLE half_made (x int);\nINSERT INTO no_such_table VALUES (1);\n"
    )
    with pytest.raises(MigrationError, match=r"V90__half_good\.sql failed.*no_such_table"):
        apply_migrations(conn, folder)
    assert fetch(demo_dsn, "SELECT to_regclass('half_made')") == [(None,)]
    versions = [v for (v,) in fetch(demo_dsn, f"SELECT version FROM {HISTORY_TABLE}")]
    assert "90" not in versions and "1" in versions  # earlier files stay applied

    (folder / "V90__half_good.sql").write_text("CREATE TABLE half_made (x int);\n")
    assert apply_migrations(conn, folder) == ["V90__half_good.sql"]


def test_missing_or_out_of_order_migrations_are_refused(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    (folder / "V50__later.sql").write_text("SELECT 1;\n")
    apply_migrations(conn, folder)

    (folder / "V40__forgotten.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match=r"V40__forgotten\.sql has a version below"):
        apply_migrations(conn, folder)
    (folder / "V40__forgotten.sql").unlink()
    (folder / "V50__later.sql").unlink()
    with pytest.raises(MigrationError, match=r"V50__later\.sql \(version 50\).*missing"):
        apply_migrations(conn, folder)


#: The history table Flyway 10 creates on PostgreSQL.
FLYWAY_HISTORY_DDL = """
CREATE TABLE flyway_schema_history (
    installed_rank integer NOT NULL PRIMARY KEY,
    version varchar(50),
    description varchar(200) NOT NULL,
    type varchar(20) NOT NULL,
    script varchar(1000) NOT NULL,
    checksum integer,
    installed_by varchar(100) NOT NULL,
    installed_on timestamp NOT NULL DEFAULT now(),
    execution_time integer NOT NULL,
    success boolean NOT NULL
)
"""


def test_versions_applied_by_flyway_are_not_applied_again(
    conn: psycopg.Connection, demo_dsn: str, tmp_path: Path
) -> None:
    """docker-compose runs Flyway first; the seed DAG then calls apply_migrations."""
    with psycopg.connect(demo_dsn, autocommit=True) as flyway:
        flyway.execute(FLYWAY_HISTORY_DDL)
        for rank, migration in enumerate(discover_migrations(MIGRATIONS), start=1):
            flyway.execute(migration.sql.encode())
            flyway.execute(
                "INSERT INTO flyway_schema_history VALUES "
                "(%s, %s, %s, 'SQL', %s, %s, 'flyway', now(), 5, true)",
                (
                    rank,
                    migration.version,
                    migration.description,
                    migration.script,
                    migration.checksum,
                ),
            )
    assert apply_migrations(conn, MIGRATIONS) == []
    assert seed_demo_database(conn, n_users=20, avg_sessions_per_user=3).loaded

    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    v2 = folder / "V2__create_demo_seed_info.sql"
    v2.write_text(v2.read_text() + "-- edited\n")
    with pytest.raises(MigrationError, match=r"V2__create_demo_seed_info\.sql was changed"):
        apply_migrations(conn, folder)


def test_a_connection_inside_a_transaction_is_refused(conn: psycopg.Connection) -> None:
    conn.execute("SELECT 1")
    with pytest.raises(MigrationError, match="conn.commit"):
        apply_migrations(conn, MIGRATIONS)


# --- seeding -------------------------------------------------------------------------------


def test_seeding_needs_the_migrations(conn: psycopg.Connection) -> None:
    with pytest.raises(DemoSeedError, match="apply_migrations"):
        seed_demo_database(conn, n_users=10)


def test_seeding_loads_once_and_a_second_call_is_a_no_op(
    conn: psycopg.Connection, demo_dsn: str
) -> None:
    apply_migrations(conn, MIGRATIONS)
    schema = schema_snapshot(demo_dsn)

    first = seed_demo_database(conn, n_users=400, avg_sessions_per_user=15, seed=3)
    key = answer_key(demo_spec(), rows={"users": 400}, per_parent_mean={"sessions": 15})
    per_user = key["sessions_per_user"].expected
    expected_sessions = int((per_user["key"] * per_user["count"]).sum())
    assert first.loaded
    assert (first.n_users, first.n_sessions) == (400, expected_sessions)
    assert table_counts(demo_dsn) == (400, expected_sessions)
    assert schema_snapshot(demo_dsn) == schema  # foreign key and index are back
    loaded_at = seed_info(demo_dsn, "loaded_at")

    started = time.perf_counter()
    second = seed_demo_database(conn, n_users=400, avg_sessions_per_user=15, seed=3)
    assert not second.loaded
    assert (second.n_users, second.n_sessions) == (400, expected_sessions)
    assert time.perf_counter() - started < 1.0
    assert seed_info(demo_dsn, "loaded_at") == loaded_at

    assert seed_demo_database(
        conn, n_users=400, avg_sessions_per_user=15, seed=3, force=True
    ).loaded
    other = seed_demo_database(conn, n_users=50, avg_sessions_per_user=15, seed=3)
    assert other.loaded and table_counts(demo_dsn) == (50, other.n_sessions)
    assert seed_info(demo_dsn, "settings->'rows'->>'users'") == [("50",)]


def test_seeding_reloads_when_the_tables_or_the_generator_changed(
    conn: psycopg.Connection, demo_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_migrations(conn, MIGRATIONS)
    seed_demo_database(conn, n_users=60, avg_sessions_per_user=5, seed=1)
    with psycopg.connect(demo_dsn, autocommit=True) as other:
        other.execute("DELETE FROM sessions WHERE ctid IN (SELECT ctid FROM sessions LIMIT 1)")
    assert seed_demo_database(conn, n_users=60, avg_sessions_per_user=5, seed=1).loaded

    monkeypatch.setattr(load_module, "GENERATOR_VERSION", "test-next")
    assert seed_demo_database(conn, n_users=60, avg_sessions_per_user=5, seed=1).loaded
    assert seed_info(demo_dsn, "settings->>'generator_version'") == [("test-next",)]


def test_a_failed_load_keeps_the_previous_data(
    conn: psycopg.Connection, demo_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_migrations(conn, MIGRATIONS)
    seed_demo_database(conn, n_users=100, avg_sessions_per_user=10, seed=8)
    before = (
        table_counts(demo_dsn),
        seed_info(demo_dsn, "*"),
        schema_snapshot(demo_dsn),
    )
    generate = load_module.generate

    def breaks_halfway(*args, **kwargs):
        for table, frame in generate(*args, **kwargs):
            yield table, frame
            if table == "sessions":
                raise RuntimeError("generator broke")

    monkeypatch.setattr(load_module, "generate", breaks_halfway)
    with pytest.raises(RuntimeError, match="generator broke"):
        seed_demo_database(conn, n_users=300, avg_sessions_per_user=10, seed=9, batch_rows=100)
    after = (
        table_counts(demo_dsn),
        seed_info(demo_dsn, "*"),
        schema_snapshot(demo_dsn),
    )
    assert after == before


# --- the feature query ---------------------------------------------------------------------

N_USERS, AVG_SESSIONS, SEED = 300, 20, 5

#: Hand-made users for the cases a random sample may miss: no sessions; sessions whose
#: action_type and secs_elapsed are all NULL; a single session.
EDGE_USERS = {
    "edge_none": [],
    "edge_nulls": [("lookup", None, None, "iPhone", None), ("lookup", None, None, "iPhone", None)],
    "edge_single": [("show", "view", "p3", "Mac Desktop", 12.5)],
}


def expected_features(users: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """session_features_by_user computed independently with pandas."""
    sessions = sessions.astype({"user_id": str, "action_type": object})
    grouped = sessions.groupby("user_id")
    stats = pd.DataFrame(
        {
            "n_actions": grouped.size(),
            "n_distinct_action_types": grouped["action_type"].nunique(dropna=True),
            "avg_secs_elapsed": grouped["secs_elapsed"].mean(),
            "max_secs_elapsed": grouped["secs_elapsed"].max(),
            "min_secs_elapsed": grouped["secs_elapsed"].min(),
            "total_secs_elapsed": grouped["secs_elapsed"].sum(min_count=1),
        }
    )
    frame = users.set_index("id").join(stats, how="left")
    frame["n_actions"] = frame["n_actions"].fillna(0).astype(int)
    frame["n_distinct_action_types"] = frame["n_distinct_action_types"].fillna(0).astype(int)
    frame["booked"] = frame["date_first_booking"].notna()
    frame["date_account_created"] = frame["date_account_created"].dt.date
    return frame


def add_edge_users(
    demo_dsn: str, users: pd.DataFrame, sessions: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Insert EDGE_USERS into the database and into the frames."""
    template = users.iloc[0].to_dict()
    extra_users, extra_sessions = [], []
    with psycopg.connect(demo_dsn, autocommit=True) as other:
        for user_id, rows in EDGE_USERS.items():
            user = {**template, "id": user_id, "country_destination": "NDF"}
            user["date_first_booking"] = pd.NaT
            extra_users.append(user)
            other.execute(
                "INSERT INTO users (id, date_account_created, timestamp_first_active, gender, "
                "age, signup_method, signup_flow, language, affiliate_channel, "
                "affiliate_provider, signup_app, first_device_type, first_browser, "
                "country_destination) SELECT %s, date_account_created, timestamp_first_active, "
                "gender, age, signup_method, signup_flow, language, affiliate_channel, "
                "affiliate_provider, signup_app, first_device_type, first_browser, 'NDF' "
                "FROM users WHERE id = %s",
                (user_id, template["id"]),
            )
            for row in rows:
                other.execute(
                    "INSERT INTO sessions VALUES (%s, %s, %s, %s, %s, %s)", (user_id, *row)
                )
                extra_sessions.append(dict(zip(sessions.columns, (user_id, *row), strict=True)))
    users = pd.concat([users, pd.DataFrame(extra_users)], ignore_index=True)
    sessions = pd.concat(
        [sessions.astype({"user_id": str}), pd.DataFrame(extra_sessions)], ignore_index=True
    )
    return users, sessions


LOGICAL_TYPE_OF_PG = {
    "text": "string",
    "varchar": "string",
    "int2": "integer",
    "int4": "integer",
    "int8": "integer",
    "float4": "float",
    "float8": "float",
    "bool": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "timestamptz": "timestamp",
}


def test_feature_query_matches_an_independent_pandas_computation(
    conn: psycopg.Connection, demo_dsn: str
) -> None:
    apply_migrations(conn, MIGRATIONS)
    seed_demo_database(conn, n_users=N_USERS, avg_sessions_per_user=AVG_SESSIONS, seed=SEED)
    tables = demo_tables(N_USERS, AVG_SESSIONS, SEED)
    users, sessions = tables["users"], tables["sessions"]
    users, sessions = add_edge_users(demo_dsn, users, sessions)
    expected = expected_features(users, sessions)
    assert (expected["n_actions"] == 0).sum() > len(EDGE_USERS)  # generated ones too

    query = FEATURE_SQL.read_text(encoding="utf-8")
    assert "{{" not in query and "{%" not in query
    with psycopg.connect(demo_dsn, autocommit=True) as reader:
        cursor = reader.execute(query)
        names = [column.name for column in cursor.description]
        pg_types = [reader.adapters.types.get(c.type_code).name for c in cursor.description]
        actual = pd.DataFrame(cursor.fetchall(), columns=names)

    # The contract beside the file holds: names, order and logical types (never numeric).
    contract = load_contract(contract_path_for(FEATURE_SQL))
    returned = [(n, LOGICAL_TYPE_OF_PG.get(t, t)) for n, t in zip(names, pg_types, strict=True)]
    assert contract_diff(contract, returned) == []
    assert "numeric" not in pg_types

    assert len(actual) == len(users) and actual["user_id"].is_unique
    actual = actual.set_index("user_id").loc[expected.index]
    for column in ("gender", "language", "signup_method", "country_destination"):
        assert list(actual[column]) == list(expected[column]), column
    assert list(actual["date_account_created"]) == list(expected["date_account_created"])
    for column in ("n_actions", "n_distinct_action_types", "booked"):
        assert list(actual[column]) == list(expected[column]), column
    for column in (
        "age",
        "avg_secs_elapsed",
        "max_secs_elapsed",
        "min_secs_elapsed",
        "total_secs_elapsed",
    ):
        got = actual[column].astype(float).to_numpy()
        want = expected[column].astype(float).to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True, err_msg=column)

    edge = actual.loc[list(EDGE_USERS)]
    assert list(edge["n_actions"]) == [0, 2, 1]
    assert list(edge["n_distinct_action_types"]) == [0, 0, 1]
    assert edge["avg_secs_elapsed"].isna().tolist() == [True, True, False]
