"""What a synthetic table must pass before it is published: settings, holdout, gates.

The checks have three parts, all configured by one :class:`CheckSettings`:

* a **holdout**: a share of the real rows is kept out of training, so privacy is measured
  against rows the model never saw. It is split by *distinct row*: identical real rows all
  land on one side, or held-out rows would sit at distance 0 from training rows and every
  distance yardstick drawn from them would collapse to 0;
* **filters** (``similarity``, ``outlier``) that remove risky synthetic rows and have them
  replaced by new samples;
* **gates** that fail the run, before anything is published, when a measured value misses
  its limit (fail closed). Every verdict names the metric, its value and its limit.

Three rules make the gates hard to fool (each one was fooled once):

* **the value decides**: a gate fails when its measured value misses the limit. A
  confidence interval is reported so a reader sees how noisy the value is, but it never
  excuses a miss (a DCR share of 1.0 on 22 rows used to pass because its lower bound was
  0.589);
* **unmeasurable fails closed**: a score that cannot be measured (too few rows, no strong
  relationships, no held-out rows) fails its gate with the reason, unless the user waived
  that gate explicitly by setting its threshold to ``None``. A waived gate stays in the
  list (``waived: true``), so every report shows what was not checked;
* **limits come from the data**: where real rows themselves repeat or sit close together,
  the limit is the rate at which *real* rows do so, plus the sampling noise of the
  synthetic count at its size (shrinking with n), never the wide interval of a tiny
  sample. See :func:`exact_match_limit` and :func:`near_copy_limit`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_synth.core.engine.holdout import MIN_ROWS_FOR_HOLDOUT
from airflow_synth.core.errors import QualityGateError, SynthesizerConfigError

if TYPE_CHECKING:  # pandas is heavy; DAG files import this module through the operators
    pass

#: False-alarm rate of the data-derived limits: a faithful model fails a limit that comes
#: from the binomial noise of its own count about once in a thousand runs.
FALSE_ALARM_RATE = 0.001


@dataclass(frozen=True)
class CheckSettings:
    """Holdout, filters and gate thresholds (the defaults are the documented ones).

    A gate threshold set to ``None`` is an explicit *waiver*: the gate is not enforced and
    is listed as waived in every report. Without a waiver a gate whose value cannot be
    measured fails (fail closed).
    """

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
    #: gate: share of sampled rows identical to a training row must be at most this, or at
    #: most the rate at which real rows repeat each other (plus noise) when that is higher
    max_exact_match_rate: float | None = 0.01
    #: gate: share of sampled rows that nearly copy a training row (closer to it than any
    #: real row is to another, exact copies excluded) must be at most this, or at most what
    #: unseen real rows score plus noise at this size when that is higher
    max_near_copy_rate: float | None = 0.01
    #: gate: the lowest share of published rows on which a rule of the real table holds
    #: (functional dependencies, orderings, null patterns found on every training row)
    min_rules_held: float | None = 1.0
    #: gate: DCR share (0.5 ideal, 1.0 = every row closer to training than to holdout) at most
    max_dcr_share: float | None = 0.6
    #: gate: the filters may drop at most this share of all sampled rows; more means the
    #: model reproduces real rows and re-sampling would only hide it
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
            return None  # a gate can be waived explicitly
        raise SynthesizerConfigError(f"{key} needs a number, got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise SynthesizerConfigError(f"{key} must be a number, got {value!r}.") from exc
    if not math.isfinite(number) or number < 0:
        raise SynthesizerConfigError(f"{key} must be a finite number >= 0, got {value!r}.")
    return number


def holdout_shortfall(rows: int, share: float) -> str:
    """Why there is no holdout, in words a user can act on."""
    if share <= 0:
        return "holdout_share is 0, so no real rows were held out to compare with"
    if rows < MIN_ROWS_FOR_HOLDOUT:
        return (
            f"the table has only {rows} real row(s): nothing is held out below "
            f"{MIN_ROWS_FOR_HOLDOUT} rows, so there are no unseen real rows to compare with"
        )
    return "no real rows were held out (every distinct row is too frequent to hold out)"


#: gate metric -> the setting that waives it
GATE_SETTINGS = {
    "quality_score": "min_quality",
    "dependence_preservation": "min_dependence",
    "exact_match_rate": "max_exact_match_rate",
    "near_copy_rate": "max_near_copy_rate",
    "dcr_share": "max_dcr_share",
    "filtered_share": "max_filtered_share",
    "rules_held": "min_rules_held",
}
PRIVACY_GATES = ("exact_match_rate", "near_copy_rate", "dcr_share")


@dataclass(frozen=True)
class GateVerdict:
    """One gate's outcome; ``kind`` says whether the value must stay above or below.

    ``waived``: the user switched the gate off (threshold ``None``): it passes and says so.
    ``reason``: why the value could not be measured (then the gate fails unless waived),
    or how a data-derived threshold came about.
    """

    metric: str
    value: float | None
    threshold: float | None
    kind: str  # "min" | "max"
    passed: bool
    #: 95% confidence interval of a rate measured on a sample (DCR share), if any; shown
    #: for reading the value, never used to excuse a miss
    interval: tuple[float, float] | None = None
    waived: bool = False
    reason: str | None = None

    def describe(self) -> str:
        relation = ">=" if self.kind == "min" else "<="
        value = "n/a" if self.value is None else f"{self.value:.4f}"
        if self.interval is not None:
            value += f" (95% CI {self.interval[0]:.3f}-{self.interval[1]:.3f})"
        if self.waived:
            setting = GATE_SETTINGS.get(self.metric.rsplit(".", 1)[-1], "its threshold")
            because = f": {self.reason}" if self.reason else ""
            return f"WAIVED {self.metric} = {value} (not enforced: {setting}=None){because}"
        threshold = "n/a" if self.threshold is None else f"{self.threshold:g}"
        text = f"{'PASS' if self.passed else 'FAIL'} {self.metric} = {value} "
        text += f"(must be {relation} {threshold})"
        if self.value is None and not self.passed:
            text += f": could not be measured: {self.reason or 'no value'}"
            setting = GATE_SETTINGS.get(self.metric.rsplit(".", 1)[-1])
            if setting is not None and setting != "max_filtered_share":
                text += (
                    f". To publish without this check, waive it explicitly: "
                    f"checks={{{setting!r}: None}}"
                )
        elif self.reason:
            text += f" [{self.reason}]"
        return text

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["interval"] = list(self.interval) if self.interval is not None else None
        return data


def verdict(
    metric: str,
    value: Any,
    threshold: float | None,
    kind: str,
    *,
    missing: str | None = None,
    note: str | None = None,
    interval: tuple[float, float] | None = None,
) -> GateVerdict:
    """One gate: waived when ``threshold`` is None, failed when ``value`` is missing (with
    ``missing``, why it could not be measured), otherwise the value itself against the
    threshold, the only way to pass (``note``: how a data-derived threshold was set)."""
    number = None if value is None or _is_nan(value) else float(value)
    reason = missing if number is None else note
    if threshold is None:
        return GateVerdict(metric, number, None, kind, True, interval, True, reason)
    if number is None:
        return GateVerdict(metric, None, float(threshold), kind, False, interval, False, reason)
    passed = number >= threshold if kind == "min" else number <= threshold
    return GateVerdict(metric, number, float(threshold), kind, passed, interval, False, reason)


def evaluate_gates(
    settings: CheckSettings,
    quality: Mapping[str, Any],
    privacy: Mapping[str, Any] | None,
    *,
    pii_leak: Mapping[str, Any] | None = None,
) -> list[GateVerdict]:
    """Every gate's verdict on the run's measurements (a missing value fails, unless waived).

    ``privacy`` is the privacy report of the *raw* sample (before the filters); when it is
    ``None`` or carries ``"measured": False`` its ``reason`` says why, and the privacy
    gates fail closed with it. ``pii_leak`` (``values``: real values published in columns
    generated fresh, None when not checked; ``reason``) gives the ``pii_leak`` gate, which
    cannot be waived; it is left out only when ``pii_leak`` is None (callers that have no
    fresh columns to check).
    """
    privacy = privacy or {}
    measured = bool(privacy) and privacy.get("measured", True) is not False
    privacy_reason = privacy.get("reason") or "privacy was not measured (no held-out rows)"
    dependence = quality.get("dependence") or {}
    verdicts = [
        verdict(
            "quality_score",
            quality.get("score"),
            settings.min_quality,
            "min",
            missing=quality.get("reason") or "SDV's quality report gave no score",
        ),
        verdict(
            "dependence_preservation",
            dependence.get("score"),
            settings.min_dependence,
            "min",
            missing=dependence.get("reason") or "dependence preservation was not computed",
        ),
    ]
    if measured:
        exact_limit, exact_why = exact_match_limit(settings, privacy)
        near_limit, near_why = near_copy_limit(settings, privacy)
        near_value = privacy.get("near_copy_rate")
        verdicts += [
            verdict(
                "exact_match_rate",
                privacy.get("exact_match_rate"),
                exact_limit,
                "max",
                note=exact_why,
            ),
            verdict(
                "near_copy_rate",
                near_value,
                near_limit,
                "max",
                note=near_why,
                missing=privacy.get("near_copy_reason") or "no held-out row to compare with",
            ),
            verdict(
                "dcr_share",
                privacy.get("dcr_share"),
                settings.max_dcr_share,
                "max",
                interval=_interval(privacy.get("dcr_share_ci95")),
            ),
        ]
    else:
        verdicts += [
            verdict(metric, None, getattr(settings, GATE_SETTINGS[metric]), "max", missing=why)
            for metric, why in zip(PRIVACY_GATES, [privacy_reason] * 3, strict=True)
        ]
    filtered = privacy.get("filtered_share")
    too_much = filtered is not None and filtered > settings.max_filtered_share
    verdicts.append(
        verdict(
            "filtered_share",
            0.0 if filtered is None else filtered,
            settings.max_filtered_share,
            "max",
            note=filtered_note(privacy.get("filtered"), settings) if too_much else None,
        )
    )
    rules = quality.get("rules")
    if rules is not None:  # only callers that discovered rules (single-table runs today)
        verdicts.append(
            verdict(
                "rules_held",
                rules.get("held"),
                settings.min_rules_held,
                "min",
                missing="no rule could be checked on the published rows",
            )
        )
    if pii_leak is not None:
        verdicts.append(pii_leak_verdict(pii_leak))
    return verdicts


def filtered_note(filtered: Mapping[str, Any] | None, settings: CheckSettings) -> str:
    """Why the privacy filters removed so many rows, by filter and column name (never a
    value), and the settings that change it: the ``filtered_share`` gate's message."""
    parts = []
    for name, entry in (filtered or {}).items():
        entry = entry if isinstance(entry, Mapping) else {"dropped": entry}
        dropped = int(entry.get("dropped") or 0)
        if not dropped:
            continue
        if name == "similarity":
            columns = ", ".join(entry.get("compared_on") or []) or "the measured columns"
            parts.append(
                f"the similarity filter removed {dropped} rows that copy or nearly copy a "
                f"training row (they agree with one on {columns})"
            )
        elif name == "outlier":
            far = entry.get("far_on") or []
            on = ", ".join(f"{f['column']} ({100 * f['share']:.0f}%)" for f in far)
            parts.append(
                f"the outlier filter removed {dropped} rows far from every real row"
                + (f", mostly on {on}" if on else "")
            )
        else:
            parts.append(f"the {name} filter removed {dropped} rows")
    why = "; ".join(parts) or "the privacy filters removed the rows"
    return (
        f"{why}. To change it: a model that copies its training rows needs another "
        "synthesizer or settings; checks={'similarity_filter': False} or "
        "{'outlier_filter': False} switches a filter off (the privacy gates still judge the "
        f"raw sample); 'max_filtered_share' (now {settings.max_filtered_share:g}) allows "
        f"more; a larger 'holdout_share' (now {settings.holdout_share:g}) gives both filters "
        "a steadier yardstick"
    )


def pii_leak_verdict(pii_leak: Mapping[str, Any]) -> GateVerdict:
    """``pii_leak``: real values published in columns generated fresh; must be 0.

    It has no setting and cannot be waived: a column generated fresh that shows a real
    value is a broken promise, not a trade-off. Not checked (``values`` None) fails.
    """
    values = pii_leak.get("values")
    reason = pii_leak.get("reason")
    if values is None:
        reason = reason or "the columns generated fresh were not checked against real values"
    return verdict("pii_leak", values, 0.0, "max", missing=reason)


def exact_match_limit(
    settings: CheckSettings, privacy: Mapping[str, Any]
) -> tuple[float | None, str | None]:
    """The exact-match limit and how it was set: the setting, or how often real rows repeat.

    On coarse tables (an event log of a few categories) a real row often equals another
    real row; a generator drawing from the true distribution produces such matches at the
    same rate. That rate, ``exact_match_rate_real_repeats``, is measured on the training
    rows (the share of training rows that equal another training row; the holdout cannot
    give it, as it is split by distinct row). The limit is:

    * ``max_exact_match_rate`` when no real row repeats (never a wide interval around 0:
      the old 95% upper bound of 0 of 20 held-out rows allowed 16% copies);
    * otherwise ``max(max_exact_match_rate, repeat rate + noise)``, the noise being the
      one-sided 99.9% normal margin of the difference of two proportions (the repeat rate
      measured on the training rows, the synthetic rate on the sampled rows): it shrinks
      as both grow, and a copier (rate 1.0) stays far above it.
    """
    limit = settings.max_exact_match_rate
    if limit is None:
        return None, None
    baseline = privacy.get("exact_match_rate_real_repeats")
    if baseline is None or _is_nan(baseline) or float(baseline) <= 0:
        return float(limit), None
    rows = privacy.get("rows") or {}
    n_real = int(rows.get("train") or 0)
    n_syn = int(rows.get("synthetic") or 0)
    p = float(baseline)
    margin = _z() * math.sqrt(p * (1 - p) * (_inverse(n_real) + _inverse(n_syn)))
    data_limit = min(1.0, p + margin)
    if data_limit <= limit:
        return float(limit), None
    why = f"real rows repeat at {p:.4f}; limit = that + noise at this size"
    return round(data_limit, 6), why


def near_copy_limit(
    settings: CheckSettings, privacy: Mapping[str, Any]
) -> tuple[float | None, str | None]:
    """The near-copy limit: the setting, or what unseen real rows score plus noise.

    A near copy is a sampled row, not an exact copy, closer to a training row than the
    smallest of ``m`` reference distances (held-out rows to training, distinct training
    rows to their nearest other one; see :mod:`airflow_synth.core.assess.privacy`). An unseen real
    row lands there with probability ``1 / (m + 1)``; over the ``m`` reference rows that
    probability is itself Beta(1, m) distributed, so the count among ``n`` sampled rows is
    beta-binomial(n, 1, m) for a model that does not copy, whatever the data. The limit is
    the larger of ``max_near_copy_rate`` and that distribution's 99.9% quantile / n: a
    faithful model fails about once in a thousand runs, a model that puts 5% of its rows on
    top of real ones fails from about 300 rows up (limits 9% / 3% / 1% at 100 / 300 /
    1,000 rows of a table without repeats).
    """
    limit = settings.max_near_copy_rate
    if limit is None:
        return None, None
    expected = privacy.get("near_copy_rate_expected")
    n_syn = int((privacy.get("rows") or {}).get("synthetic") or 0)
    if expected is None or _is_nan(expected) or n_syn <= 0 or float(expected) <= 0:
        return float(limit), None
    from scipy.stats import betabinom

    reference = max(1, round(1 / float(expected)) - 1)
    noise = float(betabinom.ppf(1 - FALSE_ALARM_RATE, n_syn, 1, reference)) / n_syn
    if noise <= limit:
        return float(limit), None
    why = f"unseen real rows score {float(expected):.4f}; limit = that + noise at {n_syn} rows"
    return round(noise, 6), why


def wilson_interval(share: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion ``share`` observed on ``n`` trials."""
    if n <= 0:
        return (0.0, 1.0)
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _z() -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(1 - FALSE_ALARM_RATE)


def _inverse(n: int) -> float:
    return 1.0 / n if n > 0 else 1.0


def _interval(bounds: Any) -> tuple[float, float] | None:
    if not bounds or any(b is None for b in bounds):
        return None
    return (float(bounds[0]), float(bounds[1]))


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def enforce_gates(
    verdicts: list[GateVerdict], where: str, reports: Mapping[str, Path] | None = None
) -> None:
    """Raise :class:`QualityGateError` naming every failed gate (fail closed).

    ``reports`` (name -> local file) travel with the error so the caller can quarantine
    them for the user to read. Waived gates are named too, so the message never hides
    what was not checked.
    """
    failed = [v for v in verdicts if not v.passed]
    if failed:
        lines = "\n  ".join(v.describe() for v in failed)
        waived = [v.metric for v in verdicts if v.waived]
        note = f"\nWaived (not checked): {', '.join(waived)}." if waived else ""
        raise QualityGateError(
            f"{where}: the synthetic table failed {len(failed)} gate(s), so nothing was "
            f"published:\n  {lines}{note}\nSee the report for details; adjust the synthesizer "
            "(e.g. more epochs, another model) or, deliberately, the thresholds.",
            reports=reports,
        )
