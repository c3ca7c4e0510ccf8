"""Matching rows across a relationship by key: the joins every room needs.

The set engine ties children to parents with these, the profile discovers cross-table
rules over them, and the assess room checks integrity and counts children with them, so
they sit below all three. Single-column and composite keys alike; NULLs never match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from airflow_synth.core.relations import Relationship, TableSet


def key_columns(table_set: TableSet, table: str) -> set[str]:
    """The primary key and every foreign key column of ``table``: never modelled."""
    keys = set(table_set.tables[table].primary_key)
    for rel in table_set.relationships:
        if rel.child == table:
            keys.update(rel.child_columns)
        if rel.parent == table:
            keys.update(rel.parent_columns)
    return keys


def key_codes(*sides: tuple[pd.DataFrame, Sequence[str]]) -> list[np.ndarray]:
    """One integer per row and side: equal key tuples get equal codes on every side.

    Each side is ``(frame, columns)`` with the same number of columns. A row with a NULL in
    any of its key columns gets -1. Values are compared as Python objects, so a float
    ``1.0`` in a child (an integer column with NULLs) matches the parent's ``1``. Codes
    are combined column by column and re-factorized, so they stay below the row count.
    """
    widths = {len(columns) for _, columns in sides}
    if len(widths) != 1:
        raise ValueError(f"key sides have different widths {sorted(widths)}")
    lengths = [len(frame) for frame, _ in sides]
    total = sum(lengths)
    combined = np.zeros(total, dtype=np.int64)
    null = np.zeros(total, dtype=bool)
    for j in range(widths.pop()):
        parts = [frame[columns[j]].to_numpy(dtype=object) for frame, columns in sides]
        values = np.concatenate(parts) if parts else np.array([], dtype=object)
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        null |= codes < 0
        combined = pd.factorize(combined * (len(uniques) + 1) + codes)[0].astype(np.int64)
    combined[null] = -1
    return list(np.split(combined, np.cumsum(lengths)[:-1]))


def _null_columns(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """How many of ``columns`` are NULL, per row."""
    if not len(frame):
        return np.zeros(0, dtype=np.int64)
    return frame[list(columns)].isna().to_numpy().sum(axis=1)


def _table(frames: Mapping[str, pd.DataFrame], name: str, columns: Sequence[str]) -> pd.DataFrame:
    if name not in frames:
        raise ValueError(f"Table {name!r} of the set is missing from the frames {sorted(frames)}")
    frame = frames[name]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"Table {name!r} lacks the key column(s) {missing}")
    return frame


def parent_positions(child: pd.DataFrame, parent: pd.DataFrame, rel: Relationship) -> np.ndarray:
    """For each child row, the position of its parent row in ``parent`` (-1: none).

    With duplicate parent keys (a broken set) the first parent row is taken.
    """
    child_codes, parent_codes = key_codes((child, rel.child_columns), (parent, rel.parent_columns))
    known = parent_codes >= 0
    codes, first = np.unique(parent_codes[known], return_index=True)
    if not len(codes):
        return np.full(len(child_codes), -1, dtype=np.int64)
    rows = np.flatnonzero(known)[first]
    where = np.clip(np.searchsorted(codes, child_codes), 0, len(codes) - 1)
    found = (child_codes >= 0) & (codes[where] == child_codes)
    return np.where(found, rows[where], -1).astype(np.int64)


def child_counts(frames: Mapping[str, pd.DataFrame], rel: Relationship) -> tuple[np.ndarray, int]:
    """Children per parent row (zero-children parents included) and unlinked child rows.

    A child row is unlinked when its key is NULL or points at no parent; it belongs to no
    parent, so it is counted apart rather than silently dropped.
    """
    parent = _table(frames, rel.parent, rel.parent_columns)
    child = _table(frames, rel.child, rel.child_columns)
    child_codes, parent_codes = key_codes((child, rel.child_columns), (parent, rel.parent_columns))
    size = int(max(child_codes.max(initial=-1), parent_codes.max(initial=-1))) + 1
    per_code = np.bincount(child_codes[child_codes >= 0], minlength=size)
    counts = np.where(parent_codes >= 0, per_code[np.maximum(parent_codes, 0)], 0)
    linked = np.isin(child_codes, parent_codes[parent_codes >= 0]) & (child_codes >= 0)
    return counts.astype(np.int64), int((~linked).sum())
