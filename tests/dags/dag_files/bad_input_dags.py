"""One DAG per kind of bad input; test_bad_input.py runs each and expects a clean failure."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG

from airflow_synth.task_groups import ESLConfig, esl_task_group

TEST_SQL = Path(os.environ["SYNTH_TEST_SQL_DIR"])
FEATURES = "features/session_features_by_user.sql"

CASES: dict[str, dict] = {
    "missing_sql": {"sql_file": "features/does_not_exist.sql"},
    "sql_error": {"sql_file": str(TEST_SQL / "syntax_error.sql")},
    "zero_rows": {"sql_file": str(TEST_SQL / "zero_rows.sql"), "parameters": {"min_age": 10_000}},
    "unknown_synthesizer": {"sql_file": FEATURES, "synthesizer": "gausian_copula"},
    "bad_parameter": {
        "sql_file": FEATURES,
        "synthesizer": "ctgan",
        "synthesizer_params": {"epoch": 5},
    },
    "missing_postgres_connection": {"sql_file": FEATURES, "postgres_conn_id": "no_such_db"},
    "wrong_s3_credentials": {"sql_file": FEATURES, "aws_conn_id": "synth_s3_wrong_secret"},
    "contract_mismatch": {"sql_file": str(TEST_SQL / "contract_mismatch.sql")},
    "quality_gate": {"sql_file": FEATURES, "checks": {"min_quality": 0.999}},
    "unknown_check": {"sql_file": FEATURES, "checks": {"max_dcr": 0.5}},
}

for case, overrides in CASES.items():
    settings = {
        "postgres_conn_id": "userbookings_db",
        "aws_conn_id": "synth_s3",
        "bucket": "synthetic",
        **overrides,
    }
    with DAG(dag_id=f"bad_input_{case}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        esl_task_group(ESLConfig(dataset=f"bad_{case}", **settings), group_id="esl")
    globals()[f"dag_{case}"] = dag
