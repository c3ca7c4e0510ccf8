"""Operators of the multi-table ESL: extract a set of related tables, synthesize it with
referential integrity, publish it under one manifest, and load it into a target database.

Thin shells over the multi-table steps of :mod:`airflow_synth.runtime`, on the same bases
as the single-table operators (:mod:`airflow_synth.operators.base`): a set's operators
differ from a table's only in their own arguments and the step they call. Staged real rows
are removed by :class:`~airflow_synth.operators.ESLCleanupOperator` (the same teardown as
single tables).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_synth.lineage import input_names, operator_lineage, target_lineage
from airflow_synth.operators.base import (
    ExtractOperatorBase,
    PublishOperatorBase,
    StoreOperatorBase,
    SynthesizeOperatorBase,
    checked_dataset,
    keep_arguments,
    settings_of,
)
from airflow_synth.operators.extract import (
    LINEAGE_INPUTS,
    ExtractLineage,
    lineage_of_reads,
    lineage_source,
)
from airflow_synth.operators.load import PublishLineage
from airflow_synth.runtime import (
    MULTITABLE_SYNTHESIS_FIELDS,
    SET_EXTRACT_FIELDS,
    execute_multitable_collect,
    execute_multitable_extract,
    execute_multitable_extract_plan,
    execute_multitable_extract_table,
    execute_multitable_fit,
    execute_multitable_prepare,
    execute_multitable_synthesize,
    execute_target_load,
)

#: The target-load settings: kept by ``SyntheticPostgresLoadOperator``, passed on as they are.
TARGET_LOAD_FIELDS = ("target_conn_id", "target_schema", "enabled")


def _planned_read(table: Mapping[str, Any], rows: Any = None, columns: Any = None) -> dict:
    """What lineage needs of one planned table (an element of the plan's XCom): a catalog
    table by name, a SQL file's table by its query (parsed for the tables it reads)."""
    source = table["source"]
    if source.get("catalog"):
        read = {"table": source["name"], "schema": table.get("schema")}
    else:
        read = {"query": source.get("query") or ""}
    return {**read, "rows": rows, "columns": columns}


class MultiTableExtractOperator(ExtractLineage, ExtractOperatorBase):
    """Stage a set of related Postgres tables as Parquet and read their relationships.

    :param tables: table names (``SELECT *`` from ``schema``), or a mapping of table name to
        a SQL file producing that table (``None`` = the table itself).
    :param dataset: name of the synthetic dataset (staging and output paths).
    :param postgres_conn_id: Airflow connection of the source database.
    :param schema: schema of the tables (default ``public``).
    :param relationships: foreign keys the database does not declare, as
        ``"child.column -> parent.column"`` strings (or dicts); they override catalog ones.
    :param primary_keys: ``{table: column}`` for tables without a declared primary key
        (e.g. tables from SQL files).
    :param contracts: ``{table: contract}``: a contract file (the single-table format; found
        beside the SQL files) or an inline mapping per table, e.g. to declare PII
        (``role: pii``) or a column to learn (``role: modelled``); checked before any row
        is read. Columns not listed get their role detected.
    :param validate: the later steps' settings, checked before the first table is queried
        (see ``ESLExtractOperator``; here also ``max_parents``, ``scale``,
        ``max_orphan_share``, ``fixed_combinations`` and ``target_conn_id``/
        ``target_schema``/``load_to_target``). ``esl_multitable_task_group`` fills it in.
    """

    template_fields: Sequence[str] = ("tables", "dataset", "schema", "relationships", "validate")
    extract_fields = SET_EXTRACT_FIELDS

    def __init__(
        self,
        *,
        tables: Sequence[str] | Mapping[str, str | None],
        schema: str = "public",
        relationships: Sequence[str | Mapping[str, Any]] | str | None = None,
        primary_keys: Mapping[str, str] | None = None,
        contracts: Mapping[str, str | Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals(), SET_EXTRACT_FIELDS)

    def execute(self, context: Any) -> Any:
        self._lineage = None
        result = super().execute(context)
        if not isinstance(result, dict) or "tables" not in result:
            return result  # the plan (a list): its tables are reported by each extract_table
        reads = [self._read_of(name, info) for name, info in result["tables"].items()]
        self._lineage = lineage_of_reads(self.postgres_conn_id, reads, self.dataset)
        return self.with_lineage_inputs(result)

    def _read_of(self, name: str, info: Mapping[str, Any]) -> dict[str, Any]:
        sql_file = self.tables.get(name) if isinstance(self.tables, Mapping) else None
        read: dict[str, Any] = {"table": name, "schema": self.schema}
        if sql_file:  # the resolved SQL file the extract read (a local file, no database)
            from pathlib import Path

            read = {"query": Path(str(info.get("source"))).read_text(encoding="utf-8")}
        return {**read, "rows": info.get("rows"), "columns": info.get("columns")}

    def extract_step(self, context: Any, **arguments: Any) -> dict[str, Any]:
        return execute_multitable_extract(context, **arguments)


class MultiTablePlanExtractOperator(MultiTableExtractOperator):
    """The set's extract as a plan (the ready-made chain's ``extract``, a setup task): the
    arguments of :class:`MultiTableExtractOperator`, everything checked (settings, SQL
    files, contracts, the source, the staging bucket, the catalog set), no row read. Its
    XCom lists the tables: expand :class:`MultiTableExtractTableOperator` over it and
    describe the set with :class:`MultiTableCollectOperator`.
    """

    def extract_step(self, context: Any, **arguments: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        return execute_multitable_extract_plan(context, **arguments)


class MultiTableExtractTableOperator(ExtractLineage, BaseOperator):
    """Stream one table of a planned set to private staging (map it over the plan's XCom),
    so the tables of a set are extracted side by side.

    :param table: one element of the plan's XCom.
    :param dataset: name of the synthetic dataset.
    """

    template_fields: Sequence[str] = ("table", "dataset")
    ui_color = "#e8f0fe"

    def __init__(self, *, table: Any, dataset: str, **kwargs: Any) -> None:
        kwargs.setdefault("map_index_template", "{{ table_label | default('') }}")
        super().__init__(**kwargs)
        self.table = table
        self.dataset = checked_dataset(dataset)

    def execute(self, context: Any) -> dict[str, Any]:
        self._lineage = None
        result = execute_multitable_extract_table(context, table=self.table, dataset=self.dataset)
        read = _planned_read(self.table, result.get("rows"), result.get("columns"))
        self._lineage = lineage_of_reads(self.table["postgres_conn_id"], [read], self.dataset)
        return result


class MultiTableCollectOperator(BaseOperator):
    """Describe the extracted set (keys, relationships) from the plan and the mapped
    tables' XComs: its XCom is what the later steps take as ``extract``.

    :param plan: the plan task's XCom.
    :param tables: the mapped extract_table task's XCom.
    :param dataset: name of the synthetic dataset.
    """

    template_fields: Sequence[str] = ("plan", "tables", "dataset")
    ui_color = "#e8f0fe"

    def __init__(self, *, plan: Any, tables: Any, dataset: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.tables = tables
        self.dataset = checked_dataset(dataset)

    def execute(self, context: Any) -> dict[str, Any]:
        result = execute_multitable_collect(
            context, plan=self.plan, tables=self.tables, dataset=self.dataset
        )
        # the source tables' names (no rows: extract_table reported those) for the publish
        # task's lineage inputs, as the one-task extract's XCom carries them
        plan = list(self.plan or [])
        lineage = plan and lineage_of_reads(
            plan[0]["postgres_conn_id"], [_planned_read(t) for t in plan], self.dataset
        )
        return {**result, LINEAGE_INPUTS: input_names(lineage)} if lineage else result


class MultiTableSynthesizeOperator(SynthesizeOperatorBase):
    """Train the set's model (SDV's HMA, or one model per table) and sample a synthetic set.

    :param extract: the extract task's XCom.
    :param engine: ``"per_table"`` (default: each table its own model, parents first:
        composite keys, any depth and number of tables, several parents, link tables,
        self-references; samples the real sizes x ``scale``) or ``"hma"`` (SDV's HMA on an
        integrity-preserving subset; at most five tables, two levels, single-column keys).
    :param synthesizers: ``per_table`` only: one synthesizer name for every table or
        ``{table: name}`` (default ``gaussian_copula``).
    :param max_training_rows: ``per_table`` only: training rows per table (default 200,000;
        0 = all); sampling still produces the full size.
    :param max_parents: ``hma`` only: main-table rows (with all their children) to train on;
        bounds fit time and memory. 0 = all rows.
    :param scale: synthetic size relative to the training subset (``hma``) or to the real
        tables (``per_table``); 1.0 = same size.
    :param main_table: ``hma`` only: the table whose rows are sampled (default: the
        biggest parent above the biggest table, so ``max_parents`` bounds what costs most).
    :param max_orphan_share: above this share of child rows without a parent the
        relationship is taken to be wrong and the run fails; below, they are left out.
    :param fixed_combinations: keep the real combinations of categorical columns that
        (almost) determine each other, e.g. ``action`` -> ``action_type`` (SDV
        FixedCombinations, detected per table); default on; ``{table: False}`` switches it
        off for the tables named, ``{table: [columns]}`` never groups those columns.
    :param prepared, fits: the XComs of :class:`MultiTablePrepareOperator` and of the mapped
        :class:`MultiTableFitOperator` (how the ready-made chain runs the per-table fits
        side by side); without them this task fits every table itself.
    :param checks: gate thresholds (``min_quality`` for the multi-table score; privacy and
        dependence gates per table). When one fails, nothing is saved; the reports go to
        ``s3://<bucket>/<dataset>/_failed/<run>/`` and the task's extra link opens them.
    """

    template_fields: Sequence[str] = (
        "extract",
        "prepared",
        "fits",
        "dataset",
        "seed",
        "max_parents",
        "scale",
        "main_table",
        "max_orphan_share",
        "checks",
        "engine",
        "synthesizers",
        "max_training_rows",
    )
    ui_color = "#fef7e0"
    settings_fields = ("main_table", *MULTITABLE_SYNTHESIS_FIELDS)
    checked_fields = MULTITABLE_SYNTHESIS_FIELDS

    def __init__(
        self,
        *,
        seed: int | str | None = None,
        max_parents: int | str | None = None,
        scale: float | str | None = None,
        main_table: str | None = None,
        max_orphan_share: float | str | None = None,
        fixed_combinations: bool | str | Mapping[str, bool] = True,
        checks: Mapping[str, Any] | str | None = None,
        engine: str | None = None,
        synthesizers: str | Mapping[str, str] | None = None,
        max_training_rows: int | str | None = None,
        prepared: Any = None,
        fits: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals(), self.settings_fields)
        self.prepared = prepared
        self.fits = fits

    def synthesize_step(self, context: Any, **arguments: Any) -> dict[str, Any]:
        return execute_multitable_synthesize(
            context, prepared=self.prepared, fits=self.fits, **arguments
        )


class MultiTablePrepareOperator(MultiTableSynthesizeOperator):
    """Prepare a set for the per-table engine and list the tables to fit, each then fitted
    by a mapped :class:`MultiTableFitOperator` task (on any worker).

    Takes the settings of :class:`MultiTableSynthesizeOperator` (give both the same): the
    roles, plans, training and held-out rows and parent contexts are staged privately.
    With ``engine="hma"`` (one model for the set) it lists nothing to fit here and the
    synthesize task fits HMA itself.
    """

    def synthesize_step(self, context: Any, **arguments: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        return execute_multitable_prepare(context, **arguments)


class MultiTableFitOperator(StoreOperatorBase):
    """Fit one table of a prepared set (map it over the prepare task's XCom) and stage its
    model for :class:`MultiTableSynthesizeOperator` (``prepared=``, ``fits=``), which
    samples the set parents first and assesses it.

    :param extract: the extract task's XCom.
    :param table: one element of the prepare task's XCom.
    """

    template_fields: Sequence[str] = ("extract", "table", "dataset")
    ui_color = "#fdf1e6"

    def __init__(self, *, extract: Any, table: Any, **kwargs: Any) -> None:
        kwargs.setdefault("map_index_template", "{{ table_label | default('') }}")
        super().__init__(**kwargs)
        self.extract = extract
        self.table = table

    def execute(self, context: Any) -> dict[str, Any]:
        return execute_multitable_fit(
            context,
            extract=self.extract,
            table=self.table,
            dataset=self.dataset,
            hook=self.synth_hook(),
        )


class MultiTablePublishOperator(PublishLineage, PublishOperatorBase):
    """Publish every synthetic table and report, then one manifest naming them all.

    Consumers read a set through its manifest (or ``latest.json``), which is written last,
    so they never see some tables of a run without the others. The outlet is the dataset's
    Asset; the event carries the manifest URI.
    """

    chain_task_id = "publish"


class SyntheticPostgresLoadOperator(StoreOperatorBase):
    """Load this run's published synthetic set into a schema of a target Postgres database.

    One transaction, parents first, foreign keys enforced by Postgres; the previous load in
    that schema is replaced only when everything loaded, so testers never see a half-loaded
    set. The connection needs CREATE on the database (or the schema) and must own the
    tables it replaces.

    :param target_conn_id: Airflow connection of the target (test/staging) database.
    :param target_schema: schema to (re)create the tables in.
    :param enabled: templated switch (e.g. ``"{{ params.load_to_target }}"``); when false
        the task is skipped.
    """

    template_fields: Sequence[str] = ("dataset", "target_schema", "enabled")
    ui_color = "#f3e8fd"
    _lineage: dict[str, Any] | None = None

    def __init__(
        self,
        *,
        target_conn_id: str,
        target_schema: str,
        enabled: bool | str = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals(), TARGET_LOAD_FIELDS)

    def execute(self, context: Any) -> dict[str, Any]:
        self._lineage = None
        result = execute_target_load(
            context,
            dataset=self.dataset,
            hook=self.synth_hook(),
            **settings_of(self, TARGET_LOAD_FIELDS),
        )
        target = lineage_source(self.target_conn_id)
        if target is not None:  # the provider is there: the tables loaded are the outputs
            self._lineage = target_lineage(target, str(self.target_schema).strip(), result)
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The target tables loaded (``OperatorLineage``); None without the provider."""
        return operator_lineage(self._lineage)
