"""What the single-table and the multi-table operators share, written once.

A table set of one is a single table: the synthesize and publish operators of both paths
differ only in the runtime step they call and the settings they pass it. The
"Synthetic data report" link, the quarantine of a failed gate and the publish step's
settings live here so the two stacks (and ``@task.synthesize``) cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

from airflow.sdk import Asset, BaseOperator

from airflow_synth.core.errors import QualityGateError
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.hooks.synth import DEFAULT_BUCKET, SynthStoreSettings
from airflow_synth.runtime import SYNTHESIS_FIELDS, quarantined_report_uri
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


class SyntheticReportLinked:
    """Mixin for tasks with the "Synthetic data report" link.

    The link shows only once the task recorded a report (``_report_published``): a
    published one, or the one a failed gate quarantined under ``<dataset>/_failed/<run>/``.
    """

    operator_extra_links = (SyntheticReportLink(),)

    def note_published_report(self, result: dict[str, Any]) -> dict[str, Any]:
        """Switch the link on when ``result`` (a publish step's XCom) names a report."""
        self._report_published = bool(result.get("report_uri"))  # read by the extra link
        return result

    @contextmanager
    def noting_quarantined_report(self) -> Iterator[None]:
        """Let a failed gate's error through, with the link on if its report was quarantined."""
        try:
            yield
        except QualityGateError as exc:
            self._report_published = quarantined_report_uri(exc) is not None
            raise


class SynthesisSettings:
    """Mixin for single-table synthesizing tasks (the operator and ``@task.synthesize``):
    the settings named in :data:`~airflow_synth.runtime.SYNTHESIS_FIELDS`, kept as
    attributes (templated) and passed on unchanged."""

    def set_synthesis_settings(
        self,
        synthesizer: str | None,
        synthesizer_params: Mapping[str, Any] | str | None,
        num_rows: int | str | None,
        seed: int | str | None,
        epochs: int | str | None,
        checks: Mapping[str, Any] | str | None,
    ) -> None:
        self.synthesizer = synthesizer
        self.synthesizer_params = synthesizer_params
        self.num_rows = num_rows
        self.seed = seed
        self.epochs = epochs
        self.checks = checks

    def synthesis_settings(self) -> dict[str, Any]:
        return settings_of(self, SYNTHESIS_FIELDS)


class SynthesizeOperatorBase(SyntheticReportLinked, SynthStoreSettings, BaseOperator):
    """Train on the extract's staged rows and sample: ``synthesize_step`` with the
    ``extract`` XCom, the dataset, the store's hook and the settings in ``settings_fields``.
    """

    #: attributes passed to :meth:`synthesize_step` under their own names
    settings_fields: ClassVar[Sequence[str]]

    def synthesize_step(self, context: Any, **arguments: Any) -> dict[str, Any]:
        """Call the runtime step (``execute_synthesize``, ``execute_multitable_synthesize``)."""
        raise NotImplementedError

    def execute(self, context: Any) -> dict[str, Any]:
        hook = self.synth_hook()
        with self.noting_quarantined_report():
            return self.synthesize_step(
                context,
                extract=self.extract,
                dataset=self.dataset,
                hook=hook,
                **settings_of(self, self.settings_fields),
            )


class PublishOperatorBase(SyntheticReportLinked, SynthStoreSettings, BaseOperator):
    """Publish a synthesize task's output (data, reports, manifest last) in ``formats``.

    :param extract: the extract task's XCom (for lineage in the manifest).
    :param synthesis: the synthesize task's XCom.
    :param formats: ``("parquet",)`` or ``("parquet", "csv")``.
    """

    template_fields: Sequence[str] = ("extract", "synthesis", "dataset", "formats")
    ui_color = "#e6f4ea"

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

    def publish_step(self, context: Any, **arguments: Any) -> dict[str, Any]:
        """Call the runtime step (``execute_load``, ``execute_multitable_publish``)."""
        raise NotImplementedError

    def execute(self, context: Any) -> dict[str, Any]:
        hook = self.synth_hook()
        formats = [self.formats] if isinstance(self.formats, str) else list(self.formats)
        result = self.publish_step(
            context,
            extract=self.extract,
            synthesis=self.synthesis,
            dataset=self.dataset,
            hook=hook,
            formats=formats,
        )
        return self.note_published_report(result)


def settings_of(source: Any, names: Sequence[str]) -> dict[str, Any]:
    """``{name: source.name}``: pass one group of settings on under their own names."""
    return {name: getattr(source, name) for name in names}


__all__ = [
    "PublishOperatorBase",
    "SynthesisSettings",
    "SynthesizeOperatorBase",
    "SyntheticReportLinked",
    "dataset_asset",
    "settings_of",
    "with_dataset_outlet",
]
