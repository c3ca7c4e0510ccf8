"""One ESL run's steps in this process, as an Airflow worker runs its tasks (the fault
suite starts it as a subprocess: to SIGKILL it mid-fit, or to run two runs at once).

    python tests/faults/esl_run.py '<json spec>'

The spec names the run (``dag_id``, ``run_id``, ``logical_date``), the source
(``postgres_conn_id``, ``sql_dir``, ``sql_file``, ``parameters``), the places
(``aws_conn_id``, ``bucket``, ``staging``), the synthesis settings and the ``steps`` to run
in order: ``extract``, ``train``, ``synthesize``, ``publish``, ``cleanup``. The connections
come from the environment (``AIRFLOW_CONN_*``). Logs go to stderr; the last stdout line is
a JSON summary of what each step returned.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from types import SimpleNamespace
from typing import Any


def run(spec: dict[str, Any]) -> dict[str, Any]:
    from airflow_synth import runtime
    from airflow_synth.hooks.synth import SynthHook

    # Airflow configures logging on import: our lines go to stderr, where the test reads
    # them (e.g. "Training with N threads", the moment to kill the fit)
    ours = logging.getLogger("airflow_synth")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False

    dag = SimpleNamespace(
        dag_id=spec["dag_id"],
        template_searchpath=[spec["sql_dir"]],
        fileloc=None,
        user_defined_macros=None,
    )
    context: dict[str, Any] = {"dag": dag, "run_id": spec["run_id"]}
    if spec.get("logical_date"):
        context["logical_date"] = datetime.fromisoformat(spec["logical_date"])
    hook = SynthHook(aws_conn_id=spec["aws_conn_id"], bucket=spec["bucket"])
    dataset = spec["dataset"]
    settings = dict(spec.get("synthesis") or {})
    done: dict[str, Any] = {}
    extract: dict[str, Any] = {}
    synthesis: dict[str, Any] = {}
    for step in spec["steps"]:
        print(f"STEP {step}", file=sys.stderr, flush=True)
        if step == "extract":
            extract = runtime.execute_extract(
                context,
                sql_file=spec["sql_file"],
                dataset=dataset,
                postgres_conn_id=spec["postgres_conn_id"],
                render=lambda text: text,
                parameters=spec.get("parameters"),
                contract_file=None,
                staging_dir=spec["staging"],
                aws_conn_id=spec["aws_conn_id"],
                bucket=spec["bucket"],
            )
            done[step] = {"rows": extract["rows"], "staging_uri": extract["staging_uri"]}
        elif step == "train":
            shards = runtime.execute_train(
                context, extract=extract, dataset=dataset, hook=hook, **settings
            )
            done[step] = {"shards": len(shards)}
        elif step == "synthesize":
            synthesis = runtime.execute_synthesize(
                context, extract=extract, dataset=dataset, hook=hook, **settings
            )
            done[step] = {"rows": synthesis.get("rows")}
        elif step == "publish":
            result = runtime.execute_publish(
                context, extract=extract, synthesis=synthesis, dataset=dataset, hook=hook
            )
            done[step] = {"run_manifest_uri": result["run_manifest_uri"]}
        elif step == "cleanup":
            done[step] = runtime.execute_cleanup(
                context, dataset=dataset, staging_dir=spec["staging"], hook=hook
            )
        else:
            raise ValueError(f"unknown step {step!r}")
        print(f"DONE {step}", file=sys.stderr, flush=True)
    return done


if __name__ == "__main__":
    summary = run(json.loads(sys.argv[1]))
    print(json.dumps(summary, default=str), flush=True)
