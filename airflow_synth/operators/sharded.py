"""Train once, sample in shards over the workers, assess the union: three operators.

The ready-made single-table chain runs a synthesis as ``train`` >> ``sample`` (mapped: one
task per shard, on whatever Celery/Kubernetes worker is free) >> ``assess``; a DAG of your
own can wire them the same way::

    train = ESLTrainOperator(task_id="train", extract=extract.output, dataset="users")
    sample = ESLSampleShardOperator.partial(
        task_id="sample", extract=extract.output, dataset="users"
    ).expand(shard=train.output)
    assess = ESLAssessOperator(
        task_id="assess", extract=extract.output, train=train.output,
        samples=sample.output, dataset="users",
    )

The same seed and shard count give the same rows as :class:`ESLSynthesizeOperator`, which
does all three in one task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_synth.operators.base import StoreOperatorBase, SyntheticReportLinked
from airflow_synth.operators.synthesize import ESLSynthesizeOperator
from airflow_synth.runtime import (
    execute_assess,
    execute_sample,
    execute_train,
)


class ESLTrainOperator(ESLSynthesizeOperator):
    """Fit ``synthesizer`` on the extract's staged rows once and plan the sampling shards.

    Takes the settings of :class:`ESLSynthesizeOperator` (``shards``: how many shards,
    each a mapped task; default one per million rows). The fit (the model and the
    training/held-out rows the privacy checks need) is staged privately with the run's
    other staged files and deleted by the run's teardown. The XCom is the list of shards
    (each names the staged fit): expand :class:`ESLSampleShardOperator` over it.
    """

    def synthesize_step(self, context: Any, **arguments: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        return execute_train(context, **arguments)


class ESLSampleShardOperator(StoreOperatorBase):
    """Sample one shard of the trained model into its own part file (map it over the
    train task's XCom). Its seed derives from the run's seed and the shard's number, so a
    retry or another worker samples the same rows.

    :param extract: the extract task's XCom (the real rows fresh values must avoid).
    :param shard: one element of the train task's XCom.
    """

    template_fields: Sequence[str] = ("extract", "shard", "dataset")
    ui_color = "#fdf1e6"

    def __init__(self, *, extract: Any, shard: Any, **kwargs: Any) -> None:
        kwargs.setdefault("map_index_template", "{{ shard_label | default('') }}")
        super().__init__(**kwargs)
        self.extract = extract
        self.shard = shard

    def execute(self, context: Any) -> dict[str, Any]:
        return execute_sample(
            context,
            extract=self.extract,
            shard=self.shard,
            dataset=self.dataset,
            hook=self.synth_hook(),
        )


class ESLAssessOperator(SyntheticReportLinked, StoreOperatorBase):
    """Judge the union of the shards (fidelity, privacy, rules, fresh-value leaks), let the
    gates decide and save the model: its XCom is what the load task publishes. A failed
    gate's reports are quarantined and linked like :class:`ESLSynthesizeOperator`'s.

    :param extract: the extract task's XCom.
    :param train: the train task's XCom.
    :param samples: the mapped sample task's XCom (every shard's).
    """

    template_fields: Sequence[str] = ("extract", "train", "samples", "dataset")
    ui_color = "#fce8e6"

    def __init__(self, *, extract: Any, train: Any, samples: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.extract = extract
        self.train = train
        self.samples = samples

    def execute(self, context: Any) -> dict[str, Any]:
        with self.noting_quarantined_report():
            return execute_assess(
                context,
                extract=self.extract,
                train=self.train,
                samples=self.samples,
                dataset=self.dataset,
                hook=self.synth_hook(),
            )
