"""The Trigger form of an ESL DAG, and an ESL config wired to it.

``esl_params()`` gives the Params (rendered by the Airflow UI as a form) and
``config_from_params()`` an :class:`ESLConfig` whose settings are Jinja references to them,
so a ready-made DAG and a user's DAG offer the same form. The DAG must set
``render_template_as_native_obj=True`` so numbers and lists stay numbers and lists.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from airflow_synth.core.synthesizers import DEFAULT_SYNTHESIZER, SYNTHESIZERS
from airflow_synth.task_groups.esl import ESLConfig


def esl_params(
    *,
    rows: int = 0,
    synthesizer: str = DEFAULT_SYNTHESIZER,
    epochs: int = 100,
    seed: int | None = 42,
    csv: bool = False,
) -> dict[str, Param]:
    """Params for the Trigger form: rows, synthesizer, epochs, seed, CSV output."""
    return {
        "rows": Param(
            rows,
            type="integer",
            minimum=0,
            title="Rows to generate",
            description="How many synthetic rows to publish; 0 = as many as were extracted.",
        ),
        "synthesizer": Param(
            synthesizer,
            type="string",
            enum=list(SYNTHESIZERS),
            title="Synthesizer",
            description="gaussian_copula is fast on CPU; ctgan, tvae and copulagan are neural.",
        ),
        "epochs": Param(
            epochs,
            type="integer",
            minimum=1,
            title="Epochs (neural synthesizers only)",
            description="Training epochs for ctgan, tvae and copulagan; ignored otherwise.",
        ),
        "seed": Param(
            seed,
            type=["null", "integer"],
            title="Random seed",
            description="Same seed + same data + same settings = same synthetic table.",
        ),
        "csv": Param(csv, type="boolean", title="Also publish CSV"),
    }


def config_from_params(dataset: str, sql_file: str, **settings: Any) -> ESLConfig:
    """An :class:`ESLConfig` whose synthesizer settings come from :func:`esl_params`."""
    templated = {
        "synthesizer": "{{ params.synthesizer }}",
        "num_rows": "{{ params.rows }}",
        "seed": "{{ params.seed }}",
        "epochs": "{{ params.epochs }}",
        "formats": "{{ ['parquet', 'csv'] if params.csv else ['parquet'] }}",
    }
    return ESLConfig(dataset=dataset, sql_file=sql_file, **{**templated, **settings})
