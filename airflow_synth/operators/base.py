"""What the single-table and the multi-table operators share, written once.

A table set of one is a single table: the extract, synthesize and publish operators of
both paths differ only in the runtime step they call and the settings they pass it. The
arguments every step takes (dataset, store settings, source connection, staging), the
"Synthetic data report" link, the quarantine of a failed gate and the publish step's
settings live here so the two stacks (and ``@task.synthesize``) cannot drift apart.

Each operator spells its own arguments out in ``__init__`` (that signature is the public
API: type hints, ``default_args`` and ``partial`` read it); which of them are kept and
passed on to the runtime step is decided once, by a names table of
:mod:`airflow_synth.runtime` (``EXTRACT_FIELDS``, ``SYNTHESIS_FIELDS``, ...) and
:func:`keep_arguments`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

from airflow.sdk import Asset, BaseOperator

from airflow_synth.core.errors import QualityGateError
from airflow_synth.core.names import check_dataset_name
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.hooks.synth import DEFAULT_BUCKET, SynthStoreSettings
from airflow_synth.runtime import (
    EXTRACT_FIELDS,
    SYNTHESIS_FIELDS,
    execute_publish,
    quarantined_report_uri,
)
from airflow_synth.ui.links import SyntheticReportLink


def dataset_asset(bucket: str, dataset: str) -> Asset:
    """The Airflow Asset of a published synthetic dataset (schedule downstream DAGs on it)."""
    uri = DatasetLayout(bucket=bucket, dataset=dataset, run="any").dataset_uri
    return Asset(uri=uri, name=f"synthetic/{dataset}", group="synthetic")


def checked_dataset(dataset: str) -> str:
    """The dataset name an operator is given, checked at DAG parse time (no I/O): a name
    outside the allowed set fails the DAG file's import, naming the dataset and the set
    (:func:`~airflow_synth.core.names.check_dataset_name`). A Jinja template passes here
    and is checked once rendered, at run time."""
    return check_dataset_name(dataset, templated_ok=True)


def with_dataset_outlet(
    kwargs: dict[str, Any], dataset: str, bucket: str | None, synth_conn_id: str | None
) -> dict[str, Any]:
    """Operator kwargs with the dataset's Asset as outlet, unless outlets were given.

    The Asset must be known at parse time: without an explicit bucket it is the default
    bucket, unless a synth connection (read only at run time) decides it; then no outlet.
    A templated dataset name is not known at parse time either: then no outlet.
    """
    bucket = bucket or (None if synth_conn_id else DEFAULT_BUCKET)
    checked_dataset(dataset)
    if "{{" in dataset or "{%" in dataset:
        return kwargs  # a template: its Asset is unknown until run time
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
    attributes (templated, see :func:`keep_arguments`) and passed on unchanged."""

    def synthesis_settings(self) -> dict[str, Any]:
        return settings_of(self, SYNTHESIS_FIELDS)


class ExtractOperatorBase(BaseOperator):
    """Stage real rows from a source connection (a table or a set): the arguments every
    extract takes (:data:`~airflow_synth.runtime.EXTRACT_FIELDS`) plus the subclass's own
    ``extract_fields``, passed on to :meth:`extract_step` under their own names.

    :param dataset: name of the synthetic dataset (staging and output paths).
    :param postgres_conn_id: Airflow connection of the source database.
    :param staging_dir: where real rows wait for the next task: ``s3://bucket/prefix`` or,
        on a single-machine (LocalExecutor) Airflow, a local folder. Default: the ``synth``
        connection's ``staging``, else ``s3://<bucket>-staging/runs`` (see README,
        "Production deployment"); ``$SYNTH_STAGING_DIR`` chooses a local folder.
    :param validate: the later steps' settings, checked before the source is queried.
    :param aws_conn_id, bucket, synth_conn_id: the store settings of the later steps (else
        those in ``validate``): the staging bucket derives from them.
    """

    #: the subclass's own arguments, kept by it and passed to :meth:`extract_step`
    extract_fields: ClassVar[Sequence[str]]
    template_fields_renderers: ClassVar[dict[str, str]] = {"validate": "json"}
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        dataset: str,
        postgres_conn_id: str = "postgres_default",
        staging_dir: str | None = None,
        validate: Mapping[str, Any] | None = None,
        aws_conn_id: str | None = None,
        bucket: str | None = None,
        synth_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        checked_dataset(dataset)
        super().__init__(**kwargs)
        keep_arguments(self, locals(), EXTRACT_FIELDS)
        self.validate = validate

    def extract_step(self, context: Any, **arguments: Any) -> dict[str, Any]:
        """Call the runtime step (``execute_extract``, ``execute_multitable_extract``)."""
        raise NotImplementedError

    def execute(self, context: Any) -> dict[str, Any]:
        return self.extract_step(
            context,
            validate=self.validate,
            **settings_of(self, (*EXTRACT_FIELDS, *self.extract_fields)),
        )


class StoreOperatorBase(SynthStoreSettings, BaseOperator):
    """A task on one dataset that reaches the object store: ``dataset`` and the store
    settings (``aws_conn_id``, ``bucket``, ``synth_conn_id``), taken the same way by every
    such operator. With ``publishes_dataset`` the dataset's Asset is the task's outlet.
    """

    #: whether the task's outlet is the dataset's Asset (see :func:`with_dataset_outlet`)
    publishes_dataset: ClassVar[bool] = False

    def __init__(
        self,
        *,
        dataset: str,
        aws_conn_id: str | None = None,
        bucket: str | None = None,
        synth_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        checked_dataset(dataset)
        if self.publishes_dataset:
            kwargs = with_dataset_outlet(kwargs, dataset, bucket, synth_conn_id)
        super().__init__(**kwargs)
        self.dataset = dataset
        self.set_store_settings(aws_conn_id, bucket, synth_conn_id)


class SynthesizeOperatorBase(SyntheticReportLinked, StoreOperatorBase):
    """Train on the extract's staged rows and sample: ``synthesize_step`` with the
    ``extract`` XCom, the dataset, the store's hook and the settings in ``settings_fields``.

    :param extract: the extract task's XCom.
    """

    #: attributes kept by the subclass and passed to :meth:`synthesize_step` under their names
    settings_fields: ClassVar[Sequence[str]]
    #: those of them the extract can check before reading a row (``validate=``)
    checked_fields: ClassVar[Sequence[str]]

    def __init__(self, *, extract: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.extract = extract

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


class PublishOperatorBase(SyntheticReportLinked, StoreOperatorBase):
    """Publish a synthesize task's output (data, reports, manifest last) in ``formats``:
    a table or a table set, through the one publish step
    (:func:`~airflow_synth.runtime.execute_publish`).

    :param extract: the extract task's XCom (for lineage in the manifest).
    :param synthesis: the synthesize task's XCom.
    :param formats: ``("parquet",)`` or ``("parquet", "csv")``.
    """

    template_fields: Sequence[str] = ("extract", "synthesis", "dataset", "formats")
    ui_color = "#e6f4ea"
    publishes_dataset = True
    #: the task id the ESL task groups give it
    chain_task_id: ClassVar[str]

    def __init__(
        self, *, extract: Any, synthesis: Any, formats: Sequence[str] = ("parquet",), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.extract = extract
        self.synthesis = synthesis
        self.formats = formats

    def execute(self, context: Any) -> dict[str, Any]:
        hook = self.synth_hook()
        formats = [self.formats] if isinstance(self.formats, str) else list(self.formats)
        result = execute_publish(
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


def keep_arguments(task: Any, arguments: Mapping[str, Any], names: Sequence[str]) -> None:
    """Set ``task.<name>`` for each of ``names`` from ``arguments`` (an ``__init__``'s
    ``locals()``), so the names table, not a list of assignments per operator, decides
    what an operator keeps and later passes on."""
    for name in names:
        setattr(task, name, arguments[name])


__all__ = [
    "ExtractOperatorBase",
    "PublishOperatorBase",
    "StoreOperatorBase",
    "SynthesisSettings",
    "SynthesizeOperatorBase",
    "SyntheticReportLinked",
    "checked_dataset",
    "dataset_asset",
    "keep_arguments",
    "settings_of",
    "with_dataset_outlet",
]
