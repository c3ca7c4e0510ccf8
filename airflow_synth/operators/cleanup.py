"""Remove the run's staged real rows, whatever happened to the run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_synth.hooks.synth import SynthStoreSettings
from airflow_synth.runtime import execute_cleanup


class ESLCleanupOperator(SynthStoreSettings, BaseOperator):
    """Delete everything the run staged: ``<staging>/<dag>/<run>/<dataset>/`` in the staging
    bucket (or the local staging folder).

    Use it as a *teardown* task (the TaskGroup factory does): Airflow runs teardowns even
    when upstream tasks failed, and a teardown's result does not decide the run's state.
    The location is derived from the DAG, run and dataset, not read from XCom, so it is
    found even when the extract failed before pushing anything. The store settings name the
    staging location the way the other steps resolve it (see ``SynthHook.staging``).
    """

    template_fields: Sequence[str] = ("dataset",)
    ui_color = "#f1f3f4"

    def __init__(
        self,
        *,
        dataset: str,
        staging_dir: str | None = None,
        aws_conn_id: str | None = None,
        bucket: str | None = None,
        synth_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.staging_dir = staging_dir
        self.set_store_settings(aws_conn_id, bucket, synth_conn_id)

    def execute(self, context: Any) -> bool:
        return execute_cleanup(
            context, dataset=self.dataset, staging_dir=self.staging_dir, hook=self.synth_hook()
        )
