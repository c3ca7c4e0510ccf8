"""The integrity-preserving training subset: closed under FKs, all children kept, bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_synth.core.engine.subset import check_keys, choose_main_table, integrity_subset
from airflow_synth.core.errors import DataError
from airflow_synth.core.relations import RelationshipError, TableSet, TableShape, build_table_set

pytestmark = pytest.mark.unit


def write_tables(folder: Path, frames: dict[str, pd.DataFrame]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in frames.items():
        paths[name] = folder / f"{name}.parquet"
        frame.to_parquet(paths[name], index=False)
    return paths


def table_set_for(
    frames: dict[str, pd.DataFrame], relationships: list[str], keys: dict[str, str]
) -> TableSet:
    shapes = {
        name: TableShape(name, tuple(frame.columns), (keys[name],) if name in keys else ())
        for name, frame in frames.items()
    }
    return build_table_set(shapes, declared=relationships)


def read(paths: dict[str, Path]) -> dict[str, pd.DataFrame]:
    return {name: pq.read_table(path).to_pandas() for name, path in paths.items()}


def users_sessions(n_users: int = 200, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Users with 0-9 sessions each (the counts are known per user)."""
    rng = np.random.default_rng(seed)
    users = pd.DataFrame(
        {"id": [f"u{i:04d}" for i in range(n_users)], "age": rng.integers(18, 80, n_users)}
    )
    counts = rng.integers(0, 10, n_users)
    sessions = pd.DataFrame(
        {
            "sid": np.arange(counts.sum(), dtype="int64"),
            "user_id": np.repeat(users["id"].to_numpy(), counts),
            "secs": rng.exponential(100, counts.sum()),
        }
    )
    return {"users": users, "sessions": sessions}


US_RELS = ["sessions.user_id -> users.id"]
US_KEYS = {"users": "id", "sessions": "sid"}


def subset(tmp_path: Path, frames: dict[str, pd.DataFrame], rels, keys, **kwargs):
    paths = write_tables(tmp_path / "real", frames)
    table_set = table_set_for(frames, rels, keys)
    options = {"max_parents": None, "holdout_share": 0.2, "seed": 7, **kwargs}
    result = integrity_subset(paths, table_set, tmp_path / "out", **options)
    return result, read(result.train_paths), read(result.holdout_paths)


def test_subset_is_closed_bounded_and_keeps_every_child(tmp_path: Path) -> None:
    frames = users_sessions(200)
    result, train, hold = subset(tmp_path, frames, US_RELS, US_KEYS, max_parents=50)
    assert result.main_table == "users"
    assert len(train["users"]) == 50  # the bound
    assert len(hold["users"]) == round(50 * 0.2 / 0.8)  # holdout in proportion
    # closed: every kept child points at a kept parent, on both sides
    assert set(train["sessions"]["user_id"]) <= set(train["users"]["id"])
    assert set(hold["sessions"]["user_id"]) <= set(hold["users"]["id"])
    # disjoint parents, and so disjoint children
    assert not set(train["users"]["id"]) & set(hold["users"]["id"])
    assert not set(train["sessions"]["sid"]) & set(hold["sessions"]["sid"])
    # ALL children of every kept parent: per-parent counts equal the real ones
    real_counts = frames["sessions"].groupby("user_id").size()
    for side in (train, hold):
        kept = side["sessions"].groupby("user_id").size()
        parents = side["users"]["id"]
        expected = real_counts.reindex(parents, fill_value=0)
        assert kept.reindex(parents, fill_value=0).tolist() == expected.tolist()
    assert result.tables["users"].training_rows == 50
    assert result.tables["sessions"].training_rows == len(train["sessions"])
    assert result.tables["sessions"].real_rows == len(frames["sessions"])
    assert result.tables["sessions"].how == "all children of kept parents"
    assert "users 50 of 200 rows (25%" in result.summary()


def test_subset_without_bound_takes_every_parent(tmp_path: Path) -> None:
    frames = users_sessions(100)
    result, train, hold = subset(tmp_path, frames, US_RELS, US_KEYS, holdout_share=0.25)
    assert (len(train["users"]), len(hold["users"])) == (75, 25)
    assert len(train["sessions"]) + len(hold["sessions"]) == len(frames["sessions"])
    assert result.tables["users"].how == "75 sampled parents"
    result, train, hold = subset(tmp_path / "all", frames, US_RELS, US_KEYS, holdout_share=0)
    assert (len(train["users"]), len(hold["users"]), len(hold["sessions"])) == (100, 0, 0)
    assert len(train["sessions"]) == len(frames["sessions"])
    assert result.tables["users"].how == "all rows"


def test_subset_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    frames = users_sessions(150)
    _, a, _ = subset(tmp_path / "a", frames, US_RELS, US_KEYS, max_parents=40, seed=3)
    _, b, _ = subset(tmp_path / "b", frames, US_RELS, US_KEYS, max_parents=40, seed=3)
    _, c, _ = subset(tmp_path / "c", frames, US_RELS, US_KEYS, max_parents=40, seed=4)
    pd.testing.assert_frame_equal(a["users"], b["users"])
    pd.testing.assert_frame_equal(a["sessions"], b["sessions"])
    assert set(a["users"]["id"]) != set(c["users"]["id"])


def test_a_few_orphans_and_null_keys_are_dropped_and_counted(tmp_path: Path) -> None:
    frames = users_sessions(200)
    sessions = frames["sessions"]
    n = len(sessions)
    extra = pd.DataFrame(
        {
            "sid": np.arange(n, n + 5, dtype="int64"),
            "user_id": ["ghost1", "ghost2", "ghost2", None, None],
            "secs": [1.0] * 5,
        }
    )
    frames["sessions"] = pd.concat([sessions, extra], ignore_index=True)
    result, train, hold = subset(tmp_path, frames, US_RELS, US_KEYS)
    info = result.tables["sessions"]
    assert (info.orphan_rows, info.null_key_rows) == (3, 2)
    kept = pd.concat([train["sessions"], hold["sessions"]])
    assert len(kept) == n  # every real, tied session and none of the five
    assert kept["user_id"].notna().all()
    assert not kept["user_id"].str.startswith("ghost").any()


def test_many_orphans_mean_the_relationship_does_not_match(tmp_path: Path) -> None:
    frames = users_sessions(100)
    sessions = frames["sessions"]
    wrong = sessions["user_id"].where(sessions.index % 5 != 0, "nobody")  # 20% orphans
    frames["sessions"] = sessions.assign(user_id=wrong)
    with pytest.raises(RelationshipError, match="does not match the data") as exc:
        subset(tmp_path, frames, US_RELS, US_KEYS)
    message = str(exc.value)
    assert "sessions.user_id -> users.id" in message
    assert "max_orphan_share" in message
    assert not (tmp_path / "out" / "train").exists()  # nothing written
    # the same data passes when the user raises the limit deliberately
    result, train, _ = subset(tmp_path / "ok", frames, US_RELS, US_KEYS, max_orphan_share=0.3)
    assert result.tables["sessions"].orphan_rows == int((wrong == "nobody").sum())
    assert "nobody" not in set(train["sessions"]["user_id"])


def test_relationship_on_a_mistyped_column_does_not_match(tmp_path: Path) -> None:
    frames = users_sessions(50)
    frames["sessions"]["visit"] = frames["sessions"]["sid"].astype(str)
    with pytest.raises(RelationshipError, match="does not match the data"):
        subset(tmp_path, frames, ["sessions.visit -> users.id"], US_KEYS)


@pytest.mark.parametrize(
    ("ids", "match"),
    [
        (["a", None, "c", None], r"2 rows have a NULL primary key 'id'"),
        (["a", "b", "a", "a"], r"primary key 'id' has 2 duplicate values"),
    ],
)
def test_bad_primary_keys_are_data_errors(tmp_path: Path, ids: list, match: str) -> None:
    frames = {
        "users": pd.DataFrame({"id": ids, "age": [1, 2, 3, 4]}),
        "sessions": pd.DataFrame({"sid": [1, 2], "user_id": ["a", "c"]}),
    }
    paths = write_tables(tmp_path, frames)
    table_set = table_set_for(frames, US_RELS, US_KEYS)
    with pytest.raises(DataError, match=match) as exc:
        check_keys(paths, table_set)
    assert "Table users" in str(exc.value)
    with pytest.raises(DataError, match=match):
        integrity_subset(
            paths, table_set, tmp_path / "out", max_parents=None, holdout_share=0.2, seed=1
        )


def chain(n_users: int = 120) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(5)
    users = pd.DataFrame({"id": np.arange(n_users, dtype="int64"), "v": rng.random(n_users)})
    per_user = rng.integers(0, 4, n_users)
    orders = pd.DataFrame(
        {
            "id": np.arange(per_user.sum(), dtype="int64") + 1000,
            "user_id": np.repeat(users["id"].to_numpy(), per_user),
        }
    )
    per_order = rng.integers(0, 5, len(orders))
    items = pd.DataFrame(
        {
            "id": np.arange(per_order.sum(), dtype="int64") + 100_000,
            "order_id": np.repeat(orders["id"].to_numpy(), per_order),
            "price": rng.random(per_order.sum()),
        }
    )
    return {"items": items, "orders": orders, "users": users}  # given children first


CHAIN_RELS = ["items.order_id -> orders.id", "orders.user_id -> users.id"]
CHAIN_KEYS = {"users": "id", "orders": "id", "items": "id"}


def test_three_table_chain_keeps_grandchildren(tmp_path: Path) -> None:
    frames = chain()
    result, train, hold = subset(
        tmp_path, frames, CHAIN_RELS, CHAIN_KEYS, max_parents=30, main_table="users"
    )
    assert result.main_table == "users"
    assert len(train["users"]) == 30
    for side in (train, hold):
        assert set(side["orders"]["user_id"]) <= set(side["users"]["id"])
        assert set(side["items"]["order_id"]) <= set(side["orders"]["id"])
        # all orders of kept users, all items of kept orders
        real_orders = frames["orders"][frames["orders"]["user_id"].isin(side["users"]["id"])]
        assert sorted(side["orders"]["id"]) == sorted(real_orders["id"])
        real_items = frames["items"][frames["items"]["order_id"].isin(real_orders["id"])]
        assert sorted(side["items"]["id"]) == sorted(real_items["id"])
    assert list(result.train_paths) == ["users", "orders", "items"]
    assert result.tables["items"].how == "all children of kept parents"


def shop(n_customers: int = 80, n_products: int = 60) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(11)
    customers = pd.DataFrame({"id": [f"c{i}" for i in range(n_customers)]})
    products = pd.DataFrame(
        {"id": [f"p{i}" for i in range(n_products)], "price": rng.random(n_products)}
    )
    per = rng.integers(1, 12, n_customers)  # many transactions: beats products' rows below
    transactions = pd.DataFrame(
        {
            "id": np.arange(per.sum(), dtype="int64"),
            "customer_id": np.repeat(customers["id"].to_numpy(), per),
            "product_id": rng.choice(products["id"].to_numpy(), per.sum()),
        }
    )
    return {"customers": customers, "products": products, "transactions": transactions}


SHOP_RELS = ["transactions.customer_id -> customers.id", "transactions.product_id -> products.id"]
SHOP_KEYS = {"customers": "id", "products": "id", "transactions": "id"}


def test_lookup_parent_rows_referenced_by_kept_rows_are_kept(tmp_path: Path) -> None:
    frames = shop()
    result, train, hold = subset(
        tmp_path, frames, SHOP_RELS, SHOP_KEYS, max_parents=20, main_table="customers"
    )
    assert result.main_table == "customers"
    assert len(train["customers"]) == 20
    assert set(train["transactions"]["customer_id"]) <= set(train["customers"]["id"])
    # exactly the products the kept transactions use: closed and no more
    assert set(train["products"]["id"]) == set(train["transactions"]["product_id"])
    assert len(train["products"]) < len(frames["products"])
    # holdout products: those used by holdout transactions only, never a training product
    used = set(hold["transactions"]["product_id"]) - set(train["products"]["id"])
    assert set(hold["products"]["id"]) == used
    assert result.tables["products"].how == "rows referenced by kept rows"


def test_lookup_parent_orphans_and_null_keys_are_dropped_and_counted(tmp_path: Path) -> None:
    frames = shop()
    tx = frames["transactions"]
    bad = tx["product_id"].copy()
    bad.iloc[[0, 5]] = "p-gone"
    bad.iloc[[9]] = None
    frames["transactions"] = tx.assign(product_id=bad)
    result, train, hold = subset(
        tmp_path, frames, SHOP_RELS, SHOP_KEYS, holdout_share=0.25, main_table="customers"
    )
    info = result.tables["transactions"]
    assert (info.orphan_rows, info.null_key_rows) == (2, 1)
    for side in (train, hold):
        assert side["transactions"]["product_id"].notna().all()
    assert set(train["transactions"]["product_id"]) <= set(train["products"]["id"])
    assert len(train["transactions"]) + len(hold["transactions"]) == len(tx) - 3


def test_lookup_parent_with_many_orphans_does_not_match(tmp_path: Path) -> None:
    frames = shop()
    tx = frames["transactions"]
    frames["transactions"] = tx.assign(product_id=tx["product_id"].str.upper())
    with pytest.raises(RelationshipError, match="does not match the data") as exc:
        subset(tmp_path, frames, SHOP_RELS, SHOP_KEYS, main_table="customers")
    assert "transactions.product_id -> products.id" in str(exc.value)


def test_choose_main_table_picks_the_parent_of_the_biggest_table(tmp_path: Path) -> None:
    frames = shop(n_customers=10, n_products=500)
    # products first in the set's order, and bigger; but customers have more rows below once
    # another child hangs off them
    frames["visits"] = pd.DataFrame(
        {"id": np.arange(600), "customer_id": np.resize(frames["customers"]["id"], 600)}
    )
    rels = [*SHOP_RELS, "visits.customer_id -> customers.id"]
    keys = {**SHOP_KEYS, "visits": "id"}
    shapes_first = {"products": frames["products"], **frames}
    paths = write_tables(tmp_path, frames)
    table_set = table_set_for(shapes_first, rels, keys)
    assert table_set.roots == ["products", "customers"]
    assert choose_main_table(paths, table_set) == "customers"
    # without the visits the tie (same transactions below) goes to the first root
    frames_tie = shop(n_customers=10, n_products=500)
    paths_tie = write_tables(tmp_path / "tie", frames_tie)
    tie_set = table_set_for({"products": frames_tie["products"], **frames_tie}, SHOP_RELS, keys)
    assert choose_main_table(paths_tie, tie_set) == "products"


def test_chain_main_table_is_the_biggest_parent_above_the_biggest_table(tmp_path: Path) -> None:
    """users 40 -> orders ~60 -> items ~120: sampling orders bounds the items; on region ->
    nation -> customer -> orders the old rule (the root) picked the 5-row region."""
    frames = chain(40)
    assert len(frames["orders"]) > len(frames["users"])
    paths = write_tables(tmp_path, frames)
    assert choose_main_table(paths, table_set_for(frames, CHAIN_RELS, CHAIN_KEYS)) == "orders"
    region = pd.DataFrame({"id": np.arange(5)})
    nation = pd.DataFrame({"id": np.arange(25), "region_id": np.arange(25) % 5})
    customer = pd.DataFrame({"id": np.arange(600), "nation_id": np.arange(600) % 25})
    orders = pd.DataFrame({"id": np.arange(2000), "customer_id": np.arange(2000) % 600})
    deep = {"region": region, "nation": nation, "customer": customer, "orders": orders}
    rels = [
        "nation.region_id -> region.id",
        "customer.nation_id -> nation.id",
        "orders.customer_id -> customer.id",
    ]
    deep_set = table_set_for(deep, rels, dict.fromkeys(deep, "id"))
    assert choose_main_table(write_tables(tmp_path / "deep", deep), deep_set) == "customer"


def test_unrelated_table_is_sampled_on_its_own(tmp_path: Path) -> None:
    frames = users_sessions(100)
    frames["countries"] = pd.DataFrame({"code": [f"k{i}" for i in range(50)], "pop": range(50)})
    keys = {**US_KEYS, "countries": "code"}
    result, train, hold = subset(tmp_path, frames, US_RELS, keys, max_parents=30)
    assert result.main_table == "users"
    info = result.tables["countries"]
    assert info.how == "independent sample (no relationship to the main table)"
    assert len(train["countries"]) + len(hold["countries"]) <= 30
    assert len(hold["countries"]) == round(30 * 0.2)
    assert not set(train["countries"]["code"]) & set(hold["countries"]["code"])
    assert set(train["countries"]["code"]) <= set(frames["countries"]["code"])


def test_subset_to_dict_is_json_safe(tmp_path: Path) -> None:
    import json

    result, _, _ = subset(tmp_path, users_sessions(30), US_RELS, US_KEYS, max_parents=10)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["main_table"] == "users"
    assert data["tables"]["users"]["training_rows"] == 10
    assert set(data["tables"]["sessions"]) >= {"orphan_rows", "null_key_rows", "how"}
