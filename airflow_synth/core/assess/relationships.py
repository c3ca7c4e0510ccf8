"""Keys and children per parent across the tables of a set: do the joins still work?

A synthetic set is useless when a join loses rows, and misleading when the joins work but
the *shape* of one-to-many is wrong (every customer with four orders where real customers
had three or five). This module answers both, for single-column and composite keys and
for self-references (``employees.manager_id -> employees.id``):

* :func:`check_integrity`: every primary key unique and complete (a NULL in any key column
  counts), every foreign key tuple present among its parent's key tuples, and NULL foreign
  keys judged on their own: allowed only on relationships the caller says are optional
  (the real child rows had NULLs there), never when only part of a composite key is NULL.
* :func:`children_per_parent`: the whole histogram of children per parent (zero included),
  real vs synthetic, and its total variation distance. Mean, median and p90 can all agree
  while the shape is wrong; the distance cannot.

Reports are JSON-safe and hold counts, shares and names only, never a key value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from airflow_synth.core.keys import _null_columns, _table, child_counts, key_codes
from airflow_synth.core.relations import Relationship, TableSet

#: Child counts above this real quantile share one open-ended bucket (the long tail).
TAIL_QUANTILE = 0.99
#: At most this many buckets below the tail; wider buckets beyond (zero stays its own).
MAX_BUCKETS = 30

NullableKeys = Iterable[str | Relationship] | Mapping[str | Relationship, bool] | None


# -- integrity -------------------------------------------------------------------------------
def _nullable_names(nullable: NullableKeys, table_set: TableSet) -> set[str]:
    """The relationships (as strings) whose foreign key may be NULL."""
    if nullable is None:
        return set()
    items = (
        [k for k, allowed in nullable.items() if allowed]
        if isinstance(nullable, Mapping)
        else list(nullable)
    )
    names = {
        str(item if isinstance(item, Relationship) else Relationship.parse(item)) for item in items
    }
    known = {str(rel) for rel in table_set.relationships}
    unknown = names - known
    if unknown:
        raise ValueError(
            f"nullable_foreign_keys names {sorted(unknown)}, which are not relationships of "
            f"the set {sorted(known)}; fix the names."
        )
    return names


def nullable_relationships(real: Mapping[str, pd.DataFrame], table_set: TableSet) -> set[str]:
    """Relationships whose real child rows have a NULL foreign key (all key columns NULL).

    Those are optional relationships (an order without a coupon, the CEO without a
    manager): a synthetic NULL there is faithful, anywhere else it is a broken join. Pass
    the result to :func:`check_integrity` as ``nullable_foreign_keys``.
    """
    found = set()
    for rel in table_set.relationships:
        child = _table(real, rel.child, rel.child_columns)
        if (_null_columns(child, rel.child_columns) == len(rel.child_columns)).any():
            found.add(str(rel))
    return found


def check_integrity(
    frames: Mapping[str, pd.DataFrame],
    table_set: TableSet,
    nullable_foreign_keys: NullableKeys = None,
) -> dict[str, Any]:
    """Key uniqueness and foreign-key coverage of a set of tables, as a JSON-safe report.

    ``nullable_foreign_keys``: the relationships (``"child.col -> parent.col"`` strings,
    :class:`Relationship` objects, or a mapping of either to ``True``) whose foreign key may
    be NULL because the real one was (see :func:`nullable_relationships`). A NULL foreign key
    elsewhere, and a composite one that is only partly NULL, is a failure: the row joins
    nothing. Self-references are checked like any relationship.

    Returns ``score`` (share of checked child rows that join a parent or are an allowed
    NULL; 1.0 = every join keeps every row), ``passed`` (also requires unique, complete
    primary keys), ``primary_keys`` (per table: ``column`` (the first, for older readers),
    ``columns``, ``rows``, ``nulls`` (rows with a NULL in any key column), ``duplicates``,
    ``passed``), ``relationships`` (per relationship: ``relationship``, ``rows``,
    ``orphans``, ``nulls`` (rows with any key column NULL), ``allowed_nulls``,
    ``partial_nulls``, ``nullable``, ``self_reference``, ``integrity``, ``passed``) and
    ``failures`` (sentences naming the table or relationship and counts).
    """
    nullable = _nullable_names(nullable_foreign_keys, table_set)
    keys: dict[str, Any] = {}
    failures: list[str] = []
    for name in table_set.order:
        key = tuple(table_set.tables[name].primary_key)
        if not key:
            continue
        (codes,) = key_codes((_table(frames, name, key), key))
        nulls = int((codes < 0).sum())
        duplicates = int(len(codes) - nulls - len(np.unique(codes[codes >= 0])))
        ok = nulls == 0 and duplicates == 0
        keys[name] = {
            "column": key[0],
            "columns": list(key),
            "rows": len(codes),
            "nulls": nulls,
            "duplicates": duplicates,
            "passed": ok,
        }
        if not ok:
            failures.append(
                f"primary key {name}({', '.join(key)}): {duplicates} duplicate row(s), "
                f"{nulls} row(s) with a NULL key column"
            )
    relationships = []
    checked = matched = 0
    for rel in table_set.relationships:
        parent = _table(frames, rel.parent, rel.parent_columns)
        child = _table(frames, rel.child, rel.child_columns)
        child_codes, parent_codes = key_codes(
            (child, rel.child_columns), (parent, rel.parent_columns)
        )
        null_columns = _null_columns(child, rel.child_columns)
        complete = null_columns == 0
        whole_null = int((null_columns == len(rel.child_columns)).sum())
        partial = int(((null_columns > 0) & ~(null_columns == len(rel.child_columns))).sum())
        present = np.isin(child_codes, parent_codes[parent_codes >= 0])
        orphans = int((complete & ~present).sum())
        nulls = int((~complete).sum())
        allowed = whole_null if str(rel) in nullable else 0
        good = len(child) - orphans - (nulls - allowed)
        ok = good == len(child)
        relationships.append(
            {
                "relationship": str(rel),
                "rows": len(child),
                "orphans": orphans,
                "nulls": nulls,
                "allowed_nulls": allowed,
                "partial_nulls": partial,
                "nullable": str(rel) in nullable,
                "self_reference": rel.child == rel.parent,
                "integrity": _share(good, len(child)),
                "passed": ok,
            }
        )
        if not ok:
            failures.append(
                f"{rel}: {orphans} orphan row(s), {nulls - allowed} NULL foreign key(s) not "
                f"allowed ({partial} partly NULL)"
                + ("" if str(rel) in nullable else "; the relationship is not nullable")
            )
        checked += len(child)
        matched += good
    return {
        "score": _share(matched, checked),
        "passed": not failures,
        "primary_keys": keys,
        "relationships": relationships,
        "failures": failures,
    }


# -- children per parent ---------------------------------------------------------------------
def describe_counts(values: np.ndarray) -> dict[str, float | None]:
    """Parents, mean, median, p90 and zero share of children-per-parent counts."""
    if values.size == 0:
        return {"parents": 0, "mean": None, "median": None, "p90": None, "zero_share": None}
    return {
        "parents": int(values.size),
        "mean": round(float(values.mean()), 3),
        "median": float(np.median(values)),
        "p90": float(np.quantile(values, 0.9)),
        "zero_share": round(float((values == 0).mean()), 4),
    }


def count_buckets(real_counts: np.ndarray) -> list[tuple[int, int | None]]:
    """Buckets ``(low, high)`` (inclusive; ``high`` None = open tail) from the real counts.

    Zero is its own bucket (parents without children are a shape of their own); the counts
    up to the real 99th percentile follow one by one, or in equal ranges when there are
    more than :data:`MAX_BUCKETS`; everything above shares one ``>= k`` bucket, so a single
    parent with 5,000 children neither stretches the plot nor shows the real maximum.
    """
    top = int(math.floor(np.quantile(real_counts, TAIL_QUANTILE))) if real_counts.size else 0
    buckets: list[tuple[int, int | None]] = [(0, 0)]
    width = max(1, math.ceil(top / MAX_BUCKETS))
    low = 1
    while low <= top:
        buckets.append((low, min(low + width - 1, top)))
        low += width
    buckets.append((top + 1, None))
    return buckets


def _bucket_shares(counts: np.ndarray, buckets: list[tuple[int, int | None]]) -> np.ndarray:
    if counts.size == 0:
        return np.zeros(len(buckets))
    lows = np.array([low for low, _ in buckets])
    index = np.searchsorted(lows, counts, side="right") - 1
    return np.bincount(index, minlength=len(buckets)) / counts.size


def _label(low: int, high: int | None) -> str:
    if high is None:
        return f">= {low}"
    return str(low) if low == high else f"{low}-{high}"


def children_per_parent(
    real: Mapping[str, pd.DataFrame],
    synthetic: Mapping[str, pd.DataFrame],
    table_set: TableSet,
) -> dict[str, Any]:
    """Per relationship, the histogram of children per parent, real vs synthetic.

    Returns ``distance`` (the largest per-relationship distance; None without
    relationships) and ``relationships``: per relationship ``relationship``, ``buckets``
    (``label``, ``low``, ``high`` (None: open tail), ``real`` and ``synthetic`` shares of
    parents), ``distance`` (total variation distance of the two histograms: 0 identical,
    1 disjoint; None when a side has no parent), ``real`` / ``synthetic`` (``parents``,
    ``mean``, ``median``, ``p90``, ``zero_share``, as the older cardinality report) and
    ``unlinked_children`` per side (child rows that join no parent).
    """
    rows = []
    for rel in table_set.relationships:
        real_counts, real_unlinked = child_counts(real, rel)
        synth_counts, synth_unlinked = child_counts(synthetic, rel)
        buckets = count_buckets(real_counts if real_counts.size else synth_counts)
        r_share = _bucket_shares(real_counts, buckets)
        s_share = _bucket_shares(synth_counts, buckets)
        distance = None
        if real_counts.size and synth_counts.size:
            distance = round(float(0.5 * np.abs(r_share - s_share).sum()), 6)
        rows.append(
            {
                "relationship": str(rel),
                "buckets": [
                    {
                        "label": _label(low, high),
                        "low": low,
                        "high": high,
                        "real": round(float(r), 6),
                        "synthetic": round(float(s), 6),
                    }
                    for (low, high), r, s in zip(buckets, r_share, s_share, strict=True)
                ],
                "distance": distance,
                "real": describe_counts(real_counts),
                "synthetic": describe_counts(synth_counts),
                "unlinked_children": {"real": real_unlinked, "synthetic": synth_unlinked},
            }
        )
    distances = [r["distance"] for r in rows if r["distance"] is not None]
    return {"distance": max(distances) if distances else None, "relationships": rows}


def _share(part: int, whole: int) -> float:
    return 1.0 if whole == 0 else round(part / whole, 6)


__all__ = [
    "check_integrity",
    "children_per_parent",
    "count_buckets",
    "describe_counts",
    "nullable_relationships",
]
