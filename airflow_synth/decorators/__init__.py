"""TaskFlow decorators registered with Airflow (``@task.synthesize``)."""
