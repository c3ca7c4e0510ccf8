"""Daily maintenance: nothing real left behind.

``synth_maintenance`` sweeps, once a day, what runs that never cleaned up left: staged real
rows in the private staging bucket (``s3://synthetic-staging/runs/``) and local staging
folders of runs whose teardown never ran (a worker killed mid-task), run folders without a
manifest and their models in ``s3://synthetic/`` (a publication that died midway), and
publish attempts no reader can reach any more. Leftovers are swept once their newest file
is older than ``sweep_after_hours`` (the Trigger form; default 24, or the ``synth``
connection's). Every ESL run also sweeps at its start, before it reads a row.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_synth.operators import ESLSweepOperator

with DAG(
    dag_id="synth_maintenance",
    description="Sweep staged real rows and unpublished runs that nobody cleaned up",
    schedule="30 3 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    params={
        "sweep_after_hours": Param(
            24, type="number", minimum=0, title="Sweep leftovers older than (hours)"
        ),
    },
    tags=["airflow-synth", "maintenance"],
    doc_md=__doc__,
) as dag:
    ESLSweepOperator(
        task_id="sweep",
        sweep_after_hours="{{ params.sweep_after_hours }}",
        aws_conn_id="synth_s3",
        bucket="synthetic",
    )
