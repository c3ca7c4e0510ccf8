"""Train a local SDV synthesizer on the staged rows and sample the synthetic table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_synth.operators.base import (
    SynthesisSettings,
    SynthesizeOperatorBase,
    keep_arguments,
)
from airflow_synth.runtime import SYNTHESIS_FIELDS, execute_synthesize


class ESLSynthesizeOperator(SynthesisSettings, SynthesizeOperatorBase):
    """Fit ``synthesizer`` on the extract's staged rows, sample, and save the model.

    Training runs in the worker process: real rows never leave it. The fitted model is
    stored under ``s3://<bucket>/_models/<dataset>/<run>/`` with the SDV version. When a
    gate fails, nothing is saved; the reports go to ``s3://<bucket>/<dataset>/_failed/<run>/``
    and the task's "Synthetic data report" link opens them.

    :param extract: the extract task's XCom (``ESLExtractOperator(...).output``).
    :param dataset: dataset name, as given to the extract.
    :param synthesizer: ``auto`` (default: ``tabular_argn`` where the ``argn`` extra is
        installed, else ``gaussian_copula``), ``tabular_argn``, ``gaussian_copula``,
        ``ctgan``, ``tvae`` or ``copulagan``.
    :param synthesizer_params: parameters of that synthesizer, e.g. ``{"epochs": 50}`` or
        ``{"max_training_minutes": 5}`` (tabular_argn).
    :param num_rows: rows to sample; empty or 0 means as many as were extracted.
    :param seed: makes the run reproducible (numpy, torch and SDV sampling are seeded).
    :param epochs: most training epochs of neural synthesizers (ignored by gaussian_copula);
        an ``epochs`` key in ``synthesizer_params`` wins.
    :param max_training_rows: train on a seeded sample of at most this many rows (default
        200,000; 0 = all); ``num_rows`` are sampled all the same.
    :param shards: sample in this many part files (same seed + shard count = same rows);
        default: one per million rows. The ready-made chain runs each shard as a mapped
        task (``ESLTrainOperator``, ``ESLSampleShardOperator``, ``ESLAssessOperator``);
        here they run one after the other.
    :param reuse_model: reuse the model the dataset published last instead of training,
        while the source has not drifted and the model is young enough (the nightly
        refresh); the decision and why are logged and in the manifest
        (``synthesis.model_reuse``). Default off.
    :param max_drift: the most drift (0..1: the largest change of the row count, a column's
        NULL share, a number's distribution (KS) or a category's shares (total variation)
        since the model was trained) at which the model is still reused; default 0.1.
    :param max_model_age_hours: a model older than this (counted from its training) is
        retrained; default 168 (a week).
    :param checks: holdout, filters and gate thresholds (see ``CheckSettings``), e.g.
        ``{"min_quality": 0.8, "max_dcr_share": 0.55, "outlier_filter": False}``.
    :param aws_conn_id: AWS connection of the bucket (default from ``synth_conn_id``).
    :param bucket: bucket for models and data (default from ``synth_conn_id``).
    :param synth_conn_id: optional ``synth`` connection with defaults.
    """

    template_fields: Sequence[str] = ("extract", "dataset", *SYNTHESIS_FIELDS)
    ui_color = "#fce8e6"
    settings_fields = SYNTHESIS_FIELDS
    checked_fields = SYNTHESIS_FIELDS

    def __init__(
        self,
        *,
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals(), SYNTHESIS_FIELDS)

    def synthesize_step(self, context: Any, **arguments: Any) -> dict[str, Any]:
        return execute_synthesize(context, **arguments)
