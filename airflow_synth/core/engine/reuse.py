"""Reuse last night's model or retrain: the decision and the record it is made from.

A nightly refresh retrained every night even when the source had not changed. Now a run
can reuse the model its dataset published last (``latest.json`` -> manifest -> model) when

1. reuse is switched on (``reuse_model``),
2. there is such a model, trained with a stable holdout split (a keyed hash of each row,
   :func:`~airflow_synth.core.engine.holdout.holdout_mask` with a ``salt``), and every
   setting that shapes the model is the same (:func:`model_key`: synthesizer and its
   parameters, seed, contract, holdout share, training-row bound, library versions),
3. the columns are the same (names, types, which are modelled),
4. the model is younger than ``max_model_age_hours`` (counted from when it was *trained*,
   not from when it was last reused: otherwise a model would never expire), and
5. the data drifted at most ``max_drift`` since the model was trained
   (:func:`~airflow_synth.core.engine.fingerprint.measure_drift`: training fingerprint vs
   today's extract; drift is measured against the training data, not against last night,
   so slow creep adds up and triggers a retrain).

Otherwise the run retrains. The decision is a small JSON-safe dict (:class:`ReuseDecision`)
that goes into the log and the manifest (``synthesis.model_reuse``). The record
(:class:`ModelRecord`, ``fingerprint.json`` next to the model) is what the next night
decides on. No Airflow import; no I/O.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from typing import Any

#: The file next to ``model.pkl`` that holds the :class:`ModelRecord` (private: the salt).
RECORD_FILE = "fingerprint.json"
#: The reusable model (profiles, rules, metadata and the decode-only synthesizer).
TABLE_MODEL_FILE = "table_model.pkl"
DEFAULT_MAX_DRIFT = 0.1
DEFAULT_MAX_MODEL_AGE_HOURS = 168.0  # a week
#: Holdout split methods: a keyed hash (stable across runs) or a seeded permutation.
KEYED = "keyed_hash"
SEEDED = "seeded"
REUSED = "reused"
RETRAINED = "retrained"
#: The libraries whose version changes a model (or the holdout hash: pandas).
MODEL_LIBRARIES = ("airflow-synth", "sdv", "rdt", "pandas")


@dataclass(frozen=True)
class ReuseSettings:
    """Whether and how long a model may be reused."""

    enabled: bool = False
    max_drift: float = DEFAULT_MAX_DRIFT
    max_model_age_hours: float = DEFAULT_MAX_MODEL_AGE_HOURS

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.max_drift) <= 1.0:
            raise ValueError(f"max_drift must be between 0 and 1, got {self.max_drift!r}.")
        if float(self.max_model_age_hours) < 0:
            raise ValueError(
                f"max_model_age_hours must be >= 0 hours, got {self.max_model_age_hours!r}."
            )


def reuse_settings_from(
    reuse_model: Any = None, max_drift: Any = None, max_model_age_hours: Any = None
) -> ReuseSettings:
    """The three settings as operators, Params and templates give them (text included;
    empty = default), checked: a bad value fails before the first row is read."""
    from airflow_synth.core.coerce import as_bool
    from airflow_synth.core.errors import SynthesizerConfigError

    def number(value: Any, name: str, default: float) -> float:
        if value is None or (isinstance(value, str) and not value.strip()):
            return default
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise SynthesizerConfigError(f"{name} must be a number, got {value!r}.") from exc

    try:
        return ReuseSettings(
            enabled=as_bool(reuse_model),
            max_drift=number(max_drift, "max_drift", DEFAULT_MAX_DRIFT),
            max_model_age_hours=number(
                max_model_age_hours, "max_model_age_hours", DEFAULT_MAX_MODEL_AGE_HOURS
            ),
        )
    except ValueError as exc:
        raise SynthesizerConfigError(str(exc)) from exc


def new_salt() -> str:
    """A fresh secret for the keyed holdout hash (16 characters: pandas' hash key size)."""
    return secrets.token_hex(8)


def _digest(value: Any) -> str | None:
    if value is None:
        return None
    data = asdict(value) if is_dataclass(value) and not isinstance(value, type) else value
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "source"}  # where it was read from
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_key(
    *,
    synthesizer: Mapping[str, Any],
    seed: int | None,
    contract: Any,
    holdout_share: float,
    max_training_rows: int | None,
    versions: Mapping[str, str],
) -> dict[str, Any]:
    """Every setting that shapes a trained model; a reused model must match all of them."""
    return {
        "synthesizer": json.loads(json.dumps(dict(synthesizer), sort_keys=True, default=str)),
        "seed": seed,
        "contract": _digest(contract),
        "holdout_share": float(holdout_share),
        "max_training_rows": max_training_rows,
        "versions": {name: versions.get(name) for name in MODEL_LIBRARIES},
    }


@dataclass
class ModelRecord:
    """What is stored with a model for the next run to decide on (``fingerprint.json``)."""

    fingerprint: dict[str, Any]
    model_key: dict[str, Any]
    trained_at: str  # ISO 8601, UTC
    trained_run: str | None
    holdout: dict[str, Any]  # {"method": keyed_hash|seeded, "share": float, "salt": str|None}
    #: runs that reused this model since it was trained (newest last, at most 30 kept)
    reused_by: list[str] = field(default_factory=list)

    @property
    def salt(self) -> str | None:
        return self.holdout.get("salt") if self.holdout.get("method") == KEYED else None

    def age_hours(self, now: datetime) -> float:
        trained = datetime.fromisoformat(self.trained_at)
        if trained.tzinfo is None:
            trained = trained.replace(tzinfo=UTC)
        return max(0.0, (now - trained).total_seconds() / 3600.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelRecord:
        return cls(
            fingerprint=dict(data["fingerprint"]),
            model_key=dict(data["model_key"]),
            trained_at=str(data["trained_at"]),
            trained_run=data.get("trained_run"),
            holdout=dict(data.get("holdout") or {"method": SEEDED}),
            reused_by=list(data.get("reused_by") or []),
        )

    def reused_in(self, run: str | None) -> ModelRecord:
        """This record as a run that reuses the model republishes it: same fingerprint,
        training time and run (the age keeps counting from the training)."""
        runs = [*self.reused_by, *([run] if run else [])][-30:]
        return ModelRecord(
            self.fingerprint, self.model_key, self.trained_at, self.trained_run, self.holdout, runs
        )


@dataclass(frozen=True)
class ReuseDecision:
    """Reuse or retrain, and why: ``synthesis.model_reuse`` in the manifest."""

    decision: str
    reason: str
    model_run: str | None
    model_age_hours: float | None
    drift: float | None
    max_drift: float
    max_model_age_hours: float

    @property
    def reused(self) -> bool:
        return self.decision == REUSED

    def to_dict(self) -> dict[str, Any]:
        """Exactly the manifest's ``synthesis.model_reuse`` shape."""
        return {
            "decision": self.decision,
            "reason": self.reason,
            "model_run": self.model_run,
            "model_age_hours": self.model_age_hours,
            "drift": self.drift,
            "max_drift": float(self.max_drift),
            "max_model_age_hours": float(self.max_model_age_hours),
        }


def _changed_settings(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    changed = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            changed.append("library version" if key == "versions" else key)
    return changed


def decide(
    settings: ReuseSettings,
    previous: ModelRecord | None,
    fingerprint: Mapping[str, Any],
    key: Mapping[str, Any],
    now: datetime,
) -> ReuseDecision:
    """Reuse ``previous`` (the dataset's latest published model) or retrain; see the module
    docstring for the order of the conditions. ``fingerprint`` is today's extract's,
    computed with ``previous``'s salt; ``key`` today's :func:`model_key`."""
    from airflow_synth.core.engine.fingerprint import measure_drift, schema_changes

    def verdict(decision: str, reason: str, age: float | None, drift: float | None) -> Any:
        return ReuseDecision(
            decision,
            reason,
            previous.trained_run if previous is not None else None,
            None if age is None else round(age, 2),
            drift,
            float(settings.max_drift),
            float(settings.max_model_age_hours),
        )

    if not settings.enabled:
        return verdict(RETRAINED, "retrained: reuse_model is off", None, None)
    if previous is None:
        return verdict(RETRAINED, "retrained: no earlier model", None, None)
    age = previous.age_hours(now)
    if previous.salt is None:
        return verdict(
            RETRAINED,
            "retrained: the earlier model was trained without a stable holdout split "
            "(reuse_model was off)",
            age,
            None,
        )
    changed = _changed_settings(previous.model_key, key)
    if changed:
        return verdict(RETRAINED, f"retrained: settings changed ({', '.join(changed)})", age, None)
    columns = schema_changes(previous.fingerprint, fingerprint)
    if columns:
        shown = ", ".join(columns[:5]) + (
            f" and {len(columns) - 5} more" if len(columns) > 5 else ""
        )
        return verdict(RETRAINED, f"retrained: columns changed ({shown})", age, None)
    drift = measure_drift(previous.fingerprint, fingerprint)
    limit = float(settings.max_model_age_hours)
    if age > limit:
        return verdict(
            RETRAINED,
            f"retrained: model older than {limit:g} h (age {age:.1f} h)",
            age,
            drift.value,
        )
    if drift.value > settings.max_drift:
        where = "the row count" if drift.where == "row count" else f"column {drift.where}"
        return verdict(
            RETRAINED,
            f"retrained: drift {drift.value:.3f} > {settings.max_drift:g} on {where}",
            age,
            drift.value,
        )
    return verdict(
        REUSED,
        f"reused model of run {previous.trained_run} (age {age:.1f} h, drift "
        f"{drift.value:.3f} <= {settings.max_drift:g})",
        age,
        drift.value,
    )


def decision_text(reuse: Mapping[str, Any] | None) -> str | None:
    """One line for people: "reused from run X (age 22.0 h, drift 0.031 <= 0.1)" or
    "retrained: drift 0.240 > 0.1 on nights"; None without a decision.

    The manifest's ``reason`` already starts with the decision (it is read alone in logs),
    so a display that shows decision and reason side by side said it twice.
    """
    if not reuse or not reuse.get("decision"):
        return None
    decision, reason = str(reuse["decision"]), str(reuse.get("reason") or "")
    if decision == REUSED:
        source = reuse.get("model_run")
        prefix = f"reused model of run {source} "
        detail = reason.removeprefix(prefix) if source and reason.startswith(prefix) else ""
        head = f"reused from run {source}" if source else "reused from an earlier run"
        return f"{head} {detail}".strip() if detail else (reason or head)
    return reason if reason.startswith(f"{decision}: ") else f"{decision}: {reason}".rstrip(": ")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ReusePlan:
    """What a train step needs to decide: the settings, the dataset's latest published
    model's record (None: none, or one from before fingerprints), how to load that model
    (called only when it is reused: the download is skipped otherwise), this run's name."""

    settings: ReuseSettings
    previous: ModelRecord | None = None
    load_model: Callable[[], Any] | None = None
    run: str | None = None
    now: datetime | None = None

    def salt(self) -> str:
        """The salt of this run's holdout hash and category keys: the earlier model's (so
        a row stays on its side from night to night, retrained or not), else a new one."""
        earlier = self.previous.holdout.get("salt") if self.previous is not None else None
        return str(earlier) if earlier else new_salt()
