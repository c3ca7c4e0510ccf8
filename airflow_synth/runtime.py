"""Airflow-facing shells of the ESL steps, shared by operators, TaskFlow tasks and decorators.

Each function takes the task context plus the task's arguments, turns Airflow things
(connections, the run id, the DAG's template search path, Jinja rendering) into plain
values, and calls the core steps. Keeping this in one module means the classic operators
and the TaskFlow tasks cannot drift apart.

A single table is a table set of one: the single-table and the multi-table steps share
each Airflow-facing part here, written once (staging and the source connection of an
extract, the object store, layout and gate quarantine of a synthesis, the S3 error naming
and Asset event of a publication); what differs is only the core step they call and the
settings they coerce for it (``execute_<step>`` for a table, ``execute_multitable_<step>``
for a set). :mod:`airflow_synth.runtime_multitable` is an alias kept for old imports.

Heavy libraries (SDV, pandas) are imported inside the functions, at run time: DAG files
import this module, and the DAG processor must parse them in well under a second.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any

from airflow_synth.core.assess.checks import CheckSettings
from airflow_synth.core.coerce import as_bool, as_dict, as_float, as_int  # re-exported here
from airflow_synth.core.contract import (
    TableContract,
    contract_path_for,
    load_contract,
    load_table_contracts,
    resolve_table_contracts,
)
from airflow_synth.core.errors import (
    ConnectionConfigError,
    QualityGateError,
    SynthesizerConfigError,
)
from airflow_synth.core.extract.retry import is_connection_lost, with_source_retries
from airflow_synth.core.extract.sql import check_sql_template, read_sql_file
from airflow_synth.core.extract.staging import path_from_uri, remove_staging
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.hooks.object_store import S3ObjectStore, is_transient_s3_failure, s3_failure
from airflow_synth.hooks.synth import SynthHook
from airflow_synth.maintenance import sweep_at_run_start
from airflow_synth.metrics import extract_metrics, load_metrics, synthesis_metrics
from airflow_synth.preflight import preflight
from airflow_synth.workspace import TaskWorkspace, remove_run_staging, task_workspace

log = logging.getLogger(__name__)

SQL_DIR_ENV = "SYNTH_SQL_DIR"
AUTO = "auto"
#: The synthesis settings every synthesizing task takes (templated, passed through as-is).
SYNTHESIS_FIELDS = (
    "synthesizer",
    "synthesizer_params",
    "num_rows",
    "seed",
    "epochs",
    "checks",
    "max_training_rows",
    "shards",
    "reuse_model",
    "max_drift",
    "max_model_age_hours",
)
#: The multi-table synthesis settings that the extract checks up front (``validate=``) and
#: the synthesize task passes on as they are (besides ``main_table``).
MULTITABLE_SYNTHESIS_FIELDS = (
    *("seed", "max_parents", "scale", "max_orphan_share", "fixed_combinations", "checks"),
    *("engine", "synthesizers", "max_training_rows"),
)
#: Where every extract reads from and stages to, then the own settings of a table's and of a
#: set's extract: the operators keep them and pass them on, the task groups take them from
#: their config (``validate``, the later steps' settings, is built by the task group).
EXTRACT_FIELDS = (
    "dataset",
    "postgres_conn_id",
    "staging_dir",
    "aws_conn_id",
    "bucket",
    "synth_conn_id",
)
TABLE_EXTRACT_FIELDS = ("sql_file", "parameters", "contract_file", "dry_run")
SET_EXTRACT_FIELDS = ("tables", "schema", "relationships", "primary_keys", "contracts")
#: Rows a dry run extracts and trains on.
DRY_RUN_ROWS = 1_000


def _dag_and_run(context: Mapping[str, Any]) -> tuple[str, str]:
    return context["dag"].dag_id, context["run_id"]


def producer_of(context: Mapping[str, Any]) -> dict[str, Any]:
    """Which DAG run and task produced a publication (or a quarantine): recorded in the
    manifest's ``source.airflow`` and in ``failed.json`` so the UI's datasets page shows a
    dataset only to users allowed to read that DAG. Names only, no values."""
    dag = context.get("dag")
    ti = context.get("ti")
    return {
        "dag_id": getattr(dag, "dag_id", None),
        "run_id": context.get("run_id"),
        "task_id": getattr(ti, "task_id", None),
    }


def run_layout(context: Mapping[str, Any], hook: SynthHook, dataset: str) -> DatasetLayout:
    """This run's output locations, derived from (dataset, run id) so a rerun overwrites
    its own output and nothing else."""
    _, run_id = _dag_and_run(context)
    return hook.layout(dataset, run_id)


def checked_store(hook: SynthHook) -> S3ObjectStore:
    """The object store, reached once up front: an expensive training must not end in a
    model that cannot be saved."""
    store = hook.get_conn()
    store.check()
    return store


@contextmanager
def s3_failures_named(hook: SynthHook) -> Iterator[None]:
    """Re-raise a failure of the object store (botocore, Airflow's AWS hook) as a
    ``ConnectionConfigError`` that names the connection and bucket to fix, or, when the
    server was unreachable or throttling (after botocore's retries), a
    ``StorageUnavailableError`` that says it is transient; publishing single tables and
    table sets fails the same way."""
    try:
        yield
    except ConnectionConfigError:
        raise  # already names what to fix (an outage too: StorageUnavailableError)
    except Exception as exc:
        # an outage (also inside the publisher's PublishError) is transient, named as such
        if is_transient_s3_failure(exc) or type(exc).__module__.startswith(
            ("botocore", "airflow", "boto3")
        ):
            raise s3_failure(hook.aws_conn_id, hook.bucket, exc) from exc
        raise


@contextmanager
def gate_failures_quarantined(
    context: Mapping[str, Any], hook: SynthHook, layout: DatasetLayout
) -> Iterator[None]:
    """Let a failed gate's ``QualityGateError`` through, after its reports were quarantined
    (see :func:`quarantine_gate_failure`), so "see the report" leads somewhere."""
    try:
        yield
    except QualityGateError as exc:
        quarantine_gate_failure(context, hook, layout, exc)
        raise


def step_timings(extract: Mapping[str, Any], synthesis: Mapping[str, Any]) -> dict[str, float]:
    """Seconds per step for the manifest, read from the extract and synthesize XComs."""
    return {
        "extract": extract.get("seconds", 0.0),
        "fit": synthesis.get("fit_seconds", 0.0),
        "sample": synthesis.get("sample_seconds", 0.0),
    }


def announce_publication(
    context: Mapping[str, Any], hook: SynthHook, layout: DatasetLayout, result: Mapping[str, Any]
) -> dict[str, Any]:
    """Put the manifest on the Asset event; the XCom of a publish task (adds the connection
    the report view reads the bucket through)."""
    _attach_asset_event(context, layout.dataset_uri, result)
    return {**result, "aws_conn_id": hook.aws_conn_id}


@contextmanager
def source_and_staging(
    context: Mapping[str, Any],
    dataset: str,
    postgres_conn_id: str,
    staging_dir: str | None,
    validate: Mapping[str, Any] | None = None,
) -> Iterator[tuple[Any, TaskWorkspace]]:
    """The source connection and the task's workspace of an extract (a table or a set).

    The staging location comes from the store settings the later steps will use
    (``validate``: ``synth_conn_id``, ``aws_conn_id``, ``bucket``) unless ``staging_dir``
    names one. The workspace is created only once the source is reached; a failed extract
    stages nothing and its local files are removed, so it leaves no real rows behind. The
    dataset's name (rendered) is checked first: a name outside the allowed set is refused
    before the source is reached. Before the caller reads a row, leftovers of other runs
    older than the sweep age are swept (:func:`airflow_synth.maintenance.sweep_at_run_start`).
    """
    from airflow_synth.core.names import check_dataset_name

    check_dataset_name(dataset)
    hook = store_hook(validate or {})
    with (
        closing(postgres_connection(postgres_conn_id)) as conn,
        task_workspace(context, dataset, hook, staging_dir) as workspace,
    ):
        workspace.check()  # the staging bucket is reachable before any row is read
        sweep_at_run_start(context, dataset, hook, staging_dir)  # old leftovers; never fails
        try:
            yield conn, workspace
        except BaseException:
            if workspace.staging is None:  # a local staging folder: remove it now
                remove_staging(workspace.local, base=workspace.location.local_root)
            raise


def store_settings(
    validate: Mapping[str, Any] | None,
    aws_conn_id: str | None,
    bucket: str | None,
    synth_conn_id: str | None,
) -> dict[str, Any]:
    """An extract's store settings: its own arguments, else those it validates for the
    later steps (the task group passes them there)."""
    given = {"aws_conn_id": aws_conn_id, "bucket": bucket, "synth_conn_id": synth_conn_id}
    return {key: value or (validate or {}).get(key) for key, value in given.items()}


def store_hook(settings: Mapping[str, Any]) -> SynthHook:
    """The hook of the store settings (``synth_conn_id``, ``aws_conn_id``, ``bucket``) in
    ``settings``; the defaults where they are missing."""
    return SynthHook(
        settings.get("synth_conn_id") or None,
        aws_conn_id=settings.get("aws_conn_id") or None,
        bucket=settings.get("bucket") or None,
    )


@contextmanager
def training(
    context: Mapping[str, Any], hook: SynthHook, dataset: str
) -> Iterator[tuple[S3ObjectStore, DatasetLayout]]:
    """The checked object store and the run's layout of a synthesize step (a table or a set);
    a gate that fails inside has its reports quarantined (:func:`gate_failures_quarantined`)."""
    store = checked_store(hook)
    layout = run_layout(context, hook, dataset)
    with gate_failures_quarantined(context, hook, layout):
        yield store, layout


#: A publish step's core call: ``write(store, layout)`` returns the publication record.
Writer = Callable[[S3ObjectStore, DatasetLayout], dict[str, Any]]


def run_date_of(context: Mapping[str, Any]) -> Any:
    """The run's date that ``latest.json`` moves forward by: its logical date, else (a run
    without one) when it was due to run, else when it started; None outside a DAG run."""
    dag_run = context.get("dag_run")
    for value in (
        context.get("logical_date"),
        getattr(dag_run, "logical_date", None),
        getattr(dag_run, "run_after", None),
        getattr(dag_run, "start_date", None),
    ):
        if value:
            return value
    return None


def publish(
    context: Mapping[str, Any], hook: SynthHook, dataset: str, write: Writer
) -> dict[str, Any]:
    """Run a publish step's ``write(store, layout)`` (a table or a set) with S3 failures
    named by connection and bucket, then announce the result on the Asset event. The store
    writes ``latest.json`` and the run's manifest on a condition where the server supports
    it (:mod:`airflow_synth.hooks.conditional`)."""
    from airflow_synth.hooks.conditional import with_conditional_writes

    layout = run_layout(context, hook, dataset)
    store = with_conditional_writes(hook.get_conn())
    with s3_failures_named(hook):
        result = write(store, layout)
    return announce_publication(context, hook, layout, result)


def sql_search_dirs(context: Mapping[str, Any]) -> list[str]:
    """Where relative SQL file names are looked up, in order."""
    dag = context.get("dag")
    dirs: list[str] = []
    if os.environ.get(SQL_DIR_ENV):
        dirs.append(os.environ[SQL_DIR_ENV])
    searchpath = getattr(dag, "template_searchpath", None) or []
    dirs.extend([searchpath] if isinstance(searchpath, str) else list(searchpath))
    fileloc = getattr(dag, "fileloc", None)
    if fileloc:
        dirs.append(str(Path(fileloc).parent))
    return dirs


def resolve_contract(sql_path: Path, contract_file: str | None) -> TableContract | None:
    """``auto``: use ``<sql>.contract.yaml`` if it exists; a path: it must exist; None: none."""
    if contract_file is None:
        return None
    if contract_file == AUTO:
        candidate = contract_path_for(sql_path)
        if not candidate.is_file():
            log.warning("No contract file %s: sdtypes will be detected from the data", candidate)
            return None
        return load_contract(candidate)
    path = Path(contract_file)
    if not path.is_absolute():
        path = sql_path.parent / path
    return load_contract(path)


def postgres_connection(postgres_conn_id: str) -> Any:
    """A DB-API connection from ``PostgresHook``, with errors that name the connection."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    try:
        return PostgresHook(postgres_conn_id=postgres_conn_id).get_conn()
    except Exception as exc:
        if type(exc).__name__ == "AirflowNotFoundException" or "isn't defined" in str(exc):
            fix = (
                f"Create the Airflow connection {postgres_conn_id!r} (type 'Postgres'), e.g. "
                f"with AIRFLOW_CONN_{postgres_conn_id.upper()}=postgresql://user:pass@host:5432/db"
            )
        elif is_connection_lost(exc):
            fix = (
                "The server did not answer: it may be down or restarting (transient: an "
                "Airflow task retry is safe), or the host and port of connection "
                f"{postgres_conn_id!r} are wrong."
            )
        else:
            fix = f"Check host, port, database and credentials of connection {postgres_conn_id!r}."
        raise ConnectionConfigError(
            f"Cannot connect to Postgres through connection {postgres_conn_id!r}: {exc}\n{fix}"
        ) from exc


def with_reconnects(
    conn: Any, postgres_conn_id: str, sql_name: str, work: Callable[[Any], Any]
) -> Any:
    """``work(conn)``, an extract (idempotent), run again on a new connection while the
    source connection is lost, with backoff; then a transient error that names ``sql_name``
    and the connection (:func:`airflow_synth.core.extract.retry.with_source_retries`)."""
    return with_source_retries(
        work,
        conn,
        lambda: postgres_connection(postgres_conn_id),
        sql_name=sql_name,
        connection_id=postgres_conn_id,
    )


def execute_extract(
    context: Mapping[str, Any],
    *,
    sql_file: str,
    dataset: str,
    postgres_conn_id: str,
    render: Callable[[str], str],
    parameters: Mapping[str, Any] | Sequence[Any] | None = None,
    contract_file: str | None = AUTO,
    staging_dir: str | None = None,
    dry_run: Any = False,
    validate: Mapping[str, Any] | None = None,
    aws_conn_id: str | None = None,
    bucket: str | None = None,
    synth_conn_id: str | None = None,
) -> dict[str, Any]:
    """Check the run's configuration, then extract to private staging and check the contract.

    The store settings (``aws_conn_id``, ``bucket``, ``synth_conn_id``; else those in
    ``validate``) say where the real rows are staged for the next tasks (see
    :meth:`SynthHook.staging`).

    ``validate`` holds the later steps' settings (synthesizer, checks, connection ids; see
    :func:`airflow_synth.preflight.preflight`): they, the SQL file and the contract are
    checked before the source is queried, so a typo costs no real rows.

    The SQL file is rendered with the task's Jinja environment, but its template may read
    only Airflow's own run values (``{{ ds }}``, ``{{ data_interval_start }}``, macros)
    and the DAG's ``user_defined_macros``: anything a user types (``params``,
    ``dag_run.conf``) is refused before the source is reached
    (:func:`~airflow_synth.core.extract.sql.check_sql_template`); such values go in
    ``parameters`` (``%(name)s`` in the SQL), bound by the driver.
    """
    dry_run = as_bool(dry_run)
    if dry_run:
        log.warning("DRY RUN: extracting at most %d rows; nothing will be published", DRY_RUN_ROWS)
    checked = preflight(
        validate, sql_files={"sql_file": sql_file}, sql_dirs=sql_search_dirs(context)
    )
    sql_path = checked.sql_files["sql_file"]
    contract = resolve_contract(sql_path, contract_file)
    macros = getattr(context.get("dag"), "user_defined_macros", None) or {}
    sql = render(check_sql_template(read_sql_file(sql_path), str(sql_path), macros))
    from airflow_synth.core.steps import run_extract

    store = store_settings(validate, aws_conn_id, bucket, synth_conn_id)
    with source_and_staging(context, dataset, postgres_conn_id, staging_dir, store) as (
        conn,
        workspace,
    ):
        result = with_reconnects(
            conn,
            postgres_conn_id,
            str(sql_path),
            lambda source: run_extract(
                source,
                sql,
                workspace.local,
                sql_name=str(sql_path),
                parameters=parameters,
                contract=contract,
                max_rows=DRY_RUN_ROWS if dry_run else None,
            ),
        )
        extract_metrics(dataset, result)
        return workspace.stage(
            {
                **result,
                "postgres_conn_id": postgres_conn_id,
                "staging_dir": str(workspace.local),
                "staging": str(workspace.location),
                "dry_run": dry_run,
            }
        )


@contextmanager
def task_cpu_share(context: Mapping[str, Any]) -> Iterator[None]:
    """Training and sampling in the block use at most the task's pool slots as CPUs, when
    it holds more than one (``pool_slots=4``: 4 threads on a worker with more CPUs), so
    several training tasks on one worker do not each take the whole machine. A task of one
    slot keeps the worker's measured budget (cgroup quota, CPU affinity)."""
    from airflow_synth.core.engine.cpu_budget import task_share

    slots = getattr(context.get("task"), "pool_slots", 1) or 1
    with task_share(slots if slots > 1 else None, f"pool_slots={slots}"):
        yield


def _table_synthesis(
    extract: Mapping[str, Any],
    hook: SynthHook,
    *,
    synthesizer: str | None = None,
    synthesizer_params: Any = None,
    num_rows: Any = None,
    seed: Any = None,
    epochs: Any = None,
    checks: Mapping[str, Any] | str | None = None,
    max_training_rows: Any = None,
    shards: Any = None,
    reuse_model: Any = None,
    max_drift: Any = None,
    max_model_age_hours: Any = None,
) -> dict[str, Any]:
    """A table's synthesis settings, checked and coerced (cheap, before any row is read),
    as the core's ``train_table``/``run_synthesize`` take them (``reuse``: the settings
    only; :func:`reuse_plan` adds the earlier model once the task has its workspace)."""
    from airflow_synth.core.engine.reuse import reuse_settings_from
    from airflow_synth.core.settings_check import synthesizer_spec_for

    spec = synthesizer_spec_for(synthesizer, synthesizer_params, epochs, hook.synthesizer_spec)
    epochs_value = as_int(epochs, "epochs")
    if epochs_value and not spec.is_neural:
        log.info("epochs=%s ignored: %s is not trained in epochs", epochs_value, spec.name)
    rows = as_int(num_rows, "num_rows") or None  # 0 or empty: as many as extracted
    if as_bool(extract.get("dry_run")):
        rows = min(rows or DRY_RUN_ROWS, DRY_RUN_ROWS)
    contract_file = extract.get("contract_file")
    return {
        "spec": spec,
        "num_rows": rows,
        "seed": as_int(seed, "seed"),
        "contract": load_contract(contract_file) if contract_file else None,
        "checks": CheckSettings.from_mapping(as_dict(checks, "checks")),
        "max_training_rows": training_rows_bound(max_training_rows),
        "shards": as_int(shards, "shards") or None,  # empty or 0: one per million rows
        "reuse": reuse_settings_from(reuse_model, max_drift, max_model_age_hours),
    }


def reuse_plan(
    context: Mapping[str, Any],
    hook: SynthHook,
    dataset: str,
    synthesis: dict[str, Any],
    work_dir: Path,
    dry_run: bool,
) -> None:
    """Replace ``synthesis["reuse"]`` (the settings) by the plan the train step decides on:
    the dataset's latest published model and how to load it (a dry run never reuses: it
    trains on at most 1,000 rows and publishes nothing)."""
    from dataclasses import replace

    settings = synthesis["reuse"]
    if dry_run and settings.enabled:
        settings = replace(settings, enabled=False)
    run = run_layout(context, hook, dataset).run  # as the manifest and latest.json name it
    synthesis["reuse"] = hook.reuse_plan(dataset, settings, run, work_dir)


def execute_synthesize(
    context: Mapping[str, Any],
    *,
    extract: Mapping[str, Any],
    dataset: str,
    hook: SynthHook,
    **settings: Any,
) -> dict[str, Any]:
    """Validate settings first (cheap), then train, sample every shard, check and save the
    model (into the task's workspace: the publish step publishes it with the run), all in
    this task (the ready-made chain spreads the same work over the
    ``train``, mapped ``sample`` and ``assess`` tasks: :func:`execute_train`)."""
    from airflow_synth.core.steps import run_synthesize

    synthesis = _table_synthesis(extract, hook, **settings)
    dry_run = as_bool(extract.get("dry_run"))
    with (
        task_workspace(context, dataset, hook, extract.get("staging")) as workspace,
        training(context, hook, dataset) as (store, layout),
    ):
        staged = path_from_uri(workspace.fetch(extract)["staging_uri"])
        reuse_plan(context, hook, dataset, synthesis, workspace.local, dry_run)
        with task_cpu_share(context):
            result = run_synthesize(
                staged,
                workspace.local,
                dataset=dataset,
                save_model=not dry_run,  # published with the run by the publish step
                layout=layout,
                enforce_gates_=not dry_run,
                **synthesis,
            )
        synthesis_metrics(dataset, result)
        return workspace.stage({**result, "staging": str(workspace.location)})


def execute_train(
    context: Mapping[str, Any],
    *,
    extract: Mapping[str, Any],
    dataset: str,
    hook: SynthHook,
    **settings: Any,
) -> list[dict[str, Any]]:
    """Train once on the extract's staged rows and plan the shards.

    The fit (model, training and held-out rows) is staged privately, once; the XCom is
    the list of shards, each naming the staged fit: what the ``sample`` task is mapped
    over (:func:`execute_sample`), one task per shard on whatever worker is free.
    """
    from airflow_synth.core.assess.limits import gates_reported_only
    from airflow_synth.core.steps import FIT_FILE, train_table

    synthesis = _table_synthesis(extract, hook, **settings)
    with task_workspace(context, dataset, hook, extract.get("staging")) as workspace:
        checked_store(hook)  # the model must be publishable before hours of training
        staged = path_from_uri(workspace.fetch(extract)["staging_uri"])
        dry_run = as_bool(extract.get("dry_run"))  # its gates are reported, not enforced
        reuse_plan(context, hook, dataset, synthesis, workspace.local, dry_run)
        with task_cpu_share(context), gates_reported_only(dry_run):
            fit = train_table(staged, dataset=dataset, **synthesis)
        saved = workspace.stage(
            {"fit_uri": fit.save(workspace.local / "train" / FIT_FILE).as_uri()}
        )
        log.info(
            "%s on %d rows in %.1f s; %d rows to sample in %d shard(s)",
            "Reused the model" if (fit.reuse or {}).get("decision") == "reused" else "Trained",
            len(fit.train),
            fit.fit_seconds,
            fit.rows,
            len(fit.shards),
        )
        return [
            {"shard": shard, "fit_uri": saved["fit_uri"], "staging": str(workspace.location)}
            for shard in fit.plan()
        ]


def execute_sample(
    context: Mapping[str, Any],
    *,
    extract: Mapping[str, Any],
    shard: Mapping[str, Any],
    dataset: str,
    hook: SynthHook,
) -> dict[str, Any]:
    """Sample one shard of the staged fit (an element of the ``train`` task's XCom) into
    its part file, staged for the ``assess`` task. A retry samples the same rows."""
    from airflow_synth.core.engine.shards import Shard
    from airflow_synth.core.steps import TableFit, sample_shard

    planned = Shard.from_dict(shard.get("shard", shard))
    with suppress(TypeError):  # the mapped task's label in the UI (``map_index_template``)
        context["shard_label"] = f"{planned.label}: {planned.rows:,} rows"  # type: ignore[index]
    with task_workspace(context, dataset, hook, shard.get("staging")) as workspace:
        staged = workspace.fetch({"real": extract["staging_uri"], "fit": shard["fit_uri"]})
        fit = TableFit.load(path_from_uri(staged["fit"]))
        with task_cpu_share(context):
            sample = sample_shard(fit, path_from_uri(staged["real"]), planned, workspace.local)
        log.info("Sampled %s: %d rows in %.1f s", planned.label, sample.rows, sample.seconds)
        return workspace.stage({**sample.to_dict(), "staging": str(workspace.location)})


def execute_assess(
    context: Mapping[str, Any],
    *,
    extract: Mapping[str, Any],
    train: Sequence[Mapping[str, Any]],
    samples: Sequence[Mapping[str, Any]],
    dataset: str,
    hook: SynthHook,
) -> dict[str, Any]:
    """Judge the union of the shards, let the gates decide, save the model: the same
    result a one-task synthesis returns, with the staged parts listed (``part_uris``)."""
    from airflow_synth.core.steps import ShardSample, TableFit, finish_shards
    from airflow_synth.core.steps.finish import _Run

    plan, samples = list(train), list(samples)
    if not plan:
        raise ValueError("The train task planned no shard: nothing to assess.")
    dry_run = as_bool(extract.get("dry_run"))
    with (
        task_workspace(context, dataset, hook, plan[0].get("staging")) as workspace,
        training(context, hook, dataset) as (store, layout),
    ):
        staged = workspace.fetch({"real": extract["staging_uri"], "fit": plan[0]["fit_uri"]})
        fit = TableFit.load(path_from_uri(staged["fit"]))
        fetched = [ShardSample.from_dict(workspace.fetch(s)) for s in samples]
        result = finish_shards(
            fit,
            path_from_uri(staged["real"]),
            fetched,
            workspace.local,
            _Run(
                dataset=dataset,
                seed=fit.seed,
                scale=1.0,
                checks=fit.checks,
                layout=layout,
                save_model=not dry_run,  # published with the run by the publish step
                enforce_gates_=not dry_run,
                max_parents=None,
            ),
            part_uris=[s["part_uri"] for s in sorted(samples, key=_shard_index)],
        )
        synthesis_metrics(dataset, result)
        return workspace.stage({**result, "staging": str(workspace.location)})


def _shard_index(sample: Mapping[str, Any]) -> int:
    return int(sample["shard"]["index"])


def training_rows_bound(value: Any) -> int | None:
    """``max_training_rows`` as the steps take it: unset = the default bound, 0 = none."""
    from airflow_synth.core.engine.set_run import DEFAULT_MAX_TRAINING_ROWS

    rows = as_int(value, "max_training_rows")
    return DEFAULT_MAX_TRAINING_ROWS if rows is None else (rows or None)


#: XCom key under which a synthesize task that failed a gate records its quarantined reports
#: (``report_uri``, ``aws_conn_id``, ``files``); the report view and extra link read it.
FAILED_REPORT_XCOM_KEY = "failed_report"
_FAILED_GATE = re.compile(r"^\s*FAIL (\S+)", re.MULTILINE)


def quarantine_gate_failure(
    context: Mapping[str, Any], hook: SynthHook, layout: DatasetLayout, error: QualityGateError
) -> str | None:
    """Publish a failed gate's reports to ``<dataset>/_failed/<run>/`` so "see the report"
    leads somewhere; return the report's URI (None if there was nothing to publish).

    Only report files travel (never data or a model; ``latest.json`` is not touched). The
    URI is logged, appended to ``error``'s message and pushed to XCom
    (:data:`FAILED_REPORT_XCOM_KEY`) for the "Synthetic data report" link. If the upload
    itself fails (S3 down), a warning is logged and the caller still raises ``error``.
    """
    from airflow_synth.core.publish.store import failed_report_uri, publish_failed_reports

    if not error.reports:
        return None
    try:
        uris = publish_failed_reports(
            hook.get_conn(),
            layout,
            error.reports,
            failed_gates=_FAILED_GATE.findall(str(error)),
            producer=producer_of(context),
        )
    except Exception as exc:  # noqa: BLE001 - the gate error is what the user must see
        log.warning(
            "Gate failed, and its reports could not be quarantined at %s (%s: %s); "
            "the run is refused all the same.",
            layout.uri(layout.failed_prefix),
            type(exc).__name__,
            exc,
        )
        return None
    report_uri = failed_report_uri(uris)
    log.error("Gate failed; the reports are at %s", report_uri)
    error.args = (f"{error.args[0] if error.args else ''}\nThe reports are at {report_uri}",)
    error.quarantined_report_uri = report_uri  # type: ignore[attr-defined] # read by operators
    ti = context.get("ti")
    if ti is not None:
        try:
            ti.xcom_push(
                key=FAILED_REPORT_XCOM_KEY,
                value={"report_uri": report_uri, "aws_conn_id": hook.aws_conn_id, "files": uris},
            )
        except Exception as exc:  # noqa: BLE001 - the link is a convenience; the log has it
            log.warning("Could not record the report location in XCom: %s", exc)
    return report_uri


def quarantined_report_uri(error: BaseException) -> str | None:
    """The quarantined report of a failed gate, once :func:`quarantine_gate_failure` ran."""
    return getattr(error, "quarantined_report_uri", None)


def execute_publish(
    context: Mapping[str, Any],
    *,
    extract: Mapping[str, Any],
    synthesis: Mapping[str, Any],
    dataset: str,
    hook: SynthHook,
    formats: Sequence[str] = ("parquet",),
) -> dict[str, Any]:
    """Publish a synthesize step's output, a table or a table set: data, reports and, last,
    the manifest; attach the manifest to the Asset event.

    A table set's extract XCom carries its ``table_set``: every table is published under
    one manifest. Otherwise it is a single table (data, metadata, reports); its dry run
    publishes nothing and is skipped, so no Asset event is emitted.
    """
    if as_bool(extract.get("dry_run")):
        from airflow.sdk.exceptions import AirflowSkipException

        log.warning(
            "DRY RUN: nothing published (scores: %s); skipped so no Asset event is emitted",
            synthesis.get("scores"),
        )
        raise AirflowSkipException("dry run: nothing published")
    staging = synthesis.get("staging") or extract.get("staging")
    with task_workspace(context, dataset, hook, staging) as workspace:
        synthesis = workspace.fetch(synthesis)
        run_date = run_date_of(context)
        producer = producer_of(context)
        if "table_set" in extract:
            write = _set_writer(extract, synthesis, formats, run_date, producer)
        else:
            write = _table_writer(extract, synthesis, dataset, formats, run_date, producer)
        return publish(context, hook, dataset, write)


#: The publish step under its older names: a table's ``load`` and a set's ``publish``.
execute_load = execute_publish
execute_multitable_publish = execute_publish


def _table_writer(
    extract: Mapping[str, Any],
    synthesis: Mapping[str, Any],
    dataset: str,
    formats: Sequence[str],
    run_date: Any = None,
    producer: Mapping[str, Any] | None = None,
) -> Writer:
    """How one table's synthesize output is published (see :func:`execute_publish`)."""
    from airflow_synth.core.steps import run_load

    source = {**_source_lineage(extract), "rows_extracted": extract.get("rows")}
    if producer:
        source["airflow"] = dict(producer)

    def write(store: S3ObjectStore, layout: DatasetLayout) -> dict[str, Any]:
        result = run_load(
            store,
            layout,
            synthetic_path=[
                path_from_uri(uri)
                for uri in synthesis.get("part_uris") or [synthesis["synthetic_uri"]]
            ],
            metadata_path=path_from_uri(synthesis["metadata_uri"]),
            reports={
                name: path_from_uri(uri) for name, uri in synthesis.get("report_uris", {}).items()
            },
            source=source,
            synthesis=synthesis,
            timings=step_timings(extract, synthesis),
            formats=formats,
            run_date=run_date,
        )
        load_metrics(dataset, result)
        return result

    return write


def _set_writer(
    extract: Mapping[str, Any],
    synthesis: Mapping[str, Any],
    formats: Sequence[str],
    run_date: Any = None,
    producer: Mapping[str, Any] | None = None,
) -> Writer:
    """How a table set's synthesize output is published (see :func:`execute_publish`)."""
    from airflow_synth.core.steps import run_multitable_publish

    source = {
        "postgres_conn_id": extract.get("postgres_conn_id"),
        "schema": extract.get("schema"),
        "tables": {
            name: {"source": t.get("source"), "sql_sha256": t.get("sql_sha256"), "rows": t["rows"]}
            for name, t in extract["tables"].items()
        },
    }
    if producer:
        source["airflow"] = dict(producer)
    timings = {**step_timings(extract, synthesis), "checks": synthesis.get("checks_seconds", 0.0)}
    return lambda store, layout: run_multitable_publish(
        store,
        layout,
        synthesis=synthesis,
        source=source,
        timings=timings,
        formats=formats,
        run_date=run_date,
    )


def _source_lineage(extract: Mapping[str, Any]) -> dict[str, Any]:
    """Where the real rows came from, for the manifest: names and hashes, no credentials."""
    if extract.get("source"):
        return dict(extract["source"])
    contract = extract.get("contract_file")
    return {
        "postgres_conn_id": extract.get("postgres_conn_id"),
        "sql_file": Path(extract["sql_file"]).name,
        "sql_sha256": extract.get("sql_sha256"),
        "contract_file": Path(contract).name if contract else None,
    }


def _attach_asset_event(context: Mapping[str, Any], uri: str, result: Mapping[str, Any]) -> None:
    """Put the manifest URI on the Asset event so downstream DAGs know what to read."""
    events = context.get("outlet_events")
    if events is None:
        return
    from airflow.sdk import Asset

    try:
        events[Asset(uri)].extra = {"manifest_uri": result["manifest_uri"], "rows": result["rows"]}
    except (KeyError, TypeError):  # the task declared no such outlet
        log.debug("no outlet %s on this task; no asset event extra set", uri)


def execute_cleanup(
    context: Mapping[str, Any],
    *,
    dataset: str,
    staging_dir: str | None = None,
    hook: SynthHook | None = None,
) -> bool:
    """Delete the run's staged rows (real and synthetic), in the object store or the local
    staging folder; True if something was removed."""
    return remove_run_staging(context, dataset, hook or SynthHook(), staging_dir)


def execute_synthesize_dataframe(
    context: Mapping[str, Any],
    frame: Any,
    *,
    dataset: str,
    hook: SynthHook,
    origin: str,
    formats: Sequence[str] = ("parquet",),
    staging_dir: str | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Synthesize and publish a DataFrame produced in the task itself (``@task.synthesize``).

    The real frame is staged privately only for the duration of this call. ``settings``
    are the :data:`SYNTHESIS_FIELDS`, passed to :func:`execute_synthesize` as they are.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_synth.core.errors import EmptyExtractError, SynthError
    from airflow_synth.core.steps import REAL_FILE

    if not isinstance(frame, pd.DataFrame):
        raise SynthError(
            f"@task.synthesize: {origin} must return a pandas DataFrame, got "
            f"{type(frame).__name__}. Return the table to synthesize."
        )
    if frame.empty:
        raise EmptyExtractError(f"@task.synthesize: {origin} returned an empty DataFrame.")
    local = Path(tempfile.mkdtemp(prefix="airflow-synth-frame-"))  # this task only, 0700
    try:
        staged = local / REAL_FILE
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), staged)
        extract = {
            "staging_uri": staged.resolve().as_uri(),
            "rows": len(frame),
            "seconds": 0.0,
            "contract_file": None,
            "source": {"python_callable": origin},
            "staging": staging_dir,
        }
        synthesis = execute_synthesize(
            context,
            extract=extract,
            dataset=dataset,
            hook=hook,
            **settings,
        )
        return execute_load(
            context,
            extract=extract,
            synthesis=synthesis,
            dataset=dataset,
            hook=hook,
            formats=formats,
        )
    finally:
        shutil.rmtree(local, ignore_errors=True)
        remove_run_staging(context, dataset, hook, staging_dir)


# --- a table set: the same steps over several related tables ----------------------------------


def as_list(value: Any, name: str) -> list[Any]:
    """Accept lists and their JSON text (how params arrive when templates render to strings)."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [value]  # one relationship written as text
    if isinstance(value, Mapping) or not isinstance(value, Sequence):
        raise SynthesizerConfigError(f"{name} must be a list, got {value!r}.")
    return list(value)


def _per_table_switch(value: Any) -> bool | dict[str, bool | list[str]]:
    """``True``/``False`` for every table, or ``{table: bool or [columns never grouped]}``
    (JSON text too)."""
    if isinstance(value, str) and value.strip().startswith("{"):
        value = as_dict(value, "fixed_combinations")
    if isinstance(value, Mapping):
        return {
            str(table): [str(c) for c in flag] if isinstance(flag, list | tuple) else as_bool(flag)
            for table, flag in value.items()
        }
    return as_bool(value)


def execute_multitable_extract(
    context: Mapping[str, Any],
    *,
    tables: Any,
    dataset: str,
    postgres_conn_id: str,
    schema: str = "public",
    relationships: Any = None,
    primary_keys: Any = None,
    staging_dir: str | None = None,
    validate: Mapping[str, Any] | None = None,
    contracts: Any = None,
    aws_conn_id: str | None = None,
    bucket: str | None = None,
    synth_conn_id: str | None = None,
) -> dict[str, Any]:
    """Check the run's configuration, then stage every table of the set and describe it.

    ``validate`` holds the later steps' settings (see :func:`airflow_synth.preflight.preflight`);
    they and every table's SQL file are checked before the first table is queried.
    """
    from airflow_synth.core.steps import run_multitable_extract

    checked, contract_refs = _checked_set_extract(
        context, tables, relationships, primary_keys, validate, contracts
    )
    store = store_settings(validate, aws_conn_id, bucket, synth_conn_id)
    with source_and_staging(context, dataset, postgres_conn_id, staging_dir, store) as (
        conn,
        workspace,
    ):
        tables_value = checked.pop("tables")
        result = with_reconnects(
            conn,
            postgres_conn_id,
            f"the tables of {dataset}",
            lambda source: run_multitable_extract(
                source, tables_value, workspace.local, schema=schema, **checked
            ),
        )
        return workspace.stage(
            {
                **result,
                "postgres_conn_id": postgres_conn_id,
                "contracts": contract_refs,
                "staging": str(workspace.location),
            }
        )


def _checked_set_extract(
    context: Mapping[str, Any],
    tables: Any,
    relationships: Any,
    primary_keys: Any,
    validate: Mapping[str, Any] | None,
    contracts: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A set extract's arguments after the checks that come before any connection: the
    later steps' settings, every SQL file and contract (``preflight``). Returns the keyword
    arguments of ``plan_multitable_extract``/``run_multitable_extract`` besides the schema,
    and the contracts' JSON-safe references (for XCom)."""
    tables_value = tables if isinstance(tables, Mapping) else as_list(tables, "tables")
    sql_files = dict(tables_value) if isinstance(tables_value, Mapping) else {}
    sql_dirs = sql_search_dirs(context)
    preflight(validate, sql_files=sql_files, sql_dirs=sql_dirs)
    contract_refs = resolve_table_contracts(as_dict(contracts, "contracts"), sql_dirs)
    checked = {
        "tables": tables_value,
        "relationships": as_list(relationships, "relationships"),
        "primary_keys": as_dict(primary_keys, "primary_keys"),
        "sql_dirs": sql_dirs,
        "engine": (validate or {}).get("engine") or None,
        "contracts": load_table_contracts(contract_refs),
    }
    return checked, contract_refs


def execute_multitable_extract_plan(
    context: Mapping[str, Any],
    *,
    tables: Any,
    dataset: str,
    postgres_conn_id: str,
    schema: str = "public",
    relationships: Any = None,
    primary_keys: Any = None,
    staging_dir: str | None = None,
    validate: Mapping[str, Any] | None = None,
    contracts: Any = None,
    aws_conn_id: str | None = None,
    bucket: str | None = None,
    synth_conn_id: str | None = None,
) -> list[dict[str, Any]]:
    """The set's extract as a plan: settings, SQL files, contracts, the source and the
    staging bucket checked, the catalog set validated, no row read; the XCom lists one
    element per table, what the mapped ``extract_table`` task is expanded over
    (:func:`execute_multitable_extract_table`; :func:`execute_multitable_collect` then
    describes the set)."""
    from airflow_synth.core.steps import plan_multitable_extract

    checked, contract_refs = _checked_set_extract(
        context, tables, relationships, primary_keys, validate, contracts
    )
    store = store_settings(validate, aws_conn_id, bucket, synth_conn_id)
    with source_and_staging(context, dataset, postgres_conn_id, staging_dir, store) as (
        conn,
        workspace,
    ):
        sources = plan_multitable_extract(
            conn,
            checked["tables"],
            schema=schema,
            **{k: v for k, v in checked.items() if k != "tables"},
        )
        location = str(workspace.location)
    shared = {
        "postgres_conn_id": postgres_conn_id,
        "schema": schema,
        "relationships": checked["relationships"],
        "primary_keys": checked["primary_keys"],
        "contracts": resolve_table_contracts(as_dict(contracts, "contracts"), checked["sql_dirs"]),
        "store": store,
        "staging_dir": staging_dir,
        "staging": location,
    }
    log.info("Tables to extract, each in a task of its own: %s", ", ".join(s.name for s in sources))
    return [{"source": source.to_dict(), **shared} for source in sources]


def execute_multitable_extract_table(
    context: Mapping[str, Any], *, table: Mapping[str, Any], dataset: str
) -> dict[str, Any]:
    """Stream one table of the set (an element of the plan's XCom) to private staging."""
    from airflow_synth.core.steps import TableSource, extract_set_table

    name = str(table["source"]["name"])
    with suppress(TypeError):  # the mapped task's label in the UI (``map_index_template``)
        context["table_label"] = name  # type: ignore[index]
    refs = table.get("contracts") or {}
    declared = load_table_contracts({name: refs[name]}).get(name) if name in refs else None
    source = TableSource.from_dict(table["source"], declared)
    with source_and_staging(
        context, dataset, table["postgres_conn_id"], table.get("staging_dir"), table["store"]
    ) as (conn, workspace):
        info = with_reconnects(
            conn,
            table["postgres_conn_id"],
            source.sql_name,
            lambda current: extract_set_table(current, source, workspace.local),
        )
        return workspace.stage({"table": name, **info})


def execute_multitable_collect(
    context: Mapping[str, Any],
    *,
    plan: Sequence[Mapping[str, Any]],
    tables: Sequence[Mapping[str, Any]],
    dataset: str,
) -> dict[str, Any]:
    """The extracted set from the mapped tables' XComs: keys and relationships (the
    catalog's, read again, and the declared ones), the same XCom the one-task extract
    returns (what the later steps take as ``extract``)."""
    from airflow_synth.core.steps import TableSource, describe_set

    plan = list(plan)
    if not plan:
        raise ValueError("The extract planned no table: nothing to collect.")
    first = plan[0]
    staged = {str(t["table"]): {k: v for k, v in t.items() if k != "table"} for t in tables}
    missing = [p["source"]["name"] for p in plan if p["source"]["name"] not in staged]
    if missing:
        raise ValueError(f"Tables {missing} were not extracted: run every extract_table task.")
    with closing(postgres_connection(first["postgres_conn_id"])) as conn:
        result = describe_set(
            conn,
            staged,
            first["staging"],
            schema=first["schema"],
            relationships=first["relationships"],
            primary_keys=first["primary_keys"],
            sources=[TableSource.from_dict(p["source"]) for p in plan],
            seconds=sum(float(t.get("seconds") or 0) for t in staged.values()),
        )
    result["staging_dir"] = first["staging"]
    extract_metrics(dataset, result)
    return {
        **result,
        "postgres_conn_id": first["postgres_conn_id"],
        "contracts": first["contracts"],
        "staging": first["staging"],
    }


def _set_synthesis(
    extract: Mapping[str, Any],
    *,
    seed: Any = None,
    max_parents: Any = None,
    scale: Any = None,
    main_table: str | None = None,
    max_orphan_share: Any = None,
    fixed_combinations: Any = True,
    checks: Mapping[str, Any] | str | None = None,
    engine: str | None = None,
    synthesizers: Any = None,
    max_training_rows: Any = None,
) -> dict[str, Any]:
    """A set's synthesis settings, checked and coerced (cheap, before any row is read), as
    the core's ``run_multitable_synthesize`` takes them."""
    from airflow_synth.core.engine.subset import DEFAULT_MAX_ORPHAN_SHARE
    from airflow_synth.core.settings_check import check_multitable_engine
    from airflow_synth.core.steps import DEFAULT_ENGINE, DEFAULT_MAX_PARENTS

    parents = as_int(max_parents, "max_parents")
    check_multitable_engine({"engine": engine, "synthesizers": synthesizers})
    chosen = synthesizers
    if isinstance(chosen, str) and chosen.strip().startswith("{"):
        chosen = as_dict(chosen, "synthesizers")
    return {
        "seed": as_int(seed, "seed"),
        "max_parents": DEFAULT_MAX_PARENTS if parents is None else (parents or None),
        "scale": as_float(scale, "scale", 1.0),
        "main_table": main_table or None,
        "max_orphan_share": as_float(
            max_orphan_share, "max_orphan_share", DEFAULT_MAX_ORPHAN_SHARE
        ),
        "fixed_combinations": _per_table_switch(fixed_combinations),
        "checks": CheckSettings.from_mapping(as_dict(checks, "checks")),
        "contracts": load_table_contracts(extract.get("contracts") or {}),
        "engine": (engine or "").strip() or DEFAULT_ENGINE,
        "synthesizer": chosen or None,
        "max_training_rows": training_rows_bound(max_training_rows),
    }


#: What of a set's synthesis settings its preparation for the per-table fits takes.
_PREPARE_KEYS = (
    "seed",
    "checks",
    "contracts",
    "synthesizer",
    "max_training_rows",
    "fixed_combinations",
    "max_orphan_share",
)
PREPARED_FILE = "set_prepared.pkl"


def execute_multitable_prepare(
    context: Mapping[str, Any],
    *,
    extract: Mapping[str, Any],
    dataset: str,
    hook: SynthHook,
    **settings: Any,
) -> list[dict[str, Any]]:
    """Prepare a set for the per-table engine (roles, plans, training and held-out rows,
    parent contexts) and stage it; the XCom lists the tables to fit, each naming the staged
    preparation: what the ``fit`` task is mapped over (:func:`execute_multitable_fit`).

    HMA learns the set as one model: then one empty element, so the set's ``synthesize``
    task fits it (and the mapped ``fit`` task has nothing to do).
    """
    from airflow_synth.core.steps import DEFAULT_ENGINE, dump_staged, prepare_multitable

    synthesis = _set_synthesis(extract, **settings)
    with task_workspace(context, dataset, hook, extract.get("staging")) as workspace:
        location = str(workspace.location)
        if synthesis["engine"] != DEFAULT_ENGINE:
            log.info(
                "Engine %s fits the set as one model, in the synthesize task", synthesis["engine"]
            )
            return [{"table": None, "staging": location}]
        checked_store(hook)  # the model must be publishable before the fits run
        with task_cpu_share(context):
            prepared = prepare_multitable(
                workspace.fetch(extract),
                dataset=dataset,
                **{key: synthesis[key] for key in _PREPARE_KEYS},
            )
        path = dump_staged(prepared, workspace.local / "prepare" / PREPARED_FILE)
        staged = workspace.stage({"prepared_uri": path.as_uri()})["prepared_uri"]
        log.info(
            "Prepared %d table(s) to fit: %s", len(prepared.to_fit), ", ".join(prepared.to_fit)
        )
        return [
            {"table": name, "prepared_uri": staged, "staging": location} for name in prepared.to_fit
        ]


def execute_multitable_fit(
    context: Mapping[str, Any],
    *,
    extract: Mapping[str, Any],
    table: Mapping[str, Any],
    dataset: str,
    hook: SynthHook,
) -> dict[str, Any]:
    """Fit one table of the staged preparation (an element of the ``prepare`` task's XCom)
    and stage its model for the set's ``synthesize`` task."""
    from airflow_synth.core.names import safe_key_part
    from airflow_synth.core.steps import (
        PerTablePrepared,
        dump_staged,
        fit_multitable_table,
        load_staged,
    )

    name = table.get("table")
    if name is None:
        return {"table": None}
    with suppress(TypeError):  # the mapped task's label in the UI (``map_index_template``)
        context["table_label"] = str(name)  # type: ignore[index]
    with task_workspace(context, dataset, hook, table.get("staging")) as workspace:
        extracted = workspace.fetch(extract)
        staged = workspace.fetch({"prepared": table["prepared_uri"]})
        prepared = load_staged(path_from_uri(staged["prepared"]), PerTablePrepared)
        with task_cpu_share(context):
            model, seconds = fit_multitable_table(prepared, extracted, name)
        path = dump_staged(model, workspace.local / "fit" / f"{safe_key_part(name)}.pkl")
        return workspace.stage(
            {
                "table": name,
                "model_uri": path.as_uri(),
                "seconds": round(seconds, 3),
                "staging": str(workspace.location),
            }
        )


def execute_multitable_synthesize(
    context: Mapping[str, Any],
    *,
    extract: Mapping[str, Any],
    dataset: str,
    hook: SynthHook,
    prepared: Sequence[Mapping[str, Any]] | None = None,
    fits: Sequence[Mapping[str, Any]] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Validate settings (cheap), then train the set's model, sample, check, save it.

    ``prepared`` and ``fits`` (the ``prepare`` task's and the mapped ``fit`` task's XComs):
    the per-table engine's tables were fitted in tasks of their own; their staged models
    are loaded and only sampling and assessing run here.
    """
    from airflow_synth.core.steps import PerTablePrepared, load_staged, run_multitable_synthesize

    synthesis = _set_synthesis(extract, **settings)
    fitted = [f for f in (fits or []) if f.get("table") is not None]
    with (
        task_workspace(context, dataset, hook, extract.get("staging")) as workspace,
        training(context, hook, dataset) as (store, layout),
        task_cpu_share(context),
    ):
        if fitted:
            plan = list(prepared or [])
            staged = workspace.fetch({"prepared": plan[0]["prepared_uri"]})
            synthesis["prepared"] = load_staged(path_from_uri(staged["prepared"]), PerTablePrepared)
            synthesis["models"] = {
                f["table"]: load_staged(path_from_uri(workspace.fetch(f)["model_uri"]))
                for f in fitted
            }
            synthesis["fit_seconds"] = sum(float(f.get("seconds") or 0) for f in fitted)
            missing = sorted(set(synthesis["prepared"].to_fit) - set(synthesis["models"]))
            if missing:
                raise ValueError(f"No fitted model for tables {missing}: run every fit task.")
        result = run_multitable_synthesize(
            workspace.fetch(extract),
            workspace.local / "synthetic",
            dataset=dataset,
            save_model=True,  # published with the run by the publish step
            layout=layout,
            **synthesis,
        )
        return workspace.stage({**result, "staging": str(workspace.location)})


def execute_target_load(
    context: Mapping[str, Any],
    *,
    dataset: str,
    hook: SynthHook,
    target_conn_id: str,
    target_schema: str,
    enabled: Any = True,
) -> dict[str, Any]:
    """Load the run's published set into ``target_schema`` of ``target_conn_id``, atomically.

    Reads what to load from the run's manifest in the object store (synthetic data only),
    so it can also be re-run on its own to refresh a lower environment.
    """
    if not as_bool(enabled):
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException("loading into a target database is switched off")
    if not target_schema or not str(target_schema).strip():
        raise SynthesizerConfigError(
            "target_schema is empty: name the schema of the target database to load into."
        )
    from airflow_synth.core.steps import load_published_set

    layout = run_layout(context, hook, dataset)
    log.info("Loading %s into schema %s", layout.uri(layout.manifest_key), target_schema)
    with closing(postgres_connection(target_conn_id)) as conn:
        conn.rollback()  # start clean: the load runs its own single transaction
        conn.autocommit = True
        result = load_published_set(hook.get_conn(), layout, conn, str(target_schema).strip())
    log.info(
        "Loaded %s rows into %s (connection %s): %s",
        result.get("rows"),
        target_schema,
        target_conn_id,
        result.get("tables"),
    )
    return {**result, "target_conn_id": target_conn_id}
