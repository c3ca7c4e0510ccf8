"""What kind of values each modelled column holds, measured before training.

A copula model treats every number as a smooth quantity. Real columns are not: a status
stored as integer codes 1-19 is a category (code 12 may not exist), a count that is 0 on
80% of rows has a *point mass* the model smears away, and a share of NULLs is part of the
data. :func:`profile_columns` measures each modelled column once, on the training rows:

* ``kind``: ``boolean``, ``categorical`` (text, and numbers with few distinct values, each
  held by many rows: codes, tiers),
  ``discrete`` (other whole numbers), ``continuous`` or ``datetime``;
* ``null_share``: the share of NULLs;
* ``point_masses``: values held by at least :data:`POINT_MASS_MIN_SHARE` of the rows of a
  numeric or date column (a 0, a cap, a default date), at most
  :data:`POINT_MASS_MAX` of them.

The engine honours the profile (:mod:`airflow_synth.core.engine.profile_codec`): codes are
learned as categories, point masses and NULLs as their own category beside the value,
integers come back whole and within the real range. The contract may set a column's kind
(``kind: categorical`` ...). The profile is published in ``metadata.json``; it holds no
minimum, maximum or rare value, only point masses, which by definition many rows share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from airflow_synth.core.contract import COLUMN_KINDS

KINDS = COLUMN_KINDS
#: An integer column with at most this many distinct values, each on average held by at
#: least :data:`CODE_MIN_ROWS_PER_VALUE` rows, is a set of codes (a category).
CODE_MAX_VALUES = 30
CODE_MIN_ROWS_PER_VALUE = 20
#: A value held by at least this share of rows is a point mass.
POINT_MASS_MIN_SHARE = 0.05
POINT_MASS_MAX = 3
#: ...and a column needs at least this many rows for its point masses to be trusted.
POINT_MASS_MIN_ROWS = 50


@dataclass(frozen=True)
class PointMass:
    """A value many rows share, and that share."""

    value: Any
    share: float

    def to_dict(self) -> dict[str, Any]:
        value = self.value
        if isinstance(value, pd.Timestamp):
            value = value.isoformat()
        elif isinstance(value, np.generic):
            value = value.item()
        return {"value": value, "share": round(float(self.share), 6)}


@dataclass(frozen=True)
class ColumnProfile:
    """One modelled column's kind, NULL share and point masses."""

    name: str
    kind: str
    null_share: float
    distinct: int
    integer: bool = False
    point_masses: tuple[PointMass, ...] = field(default_factory=tuple)
    declared: bool = False

    @property
    def sdtype(self) -> str:
        """The SDV sdtype that learns this kind."""
        return {
            "boolean": "boolean",
            "categorical": "categorical",
            "datetime": "datetime",
        }.get(self.kind, "numerical")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "null_share": round(float(self.null_share), 6),
            "distinct": int(self.distinct),
            "integer": self.integer,
            "point_masses": [m.to_dict() for m in self.point_masses],
            "declared": self.declared,
        }


def profile_columns(
    frame: pd.DataFrame,
    columns: Iterable[str] | None = None,
    *,
    declared: Mapping[str, str] | None = None,
) -> list[ColumnProfile]:
    """Profile ``columns`` (default: all) of ``frame``; ``declared`` fixes kinds by name."""
    declared = dict(declared or {})
    unknown = {k for k in declared.values() if k not in KINDS}
    if unknown:
        raise ValueError(f"unknown column kinds {sorted(unknown)}; use one of {KINDS}")
    names = list(frame.columns) if columns is None else list(columns)
    return [profile_column(frame[name], declared.get(name)) for name in names]


def profile_column(column: pd.Series, kind: str | None = None) -> ColumnProfile:
    """The profile of one column (``kind`` forces the kind, e.g. from the contract)."""
    values = column.dropna()
    null_share = float(column.isna().mean()) if len(column) else 0.0
    distinct = int(values.nunique())
    integer = _is_whole(values)
    found = kind or _detect_kind(column, values, distinct, integer)
    masses: tuple[PointMass, ...] = ()
    if found in ("discrete", "continuous", "datetime") and len(values) >= POINT_MASS_MIN_ROWS:
        shares = values.value_counts(normalize=False) / len(column)
        top = shares[shares >= POINT_MASS_MIN_SHARE].head(POINT_MASS_MAX)
        # a column of a few values is all "point masses": that is a category, not masses
        if len(top) and distinct > len(top):
            masses = tuple(PointMass(value, float(share)) for value, share in top.items())
    return ColumnProfile(
        name=str(column.name),
        kind=found,
        null_share=null_share,
        distinct=distinct,
        integer=integer and found in ("discrete", "categorical"),
        point_masses=masses,
        declared=kind is not None,
    )


def _is_whole(values: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(values.dtype):
        return False
    if pd.api.types.is_integer_dtype(values.dtype):
        return True
    return bool(len(values)) and bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))


def _detect_kind(column: pd.Series, values: pd.Series, distinct: int, integer: bool) -> str:
    if pd.api.types.is_bool_dtype(column.dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return "datetime"
    if not pd.api.types.is_numeric_dtype(column.dtype):
        if distinct <= 2 and set(map(str, values.unique())) <= {"true", "false", "True", "False"}:
            return "boolean"
        return "categorical"
    if distinct <= CODE_MAX_VALUES and len(values) >= CODE_MIN_ROWS_PER_VALUE * distinct:
        return "categorical"  # codes, tiers, rates of a plan: a handful of values
    return "discrete" if integer else "continuous"


__all__ = ["KINDS", "ColumnProfile", "PointMass", "profile_column", "profile_columns"]
