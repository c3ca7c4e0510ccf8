"""Extract a feature table from Postgres into the run's private staging folder."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_synth.lineage import extract_lineage, input_names, operator_lineage
from airflow_synth.operators.base import ExtractOperatorBase, keep_arguments
from airflow_synth.runtime import AUTO, TABLE_EXTRACT_FIELDS, execute_extract

log = logging.getLogger(__name__)

#: The extract XCom's key for the source tables' lineage names (read by the publish task).
LINEAGE_INPUTS = "lineage_inputs"


def lineage_source(postgres_conn_id: str) -> dict[str, Any] | None:
    """Where a PostgreSQL connection points, for lineage
    (:func:`airflow_synth.lineage.source_of_connection`: namespace, database, default
    schema; no credentials), or None without the OpenLineage provider. Called in
    ``execute`` once the task's work is done (the connection is already known to the task:
    no database round trip); a failure is logged, never fails the task."""
    try:
        import airflow.providers.openlineage  # noqa: F401  (the ``lineage`` extra)
    except ImportError:
        return None
    try:
        from airflow.sdk import BaseHook

        from airflow_synth.lineage import source_of_connection

        return source_of_connection(BaseHook.get_connection(postgres_conn_id))
    except Exception as exc:
        log.warning("OpenLineage: connection %s not described (%s)", postgres_conn_id, type(exc))
        return None


def lineage_of_reads(
    postgres_conn_id: str, reads: Sequence[Mapping[str, Any]], dataset: str
) -> dict[str, Any] | None:
    """The lineage of an extract that read ``reads`` (see
    :func:`airflow_synth.lineage.extract_lineage`) through ``postgres_conn_id``, or None
    without the OpenLineage provider; a failure is logged, never fails the extract."""
    source = lineage_source(postgres_conn_id)
    if source is None:
        return None
    try:
        return extract_lineage(source, reads, dataset)
    except Exception as exc:
        log.warning("OpenLineage: no input datasets for this extract (%s)", type(exc).__name__)
        return None


class ExtractLineage:
    """Mixin: report the lineage an extract recorded on ``self._lineage`` in ``execute``
    (OpenLineage provider hook, called once the task succeeded)."""

    _lineage: dict[str, Any] | None = None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The PostgreSQL tables read (``OperatorLineage``); None without the provider."""
        return operator_lineage(self._lineage)

    def with_lineage_inputs(self, result: dict[str, Any]) -> dict[str, Any]:
        """The XCom with the source tables' lineage names, which the publish task reports
        as its inputs (names only)."""
        if not self._lineage:
            return result
        return {**result, LINEAGE_INPUTS: input_names(self._lineage)}


class ESLExtractOperator(ExtractLineage, ExtractOperatorBase):
    """Run a SQL file through a Postgres connection and stage the rows as Parquet.

    The SQL file is rendered with the DAG's Jinja environment, reading only Airflow's own
    run values (``{{ ds }}``, ``{{ data_interval_start }}``, macros) and the DAG's
    ``user_defined_macros``: a template that reads ``params`` or ``dag_run.conf`` is
    refused (rendered into the SQL text, a typed value would run as SQL). Such values go in
    ``parameters`` (e.g. ``{"since": "{{ params.since }}"}``), bound by the driver to
    ``%(since)s`` in the SQL, never formatted into it. The rows are streamed to Parquet with
    bounded memory in a read-only transaction with statement and idle timeouts, checked
    against the contract file beside the SQL, and only the staging URI, row count and
    schema go to XCom. With the ``lineage`` extra, its OpenLineage event names the tables
    the SQL reads (:mod:`airflow_synth.lineage`).

    :param sql_file: path of the SQL file, absolute or relative to ``$SYNTH_SQL_DIR``, the
        DAG's ``template_searchpath`` or the DAG folder.
    :param dataset: name of the synthetic dataset (used in staging and output paths).
    :param postgres_conn_id: Airflow connection of the source database.
    :param parameters: values bound to ``%(name)s`` placeholders (templated: the place for
        Trigger-form values, ``{"since": "{{ params.since }}"}``).
    :param contract_file: ``"auto"`` (``<sql>.contract.yaml`` if present), a path, or None.
    :param staging_dir: staging root (default ``$SYNTH_STAGING_DIR`` or the temp dir).
    :param dry_run: extract at most 1,000 rows; the rest of the chain then trains on them,
        computes the reports, does not enforce the gates, saves no model and publishes
        nothing (the load task is skipped, so no Asset event). Templated.
    :param validate: the settings of the steps after this one, checked *before* the query
        runs so a typo fails here, not after real rows were staged: ``synthesizer``,
        ``synthesizer_params``, ``epochs``, ``num_rows``, ``seed``, ``checks`` and the
        connections ``aws_conn_id``/``bucket``/``synth_conn_id`` (looked up, bucket
        reached). ``esl_task_group`` fills it in; templated, like the settings themselves.
    """

    template_fields: Sequence[str] = ("sql_file", "dataset", "parameters", "dry_run", "validate")
    template_fields_renderers = {"parameters": "json", "validate": "json"}
    extract_fields = TABLE_EXTRACT_FIELDS

    def __init__(
        self,
        *,
        sql_file: str,
        parameters: Mapping[str, Any] | Sequence[Any] | None = None,
        contract_file: str | None = AUTO,
        dry_run: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals(), TABLE_EXTRACT_FIELDS)

    def execute(self, context: Any) -> dict[str, Any]:
        self._lineage, self._rendered_sql = None, ""
        result = super().execute(context)
        read = {"query": self._rendered_sql, "rows": result.get("rows")}
        read["columns"] = result.get("columns")
        self._lineage = lineage_of_reads(self.postgres_conn_id, [read], self.dataset)
        return self.with_lineage_inputs(result)

    def extract_step(self, context: Any, **arguments: Any) -> dict[str, Any]:
        def render(text: str) -> str:
            # kept for lineage (the tables it reads), never logged nor sent anywhere
            self._rendered_sql = self.render_template(text, context)
            return self._rendered_sql

        return execute_extract(context, render=render, **arguments)
