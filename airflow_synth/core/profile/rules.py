"""Rules a real table obeys on every row, found on the training rows and kept in the output.

Marginal and pairwise scores do not see a table's logic; a test or dashboard built on the
synthetic copy does. Three kinds of rule are discovered (pure functions, no Airflow):

* **functional dependency** ``A -> B``: every value of ``A`` comes with one value of ``B``
  (a plan code fixes its rate; a destination of ``NDF`` fixes ``booked = false``);
* **ordering** ``a <= b``: holds on every row where both are set (shipped after ordered;
  min <= avg <= max);
* **null pattern**: ``B`` is NULL exactly when ``A`` takes certain values (no refund
  amount unless the order was refunded).

A rule is kept only when it holds on 100% of the training rows and has support (several
rows per determining value, a real spread between ordered columns), so coincidences of a
small table are not enforced. :class:`RuleSet` then *repairs* each sampled batch (the
dependent value is set from the determinant, an ordered pair is swapped, the NULL state
follows its determinant) and measures how often each rule holds on any table. Contracts
declare rules and switch discovered ones off by id (``rules:`` / ``rules_off:``).

Rule ids and log lines name columns only; the value of a null pattern's determinant (a
category that many rows share) appears in the report, never in a log.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from airflow_synth.core.errors import ContractError
from airflow_synth.core.profile.kinds import ColumnProfile

log = logging.getLogger(__name__)

FUNCTIONAL_DEPENDENCY, ORDERING, NULL_PATTERN = "functional_dependency", "ordering", "null_pattern"
RULE_TYPES = (FUNCTIONAL_DEPENDENCY, ORDERING, NULL_PATTERN)
#: A determining value must be held by at least this many training rows to be enforced.
MIN_SUPPORT_ROWS = 5
#: Determinants have at most this many distinct values (and this share of the rows).
MAX_DETERMINANT_VALUES = 200
MAX_DETERMINANT_SHARE = 0.2
#: An ordering needs both columns set on this share of rows, and a < b on this share.
MIN_ORDERING_COVERAGE = 0.5
MIN_ORDERING_STRICT = 0.05
#: A null pattern's determining values are at most this many.
MAX_NULL_PATTERN_VALUES = 10
#: At most this many rules are kept (the report lists them all).
MAX_RULES = 100


@dataclass
class Rule:
    """One rule; ``mapping`` (functional dependencies) and ``value`` (null patterns) stay in
    the worker and the report, never in a log."""

    type: str
    columns: tuple[str, str]
    source: str = "discovered"
    mapping: dict[Any, Any] = field(default_factory=dict, repr=False)
    value: Any = field(default=None, repr=False)

    @property
    def id(self) -> str:
        a, b = self.columns
        if self.type == FUNCTIONAL_DEPENDENCY:
            return f"{a} -> {b}"
        if self.type == ORDERING:
            return f"{a} <= {b}"
        return f"{b} is null exactly when {a} takes certain values"

    def describe(self) -> str:
        """For the report: the null pattern's value included (a category many rows hold)."""
        if self.type == NULL_PATTERN:
            values = ", ".join(map(repr, self.value or ()))
            return f"{self.columns[1]} is null exactly when {self.columns[0]} is one of {values}"
        if self.type == FUNCTIONAL_DEPENDENCY:
            return f"each {self.columns[0]} fixes one {self.columns[1]}"
        return f"{self.columns[0]} <= {self.columns[1]} on every row where both are set"

    def holds(self, frame: pd.DataFrame) -> float | None:
        """Share of the rows it applies to on which the rule holds (None: no such row)."""
        a, b = self.columns
        if a not in frame or b not in frame or frame.empty:
            return None
        if self.type == ORDERING:
            both = frame[a].notna() & frame[b].notna()
            if not both.any():
                return None
            return float((_as_number(frame[a])[both] <= _as_number(frame[b])[both]).mean())
        if self.type == NULL_PATTERN:
            expected = _equals(frame[a], self.value)
            return float((frame[b].isna() == expected).mean())
        if self.mapping:
            known = frame[a].isin(list(self.mapping))
            if not known.any():
                return None
            wanted = frame.loc[known, a].map(self.mapping)
            got = frame.loc[known, b]
            same = (got == wanted) | (got.isna() & wanted.isna())
            return float(same.mean())
        counts = frame.groupby(a, dropna=True)[b].nunique(dropna=False)
        rows = frame[a].notna()
        bad = frame.loc[rows, a].map(counts) > 1
        return float(1 - bad.mean()) if rows.any() else None

    def repair(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """Make the rule hold on ``frame`` (changes only the dependent column or the pair)."""
        a, b = self.columns
        if a not in frame or b not in frame or frame.empty:
            return frame
        # whole columns are replaced (``where``), so an int column that takes a float (or
        # the reverse) changes dtype instead of raising pandas' incompatible-dtype warning
        if self.type == FUNCTIONAL_DEPENDENCY and self.mapping:
            known = frame[a].isin(list(self.mapping))
            frame[b] = frame[b].where(~known, frame[a].map(self.mapping))
        elif self.type == ORDERING:
            left, right = frame[a], frame[b]
            swap = (left.notna() & right.notna()) & (_as_number(left) > _as_number(right))
            if swap.any():
                frame[a], frame[b] = left.where(~swap, right), right.where(~swap, left)
        elif self.type == NULL_PATTERN:
            expected = _equals(frame[a], self.value)
            column = frame[b].astype(object)
            column[expected] = None
            fill = expected.eq(False) & column.isna()
            pool = column[~expected & column.notna()]
            if fill.any() and len(pool):
                column[fill] = pool.to_numpy()[rng.integers(0, len(pool), int(fill.sum()))]
            frame[b] = column.infer_objects() if frame[b].dtype != object else column
        return frame

    def to_dict(self, *, with_value: bool = False) -> dict[str, Any]:
        data = {"id": self.id, "type": self.type, "columns": list(self.columns)}
        data["source"] = self.source
        if with_value:
            data["description"] = self.describe()
        return data


def _as_number(series: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        stamps = series.dt.tz_localize(None) if getattr(series.dt, "tz", None) else series
        raw = stamps.to_numpy(dtype="datetime64[ns]")
        numbers = raw.view("int64").astype(np.float64)
        numbers[np.isnat(raw)] = np.nan
        return pd.Series(numbers, index=series.index)
    return pd.to_numeric(series, errors="coerce")


def _equals(series: pd.Series, values: Any) -> pd.Series:
    """Rows whose value is one of ``values`` (a list; a single value is a list of one)."""
    if not isinstance(values, list | tuple | set):
        values = [values]
    return series.isin(list(values)).fillna(False).astype(bool)


class RuleSet:
    """The rules of one table: repair sampled batches, measure hold rates."""

    def __init__(self, rules: Sequence[Rule], seed: int = 0) -> None:
        self.rules = list(rules)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.rules)

    def repair(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Apply every rule, then the orderings again until all of them hold.

        One swap can break another ordering of a chain (``n <= min <= avg <= max <=
        total``: two passes left 2 in 50,000 rows broken). Swapping a pair that is out of
        order always lowers the number of out-of-order pairs along any order consistent
        with the rules, so repeating the passes ends; the bound is only a safeguard.
        """
        out = frame.copy()
        for rule in self.rules:
            out = rule.repair(out, self.rng)
        orderings = [rule for rule in self.rules if rule.type == ORDERING]
        for _ in range(len(orderings) ** 2 + 1):
            if all((rule.holds(out) or 1.0) >= 1.0 for rule in orderings):
                break
            for rule in orderings:
                out = rule.repair(out, self.rng)
        return out

    def report(self, real: pd.DataFrame, synthetic: pd.DataFrame) -> dict[str, Any]:
        """``quality.json``'s ``rules``: each rule's hold rate on real and synthetic rows, and
        ``held`` (the lowest synthetic hold rate; 1.0 with no rule)."""
        rows = []
        for rule in self.rules:
            rows.append(
                {
                    **rule.to_dict(with_value=True),
                    "real_hold": _round(rule.holds(real)),
                    "synthetic_hold": _round(rule.holds(synthetic)),
                }
            )
        rates = [r["synthetic_hold"] for r in rows if r["synthetic_hold"] is not None]
        return {"held": min(rates) if rates else 1.0, "count": len(rows), "rules": rows}

    def summary_lines(self) -> list[str]:
        """Log lines: ids and sources only (no values)."""
        if not self.rules:
            return ["Rules: none found that hold on every training row"]
        return [f"Rule ({r.source}): {r.id}" for r in self.rules]


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


# -- discovery ---------------------------------------------------------------------------------
def discover_rules(
    frame: pd.DataFrame,
    profiles: Sequence[ColumnProfile],
    *,
    declared: Sequence[Mapping[str, Any]] = (),
    switched_off: Iterable[str] = (),
) -> list[Rule]:
    """Rules that hold on every row of ``frame`` (the training rows), plus declared ones."""
    kinds = {p.name: p.kind for p in profiles if p.name in frame.columns}
    off = set(switched_off)
    rules = [parse_rule(item, frame.columns) for item in declared]
    seen = {r.id for r in rules}
    for rule in [
        *_orderings(frame, kinds),
        *_dependencies(frame, kinds),
        *_null_patterns(frame, kinds),
    ]:
        if rule.id not in seen and rule.id not in off:
            rules.append(rule)
            seen.add(rule.id)
    for rule in rules:
        if rule.type == FUNCTIONAL_DEPENDENCY and not rule.mapping:
            rule.mapping = _mapping(frame, *rule.columns)
    unknown_off = off - {r.id for r in [*_orderings(frame, kinds), *_dependencies(frame, kinds)]}
    unknown_off -= {r.id for r in _null_patterns(frame, kinds)}
    if unknown_off:
        log.info("rules_off names rules not found in this data: %s", ", ".join(sorted(unknown_off)))
    return rules[:MAX_RULES]


def parse_rule(item: Mapping[str, Any], columns: Iterable[str]) -> Rule:
    """A rule declared in a contract (``{type: ordering, low: a, high: b}`` ...)."""
    columns = set(columns)
    kind = item.get("type")
    keys = {
        ORDERING: ("low", "high"),
        FUNCTIONAL_DEPENDENCY: ("determinant", "dependent"),
        NULL_PATTERN: ("when", "column"),
    }
    if kind not in keys:
        raise ContractError(f"rule {dict(item)!r}: type must be one of {RULE_TYPES}.")
    names = tuple(item.get(k) for k in keys[kind])
    missing = [n for n in names if n not in columns]
    if missing:
        raise ContractError(
            f"rule {dict(item)!r} names columns {missing} that are not modelled columns of "
            "the table; fix the names (keys and PII have no rules)."
        )
    return Rule(kind, (str(names[0]), str(names[1])), "declared", value=item.get("value"))


def _orderings(frame: pd.DataFrame, kinds: Mapping[str, str]) -> list[Rule]:
    found = []
    for group in ("datetime", "number"):
        names = [
            c
            for c, k in kinds.items()
            if (k == "datetime") == (group == "datetime")
            and k in ("discrete", "continuous", "datetime")
        ]
        for a, b in itertools.permutations(names, 2):
            left, right = _as_number(frame[a]), _as_number(frame[b])
            both = left.notna() & right.notna()
            if both.mean() < MIN_ORDERING_COVERAGE:
                continue
            if (left[both] <= right[both]).all() and (left[both] < right[both]).mean() >= (
                MIN_ORDERING_STRICT
            ):
                found.append(Rule(ORDERING, (a, b)))
    return found


def _determinants(frame: pd.DataFrame, kinds: Mapping[str, str]) -> list[str]:
    out = []
    for name, kind in kinds.items():
        if kind not in ("categorical", "boolean"):
            continue
        counts = frame[name].value_counts(dropna=True)
        if 2 <= len(counts) <= MAX_DETERMINANT_VALUES and len(counts) <= (
            MAX_DETERMINANT_SHARE * len(frame)
        ):
            out.append(name)
    return out


def _dependencies(frame: pd.DataFrame, kinds: Mapping[str, str]) -> list[Rule]:
    found = []
    for a in _determinants(frame, kinds):
        known = frame[a].notna()
        counts = frame.loc[known, a].value_counts()
        if counts.min() < MIN_SUPPORT_ROWS:
            continue
        grouped = frame.loc[known].groupby(a, dropna=True)
        for b in kinds:
            if b == a or frame[b].nunique(dropna=False) < 2:
                continue
            if int(grouped[b].nunique(dropna=False).max()) == 1:
                found.append(Rule(FUNCTIONAL_DEPENDENCY, (a, b)))
    return found


def _mapping(frame: pd.DataFrame, a: str, b: str) -> dict[Any, Any]:
    """Determinant value -> dependent value, for determining values held by enough rows."""
    known = frame[frame[a].notna()]
    counts = known[a].value_counts()
    supported = counts[counts >= MIN_SUPPORT_ROWS].index
    first = known[known[a].isin(supported)].drop_duplicates(subset=[a])
    values = first[b].astype(object).where(first[b].notna(), None)
    return dict(zip(first[a], values, strict=True))


def _null_patterns(frame: pd.DataFrame, kinds: Mapping[str, str]) -> list[Rule]:
    """``B`` NULL exactly when ``A`` is in a few values. ``A`` may be a category or a number
    whose determining values many rows share (no session total exactly when the session
    count is 0): without the rule a model makes "0 sessions, 400 s in total" rows."""
    found = []
    determinants = _determinants(frame, kinds) + [
        name for name, kind in kinds.items() if kind in ("discrete", "continuous")
    ]
    for b in kinds:
        nulls = frame[b].isna()
        if not 0 < nulls.mean() < 1:
            continue
        for a in determinants:
            if a == b:
                continue
            values = frame.loc[nulls, a].unique()
            if any(pd.isna(v) for v in values) or len(values) >= frame[a].nunique():
                continue  # NULL determinants, or B null for every value of A: no pattern
            if len(values) > MAX_NULL_PATTERN_VALUES:
                continue
            chosen = frame[a].isin(values)
            if frame.loc[chosen, a].value_counts().min() < MIN_SUPPORT_ROWS:
                continue
            if bool(nulls[chosen].all()):
                found.append(Rule(NULL_PATTERN, (a, b), value=sorted(map(_plain, values))))
    return found


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


__all__ = [
    "FUNCTIONAL_DEPENDENCY",
    "NULL_PATTERN",
    "ORDERING",
    "RULE_TYPES",
    "Rule",
    "RuleSet",
    "discover_rules",
    "parse_rule",
]
