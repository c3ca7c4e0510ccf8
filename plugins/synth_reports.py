"""Airflow plugin: airflow-synth's reports and its "Synthetic datasets" page in the UI.

Mounts :mod:`airflow_synth.ui.report_view` at ``/synth``: the "Synthetic data report"
extra link of the ESL tasks opens ``/synth/report?...`` for its run, and the menu entry
"Synthetic datasets" (Browse) shows ``/synth/datasets`` inside the Airflow UI: every
dataset in the synth bucket with its latest run, its history, reports and manifests. To
use it outside this repository, put this file into your Airflow ``plugins/`` folder.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_synth.ui.links import REPORT_VIEW_PREFIX
from airflow_synth.ui.report_view import app

#: The datasets page, as an external view: the UI shows ``href`` in a frame at
#: ``/plugin/<url_route>`` (same origin: our CSP's ``frame-ancestors 'self'`` allows it).
DATASETS_VIEW = {
    "name": "Synthetic datasets",
    "href": f"{REPORT_VIEW_PREFIX}/datasets",
    "url_route": "synthetic-datasets",
    "destination": "nav",
    "category": "browse",
}


class SynthReportsPlugin(AirflowPlugin):
    name = "airflow_synth_reports"
    fastapi_apps = [{"app": app, "url_prefix": REPORT_VIEW_PREFIX, "name": "airflow-synth reports"}]
    external_views = [DATASETS_VIEW]
