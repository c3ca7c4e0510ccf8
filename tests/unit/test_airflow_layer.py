"""The Airflow shell: provider registration, SynthHook settings, DAG parsing, runtime coercion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from airflow.sdk.definitions.mappedoperator import MappedOperator

from airflow_synth.core.assess.checks import CheckSettings
from airflow_synth.core.errors import ConnectionConfigError, SynthesizerConfigError
from airflow_synth.hooks.synth import SynthHook
from airflow_synth.params import CHECK_PARAMS
from airflow_synth.runtime import as_dict, as_int

pytestmark = pytest.mark.unit

PROJECT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def _airflow_cli(*args: str) -> list | dict:
    out = subprocess.run(
        [AIRFLOW, *args, "-o", "json"], capture_output=True, text=True, check=True, env=os.environ
    ).stdout
    return json.loads(out)


# --- provider registration ------------------------------------------------------------------
def test_airflow_providers_list_shows_airflow_synth() -> None:
    names = {p["package_name"] for p in _airflow_cli("providers", "list")}
    assert "airflow-synth" in names


def test_provider_registers_connection_type_and_task_decorator() -> None:
    (info,) = _airflow_cli("providers", "get", "airflow-synth", "--full")
    types = {c["connection-type"]: c for c in info["connection-types"]}
    assert types["synth"]["hook-class-name"] == "airflow_synth.hooks.synth.SynthHook"
    assert set(types["synth"]["conn-fields"]) == {
        "aws_conn_id",
        "bucket",
        "synthesizer",
        "synthesizer_params",
        "sweep_after_hours",
    }
    decorators = {d["name"]: d["class-name"] for d in info["task-decorators"]}
    assert decorators == {"synthesize": "airflow_synth.decorators.synthesize.synthesize_task"}
    behaviours = {b["field_behaviours"] for b in _airflow_cli("providers", "behaviours")}
    assert "synth" in behaviours


def test_task_synthesize_is_available_on_airflow_task() -> None:
    from airflow.sdk import task

    from airflow_synth.decorators.synthesize import synthesize_task

    assert task.synthesize is synthesize_task


# --- SynthHook ------------------------------------------------------------------------------
@pytest.fixture
def synth_connection(monkeypatch: pytest.MonkeyPatch) -> str:
    conn = {
        "conn_type": "synth",
        "extra": {
            "aws_conn_id": "lake_s3",
            "extra__synth__bucket": "team-synthetic",
            "synthesizer": "ctgan",
            "synthesizer_params": '{"epochs": 7}',
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_SYNTH_UNIT", json.dumps(conn))
    return "synth_unit"


def test_hook_reads_defaults_from_a_synth_connection(synth_connection: str) -> None:
    hook = SynthHook(synth_connection)
    assert (hook.aws_conn_id, hook.bucket) == ("lake_s3", "team-synthetic")
    spec = hook.synthesizer_spec()
    assert (spec.name, spec.params) == ("ctgan", {"epochs": 7})
    assert hook.layout("d", "r").uri("k") == "s3://team-synthetic/k"


def test_explicit_arguments_win_over_the_connection(synth_connection: str) -> None:
    hook = SynthHook(synth_connection, aws_conn_id="other", bucket="b2")
    assert (hook.aws_conn_id, hook.bucket) == ("other", "b2")
    spec = hook.synthesizer_spec("gaussian_copula", {"default_distribution": "truncnorm"})
    assert spec.params == {"default_distribution": "truncnorm"}  # connection's epochs not mixed in


def test_hook_without_connection_uses_plain_defaults() -> None:
    hook = SynthHook()
    assert (hook.aws_conn_id, hook.bucket, hook.synthesizer_spec().name) == (
        "aws_default",
        "synthetic",
        "tabular_argn",  # "auto" with the argn extra installed
    )


def test_missing_synth_connection_names_it() -> None:
    with pytest.raises(ConnectionConfigError, match="'no_such_synth'.*not defined"):
        _ = SynthHook("no_such_synth").bucket


def test_connection_of_the_wrong_type_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NOT_SYNTH", "postgresql://u:p@h:5432/db")
    with pytest.raises(ConnectionConfigError, match="type 'synth'"):
        _ = SynthHook("not_synth").bucket


# --- runtime coercion of templated values -----------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("", None), ("None", None), ("12", 12), (7, 7), (0, 0)]
)
def test_as_int_accepts_rendered_templates(value, expected) -> None:
    assert as_int(value, "rows") == expected


@pytest.mark.parametrize("value", ["x", "1.5e", -3, "-1"])
def test_as_int_rejects_garbage_with_the_parameter_name(value) -> None:
    with pytest.raises(SynthesizerConfigError, match="rows"):
        as_int(value, "rows")


def test_as_dict_accepts_json_text_and_rejects_lists() -> None:
    assert as_dict('{"epochs": 3}', "synthesizer_params") == {"epochs": 3}
    assert as_dict(None, "p") == {}
    with pytest.raises(SynthesizerConfigError, match="synthesizer_params"):
        as_dict("[1, 2]", "synthesizer_params")


# --- the ready-made DAGs ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT / "dags"))


def test_every_ready_made_dag_imports(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {
        "esl_airbnb_bookings",
        "esl_airbnb_bookings_nightly",
        "esl_airbnb_bookings_health",
        "seed_userbookings_db",
        "seed_database_from_spec",
        "esl_airbnb_multitable",
        "synth_maintenance",
    }


def test_the_maintenance_dag_sweeps_daily(dagbag) -> None:
    from airflow_synth.operators import ESLSweepOperator

    dag = dagbag.dags["synth_maintenance"]
    (task,) = dag.tasks
    assert isinstance(task, ESLSweepOperator) and task.prune
    assert (task.aws_conn_id, task.bucket) == ("synth_s3", "synthetic")
    assert task.sweep_after_hours == "{{ params.sweep_after_hours }}"
    assert dag.params["sweep_after_hours"] == 24
    assert not dag.catchup and dag.max_active_runs == 1


def test_multitable_dag_wires_publish_target_load_and_teardown(dagbag) -> None:
    dag = dagbag.dags["esl_airbnb_multitable"]
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {
        "esl.extract",
        "esl.extract_table",
        "esl.collect",
        "esl.prepare",
        "esl.fit",
        "esl.synthesize",
        "esl.publish",
        "esl.load_target",
        "esl.cleanup_staging",
    }
    # planned and checked once, each table extracted in a mapped task of its own
    assert isinstance(tasks["esl.extract_table"], MappedOperator)
    assert tasks["esl.extract_table"].upstream_task_ids == {"esl.extract"}
    assert tasks["esl.collect"].upstream_task_ids == {"esl.extract", "esl.extract_table"}
    # prepared once, each table fitted in a mapped task of its own, sampled together
    assert isinstance(tasks["esl.fit"], MappedOperator)
    assert tasks["esl.fit"].upstream_task_ids == {"esl.collect", "esl.prepare"}
    assert tasks["esl.synthesize"].upstream_task_ids == {"esl.collect", "esl.prepare", "esl.fit"}
    assert tasks["esl.publish"].upstream_task_ids == {"esl.collect", "esl.synthesize"}
    assert tasks["esl.cleanup_staging"].is_teardown
    assert tasks["esl.extract"].is_setup
    assert [o.uri for o in tasks["esl.publish"].outlets] == ["s3://synthetic/airbnb_multitable"]
    assert tasks["esl.load_target"].upstream_task_ids == {"esl.publish"}
    assert {"max_parents", "scale", "load_to_target", "target_schema", "min_quality"} <= set(
        dag.params
    )


@pytest.mark.parametrize("dag_id", ["esl_airbnb_bookings", "esl_airbnb_bookings_nightly"])
def test_esl_dags_wire_the_chain_with_a_teardown_and_an_asset(dagbag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {
        "esl.extract",
        "esl.train",
        "esl.sample",
        "esl.assess",
        "esl.load",
        "esl.cleanup_staging",
    }
    assert tasks["esl.cleanup_staging"].is_teardown
    assert tasks["esl.extract"].is_setup
    assert tasks["esl.train"].upstream_task_ids == {"esl.extract"}
    # train once, sample in shards mapped over train's plan, assess the union
    assert isinstance(tasks["esl.sample"], MappedOperator)
    assert tasks["esl.sample"].upstream_task_ids == {"esl.extract", "esl.train"}
    assert tasks["esl.assess"].upstream_task_ids == {"esl.extract", "esl.train", "esl.sample"}
    assert "esl.assess" in tasks["esl.load"].upstream_task_ids
    assert [a.uri for a in tasks["esl.load"].outlets] == ["s3://synthetic/airbnb_bookings"]
    assert set(dag.params) == {
        "rows",
        "synthesizer",
        "epochs",
        "max_training_rows",
        "shards",
        "reuse_model",
        "max_drift",
        "max_model_age_hours",
        "seed",
        "csv",
        "dry_run",
        *CHECK_PARAMS,
    }
    assert set(CHECK_PARAMS) <= {f.name for f in fields(CheckSettings)}
    # the nightly refresh reuses its model while the source holds still; on demand: trains
    assert dag.params["reuse_model"] is (dag_id == "esl_airbnb_bookings_nightly")
    assert tasks["esl.train"].reuse_model == "{{ params.reuse_model }}"
    assert dag.params.get_param("synthesizer").schema["enum"] == [
        "auto",
        "gaussian_copula",
        "ctgan",
        "tvae",
        "copulagan",
        "tabular_argn",
    ]


def test_nightly_dag_runs_nightly_without_catch_up(dagbag) -> None:
    dag = dagbag.dags["esl_airbnb_bookings_nightly"]
    assert dag.catchup is False
    assert dag.timetable.expression == "0 2 * * *"
    assert dagbag.dags["esl_airbnb_bookings"].schedule is None


def test_parsing_a_dag_file_imports_no_heavy_library() -> None:
    """DAG files are parsed often: SDV/pandas/torch must load only when a task runs."""
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        "print(','.join(m for m in ('sdv', 'torch', 'pandas', 'sdmetrics') if m in sys.modules))"
    )
    for name in ("esl_airbnb_bookings.py", "seed_userbookings_db.py"):
        out = (
            subprocess.run(
                [sys.executable, "-c", code, str(PROJECT / "dags" / name)],
                capture_output=True,
                text=True,
                check=True,
                env=os.environ,
            )
            .stdout.strip()
            .splitlines()[-1:]
        )
        assert out in ([], [""]), f"{name} imports {out} at parse time"
