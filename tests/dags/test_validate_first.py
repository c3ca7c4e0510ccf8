"""A configuration error of a later step fails the extract task, before any real row is read.

Each DAG (tests/dags/dag_files/validate_first_dags.py) reads the real, seeded source, so
without the early check its extract would succeed, stage real rows and leave the failure
to the synthesize (or load_target) task. Here the extract fails naming what to fix, the
later tasks never run, the run's staging folder is never even created, and nothing is
published.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dagtest_helpers import load_dag_module, staged_objects

pytestmark = pytest.mark.dags

BUCKET = "synthetic"

# case -> (task ids: extract, the later tasks that must not run; dataset; phrases of the error)
EXPECTED = {
    "unknown_synthesizer": (
        "esl.extract",
        ["esl.train", "esl.sample", "esl.assess", "esl.load"],
        "vf_unknown_synthesizer",
        ["Unknown synthesizer 'gausian'", "Did you mean 'gaussian_copula'"],
    ),
    "unknown_aws_connection": (
        "esl.extract",
        ["esl.train", "esl.sample", "esl.assess", "esl.load"],
        "vf_unknown_aws_connection",
        ["'no_such_s3'", "Create the Airflow connection", "AIRFLOW_CONN_NO_SUCH_S3"],
    ),
    "taskflow_unknown_synth_connection": (
        "extract_table",
        ["synthesize_table", "load_table"],
        "vf_taskflow",
        ["'no_such_synth'", "is not defined", "Create it"],
    ),
    "multitable_unknown_target": (
        "esl.extract",
        [
            "esl.extract_table",
            "esl.collect",
            "esl.prepare",
            "esl.fit",
            "esl.synthesize",
            "esl.publish",
            "esl.load_target",
        ],
        "vf_multitable",
        ["'no_such_target_db'", "AIRFLOW_CONN_NO_SUCH_TARGET_DB=postgresql://"],
    ),
}


@pytest.fixture(scope="module")
def validate_first_dags(seeded_source, dags_folder: Path):
    return load_dag_module(dags_folder / "validate_first_dags.py")


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_a_bad_later_setting_fails_the_extract_before_any_row_is_read(
    case: str, validate_first_dags, s3_client, capfd
) -> None:
    extract, later, dataset, phrases = EXPECTED[case]
    dag = getattr(validate_first_dags, f"dag_{case}")

    dag_run = dag.test()
    output = "".join(capfd.readouterr())

    assert dag_run.state == "failed"
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states[extract] == "failed"
    for task_id in later:
        assert states[task_id] in ("upstream_failed", None), f"{task_id} ran: {states[task_id]}"
    for phrase in phrases:
        assert phrase in output, f"{phrase!r} missing from the extract task's error"
    # The extract failed before it staged anything, so no real row ever reached the staging
    # bucket (and the teardown found nothing to remove).
    assert staged_objects(s3_client, dag.dag_id) == []
    listed = s3_client.list_objects_v2(Bucket=BUCKET, Prefix=f"{dataset}/")
    assert listed.get("KeyCount", 0) == 0, "a failed run published something"
