"""The pure core of airflow-synth: no Airflow imports here.

Everything that decides *what* happens (reading SQL, streaming rows to Parquet, checking
contracts, building SDV metadata, training and sampling, laying out and publishing
outputs) lives in this package as plain functions, so it can be tested without a
scheduler. The Airflow layer (hooks, operators, decorators, task groups) only turns
connections, params and context into calls of these functions.
"""
