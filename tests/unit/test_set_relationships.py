"""Fidelity across the tables of a set (airflow_synth.core.assess): keys, children per
parent, parent-attribute links, cross-table orderings and the set-level HTML report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_synth.core.assess.links import parent_child_count_links
from airflow_synth.core.assess.relationships import (
    check_integrity,
    children_per_parent,
    nullable_relationships,
)
from airflow_synth.core.assess.set_report import render_set_report
from airflow_synth.core.profile.orderings import (
    CrossTableOrdering,
    cross_table_hold_rates,
    discover_cross_table_orderings,
    repair_cross_table_orderings,
)
from airflow_synth.core.relations import Relationship, TableSet, TableShape

pytestmark = pytest.mark.unit


def make_set(
    frames: dict[str, pd.DataFrame],
    keys: dict[str, tuple[str, ...]],
    relationships: list[Relationship],
) -> TableSet:
    """A set built directly: composite keys and self-references, which the current
    ``build_table_set`` validation still refuses, must be assessed all the same."""
    shapes = {
        name: TableShape(name, tuple(frame.columns), keys.get(name, ()))
        for name, frame in frames.items()
    }
    return TableSet(tables=shapes, relationships=tuple(relationships), order=tuple(frames))


# -- composite keys ----------------------------------------------------------------------------
LINES = ("order_id", "line_no")
SHIP_REL = Relationship("lines", LINES, "shipments", LINES)


def lines_and_shipments() -> dict[str, pd.DataFrame]:
    lines = pd.DataFrame({"order_id": [1, 1, 2, 2, 2], "line_no": [1, 2, 1, 2, 3]})
    shipments = pd.DataFrame(
        {"ship_id": [10, 11, 12, 13], "order_id": [1, 1, 2, 2], "line_no": [1, 2, 3, 3]}
    )
    return {"lines": lines, "shipments": shipments}


def lines_set(frames: dict[str, pd.DataFrame]) -> TableSet:
    return make_set(frames, {"lines": LINES, "shipments": ("ship_id",)}, [SHIP_REL])


def test_a_composite_key_repeating_its_first_column_is_unique() -> None:
    frames = lines_and_shipments()  # order_id repeats, (order_id, line_no) does not
    report = check_integrity(frames, lines_set(frames))
    assert report["passed"] is True, report["failures"]
    assert report["primary_keys"]["lines"]["columns"] == ["order_id", "line_no"]
    assert report["primary_keys"]["lines"]["duplicates"] == 0


def test_a_composite_primary_key_duplicate_and_null_are_caught() -> None:
    frames = lines_and_shipments()
    frames["lines"].loc[4, "line_no"] = 2  # (2, 2) twice
    frames["lines"] = pd.concat(
        [frames["lines"], pd.DataFrame({"order_id": [3], "line_no": [None]})], ignore_index=True
    )  # a NULL in the second key column only
    report = check_integrity(frames, lines_set(frames))
    key = report["primary_keys"]["lines"]
    assert (key["duplicates"], key["nulls"], key["passed"]) == (1, 1, False)
    assert report["passed"] is False
    assert any("lines(order_id, line_no)" in f for f in report["failures"])


def test_a_composite_foreign_key_orphan_is_caught() -> None:
    frames = lines_and_shipments()
    # order 1 exists, line 3 exists (of order 2), but the tuple (1, 3) does not
    frames["shipments"].loc[3, ["order_id", "line_no"]] = [1, 3]
    report = check_integrity(frames, lines_set(frames))
    rel = report["relationships"][0]
    assert (rel["orphans"], rel["nulls"], rel["passed"]) == (1, 0, False)
    assert rel["integrity"] == pytest.approx(0.75)
    assert report["score"] == pytest.approx(0.75)
    assert report["passed"] is False


# -- NULL foreign keys -------------------------------------------------------------------------
COUPON_REL = Relationship("coupons", ("id",), "orders", ("coupon_id",))


def orders_with_coupons() -> dict[str, pd.DataFrame]:
    return {
        "coupons": pd.DataFrame({"id": [1, 2]}),
        "orders": pd.DataFrame({"oid": [1, 2, 3, 4], "coupon_id": [1, None, 2, None]}),
    }


def coupons_set(frames: dict[str, pd.DataFrame]) -> TableSet:
    return make_set(frames, {"coupons": ("id",), "orders": ("oid",)}, [COUPON_REL])


def test_a_null_foreign_key_fails_where_the_relationship_is_not_nullable() -> None:
    frames = orders_with_coupons()
    report = check_integrity(frames, coupons_set(frames))  # nothing nullable by default
    rel = report["relationships"][0]
    assert (rel["nulls"], rel["allowed_nulls"], rel["nullable"]) == (2, 0, False)
    assert rel["integrity"] == pytest.approx(0.5)
    assert report["passed"] is False


@pytest.mark.parametrize(
    "nullable",
    [
        {"orders.coupon_id -> coupons.id"},
        ["orders.coupon_id->coupons.id"],  # spelled loosely, read as the same relationship
        [COUPON_REL],
        {"orders.coupon_id -> coupons.id": True},
    ],
)
def test_a_null_foreign_key_passes_where_the_relationship_is_nullable(nullable: object) -> None:
    frames = orders_with_coupons()
    report = check_integrity(frames, coupons_set(frames), nullable_foreign_keys=nullable)
    rel = report["relationships"][0]
    assert (rel["nulls"], rel["allowed_nulls"], rel["nullable"]) == (2, 2, True)
    assert rel["integrity"] == 1.0
    assert report["passed"] is True
    assert report["score"] == 1.0


def test_nullable_relationships_come_from_the_real_child_rows() -> None:
    frames = orders_with_coupons()
    table_set = coupons_set(frames)
    assert nullable_relationships(frames, table_set) == {"orders.coupon_id -> coupons.id"}
    frames["orders"]["coupon_id"] = [1, 2, 2, 1]
    assert nullable_relationships(frames, table_set) == set()
    assert check_integrity(frames, table_set, {"orders.coupon_id -> coupons.id": False})["passed"]


def test_a_partly_null_composite_foreign_key_always_fails() -> None:
    frames = lines_and_shipments()
    frames["shipments"]["order_id"] = frames["shipments"]["order_id"].astype(float)
    frames["shipments"].loc[0, "order_id"] = None  # (NULL, 1): half a key
    frames["shipments"].loc[1, ["order_id", "line_no"]] = [None, None]  # wholly NULL: optional
    report = check_integrity(frames, lines_set(frames), nullable_foreign_keys=[SHIP_REL])
    rel = report["relationships"][0]
    assert (rel["nulls"], rel["allowed_nulls"], rel["partial_nulls"]) == (2, 1, 1)
    assert rel["passed"] is False and report["passed"] is False


def test_an_unknown_nullable_relationship_is_named() -> None:
    frames = orders_with_coupons()
    with pytest.raises(ValueError, match="orders.user_id -> users.id"):
        check_integrity(frames, coupons_set(frames), ["orders.user_id -> users.id"])


# -- self-reference ----------------------------------------------------------------------------
MANAGER_REL = Relationship("employees", ("id",), "employees", ("manager_id",))


def employees() -> dict[str, pd.DataFrame]:
    return {
        "employees": pd.DataFrame(
            {
                "id": [1, 2, 3, 4, 5],
                "manager_id": [None, 1, 1, 2, 2],
                "hired": pd.to_datetime(
                    ["2010-01-01", "2012-03-01", "2013-06-01", "2015-01-01", "2016-01-01"]
                ),
            }
        )
    }


def test_a_self_reference_is_checked_and_its_root_may_be_null() -> None:
    frames = employees()
    table_set = make_set(frames, {"employees": ("id",)}, [MANAGER_REL])
    strict = check_integrity(frames, table_set)
    assert strict["passed"] is False  # the root's NULL manager, not declared optional
    nullable = nullable_relationships(frames, table_set)
    report = check_integrity(frames, table_set, nullable)
    rel = report["relationships"][0]
    assert rel["self_reference"] is True and report["passed"] is True
    frames["employees"].loc[4, "manager_id"] = 99  # reports to nobody in the table
    broken = check_integrity(frames, table_set, nullable)["relationships"][0]
    assert (broken["orphans"], broken["passed"]) == (1, False)
    counts = children_per_parent(employees(), employees(), table_set)["relationships"][0]
    # employees 1 and 2 manage two each, 3, 4 and 5 nobody
    assert counts["real"]["zero_share"] == 0.6 and counts["distance"] == 0.0


# -- children per parent -----------------------------------------------------------------------
ORDERS_REL = Relationship("customers", ("cid",), "orders", ("customer_id",))


def with_children(per_parent: list[int], extra: dict[str, np.ndarray] | None = None) -> dict:
    customers = pd.DataFrame({"cid": np.arange(len(per_parent)), **(extra or {})})
    owner = np.repeat(np.arange(len(per_parent)), per_parent)
    orders = pd.DataFrame({"oid": np.arange(len(owner)), "customer_id": owner})
    return {"customers": customers, "orders": orders}


def orders_set(frames: dict[str, pd.DataFrame]) -> TableSet:
    return make_set(frames, {"customers": ("cid",), "orders": ("oid",)}, [ORDERS_REL])


def test_three_or_five_children_versus_four_is_caught_by_the_distance() -> None:
    """The issue's example: mean, median and p90 agree, the shape does not."""
    real = with_children([3] * 988 + [4] * 24 + [5] * 988)  # 4 children: 1.2%
    synthetic = with_children([3] * 683 + [4] * 634 + [5] * 683)  # 4 children: 31.7%
    report = children_per_parent(real, synthetic, orders_set(real))
    rel = report["relationships"][0]
    for stat in ("mean", "median", "p90"):
        assert rel["real"][stat] == rel["synthetic"][stat], stat
    four = next(b for b in rel["buckets"] if b["label"] == "4")
    assert (four["real"], four["synthetic"]) == (pytest.approx(0.012), pytest.approx(0.317))
    assert rel["distance"] == pytest.approx(0.305, abs=1e-6)
    assert report["distance"] == rel["distance"]
    same = children_per_parent(real, real, orders_set(real))["relationships"][0]
    assert same["distance"] == 0.0


def test_zero_children_and_the_long_tail_have_their_buckets() -> None:
    counts = [0] * 300 + [1] * 400 + [2] * 290 + [50] * 5 + [5000] * 5
    real = with_children(counts)
    rel = children_per_parent(real, real, orders_set(real))["relationships"][0]
    labels = [b["label"] for b in rel["buckets"]]
    assert labels[0] == "0" and rel["buckets"][0]["real"] == pytest.approx(0.3)
    assert labels[-1].startswith(">= ") and "5000" not in labels[-1]  # no real maximum
    assert rel["buckets"][-1]["real"] == pytest.approx(0.01)
    assert len(labels) <= 33


# -- parent attribute <-> number of children ---------------------------------------------------
def linked_customers(seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = 600
    age = rng.integers(18, 80, n)
    tier = rng.choice(["basic", "plus", "premium"], n, p=[0.5, 0.3, 0.2])
    rate = age / 15 + np.select([tier == "premium", tier == "plus"], [4.0, 2.0], 0.0)
    return with_children(list(rng.poisson(rate)), {"age": age, "tier": tier})


def test_a_parent_attribute_link_that_a_shuffle_loses_is_caught() -> None:
    real = linked_customers()
    table_set = orders_set(real)
    kept = parent_child_count_links(real, real, table_set)
    by_column = {link["column"]: link for link in kept["links"]}
    assert set(by_column) == {"age", "tier"}  # the key cid is never measured
    assert by_column["age"]["measure"] == "spearman" and by_column["age"]["real"] > 0.4
    assert by_column["tier"]["measure"] == "correlation_ratio"
    assert by_column["tier"]["real"] > 0.3
    assert kept["score"] == 1.0
    assert {c["category"] for c in by_column["tier"]["categories"]} == {
        "basic",
        "plus",
        "premium",
    }
    rng = np.random.default_rng(1)
    shuffled = {name: frame.copy() for name, frame in real.items()}
    for column in ("age", "tier"):  # same marginals, same children histogram, no link
        shuffled["customers"][column] = rng.permutation(shuffled["customers"][column].to_numpy())
    lost = parent_child_count_links(real, shuffled, table_set)
    assert lost["score"] < 0.35
    for link in lost["links"]:
        assert link["strong"] and link["preserved"] < 0.5, link
    assert children_per_parent(real, shuffled, table_set)["distance"] == 0.0
    only = parent_child_count_links(real, shuffled, table_set, columns={"customers": ["tier"]})
    assert [link["column"] for link in only["links"]] == ["tier"]


# -- cross-table orderings ---------------------------------------------------------------------
def signups_and_orders(seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = 400
    signup = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="D")
    customers = pd.DataFrame({"cid": np.arange(n), "signup_date": signup, "credit": 100.0})
    owner = rng.integers(0, n, 2000)
    gaps = pd.to_timedelta(rng.integers(1, 400, len(owner)), unit="D")
    orders = pd.DataFrame(
        {
            "oid": np.arange(len(owner)),
            "customer_id": owner,
            "order_date": signup[owner] + gaps,
            "amount": rng.gamma(2.0, 40.0, len(owner)),
        }
    )
    return {"customers": customers, "orders": orders}


def test_a_cross_table_ordering_is_found_measured_and_repaired_without_a_spike() -> None:
    real = signups_and_orders()
    table_set = orders_set(real)
    rules = discover_cross_table_orderings(real, table_set)
    assert [r.id for r in rules] == ["orders.order_date >= customers.signup_date"]
    rule = rules[0]
    assert rule.kind == "datetime" and rule.step == 86_400e9 and rule.support == 2000
    assert CrossTableOrdering.from_dict(rule.to_dict(with_gaps=True)) == rule
    assert "gap_quantiles" not in rule.to_dict()  # reports carry no gaps
    assert cross_table_hold_rates(rules, real, table_set)["held"] == 1.0

    # a set engine that ignores the join: order dates drawn without looking at the parent
    rng = np.random.default_rng(3)
    synthetic = {name: frame.copy() for name, frame in real.items()}
    synthetic["orders"]["order_date"] = rng.permutation(real["orders"]["order_date"].to_numpy())
    measured = cross_table_hold_rates(rules, synthetic, table_set)
    broken = measured["rules"][0]["violations"]
    assert broken > 200 and measured["held"] < 0.9
    assert measured["rules"][0]["rows"] == 2000

    repaired = repair_cross_table_orderings(
        synthetic["orders"], synthetic["customers"], ORDERS_REL, rules, rng
    )
    fixed = {**synthetic, "orders": repaired}
    assert cross_table_hold_rates(rules, fixed, table_set)["held"] == 1.0
    assert repaired["order_date"].dtype == real["orders"]["order_date"].dtype
    assert (repaired["order_date"] == repaired["order_date"].dt.normalize()).all()  # dates
    changed = repaired["order_date"] != synthetic["orders"]["order_date"]
    assert changed.sum() == broken  # only the broken rows move
    signup = synthetic["customers"]["signup_date"].to_numpy()[repaired["customer_id"]]
    gap_days = (repaired["order_date"].to_numpy() - signup)[changed.to_numpy()] / np.timedelta64(
        1, "D"
    )
    assert (gap_days == 0).mean() < 0.02  # clamping would put every repaired row here
    real_gaps = (real["orders"]["order_date"].to_numpy() - signup) / np.timedelta64(1, "D")
    assert np.median(gap_days) == pytest.approx(np.median(real_gaps), rel=0.15)


def test_an_ordering_the_marginals_imply_is_not_a_cross_table_rule() -> None:
    real = signups_and_orders()
    real["orders"]["order_date"] = pd.Timestamp("2030-01-01")  # after every sign-up anyway
    assert discover_cross_table_orderings(real, orders_set(real)) == []


def test_a_self_reference_ordering_is_repaired_down_the_hierarchy() -> None:
    rng = np.random.default_rng(0)
    n = 200
    manager = np.concatenate([[-1], rng.integers(0, np.arange(1, n))]).astype(float)
    hired = np.zeros(n, dtype=np.int64)
    for i in range(1, n):  # each hired 1..500 days after their manager
        hired[i] = hired[int(manager[i])] + rng.integers(1, 500)
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "manager_id": np.where(manager < 0, np.nan, manager),
            "hired_day": hired,
        }
    )
    real = {"employees": frame}
    table_set = make_set(real, {"employees": ("id",)}, [MANAGER_REL])
    rules = discover_cross_table_orderings(real, table_set)
    assert [r.id for r in rules] == ["employees.hired_day >= employees.hired_day"]
    assert rules[0].kind == "integer" and rules[0].step == 1.0
    shuffled = frame.assign(hired_day=rng.permutation(hired))
    assert cross_table_hold_rates(rules, {"employees": shuffled}, table_set)["held"] < 0.9
    repaired = repair_cross_table_orderings(shuffled, shuffled, MANAGER_REL, rules, rng)
    assert cross_table_hold_rates(rules, {"employees": repaired}, table_set)["held"] == 1.0
    assert repaired["hired_day"].dtype == np.int64


# -- the set report ----------------------------------------------------------------------------
def test_the_set_report_escapes_every_name_and_shows_no_cell_value() -> None:
    evil_table, evil_column = "<script>alert(1)</script>", "<img src=x onerror=alert(2)>"
    real = signups_and_orders()
    real["customers"]["cid"] = [f"SECRET-KEY-{i}" for i in range(len(real["customers"]))]
    real["orders"]["customer_id"] = real["customers"]["cid"].to_numpy()[
        real["orders"]["customer_id"]
    ]
    real["customers"][evil_column] = np.where(np.arange(400) % 2 == 0, "SECRETCAT", "OTHERCAT")
    real[evil_table] = real.pop("orders")
    rel = Relationship("customers", ("cid",), evil_table, ("customer_id",))
    table_set = make_set(real, {"customers": ("cid",), evil_table: ("oid",)}, [rel])
    rules = discover_cross_table_orderings(real, table_set)
    assert rules
    page = render_set_report(
        title=f"set {evil_table}",
        integrity=check_integrity(real, table_set),
        children=children_per_parent(real, real, table_set),
        links=parent_child_count_links(real, real, table_set),
        orderings=cross_table_hold_rates(rules, real, table_set),
        settings={"dataset": evil_table, "seed": 1},
        table_reports={evil_table: f"{evil_table}/report.html", "customers": "javascript:x()"},
    )
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert 'href="javascript:' not in page
    for value in ("SECRET-KEY", "SECRETCAT", "OTHERCAT", "2020-0"):
        assert value not in page, value
    assert page.count("<svg") == 1  # one children-per-parent plot per relationship
    assert "Content-Security-Policy" in page
