"""The plan of a spec at one size: row counts and the exact quota of every exact column.

Everything a declared truth promises is decided here, from the spec alone, before a single
row is made: how many rows each table has, how many parents have k children, how many rows
fall in each month, and how many of those are True. The generator hands these quotas out
(:mod:`airflow_synth.datagen.exact`); the answer key (:mod:`airflow_synth.datagen.truths`)
reads them. One place decides, so the two cannot disagree.

Exact columns are: categoricals with ``values:``; categoricals ``given:`` another exact
column of the same table (their joint counts are apportioned per value of ``given``);
booleans (``rate`` or ``rate_by_month``); dates/timestamps with ``start``/``end`` (exact
rows per month); and the number of children of each parent row.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from airflow_synth.datagen.exact import apportion
from airflow_synth.datagen.spec import ColumnSpec, DataSpec, SpecError, TableSpec, is_exact

#: Count distributions are cut where less than this much probability is left in the tail.
TAIL_MASS = 1e-9
#: Hard ceiling on the number of children of one parent (keeps the support finite).
MAX_CHILDREN = 1_000_000


@dataclass(frozen=True)
class ExactColumn:
    """The exact counts of one column: per category, or per (given value, category)."""

    categories: list[Any]
    #: 1-D counts per category, or 2-D [value of ``given``, category].
    counts: np.ndarray
    given: str | None = None

    @property
    def marginal(self) -> np.ndarray:
        return self.counts if self.counts.ndim == 1 else self.counts.sum(axis=0)


@dataclass(frozen=True)
class DateRange:
    """Days of a start/end date column, their growth weights, and their months."""

    start: np.datetime64
    days: int
    #: Month of each day, as codes into ``months``.
    month_of_day: np.ndarray
    weights: np.ndarray
    months: list[str]

    @property
    def month_starts(self) -> np.ndarray:
        return np.asarray([np.datetime64(f"{m}-01", "D") for m in self.months])


@dataclass
class TablePlan:
    name: str
    rows: int
    exact: dict[str, ExactColumn] = field(default_factory=dict)
    dates: dict[str, DateRange] = field(default_factory=dict)
    #: For a table with ``rows.per``: children-per-parent values and how many parents have each.
    children: ExactColumn | None = None


@dataclass
class Plan:
    spec: DataSpec
    tables: dict[str, TablePlan]


def children_column(child: str) -> str:
    """Name of the hidden parent column holding each parent's number of ``child`` rows."""
    return f"__children_of_{child}"


def make_plan(
    spec: DataSpec,
    rows: Mapping[str, int] | None = None,
    per_parent_mean: Mapping[str, float] | None = None,
) -> Plan:
    """Row counts and exact quotas of ``spec``, with optional size overrides.

    ``rows`` overrides the row count of tables with a fixed count; ``per_parent_mean``
    overrides the average number of children per parent of tables with ``rows.per``
    (the shape of the distribution stays as declared).
    """
    rows = dict(rows or {})
    per_parent_mean = dict(per_parent_mean or {})
    for name in [*rows, *per_parent_mean]:
        spec.table(name)  # unknown table -> SpecError with a suggestion
    for name, count in rows.items():
        if spec.tables[name].rows.per:
            raise SpecError(
                f"{spec.source}: table {name!r} has a row count per parent; change its "
                "average with per_parent_mean, not rows."
            )
        if int(count) < 0:
            raise SpecError(f"{spec.source}: rows of {name!r} must be >= 0, got {count}.")
    plans: dict[str, TablePlan] = {}
    for name in spec.load_order():
        table = spec.tables[name]
        if table.rows.per:
            parent = plans[table.rows.per]
            support, probabilities = count_distribution(spec, table, per_parent_mean.get(name))
            hist = apportion(parent.rows, probabilities) if parent.rows else np.zeros_like(support)
            children = ExactColumn(categories=support.tolist(), counts=hist)
            parent.exact[children_column(name)] = children
            plan = TablePlan(name, int((support * hist).sum()), children=children)
            _check_distinct(spec, table, plans, int(support[hist > 0].max(initial=0)))
        else:
            plan = TablePlan(name, int(rows.get(name, table.rows.count)))
        for column in _columns_in_order(table):
            _plan_column(spec, table, column, plan)
        plans[name] = plan
    return Plan(spec, plans)


def _check_distinct(
    spec: DataSpec, table: TableSpec, plans: Mapping[str, TablePlan], most: int
) -> None:
    """A link table's parent with ``most`` children needs that many distinct other parents.

    Checked on the plan, after resizing: the spec may be fine at its own sizes and not at
    the sizes asked for.
    """
    for column in table.columns.values():
        if column.type != "reference" or "distinct_per" not in column.options:
            continue
        available = plans[column.parent_table].rows
        if most > available:
            raise SpecError(
                f"{spec.source}: table {table.name!r}, column {column.name!r}: a "
                f"{table.rows.per} row gets up to {most} {table.name} rows, each with a "
                f"different {column.parent_table} row, but {column.parent_table!r} has only "
                f"{available} rows at this size. Lower the counts (rows.counts.max) or give "
                f"{column.parent_table!r} more rows."
            )


def _columns_in_order(table: TableSpec) -> list[ColumnSpec]:
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        for dep in table.columns[name].depends_on:
            if "." not in dep:
                visit(dep)
        done.append(name)

    for name in table.columns:
        visit(name)
    return [table.columns[n] for n in done]


def column_order(table: TableSpec) -> list[ColumnSpec]:
    """Columns of ``table`` with every column before the columns that use it."""
    return _columns_in_order(table)


def category_values(column: ColumnSpec) -> list[Any]:
    """All values a categorical column can take, in first-declared order."""
    o = column.options
    if column.type == "boolean":
        return [False, True]
    sources: list[Any] = [o.get("values") or {}, *(o.get("values_by") or {}).values()]
    sources += [o.get("default") or {}, (o.get("blend") or {}).get("values") or {}]
    if "otherwise" in o:
        sources.append({o["otherwise"]: 1})
    if "map" in o:
        sources.append(dict.fromkeys(o["map"]["values"].values(), 1))
        if "default" in o["map"]:
            sources.append({o["map"]["default"]: 1})
    if "bins" in o:
        sources.append(dict.fromkeys(o["bins"]["labels"], 1))
        if "missing" in o["bins"]:
            sources.append({o["bins"]["missing"]: 1})
    values: list[Any] = []
    for source in sources:
        values.extend(v for v in source if v not in values)
    return values


def _plan_column(spec: DataSpec, table: TableSpec, column: ColumnSpec, plan: TablePlan) -> None:
    o = column.options
    where = f"{spec.source}: table {table.name!r}, column {column.name!r}"
    if column.type in ("date", "timestamp") and "from" not in o:
        dates = date_range(o)
        plan.dates[column.name] = dates
        month_weights = np.bincount(dates.month_of_day, weights=dates.weights)
        counts = apportion(plan.rows, month_weights)
        plan.exact[column.name] = ExactColumn(dates.months, counts)
        return
    if not is_exact(table, column):
        return
    if column.type == "boolean" and "rate" in o:
        counts = apportion(plan.rows, [1 - o["rate"], o["rate"]])
        plan.exact[column.name] = ExactColumn([False, True], counts)
        return
    if column.type == "boolean":
        month_of = str(o["rate_by_month"]["month_of"])
        months = plan.exact[month_of]
        rates = month_rates(o["rate_by_month"]["curve"], months.categories)
        joint = (
            np.stack(
                [_split(int(n), [1 - r, r]) for n, r in zip(months.marginal, rates, strict=True)]
            )
            if months.categories
            else np.zeros((0, 2), dtype=np.int64)
        )
        plan.exact[column.name] = ExactColumn([False, True], joint, given=month_of)
        return
    values = category_values(column)
    if "values" in o:
        shares = [o["values"].get(v, 0.0) for v in values]
        plan.exact[column.name] = ExactColumn(values, _split(plan.rows, shares))
        return
    given = str(o["given"])
    given_column = plan.exact[given]
    rows = []
    for value, n in zip(given_column.categories, given_column.marginal, strict=True):
        shares_by = _lookup(o["values_by"], value)
        if shares_by is None:
            shares_by = o.get("default")
        if shares_by is None:
            raise SpecError(
                f"{where}: values_by has no entry for {given}={value!r}. Add one, or a "
                "`default:` for values not listed."
            )
        rows.append(_split(int(n), [shares_by.get(v, 0.0) for v in values]))
    joint = np.stack(rows) if rows else np.zeros((0, len(values)), dtype=np.int64)
    plan.exact[column.name] = ExactColumn(values, joint, given=given)


def _split(total: int, shares: list[float]) -> np.ndarray:
    return apportion(total, shares) if total else np.zeros(len(shares), dtype=np.int64)


def _lookup(mapping: Mapping[Any, Any], value: Any) -> Any:
    """``mapping[value]``, also when YAML gave the key another type ('1' vs 1)."""
    if value in mapping:
        return mapping[value]
    for key, item in mapping.items():
        if str(key) == str(value):
            return item
    return None


def date_range(o: Mapping[str, Any]) -> DateRange:
    start = np.datetime64(str(o["start"])[:10], "D")
    end = np.datetime64(str(o["end"])[:10], "D")
    days = int((end - start) / np.timedelta64(1, "D")) + 1
    growth = float(o.get("growth", 1.0))
    rate = math.log(growth) / max(days - 1, 1)
    weights = np.exp(rate * np.arange(days))
    all_days = start + np.arange(days).astype("timedelta64[D]")
    month_strings = np.datetime_as_string(all_days.astype("datetime64[M]"))
    months, month_of_day = np.unique(month_strings, return_inverse=True)
    return DateRange(start, days, month_of_day, weights, [str(m) for m in months])


def month_rates(curve: Mapping[Any, float], months: list[str]) -> np.ndarray:
    """Rate of each month: the curve's knots, linearly interpolated, flat beyond the ends."""
    knots = sorted((_month_number(str(k)), float(v)) for k, v in curve.items())
    x = np.asarray([k for k, _ in knots], dtype=float)
    y = np.asarray([v for _, v in knots], dtype=float)
    return np.interp(np.asarray([_month_number(m) for m in months], dtype=float), x, y)


def _month_number(month: str) -> int:
    day = dt.date.fromisoformat(f"{month[:7]}-01")
    return day.year * 12 + day.month - 1


def count_distribution(
    spec: DataSpec, table: TableSpec, mean_override: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Support (0..K) and probabilities of the number of children per parent row.

    A parent has 0 children with probability ``zero_share``; otherwise ``min`` plus a draw
    of the declared distribution, cut at ``max`` (or where the tail holds < 1e-9).
    ``mean_override`` sets the *overall* average number of children.
    """
    c = dict(table.rows.counts)
    name = c["distribution"]
    zero = float(c.get("zero_share", 0.0))
    low = int(c.get("min", 0))
    high = int(c.get("max", MAX_CHILDREN))
    if name == "explicit":
        support = np.arange(max(int(k) for k in c["values"]) + 1)
        p = np.zeros(support.size)
        for k, share in c["values"].items():
            p[int(k)] = share
        return support, p
    if mean_override is not None:
        if mean_override < 0:
            raise SpecError(f"{spec.source}: average children of {table.name!r} must be >= 0.")
        if mean_override == 0:
            return np.zeros(1, dtype=np.int64), np.ones(1)
        c["mean"] = max(mean_override / (1.0 - zero) - low, 1e-6)
    mean = float(c["mean"])
    k = np.arange(0, min(high - low, MAX_CHILDREN) + 1, dtype=float)
    # log p(k) by the ratio p(k+1)/p(k), summed up: exact, vectorised, no gamma function.
    if name == "poisson":
        step = np.log(mean / (k[:-1] + 1.0))
    elif name == "geometric":  # on 0, 1, 2, ... with the given mean
        step = np.full(k.size - 1, math.log(mean / (1.0 + mean)))
    else:  # negative binomial with mean m and dispersion (shape) r
        r = float(c["dispersion"])
        step = np.log((k[:-1] + r) / (k[:-1] + 1.0)) + math.log(mean / (mean + r))
    log_p = np.concatenate([[0.0], np.cumsum(step)])
    p = np.exp(log_p - log_p.max())
    p /= p.sum()
    cdf = np.cumsum(p)
    cut = int(np.searchsorted(cdf, 1.0 - TAIL_MASS)) + 1
    p = p[:cut] / p[:cut].sum()
    support = np.arange(low + cut if low else cut)
    probabilities = np.zeros(support.size)
    probabilities[low : low + cut] = (1.0 - zero) * p
    probabilities[0] += zero
    return support, probabilities
