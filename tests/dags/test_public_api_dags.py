"""The public API as a DAG author uses it: TaskFlow tasks and ``@task.synthesize``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest
from dagtest_helpers import load_dag_module, published_key

from airflow_synth.core.publish.layout import DatasetLayout

pytestmark = pytest.mark.dags

BUCKET = "synthetic"


@pytest.fixture(scope="module")
def api_dags(seeded_source, dags_folder: Path):
    return load_dag_module(dags_folder / "api_dags.py")


def _manifest(s3_client, layout: DatasetLayout) -> dict:
    return json.loads(s3_client.get_object(Bucket=BUCKET, Key=layout.manifest_key)["Body"].read())


def _table(s3_client, key: str):
    return pq.read_table(io.BytesIO(s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read()))


def test_taskflow_tasks_render_jinja_bind_parameters_and_publish(
    api_dags, s3_client, source_dsn: str
) -> None:
    dag_run = api_dags.taskflow_dag.test()
    assert dag_run.state == "success"
    layout = DatasetLayout(BUCKET, "taskflow_users", dag_run.run_id)
    manifest = _manifest(s3_client, layout)
    with psycopg.connect(source_dsn) as conn:
        expected = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM users WHERE signup_method <> 'google' "
            "ORDER BY id LIMIT 900) s"
        ).fetchone()[0]
    # both bound parameters shaped the extract: the method and the limit from params
    assert manifest["source"]["rows_extracted"] == expected
    assert manifest["rows"] == 80
    table = _table(s3_client, published_key(manifest, "data.parquet"))
    assert table.column_names == [
        "user_id",
        "gender",
        "age",
        "signup_method",
        "date_account_created",
    ]
    assert "google" not in set(table.column("signup_method").to_pylist())
    assert {f["name"] for f in manifest["files"]} == {
        "data.parquet",
        "data.csv",
        "metadata.json",
        "quality.json",
        "privacy.json",
        "report.html",
    }


def test_synthesize_decorator_publishes_the_functions_dataframe(
    api_dags, s3_client, source_dsn: str
) -> None:
    dag_run = api_dags.deco_dag.test()
    assert dag_run.state == "success"
    layout = DatasetLayout(BUCKET, "decorated_users", dag_run.run_id)
    manifest = _manifest(s3_client, layout)
    table = _table(s3_client, published_key(manifest, "data.parquet"))
    assert table.num_rows == 60 == manifest["rows"]
    assert table.column_names == [
        "id",
        "gender",
        "age",
        "country_destination",
        "date_account_created",
    ]
    assert "python_callable" in manifest["source"]
    with psycopg.connect(source_dsn) as conn:
        real_ids = {r[0] for r in conn.execute("SELECT id FROM users")}
    assert not real_ids & set(table.column("id").to_pylist())


def test_synthesize_decorator_rejects_a_non_dataframe(api_dags, s3_client, capfd) -> None:
    dag_run = api_dags.bad_deco.test()
    output = "".join(capfd.readouterr())
    assert dag_run.state == "failed"
    assert "must return a pandas DataFrame, got list" in output
    listed = s3_client.list_objects_v2(Bucket=BUCKET, Prefix="decorated_wrong/")
    assert listed.get("KeyCount", 0) == 0


def test_synthesize_decorator_checks_settings_before_the_function_reads_rows(
    api_dags, capfd
) -> None:
    dag_run = api_dags.bad_settings_deco.test()
    output = "".join(capfd.readouterr())
    assert dag_run.state == "failed"
    assert "gausian_copula" in output and "gaussian_copula" in output  # named, with a fix
    assert "read rows before the settings were checked" not in output
