"""Publish the synthetic table to S3: data, metadata, manifest (last), latest pointer."""

from __future__ import annotations

import logging
from typing import Any

from airflow_synth.lineage import operator_lineage, publish_lineage
from airflow_synth.operators.base import PublishOperatorBase, dataset_asset, with_dataset_outlet

log = logging.getLogger(__name__)

__all__ = ["ESLLoadOperator", "PublishLineage", "dataset_asset", "with_dataset_outlet"]


class PublishLineage:
    """Mixin for publish tasks: keep the publication's lineage (the published dataset's
    columns, rows, size and manifest; the extract's source tables) from the task's own
    result, for the OpenLineage provider (called once the task succeeded): no S3 round trip.
    """

    _lineage: dict[str, Any] | None = None

    def execute(self, context: Any) -> dict[str, Any]:
        self._lineage = None
        result = super().execute(context)  # type: ignore[misc]
        extract = self.extract if isinstance(self.extract, dict) else {}  # type: ignore[attr-defined]
        try:
            self._lineage = publish_lineage(
                result,
                self.dataset,  # type: ignore[attr-defined]
                extract.get("lineage_inputs") or (),
            )
        except Exception as exc:  # lineage never fails a publication that succeeded
            log.warning("OpenLineage: no output dataset for this publish (%s)", type(exc).__name__)
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The published dataset (``OperatorLineage``); None without the provider."""
        return operator_lineage(self._lineage)


class ESLLoadOperator(PublishLineage, PublishOperatorBase):
    """Publish a synthesize task's output under ``s3://<bucket>/<dataset>/<run>/``.

    The manifest is written after every data file, so readers never see a partial run,
    then ``<dataset>/latest.json`` is moved to it. The task's outlet is the dataset's
    Asset, and the Asset event carries the manifest URI. The task instance gets a
    "Synthetic data report" link that opens the published ``report.html``. With the
    ``lineage`` extra, its OpenLineage event names ``s3://<bucket>`` / ``<dataset>`` as
    output (schema, rows, size, manifest URI) and the source tables as inputs.

    :param extract: the extract task's XCom (for lineage in the manifest).
    :param synthesis: the synthesize task's XCom.
    :param formats: ``("parquet",)`` or ``("parquet", "csv")``.
    """

    chain_task_id = "load"
