"""Classic operators for the ESL steps (thin shells over :mod:`airflow_synth.runtime`)."""

from airflow_synth.operators.cleanup import ESLCleanupOperator
from airflow_synth.operators.extract import ESLExtractOperator
from airflow_synth.operators.health import ESLHealthCheckOperator
from airflow_synth.operators.load import ESLLoadOperator
from airflow_synth.operators.multitable import (
    MultiTableCollectOperator,
    MultiTableExtractOperator,
    MultiTableExtractTableOperator,
    MultiTableFitOperator,
    MultiTablePlanExtractOperator,
    MultiTablePrepareOperator,
    MultiTablePublishOperator,
    MultiTableSynthesizeOperator,
    SyntheticPostgresLoadOperator,
)
from airflow_synth.operators.sharded import (
    ESLAssessOperator,
    ESLSampleShardOperator,
    ESLTrainOperator,
)
from airflow_synth.operators.sweep import ESLSweepOperator
from airflow_synth.operators.synthesize import ESLSynthesizeOperator

__all__ = [
    "ESLAssessOperator",
    "ESLCleanupOperator",
    "ESLExtractOperator",
    "ESLHealthCheckOperator",
    "ESLLoadOperator",
    "ESLSampleShardOperator",
    "ESLSweepOperator",
    "ESLSynthesizeOperator",
    "ESLTrainOperator",
    "MultiTableCollectOperator",
    "MultiTableExtractOperator",
    "MultiTableExtractTableOperator",
    "MultiTableFitOperator",
    "MultiTablePlanExtractOperator",
    "MultiTablePrepareOperator",
    "MultiTablePublishOperator",
    "MultiTableSynthesizeOperator",
    "SyntheticPostgresLoadOperator",
]
