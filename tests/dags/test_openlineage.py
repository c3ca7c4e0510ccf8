"""OpenLineage events of the ready-made DAGs, emitted by the provider's real listener.

Both DAGs run under ``dag.test()`` in a subprocess with the OpenLineage provider's file
transport: the provider decides at import time whether its listener plugin is on, so the
setting must be there before Airflow is imported, and must not reach the other tests of
the session (their processes keep lineage off). The subprocess shares the session's
Airflow home, PostgreSQL and S3 server. Checked in the emitted COMPLETE events: the
extracts' inputs (the PostgreSQL tables their SQL reads, ``postgres://127.0.0.1:<port>`` /
``<db>.public.<table>``, with the rows extracted when a task read one table), the
publishes' outputs (``s3://synthetic`` / ``<dataset>``: schema = published columns,
rowCount = published rows, the run's manifest) and the target load's tables; no cell
value in any event.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagtest_helpers import run_manifest

from airflow_synth.core.publish.layout import DatasetLayout

pytestmark = pytest.mark.dags

BUCKET = "synthetic"
TARGET_SCHEMA = "airbnb_lineage_test"
HERE = Path(__file__).resolve().parent

#: Runs each DAG with ``dag.test()`` and prints its state and run id (one JSON line).
RUNNER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from dagtest_helpers import load_dag_module
runs = {}
for dag_id, conf in json.loads(sys.argv[3]).items():
    run = load_dag_module(Path(sys.argv[2]) / f"{dag_id}.py").dag.test(run_conf=conf)
    runs[dag_id] = {"state": str(run.state), "run_id": run.run_id}
print("RUNS " + json.dumps(runs))
"""

CONFS = {
    "esl_airbnb_bookings": {"rows": 0, "synthesizer": "gaussian_copula", "seed": 3},
    "esl_airbnb_multitable": {
        "seed": 5,
        "min_dependence": None,
        "load_to_target": True,
        "target_schema": TARGET_SCHEMA,
    },
}


@pytest.fixture(scope="module")
def lineage_run(seeded_source, dags_folder: Path, tmp_path_factory) -> dict[str, Any]:
    """The two DAGs' runs and the OpenLineage events they emitted (file transport)."""
    events_file = tmp_path_factory.mktemp("openlineage") / "events.jsonl"
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "airflow-synth-tests",
        "AIRFLOW__OPENLINEAGE__DISABLED": "False",
        # no emission policy: hook-level lineage stays on, as a user's deployment has it
    }
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(HERE), str(dags_folder), json.dumps(CONFS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RUNS ")]
    assert lines, f"the DAG runs did not finish:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    text = events_file.read_text() if events_file.exists() else ""
    events = [json.loads(line) for line in text.splitlines() if line.strip()]
    return {
        "runs": json.loads(lines[-1][5:]),
        "events": events,
        "raw": text,
        "log": done.stderr[-8000:],
    }


def completed(lineage_run: dict[str, Any], dag_id: str, task_id: str) -> list[dict[str, Any]]:
    """The COMPLETE events of one task of one DAG (mapped tasks: one per map index)."""
    return [
        event
        for event in lineage_run["events"]
        if event["eventType"] == "COMPLETE" and event["job"]["name"] == f"{dag_id}.{task_id}"
    ]


def only(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(events) == 1, [e["job"]["name"] for e in events]
    return events[0]


def pg_namespace(local_stack) -> str:
    return f"postgres://127.0.0.1:{local_stack.pg.port}"


def table_rows(source_dsn: str, table: str) -> int:
    with psycopg.connect(source_dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_both_runs_succeed_and_emit_events(lineage_run) -> None:
    states = {dag_id: run["state"] for dag_id, run in lineage_run["runs"].items()}
    assert set(states.values()) == {"success"}, f"{states}\n{lineage_run['log']}"
    assert lineage_run["events"], "no OpenLineage event was written"


def test_extract_reports_the_tables_its_sql_reads(lineage_run, local_stack) -> None:
    event = only(completed(lineage_run, "esl_airbnb_bookings", "esl.extract"))
    inputs = {(i["namespace"], i["name"]): i for i in event["inputs"]}
    # session_features_by_user.sql reads users, and sessions inside a CTE
    assert set(inputs) == {
        (pg_namespace(local_stack), "userbookings.public.users"),
        (pg_namespace(local_stack), "userbookings.public.sessions"),
    }
    run_facet = event["run"]["facets"]["airflowSynth"]
    assert run_facet["dataset"] == "airbnb_bookings"
    assert run_facet["rowsExtracted"] == 1000  # one row per user of the seeded source
    assert [c[0] for c in run_facet["columns"]][:2] == ["user_id", "gender"]
    # a join: rows extracted are no table's rows read, so no per-table count is claimed
    assert all("inputStatistics" not in i.get("inputFacets", {}) for i in inputs.values())


def test_load_reports_the_published_dataset(lineage_run, s3_client, local_stack) -> None:
    run_id = lineage_run["runs"]["esl_airbnb_bookings"]["run_id"]
    manifest = run_manifest(s3_client, BUCKET, "airbnb_bookings", run_id)
    event = only(completed(lineage_run, "esl_airbnb_bookings", "esl.load"))
    (output,) = event["outputs"]
    assert (output["namespace"], output["name"]) == (f"s3://{BUCKET}", "airbnb_bookings")
    fields = output["facets"]["schema"]["fields"]
    assert [f["name"] for f in fields] == [c["name"] for c in manifest["columns"]]
    assert [f["type"] for f in fields] == [c["arrow_type"] for c in manifest["columns"]]
    statistics = output["outputFacets"]["outputStatistics"]
    assert statistics["rowCount"] == manifest["rows"] > 0
    assert statistics["size"] > 0
    publication = output["facets"]["airflowSynth"]
    layout = DatasetLayout(BUCKET, "airbnb_bookings", run_id)
    assert publication["manifestUri"] == layout.uri(layout.manifest_key)
    # the source tables as the publication's inputs: the graph reaches the synthetic data
    assert {i["name"] for i in event["inputs"]} == {
        "userbookings.public.users",
        "userbookings.public.sessions",
    }


def test_each_set_table_extract_reports_its_table_and_rows(
    lineage_run, local_stack, source_dsn: str
) -> None:
    events = completed(lineage_run, "esl_airbnb_multitable", "esl.extract_table")
    inputs = {i["name"]: i for event in events for i in event["inputs"]}
    assert set(inputs) == {"userbookings.public.users", "userbookings.public.sessions"}
    for name, item in inputs.items():
        assert item["namespace"] == pg_namespace(local_stack)
        rows = table_rows(source_dsn, name.split(".", 1)[1])
        assert item["inputFacets"]["inputStatistics"]["rowCount"] == rows
        assert item["facets"]["schema"]["fields"], "a table read whole: its columns"


def test_set_publish_reports_each_table_and_target_load_its_tables(
    lineage_run, s3_client, local_stack
) -> None:
    run_id = lineage_run["runs"]["esl_airbnb_multitable"]["run_id"]
    manifest = run_manifest(s3_client, BUCKET, "airbnb_multitable", run_id)
    event = only(completed(lineage_run, "esl_airbnb_multitable", "esl.publish"))
    outputs = {o["name"]: o for o in event["outputs"]}
    assert set(outputs) == {f"airbnb_multitable/{t}" for t in manifest["tables"]}
    for table, info in manifest["tables"].items():
        output = outputs[f"airbnb_multitable/{table}"]
        assert output["namespace"] == f"s3://{BUCKET}"
        fields = [f["name"] for f in output["facets"]["schema"]["fields"]]
        assert fields == [c["name"] for c in info["columns"]]
        assert output["outputFacets"]["outputStatistics"]["rowCount"] == info["rows"]
    load = only(completed(lineage_run, "esl_airbnb_multitable", "esl.load_target"))
    loaded = {o["name"]: o for o in load["outputs"]}
    assert set(loaded) == {f"synthetic_staging.{TARGET_SCHEMA}.{t}" for t in manifest["tables"]}


def test_no_cell_value_in_any_event(lineage_run, source_dsn: str) -> None:
    """Names, types and counts only: no source value (a user's country, language or id
    as text) appears in what went to the lineage backend."""
    with psycopg.connect(source_dsn) as conn:
        values = {
            str(v)
            for row in conn.execute(
                "SELECT id::text, language, country_destination FROM users LIMIT 200"
            )
            for v in row
            if v is not None and len(str(v)) >= 6
        }
    leaked = sorted(v for v in values if f'"{v}"' in lineage_run["raw"])
    assert not leaked, leaked


def test_no_event_names_staging_or_a_task_folder(lineage_run) -> None:
    """Only the source tables, the published datasets and the target tables are datasets:
    the private staging bucket (real rows in flight) and the tasks' temporary files never
    become lineage datasets, in any task's event, with hook-level lineage on (our uploads
    go through the boto3 client, not S3Hook.load_file, which would report each object)."""
    names = {
        (item["namespace"], item["name"])
        for event in lineage_run["events"]
        for item in event.get("inputs", []) + event.get("outputs", [])
    }
    stray = sorted(
        (ns, name)
        for ns, name in names
        if not ns.startswith("postgres://") and ns != f"s3://{BUCKET}"
    )
    assert not stray, stray[:5]
