"""Every Python example of the README's "Use it in your own DAG" runs and passes the gates.

The examples are read from README.md itself (not copied here), so an edit that breaks one
fails this test. They name the demo's connections and SQL, so they run as they are against
the session's real PostgreSQL (seeded demo source) and S3 server; only the docker path of
the SQL folder is pointed at this checkout. A fragment without a DAG (TaskFlow calls, a
decorated function) is placed in a DAG the way a user would, and a decorated function
that is only defined is called once.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.dags

PROJECT = Path(__file__).resolve().parents[2]
SECTION = "## Use it in your own DAG"


def readme_examples() -> list[str]:
    text = (PROJECT / "README.md").read_text()
    section = text[text.index(SECTION) : text.index("\n## ", text.index(SECTION) + 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def _runnable(code: str, index: int) -> str:
    code = code.replace('"/opt/airflow/sql"', repr(str(PROJECT / "sql")))
    if "DAG(" in code or "esl_dag(" in code:
        return code
    tree = ast.parse(code)
    calls = [
        f"{node.name}()"
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.decorator_list
    ]
    body = textwrap.indent("\n".join([code, *calls]), "    ")
    return (
        "from datetime import datetime\n"
        "from airflow.sdk import DAG\n"
        f"with DAG('readme_example_{index}', schedule=None, start_date=datetime(2026, 1, 1), "
        f"template_searchpath=[{str(PROJECT / 'sql')!r}]) as dag:\n{body}\n"
    )


def _import_dag_file(path: Path) -> list[Any]:
    """Import a DAG file as the DAG processor does: the DAGs it defines, including those
    of a ``with DAG(...):`` block that binds no name."""
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    name = f"_readme_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    DagContext.current_autoregister_module_name = name
    try:
        spec.loader.exec_module(module)
        found = [dag for dag, mod in DagContext.autoregistered_dags if mod is module]
    finally:
        DagContext.current_autoregister_module_name = None
        DagContext.autoregistered_dags.clear()
        sys.modules.pop(name, None)
    return sorted(found, key=lambda dag: dag.dag_id)


def test_the_readme_has_the_examples_this_test_runs() -> None:
    examples = readme_examples()
    assert len(examples) >= 4
    assert any("esl_task_group(" in e for e in examples)
    assert any("@task.synthesize" in e for e in examples)


@pytest.mark.parametrize("index", range(len(readme_examples())))
def test_readme_example_runs_with_the_default_gates(
    index: int, seeded_source, s3_client, dags_folder: Path
) -> None:
    # as a user does: the snippet saved as a file in the DAGs folder (dag.test() finds the
    # DAG there), then run with dag.test()
    path = dags_folder / f"readme_example_{index}.py"
    path.write_text(_runnable(readme_examples()[index], index))
    try:
        dags = _import_dag_file(path)
        _run_and_check(dags, index, s3_client)
    finally:
        path.unlink(missing_ok=True)


def _run_and_check(dags: list[Any], index: int, s3_client) -> None:
    assert dags, f"README example {index + 1} defines no DAG"
    for dag in dags:
        dag_run = dag.test()
        assert dag_run.state == "success", f"README example {index + 1}: {dag.dag_id} failed"
        published = _published(s3_client, dag_run.run_id)
        assert published, f"{dag.dag_id} published no dataset"
        for manifest in published:
            assert manifest["rows"] > 0
            gates = manifest["synthesis"]["gates"]
            assert gates and all(g["passed"] for g in gates), gates


def _published(s3_client, run_id: str) -> list[dict[str, Any]]:
    from airflow_synth.core.names import safe_key_part

    wanted = f"/{safe_key_part(run_id)}/manifest.json"
    found = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket="synthetic"):
        for item in page.get("Contents", []):
            if item["Key"].endswith(wanted):
                body = s3_client.get_object(Bucket="synthetic", Key=item["Key"])["Body"].read()
                found.append(json.loads(body))
    return found
