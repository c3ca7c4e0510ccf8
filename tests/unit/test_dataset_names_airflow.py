"""Dataset names are checked where a DAG is written (parse time, no I/O) and again once
rendered (run time, before the source is reached); every entry point uses one rule."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_synth.core.names import DatasetNameError

pytestmark = pytest.mark.unit

BAD = "sales eu"


def _refused(build: Any) -> str:
    with pytest.raises(DatasetNameError) as caught:
        build()
    message = str(caught.value)
    assert repr(BAD) in message and "a-z, 0-9" in message
    return message


def test_configs_refuse_a_bad_name_when_made() -> None:
    from airflow_synth.task_groups import ESLConfig, MultiTableConfig

    _refused(lambda: ESLConfig(dataset=BAD, sql_file="features/x.sql"))
    _refused(lambda: MultiTableConfig(BAD, tables=["users"]))
    assert ESLConfig(dataset="sales_eu", sql_file="x.sql").dataset == "sales_eu"


@pytest.mark.parametrize(
    ("operator", "arguments"),
    [
        ("ESLExtractOperator", {"sql_file": "x.sql"}),
        ("ESLSynthesizeOperator", {"extract": {}}),
        ("ESLLoadOperator", {"extract": {}, "synthesis": {}}),
        ("ESLHealthCheckOperator", {}),
        ("MultiTableExtractOperator", {"tables": ["users"]}),
        ("MultiTableExtractTableOperator", {"table": {}}),
        ("MultiTableCollectOperator", {"plan": [], "tables": []}),
        ("MultiTableFitOperator", {"extract": {}, "table": {}}),
        ("ESLTrainOperator", {"extract": {}}),
        ("ESLSampleShardOperator", {"extract": {}, "shard": {}}),
        ("ESLAssessOperator", {"extract": {}, "train": [], "samples": []}),
        ("MultiTablePublishOperator", {"extract": {}, "synthesis": {}}),
        ("SyntheticPostgresLoadOperator", {"target_conn_id": "t", "target_schema": "s"}),
    ],
)
def test_operators_refuse_a_bad_name_at_parse_time(operator: str, arguments: dict) -> None:
    import airflow_synth.operators as operators

    cls = getattr(operators, operator)
    _refused(lambda: cls(task_id="t", dataset=BAD, **arguments))
    assert cls(task_id="t", dataset="sales_eu", **arguments).dataset == "sales_eu"


def test_the_decorator_refuses_a_bad_name_at_parse_time() -> None:
    from airflow.sdk import DAG, task

    with DAG("names_decorator", schedule=None):

        @task.synthesize(dataset=BAD)
        def frame(ds=None):  # noqa: ANN001, ANN202
            return None

        _refused(frame)


def test_a_templated_name_passes_parsing_without_an_asset() -> None:
    from airflow_synth.operators import ESLExtractOperator, ESLLoadOperator

    template = "{{ params.dataset }}"
    extract = ESLExtractOperator(task_id="e", dataset=template, sql_file="x.sql")
    load = ESLLoadOperator(task_id="l", dataset=template, extract={}, synthesis={})
    assert extract.dataset == load.dataset == template
    assert not load.outlets  # the Asset is unknown until the name is rendered
    named = ESLLoadOperator(task_id="n", dataset="sales_eu", extract={}, synthesis={})
    assert [a.uri for a in named.outlets] == ["s3://synthetic/sales_eu"]


def test_a_rendered_bad_name_is_refused_before_the_source_is_reached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow_synth import runtime

    reached: list[str] = []
    monkeypatch.setattr(runtime, "postgres_connection", lambda conn_id: reached.append(conn_id))
    context = {"dag": SimpleNamespace(dag_id="d"), "run_id": "r"}
    with (
        pytest.raises(DatasetNameError, match=repr(BAD)),
        runtime.source_and_staging(context, BAD, "src", str(tmp_path)),
    ):
        pass
    assert reached == []
