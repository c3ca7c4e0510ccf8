"""Fail (and so alert) when a published synthetic dataset is stale or got worse."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow_synth.operators.base import StoreOperatorBase
from airflow_synth.runtime import checked_store


def _hours(value: Any) -> timedelta | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, timedelta) else timedelta(hours=float(value))


class ESLHealthCheckOperator(StoreOperatorBase):
    """Check ``<dataset>/latest.json``: age at most ``max_age``, quality drop at most
    ``max_quality_drop`` versus the run published before. Schedule it (e.g. every morning)
    with your usual alerting (email, ``on_failure_callback``, notifiers).

    :param max_age: a ``timedelta`` or hours (templated; None disables the age check).
    :param max_quality_drop: allowed fall of the SDV quality score (None disables it).
    """

    template_fields: Sequence[str] = ("dataset", "max_age", "max_quality_drop")
    ui_color = "#fef7e0"

    def __init__(
        self,
        *,
        max_age: timedelta | float | str | None = timedelta(hours=26),
        max_quality_drop: float | str | None = 0.05,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_age = max_age
        self.max_quality_drop = max_quality_drop

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_synth.core.publish.health import check_dataset_health, enforce_health

        store = checked_store(self.synth_hook())
        drop = self.max_quality_drop
        report = check_dataset_health(
            store,
            self.dataset,
            max_age=_hours(self.max_age),
            max_quality_drop=None if drop in (None, "") else float(drop),
        )
        self.log.info(
            "Dataset %s: run %s, %.1f h old, quality %s (previous %s)",
            self.dataset,
            report.run,
            report.age_hours or 0,
            report.quality,
            report.previous_quality,
        )
        enforce_health(report)
        return report.to_dict()
