"""Does a parent's attribute still drive how many children it has?

Real sets are full of such links: older customers place more orders, premium accounts
open more sessions. A set engine that samples the number of children without looking at
the parent keeps every marginal and the children-per-parent histogram, and still loses the
link, which is exactly what a churn or capacity analysis on the copy would measure.

For each relationship and each modelled parent column, :func:`parent_child_count_links`
measures the link on real and synthetic parents: Spearman's rank correlation with the
child count for numbers and dates, the correlation ratio (eta: the share of the count's
spread explained by the category) for categories and booleans, with rare categories
pooled. A link is *strong* when its real strength reaches ``min_strength``; its
``preserved`` value is ``max(0, 1 - |real - synthetic| / |real|)`` (1 reproduced, 0 gone,
as after a shuffle), and the score is the mean over strong links. Key columns are never
measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from airflow_synth.core.keys import child_counts, key_columns
from airflow_synth.core.relations import TableSet

#: Below this real strength a link is not scored (there is nothing to keep).
MIN_STRENGTH = 0.1
#: Fewer parents than this on a side: the link is not measured (too noisy).
MIN_PARENTS = 20
#: Categories held by fewer real parents than this are pooled (and never named).
MIN_CATEGORY_PARENTS = 5
TOP_CATEGORIES = 20
#: Per-category mean child counts listed in the report, most frequent first.
LISTED_CATEGORIES = 10

_POOLED = "\0other"
_MISSING = "\0missing"


def _numeric(series: pd.Series) -> np.ndarray | None:
    """Numbers and dates as floats (None for categories and booleans)."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return None
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        stamps = series.dt.tz_convert(None) if getattr(series.dt, "tz", None) else series
        raw = stamps.to_numpy(dtype="datetime64[ns]")
        values = raw.view("int64").astype(float)
        values[np.isnat(raw)] = np.nan
        return values
    if pd.api.types.is_numeric_dtype(series.dtype):
        return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    if pd.api.types.infer_dtype(series, skipna=True) in ("date", "datetime"):
        return _numeric(pd.to_datetime(series, errors="coerce"))
    return None


def _spearman(values: np.ndarray, counts: np.ndarray) -> float | None:
    keep = ~np.isnan(values)
    if keep.sum() < 3:
        return None
    a = pd.Series(values[keep]).rank().to_numpy()
    b = pd.Series(counts[keep]).rank().to_numpy()
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _labels(series: pd.Series) -> pd.Series:
    text = series.astype(object).map(lambda v: str(v) if not pd.isna(v) else _MISSING)
    return text


def _eta(labels: pd.Series, counts: np.ndarray) -> float | None:
    """Correlation ratio: sqrt(between-group / total sum of squares) of the counts."""
    if counts.size < 2 or counts.std() == 0:
        return None
    frame = pd.DataFrame({"g": labels.to_numpy(), "n": counts.astype(float)})
    groups = frame.groupby("g", sort=False)["n"].agg(["mean", "size"])
    between = float((groups["size"] * (groups["mean"] - counts.mean()) ** 2).sum())
    total = float(((counts - counts.mean()) ** 2).sum())
    return math.sqrt(between / total) if total > 0 else None


def _link(
    column: str, real: pd.Series, synth: pd.Series, r_counts: np.ndarray, s_counts: np.ndarray
) -> dict[str, Any]:
    r_num, s_num = _numeric(real), _numeric(synth)
    if r_num is not None and s_num is not None:
        return {
            "column": column,
            "kind": "numeric",
            "measure": "spearman",
            "real": _round(_spearman(r_num, r_counts)),
            "synthetic": _round(_spearman(s_num, s_counts)),
        }
    r_labels, s_labels = _labels(real), _labels(synth)
    held = r_labels.value_counts()
    named = [v for v, n in held.items() if n >= MIN_CATEGORY_PARENTS and v != _MISSING][
        :TOP_CATEGORIES
    ]
    keep = {*named, _MISSING}
    r_pooled = r_labels.where(r_labels.isin(keep), _POOLED)
    s_pooled = s_labels.where(s_labels.isin(keep), _POOLED)
    r_means = pd.Series(r_counts).groupby(r_pooled.to_numpy()).mean()
    s_means = pd.Series(s_counts).groupby(s_pooled.to_numpy()).mean()
    return {
        "column": column,
        "kind": "categorical",
        "measure": "correlation_ratio",
        "real": _round(_eta(r_pooled, r_counts)),
        "synthetic": _round(_eta(s_pooled, s_counts)),
        # categories many real parents hold (never a rare one): mean children each
        "categories": [
            {
                "category": label,
                "real_mean": _round(r_means.get(label)),
                "synthetic_mean": _round(s_means.get(label)),
            }
            for label in named[:LISTED_CATEGORIES]
        ],
    }


def parent_child_count_links(
    real: Mapping[str, pd.DataFrame],
    synthetic: Mapping[str, pd.DataFrame],
    table_set: TableSet,
    *,
    columns: Mapping[str, Sequence[str]] | None = None,
    min_strength: float = MIN_STRENGTH,
) -> dict[str, Any]:
    """How each parent column relates to its number of children, real vs synthetic.

    ``columns`` (table -> modelled columns) limits the parent columns measured; by default
    every column present on both sides, always without the table's key columns (primary
    and foreign keys are issued fresh, a link to them means nothing).

    Returns ``score`` (mean ``preserved`` over strong links; None without one, ``reason``
    then says why), ``min_strength`` and ``links``: per relationship and parent column
    ``relationship``, ``column``, ``kind`` (numeric / categorical), ``measure`` (spearman /
    correlation_ratio), ``real``, ``synthetic``, ``similarity`` (1 - |real - synthetic|,
    halved for signed correlations), ``strong``, ``preserved`` (None when not strong),
    ``parents`` per side, and for categories ``categories`` (mean children of each category
    at least five real parents hold).
    """
    links = []
    for rel in table_set.relationships:
        r_parent, s_parent = real[rel.parent], synthetic[rel.parent]
        r_counts, _ = child_counts(real, rel)
        s_counts, _ = child_counts(synthetic, rel)
        keys = key_columns(table_set, rel.parent)
        wanted = list(columns.get(rel.parent, ())) if columns is not None else list(r_parent)
        for column in wanted:
            if column in keys or column not in r_parent or column not in s_parent:
                continue
            parents = {"real": int(r_counts.size), "synthetic": int(s_counts.size)}
            if min(parents.values()) < MIN_PARENTS:
                row = {"column": column, "kind": None, "measure": None}
                row.update(real=None, synthetic=None)
            else:
                row = _link(column, r_parent[column], s_parent[column], r_counts, s_counts)
            r, s = row["real"], row["synthetic"]
            signed = row["measure"] == "spearman"
            strong = r is not None and abs(r) >= min_strength
            similarity = None
            if r is not None and s is not None:
                similarity = _round(1 - abs(r - s) / (2 if signed else 1))
            preserved = None
            if strong:
                preserved = _round(max(0.0, 1 - abs(r - (s or 0.0)) / abs(r)))
            links.append(
                {
                    "relationship": str(rel),
                    **row,
                    "similarity": similarity,
                    "strong": strong,
                    "preserved": preserved,
                    "parents": parents,
                }
            )
    scored = [link["preserved"] for link in links if link["preserved"] is not None]
    result: dict[str, Any] = {
        "score": _round(float(np.mean(scored))) if scored else None,
        "min_strength": min_strength,
        "links": sorted(links, key=lambda x: (x["preserved"] is None, x["preserved"] or 0)),
    }
    if not scored:
        result["reason"] = (
            f"no parent column is linked to its number of children in the real set "
            f"(strength >= {min_strength} on at least {MIN_PARENTS} parents): nothing to keep"
        )
    return result


def _round(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else round(number, 6)


__all__ = ["key_columns", "parent_child_count_links"]
