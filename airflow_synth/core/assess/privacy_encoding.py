"""Turn mixed table rows into numbers that privacy distances can be measured on.

Distance to closest record only means something if one unit of distance means the same
"amount of difference" in every column, so every column is put on a common scale, fitted
on the *training* rows (the rows whose leakage we measure):

* numerical and datetime (as epoch seconds) columns: scaled so the central 99% of the
  training values (0.5th to 99.5th percentile) span [0, 1], then clipped to [-10, 11].
  Values inside the training range are what synthetic rows should hold; one far outside
  it (age 10_000) must stay far, or the outlier filter could never see it, while the clip
  keeps absurd values (1e300, infinity) from overflowing float32 and swamping every other
  column. NULL becomes an extra 0/1 "is
  null" indicator and the value is imputed as the training median. A column constant in
  training encodes 0 for that value and 1 for any other; a column with no training values
  only has its indicator.
* booleans: 0/1 plus the "is null" indicator (NULL imputed as the training median).
* categoricals: one-hot on the ``max_categories`` most frequent training values; any other
  value (also one never seen in training) is "other", and NULL is a category of its own.
  Each one-hot column is scaled by 1/sqrt(2), so a category mismatch costs exactly 1, like a
  full-range numeric difference.

The encoding is kept in two parts, which is what makes the neighbour search fast (see
:mod:`airflow_synth.core.assess.privacy_neighbours`): *continuous* coordinates (the scaled
numbers) and discrete *groups* (each categorical, boolean and null indicator), stored as a
small integer code per row plus an embedding table per group. The full vector is the
continuous part followed by each group's embedding of its code.

Exact copies are found by hashing the *normalised* values, not by distance, because the
encoding folds rare categories together and clips numbers: 3 and 3.0, "1" and 1, NaN and
None compare equal, and NULL equals NULL.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from airflow_synth.core.errors import DataError

KINDS = ("numerical", "categorical", "datetime", "boolean")
#: Scale of each one-hot coordinate: two different categories are then at distance 1.
ONE_HOT_SCALE = 1.0 / math.sqrt(2.0)
#: Hash of a NULL categorical value: any fixed 64-bit value works (collisions ~2**-64).
_NULL_LABEL_HASH = np.uint64(0x9E3779B97F4A7C15)
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
_BOOL_NULL = 2
#: Scaled numbers are clipped to [-RANGE_MARGIN, 1 + RANGE_MARGIN] (see above).
RANGE_MARGIN = 10.0
#: The scale is fitted on the central 99% of training values: one extreme value (a sentinel
#: 987654321 among amounts of 10-500) would otherwise squash every other value onto one
#: point, so that every synthetic row looked like a near copy.
ROBUST_QUANTILE = 0.005


@dataclass(frozen=True)
class Group:
    """One discrete part of the encoding: row codes index the rows of ``embedding``."""

    column: str
    embedding: np.ndarray  # (number of codes, width) float32


@dataclass(frozen=True)
class EncodedRows:
    """Rows in the split encoding, plus one hash per row for exact matching."""

    cont: np.ndarray  # (n, continuous dimensions) float32
    codes: np.ndarray  # (n, groups) int32
    hashes: np.ndarray  # (n,) uint64

    def __len__(self) -> int:
        return len(self.hashes)

    def take(self, rows: np.ndarray) -> EncodedRows:
        return EncodedRows(self.cont[rows], self.codes[rows], self.hashes[rows])


@dataclass(frozen=True)
class _Scaled:
    """Fitted min-max scaling of one numerical or datetime column."""

    low: float
    span: float
    fill: float  # encoded value of NULL (the scaled training median)
    constant: bool
    empty: bool


@dataclass(frozen=True)
class _ColumnFit:
    name: str
    kind: str
    scaled: _Scaled | None = None
    categories: tuple[str, ...] = ()
    distinct_in_training: int = 0
    bool_fill: float = 0.0
    nulls_in_training: int = 0


@dataclass
class _Normalised:
    """One column's values in canonical form, shared by hashing and encoding."""

    hash_values: np.ndarray  # uint64, equal exactly when the values are equal
    values: np.ndarray | None = None  # float64 (numbers, epoch seconds); NaN for NULL
    null: np.ndarray | None = None
    bool_codes: np.ndarray | None = None  # 0 false, 1 true, 2 NULL
    label_codes: np.ndarray | None = None  # index into labels, -1 for NULL
    labels: list[str] = field(default_factory=list)


class TableEncoder:
    """The encoding above, fitted on the training rows of the ``kinds`` columns."""

    def __init__(
        self, train: pd.DataFrame, kinds: Mapping[str, str], *, max_categories: int = 30
    ) -> None:
        self.columns = list(kinds)
        self.kinds = dict(kinds)
        self.max_categories = max_categories
        self._fits = [self._fit(name, kind, train[name]) for name, kind in self.kinds.items()]
        self.groups = [self._group(fit) for fit in self._fits]
        self.continuous_columns = [
            f.name for f in self._fits if f.scaled is not None and not f.scaled.empty
        ]

    # -- fitting -------------------------------------------------------------------------

    def _fit(self, name: str, kind: str, series: pd.Series) -> _ColumnFit:
        norm = _normalise(series, kind)
        if kind in ("numerical", "datetime"):
            values = norm.values
            assert values is not None and norm.null is not None
            finite = values[np.isfinite(values)]
            nulls = int(norm.null.sum())
            if finite.size == 0:
                empty = _Scaled(0.0, 1.0, 0.0, constant=False, empty=True)
                return _ColumnFit(name, kind, empty, nulls_in_training=nulls)
            low, high, median = float(finite.min()), float(finite.max()), float(np.median(finite))
            if finite.size * ROBUST_QUANTILE >= 1:  # enough values for a 0.5% tail
                central = np.quantile(finite, [ROBUST_QUANTILE, 1 - ROBUST_QUANTILE])
                low, high = float(central[0]), float(central[1])
            if high == low:  # the central values agree: fall back to the full range
                low, high = float(finite.min()), float(finite.max())
            if high == low:
                scaled = _Scaled(low, 1.0, 0.0, constant=True, empty=False)
            else:
                span = high - low
                scaled = _Scaled(low, span, (median - low) / span, constant=False, empty=False)
            return _ColumnFit(name, kind, scaled, nulls_in_training=nulls)
        if kind == "boolean":
            assert norm.bool_codes is not None
            known = norm.bool_codes[norm.bool_codes != _BOOL_NULL]
            fill = float(np.median(known)) if known.size else 0.0
            nulls = int((norm.bool_codes == _BOOL_NULL).sum())
            return _ColumnFit(name, kind, bool_fill=fill, nulls_in_training=nulls)
        assert norm.label_codes is not None
        counts: dict[str, int] = {}
        per_code = np.bincount(norm.label_codes[norm.label_codes >= 0], minlength=len(norm.labels))
        for label, count in zip(norm.labels, per_code.tolist(), strict=True):
            counts[label] = counts.get(label, 0) + count
        ranked = sorted((c for c in counts.items() if c[1] > 0), key=lambda c: (-c[1], c[0]))
        return _ColumnFit(
            name,
            kind,
            categories=tuple(label for label, _ in ranked[: self.max_categories]),
            distinct_in_training=len(ranked),
            nulls_in_training=int((norm.label_codes < 0).sum()),
        )

    @staticmethod
    def _group(fit: _ColumnFit) -> Group:
        if fit.kind in ("numerical", "datetime"):
            embedding = np.array([[0.0], [1.0]])  # the "is null" indicator
        elif fit.kind == "boolean":
            embedding = np.array([[0.0, 0.0], [1.0, 0.0], [fit.bool_fill, 1.0]])
        else:  # one per kept category, then "other", then NULL
            embedding = np.eye(len(fit.categories) + 2) * ONE_HOT_SCALE
        return Group(fit.name, embedding.astype(np.float32))

    # -- encoding ------------------------------------------------------------------------

    def encode(self, frame: pd.DataFrame) -> EncodedRows:
        """Encode ``frame`` (which must hold every encoded column) and hash its rows."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise DataError(
                f"The table to measure lacks the column(s) {missing} that the privacy "
                "measurement was set up with; pass frames with the same columns as training."
            )
        n = len(frame)
        cont: list[np.ndarray] = []
        codes = np.empty((n, len(self._fits)), dtype=np.int32)
        hashes: dict[str, np.ndarray] = {}
        for g, fit in enumerate(self._fits):
            norm = _normalise(frame[fit.name], fit.kind)
            hashes[fit.name] = norm.hash_values
            if fit.scaled is not None:
                assert norm.values is not None and norm.null is not None
                codes[:, g] = norm.null
                if not fit.scaled.empty:
                    cont.append(_scale(norm.values, norm.null, fit.scaled))
            elif fit.kind == "boolean":
                assert norm.bool_codes is not None
                codes[:, g] = norm.bool_codes
            else:
                assert norm.label_codes is not None
                position = {label: i for i, label in enumerate(fit.categories)}
                other = len(fit.categories)
                label_to_code = np.array(
                    [position.get(label, other) for label in norm.labels] + [other + 1],
                    dtype=np.int32,
                )
                codes[:, g] = label_to_code[norm.label_codes]  # -1 (NULL) picks the last entry
        cont_matrix = (
            np.column_stack(cont).astype(np.float32) if cont else np.zeros((n, 0), np.float32)
        )
        return EncodedRows(cont_matrix, codes, _combine_hashes(hashes, n))

    def dense(self, rows: EncodedRows) -> np.ndarray:
        """The full encoded vectors (continuous part, then each group's embedding)."""
        parts = [rows.cont] + [grp.embedding[rows.codes[:, g]] for g, grp in enumerate(self.groups)]
        return np.hstack(parts).astype(np.float32, copy=False)

    @property
    def dimensions(self) -> int:
        return len(self.continuous_columns) + sum(g.embedding.shape[1] for g in self.groups)

    def describe(self) -> dict[str, Any]:
        """A JSON-safe account of the encoding that holds no real value (no ranges, no
        category names), so it can be published next to the synthetic data."""
        columns: dict[str, Any] = {}
        for fit, grp in zip(self._fits, self.groups, strict=True):
            width = grp.embedding.shape[1]
            info: dict[str, Any] = {"kind": fit.kind}
            if fit.scaled is not None:
                width += 0 if fit.scaled.empty else 1
                info["scaling"] = (
                    "no training values: null indicator only"
                    if fit.scaled.empty
                    else "constant in training: 0 for that value, 1 otherwise"
                    if fit.scaled.constant
                    else f"central 99% of training to [0, 1], clipped to [-{RANGE_MARGIN:g}, "
                    f"{1 + RANGE_MARGIN:g}]"
                )
                if fit.kind == "datetime":
                    info["unit"] = "epoch seconds"
            elif fit.kind == "categorical":
                info["categories_in_training"] = fit.distinct_in_training
                info["categories_one_hot"] = len(fit.categories)
                info["other_in_training"] = fit.distinct_in_training > len(fit.categories)
            info["nulls_in_training"] = fit.nulls_in_training
            info["dimensions"] = width
            columns[fit.name] = info
        return {
            "distance": "euclidean",
            "dtype": "float32",
            "dimensions": self.dimensions,
            "numerical": f"central 99% of training to [0, 1], clipped to [-{RANGE_MARGIN:g}, "
            f"{1 + RANGE_MARGIN:g}]; null indicator + median imputation",
            "datetime": "as epoch seconds, then like numerical",
            "boolean": "0/1; null indicator + median imputation",
            "categorical": f"one-hot of the {self.max_categories} most frequent training values"
            ", 'other' and NULL as categories, each column scaled by 1/sqrt(2)",
            "max_categories": self.max_categories,
            "columns": columns,
        }


def _scale(values: np.ndarray, null: np.ndarray, scaled: _Scaled) -> np.ndarray:
    if scaled.constant:
        out = (values != scaled.low).astype(np.float64)
        out[null] = 0.0
        return out
    with np.errstate(invalid="ignore"):
        out = (values - scaled.low) / scaled.span
    out[null] = scaled.fill
    return np.clip(out, -RANGE_MARGIN, 1.0 + RANGE_MARGIN)


# -- normalisation -------------------------------------------------------------------------


def _normalise(series: pd.Series, kind: str) -> _Normalised:
    if kind == "numerical":
        return _numbers(series)
    if kind == "datetime":
        return _datetimes(series)
    if kind == "boolean":
        return _booleans(series)
    return _labels(series)


def _numbers(series: pd.Series) -> _Normalised:
    if pd.api.types.is_bool_dtype(series.dtype):
        series = series.astype("float64")
    values = pd.to_numeric(series, errors="coerce")
    values = np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64).copy()
    null = np.isnan(values)
    canonical = values + 0.0  # -0.0 becomes 0.0
    canonical[null] = np.nan  # one NaN bit pattern
    return _Normalised(canonical.view(np.uint64), values=values, null=null)


def _datetimes(series: pd.Series) -> _Normalised:
    """Instants as microseconds since the epoch, whatever the unit or time zone.

    Microseconds, not pandas' nanoseconds: casting a ``datetime64[us]`` value such as
    9999-12-31 to ``[ns]`` silently wraps it to 1816, and sub-microsecond differences do not
    matter for privacy.
    """
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    elif not pd.api.types.is_datetime64_dtype(series.dtype):
        series = pd.to_datetime(series, errors="coerce", utc=True).dt.tz_localize(None)
    stamps = np.asarray(series.to_numpy()).astype("datetime64[us]")
    null = np.isnat(stamps)
    micros = stamps.view(np.int64)
    seconds = micros / 1e6
    seconds[null] = np.nan
    return _Normalised(micros.view(np.uint64), values=seconds, null=null)


def _booleans(series: pd.Series) -> _Normalised:
    codes_in, uniques = pd.factorize(series, use_na_sentinel=True)
    table = np.array([_bool_code(v) for v in uniques] + [_BOOL_NULL], dtype=np.int8)
    codes = table[codes_in]
    return _Normalised(codes.astype(np.uint64), bool_codes=codes)


def _bool_code(value: Any) -> int:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, numbers.Number):
        return int(value != 0)
    text = str(value).strip().lower()
    return 1 if text in _TRUE else 0 if text in _FALSE else _BOOL_NULL


def _labels(series: pd.Series) -> _Normalised:
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    labels = [_label(v) for v in uniques]
    label_hashes = pd.util.hash_pandas_object(
        pd.Series(labels, dtype=object), index=False
    ).to_numpy()
    table = np.append(label_hashes, _NULL_LABEL_HASH).astype(np.uint64)
    return _Normalised(table[codes], label_codes=codes.astype(np.int64), labels=labels)


def _label(value: Any) -> str:
    """One spelling per value: 1, 1.0 and "1" are the same category; True is "True"."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _combine_hashes(columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    if not columns:
        return np.zeros(n, dtype=np.uint64)
    frame = pd.DataFrame({name: np.asarray(h, dtype=np.uint64) for name, h in columns.items()})
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)


def check_kinds(kinds: Mapping[str, str], exclude: Sequence[str]) -> dict[str, str]:
    """The ``kinds`` to encode (excluded columns dropped), each one a known kind."""
    used = {c: k for c, k in kinds.items() if c not in set(exclude)}
    bad = {c: k for c, k in used.items() if k not in KINDS}
    if bad:
        raise DataError(
            f"Unsupported column kind(s) for the privacy measurement: {bad}. Use one of "
            f"{KINDS}, or list id/PII/text columns in `exclude` (they are generated fresh)."
        )
    return used


__all__ = [
    "KINDS",
    "ONE_HOT_SCALE",
    "RANGE_MARGIN",
    "EncodedRows",
    "Group",
    "TableEncoder",
    "check_kinds",
]
