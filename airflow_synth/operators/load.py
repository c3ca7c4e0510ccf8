"""Publish the synthetic table to S3: data, metadata, manifest (last), latest pointer."""

from __future__ import annotations

from airflow_synth.operators.base import PublishOperatorBase, dataset_asset, with_dataset_outlet

__all__ = ["ESLLoadOperator", "dataset_asset", "with_dataset_outlet"]


class ESLLoadOperator(PublishOperatorBase):
    """Publish a synthesize task's output under ``s3://<bucket>/<dataset>/<run>/``.

    The manifest is written after every data file, so readers never see a partial run,
    then ``<dataset>/latest.json`` is moved to it. The task's outlet is the dataset's
    Asset, and the Asset event carries the manifest URI. The task instance gets a
    "Synthetic data report" link that opens the published ``report.html``.

    :param extract: the extract task's XCom (for lineage in the manifest).
    :param synthesis: the synthesize task's XCom.
    :param formats: ``("parquet",)`` or ``("parquet", "csv")``.
    """

    chain_task_id = "load"
