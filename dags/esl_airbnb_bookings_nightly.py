"""Nightly synthetic refresh of the Airbnb bookings table (02:00 UTC, no catch-up).

Same chain and settings form as ``esl_airbnb_bookings``; each night publishes a new run
and moves ``s3://synthetic/airbnb_bookings/latest.json`` to it. Downstream DAGs can be
scheduled on the Asset ``s3://synthetic/airbnb_bookings``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG

from airflow_synth.params import config_from_params, esl_params
from airflow_synth.task_groups import esl_task_group

SQL_DIR = os.environ.get("SYNTH_SQL_DIR") or str(Path(__file__).resolve().parent.parent / "sql")

with DAG(
    dag_id="esl_airbnb_bookings_nightly",
    description="Nightly synthetic refresh of the Airbnb bookings feature table",
    schedule="0 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    template_searchpath=[SQL_DIR],
    render_template_as_native_obj=True,
    params=esl_params(),
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["airflow-synth", "esl", "nightly"],
    doc_md=__doc__,
) as dag:
    esl_task_group(
        config_from_params(
            dataset="airbnb_bookings",
            sql_file="features/session_features_by_user.sql",
            postgres_conn_id="userbookings_db",
            aws_conn_id="synth_s3",
            bucket="synthetic",
        ),
        group_id="esl",
    )
