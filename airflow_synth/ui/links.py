"""The "Synthetic data report" extra link on ESL tasks.

The link points at the report view of :mod:`airflow_synth.ui.report_view` for this task
instance; the view finds the report through the task's XCom, so the link itself carries
no bucket names or credentials. Load/publish tasks link the published report; synthesize
tasks link the report a failed gate quarantined under ``<dataset>/_failed/<run>/``, so the
error's "see the report" leads somewhere.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from airflow.sdk import BaseOperatorLink

REPORT_VIEW_PREFIX = "/synth"


def report_view_url(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """URL of the report view for one task instance (relative to the Airflow base URL)."""
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="") or ""
    path = base.rstrip("/") + REPORT_VIEW_PREFIX + "/report"
    query = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index}
    return f"{path}?{urlencode(query)}"


class SyntheticReportLink(BaseOperatorLink):
    """Opens the run's fidelity/privacy report (``report.html``) in the browser.

    The task sets ``_report_published`` when it recorded a report (published, or quarantined
    after a failed gate); Airflow evaluates the link on the worker when the task ends, also
    when it failed.
    """

    name = "Synthetic data report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        if not getattr(operator, "_report_published", False):
            return ""  # no report recorded (e.g. failed before any report): no link
        return report_view_url(
            ti_key.dag_id, ti_key.run_id, ti_key.task_id, getattr(ti_key, "map_index", -1)
        )
