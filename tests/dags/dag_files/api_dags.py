"""DAGs a user would write with our public API: TaskFlow tasks, @task.synthesize, params."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_synth.operators.load import dataset_asset
from airflow_synth.tasks import cleanup_staging, extract_table, load_table, synthesize_table

TEST_SQL = Path(os.environ["SYNTH_TEST_SQL_DIR"])
STORE = {"aws_conn_id": "synth_s3", "bucket": "synthetic"}

with DAG(
    dag_id="api_taskflow_esl",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={"limit_users": 900},
    render_template_as_native_obj=True,
) as taskflow_dag:
    staged = extract_table(
        sql_file=str(TEST_SQL / "users_by_signup.sql"),
        dataset="taskflow_users",
        postgres_conn_id="userbookings_db",
        # a Trigger-form value reaches the SQL bound, never rendered into its text
        parameters={"excluded_method": "google", "limit_users": "{{ params.limit_users }}"},
        contract_file=None,
        **STORE,
    )
    # 80 rows are too few to measure dependence: the gate is waived explicitly
    synthetic = synthesize_table(
        staged,
        dataset="taskflow_users",
        num_rows=80,
        seed=5,
        checks={"min_dependence": None},
        **STORE,
    )
    published = load_table.override(outlets=[dataset_asset("synthetic", "taskflow_users")])(
        staged, synthetic, dataset="taskflow_users", formats=["parquet", "csv"], **STORE
    )
    published >> cleanup_staging(dataset="taskflow_users", **STORE).as_teardown(setups=staged)


with DAG(
    dag_id="api_synthesize_decorator", schedule=None, start_date=datetime(2026, 1, 1)
) as deco_dag:

    @task.synthesize(
        dataset="decorated_users", num_rows=60, seed=3, checks={"min_dependence": None}, **STORE
    )
    def users_frame():
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        return PostgresHook(postgres_conn_id="userbookings_db").get_df(
            "SELECT id, gender, age, country_destination, date_account_created FROM users"
        )

    users_frame()


with DAG(
    dag_id="api_decorator_wrong_return", schedule=None, start_date=datetime(2026, 1, 1)
) as bad_deco:

    @task.synthesize(dataset="decorated_wrong", **STORE)
    def not_a_frame():
        return [1, 2, 3]

    not_a_frame()


with DAG(
    dag_id="api_decorator_bad_settings", schedule=None, start_date=datetime(2026, 1, 1)
) as bad_settings_deco:

    @task.synthesize(dataset="decorated_bad", synthesizer="gausian_copula", **STORE)
    def never_called():
        raise AssertionError("the function read rows before the settings were checked")

    never_called()
