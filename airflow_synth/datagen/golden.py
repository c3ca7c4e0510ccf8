"""Golden checks: does a table (a feature query's result, a synthetic copy) hold the truths?

A golden test seeds a database from a spec, runs the pipeline, and compares its output with
the spec's answer key::

    from airflow_synth.datagen import answer_key, assert_truths, load_spec

    spec = load_spec("specs/userbookings.yaml")
    features = pd.read_sql(open("sql/features/session_features_by_user.sql").read(), conn)
    assert_truths(features, answer_key(spec), columns={"sessions_per_user": "n_actions"})

Frame columns are found by the spec's column names (``booked``, ``date_account_created``,
``signup_method``), or by the truth's name for ``children_per_parent`` (the per-parent
count); ``columns`` renames where the frame differs.

Two ways to compare:

* **exact** (``tolerance=None``): every count must equal the answer key, to the row. This is
  the test for a query over generated data: any dropped, duplicated or misclassified row
  shows up.
* **within a tolerance** (:class:`Tolerance`): for a synthetic copy, which can only be close.
  Shares and rates are compared as proportions, with a bound per group of
  ``max(absolute, sigmas * sqrt(p * (1 - p) / n))``: an absolute floor for big groups, and
  ``sigmas`` binomial standard errors for small groups whose rate is noisy however good the
  synthesizer is. ``children_per_parent`` compares the share of parents without children
  (as a share) and the mean number of children (relative).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from airflow_synth.datagen.spec import DataSpec
from airflow_synth.datagen.truths import Truth, answer_key


@dataclass(frozen=True)
class Tolerance:
    """How close a synthetic table must come to the truths (see the module docstring)."""

    #: Absolute floor of the bound on a share or rate (0.005 = 0.5 percentage points).
    absolute: float = 0.005
    #: Binomial standard errors allowed per group (0: the absolute floor only).
    sigmas: float = 0.0
    #: Relative tolerance of a mean (children per parent), e.g. 0.1 = 10 %.
    relative_mean: float = 0.1
    #: Compare only the overall rate of rate_by_month truths, not every month.
    overall_only: bool = False

    def bound(self, p: float, n: int) -> float:
        noise = self.sigmas * math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else math.inf
        return max(self.absolute, noise)


@dataclass(frozen=True)
class TruthResult:
    """The comparison of one truth: a row per group, and whether all are within bounds."""

    truth: Truth
    rows: pd.DataFrame
    exact: bool
    column: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.rows["ok"].all())

    def describe(self, limit: int = 12) -> str:
        t = self.truth
        where = f"{t.spec.table}.{t.spec.column}" if t.spec.column else t.spec.table
        bad = self.rows[~self.rows["ok"]]
        mode = "exact" if self.exact else "tolerance"
        head = (
            f"{'PASS' if self.ok else 'FAIL'} {t.name} ({t.kind} of {where}, {mode}"
            + (f", frame column {self.column!r}" if self.column else "")
            + f"): {len(bad)} of {len(self.rows)} groups differ"
        )
        if bad.empty:
            return head
        lines = [
            head,
            f"    {'group':<14} {'expected':>22} {'actual':>22} {'diff':>10} {'bound':>9}",
        ]
        for row in bad.head(limit).itertuples():
            expected = _fmt(row.expected_count, row.expected_of, row.expected)
            actual = _fmt(row.actual_count, row.actual_of, row.actual)
            lines.append(
                f"    {str(row.key):<14} {expected:>22} {actual:>22}"
                f" {row.diff:>+10.4g} {row.bound:>9.3g}"
            )
        if len(bad) > limit:
            lines.append(f"    ... and {len(bad) - limit} more")
        return "\n".join(lines)


def _fmt(count: float, of: float, value: float) -> str:
    if isinstance(count, float) and math.isnan(count):
        return f"{value:.4g}"
    return f"{int(count)}/{int(of)} ({value:.4f})"


@dataclass(frozen=True)
class TruthReport:
    results: list[TruthResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def __getitem__(self, name: str) -> TruthResult:
        return next(r for r in self.results if r.truth.name == name)

    def diff(self) -> str:
        """Readable expected-vs-actual per truth (mismatching groups listed)."""
        return "\n".join(r.describe() for r in self.results)

    def __str__(self) -> str:
        return self.diff()


def check_truths(
    frame: pd.DataFrame,
    truths: DataSpec | Mapping[str, Truth],
    *,
    columns: Mapping[str, str] | None = None,
    only: Iterable[str] | None = None,
    tolerance: Tolerance | None = None,
) -> TruthReport:
    """Compare ``frame`` with the truths (an answer key, or a spec at its declared size).

    ``only`` limits the check to some truths (those whose table the frame represents).
    ``tolerance=None`` demands exact counts. Returns a :class:`TruthReport`; it never raises
    for a mismatch, so callers can print or assert as they like.
    """
    key = answer_key(truths) if isinstance(truths, DataSpec) else dict(truths)
    names = list(only) if only is not None else list(key)
    unknown = [n for n in names if n not in key]
    if unknown:
        raise KeyError(f"no truth named {', '.join(unknown)}; declared: {', '.join(key)}")
    columns = dict(columns or {})
    results = []
    for name in names:
        truth = key[name]
        results.append(_compare(truth, frame, columns, tolerance))
    return TruthReport(results)


def assert_truths(
    frame: pd.DataFrame,
    truths: DataSpec | Mapping[str, Truth],
    *,
    columns: Mapping[str, str] | None = None,
    only: Iterable[str] | None = None,
    tolerance: Tolerance | None = None,
) -> TruthReport:
    """:func:`check_truths`, raising ``AssertionError`` with the readable diff on a mismatch."""
    report = check_truths(frame, truths, columns=columns, only=only, tolerance=tolerance)
    if not report.ok:
        raise AssertionError("declared truths not reproduced:\n" + report.diff())
    return report


def _column(frame: pd.DataFrame, name: str, columns: Mapping[str, str], truth: Truth) -> str:
    found = columns.get(name, name)
    if found not in frame.columns:
        raise KeyError(
            f"truth {truth.name!r} needs column {found!r}, which the frame does not have "
            f"(columns: {', '.join(map(str, frame.columns))}). Pass columns={{{name!r}: "
            "'<frame column>'}."
        )
    return found


def observe(
    truth: Truth, frame: pd.DataFrame, columns: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """The truth's table (key, count, of, value) as found in ``frame``."""
    columns = dict(columns or {})
    kind = truth.kind
    if kind == "row_count":
        n = len(frame)
        return pd.DataFrame({"key": ["rows"], "count": [n], "of": [n], "value": [1.0]})
    if kind == "children_per_parent":
        col = _column(frame, truth.name, columns, truth)
        counts = frame[col].value_counts()
        out = pd.DataFrame({"key": counts.index.astype(np.int64), "count": counts.to_numpy()})
    elif kind == "shares":
        col = _column(frame, truth.spec.column, columns, truth)
        values = frame[col].astype(object).where(frame[col].notna(), None)
        counts = values.value_counts(dropna=False)
        out = pd.DataFrame({"key": list(counts.index), "count": counts.to_numpy()})
    else:
        col = _column(frame, truth.spec.column, columns, truth)
        outcome = frame[col].astype(bool)
        if kind == "rate":
            out = pd.DataFrame({"key": ["all"], "count": [int(outcome.sum())], "of": [len(frame)]})
            out["value"] = out["count"] / out["of"].clip(lower=1)
            return out
        mcol = _column(frame, str(truth.month_of), columns, truth)
        month = pd.to_datetime(frame[mcol]).dt.strftime("%Y-%m")
        grouped = outcome.groupby(month).agg(["sum", "size"])
        out = pd.DataFrame(
            {
                "key": grouped.index,
                "count": grouped["sum"].to_numpy(),
                "of": grouped["size"].to_numpy(),
            }
        )
        out["value"] = out["count"] / out["of"]
        return out.reset_index(drop=True)
    total = int(out["count"].sum())
    out["of"] = total
    out["value"] = out["count"] / max(total, 1)
    return out


def _compare(
    truth: Truth, frame: pd.DataFrame, columns: Mapping[str, str], tolerance: Tolerance | None
) -> TruthResult:
    expected = truth.expected
    if truth.kind == "rate_by_month":
        expected = expected[expected["of"] > 0]
    actual = observe(truth, frame, columns)
    column = (
        ""
        if truth.kind == "row_count"
        else columns.get(
            truth.name if truth.kind == "children_per_parent" else truth.spec.column, ""
        )
    )
    if tolerance is not None and truth.kind == "children_per_parent":
        return TruthResult(truth, _children_summary(expected, actual, tolerance), False, column)
    merged = pd.merge(
        expected.assign(_k=expected["key"].map(_key)),
        actual.assign(_k=actual["key"].map(_key)),
        on="_k",
        how="outer",
        suffixes=("_e", "_a"),
    )
    key = merged["key_e"].where(merged["key_e"].notna(), merged["key_a"])
    rows = pd.DataFrame(
        {
            "key": key,
            "expected_count": merged["count_e"].fillna(0),
            "expected_of": merged["of_e"].fillna(expected["of"].max() if len(expected) else 0),
            "actual_count": merged["count_a"].fillna(0),
            "actual_of": merged["of_a"].fillna(actual["of"].max() if len(actual) else 0),
        }
    )
    if truth.kind == "rate_by_month":
        rows["expected_of"] = merged["of_e"].fillna(0)
        rows["actual_of"] = merged["of_a"].fillna(0)
    rows["expected"] = rows["expected_count"] / rows["expected_of"].clip(lower=1)
    rows["actual"] = rows["actual_count"] / rows["actual_of"].clip(lower=1)
    if tolerance is None:
        rows["diff"] = rows["actual_count"] - rows["expected_count"]
        rows["bound"] = 0.0
        rows["ok"] = (rows["diff"] == 0) & (rows["actual_of"] == rows["expected_of"])
        if truth.kind == "row_count":
            rows["ok"] = rows["diff"] == 0
    else:
        if truth.kind == "row_count":
            rows["diff"] = 0.0
            rows["bound"] = 0.0
            rows["ok"] = True
            return TruthResult(truth, rows, False, column)
        if truth.kind == "rate_by_month" and tolerance.overall_only:
            rows = _overall(rows)
        rows["diff"] = rows["actual"] - rows["expected"]
        rows["bound"] = [
            tolerance.bound(p, int(n))
            for p, n in zip(rows["expected"], rows["actual_of"], strict=True)
        ]
        rows["ok"] = rows["diff"].abs() <= rows["bound"]
    return TruthResult(
        truth,
        rows.sort_values("key", key=lambda s: s.map(_key)).reset_index(drop=True),
        tolerance is None,
        column,
    )


def _overall(rows: pd.DataFrame) -> pd.DataFrame:
    e_count, e_of = rows["expected_count"].sum(), rows["expected_of"].sum()
    a_count, a_of = rows["actual_count"].sum(), rows["actual_of"].sum()
    return pd.DataFrame(
        {
            "key": ["all months"],
            "expected_count": [e_count],
            "expected_of": [e_of],
            "actual_count": [a_count],
            "actual_of": [a_of],
            "expected": [e_count / max(e_of, 1)],
            "actual": [a_count / max(a_of, 1)],
        }
    )


def _children_summary(
    expected: pd.DataFrame, actual: pd.DataFrame, tolerance: Tolerance
) -> pd.DataFrame:
    def summary(t: pd.DataFrame) -> tuple[float, float, int]:
        n = int(t["count"].sum())
        zero = float(t.loc[t["key"] == 0, "count"].sum()) / max(n, 1)
        mean = float((t["key"] * t["count"]).sum()) / max(n, 1)
        return zero, mean, n

    e_zero, e_mean, _ = summary(expected)
    a_zero, a_mean, a_n = summary(actual)
    nan = float("nan")
    rows = pd.DataFrame(
        {
            "key": ["share with none", "mean"],
            "expected_count": [nan, nan],
            "expected_of": [nan, nan],
            "actual_count": [nan, nan],
            "actual_of": [nan, nan],
            "expected": [e_zero, e_mean],
            "actual": [a_zero, a_mean],
        }
    )
    rows["diff"] = rows["actual"] - rows["expected"]
    rows["bound"] = [tolerance.bound(e_zero, a_n), tolerance.relative_mean * e_mean]
    rows["ok"] = rows["diff"].abs() <= rows["bound"]
    return rows


def _key(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\x00null"
    if isinstance(value, bool | np.bool_):
        return f"bool:{bool(value)}"
    if isinstance(value, int | np.integer) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value):012d}"
    return str(value)
