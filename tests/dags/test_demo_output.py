"""``make demo``'s output for people, on the session's real PostgreSQL, S3 server and Airflow.

The runner's core (``run_single``: the DAG under ``dag.test()``, progress from task state
changes, local copies, summary) runs inside ``logs_to_file`` exactly as ``make demo`` runs
it; what reaches the terminal (fd 1 and 2, captured by ``capfd``) is short and readable, the
Airflow log is in the file, the report copy opens from disk, and the printed browse command
and filer URL work. A second run with an impossible quality gate fails clearly (reason,
local copy of the quarantined report, exit code 1).
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from airflow_synth.demo.console import PhaseProgress, logs_to_file
from airflow_synth.demo.runner import DATASET, after_lines, run_single

pytestmark = pytest.mark.dags

PROJECT = Path(__file__).resolve().parents[2]
FAST = {"rows": 400, "synthesizer": "gaussian_copula", "seed": 5}


def source_counts(dsn: str) -> SimpleNamespace:
    with psycopg.connect(dsn) as conn:
        users = conn.execute("SELECT count(*) FROM users").fetchone()[0]
        sessions = conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
    return SimpleNamespace(n_users=users, n_sessions=sessions, loaded=False)


def run_demo_core(stack: Any, dags_folder: Path, conf: dict, seed: Any, log_path: Path) -> int:
    """What ``main()`` does after the servers, seed and Airflow DB steps."""
    with logs_to_file(log_path) as terminal:

        def say(line: str = "") -> None:
            print(line, file=terminal, flush=True)

        progress = PhaseProgress(say)
        code = run_single(stack, dags_folder.parent, conf, seed, progress, say, log_path)
        for line in after_lines(stack, DATASET, running=True):
            say(line)
    return code


def test_demo_prints_progress_and_summary_while_the_log_goes_to_the_file(
    local_stack, seeded_source, dags_folder: Path, source_dsn: str, tmp_path: Path, capfd
) -> None:
    log_path = tmp_path / "demo.log"
    code = run_demo_core(local_stack, dags_folder, FAST, source_counts(source_dsn), log_path)
    out, err = capfd.readouterr()
    logged = log_path.read_text()

    assert code == 0, out + err
    lines = out.splitlines()
    assert len(lines) < 60, out
    assert err == ""
    # the terminal: a line per phase as it starts and ends, then the summary
    for phase in ("extract", "train", "sample[0]", "assess", "load"):
        assert any(re.search(rf"\s{re.escape(phase)}\s+done in \d", line) for line in lines), out
    assert "gates                : " in out and " passed" in out
    assert "rows published       : 400 " in out
    assert "total                : " in out
    # Airflow's log went to the file, not the terminal
    assert "[DAG TEST] starting task_id=esl.extract" in logged
    assert "[DAG TEST]" not in out and "Task instance state updated" not in out
    assert logged.count("\n") > 2 * len(lines)
    # local copies open without the servers
    (report_uri,) = re.findall(r"report \(local copy\)  : (file://\S+)", out)
    report = Path(urllib.request.url2pathname(report_uri.removeprefix("file://")))
    html = report.read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and DATASET in html
    (manifest_copy,) = re.findall(r"manifest \(local copy\): (\S+)", out)
    manifest = json.loads(Path(manifest_copy).read_text())
    assert manifest["rows"] == 400 and manifest["dataset"] == DATASET
    # the printed browse command and filer URL work as printed
    browse = lines[lines.index("[demo] browse the published bucket:") + 1].strip()
    listed = subprocess.run(
        browse, shell=True, cwd=PROJECT, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert f"s3://synthetic/{DATASET}/{manifest['run']}/" in listed
    (url,) = re.findall(r"or open (http://127\.0\.0\.1:\d+/\S+)", out)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as response:
        assert response.status == 200 and manifest["run"] in response.read().decode()


def test_a_failed_gate_prints_its_reason_and_report_and_exits_non_zero(
    local_stack, seeded_source, dags_folder: Path, source_dsn: str, tmp_path: Path, capfd
) -> None:
    log_path = tmp_path / "demo.log"
    conf = {**FAST, "min_quality": 0.999}
    code = run_demo_core(local_stack, dags_folder, conf, source_counts(source_dsn), log_path)
    out, _ = capfd.readouterr()

    assert code == 1
    assert len(out.splitlines()) < 80, out
    assert re.search(r"\S+\s+FAILED after [\d.]+s: QualityGateError", out), out
    assert "the DAG run ended in state 'failed'" in out
    assert "quality_score" in out and "0.999" in out
    (report_uri,) = re.findall(r"report \(local copy\)  : (file://\S+)", out)
    report = Path(urllib.request.url2pathname(report_uri.removeprefix("file://")))
    assert DATASET in report.read_text()
    assert re.search(rf"report\s+: s3://synthetic/{DATASET}/_failed/\S+/report.html", out), out
    assert f"full log             : {log_path}" in out
    assert "[DAG TEST]" not in out
