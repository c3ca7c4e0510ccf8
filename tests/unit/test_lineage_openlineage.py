"""OpenLineage datasets of the extract and publish tasks (:mod:`airflow_synth.lineage`):
names as OpenLineage's naming spec says, the tables a SQL file reads (the provider's
parser, CTEs included, bound-value placeholders tolerated), the facets, and an Airflow
without the OpenLineage provider (nothing breaks, nothing is reported)."""

from __future__ import annotations

import importlib
import sys
from types import SimpleNamespace

import pytest

from airflow_synth.lineage import (
    extract_lineage,
    input_names,
    operator_lineage,
    parseable_sql,
    postgres_namespace,
    publish_lineage,
    search_path_schema,
    source_of_connection,
    tables_read,
    target_lineage,
)

pytestmark = pytest.mark.unit

SOURCE = {
    "namespace": "postgres://db.example:5433",
    "database": "shop",
    "default_schema": "public",
}
FEATURES = """
-- users and their sessions (the sessions only inside the CTE)
WITH stats AS (
    SELECT s.user_id, avg(s.secs)::double precision AS avg_secs
    FROM sessions AS s WHERE s.day >= %(since)s GROUP BY s.user_id
)
SELECT u.id AS user_id, u.country, st.avg_secs
FROM users AS u LEFT JOIN stats AS st ON st.user_id = u.id
WHERE u.kind = %s AND u.note NOT LIKE '100%%'
"""


def test_postgres_naming() -> None:
    assert postgres_namespace("DB.example", 5433) == "postgres://db.example:5433"
    assert postgres_namespace("db", None) == "postgres://db:5432"
    connection = SimpleNamespace(
        host="db", port=6543, schema="shop", extra_dejson={"options": "-c search_path=sales"}
    )
    assert source_of_connection(connection) == {
        "namespace": "postgres://db:6543",
        "database": "shop",
        "default_schema": "sales",
    }


@pytest.mark.parametrize(
    ("options", "schema"),
    [
        (None, "public"),
        ("-c statement_timeout=0", "public"),
        ("-c search_path=sales,public", "sales"),
        ('-c search_path="$user",crm', "public"),
        ("-csearch_path=x", "public"),
    ],
)
def test_default_schema_from_search_path(options, schema) -> None:
    assert search_path_schema(options) == schema


def test_placeholders_become_null_literal_percent_kept() -> None:
    assert parseable_sql("a = %(x)s AND b = %s AND c LIKE '1%%'") == (
        "a = NULL AND b = NULL AND c LIKE '1%%'"
    )


def test_tables_read_include_a_ctes_tables_not_the_cte() -> None:
    assert tables_read(FEATURES) == [(None, "public", "users"), (None, "public", "sessions")]


def test_qualified_and_default_schema() -> None:
    sql = "SELECT o.id FROM crm.orders o JOIN items i ON i.order_id = o.id"
    assert tables_read(sql, "sales") == [(None, "crm", "orders"), (None, "sales", "items")]
    assert tables_read("SELECT * FROM other_db.crm.t") == [("other_db", "crm", "t")]


def test_unparseable_sql_reports_nothing() -> None:
    assert tables_read("this is not sql at all (") == []


def test_a_query_over_one_table_gets_the_rows_a_join_does_not() -> None:
    one = extract_lineage(
        SOURCE, [{"query": "SELECT a FROM t", "rows": 42, "columns": [["a", "int8"]]}], "ds"
    )
    assert one["inputs"] == [
        {"namespace": SOURCE["namespace"], "name": "shop.public.t", "rows": 42}
    ]
    assert one["run"] == {"dataset": "ds", "rows_extracted": 42, "columns": [["a", "int8"]]}
    join = extract_lineage(SOURCE, [{"query": FEATURES, "rows": 9}], "ds")
    assert [(i["name"], i["rows"]) for i in join["inputs"]] == [
        ("shop.public.users", None),
        ("shop.public.sessions", None),
    ]
    assert input_names(join) == [
        {"namespace": SOURCE["namespace"], "name": "shop.public.users"},
        {"namespace": SOURCE["namespace"], "name": "shop.public.sessions"},
    ]


def test_a_catalog_table_is_named_by_its_schema() -> None:
    lineage = extract_lineage(
        SOURCE,
        [{"table": "users", "schema": "crm", "rows": 5, "columns": [["id", "int4"]]}],
        "set",
    )
    (item,) = lineage["inputs"]
    assert (item["name"], item["rows"], item["columns"]) == ("shop.crm.users", 5, [["id", "int4"]])


PUBLISHED = {
    "dataset_uri": "s3://synthetic/bookings",
    "manifest_uri": "s3://synthetic/bookings/run1/attempt-x/manifest.json",
    "run_manifest_uri": "s3://synthetic/bookings/run1/manifest.json",
    "attempt": "attempt-x",
    "rows": 7,
    "table_schemas": {
        "bookings": {"rows": 7, "bytes": 1234, "columns": [["id", "int64"], ["c", "string"]]}
    },
}


def test_a_published_table_keeps_its_name_across_runs() -> None:
    lineage = publish_lineage(PUBLISHED, "bookings", [{"namespace": "n", "name": "t"}])
    (output,) = lineage["outputs"]
    assert (output["namespace"], output["name"]) == ("s3://synthetic", "bookings")
    assert (output["rows"], output["bytes"]) == (7, 1234)
    assert output["publication"]["manifest_uri"] == PUBLISHED["run_manifest_uri"]
    assert lineage["inputs"] == [{"namespace": "n", "name": "t"}]


def test_a_sets_tables_are_named_under_the_dataset() -> None:
    result = {
        **PUBLISHED,
        "dataset_uri": "s3://synthetic/shop",
        "table_schemas": {"users": {"rows": 3}, "orders": {"rows": 4}},
    }
    names = [o["name"] for o in publish_lineage(result, "shop")["outputs"]]
    assert names == ["shop/users", "shop/orders"]


def test_target_tables() -> None:
    lineage = target_lineage(SOURCE, "test_env", {"tables": {"users": 3, "orders": 4}})
    assert [(o["name"], o["rows"]) for o in lineage["outputs"]] == [
        ("shop.test_env.users", 3),
        ("shop.test_env.orders", 4),
    ]


def test_operator_lineage_facets() -> None:
    from openlineage.client.serde import Serde

    lineage = extract_lineage(
        SOURCE, [{"table": "users", "rows": 5, "columns": [["id", "int4"]]}], "ds"
    )
    lineage["outputs"] = publish_lineage(PUBLISHED, "bookings")["outputs"]
    ol = operator_lineage(lineage)
    (inp,) = [Serde.to_dict(i) for i in ol.inputs]
    assert inp["inputFacets"]["inputStatistics"]["rowCount"] == 5
    assert inp["facets"]["schema"]["fields"] == [{"name": "id", "type": "int4", "fields": []}]
    (out,) = [Serde.to_dict(o) for o in ol.outputs]
    assert out["outputFacets"]["outputStatistics"] == {
        "_producer": out["outputFacets"]["outputStatistics"]["_producer"],
        "_schemaURL": out["outputFacets"]["outputStatistics"]["_schemaURL"],
        "rowCount": 7,
        "size": 1234,
    }
    assert out["facets"]["airflowSynth"]["manifestUri"] == PUBLISHED["run_manifest_uri"]
    assert Serde.to_dict(ol.run_facets["airflowSynth"])["rowsExtracted"] == 5
    assert operator_lineage(None) is None


def test_the_operators_report_what_execute_kept() -> None:
    from airflow_synth.operators import ESLExtractOperator, ESLLoadOperator

    extract = ESLExtractOperator(task_id="x", sql_file="q.sql", dataset="ds")
    assert extract.get_openlineage_facets_on_complete(None) is None  # nothing ran
    extract._lineage = extract_lineage(SOURCE, [{"query": "SELECT a FROM t", "rows": 1}], "ds")
    (inp,) = extract.get_openlineage_facets_on_complete(None).inputs
    assert (inp.namespace, inp.name) == (SOURCE["namespace"], "shop.public.t")
    assert extract.with_lineage_inputs({"rows": 1})["lineage_inputs"] == [
        {"namespace": SOURCE["namespace"], "name": "shop.public.t"}
    ]
    load = ESLLoadOperator(task_id="l", dataset="ds", extract={}, synthesis={})
    load._lineage = publish_lineage(PUBLISHED, "bookings")
    (out,) = load.get_openlineage_facets_on_complete(None).outputs
    assert (out.namespace, out.name) == ("s3://synthetic", "bookings")


HIDDEN = ("airflow.providers.openlineage", "openlineage", "openlineage_sql")


def test_without_the_provider_nothing_breaks(monkeypatch) -> None:
    """The ``lineage`` extra is optional: with the OpenLineage provider (and client, parser)
    not importable, the operators still import, the facet methods return None, an extract
    looks up no connection for lineage and the parser reports nothing."""
    for name in list(sys.modules):
        if name in HIDDEN or name.startswith(tuple(f"{h}." for h in HIDDEN)):
            monkeypatch.setitem(sys.modules, name, None)
    for name in HIDDEN:
        monkeypatch.setitem(sys.modules, name, None)
    for name in ("airflow_synth.lineage", "airflow_synth.operators.extract"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ImportError):
        import airflow.providers.openlineage  # noqa: F401
    lineage = importlib.import_module("airflow_synth.lineage")
    extract_module = importlib.import_module("airflow_synth.operators.extract")

    assert lineage.tables_read("SELECT a FROM t") == []
    assert lineage.operator_lineage({"inputs": [{"namespace": "n", "name": "t"}]}) is None
    assert extract_module.lineage_source("any_connection_not_defined") is None
    assert extract_module.lineage_of_reads("any", [{"query": "SELECT 1"}], "ds") is None
    task = extract_module.ESLExtractOperator(task_id="x", sql_file="q.sql", dataset="ds")
    task._lineage = {"inputs": [{"namespace": "n", "name": "t"}]}
    assert task.get_openlineage_facets_on_complete(None) is None


def test_a_sets_reads_catalog_tables_by_name_sql_files_by_query(tmp_path) -> None:
    from airflow_synth.operators.multitable import MultiTableExtractOperator, _planned_read

    sql = tmp_path / "features.sql"
    sql.write_text("SELECT u.id FROM crm.users u JOIN orders o ON o.user_id = u.id")
    task = MultiTableExtractOperator(
        task_id="x", dataset="ds", tables={"users": None, "features": str(sql)}, schema="crm"
    )
    assert task._read_of("users", {"rows": 3, "columns": [["id", "int4"]]}) == {
        "table": "users",
        "schema": "crm",
        "rows": 3,
        "columns": [["id", "int4"]],
    }
    read = task._read_of("features", {"source": str(sql), "rows": 2})
    assert extract_lineage(SOURCE, [read], "ds")["inputs"] == [
        {"namespace": SOURCE["namespace"], "name": "shop.crm.users", "rows": None},
        {"namespace": SOURCE["namespace"], "name": "shop.public.orders", "rows": None},
    ]
    planned = {"schema": "crm", "source": {"name": "users", "query": "x", "catalog": True}}
    assert _planned_read(planned, 4)["table"] == "users"
    planned = {"schema": "crm", "source": {"name": "f", "query": "SELECT 1 FROM t"}}
    assert _planned_read(planned, 4) == {"query": "SELECT 1 FROM t", "rows": 4, "columns": None}
