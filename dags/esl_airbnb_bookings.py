"""Synthetic Airbnb bookings, on demand: press Trigger, pick rows/synthesizer/epochs/seed.

Extracts ``sql/features/session_features_by_user.sql`` from the ``userbookings_db``
connection, trains a local SDV synthesizer, and publishes the synthetic table to
``s3://synthetic/airbnb_bookings/<run>/`` (connection ``synth_s3``).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG

from airflow_synth.params import config_from_params, esl_params
from airflow_synth.task_groups import esl_task_group

SQL_DIR = os.environ.get("SYNTH_SQL_DIR") or str(Path(__file__).resolve().parent.parent / "sql")

with DAG(
    dag_id="esl_airbnb_bookings",
    description="Extract -> synthesize -> load the Airbnb bookings feature table",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    template_searchpath=[SQL_DIR],
    render_template_as_native_obj=True,
    params=esl_params(),
    tags=["airflow-synth", "esl", "demo"],
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
