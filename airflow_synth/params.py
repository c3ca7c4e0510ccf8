"""The Trigger form of an ESL DAG, and an ESL config wired to it.

``esl_params()`` gives the Params (rendered by the Airflow UI as a form) and
``config_from_params()`` an :class:`ESLConfig` whose settings are Jinja references to them,
so a ready-made DAG and a user's DAG offer the same form. The DAG must set
``render_template_as_native_obj=True`` so numbers and lists stay numbers and lists.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from airflow_synth.core.assess.checks import CheckSettings
from airflow_synth.core.engine.reuse import DEFAULT_MAX_DRIFT, DEFAULT_MAX_MODEL_AGE_HOURS
from airflow_synth.core.engine.synthesizers import AUTO, DEFAULT_SYNTHESIZER, SYNTHESIZERS
from airflow_synth.task_groups.esl import ESLConfig

#: Trigger-form params that feed the synthesize step's ``checks``.
CHECK_PARAMS = (
    "holdout_share",
    "similarity_filter",
    "outlier_filter",
    "min_quality",
    "min_dependence",
    "max_exact_match_rate",
    "max_near_copy_rate",
    "max_dcr_share",
    "min_rules_held",
)


def _share_gate(value: float | None, *, title: str, description: str) -> Param:
    """A gate threshold on a share (0..1); empty switches the gate off."""
    return Param(
        value, type=["null", "number"], minimum=0, maximum=1, title=title, description=description
    )


def esl_params(
    *,
    rows: int = 0,
    synthesizer: str = DEFAULT_SYNTHESIZER,
    epochs: int = 100,
    seed: int | None = 42,
    csv: bool = False,
    holdout_share: float = CheckSettings.holdout_share,
    similarity_filter: bool = CheckSettings.similarity_filter,
    outlier_filter: bool = CheckSettings.outlier_filter,
    min_quality: float | None = CheckSettings.min_quality,
    min_dependence: float | None = CheckSettings.min_dependence,
    max_exact_match_rate: float | None = CheckSettings.max_exact_match_rate,
    max_dcr_share: float | None = CheckSettings.max_dcr_share,
    max_near_copy_rate: float | None = CheckSettings.max_near_copy_rate,
    min_rules_held: float | None = CheckSettings.min_rules_held,
    reuse_model: bool = False,
    max_drift: float = DEFAULT_MAX_DRIFT,
    max_model_age_hours: float = DEFAULT_MAX_MODEL_AGE_HOURS,
) -> dict[str, Param]:
    """Params for the Trigger form: what to generate, then the privacy and quality checks."""
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
            enum=[AUTO, *SYNTHESIZERS],
            title="Synthesizer",
            description=(
                "auto: tabular_argn where the argn extra is installed (most faithful), else "
                "gaussian_copula (fastest); ctgan, tvae and copulagan are SDV's neural models."
            ),
        ),
        "epochs": Param(
            epochs,
            type="integer",
            minimum=1,
            title="Epochs (neural synthesizers only)",
            description=(
                "Most training epochs of tabular_argn (which stops earlier when it stops "
                "improving, or at its time budget), ctgan, tvae and copulagan; ignored by "
                "gaussian_copula."
            ),
        ),
        "max_training_rows": Param(
            200_000,
            type="integer",
            minimum=0,
            title="Most training rows",
            description="A bigger table is trained on a seeded sample of this many rows; the "
            "rows to generate are sampled all the same. 0 = train on every row.",
        ),
        "shards": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            title="Sampling shards",
            description="Sample in this many shards, each a task of its own that any worker "
            "can run. Empty or 0 = one shard per million rows. The same seed and shard count "
            "give the same rows.",
        ),
        "reuse_model": Param(
            reuse_model,
            type="boolean",
            title="Reuse the last model",
            description="Skip training while the source has not drifted: reuse the model "
            "this dataset published last if it is younger than the maximum age and the data "
            "moved less than the maximum drift since it was trained. The run's manifest says "
            "reused or retrained, and why.",
        ),
        "max_drift": Param(
            max_drift,
            type="number",
            minimum=0,
            maximum=1,
            title="Maximum drift for reuse",
            description="0..1: the largest change since the model was trained of the row "
            "count, a column's NULL share, a number's distribution (Kolmogorov-Smirnov) or a "
            "category's shares (total variation). More: retrain.",
        ),
        "max_model_age_hours": Param(
            max_model_age_hours,
            type="number",
            minimum=0,
            title="Maximum model age (hours)",
            description="A model trained longer ago than this is retrained (168 = a week).",
        ),
        "seed": Param(
            seed,
            type=["null", "integer"],
            title="Random seed",
            description="Same seed + same data + same settings = same synthetic table.",
        ),
        "csv": Param(csv, type="boolean", title="Also publish CSV"),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Extract at most 1,000 rows, train, compute the reports and log the "
            "gate verdicts, but publish nothing.",
        ),
        "holdout_share": Param(
            holdout_share,
            type="number",
            minimum=0,
            maximum=0.9,
            title="Holdout share",
            description="Real rows kept out of training to measure privacy against (0.2 = 20%).",
        ),
        "similarity_filter": Param(
            similarity_filter,
            type="boolean",
            title="Similarity filter",
            description="Remove synthetic rows that copy or nearly copy a real row.",
        ),
        "outlier_filter": Param(
            outlier_filter,
            type="boolean",
            title="Outlier filter",
            description="Remove synthetic rows that are outliers in the real data's space.",
        ),
        "min_quality": _share_gate(
            min_quality,
            title="Gate: minimum quality score",
            description="Fail (publish nothing) below this SDV quality score. Empty = off.",
        ),
        "min_dependence": _share_gate(
            min_dependence,
            title="Gate: minimum dependence preservation",
            description="Share of the real table's strong relationships the synthetic table "
            "keeps (0 = columns independent, 1 = all kept). Empty = off.",
        ),
        "max_exact_match_rate": _share_gate(
            max_exact_match_rate,
            title="Gate: maximum exact-match rate",
            description="Fail if more than this share of rows copy a real row. Empty = off.",
        ),
        "max_dcr_share": _share_gate(
            max_dcr_share,
            title="Gate: maximum DCR share",
            description="0.5 is ideal; higher means rows sit closer to training rows than "
            "to unseen ones (memorisation). Empty = off.",
        ),
        "max_near_copy_rate": _share_gate(
            max_near_copy_rate,
            title="Gate: maximum near-copy rate",
            description="Fail if more rows than this share sit closer to a real row than any "
            "real row sits to another (or than unseen real rows would, at this size). "
            "Empty = off.",
        ),
        "min_rules_held": _share_gate(
            min_rules_held,
            title="Gate: rules held",
            description="Lowest share of rows on which a rule of the real table (a code that "
            "fixes a rate, shipped after ordered, a NULL pattern) holds. Empty = off.",
        ),
    }


def config_from_params(dataset: str, sql_file: str, **settings: Any) -> ESLConfig:
    """An :class:`ESLConfig` whose synthesizer settings come from :func:`esl_params`."""
    templated = {
        "synthesizer": "{{ params.synthesizer }}",
        "num_rows": "{{ params.rows }}",
        "seed": "{{ params.seed }}",
        "epochs": "{{ params.epochs }}",
        "max_training_rows": "{{ params.max_training_rows }}",
        "shards": "{{ params.shards }}",
        "reuse_model": "{{ params.reuse_model }}",
        "max_drift": "{{ params.max_drift }}",
        "max_model_age_hours": "{{ params.max_model_age_hours }}",
        "formats": "{{ ['parquet', 'csv'] if params.csv else ['parquet'] }}",
        "checks": {name: "{{ params." + name + " }}" for name in CHECK_PARAMS},
        "dry_run": "{{ params.dry_run }}",
    }
    return ESLConfig(dataset=dataset, sql_file=sql_file, **{**templated, **settings})
