"""Bad input fails the run with a message naming what to fix, and publishes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dagtest_helpers import DAG_FILES, load_dag_module

pytestmark = pytest.mark.dags

BUCKET = "synthetic"

# case -> (failing task, phrases the task's error must contain)
EXPECTED = {
    "missing_sql": ("extract", ["features/does_not_exist.sql", "not found", "Looked in"]),
    "sql_error": ("extract", ["syntax_error.sql", "failed in the database", "line 3"]),
    "zero_rows": ("extract", ["zero_rows.sql", "returned 0 rows"]),
    "unknown_synthesizer": (
        "extract",
        ["Unknown synthesizer 'gausian_copula'", "Did you mean 'gaussian_copula'"],
    ),
    "bad_parameter": ("extract", ["no parameter 'epoch'", "Did you mean 'epochs'"]),
    "missing_postgres_connection": (
        "extract",
        ["'no_such_db'", "Create the Airflow connection", "AIRFLOW_CONN_NO_SUCH_DB"],
    ),
    "wrong_s3_credentials": (
        "extract",
        ["synth_s3_wrong_secret", "Check the access key and secret"],
    ),
    "contract_mismatch": (
        "extract",
        [
            "contract_mismatch.contract.yaml",
            "- language (string): in the contract but not returned",
            "~ age: contract says float, query returns string",
        ],
    ),
    "quality_gate": (
        "synthesize",
        ["FAIL quality_score", "(must be >= 0.999)", "nothing was published"],
    ),
    "unknown_check": ("extract", ["Unknown check setting 'max_dcr'", "'max_dcr_share'"]),
}


@pytest.fixture(scope="module")
def bad_dags(seeded_source, dags_folder: Path):
    return load_dag_module(dags_folder / "bad_input_dags.py")


def test_every_bad_input_case_is_covered(bad_dags) -> None:
    assert set(bad_dags.CASES) == set(EXPECTED)
    assert (DAG_FILES / "bad_input_dags.py").is_file()


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_input_fails_clearly_and_publishes_nothing(case, bad_dags, s3_client, capfd) -> None:
    failing_task, phrases = EXPECTED[case]
    dag = getattr(bad_dags, f"dag_{case}")

    dag_run = dag.test()
    output = "".join(capfd.readouterr())

    assert dag_run.state == "failed"
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states[f"esl.{failing_task}"] == "failed"
    assert states["esl.load"] in ("upstream_failed", "failed")
    for phrase in phrases:
        assert phrase in output, f"{phrase!r} missing from the task error"
    listed = s3_client.list_objects_v2(Bucket=BUCKET, Prefix=f"bad_{case}/")
    assert listed.get("KeyCount", 0) == 0, "a failed run published something"
    staging = Path(os.environ["SYNTH_STAGING_DIR"]) / f"bad_input_{case}"
    assert not [p for p in staging.rglob("*") if p.is_file()] if staging.exists() else True
