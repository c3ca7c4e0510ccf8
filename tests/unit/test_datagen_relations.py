"""Relational shapes of the spec-driven generator, and the stress spec that has them all.

Composite primary keys, per-parent sequences, composite foreign keys, link tables,
self-referencing hierarchies, nullable foreign keys and child dates after parent dates:
each is generated, then checked on the rows (across block boundaries where it matters),
and each check is shown to catch the bug it is there for.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_synth.datagen import (
    GENERATOR_VERSION,
    SpecError,
    answer_key,
    assert_integrity,
    check_truths,
    generate,
    generate_tables,
    integrity_problems,
    load_spec,
    parse_spec,
)
from airflow_synth.datagen.generate import BLOCK_ROWS, _TableMaker

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
STRESS = REPO / "specs" / "stress.yaml"


def shop(
    customers: int = 300,
    parts: int = 50,
    suppliers: int = 12,
    suppliers_per_part: int = 4,
    employees: int = 40,
) -> dict[str, Any]:
    """A small spec with every new shape: sequences, a link table, a composite FK, a
    hierarchy with string ids, a nullable FK and dates after the parent's date."""
    return {
        "name": "shop",
        "tables": {
            "customers": {
                "rows": customers,
                "columns": {
                    "id": {"type": "id"},
                    "signup": {"type": "date", "start": "2022-01-01", "end": "2022-12-31"},
                },
            },
            "employees": {
                "rows": employees,
                "columns": {
                    "id": {"type": "id", "format": "random_string", "length": 8},
                    "manager_id": {
                        "type": "reference",
                        "references": "employees.id",
                        "roots": 3,
                    },
                },
            },
            "orders": {
                "rows": {
                    "per": "customers",
                    "via": "customer_id",
                    "counts": {"distribution": "poisson", "mean": 3, "zero_share": 0.1},
                },
                "columns": {
                    "id": {"type": "id", "start": 100},
                    "customer_id": {"type": "reference", "references": "customers.id"},
                    "clerk_id": {
                        "type": "reference",
                        "references": "employees.id",
                        "null_share": 0.3,
                    },
                    "channel": {
                        "type": "categorical",
                        "values": {"online": 1.0},
                        "when": {"column": "clerk_id", "is_null": True},
                        "otherwise": "store",
                    },
                    "ordered": {
                        "type": "date",
                        "from": "customers.signup",
                        "plus_days": {
                            "distribution": {"name": "exponential", "scale": 40},
                            "round": "floor",
                            "clip": [0, 365],
                        },
                    },
                },
            },
            "part": {"rows": parts, "columns": {"id": {"type": "id"}}},
            "supplier": {"rows": suppliers, "columns": {"id": {"type": "id", "start": 500}}},
            "partsupp": {
                "rows": {
                    "per": "part",
                    "via": "part_id",
                    "counts": {
                        "distribution": "explicit",
                        "values": {suppliers_per_part: 1.0},
                    },
                },
                "primary_key": ["part_id", "supplier_id"],
                "columns": {
                    "part_id": {"type": "reference", "references": "part.id"},
                    "supplier_id": {
                        "type": "reference",
                        "references": "supplier.id",
                        "distinct_per": "part_id",
                        "popularity": {"name": "zipf", "exponent": 1.2},
                    },
                },
            },
            "lineitem": {
                "rows": {
                    "per": "orders",
                    "via": "order_id",
                    "counts": {"distribution": "poisson", "mean": 2.5, "min": 1},
                },
                "primary_key": ["order_id", "line_number"],
                "columns": {
                    "order_id": {"type": "reference", "references": "orders.id"},
                    "line_number": {"type": "sequence", "per": "order_id"},
                    "ps": {
                        "type": "reference",
                        "references": ["partsupp.part_id", "partsupp.supplier_id"],
                        "into": ["part_id", "supplier_id"],
                        "popularity": {"name": "zipf", "exponent": 1.1},
                    },
                    "shipped": {
                        "type": "date",
                        "from": "orders.ordered",
                        "plus_days": {
                            "distribution": {"name": "uniform", "low": 0, "high": 30},
                            "round": "floor",
                        },
                    },
                },
            },
            "history": {
                "rows": {
                    "per": "employees",
                    "via": "employee_id",
                    "counts": {"distribution": "explicit", "values": {0: 0.2, 3: 0.5, 5: 0.3}},
                },
                "primary_key": ["employee_id", "year"],
                "columns": {
                    "employee_id": {"type": "reference", "references": "employees.id"},
                    "year": {"type": "sequence", "per": "employee_id", "start": 2015},
                },
            },
        },
    }


def digest(frames: dict[str, pd.DataFrame]) -> str:
    h = hashlib.sha256()
    for name, frame in frames.items():
        h.update(name.encode())
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return generate_tables(parse_spec(shop()), seed=7)


# --- each shape on the rows -----------------------------------------------------------------


def test_composite_key_with_a_sequence_is_unique_and_consecutive_across_blocks() -> None:
    spec = parse_spec(shop(customers=30_000))
    lineitem = generate_tables(spec, seed=3)["lineitem"]
    assert len(lineitem) > 2 * BLOCK_ROWS  # three blocks at least: their seams are tested
    assert not lineitem.duplicated(["order_id", "line_number"]).any()
    per_order = lineitem.groupby("order_id")["line_number"].agg(["min", "max", "count"])
    assert (per_order["min"] == 1).all()
    assert (per_order["max"] == per_order["count"]).all()  # 1..n, no gap, no repeat
    assert lineitem["line_number"].dtype == np.int64


def test_a_sequence_counts_from_its_declared_start(tables: dict[str, pd.DataFrame]) -> None:
    history = tables["history"]
    years = history.groupby("employee_id")["year"].agg(["min", "max", "count"])
    assert (years["min"] == 2015).all()
    assert (years["max"] - years["min"] + 1 == years["count"]).all()
    assert set(years["count"]) <= {3, 5}  # explicit counts; employees with 0 have no rows


def test_a_link_table_holds_distinct_pairs_and_k_parents_each(
    tables: dict[str, pd.DataFrame],
) -> None:
    partsupp, supplier = tables["partsupp"], tables["supplier"]
    assert len(partsupp) == 50 * 4
    assert not partsupp.duplicated(["part_id", "supplier_id"]).any()
    assert (partsupp.groupby("part_id")["supplier_id"].nunique() == 4).all()
    assert partsupp["supplier_id"].isin(supplier["id"]).all()
    # Zipf popularity still shows through the distinctness: the top supplier serves more.
    share = partsupp["supplier_id"].value_counts(normalize=True)
    assert share.iloc[0] > 2 / 12


def test_a_link_table_can_take_every_other_parent() -> None:
    # k equal to the number of suppliers: redrawing repeats alone cannot settle it, the
    # per-parent draw without replacement has to.
    spec = parse_spec(shop(parts=30, suppliers=6, suppliers_per_part=6))
    partsupp = generate_tables(spec, seed=1)["partsupp"]
    assert (partsupp.groupby("part_id")["supplier_id"].nunique() == 6).all()
    assert not partsupp.duplicated(["part_id", "supplier_id"]).any()


def test_a_composite_reference_points_at_existing_parent_pairs(
    tables: dict[str, pd.DataFrame],
) -> None:
    lineitem, partsupp = tables["lineitem"], tables["partsupp"]
    pairs = set(map(tuple, partsupp[["part_id", "supplier_id"]].to_numpy().tolist()))
    drawn = list(map(tuple, lineitem[["part_id", "supplier_id"]].to_numpy().tolist()))
    assert drawn and all(pair in pairs for pair in drawn)
    assert "ps" not in lineitem.columns  # the entry's own name is a label, not a column
    assert lineitem["part_id"].dtype == np.int64


def test_a_self_reference_is_a_hierarchy_of_earlier_rows() -> None:
    spec = parse_spec(shop(customers=10, employees=BLOCK_ROWS + 5_000))
    [(_, employees)] = generate(spec, seed=2, tables=["employees"], batch_rows=1 << 30)
    position = pd.Series(np.arange(len(employees)), index=employees["id"])
    manager = employees["manager_id"]
    assert manager.iloc[:3].isna().all() and manager.iloc[3:].notna().all()  # roots: 3
    manager_row = position.reindex(manager.iloc[3:]).to_numpy()
    assert not np.isnan(manager_row).any()  # every manager exists ...
    assert (manager_row < np.arange(3, len(employees))).all()  # ... and came earlier
    assert integrity_problems(spec, {"employees": employees}) == []


def test_a_nullable_reference_has_its_share_of_nulls_and_no_dangling_id(
    tables: dict[str, pd.DataFrame],
) -> None:
    orders, employees = tables["orders"], tables["employees"]
    clerk = orders["clerk_id"]
    assert 0.22 < clerk.isna().mean() < 0.38
    assert clerk.dropna().isin(employees["id"]).all()
    # `is_null` conditions see the NULLs: online orders are exactly those without a clerk.
    assert ((orders["channel"] == "online") == clerk.isna()).all()


def test_child_dates_never_precede_the_parent_date(tables: dict[str, pd.DataFrame]) -> None:
    orders = tables["orders"].merge(
        tables["customers"], left_on="customer_id", right_on="id", suffixes=("", "_c")
    )
    assert (orders["ordered"] >= orders["signup"]).all()
    assert (orders["ordered"] > orders["signup"]).any()
    lines = tables["lineitem"].merge(tables["orders"], left_on="order_id", right_on="id")
    assert (lines["shipped"] >= lines["ordered"]).all()


def test_new_shapes_are_deterministic_and_independent_of_the_batch_size() -> None:
    spec = parse_spec(shop(customers=2_000))
    reference = digest(generate_tables(spec, seed=5))
    frames: dict[str, list[pd.DataFrame]] = {}
    for name, frame in generate(spec, seed=5, batch_rows=997):
        frames.setdefault(name, []).append(frame)
    assert digest({n: pd.concat(f, ignore_index=True) for n, f in frames.items()}) == reference
    assert digest(generate_tables(spec, seed=6)) != reference


def test_the_existing_example_specs_generate_what_they_did() -> None:
    # Pinned: the relational features must not move a single row of the existing specs.
    # If a change is meant to, bump GENERATOR_VERSION (seeded databases reload) and re-pin.
    assert GENERATOR_VERSION == "datagen-1"
    shop_spec = load_spec(REPO / "specs" / "ecommerce.yaml")
    assert digest(generate_tables(shop_spec, seed=1, rows={"customers": 800})) == (
        "95e5be5a8d3acd8e3656a163325ac4dfb0b37f8bce91b2d408256519778a4cde"
    )


# --- the checks catch what they are for -----------------------------------------------------


def test_the_generator_refuses_a_repeated_composite_key(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_sequence(self, column, block, rng) -> np.ndarray:  # type: ignore[no-untyped-def]
        return np.ones(block.n, dtype=np.int64)

    monkeypatch.setattr(_TableMaker, "_make_sequence", broken_sequence)
    with pytest.raises(ValueError, match=r"composite primary key \(order_id, line_number\)"):
        generate_tables(parse_spec(shop()), seed=1)


def test_integrity_problems_finds_each_planted_break(tables: dict[str, pd.DataFrame]) -> None:
    spec = parse_spec(shop())
    assert integrity_problems(spec, tables) == []

    def planted(table: str, change) -> list[str]:  # type: ignore[no-untyped-def]
        frames = dict(tables)
        frames[table] = frames[table].copy()
        change(frames[table])
        return integrity_problems(spec, frames)

    def duplicate_pair(f: pd.DataFrame) -> None:
        f.loc[1, "supplier_id"] = f.loc[0, "supplier_id"]

    def gap(f: pd.DataFrame) -> None:
        f.loc[f["line_number"] == 2, "line_number"] = 9

    def dangling_pair(f: pd.DataFrame) -> None:
        f.loc[0, "supplier_id"] = 99_999

    def cycle(f: pd.DataFrame) -> None:
        f.loc[0, "manager_id"] = f.loc[10, "id"]  # a root now reports to its own report

    def dangling_clerk(f: pd.DataFrame) -> None:
        f.loc[f["clerk_id"].notna().idxmax(), "clerk_id"] = "nobody01"

    found = {
        "partsupp": planted("partsupp", duplicate_pair),
        "lineitem gap": planted("lineitem", gap),
        "lineitem fk": planted("lineitem", dangling_pair),
        "employees": planted("employees", cycle),
        "orders": planted("orders", dangling_clerk),
    }
    assert "primary key (part_id, supplier_id) repeats in 1 rows" in " ".join(found["partsupp"])
    assert "lineitem.line_number: not 1, 2, ..." in " ".join(found["lineitem gap"])
    assert "-> partsupp.(part_id, supplier_id): 1 rows point at no parent row" in " ".join(
        found["lineitem fk"]
    )
    assert "employees.manager_id" in " ".join(found["employees"])
    assert "cycle" in " ".join(found["employees"])
    assert "orders.(clerk_id) -> employees.(id): 1 rows" in " ".join(found["orders"])
    with pytest.raises(AssertionError, match="integrity problem"):
        assert_integrity(spec, {**tables, "partsupp": tables["partsupp"].iloc[[0, 0]]})


# --- validation -----------------------------------------------------------------------------


def changed(path: list[str], value: Any, **sizes: int) -> dict:
    spec = shop(**sizes)
    target: Any = spec
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return spec


LINE = ["tables", "lineitem"]
LINE_COLUMNS = [*LINE, "columns"]
PS_COLUMNS = ["tables", "partsupp", "columns"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            changed([*LINE, "primary_key"], ["order_id", "part_id"]),
            r"table 'lineitem': primary_key 'part_id' is not a column",
        ),
        (
            changed(
                [*LINE_COLUMNS, "line_number"],
                {"type": "integer", "distribution": {"name": "constant", "value": 1}},
            ),
            r"column 'line_number' \(integer\) cannot be part of a composite key",
        ),
        (
            changed([*PS_COLUMNS, "supplier_id", "distinct_per"], KeyError),
            r"\(part_id, supplier_id\) is not unique by construction",
        ),
        (
            changed([*LINE_COLUMNS, "line_number", "per"], "ps"),
            r"column 'line_number': `per: ps` must be the column the table's rows are counted by",
        ),
        (
            changed([*LINE_COLUMNS, "line_number", "per"], KeyError),
            r"column 'line_number': a sequence needs `per: <reference column>`",
        ),
        (
            changed([*LINE_COLUMNS, "line_number", "start"], "one"),
            r"`start:` must be a whole number",
        ),
        (
            changed([*LINE_COLUMNS, "ps", "references"], ["partsupp.part_id", "part.id"]),
            r"column 'ps': a composite reference points at one table",
        ),
        (
            changed([*LINE_COLUMNS, "ps", "references"], ["partsupp.part_id", "partsupp.x"]),
            r"references \(partsupp.part_id, partsupp.x\), which is not the composite primary",
        ),
        (
            changed([*LINE_COLUMNS, "ps"], {"type": "reference", "references": "partsupp.part_id"}),
            r"'partsupp' has a composite primary key \(part_id, supplier_id\); reference all",
        ),
        (
            changed([*LINE_COLUMNS, "ps", "into"], ["part_id"]),
            r"`into:` must list 2 different column names",
        ),
        (
            changed([*LINE_COLUMNS, "ps", "into"], ["order_id", "supplier_id"]),
            r"column 'ps': writes column 'order_id', which 'order_id' writes too",
        ),
        (
            changed([*PS_COLUMNS, "supplier_id", "distinct_per"], "supplier_id"),
            r"`distinct_per: supplier_id` must be the column the table's rows are counted by",
        ),
        (
            changed(["tables", "partsupp", "rows", "counts", "values"], {13: 1.0}),
            r"up to 13 partsupp rows per part need as many distinct supplier rows, but "
            r"'supplier' has 12",
        ),
        (
            changed(
                ["tables", "employees", "columns", "manager_id", "popularity"],
                {"name": "zipf", "exponent": 1.0},
            ),
            r"column 'manager_id': a self-reference \(a hierarchy\) picks a uniform earlier row",
        ),
        (
            changed(["tables", "employees", "columns", "manager_id", "roots"], 0),
            r"`roots:` is the number of top rows \(>= 1\), got 0",
        ),
        (
            changed(["tables", "orders", "columns", "clerk_id", "roots"], 2),
            r"column 'clerk_id': `roots:` is for a reference to the column's own table",
        ),
        (
            changed(["tables", "orders", "columns", "clerk_id", "null_share"], 1.5),
            r"column 'clerk_id', null_share: must be between 0 and 1",
        ),
        (
            changed(["tables", "orders", "columns", "customer_id", "null_share"], 0.1),
            r"table 'orders', rows: via 'customer_id' must be a plain, non-NULL reference",
        ),
        (
            changed([*PS_COLUMNS, "part_id", "null_share"], 0.1),
            r"table 'partsupp', rows: via 'part_id' must be a plain, non-NULL reference",
        ),
    ],
)
def test_invalid_relational_specs_name_what_to_fix(spec: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(spec, source="bad.yaml")


def test_a_link_table_too_wide_for_the_requested_size_fails_before_generating() -> None:
    spec = parse_spec(shop())  # 4 suppliers per part, 12 suppliers: fine at its own size
    with pytest.raises(SpecError, match=r"column 'supplier_id'.*'supplier' has only 3 rows"):
        answer_key(spec, rows={"supplier": 3})
    with pytest.raises(SpecError, match="has only 3 rows"):
        next(iter(generate(spec, rows={"supplier": 3})))


def test_the_null_in_a_composite_key_is_refused() -> None:
    spec = shop()
    spec["tables"]["history"]["primary_key"] = ["employee_id", "year", "note"]
    spec["tables"]["history"]["columns"]["note"] = {
        "type": "reference",
        "references": "customers.id",
        "null_share": 0.5,
    }
    with pytest.raises(SpecError, match=r"column 'note' can be NULL"):
        parse_spec(copy.deepcopy(spec))


# --- the stress spec ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stress() -> tuple[Any, dict[str, pd.DataFrame]]:
    spec = load_spec(STRESS)
    return spec, generate_tables(spec, seed=42)


def depth(spec: Any, table: str) -> int:
    """Longest chain of foreign keys above ``table`` (a root table has depth 0)."""
    parents = [
        c.parent_table
        for c in spec.tables[table].columns.values()
        if c.type == "reference" and not c.is_self_reference
    ]
    return max((1 + depth(spec, p) for p in parents), default=0)


def test_the_stress_spec_has_every_relational_shape(stress) -> None:  # type: ignore[no-untyped-def]
    spec, _ = stress
    tables = spec.tables
    assert len(tables) >= 8
    assert depth(spec, "lineitem") >= 4  # region -> nation -> customers -> orders -> lineitem
    references = [c for t in tables.values() for c in t.columns.values() if c.type == "reference"]
    assert (
        len({c.parent_table for c in tables["lineitem"].columns.values() if c.type == "reference"})
        >= 2
    )
    assert any(c.is_composite for c in references)
    assert any(c.is_self_reference for c in references)
    assert any(c.options.get("null_share") for c in references)
    assert any("distinct_per" in c.options for c in references)
    assert tables["partsupp"].key_columns == ("part_id", "supplier_id")
    assert tables["lineitem"].key_columns == ("order_id", "line_number")
    assert any(
        c.type == "sequence" and c.options["start"] != 1
        for t in tables.values()
        for c in t.columns.values()
    )
    related = {c.table for c in references} | {c.parent_table for c in references}
    assert set(tables) - related == {"holidays"}


def test_the_stress_spec_is_small_intact_and_honours_its_truths(stress) -> None:  # type: ignore[no-untyped-def]
    spec, frames = stress
    sizes = {name: len(frame) for name, frame in frames.items()}
    assert sizes["region"] == 5 and sizes["nation"] == 25 and sizes["customers"] == 600
    assert 1_500 <= sizes["orders"] <= 2_100 and 4_500 <= sizes["lineitem"] <= 5_500
    assert sizes["part"] == 200 and sizes["supplier"] == 40 and sizes["partsupp"] == 800
    assert sizes["employees"] == 60 and sizes["holidays"] == 30
    assert sum(sizes.values()) < 10_000
    assert_integrity(spec, frames)
    assert sorted(frames["region"]["name"]) == [
        "AFRICA",
        "AMERICA",
        "ASIA",
        "EUROPE",
        "MIDDLE EAST",
    ]
    orders = frames["orders"]
    assert 0.15 < orders["clerk_id"].isna().mean() < 0.35
    assert 0.6 < (orders["discount_amount"] == 0).mean() < 0.8  # zero-inflated
    key = answer_key(spec)
    customers = frames["customers"].assign(
        orders_per_customer=orders["customer_id"]
        .value_counts()
        .reindex(frames["customers"]["id"], fill_value=0)
        .to_numpy()
    )
    assert check_truths(
        customers, key, only=["customers_rows", "segment_shares", "vip_rate", "orders_per_customer"]
    ).ok
    lines = frames["lineitem"]["order_id"].value_counts()
    orders = orders.assign(lines_per_order=lines.reindex(orders["id"], fill_value=0).to_numpy())
    assert check_truths(orders, key, only=["order_status_shares", "lines_per_order"]).ok
    # child dates after parent dates, down the chain
    joined = orders.merge(frames["customers"], left_on="customer_id", right_on="id")
    assert (joined["order_date"] >= joined["signup_date"]).all()
    lineitem = frames["lineitem"].merge(orders, left_on="order_id", right_on="id")
    assert (lineitem["ship_date"] > lineitem["order_date"]).all()
    assert (lineitem["receipt_date"] > lineitem["ship_date"]).all()
    # the line status follows the order's status
    assert (lineitem.loc[lineitem["status"] == "F", "line_status"] == "F").all()
