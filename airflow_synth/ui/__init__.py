"""Airflow UI pieces: the report view served by the API server and the operator extra link."""
