"""DAGs whose configuration is wrong in a later step; test_validate_first.py runs each.

Every DAG reads from the real, seeded source (``userbookings_db``): without the check
before the query, its extract would succeed and stage real rows. Nothing here looks a
connection up: the DAG files only name them (no I/O at parse time).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_synth.task_groups import (
    ESLConfig,
    MultiTableConfig,
    esl_multitable_task_group,
    esl_task_group,
)
from airflow_synth.tasks import cleanup_staging, extract_table, load_table, synthesize_table

FEATURES = "features/session_features_by_user.sql"
SOURCE = {"postgres_conn_id": "userbookings_db"}
STORE = {"aws_conn_id": "synth_s3", "bucket": "synthetic"}
START = datetime(2026, 1, 1)

# The Trigger form's value arrives rendered as text (no native rendering): "gausian".
with DAG(
    dag_id="validate_first_unknown_synthesizer",
    schedule=None,
    start_date=START,
    params={"synthesizer": Param("gausian", type="string"), "rows": Param(50, type="integer")},
) as dag_unknown_synthesizer:
    esl_task_group(
        ESLConfig(
            dataset="vf_unknown_synthesizer",
            sql_file=FEATURES,
            synthesizer="{{ params.synthesizer }}",
            num_rows="{{ params.rows }}",
            **SOURCE,
            **STORE,
        ),
        group_id="esl",
    )

with DAG(
    dag_id="validate_first_unknown_aws_connection", schedule=None, start_date=START
) as dag_unknown_aws_connection:
    esl_task_group(
        ESLConfig(
            dataset="vf_unknown_aws_connection",
            sql_file=FEATURES,
            aws_conn_id="no_such_s3",
            bucket="synthetic",
            **SOURCE,
        ),
        group_id="esl",
    )

# TaskFlow: the user hands extract_table the settings of the later tasks.
with DAG(
    dag_id="validate_first_taskflow_unknown_synth_connection", schedule=None, start_date=START
) as dag_taskflow_unknown_synth_connection:
    later = {"synth_conn_id": "no_such_synth", **STORE}
    staged = extract_table(
        sql_file=FEATURES, dataset="vf_taskflow", validate=later, contract_file=None, **SOURCE
    )
    synthetic = synthesize_table(staged, dataset="vf_taskflow", **later)
    published = load_table(staged, synthetic, dataset="vf_taskflow", **later)
    published >> cleanup_staging(dataset="vf_taskflow", **STORE).as_teardown(setups=staged)

with DAG(
    dag_id="validate_first_multitable_unknown_target", schedule=None, start_date=START
) as dag_multitable_unknown_target:
    esl_multitable_task_group(
        MultiTableConfig(
            dataset="vf_multitable",
            tables=["users", "sessions"],
            max_parents=50,
            target_conn_id="no_such_target_db",
            target_schema="vf_synthetic",
            **SOURCE,
            **STORE,
        ),
        group_id="esl",
    )
