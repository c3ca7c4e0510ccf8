"""A table's fingerprint: a few numbers per column that say whether its data moved.

The nightly refresh reuses the model it trained last time while the source has not
changed much (:mod:`airflow_synth.core.engine.reuse`). "Not changed much" is measured on
fingerprints, never on the rows: the rows of last night are gone (staging is deleted after
every run) and must not be kept just to compare them.

What a fingerprint holds (numbers and names only, kept small: ~1 KB per column):

* the schema (column names and Arrow types), the row count and the modelled columns;
* per column: the share of NULLs and the number of distinct values;
* a modelled number or date: mean, standard deviation and 99 quantiles (1%, 2%, .. 99%)
  of its non-NULL values, what the drift's KS-like distance is estimated from (the
  minimum and maximum are left out: a table's extremes are its most identifying values);
* a modelled category (text, boolean): the shares of its :data:`TOP_CATEGORIES` commonest
  values, keyed by a salted hash of the value (no label is written), and the rest's share.

A key, foreign key, PII or free-text column gets its NULL share and distinct count only:
never a value, a quantile or a category of it. The fingerprint is stored with the private
model (``_models/<dataset>/<run>/<attempt>/fingerprint.json``); the manifest carries only
a summary (:func:`fingerprint_summary`).

Drift (:func:`measure_drift`) is one number in [0, 1]: the largest of

* the relative change of the row count, ``|n1 - n0| / max(n0, n1)``;
* per column, the change of its NULL share, ``|z1 - z0|``;
* per modelled number, the Kolmogorov-Smirnov distance between the two distributions,
  estimated from their quantiles (each quantile list read as a sample of 99 values);
* per modelled category, the total variation distance of the category shares
  (``0.5 * sum |s1 - s0|`` over the top categories of either side plus "the rest").

0 means "the same numbers", 1 "nothing in common". No Airflow import.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from airflow_synth.core.profile.roles import MODELLED, ColumnRole

FINGERPRINT_VERSION = 1
#: Quantiles stored per modelled number: 1%, 2%, ..., 99% (no minimum, no maximum).
QUANTILES = 99
#: Category shares stored per modelled category column (the rest is one share).
TOP_CATEGORIES = 20
NUMERIC = "numeric"
CATEGORY = "category"
OTHER = "other"  # not modelled (key, PII, free text): NULL share and distinct count only
#: Decimal places kept (the file stays small and diffs stay readable).
_DIGITS = 6


def category_key(value: str, salt: str) -> str:
    """The salted hash that stands for a category value in a fingerprint (no label kept)."""
    return hashlib.sha256(f"{salt}\x00{value}".encode()).hexdigest()[:16]


def _numeric(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_decimal(arrow_type)
        or pa.types.is_temporal(arrow_type)
    )


def _as_floats(column: Any) -> np.ndarray:
    """A numeric or temporal Arrow column as float64 numbers (NULL -> NaN)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_temporal(column.type):
        if pa.types.is_date32(column.type):
            column = column.cast(pa.int32())
        else:
            column = column.cast(pa.int64())
    if pa.types.is_decimal(column.type):
        column = pc.cast(column, pa.float64(), safe=False)
    values = column.to_numpy(zero_copy_only=False)  # NULL -> NaN (or None: objects)
    return np.asarray(pd_free_floats(values), dtype=float)


def pd_free_floats(values: Any) -> Any:
    """Object arrays (NULLs as None) as floats with NaN, without pandas."""
    if getattr(values, "dtype", None) is not None and values.dtype != object:
        return values
    return [np.nan if v is None else float(v) for v in values]


def _round(value: float) -> float:
    return round(float(value), _DIGITS)


def column_profile(column: Any, kind: str, salt: str) -> dict[str, Any]:
    """One column's numbers (see the module docstring); ``kind``: numeric/category/other."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    total = len(column)
    nulls = column.null_count
    profile: dict[str, Any] = {
        "kind": kind,
        "null_share": _round(nulls / total) if total else 0.0,
        "distinct": int(pc.count_distinct(column, mode="only_valid").as_py() or 0),
    }
    if kind == NUMERIC:
        values = _as_floats(column)
        values = values[np.isfinite(values)]
        if values.size:
            grid = np.linspace(0.01, 0.99, QUANTILES)
            profile["mean"] = _round(values.mean())
            profile["std"] = _round(values.std())
            profile["quantiles"] = [
                _round(q) for q in np.quantile(values, grid, method="inverted_cdf")
            ]
        else:
            profile.update(mean=None, std=None, quantiles=[])
    elif kind == CATEGORY:
        valid = total - nulls
        counts = pc.value_counts(
            column.cast(pa.string()) if not pa.types.is_string(column.type) else column
        )
        pairs = [
            (entry["values"].as_py(), int(entry["counts"].as_py()))
            for entry in counts
            if entry["values"].is_valid
        ]
        pairs.sort(key=lambda pair: (-pair[1], category_key(str(pair[0]), salt)))
        top = pairs[:TOP_CATEGORIES]
        profile["shares"] = {
            category_key(str(value), salt): _round(count / valid) for value, count in top
        }
        profile["rest"] = _round(1.0 - sum(count for _, count in top) / valid) if valid else 0.0
    return profile


def _kind(arrow_type: Any, role: ColumnRole | None) -> str:
    if role is None or role.role != MODELLED:
        return OTHER
    return NUMERIC if _numeric(arrow_type) else CATEGORY


def fingerprint_table(path: Path, roles: Sequence[ColumnRole], *, salt: str) -> dict[str, Any]:
    """The fingerprint of the staged table at ``path`` (Parquet), read one column at a time
    (memory follows one column, not the table). ``roles``: what each column is; only the
    modelled columns get more than their NULL share and distinct count. ``salt`` keys the
    category hashes (the same salt must be used for the fingerprints that are compared)."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    schema = parquet.schema_arrow
    by_name = {role.name: role for role in roles}
    columns = {}
    for field in schema:
        kind = _kind(field.type, by_name.get(field.name))
        columns[field.name] = column_profile(
            pq.read_table(path, columns=[field.name]).column(0), kind, salt
        )
    return {
        "version": FINGERPRINT_VERSION,
        "rows": int(parquet.metadata.num_rows),
        "schema": [{"name": f.name, "type": str(f.type)} for f in schema],
        "modelled": [role.name for role in roles if role.role == MODELLED],
        "columns": columns,
    }


def schema_digest(fingerprint: Mapping[str, Any]) -> str:
    """A short hash of the schema (names and types in order) and the modelled columns."""
    text = repr((fingerprint.get("schema"), fingerprint.get("modelled")))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def schema_changes(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Names of the columns added, removed, retyped or no longer (or newly) modelled."""
    before = {c["name"]: c["type"] for c in previous.get("schema", [])}
    after = {c["name"]: c["type"] for c in current.get("schema", [])}
    changed = sorted(
        name for name in set(before) | set(after) if before.get(name) != after.get(name)
    )
    modelled = set(previous.get("modelled", [])) ^ set(current.get("modelled", []))
    return sorted(set(changed) | modelled)


def ks_from_quantiles(before: Sequence[float], after: Sequence[float]) -> float:
    """Kolmogorov-Smirnov distance of two distributions known by their quantiles: each
    quantile list is read as a sample and the largest gap of their empirical CDFs taken.
    The same quantiles give 0 (point masses too), disjoint ranges 1; the error of the
    estimate is about one quantile step (1/100)."""
    a = np.sort(np.asarray(before, dtype=float))
    b = np.sort(np.asarray(after, dtype=float))
    if not a.size or not b.size:
        return 0.0 if a.size == b.size else 1.0
    points = np.union1d(a, b)
    cdf_a = np.searchsorted(a, points, side="right") / a.size
    cdf_b = np.searchsorted(b, points, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def total_variation(
    before: Mapping[str, float], rest_before: float, after: Mapping[str, float], rest_after: float
) -> float:
    """Total variation distance of two category share vectors (same salt), "the rest"
    counted as one more category; a category in one top list only counts its share there
    against 0 on the other side (an over-estimate bounded by the rest's share)."""
    keys = set(before) | set(after)
    gap = sum(abs(before.get(k, 0.0) - after.get(k, 0.0)) for k in keys)
    return min(1.0, 0.5 * (gap + abs(rest_before - rest_after)))


@dataclass(frozen=True)
class Drift:
    """How far two fingerprints are apart: ``value`` in [0, 1], and where it was largest
    (a column name, or ``row count``)."""

    value: float
    where: str
    #: every part measured (``row count``, ``<column>: nulls``, ``<column>: distribution``)
    parts: tuple[tuple[str, float], ...] = ()


def column_drift(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[float, str]:
    """One column's drift and what moved most (``nulls`` or ``distribution``)."""
    nulls = abs(float(after.get("null_share", 0.0)) - float(before.get("null_share", 0.0)))
    kind = before.get("kind")
    if kind != after.get("kind"):
        return 1.0, "kind"
    shape = 0.0
    if kind == NUMERIC:
        shape = ks_from_quantiles(before.get("quantiles") or [], after.get("quantiles") or [])
    elif kind == CATEGORY:
        shape = total_variation(
            before.get("shares") or {},
            float(before.get("rest", 0.0)),
            after.get("shares") or {},
            float(after.get("rest", 0.0)),
        )
    return (shape, "distribution") if shape > nulls else (nulls, "nulls")


def measure_drift(previous: Mapping[str, Any], current: Mapping[str, Any]) -> Drift:
    """The drift between two fingerprints of the same schema (see the module docstring).

    Columns present in one fingerprint only count as 1 (callers refuse a changed schema
    before they measure drift, so this only guards against misuse)."""
    n0, n1 = int(previous.get("rows", 0)), int(current.get("rows", 0))
    parts: list[tuple[str, float]] = [
        ("row count", abs(n1 - n0) / max(n0, n1) if max(n0, n1) else 0.0)
    ]
    before, after = previous.get("columns", {}), current.get("columns", {})
    for name in sorted(set(before) | set(after)):
        if name not in before or name not in after:
            parts.append((name, 1.0))
            continue
        value, _ = column_drift(before[name], after[name])
        parts.append((name, value))
    where, value = max(parts, key=lambda part: part[1])
    value = min(1.0, max(0.0, value))
    if math.isnan(value):  # pragma: no cover - numbers are finite by construction
        value = 1.0
    return Drift(round(value, _DIGITS), where, tuple((n, round(v, _DIGITS)) for n, v in parts))


def fingerprint_summary(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    """What the manifest says of a fingerprint: counts and a schema hash, no profile."""
    return {
        "rows": int(fingerprint.get("rows", 0)),
        "columns": len(fingerprint.get("schema", [])),
        "modelled_columns": len(fingerprint.get("modelled", [])),
        "schema_sha256": schema_digest(fingerprint),
    }
