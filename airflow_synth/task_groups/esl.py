"""One call that adds extract -> synthesize -> load (+ staging teardown) to any DAG.

Like astronomer-cosmos' ``DbtTaskGroup``, the ready-made DAGs in ``dags/`` and a user's own
DAG are built from the same small :class:`ESLConfig`, so there is one way to wire the chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar

from airflow.sdk import TaskGroup

from airflow_synth.operators import (
    ESLAssessOperator,
    ESLExtractOperator,
    ESLLoadOperator,
    ESLSampleShardOperator,
    ESLSynthesizeOperator,
    ESLTrainOperator,
)
from airflow_synth.runtime import AUTO
from airflow_synth.task_groups.chain import ChainConfig, ChainSteps, FanOut, esl_chain_group


@dataclass(frozen=True)
class ESLConfig(ChainConfig):
    """Everything that defines one feature table's ESL chain: the :class:`ChainConfig`
    fields, the SQL file and the single-table synthesis settings.

    String fields may be Jinja templates (``"{{ params.rows }}"``), rendered at run time.
    """

    steps: ClassVar[ChainSteps] = ChainSteps(
        ESLExtractOperator,
        ESLSynthesizeOperator,
        ESLLoadOperator,
        fan_out=FanOut(
            plan=(ESLTrainOperator, "train"),
            work=(ESLSampleShardOperator, "sample"),
            gather=(ESLAssessOperator, "assess"),
            work_argument="shard",
            gather_arguments=("train", "samples"),
        ),
    )
    sql_file: str
    _: KW_ONLY
    synthesizer: str | None = None
    synthesizer_params: Mapping[str, Any] | str | None = None
    num_rows: int | str | None = None
    epochs: int | str | None = None
    max_training_rows: int | str | None = None
    #: shards to sample in, each a mapped ``sample`` task (default: one per million rows)
    shards: int | str | None = None
    #: reuse the dataset's latest model while the source has not drifted (nightly refresh)
    reuse_model: bool | str | None = None
    #: most drift (0..1) since the model's training at which it is reused (default 0.1)
    max_drift: float | str | None = None
    #: a model older than this many hours is retrained (default 168)
    max_model_age_hours: float | str | None = None
    parameters: Mapping[str, Any] | Sequence[Any] | None = None
    contract_file: str | None = AUTO
    dry_run: bool | str = False


def esl_task_group(
    config: ESLConfig, group_id: str | None = None, **group_kwargs: Any
) -> TaskGroup:
    """Add the ESL chain for ``config`` to the current DAG and return its TaskGroup.

    Tasks: ``extract`` (a setup), ``train`` (fits the model once), ``sample`` (mapped: one
    task per shard, spread over the workers), ``assess`` (judges the union, gates, saves
    the model), ``load`` and ``cleanup_staging`` (a teardown: it deletes the run's staged
    real rows whether the run succeeded or failed, without deciding the run's state).

    ``extract`` is also given the settings of the later steps (``validate=``), so an
    unknown synthesizer, a bad check or a missing connection fails it before the query.
    """
    return esl_chain_group(config, group_id, group_kwargs)
