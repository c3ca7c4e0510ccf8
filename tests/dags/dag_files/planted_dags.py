"""A ready ESL TaskGroup on a table of planted, distinctive values (test_no_real_values.py)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG

from airflow_synth.task_groups import (
    ESLConfig,
    MultiTableConfig,
    esl_multitable_task_group,
    esl_task_group,
)

TEST_SQL = Path(os.environ["SYNTH_TEST_SQL_DIR"])

with DAG(dag_id="planted_values", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
    esl_task_group(
        ESLConfig(
            dataset="planted_people",
            sql_file=str(TEST_SQL / "planted_people.sql"),
            contract_file=None,  # nothing declared: PII must be found by name and content
            postgres_conn_id="userbookings_db",
            aws_conn_id="synth_s3",
            bucket="synthetic",
            seed=3,
            # the planted columns are independent of each other: nothing to measure there
            checks={"min_dependence": None},
        ),
        group_id="esl",
    )

with DAG(
    dag_id="planted_values_multitable", schedule=None, start_date=datetime(2026, 1, 1)
) as multitable_dag:
    esl_multitable_task_group(
        MultiTableConfig(
            dataset="planted_set",
            tables=["planted_people", "planted_orders"],  # keys and FKs from the catalog
            postgres_conn_id="userbookings_db",
            aws_conn_id="synth_s3",
            bucket="synthetic",
            seed=3,
            checks={"min_dependence": None},
        ),
        group_id="esl",
    )
