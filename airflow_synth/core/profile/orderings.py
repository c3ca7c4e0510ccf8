"""Orderings across a join: ``child >= parent`` rules, found, measured and repaired.

Within one table the rules of :mod:`airflow_synth.core.profile.rules` keep ``shipped >=
ordered``. Across tables the same logic lives in the join: an order is placed on or after
its customer's sign-up, an employee is hired after their manager. A set engine that
samples children per parent can break it without any single-table score noticing.

* :func:`discover_cross_table_orderings` finds ``child.column >= parent.column`` pairs
  (dates with dates, whole numbers with whole numbers, other numbers with other numbers)
  that hold on every joined training row, with support, a real share of strict ``>``, and
  only where the marginals alone do not already imply it (pairing the columns at random
  would break it). Each rule keeps quantiles of the real gaps ``child - parent`` between
  the 1st and 99th percentile: no real value, no extreme gap.
* :func:`repair_cross_table_orderings` fixes a sampled child table: a violating row gets
  ``parent + gap``, the gap drawn from those quantiles. Clamping to the parent value would
  pile every repaired row onto the boundary (a spike of same-day orders the real data
  never had); a drawn gap keeps the real gap distribution.
* :func:`cross_table_hold_rates` measures each rule on any set of frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from airflow_synth.core.keys import key_columns, parent_positions
from airflow_synth.core.relations import Relationship, TableSet

#: A rule needs at least this many joined rows with both values set.
MIN_SUPPORT = 20
#: ...child > parent on at least this share of them (not a copied column).
MIN_STRICT_SHARE = 0.05
#: ...and pairing the columns at random would break it on at least this share of pairs.
MIN_RANDOM_VIOLATION = 0.02
#: Gap quantiles kept per rule (levels between the 1st and 99th percentile).
GAP_LEVELS = tuple(float(x) for x in np.round(np.linspace(0.01, 0.99, 50), 4))
MAX_RULES = 100
#: A self-reference is repaired level by level; this bounds the passes (hierarchy depth).
MAX_SELF_PASSES = 64
_DAY_NS, _SECOND_NS = 86_400 * 10**9, 10**9


@dataclass(frozen=True)
class CrossTableOrdering:
    """``child.child_column >= parent.parent_column`` on every joined row of ``relationship``.

    ``kind`` is ``datetime``, ``integer`` or ``number``; ``gap_quantiles`` (child - parent,
    nanoseconds for dates) at :data:`GAP_LEVELS`; ``step`` the unit every real gap is a
    multiple of (a day for date-only columns, 1 for whole numbers, 0: none).
    """

    relationship: str
    child_column: str
    parent_column: str
    kind: str = "number"
    support: int = 0
    step: float = 0.0
    gap_quantiles: tuple[float, ...] = ()

    @property
    def id(self) -> str:
        child, _, parent = self.relationship.partition(" -> ")
        child_table, parent_table = child.rsplit(".", 1)[0], parent.rsplit(".", 1)[0]
        return f"{child_table}.{self.child_column} >= {parent_table}.{self.parent_column}"

    def to_dict(self, *, with_gaps: bool = False) -> dict[str, Any]:
        """JSON-safe; the gap quantiles only on request (the model keeps them, reports not)."""
        data = asdict(self)
        data["id"] = self.id
        if with_gaps:
            data["gap_quantiles"] = list(self.gap_quantiles)
        else:
            del data["gap_quantiles"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CrossTableOrdering:
        return cls(
            relationship=str(data["relationship"]),
            child_column=str(data["child_column"]),
            parent_column=str(data["parent_column"]),
            kind=str(data.get("kind", "number")),
            support=int(data.get("support", 0)),
            step=float(data.get("step", 0.0)),
            gap_quantiles=tuple(float(x) for x in data.get("gap_quantiles", ())),
        )


def _ordinal(series: pd.Series) -> tuple[str | None, np.ndarray, np.ndarray]:
    """(kind, values, set?): dates as int64 ns (UTC), whole numbers as int64, else float.

    Integer arithmetic for dates matters: float64 rounds nanosecond stamps by ~256 ns, so
    ``parent + 0`` could land *before* the parent. A float column of whole numbers (an
    integer column with NULLs, as pandas reads it) is an integer column.
    """
    none = (None, np.array([]), np.array([], dtype=bool))
    if pd.api.types.is_bool_dtype(series.dtype):
        return none
    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) in (
        "date",
        "datetime",
    ):
        series = pd.to_datetime(series, errors="coerce")
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        stamps = series.dt.tz_convert(None) if getattr(series.dt, "tz", None) else series
        raw = stamps.to_numpy(dtype="datetime64[ns]")
        return "datetime", raw.view("int64").copy(), ~np.isnat(raw)
    if not pd.api.types.is_numeric_dtype(series.dtype):
        return none
    valid = series.notna().to_numpy()
    values = series.to_numpy(dtype=float, na_value=np.nan)
    filled = np.where(valid, values, 0.0)
    if pd.api.types.is_integer_dtype(series.dtype) or (
        np.all(np.mod(filled, 1) == 0) and np.all(np.abs(filled) < 2.0**53)
    ):
        if pd.api.types.is_integer_dtype(series.dtype):
            return "integer", series.fillna(0).to_numpy(dtype=np.int64), valid
        return "integer", filled.astype(np.int64), valid
    return "number", values, valid


def _work_kind(child: str | None, parents: Sequence[str | None]) -> str | None:
    """The kind both sides are compared in: dates with dates; numbers as integers when
    both are whole, else as floats (a synthetic float column against a real integer one)."""
    if child is None or any(p is None for p in parents):
        return None
    if child == "datetime" or "datetime" in parents:
        return "datetime" if child == "datetime" and set(parents) == {"datetime"} else None
    return "integer" if child == "integer" and set(parents) == {"integer"} else "number"


def _as(kind: str, values: np.ndarray) -> np.ndarray:
    return values.astype(float) if kind == "number" else values


def _step(kind: str, gaps: np.ndarray) -> float:
    if kind == "integer":
        return 1.0
    if kind == "datetime":
        for unit in (_DAY_NS, _SECOND_NS):
            if np.all(gaps % unit == 0):
                return float(unit)
    return 0.0


def _random_violation(child: np.ndarray, parent: np.ndarray) -> float:
    """P(child < parent) for independent draws of each column: what chance alone breaks."""
    ordered = np.sort(parent)
    above = len(ordered) - np.searchsorted(ordered, child, side="right")
    return float(above.mean() / len(ordered))


def discover_cross_table_orderings(
    real: Mapping[str, pd.DataFrame],
    table_set: TableSet,
    *,
    min_support: int = MIN_SUPPORT,
) -> list[CrossTableOrdering]:
    """``child >= parent`` column pairs that hold on every joined real row (see module doc).

    Call it on the training rows; keys (primary and foreign) are never compared.
    """
    found: list[CrossTableOrdering] = []
    for rel in table_set.relationships:
        child, parent = real[rel.child], real[rel.parent]
        rows = parent_positions(child, parent, rel)
        joined = rows >= 0
        if joined.sum() < min_support:
            continue
        child_cols = [c for c in child.columns if c not in key_columns(table_set, rel.child)]
        parent_cols = [c for c in parent.columns if c not in key_columns(table_set, rel.parent)]
        parents = {c: _ordinal(parent[c]) for c in parent_cols}
        for c_name in child_cols:
            c_kind, c_values, c_valid = _ordinal(child[c_name])
            if c_kind is None:
                continue
            for p_name in parent_cols:
                p_kind, p_values, p_valid = parents[p_name]
                if p_kind != c_kind:
                    continue
                take = joined.copy()
                take[joined] = p_valid[rows[joined]] & c_valid[joined]
                if take.sum() < min_support:
                    continue
                low, high = p_values[rows[take]], c_values[take]
                if (high < low).any() or (high > low).mean() < MIN_STRICT_SHARE:
                    continue
                if _random_violation(high, low) < MIN_RANDOM_VIOLATION:
                    continue
                gaps = high - low
                found.append(
                    CrossTableOrdering(
                        relationship=str(rel),
                        child_column=c_name,
                        parent_column=p_name,
                        kind=c_kind,
                        support=int(take.sum()),
                        step=_step(c_kind, gaps),
                        gap_quantiles=tuple(
                            float(q) for q in np.quantile(gaps.astype(float), GAP_LEVELS)
                        ),
                    )
                )
    return found[:MAX_RULES]


def _draw_gaps(rule: CrossTableOrdering, size: int, rng: np.random.Generator) -> np.ndarray:
    """Gaps from the rule's real gap distribution (inverse CDF between kept quantiles)."""
    if not rule.gap_quantiles:
        gaps = np.zeros(size)
    else:
        levels = np.asarray(GAP_LEVELS[: len(rule.gap_quantiles)])
        u = rng.uniform(levels[0], levels[-1], size)
        gaps = np.interp(u, levels, np.asarray(rule.gap_quantiles, dtype=float))
    if rule.step:
        gaps = np.round(gaps / rule.step) * rule.step
    return np.maximum(gaps, 0.0)


def _write(series: pd.Series, kind: str, rows: np.ndarray, values: np.ndarray) -> pd.Series:
    """``series`` with ``rows`` set to ``values`` (ordinals), in the column's own type."""
    out = series.copy()
    if kind == "datetime":
        stamps = pd.to_datetime(values.astype(np.int64), unit="ns")
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            tz = getattr(series.dt, "tz", None)
            if tz is not None:
                stamps = stamps.tz_localize("UTC").tz_convert(tz)
            out.iloc[rows] = stamps.astype(series.dtype)
        else:  # Python dates/datetimes in an object column
            dates = pd.api.types.infer_dtype(series, skipna=True) == "date"
            new = [s.date() if dates else s.to_pydatetime() for s in stamps]
            out = out.astype(object)
            out.iloc[rows] = pd.Series(new, dtype=object).to_numpy()
        return out
    if kind == "integer" or pd.api.types.is_integer_dtype(series.dtype):
        # rounded up: a bound of 3.2 (a float parent) must give at least 4, never 3
        whole = np.ceil(values).astype(np.int64) if kind == "number" else values.astype(np.int64)
        if pd.api.types.is_integer_dtype(series.dtype):
            out.iloc[rows] = whole
        else:
            out.iloc[rows] = whole.astype(float)
        return out
    out.iloc[rows] = values.astype(float)
    return out


def repair_cross_table_orderings(
    child_frame: pd.DataFrame,
    parent_frame: pd.DataFrame,
    rel: Relationship,
    rules: Iterable[CrossTableOrdering],
    rng: np.random.Generator,
) -> pd.DataFrame:
    """A copy of ``child_frame`` on which every rule of ``rel`` holds on every joined row.

    A violating row gets ``bound + gap``: the bound is the largest parent value its rules
    on that column demand, the gap is drawn from the real gaps of the binding rule. Rows
    that join no parent, or have a NULL on either side, are left as they are. For a
    self-reference ``parent_frame`` is ignored: the repaired table is its own parent, and
    it is repaired pass by pass (a manager's date moves before their reports are judged).
    """
    mine = [r for r in rules if r.relationship == str(rel)]
    out = child_frame.copy()
    by_column: dict[str, list[CrossTableOrdering]] = {}
    for rule in mine:
        if rule.child_column in out.columns and rule.parent_column in parent_frame.columns:
            by_column.setdefault(rule.child_column, []).append(rule)
    if not by_column:
        return out
    self_reference = rel.child == rel.parent
    for _ in range(MAX_SELF_PASSES if self_reference else 1):
        parent = out if self_reference else parent_frame
        rows = parent_positions(out, parent, rel)
        joined = rows >= 0
        changed = False
        for column, column_rules in by_column.items():
            c_kind, values, valid = _ordinal(out[column])
            sides = [_ordinal(parent[rule.parent_column]) for rule in column_rules]
            kind = _work_kind(c_kind, [side[0] for side in sides])
            if kind is None:
                continue
            bound, binding, has = _bounds(
                [(_as(kind, v), ok) for _, v, ok in sides], rows, joined, kind
            )
            bad = np.flatnonzero(has & valid & (_as(kind, values) < bound))
            if not bad.size:
                continue
            new = bound[bad].copy()
            for i, rule in enumerate(column_rules):
                mask = binding[bad] == i
                if mask.any():
                    gaps = _draw_gaps(rule, int(mask.sum()), rng)
                    new[mask] = new[mask] + (gaps if kind == "number" else gaps.astype(np.int64))
            out[column] = _write(out[column], kind, bad, new)
            changed = True
        if not changed:
            break
    return out


def _bounds(
    parents: Sequence[tuple[np.ndarray, np.ndarray]],
    rows: np.ndarray,
    joined: np.ndarray,
    kind: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per child row: the largest parent value demanded, which rule demands it, any at all.

    ``parents`` holds each rule's parent (values, set?) in the compared kind.
    """
    n = len(rows)
    bound = np.full(n, -np.inf) if kind == "number" else np.full(n, np.iinfo(np.int64).min)
    binding = np.full(n, -1)
    has = np.zeros(n, dtype=bool)
    at = np.maximum(rows, 0)
    for i, (values, valid) in enumerate(parents):
        if not len(values):
            continue
        take = joined & valid[at]
        candidate = np.where(take, values[at], bound)
        higher = take & (~has | (candidate > bound))
        bound = np.where(higher, candidate, bound)
        binding = np.where(higher, i, binding)
        has |= take
    return bound, binding, has


def cross_table_hold_rates(
    rules: Iterable[CrossTableOrdering],
    frames: Mapping[str, pd.DataFrame],
    table_set: TableSet,
) -> dict[str, Any]:
    """How often each rule holds on ``frames`` (joined rows with both values set).

    Returns ``held`` (the lowest hold rate; 1.0 without a measurable rule), ``count`` and
    ``rules``: the rule's fields (no gap quantiles) plus ``rows`` (joined rows checked),
    ``violations`` and ``hold`` (share held; None when no row could be checked).
    """
    relations = {str(rel): rel for rel in table_set.relationships}
    out = []
    for rule in rules:
        row = {**rule.to_dict(), "rows": 0, "violations": 0, "hold": None}
        rel = relations.get(rule.relationship)
        if rel is not None and rel.child in frames and rel.parent in frames:
            child, parent = frames[rel.child], frames[rel.parent]
            if rule.child_column in child and rule.parent_column in parent:
                rows = parent_positions(child, parent, rel)
                c_kind, c_values, c_valid = _ordinal(child[rule.child_column])
                p_kind, p_values, p_valid = _ordinal(parent[rule.parent_column])
                kind = _work_kind(c_kind, [p_kind])
                if kind is not None:
                    c_values, p_values = _as(kind, c_values), _as(kind, p_values)
                    take = rows >= 0
                    take[take] = c_valid[take] & p_valid[rows[take]]
                    broken = int((c_values[take] < p_values[rows[take]]).sum())
                    checked = int(take.sum())
                    row.update(rows=checked, violations=broken)
                    row["hold"] = round(1 - broken / checked, 6) if checked else None
        out.append(row)
    rates = [r["hold"] for r in out if r["hold"] is not None]
    return {"held": min(rates) if rates else 1.0, "count": len(out), "rules": out}


__all__ = [
    "CrossTableOrdering",
    "cross_table_hold_rates",
    "discover_cross_table_orderings",
    "repair_cross_table_orderings",
]
