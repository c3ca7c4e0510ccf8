"""How each table of a set is generated: who owns its rows, which keys it issues, which count.

The per-table engine (:mod:`airflow_synth.core.engine.set_engine`) models every table on its
own and ties the tables together through keys. Before any model is fitted, each table gets a
:class:`TablePlan` from the set's relationships and the real rows:

* **owner**: the parent whose rows the table's rows belong to (an order line belongs to its
  order). The number of children per owner row is learned as a column of the *owner's*
  model, so it follows the owner's attributes; child rows are then drawn for each synthetic
  owner row. Preferred: a foreign key inside the primary key, then one without NULLs, then
  the parent with most rows (the most specific one).
* **other parents**: further foreign keys (a line's product, a link table's second side)
  are drawn by popularity: each synthetic parent row gets a weight from the real
  children-per-parent distribution. Optional (nullable) ones get a learned "has a parent"
  flag; a foreign key inside the primary key is drawn without repeats within its owner.
* **sequences**: a primary-key column numbered 1..n (or from another start) within each
  owner row, like ``line_number`` or ``year``: issued as consecutive numbers, never learned.
* **owned keys**: the remaining primary-key columns are issued fresh (unique, none equal to
  a real key); foreign keys copy their synthetic parent's key.
* **self-references** (``employees.manager_id -> employees.id``) become a hierarchy: a root
  share and a popularity, every row pointing at an earlier one (no cycles).

Only counts and shares are kept (quantiles of counts, shares of NULLs), never key values.
No Airflow import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from airflow_synth.core.keys import child_counts
from airflow_synth.core.profile.roles import MODELLED, ColumnRole
from airflow_synth.core.relations import Relationship, TableSet

#: Helper columns the engine adds to a table's model (never published).
CHILDREN_PREFIX = "__children__"
HAS_PREFIX = "__has__"
CONTEXT_COLUMN = "__parent_context__"
#: Quantiles kept of a children-per-parent distribution (popularity of other parents).
POPULARITY_QUANTILES = 201


def is_helper_column(name: str) -> bool:
    """Whether ``name`` is one of the engine's helper columns (never published)."""
    return name == CONTEXT_COLUMN or name.startswith((CHILDREN_PREFIX, HAS_PREFIX))


@dataclass(frozen=True)
class Popularity:
    """How many children a parent row has, as quantiles: drawn as each parent's weight."""

    quantiles: tuple[float, ...]

    @classmethod
    def of(cls, counts: np.ndarray) -> Popularity:
        if counts.size == 0:
            return cls((1.0,))
        grid = np.linspace(0, 1, POPULARITY_QUANTILES)
        return cls(tuple(float(q) for q in np.quantile(counts.astype(float), grid)))

    def weights(self, n: int, rng: np.random.Generator) -> np.ndarray:
        draws = np.asarray(self.quantiles)[rng.integers(0, len(self.quantiles), n)]
        return draws + 1e-9  # a zero-children parent is (almost) never picked


@dataclass(frozen=True)
class KeySequence:
    """A primary-key column numbered consecutively within each owner row."""

    column: str
    starts: tuple[int, ...]  # quantiles of the start value (one value: a constant start)

    def start_values(self, groups: int, rng: np.random.Generator) -> np.ndarray:
        starts = np.asarray(self.starts, dtype=np.int64)
        return (
            starts[rng.integers(0, starts.size, groups)]
            if starts.size > 1
            else (np.full(groups, starts[0] if starts.size else 1, dtype=np.int64))
        )


@dataclass
class TablePlan:
    """What the engine learns and issues for one table (see the module docstring)."""

    name: str
    primary_key: tuple[str, ...]
    modelled: tuple[str, ...]
    owner: Relationship | None = None
    others: tuple[Relationship, ...] = ()
    self_refs: tuple[Relationship, ...] = ()
    sequences: tuple[KeySequence, ...] = ()
    owned_keys: tuple[str, ...] = ()
    optional: frozenset[str] = frozenset()  # str(rel) of relationships with NULL keys
    popularity: dict[str, Popularity] = field(default_factory=dict)  # str(rel) -> counts
    owned_children: tuple[Relationship, ...] = ()  # relationships this table owns

    def children_column(self, rel: Relationship) -> str:
        return f"{CHILDREN_PREFIX}{rel.child}__{'__'.join(rel.child_columns)}"

    def has_column(self, rel: Relationship) -> str:
        return f"{HAS_PREFIX}{'__'.join(rel.child_columns)}"


def plan_tables(
    table_set: TableSet,
    roles: Mapping[str, Sequence[ColumnRole]],
    frames: Mapping[str, pd.DataFrame],
) -> dict[str, TablePlan]:
    """A :class:`TablePlan` for every table of ``table_set`` from the (full) real frames."""
    plans: dict[str, TablePlan] = {}
    for name in table_set.order:
        frame = frames[name]
        parents = [r for r in table_set.parents_of(name) if r.parent != name]
        optional = frozenset(str(r) for r in parents if _has_nulls(frame, r.child_columns))
        owner = _choose_owner(name, parents, optional, table_set, frames)
        others = sorted(
            (r for r in parents if r is not owner),
            key=lambda r: -len(r.child_columns),  # a composite key first: it implies parts
        )
        self_refs = tuple(r for r in table_set.parents_of(name) if r.parent == name)
        fk_columns = {c for r in table_set.parents_of(name) for c in r.child_columns}
        key = table_set.tables[name].primary_key
        # a sequence numbers rows within their owner: only inside a key that holds the
        # owner's foreign key, like (order_id, line_number); a single-column key is an id
        owned_by_key = owner is not None and set(owner.child_columns) < set(key)
        sequences = tuple(
            _sequence(frame, column, owner)
            for column in key
            if owned_by_key and column not in fk_columns and _is_sequence(frame, column, owner)
        )
        sequenced = {s.column for s in sequences}
        plan = TablePlan(
            name=name,
            primary_key=tuple(key),
            modelled=tuple(r.name for r in roles[name] if r.role == MODELLED),
            owner=owner,
            others=tuple(others),
            self_refs=self_refs,
            sequences=sequences,
            owned_keys=tuple(c for c in key if c not in fk_columns and c not in sequenced),
            optional=optional | frozenset(str(r) for r in self_refs),
        )
        for rel in [*others, *self_refs]:
            plan.popularity[str(rel)] = Popularity.of(children_per_parent(frames, rel))
        plans[name] = plan
    for plan in plans.values():
        if plan.owner is not None:
            parent = plans[plan.owner.parent]
            parent.owned_children = (*parent.owned_children, plan.owner)
    return plans


def children_per_parent(frames: Mapping[str, pd.DataFrame], rel: Relationship) -> np.ndarray:
    """Children of every parent row (zero included), in parent row order."""
    return child_counts(frames, rel)[0]


def _has_nulls(frame: pd.DataFrame, columns: Sequence[str]) -> bool:
    return bool(frame[list(columns)].isna().any(axis=None))


def _choose_owner(
    name: str,
    parents: Sequence[Relationship],
    optional: frozenset[str],
    table_set: TableSet,
    frames: Mapping[str, pd.DataFrame],
) -> Relationship | None:
    key = set(table_set.tables[name].primary_key)
    candidates = [r for r in parents if str(r) not in optional]
    if not candidates:
        return None  # every parent is optional: rows are drawn as a root table's

    def rank(rel: Relationship) -> tuple[int, int, int]:
        in_key = set(rel.child_columns) <= key
        return (0 if in_key else 1, -len(frames[rel.parent]), parents.index(rel))

    return min(candidates, key=rank)


def _is_sequence(frame: pd.DataFrame, column: str, owner: Relationship) -> bool:
    values = frame[column]
    if len(frame) == 0 or not pd.api.types.is_integer_dtype(values.dtype):
        return False
    groups = frame.groupby(list(owner.child_columns), dropna=True)[column]
    stats = groups.agg(["min", "max", "nunique", "size"])
    return bool(
        (
            (stats["max"] - stats["min"] + 1 == stats["size"]) & (stats["nunique"] == stats["size"])
        ).all()
    )


def _sequence(frame: pd.DataFrame, column: str, owner: Relationship) -> KeySequence:
    starts = frame.groupby(list(owner.child_columns), dropna=True)[column].min().to_numpy()
    if starts.size and (starts == starts[0]).all():
        return KeySequence(column, (int(starts[0]),))
    grid = np.linspace(0, 1, POPULARITY_QUANTILES)
    return KeySequence(column, tuple(int(round(q)) for q in np.quantile(starts, grid)))
