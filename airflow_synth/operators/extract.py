"""Extract a feature table from Postgres into the run's private staging folder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_synth.operators.base import ExtractOperatorBase, keep_arguments
from airflow_synth.runtime import AUTO, TABLE_EXTRACT_FIELDS, execute_extract


class ESLExtractOperator(ExtractOperatorBase):
    """Run a SQL file through a Postgres connection and stage the rows as Parquet.

    The SQL file is rendered with the DAG's Jinja environment, reading only Airflow's own
    run values (``{{ ds }}``, ``{{ data_interval_start }}``, macros) and the DAG's
    ``user_defined_macros``: a template that reads ``params`` or ``dag_run.conf`` is
    refused (rendered into the SQL text, a typed value would run as SQL). Such values go in
    ``parameters`` (e.g. ``{"since": "{{ params.since }}"}``), bound by the driver to
    ``%(since)s`` in the SQL, never formatted into it. The rows are streamed to Parquet with
    bounded memory in a read-only transaction with statement and idle timeouts, checked
    against the contract file beside the SQL, and only the staging URI, row count and
    schema go to XCom.

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

    def extract_step(self, context: Any, **arguments: Any) -> dict[str, Any]:
        return execute_extract(
            context, render=lambda text: self.render_template(text, context), **arguments
        )
