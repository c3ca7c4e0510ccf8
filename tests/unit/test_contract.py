"""Schema contracts: parsing, validation and the readable diff (airflow_synth.core.contract)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_synth.core.contract import (
    ColumnContract,
    TableContract,
    check_contract,
    contract_diff,
    contract_path_for,
    load_contract,
    logical_type,
    parse_contract,
    schema_columns,
)
from airflow_synth.core.errors import ContractError, SynthError

pytestmark = pytest.mark.unit

CONTRACT_YAML = """\
table: users
primary_key: user_id
owner: data-platform
columns:
  - {name: user_id, type: integer, sdtype: id}
  - {name: email, type: string, sdtype: email, pii: true}
  - {name: nickname, type: string, pii: true}
  - {name: country, type: string, sdtype: categorical}
  - {name: signup_day, type: date}
  - {name: seen_at, type: timestamp, sdtype: datetime, datetime_format: "%Y-%m-%d"}
"""


def raw(*columns: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"columns": list(columns), **top}


@pytest.fixture
def contract_file(tmp_path: Path) -> Path:
    path = tmp_path / "users_features.contract.yaml"
    path.write_text(CONTRACT_YAML, encoding="utf-8")
    return path


@pytest.fixture
def contract(contract_file: Path) -> TableContract:
    return load_contract(contract_file)


# --------------------------------------------------------------------------------------------
# paths and loading
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("sql/features/users.sql", "sql/features/users.contract.yaml"),
        ("/abs/x.y.sql", "/abs/x.y.contract.yaml"),
        ("noext", "noext.contract.yaml"),
    ],
)
def test_contract_path_for(sql: str, expected: str) -> None:
    assert contract_path_for(sql) == Path(expected)
    assert contract_path_for(Path(sql)) == Path(expected)


def test_load_contract_reads_every_field(contract: TableContract, contract_file: Path) -> None:
    assert contract.table == "users"
    assert contract.primary_key == "user_id"
    assert contract.source == str(contract_file)
    assert contract.extra == {"owner": "data-platform"}
    assert contract.column_names == [
        "user_id",
        "email",
        "nickname",
        "country",
        "signup_day",
        "seen_at",
    ]
    assert contract.column("user_id") == ColumnContract("user_id", "integer", sdtype="id")
    email = contract.column("email")
    assert (email.pii, email.pii_sdtype, email.sdtype) == (True, "email", "email")
    nickname = contract.column("nickname")
    assert (nickname.pii, nickname.pii_sdtype, nickname.sdtype) == (True, None, None)
    assert contract.column("country").pii is False
    assert contract.column("seen_at").datetime_format == "%Y-%m-%d"
    assert contract.column("signup_day").sdtype is None


def test_column_lookup_of_unknown_name_raises_keyerror(contract: TableContract) -> None:
    with pytest.raises(KeyError, match="nope"):
        contract.column("nope")


def test_contract_objects_are_immutable(contract: TableContract) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        contract.primary_key = "email"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        contract.columns[0].pii = True  # type: ignore[misc]


def test_load_contract_missing_file_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "absent.contract.yaml"
    with pytest.raises(ContractError) as err:
        load_contract(path)
    assert str(path) in str(err.value)
    assert "contract_file=None" in str(err.value)
    assert isinstance(err.value, SynthError)


def test_load_contract_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.contract.yaml"
    path.write_text("columns: [\n  - {name: a, type: integer\n", encoding="utf-8")
    with pytest.raises(ContractError, match="not valid YAML") as err:
        load_contract(path)
    assert str(path) in str(err.value)


def test_table_name_defaults_to_file_name(tmp_path: Path) -> None:
    path = tmp_path / "orders_daily.contract.yaml"
    path.write_text("columns:\n  - {name: a, type: integer}\n", encoding="utf-8")
    loaded = load_contract(path)
    assert loaded.table == "orders_daily"
    assert loaded.primary_key is None
    assert loaded.extra == {}


# --------------------------------------------------------------------------------------------
# parse_contract validation
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (None, "expected a mapping with a 'columns' list"),
        ([{"name": "a", "type": "integer"}], "expected a mapping"),
        ({"table": "t"}, "'columns' list"),
        ({"columns": {"a": "integer"}}, "'columns' list"),
        (raw({"name": "a"}), "column #1 needs at least 'name' and 'type'"),
        (raw({"name": "a", "type": "integer"}, "b"), "column #2 needs"),
        (raw({"name": "a", "type": "int"}), "column 'a' has type 'int'"),
        (raw({"name": "a", "type": "integer", "sdtype": "email"}), "has sdtype 'email'"),
        (
            raw({"name": "a", "type": "integer"}, {"name": "a", "type": "string"}),
            "columns listed twice: a",
        ),
        (raw({"name": "a", "type": "integer"}, primary_key="id"), "primary_key 'id' is not"),
    ],
)
def test_parse_contract_rejects_bad_documents(document: Any, fragment: str) -> None:
    with pytest.raises(ContractError) as err:
        parse_contract(document, source="sql/x.contract.yaml")
    assert fragment in str(err.value)
    assert str(err.value).startswith("sql/x.contract.yaml:")


def test_parse_contract_lists_every_duplicate_sorted() -> None:
    columns = [{"name": n, "type": "integer"} for n in ("b", "a", "b", "c", "a")]
    with pytest.raises(ContractError, match="columns listed twice: a, b\\."):
        parse_contract(raw(*columns))


def test_pii_columns_may_use_sdv_pii_sdtypes() -> None:
    parsed = parse_contract(
        raw(
            {"name": "email", "type": "string", "sdtype": "email", "pii": True},
            {"name": "phone", "type": "string", "sdtype": "phone_number", "pii": True},
            {"name": "secret", "type": "string", "sdtype": "pii"},
            {"name": "note", "type": "string", "sdtype": "pii", "pii": True},
        )
    )
    assert [(c.pii, c.pii_sdtype) for c in parsed.columns] == [
        (True, "email"),
        (True, "phone_number"),
        # sdtype "pii" means "PII of no particular kind" even without `pii: true`
        (True, None),
        (True, None),
    ]


def test_non_pii_column_never_gets_a_pii_sdtype() -> None:
    parsed = parse_contract(raw({"name": "c", "type": "string", "sdtype": "categorical"}))
    assert parsed.columns[0].pii is False
    assert parsed.columns[0].pii_sdtype is None


def test_parse_contract_converts_names_and_types_to_strings() -> None:
    parsed = parse_contract(raw({"name": 2024, "type": "integer"}), source="x.contract.yaml")
    assert parsed.column_names == ["2024"]
    assert parsed.table == "x"


# --------------------------------------------------------------------------------------------
# logical types
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arrow_type", "expected"),
    [
        (pa.bool_(), "boolean"),
        (pa.int8(), "integer"),
        (pa.int16(), "integer"),
        (pa.int32(), "integer"),
        (pa.int64(), "integer"),
        (pa.uint64(), "integer"),
        (pa.float16(), "float"),
        (pa.float32(), "float"),
        (pa.float64(), "float"),
        (pa.decimal128(12, 2), "float"),
        (pa.date32(), "date"),
        (pa.date64(), "date"),
        (pa.timestamp("us"), "timestamp"),
        (pa.timestamp("ms", tz="UTC"), "timestamp"),
        (pa.string(), "string"),
        (pa.large_string(), "string"),
        (pa.binary(), "unsupported:binary"),
        (pa.list_(pa.int64()), "unsupported:list<item: int64>"),
    ],
)
def test_logical_type(arrow_type: pa.DataType, expected: str) -> None:
    assert logical_type(arrow_type) == expected


def test_schema_columns_keeps_order() -> None:
    schema = pa.schema([("z", pa.string()), ("a", pa.int32()), ("m", pa.timestamp("us", tz="UTC"))])
    assert schema_columns(schema) == [("z", "string"), ("a", "integer"), ("m", "timestamp")]


# --------------------------------------------------------------------------------------------
# contract_diff / check_contract
# --------------------------------------------------------------------------------------------
@pytest.fixture
def small() -> TableContract:
    return parse_contract(
        raw(
            {"name": "id", "type": "integer"},
            {"name": "name", "type": "string"},
            {"name": "score", "type": "float"},
        ),
        source="sql/features/small.contract.yaml",
    )


def test_diff_is_empty_when_query_matches(small: TableContract) -> None:
    actual = [("id", "integer"), ("name", "string"), ("score", "float")]
    assert contract_diff(small, actual) == []
    check_contract(small, actual)  # does not raise


def test_diff_reports_missing_extra_and_retyped_columns(small: TableContract) -> None:
    actual = [("id", "string"), ("score", "float"), ("created", "timestamp")]
    assert contract_diff(small, actual) == [
        "- name (string): in the contract but not returned by the query",
        "+ created (timestamp): returned by the query but not in the contract",
        "~ id: contract says integer, query returns string",
    ]


def test_diff_reports_order_only_when_nothing_else_differs(small: TableContract) -> None:
    reordered = [("score", "float"), ("id", "integer"), ("name", "string")]
    assert contract_diff(small, reordered) == [
        "> column order differs: contract ['id', 'name', 'score'], query ['score', 'id', 'name']"
    ]
    reordered_and_extra = [*reordered, ("x", "integer")]
    assert [line[0] for line in contract_diff(small, reordered_and_extra)] == ["+"]


def test_diff_reports_columns_the_query_returns_twice(small: TableContract) -> None:
    # A join selecting u.id and s.id yields two "id" columns; that must not pass silently.
    actual = [("id", "integer"), ("name", "string"), ("score", "float"), ("id", "integer")]
    diff = contract_diff(small, actual)
    assert diff == ["= id: returned 2 times by the query"]


def test_check_contract_error_names_file_and_lists_every_difference(
    small: TableContract,
) -> None:
    actual = [("id", "integer"), ("score", "integer"), ("extra", "boolean")]
    with pytest.raises(ContractError) as err:
        check_contract(small, actual)
    message = str(err.value)
    assert "sql/features/small.contract.yaml" in message
    assert "\n  - name (string)" in message
    assert "\n  + extra (boolean)" in message
    assert "\n  ~ score: contract says float, query returns integer" in message
    assert "nothing was trained or published" in message


def test_check_contract_against_a_real_arrow_schema(contract: TableContract) -> None:
    schema = pa.schema(
        [
            ("user_id", pa.int64()),
            ("email", pa.string()),
            ("nickname", pa.large_string()),
            ("country", pa.string()),
            ("signup_day", pa.date32()),
            ("seen_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    check_contract(contract, schema_columns(schema))
    retyped = schema.set(4, pa.field("signup_day", pa.timestamp("us")))
    with pytest.raises(ContractError, match="signup_day: contract says date, query returns"):
        check_contract(contract, schema_columns(retyped))


# -- per-table contracts of a multi-table set ------------------------------------------------
def test_table_contracts_resolve_files_and_inline_mappings(tmp_path) -> None:
    from airflow_synth.core.contract import load_table_contracts, resolve_table_contracts

    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / "users.contract.yaml").write_text(
        "columns:\n  - {name: email, type: string, role: pii, pii_kind: email}\n"
    )
    refs = resolve_table_contracts(
        {
            "users": "users.contract.yaml",
            "orders": {"columns": [{"name": "note", "type": "string", "role": "modelled"}]},
        },
        [folder],
    )
    assert refs["users"] == str((folder / "users.contract.yaml").resolve())
    contracts = load_table_contracts(refs)
    assert contracts["users"].column("email").pii_kind == "email"
    assert contracts["orders"].column("note").role == "modelled"


def test_table_contract_problems_name_the_table(tmp_path) -> None:
    from airflow_synth.core.contract import resolve_table_contracts

    with pytest.raises(ContractError, match=r"'nope.yaml' of table 'users' not found"):
        resolve_table_contracts({"users": "nope.yaml"}, [tmp_path])
    with pytest.raises(ContractError, match=r"table 'orders'.*role 'secret'"):
        resolve_table_contracts(
            {"orders": {"columns": [{"name": "a", "type": "string", "role": "secret"}]}}
        )
