"""The shape of a multi-table set: tables, primary keys and the relationships between them.

A multi-table ESL is only as good as its picture of the relationships: a child row whose
foreign key points nowhere breaks every join downstream. Relationships come from the
database's own catalog (declared ``FOREIGN KEY`` constraints) and, where a schema does not
declare them, from a small explicit declaration (``"sessions.user_id -> users.id"``). This
module merges the two, validates them (unknown tables or columns, cycles, parents without a
primary key) and orders the tables parents-first. No Airflow import; catalog reads take any
DB-API connection to PostgreSQL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_synth.core.errors import SynthError

log = logging.getLogger(__name__)

_DECLARATION = re.compile(
    r"^\s*(?P<child>[\w$]+)\.(?P<ccols>[\w$]+(?:\s*,\s*[\w$]+)*)\s*->\s*"
    r"(?P<parent>[\w$]+)\.(?P<pcols>[\w$]+(?:\s*,\s*[\w$]+)*)\s*$"
)


class RelationshipError(SynthError):
    """The tables and relationships of a multi-table set are inconsistent."""


@dataclass(frozen=True)
class Relationship:
    """``child.child_columns`` references ``parent.parent_columns`` (a foreign key)."""

    parent: str
    parent_columns: tuple[str, ...]
    child: str
    child_columns: tuple[str, ...]
    source: str = "declared"  # "catalog" when read from the database

    def __str__(self) -> str:
        return (
            f"{self.child}.{','.join(self.child_columns)} -> "
            f"{self.parent}.{','.join(self.parent_columns)}"
        )

    @classmethod
    def parse(cls, value: str | Mapping[str, Any]) -> Relationship:
        """Read ``"child.col -> parent.col"`` or a mapping with parent/child keys."""
        if isinstance(value, Mapping):
            try:
                return cls(
                    parent=str(value["parent"]),
                    parent_columns=_columns(value["parent_key"]),
                    child=str(value["child"]),
                    child_columns=_columns(value["child_key"]),
                )
            except KeyError as exc:
                raise RelationshipError(
                    f"Relationship {dict(value)} lacks {exc}: give parent, parent_key, child "
                    "and child_key, or write it as 'child.column -> parent.column'."
                ) from None
        match = _DECLARATION.match(str(value))
        if not match:
            raise RelationshipError(
                f"Cannot read the relationship {value!r}: write it as "
                "'child_table.fk_column -> parent_table.key_column' (e.g. "
                "'sessions.user_id -> users.id')."
            )
        return cls(
            parent=match["parent"],
            parent_columns=_columns(match["pcols"]),
            child=match["child"],
            child_columns=_columns(match["ccols"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "parent": self.parent,
            "parent_key": list(self.parent_columns),
            "child": self.child,
            "child_key": list(self.child_columns),
            "source": self.source,
        }


def _columns(value: str | Sequence[str]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    columns = tuple(str(item).strip() for item in items if str(item).strip())
    if not columns:
        raise RelationshipError(f"Relationship key {value!r} names no column")
    return columns


@dataclass(frozen=True)
class TableShape:
    """One table of the set: its columns, primary key and (source) column types."""

    name: str
    columns: tuple[str, ...]
    primary_key: tuple[str, ...] = ()
    pg_types: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": [{"name": c, "pg_type": self.pg_types.get(c)} for c in self.columns],
            "primary_key": list(self.primary_key),
        }


@dataclass(frozen=True)
class TableSet:
    """Validated tables + relationships, with the parents-first order."""

    tables: Mapping[str, TableShape]
    relationships: tuple[Relationship, ...]
    order: tuple[str, ...]

    def parents_of(self, table: str) -> list[Relationship]:
        return [r for r in self.relationships if r.child == table]

    def children_of(self, table: str) -> list[Relationship]:
        return [r for r in self.relationships if r.parent == table]

    @property
    def roots(self) -> list[str]:
        """Tables without a parent, in load order."""
        return [t for t in self.order if not self.parents_of(t)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tables": {name: self.tables[name].to_dict() for name in self.order},
            "relationships": [r.to_dict() for r in self.relationships],
            "order": list(self.order),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableSet:
        """Inverse of :meth:`to_dict` (XCom round trip)."""
        tables = {
            name: TableShape(
                name=name,
                columns=tuple(c["name"] for c in spec["columns"]),
                primary_key=tuple(spec.get("primary_key") or ()),
                pg_types={c["name"]: c["pg_type"] for c in spec["columns"] if c.get("pg_type")},
            )
            for name, spec in data["tables"].items()
        }
        relationships = tuple(
            Relationship(
                parent=r["parent"],
                parent_columns=tuple(r["parent_key"]),
                child=r["child"],
                child_columns=tuple(r["child_key"]),
                source=r.get("source", "declared"),
            )
            for r in data.get("relationships", ())
        )
        return cls(tables=tables, relationships=relationships, order=tuple(data["order"]))


def parents_first(tables: Sequence[str], relationships: Iterable[Relationship]) -> list[str]:
    """Order ``tables`` so every parent comes before its children (stable otherwise).

    A cycle between tables (``a -> b -> a``) cannot be synthesized or loaded table by table,
    so it raises :class:`RelationshipError` naming the tables on the cycle. A self-reference
    (``employees.manager_id -> employees.id``) is a hierarchy inside one table, not a cycle.
    """
    edges: dict[str, set[str]] = {t: set() for t in tables}
    for rel in relationships:
        if rel.parent in edges and rel.child in edges and rel.parent != rel.child:
            edges[rel.child].add(rel.parent)  # a self-reference is a hierarchy, not a cycle
    done: list[str] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = placed

    def visit(table: str, path: list[str]) -> None:
        if state.get(table) == 2:
            return
        if state.get(table) == 1:
            cycle = path[path.index(table) :] + [table]
            raise RelationshipError(
                "The relationships form a cycle: "
                + " -> ".join(cycle)
                + ". Multi-table synthesis needs parents before children; leave one of "
                "these foreign keys out of the set (pass explicit `relationships`) or "
                "synthesize the tables separately."
            )
        state[table] = 1
        for parent in sorted(edges[table], key=list(tables).index):
            visit(parent, [*path, table])
        state[table] = 2
        done.append(table)

    for table in tables:
        visit(table, [])
    return done


def build_table_set(
    shapes: Mapping[str, TableShape],
    catalog_relationships: Iterable[Relationship] = (),
    declared: Iterable[str | Mapping[str, Any] | Relationship] = (),
    primary_keys: Mapping[str, Sequence[str]] | None = None,
) -> TableSet:
    """Merge catalog and declared relationships for ``shapes`` and validate the result.

    Declared relationships win over catalog ones on the same child columns (a schema may
    declare a key the pipeline wants to treat differently). Catalog foreign keys to tables
    outside the set are ignored (logged): the set is what the user listed.
    ``primary_keys`` overrides or supplies keys the catalog does not have (e.g. SQL-file
    tables, which have no catalog entry).
    """
    shapes = dict(shapes)
    for table, key in (primary_keys or {}).items():
        if table not in shapes:
            raise RelationshipError(
                f"A primary key is given for {table!r}, which is not in the set "
                f"{sorted(shapes)}; check the table name."
            )
        shape = shapes[table]
        shapes[table] = TableShape(shape.name, shape.columns, _columns(key), shape.pg_types)
    chosen: dict[tuple[str, tuple[str, ...]], Relationship] = {}
    for rel in catalog_relationships:
        if rel.parent not in shapes or rel.child not in shapes:
            log.info("Ignoring foreign key %s: a table of it is not in the set", rel)
            continue
        chosen[(rel.child, rel.child_columns)] = rel
    for item in declared:
        rel = item if isinstance(item, Relationship) else Relationship.parse(item)
        chosen[(rel.child, rel.child_columns)] = rel
    relationships = tuple(chosen.values())
    for rel in relationships:
        _check_relationship(rel, shapes)
    order = parents_first(list(shapes), relationships)
    for table in order:
        children = [r.child for r in relationships if r.parent == table]
        if not shapes[table].primary_key and not children:
            log.info("Table %s has no primary key; fine for a table nobody references", table)
    return TableSet(tables=shapes, relationships=relationships, order=tuple(order))


def _check_relationship(rel: Relationship, shapes: Mapping[str, TableShape]) -> None:
    for side in ("parent", "child"):
        table = getattr(rel, side)
        if table not in shapes:
            raise RelationshipError(
                f"Relationship {rel} names the {side} table {table!r}, which is not in the "
                f"set {sorted(shapes)}. Add the table or fix the relationship."
            )
        columns = getattr(rel, f"{side}_columns")
        missing = [c for c in columns if c not in shapes[table].columns]
        if missing:
            raise RelationshipError(
                f"Relationship {rel}: {table} has no column(s) {missing} (it has "
                f"{list(shapes[table].columns)}). Fix the declared relationship."
            )
    parent = shapes[rel.parent]
    if not parent.primary_key:
        raise RelationshipError(
            f"Table {rel.parent!r} is a parent in {rel} but has no primary key. Declare one "
            f"(ALTER TABLE {rel.parent} ADD PRIMARY KEY (...), or primary_keys="
            f"{{'{rel.parent}': '<column>'}}): without it child rows cannot be tied to parents."
        )
    if tuple(parent.primary_key) != rel.parent_columns:
        raise RelationshipError(
            f"Relationship {rel} references {rel.parent}.{','.join(rel.parent_columns)}, but "
            f"the primary key of {rel.parent} is ({', '.join(parent.primary_key)}). "
            "Relationships must reference the parent's primary key."
        )
    if len(rel.child_columns) != len(rel.parent_columns):
        raise RelationshipError(
            f"Relationship {rel} pairs {len(rel.child_columns)} child column(s) with "
            f"{len(rel.parent_columns)} parent key column(s); a composite foreign key names "
            "one child column per column of the parent's key, in the key's order."
        )


#: What SDV's (free) HMA models: at most this many tables and levels of parents.
HMA_MAX_TABLES = 5
HMA_MAX_DEPTH = 2


def depth(table_set: TableSet) -> int:
    """Levels of the set: 1 for tables without parents, 2 with children, 3 grandchildren..."""
    levels: dict[str, int] = {}
    for name in table_set.order:  # parents first
        parents = [r.parent for r in table_set.parents_of(name) if r.parent != name]
        levels[name] = 1 + max((levels[p] for p in parents), default=0)
    return max(levels.values(), default=0)


def single_column_keys_only(table_set: TableSet, engine: str) -> None:
    """Refuse what ``engine`` (SDV's HMA) cannot model: composite keys, self-references,
    more than five tables or two levels.

    Called before extract, so a schema HMA cannot take fails before any row is read.
    """
    levels = depth(table_set)
    if len(table_set.tables) > HMA_MAX_TABLES or levels > HMA_MAX_DEPTH:
        raise RelationshipError(
            f"The set has {len(table_set.tables)} tables and {levels} levels; the {engine!r} "
            f"engine (SDV's HMA) models at most {HMA_MAX_TABLES} tables and {HMA_MAX_DEPTH} "
            "levels. Use engine='per_table', which has no such limit."
        )
    for rel in table_set.relationships:
        if len(rel.child_columns) != 1:
            raise RelationshipError(
                f"Relationship {rel} uses a composite key, which the {engine!r} engine "
                "cannot model. Use engine='per_table' (the default), which supports them."
            )
        if rel.child == rel.parent:
            raise RelationshipError(
                f"Relationship {rel} references its own table (a hierarchy), which the "
                f"{engine!r} engine cannot model. Use engine='per_table' (the default)."
            )
    for name, shape in table_set.tables.items():
        if len(shape.primary_key) > 1:
            raise RelationshipError(
                f"Table {name!r} has a composite primary key ({', '.join(shape.primary_key)}),"
                f" which the {engine!r} engine cannot model. Use engine='per_table' (the "
                "default), which supports composite keys."
            )


# -- the database catalog ----------------------------------------------------------------

_COLUMNS_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s)
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""

_KEYS_SQL = """
SELECT con.contype, c.relname,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
             ORDER BY k.i)::text[],
       pc.relname,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
             ORDER BY k.i)::text[],
       pn.nspname
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class pc ON pc.oid = con.confrelid
LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s) AND con.contype IN ('p', 'f')
ORDER BY con.conname
"""


def read_catalog(
    conn: Any, tables: Sequence[str], schema: str = "public"
) -> tuple[dict[str, TableShape], list[Relationship]]:
    """Columns, types, primary keys and foreign keys of ``schema.tables`` from pg_catalog.

    Read in one short transaction that is rolled back (nothing is written).
    """
    try:
        with conn.cursor() as cur:
            cur.execute(_COLUMNS_SQL, {"schema": schema, "tables": list(tables)})
            columns = cur.fetchall()
            cur.execute(_KEYS_SQL, {"schema": schema, "tables": list(tables)})
            keys = cur.fetchall()
    finally:
        conn.rollback()
    found: dict[str, list[tuple[str, str]]] = {}
    for table, column, pg_type in columns:
        found.setdefault(table, []).append((column, pg_type))
    missing = [t for t in tables if t not in found]
    if missing:
        raise RelationshipError(
            f"Table(s) {missing} not found in schema {schema!r}. Check the names (case "
            "matters for quoted names) and the connection's database."
        )
    primary: dict[str, tuple[str, ...]] = {}
    relationships = []
    for kind, table, cols, parent, parent_cols, parent_schema in keys:
        if kind == "p":
            primary[table] = tuple(cols)
        elif parent_schema == schema:
            relationships.append(
                Relationship(parent, tuple(parent_cols), table, tuple(cols), source="catalog")
            )
    shapes = {
        t: TableShape(
            name=t,
            columns=tuple(c for c, _ in found[t]),
            primary_key=primary.get(t, ()),
            pg_types=dict(found[t]),
        )
        for t in tables
    }
    return shapes, relationships
