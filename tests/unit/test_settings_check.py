"""Configuration is validated before any real row is read (issue 9, last bullet).

The pure check (``core/settings_check.py``), the task's connection look-ups
(``preflight.py``), and the wiring: every extract entry point runs the check before it
connects to the source, and the task groups hand the extract the later steps' settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_synth.core.engine.synthesizers import resolve_synthesizer
from airflow_synth.core.errors import (
    ConnectionConfigError,
    ContractError,
    SqlFileError,
    SynthesizerConfigError,
)
from airflow_synth.core.settings_check import validate_run_settings

pytestmark = pytest.mark.unit


# --- the pure check --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "phrases"),
    [
        ({"synthesizer": "gausian"}, ["Unknown synthesizer 'gausian'", "'gaussian_copula'"]),
        (
            {"synthesizer": "ctgan", "synthesizer_params": {"epoch": 5}},
            ["no parameter 'epoch'", "Did you mean 'epochs'"],
        ),
        ({"synthesizer_params": "{not json"}, ["synthesizer_params must be a JSON object"]),
        ({"synthesizer": "tvae", "epochs": "many"}, ["epochs must be a whole number"]),
        ({"checks": {"max_dcr": 0.5}}, ["Unknown check setting 'max_dcr'", "'max_dcr_share'"]),
        ({"checks": {"min_quality": "high"}}, ["min_quality must be a number"]),
        ({"checks": {"holdout_share": "1.5"}}, ["holdout_share must be in [0, 1)"]),
        ({"num_rows": "-1"}, ["num_rows must not be negative"]),
        ({"seed": "abc"}, ["seed must be a whole number"]),
        ({"shards": "some"}, ["shards must be a whole number"]),
        ({"shards": "5000"}, ["5000 shards asked", "at most 256"]),
        ({"max_parents": "lots"}, ["max_parents must be a whole number"]),
        ({"scale": "0"}, ["scale must be positive"]),
        ({"synthesiser": "ctgan"}, ["Unknown setting 'synthesiser'", "'synthesizer'"]),
        (
            {"target_conn_id": "db", "target_schema": " ", "load_to_target": "True"},
            ["target_schema is empty"],
        ),
    ],
)
def test_a_bad_setting_is_refused_naming_it(settings: dict, phrases: list[str]) -> None:
    with pytest.raises(SynthesizerConfigError) as caught:
        validate_run_settings(settings)
    for phrase in phrases:
        assert phrase in str(caught.value)


def test_rendered_trigger_form_values_are_accepted() -> None:
    """Without native rendering every Param arrives as text; the check must read it as such."""
    checked = validate_run_settings(
        {
            "synthesizer": "ctgan",
            "synthesizer_params": '{"batch_size": 500}',
            "epochs": "7",
            "num_rows": "0",
            "seed": "None",
            "checks": {"min_quality": "0.8", "similarity_filter": "False", "max_dcr_share": ""},
            "aws_conn_id": "",
            "bucket": "synthetic",
            "synth_conn_id": None,
        }
    )
    assert checked.spec is not None
    assert (checked.spec.name, checked.spec.params) == ("ctgan", {"batch_size": 500, "epochs": 7})
    assert checked.checks is not None
    assert (checked.checks.min_quality, checked.checks.similarity_filter) == (0.8, False)
    assert checked.checks.max_dcr_share is None
    assert checked.numbers == {"num_rows": 0, "seed": None}
    assert (checked.aws_conn_id, checked.bucket, checked.synth_conn_id) == (None, "synthetic", None)
    assert checked.store_given


def test_the_same_spec_as_the_synthesize_step_is_resolved() -> None:
    """epochs goes to neural models only, and an epochs in the params wins."""
    calls: list[tuple[Any, dict]] = []

    def resolver(name: str | None, params: dict[str, Any]):
        calls.append((name, params))
        return resolve_synthesizer(name, params)

    spec = validate_run_settings(
        {"synthesizer": "gaussian_copula", "epochs": 9}, resolve_spec=resolver
    ).spec
    assert spec is not None and spec.name == "gaussian_copula" and spec.params == {}
    spec = validate_run_settings({"synthesizer": None, "epochs": 9}).spec
    assert spec is not None and spec.name == "tabular_argn" and spec.params == {"epochs": 9}
    spec = validate_run_settings(
        {"synthesizer": "tvae", "synthesizer_params": {"epochs": 3}, "epochs": 9}
    ).spec
    assert spec is not None and spec.params == {"epochs": 3}
    assert calls == [("gaussian_copula", {})]


def test_nothing_given_means_nothing_checked() -> None:
    checked = validate_run_settings(None)
    assert (checked.spec, checked.checks, checked.numbers, checked.store_given) == (
        None,
        None,
        {},
        False,
    )


def test_a_switched_off_target_load_is_not_checked() -> None:
    off = validate_run_settings(
        {"target_conn_id": "staging_db", "target_schema": "", "load_to_target": "False"}
    )
    assert off.target_conn_id is None
    on = validate_run_settings(
        {"target_conn_id": "staging_db", "target_schema": "shop", "load_to_target": True}
    )
    assert (on.target_conn_id, on.target_schema) == ("staging_db", "shop")


def test_every_sql_file_is_found_before_any_is_read(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("SELECT 1")
    checked = validate_run_settings(
        {}, sql_files={"a": "a.sql", "b": None}, sql_dirs=[str(tmp_path)]
    )
    assert checked.sql_files == {"a": (tmp_path / "a.sql").resolve()}
    with pytest.raises(SqlFileError, match="'missing.sql' not found"):
        validate_run_settings({}, sql_files={"a": "a.sql", "c": "missing.sql"}, sql_dirs=[tmp_path])
    (tmp_path / "empty.sql").write_text("-- nothing\n")
    with pytest.raises(SqlFileError, match="is empty"):
        validate_run_settings({}, sql_files={"e": "empty.sql"}, sql_dirs=[tmp_path])


# --- the task's connection look-ups -----------------------------------------------------------
def test_an_unknown_aws_connection_fails_the_preflight_naming_it() -> None:
    from airflow_synth.preflight import preflight

    with pytest.raises(ConnectionConfigError) as caught:
        preflight({"aws_conn_id": "no_such_s3", "bucket": "synthetic", "synth_conn_id": None})
    message = str(caught.value)
    assert "'no_such_s3'" in message and "AIRFLOW_CONN_NO_SUCH_S3" in message


def test_an_unknown_synth_connection_fails_the_preflight_naming_it() -> None:
    from airflow_synth.preflight import preflight

    with pytest.raises(ConnectionConfigError, match="'no_such_synth'.*not defined"):
        preflight({"synth_conn_id": "no_such_synth", "synthesizer": "ctgan"})


def test_an_unknown_target_connection_fails_the_preflight_naming_it() -> None:
    from airflow_synth.preflight import preflight

    with pytest.raises(ConnectionConfigError) as caught:
        preflight({"target_conn_id": "no_such_target", "target_schema": "s"})
    message = str(caught.value)
    assert "'no_such_target'" in message
    assert "AIRFLOW_CONN_NO_SUCH_TARGET=postgresql://" in message


def test_the_synth_connections_default_synthesizer_is_checked_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_synth.preflight import preflight

    conn = {"conn_type": "synth", "extra": {"synthesizer": "gan_of_my_own"}}
    monkeypatch.setenv("AIRFLOW_CONN_SYNTH_PREFLIGHT", json.dumps(conn))
    with pytest.raises(SynthesizerConfigError, match="Unknown synthesizer 'gan_of_my_own'"):
        preflight({"synth_conn_id": "synth_preflight", "synthesizer": None})


def test_a_defined_target_connection_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_synth.preflight import preflight

    monkeypatch.setenv("AIRFLOW_CONN_STAGING_PREFLIGHT", "postgresql://u:p@localhost:5432/db")
    checked = preflight(
        {"target_conn_id": "staging_preflight", "target_schema": "s", "load_to_target": "true"}
    )
    assert checked.target_conn_id == "staging_preflight"


# --- every extract entry point checks first -------------------------------------------------
def _context(tmp_path: Path) -> dict[str, Any]:
    dag = SimpleNamespace(dag_id="preflight_dag", template_searchpath=[str(tmp_path)], fileloc=None)
    return {"dag": dag, "run_id": "manual__1"}


@pytest.fixture
def sql_dir(tmp_path: Path) -> Path:
    (tmp_path / "q.sql").write_text("SELECT 1 AS a")
    return tmp_path


@pytest.mark.parametrize(
    ("validate", "error", "phrase"),
    [
        ({"synthesizer": "gausian"}, SynthesizerConfigError, "Did you mean 'gaussian_copula'"),
        ({"checks": '{"max_dcr": 0.5}'}, SynthesizerConfigError, "'max_dcr_share'"),
        ({"aws_conn_id": "no_such_s3"}, ConnectionConfigError, "'no_such_s3'"),
    ],
)
def test_execute_extract_checks_before_connecting_or_staging(
    sql_dir: Path, validate: dict, error: type, phrase: str
) -> None:
    """The source connection does not even exist: the settings error must come first."""
    from airflow_synth.runtime import execute_extract

    staging = sql_dir / "staging"
    with pytest.raises(error, match=phrase):
        execute_extract(
            _context(sql_dir),
            sql_file="q.sql",
            dataset="d",
            postgres_conn_id="no_such_source",
            render=lambda text: text,
            staging_dir=str(staging),
            validate=validate,
        )
    assert not staging.exists()


def test_execute_extract_refuses_a_missing_contract_before_connecting(sql_dir: Path) -> None:
    from airflow_synth.runtime import execute_extract

    with pytest.raises(ContractError, match="nope.contract.yaml not found"):
        execute_extract(
            _context(sql_dir),
            sql_file="q.sql",
            dataset="d",
            postgres_conn_id="no_such_source",
            render=lambda text: text,
            contract_file="nope.contract.yaml",
            staging_dir=str(sql_dir / "staging"),
            validate={"synthesizer": "gaussian_copula"},
        )


def test_valid_settings_reach_the_source_connection(sql_dir: Path) -> None:
    """With good settings the next failure is the (missing) source: the check let it pass."""
    from airflow_synth.runtime import execute_extract

    with pytest.raises(ConnectionConfigError, match="'no_such_source'"):
        execute_extract(
            _context(sql_dir),
            sql_file="q.sql",
            dataset="d",
            postgres_conn_id="no_such_source",
            render=lambda text: text,
            staging_dir=str(sql_dir / "staging"),
            validate={"synthesizer": "ctgan", "epochs": "3", "checks": {"min_quality": "0.5"}},
        )


def test_multitable_extract_checks_every_sql_file_and_setting_first(sql_dir: Path) -> None:
    from airflow_synth.runtime_multitable import execute_multitable_extract

    common = {
        "dataset": "d",
        "postgres_conn_id": "no_such_source",
        "staging_dir": str(sql_dir / "staging"),
    }
    with pytest.raises(SqlFileError, match="'gone.sql' not found"):
        execute_multitable_extract(
            _context(sql_dir), tables={"a": "q.sql", "b": None, "c": "gone.sql"}, **common
        )
    with pytest.raises(SynthesizerConfigError, match="max_orphan_share must be a number"):
        execute_multitable_extract(
            _context(sql_dir), tables=["a"], validate={"max_orphan_share": "x"}, **common
        )
    with pytest.raises(ConnectionConfigError, match="'no_such_target'"):
        execute_multitable_extract(
            _context(sql_dir),
            tables=["a"],
            validate={"target_conn_id": "no_such_target", "target_schema": "s"},
            **common,
        )
    assert not (sql_dir / "staging").exists()


def test_the_classic_operators_pass_validate_to_the_check(sql_dir: Path) -> None:
    from airflow_synth.operators import ESLExtractOperator
    from airflow_synth.operators.multitable import MultiTableExtractOperator

    single = ESLExtractOperator(
        task_id="extract",
        sql_file="q.sql",
        dataset="d",
        postgres_conn_id="no_such_source",
        staging_dir=str(sql_dir / "staging"),
        validate={"synthesizer": "ctgan", "synthesizer_params": {"epoch": 5}},
    )
    with pytest.raises(SynthesizerConfigError, match="Did you mean 'epochs'"):
        single.execute(_context(sql_dir))
    multi = MultiTableExtractOperator(
        task_id="extract_set",
        tables=["a"],
        dataset="d",
        postgres_conn_id="no_such_source",
        staging_dir=str(sql_dir / "staging"),
        validate={"checks": {"min_quality": "high"}},
    )
    with pytest.raises(SynthesizerConfigError, match="min_quality must be a number"):
        multi.execute(_context(sql_dir))
    assert not (sql_dir / "staging").exists()


# --- the task groups hand the extract the later steps' settings ------------------------------
def test_esl_task_group_gives_extract_the_synthesis_and_store_settings() -> None:
    from datetime import datetime

    from airflow.sdk import DAG

    from airflow_synth.task_groups import ESLConfig, esl_task_group

    with DAG("preflight_wiring", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        esl_task_group(
            ESLConfig(
                dataset="d",
                sql_file="q.sql",
                aws_conn_id="synth_s3",
                bucket="b",
                synthesizer="{{ params.synthesizer }}",
                synthesizer_params={"epochs": 2},
                num_rows=10,
                seed=1,
                epochs=3,
                checks={"min_quality": 0.5},
            ),
            group_id="esl",
        )
    extract = dag.get_task("esl.extract")
    assert extract.validate == {
        "synthesizer": "{{ params.synthesizer }}",
        "synthesizer_params": {"epochs": 2},
        "num_rows": 10,
        "seed": 1,
        "epochs": 3,
        "checks": {"min_quality": 0.5},
        "max_training_rows": None,
        "shards": None,
        "reuse_model": None,
        "max_drift": None,
        "max_model_age_hours": None,
        "aws_conn_id": "synth_s3",
        "bucket": "b",
        "synth_conn_id": None,
    }
    assert "validate" in extract.template_fields
    validate_run_settings(extract.validate | {"synthesizer": "ctgan"})  # all keys are known


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"max_drift": 1.5}, "max_drift"),
        ({"max_drift": "lots"}, "max_drift"),
        ({"max_model_age_hours": -1}, "max_model_age_hours"),
    ],
)
def test_reuse_settings_are_checked_up_front(settings, named) -> None:
    with pytest.raises(SynthesizerConfigError, match=named):
        validate_run_settings({"reuse_model": True, **settings})
    validate_run_settings({"reuse_model": "True", "max_drift": "0.2", "max_model_age_hours": 24})


@pytest.mark.parametrize("target_conn_id", [None, "staging_db"])
def test_multitable_task_group_gives_extract_the_later_settings(target_conn_id) -> None:
    from datetime import datetime

    from airflow.sdk import DAG

    from airflow_synth.task_groups import MultiTableConfig, esl_multitable_task_group

    with DAG("preflight_mt_wiring", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        esl_multitable_task_group(
            MultiTableConfig(
                dataset="shop",
                tables=["a", "b"],
                aws_conn_id="synth_s3",
                max_parents="{{ params.max_parents }}",
                checks={"min_quality": 0.7},
                target_conn_id=target_conn_id,
            ),
            group_id="esl",
        )
    validate = dag.get_task("esl.extract").validate
    assert validate["max_parents"] == "{{ params.max_parents }}"
    assert validate["checks"] == {"min_quality": 0.7}
    assert validate["aws_conn_id"] == "synth_s3"
    if target_conn_id:
        assert (validate["target_conn_id"], validate["target_schema"]) == ("staging_db", "shop")
    else:
        assert "target_conn_id" not in validate
    validate_run_settings(validate | {"max_parents": 5})  # all keys are known
