"""Runs whose gates cannot pass (min_quality 0.999): their reports must be quarantined.

test_bad_input.py runs each and expects the reports, and only the reports, under
``<dataset>/_failed/<run>/``: one multi-table set and one ``@task.synthesize`` frame (the
single-table TaskGroup case is ``bad_input_quality_gate`` in bad_input_dags.py).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_synth.task_groups import MultiTableConfig, esl_multitable_task_group

STORE = {"aws_conn_id": "synth_s3", "bucket": "synthetic"}
IMPOSSIBLE = {"min_quality": 0.999}

with DAG(
    dag_id="gate_fail_multitable", schedule=None, start_date=datetime(2026, 1, 1)
) as dag_multitable:
    esl_multitable_task_group(
        MultiTableConfig(
            dataset="gate_fail_mt",
            tables=["users", "sessions"],
            postgres_conn_id="userbookings_db",
            seed=1,
            max_parents=80,
            checks=IMPOSSIBLE,
            **STORE,
        ),
        group_id="esl",
    )


with DAG(
    dag_id="gate_fail_decorator", schedule=None, start_date=datetime(2026, 1, 1)
) as dag_decorator:

    @task.synthesize(dataset="gate_fail_deco", num_rows=60, seed=3, checks=IMPOSSIBLE, **STORE)
    def users_frame():
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        return PostgresHook(postgres_conn_id="userbookings_db").get_df(
            "SELECT id, gender, age, country_destination, date_account_created FROM users"
        )

    users_frame()
