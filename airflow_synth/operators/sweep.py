"""Remove what runs that never cleaned up left behind: the maintenance task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_synth.hooks.synth import SynthStoreSettings
from airflow_synth.maintenance import execute_sweep


class ESLSweepOperator(SynthStoreSettings, BaseOperator):
    """Sweep leftovers older than ``sweep_after_hours``: staged real rows of runs whose
    teardown never ran (the staging bucket's ``runs/`` prefix, local staging folders, task
    folders in this worker's temp dir), manifest-less run folders and their models in the
    published bucket, and publish attempts no reader can reach any more (``prune``).

    ``sweep_after_hours``: default the ``synth`` connection's ``sweep_after_hours``, else
    24; measured from the newest file of a run, so set it above your longest run.
    ``datasets``: only these (default: every dataset of the bucket). ``staging_dir`` and the
    store settings name the places the way the ESL steps do (``SynthHook.staging``). Every
    ESL run already sweeps at its start (this worker, this dataset); schedule this daily
    (``dags/synth_maintenance.py``) for the rest, on a worker of each machine that stages
    locally. The task fails, after sweeping all it could, when a place could not be swept.
    """

    template_fields: Sequence[str] = ("sweep_after_hours", "datasets", "staging_dir")
    ui_color = "#f1f3f4"

    def __init__(
        self,
        *,
        sweep_after_hours: float | str | None = None,
        datasets: Sequence[str] | None = None,
        staging_dir: str | None = None,
        prune: bool = True,
        aws_conn_id: str | None = None,
        bucket: str | None = None,
        synth_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sweep_after_hours = sweep_after_hours
        self.datasets = datasets
        self.staging_dir = staging_dir
        self.prune = prune
        self.set_store_settings(aws_conn_id, bucket, synth_conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        return execute_sweep(
            context,
            hook=self.synth_hook(),
            sweep_after_hours=self.sweep_after_hours,
            staging_dir=self.staging_dir,
            datasets=list(self.datasets) if self.datasets else None,
            prune=self.prune,
        )
