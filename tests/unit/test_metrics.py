"""Metrics go to Airflow's stats backend with the dataset tag, and never fail a task."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_synth import metrics

pytestmark = pytest.mark.unit


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any, dict]] = []

    def incr(self, stat: str, count: int | None = None, tags: dict | None = None) -> None:
        self.calls.append(("incr", stat, count, tags))

    def gauge(self, stat: str, value: float, tags: dict | None = None) -> None:
        self.calls.append(("gauge", stat, value, tags))

    def timing(self, stat: str, dt: float, tags: dict | None = None) -> None:
        self.calls.append(("timing", stat, dt, tags))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(metrics, "_stats", lambda: rec)
    return rec


def test_each_phase_emits_counters_timings_and_scores(recorder: Recorder) -> None:
    metrics.extract_metrics("users", {"rows": 1200, "seconds": 0.5})
    metrics.synthesis_metrics(
        "users",
        {
            "fit_seconds": 2.0,
            "sample_seconds": 1.0,
            "checks_seconds": 0.25,
            "scores": {"quality_score": 0.88, "dcr_share": 0.49, "nndr_median": None},
            "filters": {"similarity": 3, "outlier": 7},
        },
    )
    metrics.load_metrics("users", {"rows": 1000, "seconds": 0.1})
    seen = {(kind, stat): value for kind, stat, value, _ in recorder.calls}
    assert seen[("incr", "airflow_synth.rows_extracted")] == 1200
    assert seen[("incr", "airflow_synth.rows_published")] == 1000
    assert seen[("incr", "airflow_synth.rows_filtered")] == 10
    assert seen[("timing", "airflow_synth.fit_seconds")] == 2000.0
    assert seen[("gauge", "airflow_synth.score.quality_score")] == 0.88
    assert ("gauge", "airflow_synth.score.nndr_median") not in seen  # None is not a value
    assert all(tags == {"dataset": "users"} for *_, tags in recorder.calls)


def test_a_broken_backend_never_fails_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Any:
        raise RuntimeError("statsd down")

    monkeypatch.setattr(metrics, "_stats", broken)
    metrics.load_metrics("users", {"rows": 1, "seconds": 0.1})  # no exception
