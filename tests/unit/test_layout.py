"""Where published outputs live (airflow_synth.core.publish.layout)."""

from __future__ import annotations

import dataclasses

import pytest

from airflow_synth.core.errors import PublishError
from airflow_synth.core.names import DatasetNameError
from airflow_synth.core.publish.layout import (
    FAILED_DIR,
    MODELS_PREFIX,
    DatasetLayout,
    key_of_uri,
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


ATTEMPT = "attempt-20240101T000500123456Z-0a1b2c3d"


@pytest.fixture
def layout() -> DatasetLayout:
    return DatasetLayout(bucket="synthetic", dataset="user_features", run=SCHEDULED_RUN)


def test_layout_keeps_the_dataset_and_cleans_the_run(layout: DatasetLayout) -> None:
    assert layout.dataset == "user_features"
    assert layout.run == "scheduled__2024-01-01T00_00_00_00_00"
    assert layout.bucket == "synthetic"
    assert layout.attempt is None


def test_a_dataset_name_is_never_rewritten() -> None:
    with pytest.raises(DatasetNameError, match="'user features'"):
        DatasetLayout(bucket="synthetic", dataset="user features", run=SCHEDULED_RUN)


def test_every_key_of_a_run_and_of_an_attempt(layout: DatasetLayout) -> None:
    run = "user_features/scheduled__2024-01-01T00_00_00_00_00/"
    assert layout.run_prefix == run
    assert layout.manifest_key == run + "manifest.json"
    assert layout.latest_key == "user_features/latest.json"
    model_run = "_models/user_features/scheduled__2024-01-01T00_00_00_00_00/"
    assert layout.models_run_prefix == model_run
    for needs_attempt in ("attempt_prefix", "model_prefix", "model_key", "attempt_manifest_key"):
        with pytest.raises(ValueError, match="names no attempt"):
            getattr(layout, needs_attempt)
    with pytest.raises(ValueError, match="names no attempt"):
        layout.key("data.parquet")
    one = layout.for_attempt(ATTEMPT)
    assert one.attempt_prefix == run + ATTEMPT + "/"
    assert one.key("data.parquet") == run + ATTEMPT + "/data.parquet"
    assert one.key("report.html") == run + ATTEMPT + "/report.html"
    assert one.attempt_manifest_key == run + ATTEMPT + "/manifest.json"
    assert one.manifest_key == layout.manifest_key  # one run manifest for every attempt
    assert one.model_prefix == model_run + ATTEMPT + "/"
    assert one.model_key == model_run + ATTEMPT + "/model.pkl"
    assert one.model_info_key == model_run + ATTEMPT + "/model.json"
    assert MODELS_PREFIX == "_models"
    assert layout.for_attempt().attempt != layout.for_attempt().attempt  # fresh each time


def test_uris_are_read_back_to_keys_of_their_own_bucket_only(layout: DatasetLayout) -> None:
    key = layout.for_attempt(ATTEMPT).key("data/part-00001.parquet")
    assert layout.key_of(layout.uri(key)) == key
    assert key_of_uri(f"s3://synthetic/{key}", "synthetic") == key
    for uri in (f"s3://other/{key}", f"file:///synthetic/{key}", "s3://synthetic/", None):
        with pytest.raises(PublishError):
            key_of_uri(uri, "synthetic")  # type: ignore[arg-type]


def test_uris(layout: DatasetLayout) -> None:
    assert layout.uri(layout.manifest_key) == (
        "s3://synthetic/user_features/scheduled__2024-01-01T00_00_00_00_00/manifest.json"
    )
    assert layout.dataset_uri == "s3://synthetic/user_features"
    assert layout.uri(layout.latest_key).startswith(layout.dataset_uri + "/")


def test_models_and_pointer_live_outside_the_run_folder(layout: DatasetLayout) -> None:
    # The model (real-derived) is kept apart from the public data; the pointer is the
    # dataset's, not a run's.
    one = layout.for_attempt(ATTEMPT)
    for key in (one.model_key, one.model_info_key, layout.latest_key):
        assert not key.startswith(layout.run_prefix)
    assert not one.model_key.startswith(layout.dataset + "/")


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
