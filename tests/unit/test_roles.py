"""Column roles (core/profile/roles.py) and fresh values (core/engine/fresh.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from faker import Faker

from airflow_synth.core.contract import parse_contract
from airflow_synth.core.engine.fresh import FreshColumns, FreshValues, count_leaks, reissue_keys
from airflow_synth.core.errors import ContractError
from airflow_synth.core.profile.roles import (
    FOREIGN_KEY,
    KEY,
    MODELLED,
    PII,
    ColumnRole,
    classify_columns,
    describe_roles,
)

pytestmark = pytest.mark.unit

N = 600


def customers(n: int = N, seed: int = 3) -> pd.DataFrame:
    """A table as a new user has one: PII in plain ``text`` columns, none declared."""
    fake = Faker()
    fake.seed_instance(seed)
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": np.arange(5_000, 5_000 + n),
            "contact": [fake.name() for _ in range(n)],
            "mail": [fake.email() for _ in range(n)],
            "tel": [fake.phone_number() for _ in range(n)],
            "addr": [fake.address() for _ in range(n)],
            "remarks": [fake.sentence(nb_words=9) for _ in range(n)],
            "client_ip": [fake.ipv4() for _ in range(n)],
            "payload": [json.dumps({"score": int(i), "tag": f"t{i}"}) for i in range(n)],
            "blob": [f"b'\\x{i % 256:02x}\\x1f{i}'" for i in range(n)],
            "order_ref": [f"ORD-{i:06d}" for i in rng.permutation(n)],
            "status_code": rng.choice([1, 2, 3, 5, 8, 13, 19], n),
            "plan_id": rng.choice([10, 20, 30], n),
            "country": rng.choice(["DE", "FR", "US"], n),
            "product_name": rng.choice(["Widget", "Gadget", "Gizmo"], n),
            "description": rng.choice(["short label", "other label"], n),
            "amount": rng.gamma(2.0, 10.0, n).round(2),
            "created": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), "D"),
        }
    )


def roles_by_name(roles: list[ColumnRole]) -> dict[str, ColumnRole]:
    return {r.name: r for r in roles}


# -- classification --------------------------------------------------------------------------
def test_undeclared_pii_is_found_by_name_and_content() -> None:
    roles = roles_by_name(classify_columns(customers()))
    expected = {
        "contact": "person_name",
        "mail": "email",
        "tel": "phone",
        "addr": "address",
        "remarks": "free_text",
        "client_ip": "ip_address",
        "payload": "json",
        "blob": "opaque",
        "order_ref": "identifier",
        "customer_id": "identifier",
    }
    for column, kind in expected.items():
        assert (roles[column].role, roles[column].kind) == (PII, kind), column
    for column in ("status_code", "plan_id", "country", "product_name", "description", "amount"):
        assert roles[column].role == MODELLED, column


def test_content_detection_does_not_need_a_telling_name() -> None:
    frame = customers().rename(columns={"mail": "c1", "client_ip": "c2", "order_ref": "c3"})
    roles = roles_by_name(classify_columns(frame))
    assert roles["c1"].kind == "email" and "by content" in roles["c1"].reason
    assert roles["c2"].kind == "ip_address" and "by content" in roles["c2"].reason
    assert roles["c3"].kind == "identifier" and "distinct" in roles["c3"].reason


def test_reasons_never_quote_a_value() -> None:
    frame = customers()
    text = json.dumps([r.to_dict() for r in classify_columns(frame)])
    text += "\n".join(describe_roles(classify_columns(frame)))
    for column in ("contact", "mail", "addr", "order_ref", "country"):
        for value in frame[column].head(50):
            assert str(value) not in text


def test_contract_declarations_win_over_detection() -> None:
    contract = parse_contract(
        {
            "primary_key": "order_ref",
            "columns": [
                {"name": "order_ref", "type": "string"},
                {"name": "contact", "type": "string", "role": "modelled"},
                {"name": "country", "type": "string", "role": "pii", "pii_kind": "identifier"},
                {"name": "amount", "type": "float", "sdtype": "numerical"},
                {"name": "mail", "type": "string", "sdtype": "email", "pii": True},
                {"name": "status_code", "type": "integer", "sdtype": "categorical"},
            ],
        },
        source="customers.contract.yaml",
    )
    roles = roles_by_name(classify_columns(customers(), contract=contract))
    assert roles["order_ref"].role == KEY
    assert roles["contact"].role == MODELLED  # the user said so: learned, not PII
    assert (roles["country"].role, roles["country"].kind) == (PII, "identifier")
    assert roles["mail"].kind == "email"
    assert roles["status_code"].kind == "categorical"
    assert all(
        "customers.contract.yaml" in roles[c].reason
        for c in ("contact", "country", "mail", "status_code")
    )


def test_contract_rejects_unknown_roles_and_contradictions() -> None:
    with pytest.raises(ContractError, match="role 'secret'"):
        parse_contract({"columns": [{"name": "a", "type": "string", "role": "secret"}]})
    with pytest.raises(ContractError, match="both PII and 'role: modelled'"):
        parse_contract(
            {"columns": [{"name": "a", "type": "string", "pii": True, "role": "modelled"}]}
        )
    with pytest.raises(ContractError, match="pii_kind 'dna'"):
        parse_contract(
            {"columns": [{"name": "a", "type": "string", "role": "pii", "pii_kind": "dna"}]}
        )


def test_keys_and_foreign_keys_come_from_the_set() -> None:
    frame = pd.DataFrame({"id": [1, 2, 3], "user_id": [7, 7, 8], "n": [1.0, 2.0, 3.0]})
    roles = roles_by_name(
        classify_columns(frame, primary_key=["id"], foreign_keys={"user_id": "users.id"})
    )
    assert roles["id"].role == KEY and roles["id"].kind == "integer"
    assert roles["user_id"].role == FOREIGN_KEY and roles["user_id"].references == "users.id"
    assert roles["n"].role == MODELLED


def test_short_repeated_text_and_low_cardinality_ids_are_modelled() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "note": rng.choice(["ok", "late", "damaged"], 200),
            "region_id": rng.choice([1, 2, 3, 4], 200),
            "date_text": pd.date_range("2020-01-01", periods=200).strftime("%Y-%m-%d"),
        }
    )
    roles = roles_by_name(classify_columns(frame))
    assert roles["note"].role == MODELLED
    assert roles["region_id"].role == MODELLED
    assert roles["date_text"].kind != "phone"


# -- fresh values ------------------------------------------------------------------------------
def test_fresh_values_never_equal_a_real_value_and_look_alike() -> None:
    frame = customers()
    roles = classify_columns(frame)
    fresh = FreshColumns(frame, roles, seed=7)
    modelled = [r.name for r in roles if r.role == MODELLED]
    out = fresh.complete(frame[modelled].iloc[:0].reindex(range(2_000)), list(frame.columns))
    assert list(out.columns) == list(frame.columns)
    leaks = count_leaks(out, frame, [r.name for r in roles if r.fresh])
    assert leaks == dict.fromkeys(leaks, 0) and len(leaks) == 10
    assert out["mail"].str.contains("@").all()
    assert out["order_ref"].str.match(r"^[A-Z]{3}-\d{6}$").all()  # format kept
    assert out["order_ref"].is_unique and out["customer_id"].is_unique
    assert out["client_ip"].str.match(r"^\d+\.\d+\.\d+\.\d+$").all()
    assert all(set(json.loads(v)) == {"score", "tag"} for v in out["payload"])
    assert (out["customer_id"].astype(str).str.len() == 4).all()  # as many digits as real
    assert out["tel"].str.count(r"\d").median() >= 10


def test_collisions_with_real_values_are_redrawn() -> None:
    """A real column that already holds the Faker pool: every draw collides at first."""
    role = ColumnRole("name", PII, "person_name", "test")
    probe = FreshValues(role, pd.Series(["x"]), seed=1)
    pool = probe._faker_pool()  # the exact values the generator would draw from
    generator = FreshValues(role, pd.Series(pool), seed=1)
    values = generator.draw(500)
    assert not set(values) & set(pool)


def test_keys_stay_unique_across_batches_and_nulls_keep_their_share() -> None:
    key = FreshValues(ColumnRole("id", KEY, "integer", "pk"), pd.Series(np.arange(1, 90)), seed=2)
    drawn = pd.concat([key.draw(300), key.draw(300)], ignore_index=True)
    assert drawn.is_unique and not set(drawn) & set(range(1, 90))
    real = pd.Series([f"p{i}@example.org" if i % 4 else None for i in range(4_000)])
    mail = FreshValues(ColumnRole("email", PII, "email", "test"), real, seed=2)
    values = mail.draw(4_000)
    assert abs(values.isna().mean() - 0.25) < 0.03


def test_reissued_keys_keep_every_join() -> None:
    parents = pd.DataFrame({"id": [0, 1, 2]})
    children = pd.DataFrame({"cid": [0, 1, 2, 3], "pid": [0, 0, 2, 1]})
    real = {"p": pd.DataFrame({"id": [0, 1, 2, 3]}), "c": pd.DataFrame({"cid": [0, 1, 2, 3]})}
    out = reissue_keys(
        {"p": parents, "c": children},
        real,
        {
            "p": [ColumnRole("id", KEY, "integer", "pk")],
            "c": [ColumnRole("cid", KEY, "integer", "pk")],
        },
        [("c", "pid", "p", "id")],
        seed=3,
    )
    mapping = dict(zip(parents["id"], out["p"]["id"], strict=True))
    assert list(out["c"]["pid"]) == [mapping[v] for v in children["pid"]]
    assert not set(out["p"]["id"]) & set(real["p"]["id"])
    assert not set(out["c"]["cid"]) & set(real["c"]["cid"])


def test_count_leaks_sees_numbers_written_as_text() -> None:
    published = pd.DataFrame({"a": ["42", "7"], "b": [1.0, 3.0]})
    real = pd.DataFrame({"a": [42, 8], "b": ["1", "2"]})
    assert count_leaks(published, real, ["a", "b"]) == {"a": 1, "b": 1}


def test_repeating_identifiers_are_fresh_and_keep_their_rows_per_id_profile() -> None:
    rng = np.random.default_rng(4)
    users = [f"u{i:05d}" for i in range(400)]
    real = pd.Series(
        rng.choice(users, 8_000, p=np.linspace(1, 10, 400) / np.linspace(1, 10, 400).sum())
    )
    (role,) = classify_columns(pd.DataFrame({"user_id": real}))
    assert (role.role, role.kind) == (PII, "identifier")  # 400 distinct: not a code
    fresh = FreshValues(role, real, seed=5).draw(8_000)
    assert not set(fresh) & set(real)
    assert abs(fresh.nunique() - real.nunique()) < 40  # about as many ids as real
    top_real = real.value_counts().iloc[:20].sum() / len(real)
    top_fresh = fresh.value_counts().iloc[:20].sum() / len(fresh)
    assert abs(top_real - top_fresh) < 0.02  # the busiest ids are about as busy
