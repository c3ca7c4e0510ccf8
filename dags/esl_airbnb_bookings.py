"""Synthetic Airbnb bookings: on demand, and refreshed every night.

``esl_airbnb_bookings``: press Trigger, pick rows / synthesizer / epochs / seed.
``esl_airbnb_bookings_nightly``: the same chain at 02:00 UTC, no catch-up; each night
publishes a new run and moves ``s3://synthetic/airbnb_bookings/latest.json`` to it. It
reuses the last published model (no training) while the source drifted at most
``max_drift`` (0.1) since the model was trained and the model is younger than
``max_model_age_hours`` (168); the manifest's ``synthesis.model_reuse`` says which and why.

Both extract ``sql/features/session_features_by_user.sql`` through the ``userbookings_db``
connection, train a local SDV synthesizer, and publish to ``s3://synthetic/airbnb_bookings/``
(connection ``synth_s3``). Downstream DAGs can be scheduled on the Asset
``s3://synthetic/airbnb_bookings``. ``esl_airbnb_bookings_health`` fails every morning the
dataset is stale (> 26 h) or its quality fell (> 0.05 below the previous run).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param

from airflow_synth.dag_factory import esl_dag
from airflow_synth.operators import ESLHealthCheckOperator

SQL_DIR = os.environ.get("SYNTH_SQL_DIR") or str(Path(__file__).resolve().parent.parent / "sql")

AIRBNB_BOOKINGS = {
    "dataset": "airbnb_bookings",
    "sql_file": "features/session_features_by_user.sql",
    "postgres_conn_id": "userbookings_db",
    "aws_conn_id": "synth_s3",
    "bucket": "synthetic",
}

dag = esl_dag(
    "esl_airbnb_bookings",
    AIRBNB_BOOKINGS,
    sql_dirs=[SQL_DIR],
    description="Extract -> synthesize -> load the Airbnb bookings feature table",
    tags=["airflow-synth", "esl", "demo"],
    doc_md=__doc__,
)

nightly_dag = esl_dag(
    "esl_airbnb_bookings_nightly",
    AIRBNB_BOOKINGS,
    schedule="0 2 * * *",
    sql_dirs=[SQL_DIR],
    # a night whose source has not drifted reuses the last model (no training): the run
    # is extract + sample + checks; retrained on drift > 0.1 or after a week
    params={"reuse_model": True},
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
    description="Nightly synthetic refresh of the Airbnb bookings feature table",
    tags=["airflow-synth", "esl", "nightly"],
    doc_md=__doc__,
)

with DAG(
    dag_id="esl_airbnb_bookings_health",
    description="Alert when the synthetic bookings are stale or got worse",
    schedule="0 6 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "max_age_hours": Param(26, type="number", minimum=0, title="Maximum age (hours)"),
        "max_quality_drop": Param(
            0.05, type="number", minimum=0, title="Maximum quality drop vs the previous run"
        ),
    },
    tags=["airflow-synth", "health"],
    doc_md="Fails (and alerts) when `airbnb_bookings` is older than the limit or its quality "
    "score fell by more than the margin since the run before.",
) as health_dag:
    ESLHealthCheckOperator(
        task_id="check_freshness_and_quality",
        dataset=AIRBNB_BOOKINGS["dataset"],
        aws_conn_id=AIRBNB_BOOKINGS["aws_conn_id"],
        bucket=AIRBNB_BOOKINGS["bucket"],
        max_age="{{ params.max_age_hours }}",
        max_quality_drop="{{ params.max_quality_drop }}",
    )
