"""What ``make demo`` shows a person: closing summaries, progress per phase from task
state changes, the log file that takes everything else, and the browse/stop lines."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_synth.demo.browse import main as browse_main
from airflow_synth.demo.browse import split_uri
from airflow_synth.demo.console import PhaseProgress, TaskStateListener, logs_to_file, phase_name
from airflow_synth.demo.runner import (
    _parser,
    _venv_python,
    after_lines,
    gate_verdict,
    main,
    multitable_summary,
    summary,
)

pytestmark = pytest.mark.unit


def test_multitable_flag_and_parent_bound_parse() -> None:
    args = _parser().parse_args(["--multitable", "--max-parents", "250"])
    assert args.multitable is True and args.max_parents == 250
    assert _parser().parse_args([]).multitable is False


def test_multitable_summary_reports_subset_integrity_gates_and_target() -> None:
    manifest = {
        "load_order": ["users", "sessions"],
        "tables": {
            "users": {
                "rows": 1000,
                "uri": "s3://synthetic/airbnb_multitable/r1/tables/users.parquet",
            },
            "sessions": {"rows": 97766, "uri": "s3://x/y"},
        },
        "timings_seconds": {"extract": 4.5, "fit": 15.0},
        "run_manifest_uri": "s3://synthetic/airbnb_multitable/r1/manifest.json",
        "synthesis": {
            "integrity": {"score": 1.0, "passed": True},
            "scores": {"quality_score": 0.809, "cardinality": 0.886, "column_shapes": None},
            "subset": {
                "tables": {
                    "users": {"training_rows": 1000, "real_rows": 10000},
                    "sessions": {"training_rows": 97766, "real_rows": 977754},
                }
            },
            "gates": [{"metric": "a", "passed": True}, {"metric": "b", "passed": False}],
        },
    }
    seed = SimpleNamespace(n_users=10000, n_sessions=977754)
    text = multitable_summary(
        manifest, seed, {"dag": 80.0}, {"AIRFLOW_CONN_SYNTH_TARGET_DB": "pg://t"}
    )
    assert "users 1,000 of 10,000; sessions 97,766 of 977,754" in text
    assert "users 1,000 rows, sessions 97,766 rows" in text
    assert "quality_score 0.809, cardinality 0.886" in text and "column_shapes" not in text
    assert "1 of 2 passed" in text
    assert "s3://synthetic/airbnb_multitable/r1/manifest.json" in text
    assert "schema airbnb_synthetic of pg://t" in text


def test_summary_names_what_the_manifest_lists_never_a_guessed_key() -> None:
    attempt = "s3://synthetic/airbnb_bookings/r1/attempt-20260101T000000000000Z-0a1b2c3d"
    manifest = {
        "rows": 10,
        "columns": [{"name": "a"}],
        "source": {"rows_extracted": 10},
        "load_order": ["airbnb_bookings"],
        "tables": {"airbnb_bookings": {"uri": f"{attempt}/data/", "rows": 10}},
        "files": [{"name": "data/part-00000.parquet", "uri": f"{attempt}/data/part-00000.parquet"}],
        "manifest_uri": f"{attempt}/manifest.json",
        "run_manifest_uri": "s3://synthetic/airbnb_bookings/r1/manifest.json",
        "reports": {"report.html": f"{attempt}/report.html"},
        "synthesis": {"model_uri": "s3://synthetic/_models/airbnb_bookings/r1/a/model.pkl"},
    }
    seed = SimpleNamespace(n_users=1, n_sessions=2, loaded=False)
    text = summary(manifest, seed, {})
    assert f"dataset              : {attempt}/data/" in text
    assert "manifest             : s3://synthetic/airbnb_bookings/r1/manifest.json" in text
    assert "model                : s3://synthetic/_models/airbnb_bookings/r1/a/model.pkl" in text
    assert f"report               : {attempt}/report.html" in text


# -------------------------------------------------------------------------------------------
# Output for people: progress per phase, summary, log file (issue 14)
# -------------------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_prints_a_line_per_phase_start_and_end_with_elapsed_and_duration() -> None:
    lines: list[str] = []
    clock = FakeClock()
    progress = PhaseProgress(lines.append, clock=clock)
    progress.begin("extract")
    clock.now += 2.5
    progress.end("extract")
    clock.now += 1.0
    progress.begin("train")
    clock.now += 10.0
    progress.end("train", ok=False, error=ValueError("no rows\nsecond line stays in the log"))

    assert lines == [
        "[demo]    0.0s  extract          ...",
        "[demo]    2.5s  extract          done in 2.5s",
        "[demo]    3.5s  train            ...",
        "[demo]   13.5s  train            FAILED after 10.0s: ValueError: no rows",
    ]
    assert progress.durations == {"extract": 2.5, "train": 10.0}
    assert [(f.phase, str(f.error).splitlines()[0]) for f in progress.failures] == [
        ("train", "no rows")
    ]


def test_a_prologue_ends_when_the_next_phase_begins() -> None:
    lines: list[str] = []
    clock = FakeClock()
    progress = PhaseProgress(lines.append, clock=clock)
    progress.begin("dag start", until_next=True)
    clock.now += 4.0
    progress.begin("extract")
    clock.now += 1.0
    progress.end("extract")
    progress.begin("load")  # the prologue ended once, not again

    assert progress.durations == {"dag start": 4.0, "extract": 1.0}
    assert sum("dag start" in line and "done" in line for line in lines) == 1


def test_timed_reports_a_failed_step_and_lets_the_error_through() -> None:
    lines: list[str] = []
    progress = PhaseProgress(lines.append, clock=FakeClock())
    with pytest.raises(OSError, match="port"), progress.timed("servers"):
        raise OSError("port taken")
    assert lines[-1].endswith("servers          FAILED after 0.0s: OSError: port taken")
    assert progress.failures[0].phase == "servers"


def test_the_listener_turns_task_state_changes_into_phases() -> None:
    lines: list[str] = []
    clock = FakeClock()
    listener = TaskStateListener(PhaseProgress(lines.append, clock=clock))
    shard = SimpleNamespace(task_id="esl.sample", map_index=1)
    gate = SimpleNamespace(task_id="esl.assess", map_index=-1)

    listener.on_task_instance_running(previous_state=None, task_instance=shard)
    clock.now += 3.0
    listener.on_task_instance_success(previous_state=None, task_instance=shard)
    listener.on_task_instance_running(previous_state=None, task_instance=gate)
    listener.on_task_instance_failed(
        previous_state=None, task_instance=gate, error="quality_score 0.41 < 0.99"
    )

    assert "sample[1]        done in 3.0s" in lines[1]
    assert lines[-1].endswith(
        "assess           FAILED after 0.0s: RuntimeError: quality_score 0.41 < 0.99"
    )
    assert listener.progress.durations == {"sample[1]": 3.0, "assess": 0.0}


@pytest.mark.parametrize(
    ("task_id", "map_index", "phase"),
    [("esl.extract", -1, "extract"), ("esl.sample", 0, "sample[0]"), ("train", None, "train")],
)
def test_phase_names(task_id: str, map_index: int | None, phase: str) -> None:
    assert phase_name(task_id, map_index) == phase


def gate(metric: str, value: float, threshold: float, kind: str, passed: bool) -> dict:
    return {
        "metric": metric,
        "value": value,
        "threshold": threshold,
        "kind": kind,
        "passed": passed,
    }


def test_gate_verdict_counts_and_names_each_failed_gate_with_value_and_threshold() -> None:
    gates = [
        gate("quality_score", 0.412, 0.99, "min", False),
        gate("exact_match_rate", 0.0, 0.01, "max", True),
        gate("dcr_share", 0.7, 0.6, "max", False),
    ]
    assert gate_verdict(gates) == (
        "1 of 3 passed; FAILED: quality_score 0.412 (needs >= 0.99), dcr_share 0.700 (needs <= 0.6)"
    )
    assert gate_verdict(gates[1:2]) == "1 of 1 passed"
    assert gate_verdict([]) == "none"


def test_summary_shows_gates_phase_times_total_local_copies_and_the_log(tmp_path: Path) -> None:
    manifest = {
        "rows": 500,
        "columns": [{"name": "a"}, {"name": "b"}],
        "source": {"rows_extracted": 2000},
        "synthesis": {
            "scores": {"quality_score": 0.93, "dependence_preservation": 0.75},
            "gates": [gate("quality_score", 0.93, 0.7, "min", True)],
        },
        "timings_seconds": {"fit": 22.1},
    }
    report = tmp_path / "r" / "report.html"
    copies = {"report.html": report, "manifest.json": tmp_path / "r" / "manifest.json"}
    seed = SimpleNamespace(n_users=2000, n_sessions=5, loaded=True)
    text = summary(
        manifest,
        seed,
        {"extract": 5.44, "train": 47.9},
        copies=copies,
        log_path=tmp_path / "x.log",
        total=78.04,
    )
    assert "rows extracted       : 2000" in text
    assert "rows published       : 500 (2 columns)" in text
    assert "quality 0.930" in text and "dependence 0.750" in text
    assert "gates                : 1 of 1 passed" in text
    assert "time per phase (s)   : extract 5.4, train 47.9" in text
    assert "work in the tasks (s): fit 22.1" in text
    assert "total                : 78.0 s" in text
    assert f"report (local copy)  : {report.resolve().as_uri()}" in text
    assert f"manifest (local copy): {tmp_path / 'r' / 'manifest.json'}" in text
    assert f"full log             : {tmp_path / 'x.log'}" in text


def test_logs_to_file_sends_every_layer_to_the_file_and_only_the_terminal_to_stdout(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log_path = tmp_path / "logs" / "demo.log"
    bound = logging.getLogger("test_demo_runner.bound")
    handler = logging.StreamHandler(sys.stdout)  # like Airflow's root handler, bound earlier
    bound.addHandler(handler)
    bound.propagate = False
    try:
        with logs_to_file(log_path) as terminal:
            print("python print")
            print("python stderr", file=sys.stderr)
            os.write(1, b"fd 1 write\n")
            os.write(2, b"fd 2 write\n")
            subprocess.run(["echo", "child process"], check=True)
            bound.warning("bound handler")
            late = logging.StreamHandler(sys.stdout)  # configured inside (Airflow imported)
            bound.addHandler(late)
            terminal.write("[demo] for the person\n")
        bound.warning("after: back on the terminal")
    finally:
        bound.removeHandler(handler)
        bound.removeHandler(late)
    out, err = capfd.readouterr()
    logged = log_path.read_text()

    for text in ("python print", "python stderr", "fd 1 write", "fd 2 write", "child process"):
        assert text in logged and text not in out + err
    assert "bound handler" in logged and "bound handler" not in out + err
    assert "[demo] for the person" in out and "[demo]" not in logged
    assert handler.stream is sys.stdout  # restored
    assert "after: back on the terminal" in out  # the restored handler
    assert late.stream.name == str(log_path)  # configured inside: stays on the file
    assert "after: back on the terminal" in log_path.read_text()


def test_after_lines_name_the_state_folder_and_what_to_run(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(json.dumps({"s3": {"internal_ports": {"filer": 4321}}}))
    stack = SimpleNamespace(state_dir=tmp_path, BUCKET="synthetic")

    running = "\n".join(after_lines(stack, "airbnb_bookings", running=True))
    assert (
        f"-m airflow_synth.demo.browse --state-dir {tmp_path} s3://synthetic/airbnb_bookings/"
        in (running)
    )
    assert "http://127.0.0.1:4321/buckets/synthetic/airbnb_bookings/" in running
    assert f"stop them: {_venv_python()} -m airflow_synth.local down --state-dir {tmp_path}" in (
        running
    )

    stopped = "\n".join(after_lines(stack, "airbnb_bookings", running=False))
    assert "127.0.0.1:4321" not in stopped
    assert f"start them again: {_venv_python()} -m airflow_synth.local up --state-dir" in stopped


def test_after_lines_for_the_default_state_folder_use_make(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SYNTH_LOCAL_DIR", str(tmp_path))
    stack = SimpleNamespace(state_dir=tmp_path, BUCKET="synthetic")
    text = "\n".join(after_lines(stack, "d", running=True))
    assert "stop them: make stack-down" in text and "--state-dir" not in text


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://synthetic/airbnb_bookings/", ("synthetic", "airbnb_bookings/")),
        ("s3://other/a/b.json", ("other", "a/b.json")),
        ("airbnb_bookings/latest.json", ("synthetic", "airbnb_bookings/latest.json")),
        ("s3://synthetic", ("synthetic", "")),
    ],
)
def test_browse_splits_uris(uri: str, expected: tuple[str, str]) -> None:
    assert split_uri(uri) == expected


def test_stop_flag_and_min_quality_parse() -> None:
    args = _parser().parse_args(["--stop", "--min-quality", "0.999"])
    assert args.stop is True and args.min_quality == 0.999
    assert _parser().parse_args([]).stop is False


def test_browse_says_how_to_start_the_servers_when_they_are_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert browse_main(["--state-dir", str(tmp_path), "s3://synthetic/x/"]) == 2
    assert "is not running: start it with `make stack-up`" in capsys.readouterr().out


class UnstartableStack:
    """A stack whose servers cannot start (a port taken, a binary missing)."""

    BUCKET = "synthetic"

    def __init__(self, state_dir: Path | None) -> None:
        self.state_dir = Path(state_dir)

    def start(self) -> None:
        raise OSError("S3 server exited with code 1 while starting")

    def is_running(self) -> bool:
        return False


def test_a_failed_step_prints_one_clear_line_and_exits_non_zero(
    monkeypatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import airflow_synth.local

    monkeypatch.setattr(airflow_synth.local, "LocalStack", UnstartableStack)
    code = main(["--state-dir", str(tmp_path)])
    out, err = capfd.readouterr()
    (log_path,) = (tmp_path / "demo" / "logs").glob("*.log")

    assert code == 1
    assert "FAILED after 0.0s: OSError: S3 server exited with code 1" in out
    assert f"[demo] the traceback is in {log_path}" in out
    assert "start them again: " in out and "still running" not in out
    assert "Traceback" not in out + err and "Traceback" in log_path.read_text()
