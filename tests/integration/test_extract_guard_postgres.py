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
        with pytest.raises(
            ExtractError, match="canceling statement due to statement timeout"
        ) as err:
            extract(conn, "SELECT 1 AS x, pg_sleep(5) AS slept", tmp_path)
    finally:
        conn.close()
    assert "guard.sql" in str(err.value)  # the file, and the way out, not "fix the SQL"
    assert '{"options": "-c statement_timeout=4h"}' in str(err.value)
    assert "Fix the SQL file" not in str(err.value)
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


# --------------------------------------------------------------------------------------------
# values only as bound parameters: a SQL file's template reads no user value
# --------------------------------------------------------------------------------------------
INJECTION = "x'; DROP TABLE people; --"


@pytest.fixture
def people(dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A table with a row named like an injection, and an Airflow connection to it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS people")
        conn.execute("CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO people VALUES (1, 'ann'), (2, %s), (3, 'bo')", (INJECTION,))
    monkeypatch.setenv("AIRFLOW_CONN_GUARD_SOURCE", dsn)
    return "guard_source"


def run_extract_task(
    tmp_path: Path, sql: str, params: dict, parameters: dict | None = None, **context_values
) -> dict:
    """``execute_extract`` as the extract operator calls it: the SQL file rendered by the
    operator's own Jinja environment with the run's context."""
    from types import SimpleNamespace

    from airflow.sdk import DAG

    from airflow_synth.operators.extract import ESLExtractOperator
    from airflow_synth.runtime import execute_extract

    sql_file = tmp_path / "features" / "people.sql"
    sql_file.parent.mkdir(parents=True, exist_ok=True)
    sql_file.write_text(sql)
    with DAG("guard_dag", schedule=None, user_defined_macros={"first_id": 1}) as dag:
        operator = ESLExtractOperator(
            task_id="extract", sql_file=str(sql_file), dataset="people", contract_file=None
        )
    context = {
        "dag": SimpleNamespace(dag_id=dag.dag_id, user_defined_macros=dag.user_defined_macros),
        "run_id": "manual__1",
        "params": params,
        "dag_run": SimpleNamespace(conf=params),
        **context_values,
    }
    return execute_extract(
        context,
        sql_file=str(sql_file),
        dataset="people",
        postgres_conn_id="guard_source",
        render=lambda text: operator.render_template(text, context),
        parameters=parameters,
        contract_file=None,
        staging_dir=str(tmp_path / "staging"),
    )


@pytest.mark.parametrize(
    ("template", "reads"),
    [
        ("SELECT id, name FROM people WHERE name = '{{ params.name }}'", "params.name"),
        (
            "SELECT id, name FROM people WHERE name = '{{ dag_run.conf['name'] }}'",
            "dag_run.conf['name']",
        ),
        ("{% set n = params.name %}SELECT id FROM people WHERE name = '{{ n }}'", "params.name"),
    ],
)
def test_a_sql_file_that_renders_a_user_value_is_refused_before_the_source(
    people, dsn, tmp_path, monkeypatch, template, reads
):
    from airflow_synth import runtime
    from airflow_synth.core.errors import SqlFileError

    reached: list[str] = []
    real_connection = runtime.postgres_connection
    monkeypatch.setattr(
        runtime, "postgres_connection", lambda conn_id: reached.append(conn_id) or real_connection
    )
    with pytest.raises(SqlFileError) as refused:
        run_extract_task(tmp_path, template, {"name": INJECTION})
    message = str(refused.value)
    assert str(tmp_path / "features" / "people.sql") in message and reads in message
    assert "%(name)s" in message and f'parameters={{"name": "{{{{ {reads} }}}}"}}' in message
    assert INJECTION not in message  # the value is never shown
    assert reached == [] and not (tmp_path / "staging").exists()
    with psycopg.connect(dsn) as conn:  # the table the value would have dropped is there
        assert conn.execute("SELECT count(*) FROM people").fetchone() == (3,)


def test_the_fix_binds_the_trigger_form_value_as_data(people, dsn, tmp_path):
    """The refusal's advice works: the value in ``parameters`` is bound, so the injection
    text matches the one row that holds it and runs as nothing."""
    sql = "SELECT id, name FROM people WHERE name = %(name)s ORDER BY id"
    result = run_extract_task(tmp_path, sql, {"name": INJECTION}, parameters={"name": INJECTION})
    rows = pq.read_table(result["staging_uri"].removeprefix("file://")).to_pylist()
    assert rows == [{"id": 2, "name": INJECTION}]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM people").fetchone() == (3,)


def test_airflow_run_values_and_the_dags_own_macros_render(people, tmp_path):
    sql = (
        "SELECT id, '{{ ds }}'::date AS day, '{{ macros.ds_add(ds, 1) }}'::date AS next_day "
        "FROM people WHERE id = {{ first_id }}"
    )
    from airflow.sdk.execution_time import macros

    result = run_extract_task(tmp_path, sql, {}, ds="2024-05-01", macros=macros)
    rows = pq.read_table(result["staging_uri"].removeprefix("file://")).to_pylist()
    assert [(r["id"], str(r["day"]), str(r["next_day"])) for r in rows] == [
        (1, "2024-05-01", "2024-05-02")
    ]
