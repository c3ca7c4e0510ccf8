"""OpenLineage datasets of the extract and publish tasks, built from plain dicts.

A lineage backend (Marquez, DataHub, Astro) learns where a synthetic dataset came from
through the OpenLineage events Airflow's OpenLineage provider emits for each task. Our
operators describe their datasets here, as plain dicts computed from what the task
already knows (the rendered SQL, its XCom): no extra database or S3 round trip, nothing at
DAG parse time.

* An extract reports its **inputs**: the PostgreSQL tables its SQL reads, named as
  OpenLineage's naming spec says for Postgres (namespace ``postgres://{host}:{port}``,
  name ``{database}.{schema}.{table}``), the tables found by the provider's SQL parser
  (``openlineage_sql``), an unqualified table in the connection's ``search_path`` schema
  (``public`` unless set). When the query reads one table, its row count is the rows
  extracted; a query over several tables (a join) gives no per-table count (rows extracted
  are not rows read from each table): the rows and the query's columns go in the run's
  ``airflowSynth`` facet instead.
* A publish reports its **outputs**: the published dataset under a name stable across runs
  (namespace ``s3://{bucket}``, name ``{dataset}``; a set's tables ``{dataset}/{table}``)
  with its schema (published columns and Arrow types), row count and size, and this run's
  manifest URI in an ``airflowSynth`` facet. Its inputs are the extract's source tables
  (names only), so the graph goes from the PostgreSQL tables to the synthetic dataset.
* A set's target load reports the PostgreSQL tables it loaded.

Only names, types and counts: never a cell value (nor the SQL text, whose literals could
hold some). The OpenLineage client and SQL parser are imported lazily, only by
:func:`tables_read` and :func:`operator_lineage`; without the ``lineage`` extra both
return nothing and no task fails.
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

log = logging.getLogger(__name__)

#: The schema an unqualified table is in when the connection sets no ``search_path``.
DEFAULT_SCHEMA = "public"
DEFAULT_POSTGRES_PORT = 5432
#: The key of our own facet (run and dataset) in an event.
FACET_KEY = "airflowSynth"

# psycopg placeholders the SQL parser cannot read: ``%(name)s`` and ``%s`` (not ``%%``)
_NAMED_PLACEHOLDER = re.compile(r"%\(\w+\)s")
_POSITIONAL_PLACEHOLDER = re.compile(r"(?<!%)%s")
# a CTE's name where it is defined: ``WITH [RECURSIVE] name [(cols)] AS [[NOT] MATERIALIZED] (``
# or ``, name AS (`` (a select-list alias is never followed by a parenthesis)
_CTE_NAME = re.compile(
    r"(?:\bWITH(?:\s+RECURSIVE)?|,)\s*\"?(\w+)\"?\s*(?:\([^()]*\))?\s*AS\s+"
    r"(?:(?:NOT\s+)?MATERIALIZED\s+)?\(",
    re.IGNORECASE,
)


def postgres_namespace(host: str | None, port: int | str | None) -> str:
    """``postgres://{host}:{port}`` (OpenLineage's naming for PostgreSQL; port 5432 if unset)."""
    return f"postgres://{(host or 'localhost').lower()}:{port or DEFAULT_POSTGRES_PORT}"


def search_path_schema(options: str | None) -> str:
    """The first schema of a ``search_path`` set in a connection's ``options`` extra
    (``-c search_path=sales,public``), where unqualified tables are looked up first;
    ``public`` when none is set (or it starts with ``"$user"``, unknown here)."""
    for word in _words(options or ""):
        name, _, value = word.partition("=")
        if name.strip().replace("-", "_") == "search_path" and value.strip():
            first = value.split(",")[0].strip().strip('"')
            if first and first != "$user":
                return first
    return DEFAULT_SCHEMA


def _words(options: str) -> list[str]:
    try:
        return shlex.split(options)
    except ValueError:  # an unbalanced quote: the words as they are
        return options.split()


def parseable_sql(sql: str) -> str:
    """The SQL with psycopg's bound-value placeholders replaced by ``NULL``, which the
    SQL parser reads (the tables a query reads do not depend on bound values)."""
    return _POSITIONAL_PLACEHOLDER.sub("NULL", _NAMED_PLACEHOLDER.sub("NULL", sql))


def tables_read(
    sql: str, default_schema: str = DEFAULT_SCHEMA
) -> list[tuple[str | None, str, str]]:
    """``(database or None, schema, table)`` of each table the SQL reads, in order, found by
    the OpenLineage provider's SQL parser (CTE names are not tables). Empty without the
    provider, or when the parser cannot read the SQL (logged; the extract is not affected)."""
    try:
        from airflow.providers.openlineage.sqlparser import SQLParser
    except ImportError:
        return []
    try:
        meta = SQLParser(dialect="postgres", default_schema=default_schema).parse(
            parseable_sql(sql)
        )
    except Exception as exc:  # a parser crash must not fail an extract that succeeded
        log.info("OpenLineage: the SQL parser failed (%s); no input tables reported", type(exc))
        return []
    if meta is None:
        return []
    # openlineage_sql 1.54 lists no table read only inside a CTE of a SELECT (it does for
    # WITH ... INSERT); its column lineage does resolve CTEs to the tables under them, but
    # names a CTE itself where a column has no deeper origin: those names are left out.
    ctes = {name.lower() for name in _CTE_NAME.findall(sql)}
    tables = list(meta.in_tables)
    tables += [origin.origin for column in meta.column_lineage for origin in column.lineage]
    found = []
    for table in tables:
        if table is None or (not table.database and table.name.lower() in ctes):
            continue
        key = (table.database, table.schema or default_schema, table.name)
        if key not in found:
            found.append(key)
    return found


def postgres_dataset(
    namespace: str, database: str | None, schema: str, table: str, **details: Any
) -> dict[str, Any]:
    """One PostgreSQL table as a lineage dataset: ``{database}.{schema}.{table}``."""
    name = ".".join(part for part in (database, schema, table) if part)
    return {"namespace": namespace, "name": name, **details}


def source_of_connection(connection: Any) -> dict[str, Any]:
    """What lineage needs of an Airflow Postgres connection: where (namespace), which
    database (its ``schema`` field, as ``PostgresHook`` reads it) and the default schema.
    No credentials."""
    extra = getattr(connection, "extra_dejson", None) or {}
    return {
        "namespace": postgres_namespace(connection.host, connection.port),
        "database": extra.get("database") or connection.schema or None,
        "default_schema": search_path_schema(extra.get("options")),
    }


def sql_inputs(
    source: Mapping[str, Any], sql: str, rows: int | None = None
) -> list[dict[str, Any]]:
    """The tables ``sql`` reads on ``source`` (:func:`source_of_connection`); ``rows`` is
    given to the table when the query reads exactly one."""
    found = tables_read(sql, source.get("default_schema") or DEFAULT_SCHEMA)
    one = len(found) == 1
    return [
        postgres_dataset(
            source["namespace"],
            database or source.get("database"),
            schema,
            table,
            rows=rows if one else None,
        )
        for database, schema, table in found
    ]


def extract_lineage(
    source: Mapping[str, Any],
    tables: Sequence[Mapping[str, Any]],
    dataset: str,
) -> dict[str, Any]:
    """An extract's lineage: ``tables`` are what it read, each ``{"query" or "table",
    "schema", "rows", "columns"}`` (``table``: a catalog table read whole, so its columns
    are the table's schema and its rows the table's; ``query``: a SQL file, parsed)."""
    inputs: list[dict[str, Any]] = []
    for read in tables:
        if read.get("table"):
            found = [
                postgres_dataset(
                    source["namespace"],
                    source.get("database"),
                    read.get("schema") or source.get("default_schema") or DEFAULT_SCHEMA,
                    read["table"],
                    rows=read.get("rows"),
                    columns=read.get("columns"),
                )
            ]
        else:
            found = sql_inputs(source, read.get("query") or "", read.get("rows"))
        inputs += [item for item in found if item["name"] not in {i["name"] for i in inputs}]
    run = {
        "dataset": dataset,
        "rows_extracted": sum(int(read.get("rows") or 0) for read in tables),
        "columns": [c for read in tables for c in (read.get("columns") or [])]
        if len(tables) == 1
        else None,
    }
    return {"inputs": inputs, "outputs": [], "run": run}


def input_names(lineage: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """An extract's inputs as names only (what its XCom carries to the publish task)."""
    return [
        {"namespace": item["namespace"], "name": item["name"]}
        for item in (lineage or {}).get("inputs", [])
    ]


def s3_dataset_name(dataset: str, table: str | None = None) -> str:
    """A published table's stable lineage name: ``{dataset}``, or ``{dataset}/{table}``."""
    return f"{dataset}/{table}" if table else dataset


def publish_lineage(
    result: Mapping[str, Any], dataset: str, inputs: Sequence[Mapping[str, str]] = ()
) -> dict[str, Any]:
    """A publish task's lineage from its result (XCom): one output per published table
    (a single table: the dataset itself) under ``s3://{bucket}``, with its columns, rows and
    bytes, and the run's manifest; ``inputs``: the extract's source tables (names only)."""
    bucket = str(result["dataset_uri"]).removeprefix("s3://").split("/", 1)[0]
    schemas: Mapping[str, Any] = result.get("table_schemas") or {}
    single = list(schemas) == [dataset] or not schemas
    publication = {
        "manifest_uri": result.get("run_manifest_uri") or result.get("manifest_uri"),
        "attempt": result.get("attempt"),
        "report_uri": result.get("report_uri"),
    }
    outputs = [
        {
            "namespace": f"s3://{bucket}",
            "name": s3_dataset_name(dataset, None if single else table),
            "rows": info.get("rows"),
            "bytes": info.get("bytes"),
            "columns": info.get("columns"),
            "publication": publication,
        }
        for table, info in schemas.items()
    ]
    if not outputs:  # an older result without schemas: the dataset and its rows
        outputs = [
            {
                "namespace": f"s3://{bucket}",
                "name": dataset,
                "rows": result.get("rows"),
                "publication": publication,
            }
        ]
    return {"inputs": [dict(i) for i in inputs], "outputs": outputs, "run": {"dataset": dataset}}


def target_lineage(
    target: Mapping[str, Any], schema: str, result: Mapping[str, Any]
) -> dict[str, Any]:
    """A target load's outputs: the tables it loaded into ``schema`` of the target
    database (``target``: :func:`source_of_connection`), with their rows when known."""
    tables = result.get("tables") or {}
    rows = tables if isinstance(tables, Mapping) else dict.fromkeys(tables)
    outputs = [
        postgres_dataset(
            target["namespace"],
            target.get("database"),
            schema,
            str(name),
            rows=count if isinstance(count, int) else None,
        )
        for name, count in rows.items()
    ]
    return {"inputs": [], "outputs": outputs, "run": {}}


# -- the OpenLineage objects (lazy: only with the provider installed) -----------------------
def operator_lineage(lineage: Mapping[str, Any] | None) -> Any:
    """The provider's ``OperatorLineage`` of a plain lineage dict; None without the
    provider or without lineage (the task recorded none)."""
    if not lineage:
        return None
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import InputDataset, OutputDataset
        from openlineage.client.facet_v2 import (
            input_statistics_input_dataset,
            output_statistics_output_dataset,
        )
    except ImportError:
        return None
    inputs = []
    for item in lineage.get("inputs", []):
        statistics = {}
        if item.get("rows") is not None:
            statistics["inputStatistics"] = (
                input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                    rowCount=int(item["rows"])
                )
            )
        inputs.append(
            InputDataset(
                namespace=item["namespace"],
                name=item["name"],
                facets=_dataset_facets(item),
                inputFacets=statistics,
            )
        )
    outputs = []
    for item in lineage.get("outputs", []):
        statistics = {}
        if item.get("rows") is not None:
            statistics["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=int(item["rows"]),
                    size=int(item["bytes"]) if item.get("bytes") is not None else None,
                )
            )
        outputs.append(
            OutputDataset(
                namespace=item["namespace"],
                name=item["name"],
                facets=_dataset_facets(item),
                outputFacets=statistics,
            )
        )
    run = {k: v for k, v in (lineage.get("run") or {}).items() if v is not None}
    run_facets = {FACET_KEY: _facet_classes()[1](**_camel(run))} if run else {}
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets)


def _dataset_facets(item: Mapping[str, Any]) -> dict[str, Any]:
    from openlineage.client.facet_v2 import schema_dataset

    facets: dict[str, Any] = {}
    if item.get("columns"):
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(name=str(name), type=_type(kind))
                for name, kind in item["columns"]
            ]
        )
    if item.get("publication"):
        publication = {k: v for k, v in item["publication"].items() if v is not None}
        facets[FACET_KEY] = _facet_classes()[0](**_camel(publication))
    return facets


def _type(kind: Any) -> str | None:
    return None if kind is None else str(kind)


def _camel(values: Mapping[str, Any]) -> dict[str, Any]:
    """``rows_extracted`` -> ``rowsExtracted`` (OpenLineage facet fields are camelCase)."""
    return {re.sub(r"_(\w)", lambda m: m.group(1).upper(), k): v for k, v in values.items()}


@cache
def _facet_classes() -> tuple[type, type]:
    """Our two facets (defined once, lazily: they subclass the OpenLineage client's)."""
    import attr
    from openlineage.client.facet_v2 import DatasetFacet, RunFacet

    @attr.define
    class AirflowSynthDatasetFacet(DatasetFacet):
        """The publication of a synthetic dataset: this run's manifest (the files, their
        checksums, the scores), attempt and report."""

        manifestUri: str | None = attr.field(default=None)  # noqa: N815
        attempt: str | None = attr.field(default=None)
        reportUri: str | None = attr.field(default=None)  # noqa: N815

    @attr.define
    class AirflowSynthRunFacet(RunFacet):
        """What an extract or publish of airflow-synth did: the synthetic dataset, the rows
        extracted and the query's columns (names and PostgreSQL types)."""

        dataset: str | None = attr.field(default=None)
        rowsExtracted: int | None = attr.field(default=None)  # noqa: N815
        columns: list[list[str]] | None = attr.field(default=None)

    return AirflowSynthDatasetFacet, AirflowSynthRunFacet


__all__ = [
    "extract_lineage",
    "input_names",
    "operator_lineage",
    "postgres_namespace",
    "publish_lineage",
    "search_path_schema",
    "source_of_connection",
    "sql_inputs",
    "tables_read",
    "target_lineage",
]
