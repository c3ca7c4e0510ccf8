"""Where published outputs live (airflow_synth.core.publish.layout)."""

from __future__ import annotations

import dataclasses

import pytest

from airflow_synth.core.publish.layout import (
    FAILED_DIR,
    MODELS_PREFIX,
    DatasetLayout,
    safe_key_part,
)

pytestmark = pytest.mark.unit

SCHEDULED_RUN = "scheduled__2024-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("users", "users"),
        ("  users  ", "users"),
        (SCHEDULED_RUN, "scheduled__2024-01-01T00_00_00_00_00"),
        ("manual__2024-05-06T07:08:09.123456+00:00", "manual__2024-05-06T07_08_09.123456_00_00"),
        ("a/b", "a_b"),
        ("a//b::c", "a_b_c"),
        ("../../etc/passwd", "etc_passwd"),
        ("user features", "user_features"),
        ("k=v.x-y_z", "k=v.x-y_z"),
        ("café", "caf"),
        ("_hidden.", "hidden"),
    ],
)
def test_safe_key_part(value: str, expected: str) -> None:
    cleaned = safe_key_part(value)
    assert cleaned == expected
    assert "/" not in cleaned and ":" not in cleaned and "+" not in cleaned
    assert safe_key_part(cleaned) == cleaned  # idempotent


@pytest.mark.parametrize("value", ["", "   ", "..", ".", "///", "._.", "+:+"])
def test_safe_key_part_refuses_values_with_nothing_left(value: str) -> None:
    with pytest.raises(ValueError, match="cannot be used as a path segment"):
        safe_key_part(value)


@pytest.fixture
def layout() -> DatasetLayout:
    return DatasetLayout(bucket="synthetic", dataset="user features", run=SCHEDULED_RUN)


def test_layout_cleans_dataset_and_run(layout: DatasetLayout) -> None:
    assert layout.dataset == "user_features"
    assert layout.run == "scheduled__2024-01-01T00_00_00_00_00"
    assert layout.bucket == "synthetic"


def test_every_key_of_a_run(layout: DatasetLayout) -> None:
    run = "user_features/scheduled__2024-01-01T00_00_00_00_00/"
    assert layout.run_prefix == run
    assert layout.data_key() == run + "data.parquet"
    assert layout.data_key("csv") == run + "data.csv"
    assert layout.metadata_key == run + "metadata.json"
    assert layout.manifest_key == run + "manifest.json"
    assert layout.key("report.html") == run + "report.html"
    assert layout.latest_key == "user_features/latest.json"
    model_run = "_models/user_features/scheduled__2024-01-01T00_00_00_00_00/"
    assert layout.model_prefix == model_run
    assert layout.model_key == model_run + "model.pkl"
    assert layout.model_info_key == model_run + "model.json"
    assert MODELS_PREFIX == "_models"


def test_uris(layout: DatasetLayout) -> None:
    assert layout.uri(layout.manifest_key) == (
        "s3://synthetic/user_features/scheduled__2024-01-01T00_00_00_00_00/manifest.json"
    )
    assert layout.dataset_uri == "s3://synthetic/user_features"
    assert layout.uri(layout.latest_key).startswith(layout.dataset_uri + "/")


def test_models_and_pointer_live_outside_the_run_folder(layout: DatasetLayout) -> None:
    # A run folder is rewritten wholesale on re-publish; neither the model (real-derived,
    # kept apart from the public data) nor the pointer may be inside it.
    for key in (layout.model_key, layout.model_info_key, layout.latest_key):
        assert not key.startswith(layout.run_prefix)
    assert not layout.model_key.startswith(layout.dataset + "/")


def test_failed_runs_are_quarantined_beside_the_runs_never_inside_one(
    layout: DatasetLayout,
) -> None:
    failed = "user_features/_failed/scheduled__2024-01-01T00_00_00_00_00/"
    assert FAILED_DIR == "_failed"
    assert layout.failed_prefix == failed
    assert layout.failed_key("report.html") == failed + "report.html"
    assert layout.failed_key("reports/users/report.html") == failed + "reports/users/report.html"
    assert not layout.failed_prefix.startswith(layout.run_prefix)
    assert not layout.run_prefix.startswith(layout.failed_prefix)
    assert layout.latest_key not in (layout.failed_key("latest.json"),)


@pytest.mark.parametrize("run", ["_failed", "__failed", "_failed_"])
def test_no_run_can_be_named_like_the_quarantine(run: str) -> None:
    # run folders and the quarantine share the dataset folder: they must never collide
    assert DatasetLayout("b", "ds", run).run_prefix != f"ds/{FAILED_DIR}/"


def test_run_prefixes_never_overlap() -> None:
    # "run1/" must not be a prefix of "run10/": listing one run never sees another.
    one = DatasetLayout("b", "ds", "run1")
    ten = DatasetLayout("b", "ds", "run10")
    assert not ten.manifest_key.startswith(one.run_prefix)
    assert not one.manifest_key.startswith(ten.run_prefix)
    assert one.latest_key == ten.latest_key  # one pointer per dataset


def test_same_inputs_same_keys_and_equal_layouts() -> None:
    a = DatasetLayout("b", "ds", SCHEDULED_RUN)
    b = DatasetLayout("b", "ds", "scheduled__2024-01-01T00_00_00_00_00")
    assert a == b
    assert a.manifest_key == b.manifest_key
    assert hash(a) == hash(b)


def test_layout_is_frozen(layout: DatasetLayout) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        layout.run = "other"  # type: ignore[misc]


def test_layout_refuses_unusable_names() -> None:
    with pytest.raises(ValueError):
        DatasetLayout("b", "..", "run")
    with pytest.raises(ValueError):
        DatasetLayout("b", "ds", "/")
