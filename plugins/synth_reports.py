"""Airflow plugin: serves airflow-synth's fidelity/privacy reports in the API server.

Mounts :mod:`airflow_synth.ui.report_view` at ``/synth``; the "Synthetic data report"
extra link of the ESL load task opens ``/synth/report?...`` for its run. To use it outside
this repository, put this file into your Airflow ``plugins/`` folder.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_synth.ui.links import REPORT_VIEW_PREFIX
from airflow_synth.ui.report_view import app


class SynthReportsPlugin(AirflowPlugin):
    name = "airflow_synth_reports"
    fastapi_apps = [{"app": app, "url_prefix": REPORT_VIEW_PREFIX, "name": "airflow-synth reports"}]
