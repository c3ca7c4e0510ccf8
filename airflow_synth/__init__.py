"""airflow-synth: extract -> synthesize -> load (ESL) pipelines for Apache Airflow.

A feature table is extracted from Postgres with a SQL file, a *local* SDV synthesizer is
trained on it (real rows never leave the worker), and the synthetic copy is published to
S3 with its metadata and manifest.
"""

__version__ = "0.1.0"
