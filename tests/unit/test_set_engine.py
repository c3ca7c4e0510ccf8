"""The per-table set engine on a schema HMA refuses: composite keys, depth, several parents,
a link table, a self-reference, an optional parent and a table with no relationship.

GaussianCopula per table keeps these fast (a few seconds); the assertions are about what
ties tables together: unique keys, every foreign key pointing at a synthetic parent,
sequences, children per parent, and the parent's attributes steering the count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_synth.core.engine.set_engine import SetSynthesizer
from airflow_synth.core.engine.set_plan import TablePlan, plan_tables
from airflow_synth.core.engine.synthesizers import resolve_synthesizer
from airflow_synth.core.relations import TableShape, build_table_set
from airflow_synth.core.steps import classify_set

pytestmark = pytest.mark.unit

RELATIONSHIPS = [
    "nations.region_id -> regions.id",
    "customers.nation_id -> nations.id",
    "orders.customer_id -> customers.id",
    "orders.clerk_id -> staff.id",
    "staff.manager_id -> staff.id",
    "partsupp.part_id -> parts.id",
    "partsupp.supplier_id -> suppliers.id",
    "lines.order_id -> orders.id",
    "lines.part_id,supplier_id -> partsupp.part_id,supplier_id",
]
KEYS = {
    "regions": ("id",),
    "nations": ("id",),
    "customers": ("id",),
    "orders": ("id",),
    "staff": ("id",),
    "parts": ("id",),
    "suppliers": ("id",),
    "partsupp": ("part_id", "supplier_id"),
    "lines": ("order_id", "line_number"),
    "holidays": (),
}


def schema(seed: int = 0) -> dict[str, pd.DataFrame]:
    """A small TPC-H-like set: business customers order more, lines numbered per order."""
    rng = np.random.default_rng(seed)
    regions = pd.DataFrame({"id": [1, 2, 3], "name_code": ["EU", "AM", "AS"]})
    nations = pd.DataFrame(
        {"id": np.arange(10, 25), "region_id": rng.choice(regions["id"], 15), "tax": 0.1}
    )
    customers = pd.DataFrame(
        {
            "id": np.arange(1000, 1600),
            "nation_id": rng.choice(nations["id"], 600),
            "segment": rng.choice(["business", "consumer"], 600, p=[0.3, 0.7]),
        }
    )
    customers["signup"] = pd.Timestamp("2023-01-01") + pd.to_timedelta(
        rng.integers(0, 700, 600), unit="D"
    )
    business = customers["segment"] == "business"
    customers["credit"] = (rng.gamma(2.0, 500.0, 600) * np.where(business, 4, 1)).round(2)
    # zero on 40% of rows: the codec learns a state and keeps the other values as stand-ins
    customers["balance"] = np.where(rng.random(600) < 0.4, 0.0, rng.gamma(2.0, 77.7, 600))
    staff = pd.DataFrame({"id": np.arange(1, 41), "grade": rng.choice(["junior", "senior"], 40)})
    staff["manager_id"] = [None] + [int(rng.integers(1, i + 1)) for i in range(1, 40)]
    staff["manager_id"] = staff["manager_id"].astype("Int64")
    per_customer = np.where(customers["segment"] == "business", 6, 1) + rng.poisson(1, 600)
    orders = pd.DataFrame(
        {
            "id": np.arange(5000, 5000 + per_customer.sum()),
            "customer_id": np.repeat(customers["id"].to_numpy(), per_customer),
            "status": rng.choice(["open", "shipped", "returned"], per_customer.sum()),
        }
    )
    signup = customers.set_index("id")["signup"].reindex(orders["customer_id"]).to_numpy()
    orders["ordered"] = signup + pd.to_timedelta(rng.gamma(1.5, 20.0, len(orders)), unit="D")
    orders["clerk_id"] = pd.array(rng.choice(staff["id"], len(orders)), dtype="Int64")
    orders.loc[rng.random(len(orders)) < 0.25, "clerk_id"] = pd.NA
    parts = pd.DataFrame({"id": np.arange(1, 61), "size": rng.integers(1, 50, 60)})
    suppliers = pd.DataFrame({"id": np.arange(1, 16), "rating": rng.integers(1, 6, 15)})
    pairs = [(p, s) for p in parts["id"] for s in rng.choice(suppliers["id"], 4, replace=False)]
    partsupp = pd.DataFrame(pairs, columns=["part_id", "supplier_id"])
    partsupp["cost"] = rng.gamma(2.0, 10.0, len(partsupp)).round(2)
    per_order = rng.integers(1, 5, len(orders))
    lines = pd.DataFrame(
        {
            "order_id": np.repeat(orders["id"].to_numpy(), per_order),
            "line_number": np.concatenate([np.arange(1, n + 1) for n in per_order]),
            "quantity": rng.integers(1, 10, per_order.sum()),
        }
    )
    chosen = partsupp.iloc[rng.integers(0, len(partsupp), len(lines))]
    lines["part_id"] = chosen["part_id"].to_numpy()
    lines["supplier_id"] = chosen["supplier_id"].to_numpy()
    holidays = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=30, freq="7D")})
    holidays["closed"] = rng.random(30) < 0.5
    return {
        "regions": regions,
        "nations": nations,
        "customers": customers,
        "staff": staff,
        "orders": orders,
        "parts": parts,
        "suppliers": suppliers,
        "partsupp": partsupp,
        "lines": lines,
        "holidays": holidays,
    }


@pytest.fixture(scope="module")
def fitted() -> tuple[dict[str, pd.DataFrame], SetSynthesizer]:
    frames = schema()
    return frames, _fit_set(frames, RELATIONSHIPS, KEYS, seed=3)


@pytest.fixture(scope="module")
def sampled(fitted) -> dict[str, pd.DataFrame]:
    return fitted[1].sample(seed=5)


def test_the_plan_names_owners_sequences_and_the_link_table(fitted) -> None:
    plans = fitted[1].plans
    assert str(plans["lines"].owner) == "lines.order_id -> orders.id"
    assert [s.column for s in plans["lines"].sequences] == ["line_number"]
    assert plans["lines"].sequences[0].starts == (1,)
    assert str(plans["partsupp"].owner) == "partsupp.part_id -> parts.id"  # more rows
    assert plans["orders"].owner.parent == "customers"  # clerk_id has NULLs: optional
    assert "orders.clerk_id -> staff.id" in plans["orders"].optional
    assert plans["holidays"].owner is None and plans["holidays"].owned_keys == ()
    assert plans["customers"].owned_keys == ("id",)


def test_every_key_is_unique_composite_keys_too(sampled) -> None:
    for name, key in KEYS.items():
        if key:
            assert not sampled[name].duplicated(subset=list(key)).any(), name
            assert sampled[name][list(key)].notna().all(axis=None), name


def test_every_foreign_key_points_at_a_synthetic_parent(sampled, fitted) -> None:
    for rel in fitted[1].table_set.relationships:
        child = sampled[rel.child][list(rel.child_columns)].dropna()
        parent = sampled[rel.parent][list(rel.parent_columns)]
        child.columns = list(rel.parent_columns)
        joined = child.merge(parent.drop_duplicates(), how="left", indicator=True)
        assert (joined["_merge"] == "both").all(), str(rel)


def test_only_optional_foreign_keys_are_null_near_the_real_share(sampled, fitted) -> None:
    real = fitted[0]
    assert sampled["lines"]["order_id"].notna().all()
    real_share = real["orders"]["clerk_id"].isna().mean()
    assert abs(sampled["orders"]["clerk_id"].isna().mean() - real_share) < 0.08


def test_sequences_are_consecutive_from_the_real_start(sampled) -> None:
    lines = sampled["lines"]
    stats = lines.groupby("order_id")["line_number"].agg(["min", "max", "size"])
    assert (stats["min"] == 1).all()
    assert (stats["max"] == stats["size"]).all()


def test_the_hierarchy_has_one_root_chain_and_no_cycle(sampled) -> None:
    staff = sampled["staff"].reset_index(drop=True)
    position = {key: i for i, key in enumerate(staff["id"])}
    managers = staff["manager_id"]
    assert managers.isna().sum() >= 1
    for i, manager in enumerate(managers):
        if pd.notna(manager):
            assert position[manager] < i  # points at an earlier row: no cycle possible


def test_sizes_follow_the_real_tables_and_children_follow_the_parent(sampled, fitted) -> None:
    real = fitted[0]
    assert len(sampled["regions"]) == len(real["regions"])  # a root: its real size
    assert abs(len(sampled["customers"]) / len(real["customers"]) - 1) < 0.05  # scaled counts
    assert len(sampled["holidays"]) == len(real["holidays"])
    assert abs(len(sampled["orders"]) / len(real["orders"]) - 1) < 0.15
    per_customer = sampled["orders"]["customer_id"].value_counts()
    customers = sampled["customers"].set_index("id")
    counts = per_customer.reindex(customers.index, fill_value=0)
    # the count is a column of the customers' model: it follows their credit (real
    # Spearman ~0.6; a count drawn without the parent would give ~0)
    assert counts.corr(customers["credit"], method="spearman") > 0.3


def test_no_helper_column_is_published(sampled, fitted) -> None:
    for name, frame in sampled.items():
        assert list(frame.columns) == list(fitted[0][name].columns) or set(frame.columns) == set(
            fitted[0][name].columns
        ), name


def test_same_seed_same_set(fitted) -> None:
    first = fitted[1].sample(seed=9)
    again = fitted[1].sample(seed=9)
    for name in first:
        pd.testing.assert_frame_equal(first[name], again[name])


def test_a_child_date_after_its_parents_date_holds_on_every_row(sampled, fitted) -> None:
    """orders.ordered >= customers.signup on every real row: discovered, and held after the
    join of the synthetic tables (the per-table models alone break it on many rows)."""
    rules = [r.id for r in fitted[1].orderings]
    assert any("ordered" in rule and "signup" in rule for rule in rules), rules
    orders = sampled["orders"].merge(
        sampled["customers"][["id", "signup"]], left_on="customer_id", right_on="id"
    )
    assert len(orders) == len(sampled["orders"])
    assert (orders["ordered"] >= orders["signup"]).all()
    gaps = (orders["ordered"] - orders["signup"]).dt.days
    assert (gaps == 0).mean() < 0.2  # repaired with real-like gaps, not piled on the bound


def test_children_per_parent_follow_the_real_histogram_for_every_parent(sampled, fitted) -> None:
    """Owners through the count learned with the parent; other parents (a clerk, a
    part-supplier pair) through their real popularity, shared out exactly."""
    from airflow_synth.core.assess.relationships import children_per_parent

    real, engine = fitted
    found = children_per_parent(real, sampled, engine.table_set)
    distances = {r["relationship"]: r["distance"] for r in found["relationships"]}
    # relationships with hundreds of parents (with 15 or 40 parents every count is its own
    # bucket and the distance is noise)
    assert distances["lines.order_id -> orders.id"] < 0.2, distances
    # drawn one by one (multinomial noise on top of the counts) this was 0.22
    assert distances["lines.part_id,supplier_id -> partsupp.part_id,supplier_id"] < 0.16


def _fit_set(frames, relationships, keys, seed=1):
    """Plan and fit the per-table engine as the pipeline does (roles from classify_set)."""
    shapes = {n: TableShape(n, tuple(f.columns), keys.get(n, ())) for n, f in frames.items()}
    table_set = build_table_set(shapes, declared=relationships)
    roles = classify_set(frames, table_set, {})
    spec = resolve_synthesizer("gaussian_copula")
    engine = SetSynthesizer(
        table_set,
        plan_tables(table_set, roles, frames),
        dict.fromkeys(table_set.order, spec),
        seed=seed,
    )
    engine.fit(frames)
    return engine


def test_odd_shapes_text_keys_one_to_one_two_links_to_one_parent_and_a_tight_link() -> None:
    rng = np.random.default_rng(8)
    airports = pd.DataFrame(
        {"code": [f"A{i:03d}" for i in range(300)], "size": rng.integers(1, 5, 300)}
    )
    profiles = airports.sample(frac=0.7, random_state=1)[["code"]].rename(
        columns={"code": "airport_code"}
    )
    profiles["rating"] = rng.random(len(profiles)).round(3)
    flights = pd.DataFrame(
        {
            "flight_no": [f"F{i}" for i in range(2_000)],
            "origin": rng.choice(airports["code"], 2_000),
            "dest": rng.choice(airports["code"], 2_000),
            "minutes": rng.gamma(3.0, 40.0, 2_000).round(),
        }
    )
    carriers = pd.DataFrame({"id": np.arange(3), "name_len": [5, 7, 9]})
    # every airport served by all 3 carriers: an owner may ask for more than 3 partners
    served = pd.DataFrame(
        [(a, c) for a in airports["code"] for c in range(3)], columns=["airport", "carrier"]
    )
    served["gates"] = rng.integers(1, 20, len(served))
    frames = {
        "airports": airports,
        "profiles": profiles,
        "flights": flights,
        "carriers": carriers,
        "served": served,
    }
    engine = _fit_set(
        frames,
        [
            "profiles.airport_code -> airports.code",
            "flights.origin -> airports.code",
            "flights.dest -> airports.code",
            "served.airport -> airports.code",
            "served.carrier -> carriers.id",
        ],
        {
            "airports": ("code",),
            "profiles": ("airport_code",),
            "flights": ("flight_no",),
            "carriers": ("id",),
            "served": ("airport", "carrier"),
        },
    )
    out = engine.sample(seed=2)
    codes = set(out["airports"]["code"])
    assert not codes & set(airports["code"])  # text keys issued fresh
    assert out["profiles"]["airport_code"].is_unique  # one profile per airport at most
    assert set(out["profiles"]["airport_code"]) <= codes
    assert set(out["flights"]["origin"]) <= codes and set(out["flights"]["dest"]) <= codes
    assert not out["served"].duplicated(subset=["airport", "carrier"]).any()
    assert set(out["served"]["carrier"]) <= set(out["carriers"]["id"])


def test_a_table_keyed_by_its_parent_gets_one_row_per_parent_at_most() -> None:
    """Even when the learned count asks for more (here 2-3 per airport), and a key made of
    foreign keys only never repeats (a link table's owner asking for more partners than
    exist)."""
    from airflow_synth.core.engine.set_engine import _unique_keys

    rng = np.random.default_rng(3)
    airports = pd.DataFrame({"code": [f"A{i}" for i in range(200)], "size": rng.random(200)})
    profiles = pd.DataFrame({"airport_code": airports["code"], "rating": rng.random(200)})
    engine = _fit_set(
        {"airports": airports, "profiles": profiles},
        ["profiles.airport_code -> airports.code"],
        {"airports": ("code",), "profiles": ("airport_code",)},
    )
    plan = engine.plans["profiles"]
    parents = engine.sample(seed=1)["airports"]
    asks = np.where(np.arange(len(parents)) % 2 == 0, 3, 0)  # scaled to the real total: 2
    parents[engine.plans["airports"].children_column(plan.owner)] = asks
    model = engine.models["profiles"].synthesizer
    children = engine._sample_children(plan, model, {"airports": parents}, rng)
    assert children["airport_code"].is_unique
    assert len(children) == (asks > 0).sum()
    link = TablePlan(name="served", primary_key=("airport", "carrier"), modelled=())
    frame = pd.DataFrame({"airport": ["a", "a", "b"], "carrier": [1, 1, 1]})
    assert len(_unique_keys(link, frame)) == 2


def test_the_saved_set_model_holds_no_real_values_and_still_samples(fitted, tmp_path) -> None:
    """Each table codec's stand-in pools are real values: the single-table save dropped
    them, the set model kept them all (every real non-zero balance was in model.pkl)."""
    import cloudpickle

    real, engine = fitted
    path = tmp_path / "model.pkl"
    engine.save(str(path))
    blob = path.read_bytes()
    balances = real["customers"]["balance"].to_numpy(dtype=np.float64)
    balances = balances[balances > 0]
    found = sum(value.tobytes() in blob for value in balances[:200])
    # the extremes stay (decode range, quantile ends), never the rows (200 of 200 before)
    assert found <= 5, found
    with open(path, "rb") as handle:
        loaded = cloudpickle.load(handle)
    sample = loaded.sample(seed=4)
    assert len(sample["customers"]) == len(real["customers"])
    assert engine.models["customers"].synthesizer.codec._pools  # the fitted one keeps them


def test_an_empty_child_table_stays_empty_and_its_parents_learn_no_children() -> None:
    users = pd.DataFrame({"id": np.arange(100), "age": np.arange(100) % 60 + 18})
    events = pd.DataFrame(
        {
            "id": pd.Series([], dtype="int64"),
            "user_id": pd.Series([], dtype="int64"),
            "kind": pd.Series([], dtype=object),
        }
    )
    engine = _fit_set(
        {"users": users, "events": events},
        ["events.user_id -> users.id"],
        {"users": ("id",), "events": ("id",)},
    )
    out = engine.sample(seed=1)
    assert len(out["users"]) == 100
    assert len(out["events"]) == 0 and set(out["events"].columns) == {"id", "user_id", "kind"}
