"""The demo's closing summaries say what a newcomer needs to see (pure formatting)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_synth.demo.runner import _parser, multitable_summary, summary

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
