"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_synth import __version__


def get_provider_info() -> dict[str, Any]:
    """What ``airflow providers list`` / ``get`` show, and how the UI renders our connection."""
    return {
        "package-name": "airflow-synth",
        "name": "Synthetic data (airflow-synth)",
        "description": (
            "Extract -> synthesize -> load: train local SDV synthesizers on Postgres feature "
            "tables and publish privacy-checked synthetic copies to S3."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Synthetic data (SDV)",
                "external-doc-url": "https://docs.sdv.dev/sdv",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Synthetic data (SDV)",
                "python-modules": [
                    "airflow_synth.operators.extract",
                    "airflow_synth.operators.synthesize",
                    "airflow_synth.operators.sharded",
                    "airflow_synth.operators.load",
                    "airflow_synth.operators.cleanup",
                    "airflow_synth.operators.sweep",
                    "airflow_synth.operators.health",
                ],
            }
        ],
        "hooks": [
            {
                "integration-name": "Synthetic data (SDV)",
                "python-modules": ["airflow_synth.hooks.synth", "airflow_synth.hooks.object_store"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_synth.hooks.synth.SynthHook",
                "hook-name": "Synthetic data (airflow-synth)",
                "connection-type": "synth",
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "login", "password", "port", "extra"],
                    "relabeling": {},
                    "placeholders": {},
                },
                "conn-fields": {
                    "aws_conn_id": {
                        "label": "AWS connection id (object store)",
                        "schema": {"type": ["string", "null"], "default": "aws_default"},
                    },
                    "bucket": {
                        "label": "Bucket for synthetic data and models",
                        "schema": {"type": ["string", "null"], "default": "synthetic"},
                    },
                    "synthesizer": {
                        "label": "Default synthesizer",
                        "description": (
                            "auto (tabular_argn if installed, else gaussian_copula), "
                            "tabular_argn, gaussian_copula, ctgan, tvae or copulagan"
                        ),
                        "schema": {"type": ["string", "null"], "default": "auto"},
                    },
                    "synthesizer_params": {
                        "label": "Default synthesizer parameters (JSON)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "sweep_after_hours": {
                        "label": "Sweep leftovers older than (hours)",
                        "description": (
                            "staged real rows and unpublished run folders whose newest file "
                            "is older than this are removed by the sweeper (each run's start, "
                            "the maintenance DAG); default 24"
                        ),
                        "schema": {"type": ["number", "null"], "minimum": 0, "default": 24},
                    },
                },
            }
        ],
        "extra-links": ["airflow_synth.ui.links.SyntheticReportLink"],
        "task-decorators": [
            {
                "name": "synthesize",
                "class-name": "airflow_synth.decorators.synthesize.synthesize_task",
            }
        ],
    }
