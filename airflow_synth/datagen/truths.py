"""The answer key: what each declared truth says the data hold, computed from the spec alone.

Generated data honour these numbers to the row (see :mod:`airflow_synth.datagen.plan`), so a
golden test compares what a query returns with :func:`answer_key` and needs no second
implementation of the pipeline. Every truth becomes a small table with one row per group:

============================  ==========================  ==========  =====================
kind                          ``key``                     ``count``   ``of``
============================  ==========================  ==========  =====================
``shares``                    category (None for NULL)    rows        all rows
``rate``                      ``"all"``                   True rows   all rows
``rate_by_month``             month ``"YYYY-MM"``         True rows   rows of that month
``children_per_parent``       number of children k        parents     all parents
``row_count``                 ``"rows"``                  rows        rows
============================  ==========================  ==========  =====================

``value`` is ``count / of`` (a share or a rate).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from airflow_synth.datagen.plan import Plan, children_column, make_plan
from airflow_synth.datagen.spec import DataSpec, TruthSpec


@dataclass(frozen=True)
class Truth:
    """One declared truth and its expected values (columns key, count, of, value)."""

    spec: TruthSpec
    expected: pd.DataFrame

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def month_of(self) -> str | None:
        return self.spec.month_of

    @property
    def overall(self) -> float:
        """The truth in one number: overall rate, or mean children per parent, or rows."""
        e = self.expected
        if self.kind in ("rate", "rate_by_month"):
            return float(e["count"].sum() / max(e["of"].sum(), 1))
        if self.kind == "children_per_parent":
            return float((e["key"] * e["count"]).sum() / max(e["count"].sum(), 1))
        return float(e["count"].sum())


def answer_key(
    spec: DataSpec,
    rows: Mapping[str, int] | None = None,
    per_parent_mean: Mapping[str, float] | None = None,
) -> dict[str, Truth]:
    """Expected values of every declared truth of ``spec`` at the given sizes."""
    plan = make_plan(spec, rows, per_parent_mean)
    return {name: Truth(truth, _expected(plan, truth)) for name, truth in spec.truths.items()}


def _expected(plan: Plan, truth: TruthSpec) -> pd.DataFrame:
    table = plan.tables[truth.table]
    if truth.kind == "row_count":
        return _frame(["rows"], [table.rows], [table.rows])
    if truth.kind == "children_per_parent":
        parent = plan.spec.tables[truth.table].rows.per
        children = plan.tables[parent].exact[children_column(truth.table)]
        keep = children.counts > 0
        support = np.asarray(children.categories)[keep]
        total = int(children.counts.sum())
        return _frame(support.tolist(), children.counts[keep], [total] * int(keep.sum()))
    exact = table.exact[truth.column]
    if truth.kind == "shares":
        n = int(exact.marginal.sum())
        return _frame(exact.categories, exact.marginal, [n] * len(exact.categories))
    if truth.kind == "rate":
        return _frame(["all"], [int(exact.counts[1])], [table.rows])
    months = plan.tables[truth.table].exact[exact.given]
    return _frame(months.categories, exact.counts[:, 1], exact.counts.sum(axis=1))


def _frame(keys: list, counts, totals) -> pd.DataFrame:
    counts = np.asarray(counts, dtype=np.int64)
    totals = np.asarray(totals, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(totals > 0, counts / np.maximum(totals, 1), np.nan)
    return pd.DataFrame({"key": list(keys), "count": counts, "of": totals, "value": value})
