"""Relationships of a multi-table set: parsing, catalog + declaration merge, validation, order."""

from __future__ import annotations

import logging

import pytest

from airflow_synth.core.errors import SynthError
from airflow_synth.core.relations import (
    Relationship,
    RelationshipError,
    TableSet,
    TableShape,
    build_table_set,
    parents_first,
    single_column_keys_only,
)

pytestmark = pytest.mark.unit


def shape(name: str, *columns: str, pk: str | tuple[str, ...] | None = "id") -> TableShape:
    key = () if pk is None else ((pk,) if isinstance(pk, str) else tuple(pk))
    return TableShape(name, tuple(columns), key, {c: "bigint" for c in columns})


def rel(text: str, source: str = "declared") -> Relationship:
    parsed = Relationship.parse(text)
    return Relationship(
        parsed.parent, parsed.parent_columns, parsed.child, parsed.child_columns, source
    )


@pytest.fixture
def users_sessions() -> dict[str, TableShape]:
    return {
        "users": shape("users", "id", "age"),
        "sessions": shape("sessions", "id", "user_id", "secs"),
    }


# -- parsing -------------------------------------------------------------------------------


def test_parse_string_form() -> None:
    found = Relationship.parse("  sessions.user_id ->users.id ")
    assert (found.child, found.child_columns) == ("sessions", ("user_id",))
    assert (found.parent, found.parent_columns) == ("users", ("id",))
    assert found.source == "declared"
    assert str(found) == "sessions.user_id -> users.id"


def test_parse_mapping_form_and_multi_columns() -> None:
    found = Relationship.parse(
        {"parent": "p", "parent_key": ["a", "b"], "child": "c", "child_key": "x, y"}
    )
    assert found.parent_columns == ("a", "b")
    assert found.child_columns == ("x", "y")
    assert Relationship.parse("c.x,y -> p.a, b") == found


@pytest.mark.parametrize(
    "text",
    [
        "sessions.user_id => users.id",
        "sessions -> users",
        "sessions.user_id",
        "sessions.user_id -> users.",
        "",
        "a.b.c -> d.e",
    ],
)
def test_parse_rejects_bad_strings_with_the_expected_form(text: str) -> None:
    with pytest.raises(RelationshipError, match=r"child_table\.fk_column -> parent_table"):
        Relationship.parse(text)


@pytest.mark.parametrize("missing", ["parent", "parent_key", "child", "child_key"])
def test_parse_mapping_names_the_missing_key(missing: str) -> None:
    value = {"parent": "users", "parent_key": "id", "child": "sessions", "child_key": "user_id"}
    del value[missing]
    with pytest.raises(RelationshipError, match=f"lacks '{missing}'"):
        Relationship.parse(value)


def test_parse_mapping_with_empty_key_is_refused() -> None:
    with pytest.raises(RelationshipError, match="names no column"):
        Relationship.parse({"parent": "u", "parent_key": " , ", "child": "s", "child_key": "x"})


def test_relationship_error_is_a_synth_error() -> None:
    assert issubclass(RelationshipError, SynthError)


# -- merge of catalog and declarations ----------------------------------------------------


def test_catalog_relationships_are_used(users_sessions: dict[str, TableShape]) -> None:
    table_set = build_table_set(users_sessions, [rel("sessions.user_id -> users.id", "catalog")])
    assert [str(r) for r in table_set.relationships] == ["sessions.user_id -> users.id"]
    assert table_set.relationships[0].source == "catalog"
    assert table_set.order == ("users", "sessions")


def test_declared_wins_over_catalog_on_the_same_child_column() -> None:
    shapes = {
        "users": shape("users", "id"),
        "accounts": shape("accounts", "id"),
        "sessions": shape("sessions", "id", "user_id"),
    }
    table_set = build_table_set(
        shapes,
        [rel("sessions.user_id -> users.id", "catalog")],
        ["sessions.user_id -> accounts.id"],
    )
    assert len(table_set.relationships) == 1
    only = table_set.relationships[0]
    assert (only.parent, only.source) == ("accounts", "declared")


def test_declared_adds_to_catalog_on_other_columns() -> None:
    shapes = {
        "users": shape("users", "id"),
        "products": shape("products", "id"),
        "orders": shape("orders", "id", "user_id", "product_id"),
    }
    table_set = build_table_set(
        shapes,
        [rel("orders.user_id -> users.id", "catalog")],
        [Relationship.parse("orders.product_id -> products.id")],
    )
    assert sorted((r.parent, r.source) for r in table_set.relationships) == [
        ("products", "declared"),
        ("users", "catalog"),
    ]
    assert table_set.order[-1] == "orders"
    assert {r.parent for r in table_set.parents_of("orders")} == {"users", "products"}
    assert [r.child for r in table_set.children_of("users")] == ["orders"]
    assert table_set.roots == ["users", "products"]


def test_catalog_fk_to_a_table_outside_the_set_is_ignored(
    users_sessions: dict[str, TableShape], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="airflow_synth.core.relations")
    table_set = build_table_set(
        users_sessions,
        [
            rel("sessions.user_id -> users.id", "catalog"),
            rel("sessions.secs -> timings.id", "catalog"),
            rel("audit.user_id -> users.id", "catalog"),
        ],
    )
    assert [str(r) for r in table_set.relationships] == ["sessions.user_id -> users.id"]
    assert "timings" in caplog.text and "audit" in caplog.text


def test_declared_relationship_to_a_table_outside_the_set_is_refused(
    users_sessions: dict[str, TableShape],
) -> None:
    with pytest.raises(RelationshipError, match="'accounts', which is not in the set"):
        build_table_set(users_sessions, declared=["sessions.user_id -> accounts.id"])
    with pytest.raises(RelationshipError, match="child table 'visits'"):
        build_table_set(users_sessions, declared=["visits.user_id -> users.id"])


def test_unknown_column_lists_the_columns_there_are(users_sessions: dict[str, TableShape]) -> None:
    with pytest.raises(RelationshipError, match=r"sessions has no column\(s\) \['usr_id'\]") as e:
        build_table_set(users_sessions, declared=["sessions.usr_id -> users.id"])
    assert "'user_id'" in str(e.value)
    with pytest.raises(RelationshipError, match=r"users has no column\(s\) \['uid'\]"):
        build_table_set(users_sessions, declared=["sessions.user_id -> users.uid"])


# -- validation ---------------------------------------------------------------------------


def test_parent_without_primary_key_is_refused_with_a_way_out() -> None:
    shapes = {
        "users": shape("users", "id", "age", pk=None),
        "sessions": shape("sessions", "user_id", "secs", pk=None),
    }
    with pytest.raises(RelationshipError, match="'users' is a parent") as exc:
        build_table_set(shapes, declared=["sessions.user_id -> users.id"])
    message = str(exc.value)
    assert "no primary key" in message
    assert "primary_keys={'users': '<column>'}" in message
    assert "ALTER TABLE users ADD PRIMARY KEY" in message


def test_primary_keys_argument_supplies_the_missing_key() -> None:
    shapes = {
        "users": shape("users", "id", "age", pk=None),
        "sessions": shape("sessions", "user_id", "secs", pk=None),
    }
    table_set = build_table_set(
        shapes, declared=["sessions.user_id -> users.id"], primary_keys={"users": "id"}
    )
    assert table_set.tables["users"].primary_key == ("id",)
    assert table_set.tables["sessions"].primary_key == ()  # a child needs none
    with pytest.raises(RelationshipError, match="'orders', which is not in the set"):
        build_table_set(shapes, primary_keys={"orders": "id"})


def test_relationship_to_a_non_key_column_is_refused(
    users_sessions: dict[str, TableShape],
) -> None:
    with pytest.raises(RelationshipError, match=r"primary key of users is \(id\)"):
        build_table_set(users_sessions, declared=["sessions.user_id -> users.age"])


def test_composite_keys_are_accepted_and_refused_only_for_hma() -> None:
    shapes = {
        "stays": shape("stays", "hotel", "night", "price", pk=("hotel", "night")),
        "reviews": shape("reviews", "id", "hotel", "night"),
    }
    table_set = build_table_set(shapes, declared=["reviews.hotel,night -> stays.hotel,night"])
    (rel,) = table_set.relationships
    assert rel.child_columns == ("hotel", "night") and rel.parent_columns == ("hotel", "night")
    with pytest.raises(RelationshipError, match="composite key.*engine='per_table'"):
        single_column_keys_only(table_set, "hma")


def test_a_composite_key_must_name_every_key_column() -> None:
    shapes = {
        "stays": shape("stays", "hotel", "night", "price", pk=("hotel", "night")),
        "reviews": shape("reviews", "id", "hotel", "night"),
    }
    with pytest.raises(RelationshipError, match="primary key of stays"):
        build_table_set(shapes, declared=["reviews.hotel -> stays.hotel"])


def test_self_reference_is_a_hierarchy_not_a_cycle() -> None:
    shapes = {"staff": shape("staff", "id", "manager_id")}
    table_set = build_table_set(shapes, declared=["staff.manager_id -> staff.id"])
    assert table_set.order == ("staff",)
    with pytest.raises(RelationshipError, match="references its own table") as exc:
        single_column_keys_only(table_set, "hma")
    assert "staff.manager_id -> staff.id" in str(exc.value)


def test_two_table_cycle_names_the_tables() -> None:
    shapes = {"a": shape("a", "id", "b_id"), "b": shape("b", "id", "a_id")}
    with pytest.raises(RelationshipError, match="cycle") as exc:
        build_table_set(shapes, declared=["a.b_id -> b.id", "b.a_id -> a.id"])
    assert "a -> b -> a" in str(exc.value)


def test_three_table_cycle_names_every_table_on_it() -> None:
    shapes = {
        "a": shape("a", "id", "c_id"),
        "b": shape("b", "id", "a_id"),
        "c": shape("c", "id", "b_id"),
        "d": shape("d", "id", "a_id"),
    }
    with pytest.raises(RelationshipError, match="cycle") as exc:
        build_table_set(
            shapes,
            declared=["b.a_id -> a.id", "c.b_id -> b.id", "a.c_id -> c.id", "d.a_id -> a.id"],
        )
    message = str(exc.value)
    cycle = message.split("cycle: ")[1].split(".")[0]
    hops = cycle.split(" -> ")
    assert hops[0] == hops[-1]
    assert sorted(hops[:-1]) == ["a", "b", "c"]  # d hangs off the cycle but is not on it


# -- order ---------------------------------------------------------------------------------


def test_parents_first_reorders_a_chain_given_backwards() -> None:
    rels = [rel("items.order_id -> orders.id"), rel("orders.user_id -> users.id")]
    assert parents_first(["items", "orders", "users"], rels) == ["users", "orders", "items"]


def test_parents_first_diamond_is_stable() -> None:
    rels = [
        rel("left.root_id -> root.id"),
        rel("right.root_id -> root.id"),
        rel("leaf.left_id -> left.id"),
        rel("leaf.right_id -> right.id"),
    ]
    assert parents_first(["leaf", "right", "left", "root"], rels) == [
        "root",
        "right",
        "left",
        "leaf",
    ]
    assert parents_first(["leaf", "left", "right", "root"], rels) == [
        "root",
        "left",
        "right",
        "leaf",
    ]


def test_parents_first_keeps_unrelated_tables_in_their_given_order() -> None:
    assert parents_first(["c", "a", "b"], []) == ["c", "a", "b"]
    rels = [rel("s.u_id -> u.id"), rel("x.y_id -> elsewhere.id")]  # outside: ignored
    assert parents_first(["s", "z", "u"], rels) == ["u", "s", "z"]


def test_table_set_order_of_a_backwards_chain() -> None:
    shapes = {
        "items": shape("items", "id", "order_id"),
        "orders": shape("orders", "id", "user_id"),
        "users": shape("users", "id"),
    }
    table_set = build_table_set(
        shapes, declared=["items.order_id -> orders.id", "orders.user_id -> users.id"]
    )
    assert table_set.order == ("users", "orders", "items")
    assert table_set.roots == ["users"]


def test_table_set_round_trips_through_a_dict() -> None:
    shapes = {
        "sessions": TableShape(
            "sessions", ("id", "user_id", "note"), ("id",), {"id": "bigint", "user_id": "text"}
        ),
        "users": TableShape("users", ("id", "age"), ("id",), {"id": "text", "age": "integer"}),
        "notes": TableShape("notes", ("body",), (), {}),
    }
    table_set = build_table_set(
        shapes,
        [rel("sessions.user_id -> users.id", "catalog")],
    )
    data = table_set.to_dict()
    assert list(data["tables"]) == ["users", "sessions", "notes"]
    assert data["tables"]["sessions"]["columns"][2] == {"name": "note", "pg_type": None}
    assert data["relationships"] == [
        {
            "parent": "users",
            "parent_key": ["id"],
            "child": "sessions",
            "child_key": ["user_id"],
            "source": "catalog",
        }
    ]
    back = TableSet.from_dict(data)
    assert back.order == table_set.order
    assert back.relationships == table_set.relationships
    assert dict(back.tables) == dict(table_set.tables)
    assert back.to_dict() == data


def test_hma_limits_are_refused_with_the_engine_that_has_none() -> None:
    shapes = {
        "a": shape("a", "id"),
        "b": shape("b", "id", "a_id"),
        "c": shape("c", "id", "b_id"),
    }
    table_set = build_table_set(shapes, declared=["b.a_id -> a.id", "c.b_id -> b.id"])
    with pytest.raises(RelationshipError, match="3 levels.*engine='per_table'"):
        single_column_keys_only(table_set, "hma")
    two_levels = build_table_set(
        {"a": shape("a", "id"), "b": shape("b", "id", "a_id")}, declared=["b.a_id -> a.id"]
    )
    single_column_keys_only(two_levels, "hma")  # what HMA models passes
    many = {f"t{i}": shape(f"t{i}", "id") for i in range(6)}
    with pytest.raises(RelationshipError, match="6 tables"):
        single_column_keys_only(build_table_set(many), "hma")
