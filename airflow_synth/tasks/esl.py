"""TaskFlow versions of the ESL steps (``@task`` functions over :mod:`airflow_synth.runtime`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import get_current_context, task

from airflow_synth.hooks.synth import SynthHook
from airflow_synth.runtime import (
    AUTO,
    execute_cleanup,
    execute_extract,
    execute_load,
    execute_synthesize,
)


@task
def extract_table(
    *,
    sql_file: str,
    dataset: str,
    postgres_conn_id: str = "postgres_default",
    parameters: Mapping[str, Any] | Sequence[Any] | None = None,
    contract_file: str | None = AUTO,
    staging_dir: str | None = None,
    dry_run: bool = False,
    validate: Mapping[str, Any] | None = None,
    aws_conn_id: str | None = None,
    bucket: str | None = None,
    synth_conn_id: str | None = None,
) -> dict[str, Any]:
    """Extract a SQL file's result into private staging (see ``ESLExtractOperator``).

    Give it the store settings you give ``synthesize_table``/``load_table``: the rows are
    staged in that store's private staging bucket (``<bucket>-staging``, or the ``synth``
    connection's ``staging``), where the next task finds them on any worker.

    Give ``validate`` the settings you pass to ``synthesize_table``/``load_table``
    (``synthesizer``, ``checks``, ``aws_conn_id``, ...): they are checked before the query
    runs, so a typo fails this task instead of the synthesize task after real rows were staged.
    """
    context = get_current_context()
    current = context["task"]
    return execute_extract(
        context,
        sql_file=sql_file,
        dataset=dataset,
        postgres_conn_id=postgres_conn_id,
        render=lambda text: current.render_template(text, context),
        parameters=parameters,
        contract_file=contract_file,
        staging_dir=staging_dir,
        dry_run=dry_run,
        validate=validate,
        aws_conn_id=aws_conn_id,
        bucket=bucket,
        synth_conn_id=synth_conn_id,
    )


@task
def synthesize_table(
    extract: dict[str, Any],
    *,
    dataset: str,
    synthesizer: str | None = None,
    synthesizer_params: Mapping[str, Any] | str | None = None,
    num_rows: int | str | None = None,
    seed: int | str | None = None,
    epochs: int | str | None = None,
    checks: Mapping[str, Any] | str | None = None,
    max_training_rows: int | str | None = None,
    shards: int | str | None = None,
    reuse_model: bool | str | None = None,
    max_drift: float | str | None = None,
    max_model_age_hours: float | str | None = None,
    aws_conn_id: str | None = None,
    bucket: str | None = None,
    synth_conn_id: str | None = None,
) -> dict[str, Any]:
    """Train and sample (see ``ESLSynthesizeOperator``)."""
    return execute_synthesize(
        get_current_context(),
        extract=extract,
        dataset=dataset,
        hook=SynthHook(synth_conn_id, aws_conn_id=aws_conn_id, bucket=bucket),
        synthesizer=synthesizer,
        synthesizer_params=synthesizer_params,
        num_rows=num_rows,
        seed=seed,
        epochs=epochs,
        checks=checks,
        max_training_rows=max_training_rows,
        shards=shards,
        reuse_model=reuse_model,
        max_drift=max_drift,
        max_model_age_hours=max_model_age_hours,
    )


@task
def load_table(
    extract: dict[str, Any],
    synthesis: dict[str, Any],
    *,
    dataset: str,
    formats: Sequence[str] = ("parquet",),
    aws_conn_id: str | None = None,
    bucket: str | None = None,
    synth_conn_id: str | None = None,
) -> dict[str, Any]:
    """Publish (see ``ESLLoadOperator``). Give the task ``outlets=[dataset_asset(...)]``
    with ``.override(outlets=...)`` to emit the Asset event."""
    return execute_load(
        get_current_context(),
        extract=extract,
        synthesis=synthesis,
        dataset=dataset,
        hook=SynthHook(synth_conn_id, aws_conn_id=aws_conn_id, bucket=bucket),
        formats=list(formats),
    )


@task
def cleanup_staging(
    *,
    dataset: str,
    staging_dir: str | None = None,
    aws_conn_id: str | None = None,
    bucket: str | None = None,
    synth_conn_id: str | None = None,
) -> bool:
    """Delete what the run staged (use as a teardown; give it the store settings the other
    tasks got, so it finds the same staging location)."""
    return execute_cleanup(
        get_current_context(),
        dataset=dataset,
        staging_dir=staging_dir,
        hook=SynthHook(synth_conn_id, aws_conn_id=aws_conn_id, bucket=bucket),
    )
