"""Synthetic copy of the related tables ``users`` + ``sessions``, foreign keys intact.

Press Trigger: the DAG reads both tables from ``userbookings_db`` (their primary and foreign
keys come from the database catalog), models each table on its own (the ``per_table``
engine: the number of sessions per user is learned with the user, each session generated
with its user's context), samples a full-size synthetic set (as many users as real, each
with a learned number of sessions) in which every ``sessions.user_id`` points at a synthetic
user, checks that (referential integrity must be 1.0) together with the quality score and
per-table privacy, and publishes both tables under one manifest at
``s3://synthetic/airbnb_multitable/<run>/``. Choose engine ``hma`` for SDV's HMA on an
integrity-preserving subset (``max_parents`` users with *all* their sessions).

Tick *Load into the staging database* to also copy the set into schema ``target_schema`` of
the ``synth_target_db`` connection: one transaction, parents first, replacing the previous
load, so testers never see a half-loaded set.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_synth.params import esl_params
from airflow_synth.task_groups import MultiTableConfig, esl_multitable_task_group

#: The single-table checks that apply per table (the similarity filter on leaf tables only,
#: the outlier filter not at all: see the README).
GATE_PARAMS = (
    "holdout_share",
    "similarity_filter",
    "min_quality",
    "min_dependence",
    "max_exact_match_rate",
    "max_dcr_share",
)
_single_table = esl_params()

with DAG(
    dag_id="esl_airbnb_multitable",
    description="Extract -> synthesize -> load users + sessions with referential integrity",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "engine": Param(
            "per_table",
            enum=["per_table", "hma"],
            title="Engine",
            description="per_table: each table its own model, full size, any schema. hma: "
            "SDV's HMA on a subset of max_parents users (small schemas only).",
        ),
        "max_training_rows": Param(
            200_000,
            type="integer",
            minimum=0,
            title="Training rows per table (per_table)",
            description="Rows each table's model learns from; sampling still produces the "
            "full size. 0 = all rows.",
        ),
        "max_parents": Param(
            1_000,
            type="integer",
            minimum=0,
            title="Users to train on (hma)",
            description="Users sampled (with all their sessions) for HMA's training; bounds "
            "time and memory. 0 = all users (slow: HMA cost grows with every parent).",
        ),
        "scale": Param(
            1.0,
            type="number",
            exclusiveMinimum=0,
            title="Synthetic size",
            description="per_table: x the real tables (1.0 = as many users as real, each with "
            "a learned number of sessions). hma: x the training subset (~50 ms per user).",
        ),
        "seed": Param(42, type=["null", "integer"], title="Random seed"),
        "csv": Param(False, type="boolean", title="Also publish CSV"),
        "load_to_target": Param(
            False, type="boolean", title="Load into the staging database (synth_target_db)"
        ),
        "target_schema": Param(
            "airbnb_synthetic", type="string", minLength=1, title="Target schema"
        ),
        **{name: _single_table[name] for name in GATE_PARAMS},
        "max_orphan_share": Param(
            0.05,
            type="number",
            minimum=0,
            maximum=1,
            title="Maximum share of orphan child rows",
            description="Sessions whose user does not exist are left out (and counted); above "
            "this share the relationship is taken to be wrong and the run fails.",
        ),
    },
    tags=["airflow-synth", "esl", "multi-table", "demo"],
    doc_md=__doc__,
) as dag:
    esl_multitable_task_group(
        MultiTableConfig(
            dataset="airbnb_multitable",
            tables=["users", "sessions"],
            postgres_conn_id="userbookings_db",
            aws_conn_id="synth_s3",
            bucket="synthetic",
            seed="{{ params.seed }}",
            engine="{{ params.engine }}",
            max_training_rows="{{ params.max_training_rows }}",
            max_parents="{{ params.max_parents }}",
            scale="{{ params.scale }}",
            max_orphan_share="{{ params.max_orphan_share }}",
            checks={name: "{{ params." + name + " }}" for name in GATE_PARAMS},
            formats="{{ ['parquet', 'csv'] if params.csv else ['parquet'] }}",
            target_conn_id="synth_target_db",
            target_schema="{{ params.target_schema }}",
            load_to_target="{{ params.load_to_target }}",
        ),
        group_id="esl",
    )
