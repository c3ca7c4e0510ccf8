"""The ESL steps as TaskFlow tasks, for DAGs written with ``@dag``/``@task``::

    from airflow_synth.tasks import extract_table, synthesize_table, load_table, cleanup_staging

    staged = extract_table(sql_file="features/x.sql", dataset="x", postgres_conn_id="src")
    synthetic = synthesize_table(staged, dataset="x", aws_conn_id="s3", bucket="synthetic")
    published = load_table(staged, synthetic, dataset="x", aws_conn_id="s3", bucket="synthetic")
    published >> cleanup_staging(dataset="x").as_teardown(setups=staged)

They call the same code as the classic operators (:mod:`airflow_synth.runtime`).
"""

from airflow_synth.tasks.esl import cleanup_staging, extract_table, load_table, synthesize_table

__all__ = ["cleanup_staging", "extract_table", "load_table", "synthesize_table"]
