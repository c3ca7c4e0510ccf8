"""Is a published synthetic dataset healthy? Fresh enough, and not worse than before.

A nightly refresh that silently stops, or a source change that makes the model worse,
should alert someone. :func:`check_dataset_health` reads the dataset's ``latest.json``
and the manifests it points at (never a folder listing) and fails when the newest run is
older than ``max_age`` or its quality score fell by more than ``max_quality_drop``
compared with the run published before it. Scheduled as a task, a failure alerts through
Airflow's usual channels (email, callbacks, notifiers).

The dataset is looked up by its name as it is (the name is the prefix; a name outside the
allowed set is refused, see :func:`~airflow_synth.core.names.check_dataset_name`), and the
manifests by the URIs ``latest.json`` lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_synth.core.errors import SynthError
from airflow_synth.core.names import check_dataset_name
from airflow_synth.core.publish.store import ObjectStore, read_latest


class DatasetHealthError(SynthError):
    """The dataset is stale, missing or worse than its previous run."""


@dataclass
class HealthReport:
    """What the check saw; ``problems`` is empty when the dataset is healthy."""

    dataset: str
    run: str | None = None
    published_at: str | None = None
    age_hours: float | None = None
    quality: float | None = None
    previous_quality: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "healthy": self.healthy}


def _manifest(store: ObjectStore, uri: str | None) -> dict[str, Any] | None:
    if not uri:
        return None
    key = uri.removeprefix("s3://").partition("/")[2]
    raw = store.get_bytes(key)
    return json.loads(raw) if raw is not None else None


def _quality(manifest: dict[str, Any] | None) -> float | None:
    scores = ((manifest or {}).get("synthesis") or {}).get("scores") or {}
    value = scores.get("quality_score")
    return None if value is None else float(value)


def check_dataset_health(
    store: ObjectStore,
    dataset: str,
    *,
    max_age: timedelta | None = timedelta(hours=26),
    max_quality_drop: float | None = 0.05,
    now: datetime | None = None,
) -> HealthReport:
    """Inspect the dataset's newest publication; see :class:`HealthReport`."""
    report = HealthReport(dataset=check_dataset_name(dataset))
    latest = read_latest(store, dataset)
    if latest is None:
        report.problems.append(f"dataset {dataset!r} was never published (no latest.json)")
        return report
    report.run, report.published_at = latest.get("run"), latest.get("published_at")
    manifest = _manifest(store, latest.get("manifest_uri"))
    if manifest is None:
        report.problems.append(f"latest.json names {latest.get('manifest_uri')}, which is missing")
        return report
    published = datetime.fromisoformat(manifest["published_at"])
    age = (now or datetime.now(UTC)) - published
    report.age_hours = round(age.total_seconds() / 3600, 4)
    if max_age is not None and age > max_age:
        report.problems.append(
            f"newest run {report.run} is {report.age_hours:.1f} h old, older than the "
            f"limit of {max_age.total_seconds() / 3600:.1f} h: has the refresh stopped?"
        )
    report.quality = _quality(manifest)
    report.previous_quality = _quality(_manifest(store, latest.get("previous_manifest_uri")))
    if (
        max_quality_drop is not None
        and report.quality is not None
        and report.previous_quality is not None
        and report.previous_quality - report.quality > max_quality_drop
    ):
        report.problems.append(
            f"quality score fell from {report.previous_quality:.3f} to {report.quality:.3f}, "
            f"more than the allowed {max_quality_drop:g}: check the source data and the model"
        )
    return report


def enforce_health(report: HealthReport) -> None:
    """Raise :class:`DatasetHealthError` listing every problem."""
    if report.problems:
        raise DatasetHealthError(
            f"Synthetic dataset {report.dataset!r} is unhealthy:\n  - "
            + "\n  - ".join(report.problems)
        )
