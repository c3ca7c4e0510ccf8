"""The nightly chain with model reuse on a small table of its own (test_model_reuse_dag.py).

Built like ``esl_airbnb_bookings_nightly`` (:func:`~airflow_synth.dag_factory.esl_dag` with
``reuse_model`` on), on its own dataset and source table so the demo dataset's runs and
``latest.json`` are left alone.
"""

from __future__ import annotations

import os

from airflow_synth.dag_factory import esl_dag

dag = esl_dag(
    "nightly_reuse",
    {
        "dataset": "reuse_nightly",
        "sql_file": "reuse_nightly.sql",
        "postgres_conn_id": "userbookings_db",
        "aws_conn_id": "synth_s3",
        "bucket": "synthetic",
    },
    sql_dirs=[os.environ["SYNTH_TEST_SQL_DIR"]],
    params={"reuse_model": True, "synthesizer": "gaussian_copula", "seed": 5},
    tags=["airflow-synth", "test"],
)
