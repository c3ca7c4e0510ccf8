"""``@task.synthesize``: synthesize whatever DataFrame the decorated function returns.

The function runs as usual (any Python that produces a DataFrame: a query, an API call,
a file); its *real* return value is never pushed to XCom or logged. Instead the frame is
staged privately, a local SDV synthesizer is trained on it, the synthetic table is
published like any ESL load, and the task returns the small publication record (if a
gate fails, only the reports are published, to ``<dataset>/_failed/<run>/``, and the
task's "Synthetic data report" link opens them)::

    @task.synthesize(dataset="customers", bucket="synthetic", aws_conn_id="synth_s3")
    def customers():
        return PostgresHook("crm").get_df("SELECT * FROM customers")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk.bases.decorator import DecoratedOperator, TaskDecorator, task_decorator_factory

from airflow_synth.hooks.synth import SynthStoreSettings
from airflow_synth.operators.base import (
    SynthesisSettings,
    SyntheticReportLinked,
    keep_arguments,
    with_dataset_outlet,
)
from airflow_synth.preflight import preflight
from airflow_synth.runtime import SYNTHESIS_FIELDS, execute_synthesize_dataframe


class _SynthesizeDecoratedOperator(
    SyntheticReportLinked, SynthesisSettings, SynthStoreSettings, DecoratedOperator, PythonOperator
):
    """Runs the callable, then synthesizes and publishes its DataFrame."""

    template_fields: Sequence[str] = ("op_args", "op_kwargs", "dataset", *SYNTHESIS_FIELDS)
    custom_operator_name = "@task.synthesize"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Any,
        op_kwargs: Any,
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
        formats: Sequence[str] = ("parquet",),
        aws_conn_id: str | None = None,
        bucket: str | None = None,
        synth_conn_id: str | None = None,
        staging_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs = with_dataset_outlet(kwargs, dataset, bucket, synth_conn_id)
        kwargs["show_return_value_in_logs"] = False  # the return value is real data
        super().__init__(
            kwargs_to_upstream={
                "python_callable": python_callable,
                "op_args": op_args,
                "op_kwargs": op_kwargs,
            },
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            **kwargs,
        )
        self.dataset = dataset
        keep_arguments(self, locals(), SYNTHESIS_FIELDS)
        self.formats = formats
        self.set_store_settings(aws_conn_id, bucket, synth_conn_id)
        self.staging_dir = staging_dir

    def execute(self, context: Any) -> dict[str, Any]:
        # Settings and connections are checked before the user's function reads any row.
        preflight(
            {
                **self.synthesis_settings(),
                "aws_conn_id": self.aws_conn_id,
                "bucket": self.bucket,
                "synth_conn_id": self.synth_conn_id,
            }
        )
        frame = super().execute(context)
        hook = self.synth_hook()
        origin = f"{self.python_callable.__module__}.{self.python_callable.__qualname__}"
        with self.noting_quarantined_report():
            result = execute_synthesize_dataframe(
                context,
                frame,
                dataset=self.dataset,
                hook=hook,
                origin=origin,
                **self.synthesis_settings(),
                formats=list(self.formats),
                staging_dir=self.staging_dir,
            )
        return self.note_published_report(result)


def synthesize_task(
    python_callable: Callable[..., Any] | None = None,
    multiple_outputs: bool | None = None,
    **kwargs: Any,
) -> TaskDecorator:
    """``@task.synthesize(dataset=..., ...)``: see the module docstring."""
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=multiple_outputs,
        decorated_operator_class=_SynthesizeDecoratedOperator,
        **kwargs,
    )
