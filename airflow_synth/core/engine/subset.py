"""An integrity-preserving training subset of a multi-table set (plus a privacy holdout).

SDV's HMA learns one small model per parent row's children, so its fit time and memory grow
with the number of parents and children; on a million child rows and 2 cores it does not
finish. It also only makes sense on a *closed* set: a sampled child whose parent was not
sampled is an orphan. So we sample parents of the main table and take **all** of their
children (and grandchildren), plus every row of other tables those rows reference. The
result is referentially complete, its per-parent cardinality is exactly the real one, and
its size is bounded by ``max_parents``.

A disjoint sample of main-table parents with their descendants is held out the same way:
the privacy figures compare synthetic rows with training rows and with these unseen rows.

Real data also has flaws the subset must not carry into training: child rows whose foreign
key matches no parent (orphans) and child rows with a NULL foreign key. A few of those are
dropped and counted (documented treatment); when more than ``max_orphan_share`` of a child
table's rows match no parent, the declared relationship does not match the data and the run
fails with an error saying so. Works on Parquet files with pyarrow; no Airflow import.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from airflow_synth.core.errors import DataError
from airflow_synth.core.relations import Relationship, RelationshipError, TableSet

log = logging.getLogger(__name__)

#: Above this share of unmatched child rows a relationship is taken to be wrong, not dirty.
DEFAULT_MAX_ORPHAN_SHARE = 0.05


@dataclass
class TableSubset:
    """What the subset kept of one table and why rows were left out."""

    real_rows: int
    training_rows: int = 0
    holdout_rows: int = 0
    orphan_rows: int = 0
    null_key_rows: int = 0
    how: str = ""
    #: child rows matching no parent, per relationship ("sessions.user_id -> users.id")
    orphans_by_relationship: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SubsetResult:
    """Paths of the training and holdout Parquet files per table, and the bookkeeping."""

    main_table: str
    train_paths: dict[str, Path]
    holdout_paths: dict[str, Path]
    tables: dict[str, TableSubset] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "main_table": self.main_table,
            "tables": {name: t.to_dict() for name, t in self.tables.items()},
        }

    def summary(self) -> str:
        parts = []
        for name, t in self.tables.items():
            share = t.training_rows / t.real_rows if t.real_rows else 0.0
            parts.append(
                f"{name} {t.training_rows:,} of {t.real_rows:,} rows ({share:.0%}, {t.how})"
            )
        return "Training subset: " + "; ".join(parts)


def _key_array(path: Path, column: str) -> pa.ChunkedArray:
    return pq.read_table(path, columns=[column]).column(column)


def check_keys(paths: Mapping[str, Path], table_set: TableSet) -> None:
    """Primary keys must be present and unique, or children cannot be tied to parents."""
    for name in table_set.order:
        key = table_set.tables[name].primary_key
        if len(key) != 1:
            continue
        values = _key_array(paths[name], key[0])
        nulls = values.null_count
        if nulls:
            raise DataError(
                f"Table {name}: {nulls:,} rows have a NULL primary key {key[0]!r}. Filter them "
                "out in the table's query or fix the data; a key must identify every row."
            )
        distinct = pc.count_distinct(values).as_py()
        if distinct != len(values):
            raise DataError(
                f"Table {name}: primary key {key[0]!r} has {len(values) - distinct:,} duplicate "
                "values. Use a unique column as the key (or deduplicate in the query)."
            )


def choose_main_table(paths: Mapping[str, Path], table_set: TableSet) -> str:
    """The table whose rows bound training best: the biggest parent above the biggest table.

    Sampling ``max_parents`` rows of it (with all their descendants) bounds the largest
    table. The root with most rows below it was the rule before: on region -> nation ->
    customer -> orders it picked the 5-row region, and ``max_parents`` bounded nothing.
    """
    rows = {name: pq.ParquetFile(paths[name]).metadata.num_rows for name in table_set.order}
    largest = max(table_set.order, key=lambda t: (rows[t], -table_set.order.index(t)))
    above: set[str] = set()
    todo = [largest]
    while todo:
        for rel in table_set.parents_of(todo.pop()):
            if rel.parent not in above and rel.parent != rel.child:
                above.add(rel.parent)
                todo.append(rel.parent)
    if above:
        return max(above, key=lambda t: (rows[t], -table_set.order.index(t)))
    roots = table_set.roots

    def below(table: str, seen: frozenset[str] = frozenset()) -> int:
        kids = {r.child for r in table_set.children_of(table)} - seen
        return sum(rows[k] + below(k, seen | {table}) for k in kids)

    return max(roots, key=lambda t: (below(t), -roots.index(t)))


def integrity_subset(
    paths: Mapping[str, Path],
    table_set: TableSet,
    out_dir: Path,
    *,
    max_parents: int | None,
    holdout_share: float,
    seed: int,
    main_table: str | None = None,
    max_orphan_share: float = DEFAULT_MAX_ORPHAN_SHARE,
) -> SubsetResult:
    """Write ``train/<table>.parquet`` and ``holdout/<table>.parquet`` under ``out_dir``.

    ``max_parents`` bounds the main table's training rows (None = all); the holdout gets
    ``holdout_share`` of the sampled parents (0 = no holdout, privacy not measured).
    """
    check_keys(paths, table_set)
    main = main_table or choose_main_table(paths, table_set)
    if main not in table_set.tables:
        raise RelationshipError(f"main_table {main!r} is not in the set {list(table_set.order)}")
    rng = np.random.default_rng(seed)
    info = {name: TableSubset(pq.ParquetFile(paths[name]).metadata.num_rows) for name in paths}
    train: dict[str, pa.Table] = {}
    hold: dict[str, pa.Table] = {}

    main_rows = pq.read_table(paths[main])
    n = main_rows.num_rows
    order = rng.permutation(n)
    if max_parents is not None and n * (1 - holdout_share) > max_parents:
        n_train = int(max_parents)
        n_hold = min(n - n_train, round(n_train * holdout_share / (1 - holdout_share)))
    else:
        n_hold = round(n * holdout_share)
        n_train = n - n_hold
    train[main] = main_rows.take(np.sort(order[:n_train]))
    hold[main] = main_rows.take(np.sort(order[n_train : n_train + n_hold]))
    del main_rows
    info[main].how = f"{n_train:,} sampled parents" if n_train < n else "all rows"

    below = _descendants(table_set, main)
    for name in table_set.order:  # children of the sampled parents, parents first
        if name in below and name != main:
            train[name], hold[name] = _children(name, paths, table_set, train, hold, info, below)
            _check_orphans(name, info[name], max_orphan_share)
            info[name].how = "all children of kept parents"
    pending = [t for t in table_set.order if t not in train]
    while pending:
        progressed = False
        for name in reversed(pending):  # tables the kept rows reference
            kids = [r for r in table_set.children_of(name) if r.child in train]
            if kids and name not in train:
                train[name], hold[name] = _referenced(name, paths, kids, train, hold)
                info[name].how = "rows referenced by kept rows"
                progressed = True
        for name in pending:  # further children of those, if all their parents are kept
            parents = {r.parent for r in table_set.parents_of(name)}
            if name not in train and parents and parents <= set(train):
                train[name], hold[name] = _children(
                    name, paths, table_set, train, hold, info, set(parents) | {name}
                )
                _check_orphans(name, info[name], max_orphan_share)
                info[name].how = "children of kept rows"
                progressed = True
        pending = [t for t in pending if t not in train]
        if pending and not progressed:  # an unrelated component: sample it on its own
            name = pending[0]
            frame = pq.read_table(paths[name])
            keep = rng.permutation(frame.num_rows)
            k = frame.num_rows if max_parents is None else min(frame.num_rows, max_parents)
            h = round(k * holdout_share)
            train[name] = frame.take(np.sort(keep[h:k]))
            hold[name] = frame.take(np.sort(keep[:h]))
            info[name].how = "independent sample (no relationship to the main table)"
            pending = pending[1:]

    result = SubsetResult(main, {}, {}, info)
    for side, tables, target in (
        ("train", train, result.train_paths),
        ("holdout", hold, result.holdout_paths),
    ):
        folder = Path(out_dir) / side
        folder.mkdir(parents=True, exist_ok=True)
        for name in table_set.order:
            path = folder / f"{name}.parquet"
            pq.write_table(tables[name], path, compression="zstd")
            target[name] = path
    for name in table_set.order:
        info[name].training_rows = train[name].num_rows
        info[name].holdout_rows = hold[name].num_rows
        if info[name].orphan_rows or info[name].null_key_rows:
            log.warning(
                "Table %s: left out %d rows whose foreign key matches no parent and %d rows "
                "with a NULL foreign key (they cannot be tied to a parent)",
                name,
                info[name].orphan_rows,
                info[name].null_key_rows,
            )
    log.info(result.summary())
    return result


def _descendants(table_set: TableSet, root: str) -> set[str]:
    found = {root}
    for name in table_set.order:
        if any(r.parent in found for r in table_set.parents_of(name)):
            found.add(name)
    return found


def _children(
    name: str,
    paths: Mapping[str, Path],
    table_set: TableSet,
    train: Mapping[str, pa.Table],
    hold: Mapping[str, pa.Table],
    info: Mapping[str, TableSubset],
    within: set[str],
) -> tuple[pa.Table, pa.Table]:
    """Rows of ``name`` whose foreign keys all point at kept rows.

    Keys to kept tables in ``within`` must hit a kept row; keys to a parent not sampled yet
    (a lookup table such as products, whose rows are taken later because kept rows
    reference them) must hit *some* real row of it, or the referenced rows could not close
    the set. Orphans and NULL keys of every relationship are counted here and left out.
    """
    every = table_set.parents_of(name)
    rels = [r for r in every if r.parent in within and r.parent in train]
    stats = info[name]
    columns = list(dict.fromkeys(r.child_columns[0] for r in every))
    keys = pq.read_table(paths[name], columns=columns)
    null_any = np.zeros(keys.num_rows, dtype=bool)
    orphan_any = np.zeros(keys.num_rows, dtype=bool)
    real_parents: dict[Relationship, pa.Array] = {}
    for rel in every:  # count what cannot be tied to any real parent (left out below)
        values = keys.column(rel.child_columns[0])
        parents = _combined(_key_array(paths[rel.parent], rel.parent_columns[0]))
        real_parents[rel] = parents
        nulls = pc.is_null(values).to_numpy()
        orphans = ~nulls & ~pc.is_in(values, value_set=parents).to_numpy()
        stats.orphans_by_relationship[str(rel)] = int(orphans.sum())
        null_any |= nulls
        orphan_any |= orphans
    stats.null_key_rows += int(null_any.sum())
    stats.orphan_rows += int((orphan_any & ~null_any).sum())
    del keys
    dataset = ds.dataset(paths[name], format="parquet")
    sides = []
    for kept in (train, hold):
        condition = pc.scalar(True)
        for rel in every:  # NULL keys and orphans never match, so they are left out
            allowed = (
                _combined(kept[rel.parent].column(rel.parent_columns[0]))
                if rel in rels
                else real_parents[rel]
            )
            condition = condition & ds.field(rel.child_columns[0]).isin(allowed)
        sides.append(dataset.to_table(filter=condition))
    return sides[0], sides[1]


def _referenced(
    name: str,
    paths: Mapping[str, Path],
    kids: list,
    train: Mapping[str, pa.Table],
    hold: Mapping[str, pa.Table],
) -> tuple[pa.Table, pa.Table]:
    """Rows of ``name`` referenced by kept children; holdout = referenced only by holdout rows."""
    key = kids[0].parent_columns[0]
    used_train = pa.chunked_array(
        [c for r in kids for c in train[r.child].column(r.child_columns[0]).chunks],
        type=train[kids[0].child].schema.field(kids[0].child_columns[0]).type,
    )
    used_hold = pa.chunked_array(
        [c for r in kids for c in hold[r.child].column(r.child_columns[0]).chunks],
        type=train[kids[0].child].schema.field(kids[0].child_columns[0]).type,
    )
    dataset = ds.dataset(paths[name], format="parquet")
    in_train = ds.field(key).isin(_combined(pc.unique(used_train.drop_null())))
    in_hold = ds.field(key).isin(_combined(pc.unique(used_hold.drop_null())))
    return dataset.to_table(filter=in_train), dataset.to_table(filter=in_hold & ~in_train)


def _combined(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks else pa.array([], values.type)
    return values


def _check_orphans(name: str, stats: TableSubset, limit: float) -> None:
    """Few orphans are dirt (left out, counted); many mean the relationship is wrong."""
    for relationship, orphans in stats.orphans_by_relationship.items():
        share = orphans / max(stats.real_rows, 1)
        if share > limit:
            raise RelationshipError(
                f"The relationship {relationship} does not match the data: {orphans:,} of "
                f"{stats.real_rows:,} {name} rows ({share:.1%}) reference no existing parent "
                f"(more than max_orphan_share {limit:.0%}). Check that the declared columns are "
                "the right ones and of the same type; if the data really has that many orphans, "
                "clean it in the table's query or raise max_orphan_share. Nothing was trained "
                "or published."
            )
