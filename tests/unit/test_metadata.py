"""SDV metadata built from data plus the contract (airflow_synth.core.engine.metadata)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_synth.core.contract import TableContract, parse_contract
from airflow_synth.core.engine.metadata import (
    PRIVATE_COLUMN_KEYS,
    build_metadata,
    public_metadata,
)

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

TABLE = "users"
N = 60


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "user_id": np.arange(1000, 1000 + N),
            "account_code": [f"AC{i:04d}" for i in range(N)],
            "zip": rng.choice([10115, 20095, 80331], N),
            "email": [f"person{i}@example.org" for i in range(N)],
            "nickname": [f"nick{i}" for i in range(N)],
            "pin": rng.integers(1000, 9999, N),
            "age": rng.integers(18, 90, N),
            "balance": rng.normal(1000, 250, N).round(2),
            "signup": pd.date_range("2023-01-01", periods=N, freq="D"),
            "active": rng.integers(0, 2, N).astype(bool),
        }
    )


def contract(*columns: dict[str, Any], **top: Any) -> TableContract:
    return parse_contract({"columns": list(columns), **top}, source="sql/users.contract.yaml")


def columns_of(metadata: Any) -> dict[str, dict[str, Any]]:
    return metadata.to_dict()["tables"][TABLE]["columns"]


# --------------------------------------------------------------------------------------------
# detection and contract overrides (of the modelled columns: keys and PII never get here)
# --------------------------------------------------------------------------------------------
MODELLED = ["zip", "pin", "age", "balance", "signup", "active"]


def test_detection_alone(frame: pd.DataFrame) -> None:
    metadata = build_metadata(frame[MODELLED], TABLE)
    spec = metadata.to_dict()["tables"][TABLE]
    assert list(spec["columns"]) == MODELLED
    assert spec["columns"]["age"]["sdtype"] == "numerical"
    assert spec["columns"]["signup"]["sdtype"] == "datetime"
    # what detection cannot know: a zip code looks like an ordered number
    assert spec["columns"]["zip"]["sdtype"] in ("numerical", "ordinal")
    assert "primary_key" not in spec  # keys are issued fresh, never modelled


def test_contract_overrides_sdtypes(frame: pd.DataFrame) -> None:
    metadata = build_metadata(
        frame[MODELLED],
        TABLE,
        contract(
            {"name": "account_code", "type": "string", "sdtype": "id"},
            {"name": "zip", "type": "integer", "sdtype": "categorical"},
            {"name": "age", "type": "integer"},  # no sdtype: detection stays
            {"name": "email", "type": "string", "sdtype": "email", "pii": True},
            primary_key="account_code",
        ),
    )
    spec = metadata.to_dict()["tables"][TABLE]
    assert spec["columns"]["zip"]["sdtype"] == "categorical"
    assert spec["columns"]["age"]["sdtype"] == "numerical"
    assert spec["columns"]["age"]["range_min"] == int(frame["age"].min())
    # declared keys and PII are not in the frame: the contract does not bring them back
    assert "account_code" not in spec["columns"] and "email" not in spec["columns"]


def test_datetime_format_applies_only_to_text_columns(frame: pd.DataFrame) -> None:
    text = frame.assign(signup_text=frame["signup"].dt.strftime("%d.%m.%Y"))
    metadata = build_metadata(
        text[[*MODELLED, "signup_text"]],
        TABLE,
        contract(
            {
                "name": "signup_text",
                "type": "string",
                "sdtype": "datetime",
                "datetime_format": "%d.%m.%Y",
            },
            {"name": "signup", "type": "timestamp", "sdtype": "datetime", "datetime_format": "%Y"},
        ),
    )
    cols = columns_of(metadata)
    assert cols["signup_text"]["sdtype"] == "datetime"
    assert cols["signup_text"]["datetime_format"] == "%d.%m.%Y"
    # a real datetime64 column must not get a format (SDV would parse it as text)
    assert "datetime_format" not in cols["signup"]


# --------------------------------------------------------------------------------------------
# public_metadata
# --------------------------------------------------------------------------------------------
def test_public_metadata_strips_every_value_revealing_key(frame: pd.DataFrame) -> None:
    metadata = build_metadata(frame[MODELLED], TABLE)
    private = columns_of(metadata)
    # detection really did record real values (otherwise this test would prove nothing)
    assert private["age"]["range_min"] == int(frame["age"].min())
    assert private["age"]["range_max"] == int(frame["age"].max())
    assert set(private["zip"]["range_values"]) == set(frame["zip"])

    public = public_metadata(metadata)
    for name, spec in public["tables"][TABLE]["columns"].items():
        assert not set(spec) & set(PRIVATE_COLUMN_KEYS), name
        assert spec["sdtype"] == private[name]["sdtype"]
    text = json.dumps(public)
    for secret in (str(int(frame["balance"].max())), str(int(frame["age"].max()))):
        assert secret not in text
    assert "20095" not in text  # a real zip category
    # the metadata object itself is unchanged (training still needs the ranges)
    assert "range_min" in columns_of(metadata)["age"]


def test_public_metadata_strips_nested_keys_of_every_table() -> None:
    class FakeMetadata:
        def to_dict(self) -> dict[str, Any]:
            return {
                "tables": {
                    "a": {
                        "columns": {
                            "x": {"sdtype": "numerical", **dict.fromkeys(PRIVATE_COLUMN_KEYS, 1)}
                        }
                    },
                    "b": {"columns": {"y": {"sdtype": "categorical", "range_values": ["s"]}}},
                },
                "relationships": [],
            }

    assert public_metadata(FakeMetadata()) == {  # type: ignore[arg-type]
        "tables": {
            "a": {"columns": {"x": {"sdtype": "numerical"}}},
            "b": {"columns": {"y": {"sdtype": "categorical"}}},
        },
        "relationships": [],
    }
