"""The stress schema (specs/stress.yaml: composite keys, depth 4, 11 tables, several parents,
a link table, a self-reference, an optional parent, an unrelated table) through the
multi-table TaskGroup with the per-table engine, loaded into a target schema that declares
every key and foreign key."""

from datetime import datetime

from airflow.sdk import DAG

from airflow_synth.task_groups.multitable import MultiTableConfig, esl_multitable_task_group

STRESS_TABLES = [
    "region",
    "nation",
    "customers",
    "employees",
    "salary_history",
    "orders",
    "part",
    "supplier",
    "partsupp",
    "lineitem",
    "holidays",
]

with DAG(
    dag_id="stress_multitable",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
) as stress_dag:
    esl_multitable_task_group(
        MultiTableConfig(
            dataset="stress_set",
            tables=STRESS_TABLES,
            postgres_conn_id="stress_src",
            aws_conn_id="synth_s3",
            bucket="synthetic",
            seed=7,
            engine="per_table",
            # tables of 5 to 60 rows: dependence and the DCR share are noise at that size
            # (a 60-row employees table: DCR share 95% CI 0.53-0.87); keys are the point here
            checks={"min_dependence": None, "max_dcr_share": None},
            target_conn_id="synth_target_db",
            target_schema="stress_synthetic",
        ),
        group_id="esl",
    )
