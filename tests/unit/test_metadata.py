"""SDV metadata built from data plus the contract (airflow_synth.core.metadata)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_synth.core.contract import TableContract, parse_contract
from airflow_synth.core.errors import ContractError
from airflow_synth.core.metadata import (
    PRIVATE_COLUMN_KEYS,
    build_metadata,
    pii_columns,
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
# detection and contract overrides
# --------------------------------------------------------------------------------------------
def test_detection_alone(frame: pd.DataFrame) -> None:
    metadata = build_metadata(frame, TABLE)
    spec = metadata.to_dict()["tables"][TABLE]
    assert list(spec["columns"]) == list(frame.columns)
    assert spec["columns"]["age"]["sdtype"] == "numerical"
    assert spec["columns"]["signup"]["sdtype"] == "datetime"
    # what detection cannot know: a zip code looks like an ordered number
    assert spec["columns"]["zip"]["sdtype"] in ("numerical", "ordinal")
    assert spec["columns"]["email"].get("pii") is True  # detected from the name
    assert spec["columns"]["nickname"].get("pii") is None


def test_contract_overrides_sdtypes_and_primary_key(frame: pd.DataFrame) -> None:
    metadata = build_metadata(
        frame,
        TABLE,
        contract(
            {"name": "account_code", "type": "string", "sdtype": "id"},
            {"name": "zip", "type": "integer", "sdtype": "categorical"},
            {"name": "age", "type": "integer"},  # no sdtype: detection stays
            primary_key="account_code",
        ),
    )
    spec = metadata.to_dict()["tables"][TABLE]
    assert spec["primary_key"] == "account_code"
    assert spec["columns"]["account_code"]["sdtype"] == "id"
    assert spec["columns"]["zip"]["sdtype"] == "categorical"
    assert spec["columns"]["age"]["sdtype"] == "numerical"
    assert spec["columns"]["age"]["range_min"] == int(frame["age"].min())


def test_contract_pii_columns_become_pii(frame: pd.DataFrame) -> None:
    metadata = build_metadata(
        frame,
        TABLE,
        contract(
            {"name": "email", "type": "string", "sdtype": "email", "pii": True},
            {"name": "nickname", "type": "string", "pii": True},
            {"name": "pin", "type": "integer", "sdtype": "pii"},
        ),
    )
    cols = columns_of(metadata)
    assert cols["email"] == {"sdtype": "email", "pii": True}
    # PII "of no particular kind" is generated fresh (SDV's anonymised 'unknown')
    assert cols["nickname"] == {"sdtype": "unknown", "pii": True}
    assert cols["pin"] == {"sdtype": "unknown", "pii": True}
    assert pii_columns(metadata, TABLE) == ["email", "nickname", "pin"]


def test_pii_columns_without_contract_uses_detection(frame: pd.DataFrame) -> None:
    assert pii_columns(build_metadata(frame, TABLE), TABLE) == ["email"]


def test_datetime_format_applies_only_to_text_columns(frame: pd.DataFrame) -> None:
    text = frame.assign(signup_text=frame["signup"].dt.strftime("%d.%m.%Y"))
    metadata = build_metadata(
        text,
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
# errors name the contract
# --------------------------------------------------------------------------------------------
def test_contract_column_missing_from_data(frame: pd.DataFrame) -> None:
    with pytest.raises(ContractError, match="contract column 'phone' is not in the extracted"):
        build_metadata(frame, TABLE, contract({"name": "phone", "type": "string", "sdtype": "id"}))


@pytest.mark.parametrize(
    ("columns", "primary_key", "fragment"),
    [
        ([{"name": "age", "type": "integer"}], "age", "primary_key"),
        ([{"name": "age", "type": "integer", "sdtype": "bogus_type", "pii": True}], None, "bogus"),
    ],
)
def test_sdv_rejections_become_contract_errors(
    frame: pd.DataFrame, columns: list[dict[str, Any]], primary_key: str | None, fragment: str
) -> None:
    with pytest.raises(ContractError) as err:
        build_metadata(frame, TABLE, contract(*columns, primary_key=primary_key))
    message = str(err.value)
    assert "SDV rejected the table metadata (contract sql/users.contract.yaml)" in message
    assert fragment in message


# --------------------------------------------------------------------------------------------
# public_metadata
# --------------------------------------------------------------------------------------------
def test_public_metadata_strips_every_value_revealing_key(frame: pd.DataFrame) -> None:
    metadata = build_metadata(frame, TABLE)
    private = columns_of(metadata)
    # detection really did record real values (otherwise this test would prove nothing)
    assert private["age"]["range_min"] == int(frame["age"].min())
    assert private["age"]["range_max"] == int(frame["age"].max())
    assert set(private["zip"]["range_values"]) == set(frame["zip"])
    # all-distinct text (nicknames, codes) identifies people: generated fresh as ids
    assert private["nickname"]["sdtype"] == private["account_code"]["sdtype"] == "id"

    public = public_metadata(metadata)
    for name, spec in public["tables"][TABLE]["columns"].items():
        assert not set(spec) & set(PRIVATE_COLUMN_KEYS), name
        assert spec["sdtype"] == private[name]["sdtype"]
    text = json.dumps(public)
    for secret in ("nick17", str(int(frame["balance"].max())), "AC0042"):
        assert secret not in text
    assert public["tables"][TABLE]["primary_key"] == "user_id"
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
