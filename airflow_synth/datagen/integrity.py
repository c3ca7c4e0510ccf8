"""Relational integrity of a set of tables, judged by the keys a spec declares.

The generator keeps keys intact by construction; this module *checks* it, on any frames
that claim to follow a spec: generated source tables, what a database returns, or a
synthetic copy of related tables, where a lost foreign key is the typical failure. It needs
no database, so a unit test can prove the same things PostgreSQL would refuse on load:

* a primary key (one column or several) has no NULL and no repeat;
* every non-NULL reference, single or composite, names an existing parent row (a composite
  reference with a NULL part is not checked, as in SQL's default ``MATCH SIMPLE``);
* a self-reference forms a hierarchy: following it from any row ends at a root (no cycle);
* a ``sequence`` column counts ``start, start+1, ...`` within each parent, without gaps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from airflow_synth.datagen.spec import ColumnSpec, DataSpec, TableSpec


def integrity_problems(spec: DataSpec, tables: Mapping[str, pd.DataFrame]) -> list[str]:
    """Every broken key of ``tables`` (frames by table name), one readable line each.

    Tables of the spec missing from ``tables`` are skipped, and so are the references
    into them, so a subset of tables can be checked on its own. An empty list means intact.
    """
    problems: list[str] = []
    for name, table in spec.tables.items():
        if name not in tables:
            continue
        frame = tables[name]
        problems += _key_problems(table, frame)
        for column in table.columns.values():
            if column.hidden:
                continue
            if column.type == "reference" and column.parent_table in tables:
                problems += _reference_problems(spec, column, frame, tables[column.parent_table])
                if column.is_self_reference:
                    problems += _cycle_problems(table, column, frame)
            elif column.type == "sequence":
                problems += _sequence_problems(column, frame)
    return problems


def assert_integrity(spec: DataSpec, tables: Mapping[str, pd.DataFrame]) -> None:
    """Raise :class:`AssertionError` listing every problem of :func:`integrity_problems`."""
    problems = integrity_problems(spec, tables)
    if problems:
        raise AssertionError(
            f"{len(problems)} integrity problem(s) in spec {spec.name!r}:\n  "
            + "\n  ".join(problems)
        )


def _key_problems(table: TableSpec, frame: pd.DataFrame) -> list[str]:
    key = list(table.key_columns)
    if not key:
        return []
    label = f"{table.name}: primary key ({', '.join(key)})"
    values = frame[key]
    problems = []
    nulls = int(values.isna().any(axis=1).sum())
    if nulls:
        problems.append(f"{label} is NULL in {nulls} rows")
    repeats = values.duplicated(keep="first")
    if repeats.any():
        example = values[repeats].iloc[0].tolist()
        problems.append(f"{label} repeats in {int(repeats.sum())} rows (e.g. {example})")
    return problems


def _reference_problems(
    spec: DataSpec, column: ColumnSpec, frame: pd.DataFrame, parent: pd.DataFrame
) -> list[str]:
    child_columns = list(column.output_columns)
    parent_columns = list(column.parent_columns)
    values = frame[child_columns].dropna(how="any")
    if values.empty:
        return []
    targets = parent[parent_columns].drop_duplicates()
    renamed = targets.set_axis(child_columns, axis=1)
    joined = values.merge(renamed, on=child_columns, how="left", indicator=True)
    dangling = joined["_merge"] == "left_only"
    if not dangling.any():
        return []
    example = joined.loc[dangling, child_columns].iloc[0].tolist()
    return [
        f"{column.table}.({', '.join(child_columns)}) -> {column.parent_table}."
        f"({', '.join(parent_columns)}): {int(dangling.sum())} rows point at no parent row "
        f"(e.g. {example})"
    ]


def _cycle_problems(table: TableSpec, column: ColumnSpec, frame: pd.DataFrame) -> list[str]:
    """Rows whose chain of parents never reaches a root (pointer doubling: log2(n) steps)."""
    n = len(frame)
    if n == 0:
        return []
    ids = pd.Index(frame[str(table.primary_key)])
    parent_ids = frame[column.name]
    ancestor = np.where(parent_ids.isna(), -1, ids.get_indexer(parent_ids.fillna(ids[0])))
    # -1 also for a parent id that does not exist: that is a dangling reference, reported
    # on its own; here it ends the chain.
    for _ in range(math.ceil(math.log2(n)) + 1):
        ancestor = np.where(ancestor >= 0, ancestor[np.maximum(ancestor, 0)], -1)
    looping = int((ancestor >= 0).sum())
    if not looping:
        return []
    return [f"{column.qualified}: {looping} rows are in or lead into a cycle (never reach a root)"]


def _sequence_problems(column: ColumnSpec, frame: pd.DataFrame) -> list[str]:
    per, start = str(column.options["per"]), int(column.options["start"])
    ordered = frame[[per, column.name]].sort_values([per, column.name], kind="stable")
    expected = start + ordered.groupby(per, sort=False).cumcount().to_numpy()
    wrong = int((ordered[column.name].to_numpy() != expected).sum())
    if not wrong:
        return []
    return [
        f"{column.qualified}: not {start}, {start + 1}, ... within each {per} "
        f"({wrong} rows out of place: a gap, a repeat or another start)"
    ]
