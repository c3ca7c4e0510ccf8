"""Pipeline metrics through Airflow's own metrics system (StatsD / OpenTelemetry).

Whatever ``[metrics]`` backend the deployment configured receives, tagged with the
dataset: ``airflow_synth.rows_extracted`` / ``rows_published`` / ``rows_filtered``
(counters), ``airflow_synth.<phase>_seconds`` (timings, ms) and ``airflow_synth.score.<name>``
(gauges: quality, dependence, exact-match rate, DCR share...). Emitting never fails a task.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)
PREFIX = "airflow_synth"


def _stats() -> Any:
    from airflow.sdk.observability import stats

    return stats


def _emit(kind: str, name: str, value: float, dataset: str) -> None:
    try:
        stats = _stats()
        tags = {"dataset": dataset}
        if kind == "incr":
            stats.incr(f"{PREFIX}.{name}", count=int(value), tags=tags)
        elif kind == "gauge":
            stats.gauge(f"{PREFIX}.{name}", float(value), tags=tags)
        else:
            stats.timing(f"{PREFIX}.{name}", float(value) * 1000.0, tags=tags)
    except Exception:  # noqa: BLE001 - metrics are best effort
        log.debug("could not emit metric %s", name, exc_info=True)


def extract_metrics(dataset: str, extract: Mapping[str, Any]) -> None:
    _emit("incr", "rows_extracted", extract.get("rows") or 0, dataset)
    _emit("timing", "extract_seconds", extract.get("seconds") or 0.0, dataset)


def synthesis_metrics(dataset: str, synthesis: Mapping[str, Any]) -> None:
    for phase in ("fit", "sample", "checks"):
        _emit("timing", f"{phase}_seconds", synthesis.get(f"{phase}_seconds") or 0.0, dataset)
    for name, value in (synthesis.get("scores") or {}).items():
        if value is not None:
            _emit("gauge", f"score.{name}", value, dataset)
    _emit("incr", "rows_filtered", sum((synthesis.get("filters") or {}).values()), dataset)


def load_metrics(dataset: str, load: Mapping[str, Any]) -> None:
    _emit("incr", "rows_published", load.get("rows") or 0, dataset)
    _emit("timing", "load_seconds", load.get("seconds") or 0.0, dataset)
