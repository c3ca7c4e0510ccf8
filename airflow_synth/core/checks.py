"""What a synthetic table must pass before it is published: settings, holdout, gates.

The checks have three parts, all configured by one :class:`CheckSettings`:

* a **holdout**: a share of the real rows is kept out of training, so privacy is measured
  against rows the model never saw;
* **filters** (``similarity``, ``outlier``) that remove risky synthetic rows and have them
  replaced by new samples;
* **gates** that fail the run, before anything is published, when the final table misses a
  threshold (fail closed). Every verdict names the metric, its value and its threshold.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_synth.core.errors import QualityGateError, SynthesizerConfigError

if TYPE_CHECKING:  # pandas is heavy; DAG files import this module through the operators
    import pandas as pd


@dataclass(frozen=True)
class CheckSettings:
    """Holdout, filters and gate thresholds (the defaults are the documented ones)."""

    #: share of real rows held out of training to measure privacy against (0 disables DCR)
    holdout_share: float = 0.2
    #: drop synthetic rows that copy or nearly copy a training row
    similarity_filter: bool = True
    #: drop synthetic rows that are outliers in the real data's space
    outlier_filter: bool = True
    #: gate: SDV quality score of the published table must be at least this
    min_quality: float | None = 0.7
    #: gate: share of the real table's strong relationships the published table keeps (see
    #: core/dependence.py); catches what SDV's score misses, e.g. independently shuffled columns
    min_dependence: float | None = 0.25
    #: gate: share of published rows identical to a training row must be at most this
    max_exact_match_rate: float | None = 0.01
    #: gate: DCR share (0.5 ideal, 1.0 = every row closer to training than to holdout) at most
    max_dcr_share: float | None = 0.6
    #: the filters may drop at most this share of all sampled rows; more means the model
    #: reproduces real rows and re-sampling would only hide it
    max_filtered_share: float = 0.5

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> CheckSettings:
        """Validate user settings (from a task argument or the Trigger form)."""
        values = dict(values or {})
        known = {f.name: f for f in fields(cls)}
        clean: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise SynthesizerConfigError(
                    f"Unknown check setting {key!r}.{hint} Valid: {', '.join(known)}."
                )
            clean[key] = _coerce(key, value, known[key].default)
        settings = cls(**clean)
        if not 0 <= settings.holdout_share < 1:
            raise SynthesizerConfigError(
                f"holdout_share must be in [0, 1), got {settings.holdout_share}."
            )
        return settings

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, str):
            if value.strip().lower() in ("true", "1", "yes", "on"):
                return True
            if value.strip().lower() in ("false", "0", "no", "off"):
                return False
        if isinstance(value, bool):
            return value
        raise SynthesizerConfigError(f"{key} must be true or false, got {value!r}.")
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        if key.startswith(("min_", "max_")) and key != "max_filtered_share":
            return None  # a gate can be switched off explicitly
        raise SynthesizerConfigError(f"{key} needs a number, got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise SynthesizerConfigError(f"{key} must be a number, got {value!r}.") from exc
    if not math.isfinite(number) or number < 0:
        raise SynthesizerConfigError(f"{key} must be a finite number >= 0, got {value!r}.")
    return number


def split_holdout(
    frame: pd.DataFrame, share: float, seed: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split real rows into (train, holdout), seeded; holdout is empty when share is 0."""
    if share <= 0 or len(frame) < 10:
        return frame.reset_index(drop=True), frame.iloc[0:0].reset_index(drop=True)
    holdout = frame.sample(frac=share, random_state=seed if seed is not None else 0)
    train = frame.drop(index=holdout.index)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


@dataclass(frozen=True)
class GateVerdict:
    """One gate's outcome; ``kind`` says whether the value must stay above or below."""

    metric: str
    value: float | None
    threshold: float
    kind: str  # "min" | "max"
    passed: bool
    #: 95% confidence interval of a rate measured on a sample (DCR share), if any
    interval: tuple[float, float] | None = None

    def describe(self) -> str:
        relation = ">=" if self.kind == "min" else "<="
        value = "n/a" if self.value is None else f"{self.value:.4f}"
        if self.interval is not None:
            value += f" (95% CI {self.interval[0]:.3f}-{self.interval[1]:.3f})"
        status = "PASS" if self.passed else "FAIL"
        return f"{status} {self.metric} = {value} (must be {relation} {self.threshold:g})"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["interval"] = list(self.interval) if self.interval is not None else None
        return data


def evaluate_gates(
    settings: CheckSettings, quality: Mapping[str, Any], privacy: Mapping[str, Any] | None
) -> list[GateVerdict]:
    """Compare the final table's scores with the thresholds (a missing value fails)."""
    privacy = privacy or {}
    wanted = [
        ("quality_score", quality.get("score"), settings.min_quality, "min"),
        (
            "dependence_preservation",
            (quality.get("dependence") or {}).get("score", float("nan")),
            settings.min_dependence,
            "min",
        ),
        (
            "exact_match_rate",
            privacy.get("exact_match_rate"),
            exact_match_limit(settings, privacy),
            "max",
        ),
    ]
    if settings.holdout_share > 0:
        wanted.append(("dcr_share", privacy.get("dcr_share"), settings.max_dcr_share, "max"))
    measured_rows = int((privacy.get("rows") or {}).get("synthetic") or 0)
    verdicts = []
    for metric, value, threshold, kind in wanted:
        if threshold is None:
            continue
        number = None if value is None or _is_nan(value) else float(value)
        interval = None
        if metric == "dependence_preservation" and value is None:
            passed = True  # the real table has no strong relationship to preserve
        elif number is None:
            passed = False
        elif metric == "dcr_share" and (privacy.get("dcr_share_ci95") or measured_rows):
            # A share measured on n rows is noisy (+-0.15 at n=40): fail only when it is
            # *significantly* above the threshold, i.e. even its lower 95% bound is.
            bounds = privacy.get("dcr_share_ci95") or wilson_interval(number, measured_rows)
            interval = (float(bounds[0]), float(bounds[1]))
            passed = interval[0] <= threshold
        else:
            passed = number >= threshold if kind == "min" else number <= threshold
        verdicts.append(GateVerdict(metric, number, float(threshold), kind, passed, interval))
    return verdicts


def exact_match_limit(settings: CheckSettings, privacy: Mapping[str, Any]) -> float | None:
    """The exact-match threshold, never below the rate at which *real* rows repeat.

    On coarse tables (an event log of a few categories) unseen real rows equal some
    training row far more often than 1%; a generator drawing from the true distribution
    would match at that rate too. So the gate allows ``max(max_exact_match_rate, the
    held-out rows' own exact-match rate to training)`` (its 95% upper bound, as that rate is
    measured on the holdout sample): a model copying training rows still fails, a faithful
    one does not.
    """
    limit = settings.max_exact_match_rate
    baseline = privacy.get("exact_match_rate_holdout_to_train")
    if limit is None or baseline is None or _is_nan(baseline):
        return limit
    held_out = int((privacy.get("rows") or {}).get("holdout") or 0)
    if held_out:  # the baseline is itself measured on a sample: allow its 95% upper bound
        baseline = wilson_interval(float(baseline), held_out)[1]
    return max(float(limit), round(float(baseline), 6))


def wilson_interval(share: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion ``share`` observed on ``n`` trials."""
    if n <= 0:
        return (0.0, 1.0)
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def enforce_gates(
    verdicts: list[GateVerdict], where: str, reports: Mapping[str, Path] | None = None
) -> None:
    """Raise :class:`QualityGateError` naming every failed gate (fail closed).

    ``reports`` (name -> local file) travel with the error so the caller can quarantine
    them for the user to read.
    """
    failed = [v for v in verdicts if not v.passed]
    if failed:
        lines = "\n  ".join(v.describe() for v in failed)
        raise QualityGateError(
            f"{where}: the synthetic table failed {len(failed)} gate(s), so nothing was "
            f"published:\n  {lines}\nSee the report for details; adjust the synthesizer "
            "(e.g. more epochs, another model) or, deliberately, the thresholds.",
            reports=reports,
        )
