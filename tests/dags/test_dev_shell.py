"""The README's own-DAG snippets run from a user's folder through the dev environment.

What a user does after ``make dev-env`` (or inside ``make dev-shell``): save a README
snippet as a DAG file in a folder of their own, outside this repository, load
``.local/dev.env`` into a shell (``set -a; . FILE; set +a``) and run ``python my_dag.py``
or ``airflow dags test <dag_id>`` there. Here the env file is written by the real
``python -m airflow_synth.local dev-env`` command against the session's PostgreSQL and S3
server, and each run is a subprocess whose environment holds *only* that file on top of a
bare ``PATH``/``HOME`` (not the test session's Airflow variables), so a file that lacks
the connections, ``AIRFLOW_HOME``, the DAGs folder, the SQL folder or the venv's ``PATH``
fails here. A run counts when its dataset's manifest appears in the bucket.

The snippets are read from README.md with ``test_readme_examples``'s helpers; only their
sizes are made small (500 rows, GaussianCopula) to keep this fast. The ones with their own
DAG run as the README prints them: their ``"/opt/airflow/sql"`` search path does not exist
here, so the SQL file is found through the env file's ``SYNTH_SQL_DIR``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_readme_examples import _runnable, readme_examples

from airflow_synth.local import LocalStack
from airflow_synth.local.devshell import ENV_FILE_NAME

pytestmark = pytest.mark.dags

BUCKET = "synthetic"
ROWS = 500
MAIN = '\n\nif __name__ == "__main__":\n    dag.test()\n'
#: Load the env file as the README says, then run the user's command.
SOURCE_AND_RUN = 'set -a && . "$1" && set +a && shift && exec "$@"'


def _small(code: str) -> str:
    """The snippet with 500 GaussianCopula rows instead of its production sizes."""
    code = re.sub(r"^\s*synthesizer(_params)?=.*\n", "", code, flags=re.M)
    return re.sub(r"num_rows=[\d_]+", f'num_rows={ROWS}, synthesizer="gaussian_copula"', code)


def _as_user_file(code: str) -> str:
    """Bind an unnamed ``with DAG(...):`` to ``dag`` and end the file with ``dag.test()``,
    as a user writes a file to run with ``python my_dag.py``; a snippet that builds its DAGs
    otherwise (``esl_dag(...)``) is left as it is, for ``airflow dags test``."""
    tree = ast.parse(code)
    lines = code.splitlines(keepends=True)
    for node in tree.body:
        if not isinstance(node, ast.With):
            continue
        item = node.items[0]
        call = item.context_expr
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "DAG":
            if item.optional_vars is None:
                row = lines[call.end_lineno - 1]
                lines[call.end_lineno - 1] = (
                    row[: call.end_col_offset] + " as dag" + row[call.end_col_offset :]
                )
            return "".join(lines) + MAIN
    return code


def _user_files() -> dict[str, str]:
    """Each README snippet as the DAG file a user would save: name -> text."""
    files = {}
    for index, code in enumerate(readme_examples()):
        small = _small(code)
        if "DAG(" not in code and "esl_dag(" not in code:
            # a fragment: placed in a DAG the way test_readme_examples does
            small = _runnable(small, index)
        files[f"readme_dag_{index}.py"] = _as_user_file(small)
    return files


def _manifests(s3_client: Any, dataset: str) -> dict[str, dict[str, Any]]:
    found = {}
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{dataset}/")
    for page in pages:
        for item in page.get("Contents", []):
            if item["Key"].endswith("/manifest.json"):
                body = s3_client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
                found[item["Key"]] = json.loads(body)
    return found


@pytest.fixture(scope="module")
def dev_env_file(local_stack: LocalStack, seeded_source: Any) -> Path:
    """``.local/dev.env`` as ``make dev-env`` writes it, for the session's stack."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow_synth.local", "dev-env", "--no-seed"]
        + ["--state-dir", str(local_stack.state_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    path = local_stack.state_dir / ENV_FILE_NAME
    assert str(path) in result.stdout
    return path


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of the user's own, outside the repository, holding every snippet."""
    folder = tmp_path_factory.mktemp("my_dags")
    assert not folder.resolve().is_relative_to(Path(__file__).resolve().parents[2])
    for name, text in _user_files().items():
        (folder / name).write_text(text)
    return folder


def _run_as_user(env_file: Path, folder: Path, *command: str) -> subprocess.CompletedProcess:
    """``command`` in ``folder`` with the env file on top of a bare environment; the user's
    home must stay untouched (without ``AIRFLOW_HOME`` Airflow would make ``~/airflow``)."""
    home = folder.parent / f"{folder.name}_home"
    home.mkdir(exist_ok=True)
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    result = subprocess.run(
        ["bash", "-c", SOURCE_AND_RUN, "bash", str(env_file), *command],
        cwd=folder,
        env=bare,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert not (home / "airflow").exists(), "Airflow used ~/airflow, not the dev home"
    return result


def _check_published(s3_client: Any, dataset: str, before: dict, result) -> None:
    tail = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, tail
    new = {key: m for key, m in _manifests(s3_client, dataset).items() if key not in before}
    assert new, f"no new manifest under s3://{BUCKET}/{dataset}/:\n{tail}"
    for manifest in new.values():
        assert manifest["rows"] == ROWS
        gates = manifest["synthesis"]["gates"]
        assert gates and all(g["passed"] for g in gates), gates


def test_the_user_files_are_the_readme_snippets() -> None:
    files = _user_files()
    assert len(files) == len(readme_examples()) >= 4
    run_with_python = [name for name, text in files.items() if text.endswith(MAIN)]
    assert len(run_with_python) == len(files) - 1, "all but the esl_dag() snippet"
    assert any("esl_dag(" in text for text in files.values())
    for text in files.values():
        if "DAG(" in text or "esl_dag(" in text:
            ast.parse(text)


def test_python_my_dag_py_runs_a_readme_dag_from_the_users_folder(
    dev_env_file: Path, user_folder: Path, s3_client
) -> None:
    """The TaskGroup snippet (one run is enough: the environment is what is tested, and
    ``test_readme_examples`` runs every snippet in-process; each run here costs ~40 s)."""
    before = _manifests(s3_client, "customers")
    result = _run_as_user(dev_env_file, user_folder, "python", "readme_dag_0.py")
    _check_published(s3_client, "customers", before, result)


def test_airflow_dags_test_finds_the_dag_in_the_current_folder(
    dev_env_file: Path, user_folder: Path, s3_client
) -> None:
    before = _manifests(s3_client, "customers")
    conf = json.dumps({"rows": ROWS, "synthesizer": "gaussian_copula"})
    result = _run_as_user(
        dev_env_file, user_folder, "airflow", "dags", "test", "esl_customers", "-c", conf
    )
    _check_published(s3_client, "customers", before, result)


def test_dev_shell_offers_the_environment_and_keeps_a_stack_it_did_not_start(
    local_stack: LocalStack, dev_env_file: Path, user_folder: Path
) -> None:
    """``make dev-shell`` with commands on stdin: the shell has the env file's variables and
    prints what it offers; leaving it leaves the already running servers alone."""
    script = 'echo "HOME=$AIRFLOW_HOME DAGS=$AIRFLOW__CORE__DAGS_FOLDER PY=$(command -v python)"\n'
    result = subprocess.run(
        [sys.executable, "-m", "airflow_synth.local", "dev-shell", "--no-seed"]
        + ["--state-dir", str(local_stack.state_dir)],
        input=script + "exit 3\n",
        cwd=user_folder,
        env={**os.environ, "SHELL": "/bin/bash"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 3, result.stderr[-3000:]
    venv_python = Path(sys.prefix) / "bin" / "python"
    home = local_stack.state_dir / "dev" / "airflow"
    assert f"HOME={home} DAGS=. PY={venv_python}" in result.stdout
    for offered in ("python my_dag.py", "airflow dags test <dag_id>", str(dev_env_file)):
        assert offered in result.stdout
    assert "minioadmin" not in result.stdout + result.stderr
    assert local_stack.is_running()
