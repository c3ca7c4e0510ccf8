"""A real CeleryExecutor deployment on this machine, driven through the REST API.

Redis (the Debian package) is the broker; the session's PostgreSQL holds Airflow's metadata
DB and Celery's results; an API server, a scheduler and a DAG processor run as in production;
and two Celery workers each get their own ``AIRFLOW_HOME``, ``HOME`` and temporary folder, so
the two share nothing but the servers. A cluster policy routes extract and publish to one
worker and training, assessing and the teardown to the other, and the sampling shards to a
queue both serve (``celery_deployment/airflow_local_settings.py``): every step must find what
the step before it staged, on another machine as far as it can tell, and the shards of a
table and the per-table extracts and fits of a set are spread over both workers.

Select with ``pytest -k celery_executor``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import redis
from dagtest_helpers import api_session, staged_objects, trigger_and_wait

from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.demo.standalone import (
    metadata_db_environment,
    migrate_metadata_db,
    start_standalone,
    stop_standalone,
    wait_healthy,
)
from airflow_synth.local import LocalStack
from airflow_synth.local.ports import find_free_port

pytestmark = pytest.mark.dags

HERE = Path(__file__).resolve().parent
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
WORKERS = {"worker-a": "worker_a", "worker-b": "worker_b"}  # name -> the queue it serves
SHARD_QUEUE = "shards"  # served by both workers
SERVERS = {
    "api-server": ("api-server", "--host", "127.0.0.1", "--port", "{port}"),
    "scheduler": ("scheduler",),
    "dag-processor": ("dag-processor",),
}


@contextlib.contextmanager
def redis_broker(folder: Path) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port (no persistence)."""
    port = find_free_port()
    folder.mkdir(parents=True, exist_ok=True)
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(folder)]
    with open(folder / "redis.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start: see {folder / 'redis.log'}")
            time.sleep(0.2)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()


def worker_environment(env: dict[str, str], name: str, root: Path) -> dict[str, str]:
    """A worker's own home, Airflow home (a copy of the deployment's config) and temp folder."""
    home, airflow_home, tmp = root / "home", root / "airflow", root / "tmp"
    for folder in (home, airflow_home, tmp):
        folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(env["AIRFLOW_HOME"]) / "airflow.cfg", airflow_home / "airflow.cfg")
    return {
        **env,
        "HOME": str(home),
        "AIRFLOW_HOME": str(airflow_home),
        "TMPDIR": str(tmp),
        "SYNTH_WORKER_NAME": name,
    }


def worker_command(name: str, queue: str) -> tuple[str, ...]:
    return (
        "celery",
        "worker",
        "--queues",
        f"{queue},{SHARD_QUEUE}",
        "--concurrency",
        "1",
        "--celery-hostname",
        f"{name}@localhost",
        "--skip-serve-logs",
        "--without-gossip",
        "--without-mingle",
    )


@pytest.fixture(scope="module")
def celery_airflow(
    tmp_path_factory: pytest.TempPathFactory, local_stack: LocalStack, seeded_source
) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("celery-deployment")
    local_stack.pg.create_database("airflow_celery")
    dsn = local_stack.pg.dsn("airflow_celery")
    with redis_broker(root / "redis") as broker:
        env = {
            **os.environ,
            **metadata_db_environment(dsn),
            "AIRFLOW_HOME": str(root / "airflow"),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+"
            + dsn.replace("postgresql://", "postgresql+psycopg://"),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_name.worker_name",
            "PYTHONPATH": os.pathsep.join(
                [str(HERE / "celery_deployment"), os.environ.get("PYTHONPATH", "")]
            ),
        }
        migrate_metadata_db(env)
        port = find_free_port()
        servers = start_standalone(env, port, root / "logs", components=SERVERS)
        workers = []
        try:
            for name, queue in WORKERS.items():
                own = worker_environment(env, name, root / name)
                command = {name: worker_command(name, queue)}
                workers.append(start_standalone(own, port, root / name, components=command))
            wait_healthy(port, timeout=300, proc=servers)
            base = f"http://127.0.0.1:{port}"
            yield {"base": base, "session": api_session(base), "root": root}
        finally:
            for processes in (*workers, servers):
                stop_standalone(processes)


def run_and_check(deployment: dict[str, Any], dag_id: str, conf: dict[str, Any]) -> str:
    """Trigger ``dag_id`` through the REST API; its run id once it succeeded."""
    run_id, state = trigger_and_wait(deployment["session"], deployment["base"], dag_id, conf)
    states = task_states(deployment, dag_id, run_id)
    assert state == "success", f"{dag_id} run {run_id} ended {state}: {states}"
    return run_id


def task_states(deployment: dict[str, Any], dag_id: str, run_id: str) -> dict[str, Any]:
    base, session = deployment["base"], deployment["session"]
    url = f"{base}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
    return {
        ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else ""): (
            ti["state"],
            ti.get("hostname"),
        )
        for ti in session.get(url, timeout=30).json()["task_instances"]
    }


def xcom(deployment: dict[str, Any], dag_id: str, run_id: str, task_id: str) -> Any:
    base, session = deployment["base"], deployment["session"]
    url = (
        f"{base}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        "/xcomEntries/return_value"
    )
    return session.get(url, params={"deserialize": True}, timeout=30).json()["value"]


def handed_on_through_staging(
    deployment: dict[str, Any], dag_id: str, run_id: str, task_ids: tuple[str, ...]
) -> None:
    """The tasks' XComs name staged objects in the private bucket, never a path on the
    worker that wrote them (on one machine another worker could still read such a path)."""
    for task_id in task_ids:
        text = json.dumps(xcom(deployment, dag_id, run_id, task_id))
        assert f"s3://synthetic-staging/runs/{dag_id}/" in text, f"{task_id}: {text[:300]}"
        assert "file://" not in text and str(deployment["root"]) not in text, task_id


def leftovers(deployment: dict[str, Any]) -> list[str]:
    """Files left in the workers' private temp folders (a task's workspace must be gone)."""
    return [
        str(path)
        for name in WORKERS
        for path in (deployment["root"] / name / "tmp").rglob("*")
        if path.is_file() and "airflow-synth" in str(path)
    ]


def test_celery_executor_runs_a_table_across_two_workers(celery_airflow, s3_client) -> None:
    run_id = run_and_check(
        celery_airflow,
        "esl_airbnb_bookings",
        # 40 rows are too few to measure dependence: waived, as a user must say so
        {
            "rows": 40,
            "seed": 2,
            "shards": 2,
            "synthesizer": "gaussian_copula",
            "min_dependence": None,
        },
    )
    states = task_states(celery_airflow, "esl_airbnb_bookings", run_id)
    ran_on = {task: host for task, (state, host) in states.items() if state == "success"}
    assert ran_on["esl.extract"] == "worker-a" and ran_on["esl.train"] == "worker-b", states
    assert ran_on["esl.assess"] == "worker-b" and ran_on["esl.load"] == "worker-a", states
    # trained once, sampled in two mapped shard tasks that ran on different workers
    assert {ran_on["esl.sample[0]"], ran_on["esl.sample[1]"]} == set(WORKERS), states
    handed_on_through_staging(
        celery_airflow, "esl_airbnb_bookings", run_id, ("esl.extract", "esl.train", "esl.assess")
    )

    layout = DatasetLayout("synthetic", "airbnb_bookings", run_id)
    manifest = json.loads(
        s3_client.get_object(Bucket="synthetic", Key=layout.manifest_key)["Body"].read()
    )
    parts = manifest["tables"]["airbnb_bookings"]["parts"]
    assert [part["rows"] for part in parts] == [20, 20]
    rows = 0
    for part in parts:
        key = part["uri"].removeprefix("s3://synthetic/")
        body = s3_client.get_object(Bucket="synthetic", Key=key)["Body"].read()
        rows += pq.read_table(io.BytesIO(body)).num_rows
    assert rows == manifest["rows"] == 40
    assert staged_objects(s3_client, "esl_airbnb_bookings") == []
    assert leftovers(celery_airflow) == []


def test_celery_executor_runs_a_table_set_across_two_workers(celery_airflow, s3_client) -> None:
    run_id = run_and_check(
        celery_airflow,
        "esl_airbnb_multitable",
        {"seed": 3, "max_training_rows": 2_000, "load_to_target": False},
    )
    states = task_states(celery_airflow, "esl_airbnb_multitable", run_id)
    ran_on = {task: host for task, (state, host) in states.items() if state == "success"}
    assert ran_on["esl.extract"] == "worker-a" and ran_on["esl.synthesize"] == "worker-b", states
    # each table extracted and fitted in mapped tasks of its own, spread over both workers
    assert {ran_on["esl.extract_table[0]"], ran_on["esl.extract_table[1]"]} == set(WORKERS)
    assert ran_on["esl.collect"] == ran_on["esl.prepare"] == "worker-b", states
    assert {ran_on["esl.fit[0]"], ran_on["esl.fit[1]"]} == set(WORKERS), states
    handed_on_through_staging(
        celery_airflow,
        "esl_airbnb_multitable",
        run_id,
        ("esl.collect", "esl.prepare", "esl.synthesize"),
    )

    layout = DatasetLayout("synthetic", "airbnb_multitable", run_id)
    manifest = s3_client.get_object(Bucket="synthetic", Key=layout.manifest_key)["Body"].read()
    assert b'"multi_table"' in manifest
    assert staged_objects(s3_client, "esl_airbnb_multitable") == []
    assert leftovers(celery_airflow) == []
