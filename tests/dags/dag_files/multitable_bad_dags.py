"""One multi-table DAG per kind of bad input; test_esl_multitable.py expects clean failures.

The tables of schema ``mt_bad`` are created by the test module (fixture ``bad_schema``).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_synth.task_groups import MultiTableConfig, esl_multitable_task_group

CASES: dict[str, dict] = {
    # cyc_a.b_id -> cyc_b.id and cyc_b.a_id -> cyc_a.id, both declared in the catalog
    "cyclic_fks": {"tables": ["cyc_a", "cyc_b"], "schema": "mt_bad"},
    # a parent without a primary key
    "parent_without_pk": {
        "tables": ["nopk_parent", "nopk_child"],
        "schema": "mt_bad",
        "relationships": ["nopk_child.parent_id -> nopk_parent.id"],
    },
    # 30% of the child rows reference no parent
    "many_orphans": {
        "tables": ["orph_parent", "orph_child"],
        "schema": "mt_bad",
        "relationships": ["orph_child.parent_id -> orph_parent.id"],
    },
    # a declared relationship that does not match the data at all
    "mismatched_relationship": {
        "tables": ["users", "sessions"],
        "relationships": ["sessions.action -> users.id"],
    },
}

for case, overrides in CASES.items():
    with DAG(dag_id=f"mt_bad_{case}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        esl_multitable_task_group(
            MultiTableConfig(
                dataset=f"mt_bad_{case}",
                postgres_conn_id="userbookings_db",
                aws_conn_id="synth_s3",
                bucket="synthetic",
                seed=1,
                max_parents=100,
                **overrides,
            ),
            group_id="esl",
        )
    globals()[f"dag_{case}"] = dag
