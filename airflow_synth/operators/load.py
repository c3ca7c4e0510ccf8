"""Publish the synthetic table to S3: data, metadata, manifest (last), latest pointer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Asset, BaseOperator

from airflow_synth.core.layout import DatasetLayout
from airflow_synth.hooks.synth import DEFAULT_BUCKET, SynthStoreSettings
from airflow_synth.runtime import execute_load
from airflow_synth.ui.links import SyntheticReportLink


def dataset_asset(bucket: str, dataset: str) -> Asset:
    """The Airflow Asset of a published synthetic dataset (schedule downstream DAGs on it)."""
    uri = DatasetLayout(bucket=bucket, dataset=dataset, run="any").dataset_uri
    return Asset(uri=uri, name=f"synthetic/{dataset}", group="synthetic")


def with_dataset_outlet(
    kwargs: dict[str, Any], dataset: str, bucket: str | None, synth_conn_id: str | None
) -> dict[str, Any]:
    """Operator kwargs with the dataset's Asset as outlet, unless outlets were given.

    The Asset must be known at parse time: without an explicit bucket it is the default
    bucket, unless a synth connection (read only at run time) decides it; then no outlet.
    """
    bucket = bucket or (None if synth_conn_id else DEFAULT_BUCKET)
    if "outlets" not in kwargs and bucket:
        kwargs = {**kwargs, "outlets": [dataset_asset(bucket, dataset)]}
    return kwargs


class ESLLoadOperator(SynthStoreSettings, BaseOperator):
    """Publish a synthesize task's output under ``s3://<bucket>/<dataset>/<run>/``.

    The manifest is written after every data file, so readers never see a partial run,
    then ``<dataset>/latest.json`` is moved to it. The task's outlet is the dataset's
    Asset, and the Asset event carries the manifest URI. The task instance gets a
    "Synthetic data report" link that opens the published ``report.html``.

    :param extract: the extract task's XCom (for lineage in the manifest).
    :param synthesis: the synthesize task's XCom.
    :param formats: ``("parquet",)`` or ``("parquet", "csv")``.
    """

    template_fields: Sequence[str] = ("extract", "synthesis", "dataset", "formats")
    ui_color = "#e6f4ea"
    operator_extra_links = (SyntheticReportLink(),)

    def __init__(
        self,
        *,
        extract: Any,
        synthesis: Any,
        dataset: str,
        formats: Sequence[str] = ("parquet",),
        aws_conn_id: str | None = None,
        bucket: str | None = None,
        synth_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**with_dataset_outlet(kwargs, dataset, bucket, synth_conn_id))
        self.extract = extract
        self.synthesis = synthesis
        self.dataset = dataset
        self.formats = formats
        self.set_store_settings(aws_conn_id, bucket, synth_conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        hook = self.synth_hook()
        formats = [self.formats] if isinstance(self.formats, str) else list(self.formats)
        result = execute_load(
            context,
            extract=self.extract,
            synthesis=self.synthesis,
            dataset=self.dataset,
            hook=hook,
            formats=formats,
        )
        self._report_published = bool(result.get("report_uri"))  # read by the extra link
        return result
