"""A parent row's context for its children, as one of a few learned clusters.

A child table's model should know what kind of parent a row belongs to (a business
customer's orders differ from a consumer's) without conditioning on every parent column:
conditional sampling per distinct parent costs a model call per parent (HMA's ~50 ms per
parent). Instead the parent rows are grouped into at most :data:`MAX_CLUSTERS` clusters on
their modelled columns; the child model learns the cluster label as a categorical column,
and each synthetic parent's children are drawn from rows generated with its cluster's
label. The encoding keeps quantiles and category names of the parent's columns (like any
fitted model), never rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MAX_CLUSTERS = 8
#: Rows per cluster at least (a cluster smaller than this teaches the child model nothing).
MIN_ROWS_PER_CLUSTER = 100
_TOP_CATEGORIES = 8
_GRID = np.linspace(0.0, 1.0, 101)


class ParentContext:
    """Cluster labels for parent rows: fitted on real parents, applied to synthetic ones."""

    def __init__(self, columns: Sequence[str], seed: int = 0) -> None:
        self.columns = list(columns)
        self.seed = seed
        self._quantiles: dict[str, np.ndarray] = {}
        self._categories: dict[str, list[str]] = {}
        self._centroids: np.ndarray | None = None

    @property
    def clusters(self) -> int:
        return 0 if self._centroids is None else len(self._centroids)

    def fit(self, frame: pd.DataFrame) -> ParentContext:
        k = min(MAX_CLUSTERS, len(frame) // MIN_ROWS_PER_CLUSTER)
        if k < 2 or not self.columns:
            return self
        for name in self.columns:
            numbers = _as_number(frame[name])
            if numbers is not None:
                finite = numbers[np.isfinite(numbers)]
                if finite.size:
                    self._quantiles[name] = np.quantile(finite, _GRID)
            else:
                top = frame[name].astype(str).value_counts().index[:_TOP_CATEGORIES]
                self._categories[name] = [str(v) for v in top]
        encoded = self._encode(frame)
        if encoded.shape[1] == 0:
            return self
        k = min(k, len(np.unique(encoded.round(6), axis=0)))
        if k < 2:
            return self
        from sklearn.cluster import KMeans

        model = KMeans(n_clusters=k, n_init=3, random_state=self.seed).fit(encoded)
        self._centroids = model.cluster_centers_
        return self

    def labels(self, frame: pd.DataFrame) -> np.ndarray:
        """The nearest cluster of each row (all 0 without clusters)."""
        if self._centroids is None:
            return np.zeros(len(frame), dtype=np.int64)
        encoded = self._encode(frame)
        distances = ((encoded[:, None, :] - self._centroids[None, :, :]) ** 2).sum(axis=2)
        return distances.argmin(axis=1)

    def _encode(self, frame: pd.DataFrame) -> np.ndarray:
        parts = []
        for name, quantiles in self._quantiles.items():
            numbers = _as_number(frame[name])
            values = np.interp(
                np.nan_to_num(numbers, nan=quantiles[len(quantiles) // 2]), quantiles, _GRID
            )
            parts.append(values[:, None])
            parts.append(np.isnan(numbers)[:, None].astype(float))
        for name, categories in self._categories.items():
            text = frame[name].astype(str).to_numpy()
            weight = 1.0 / np.sqrt(max(len(categories), 1))
            parts.append(np.stack([(text == c) * weight for c in categories], axis=1))
        return np.hstack(parts).astype(float) if parts else np.zeros((len(frame), 0))


def _as_number(column: pd.Series) -> np.ndarray | None:
    if pd.api.types.is_bool_dtype(column.dtype):
        return None
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        if getattr(column.dtype, "tz", None) is not None:
            column = column.dt.tz_convert(None)
        stamps = column.to_numpy(dtype="datetime64[ns]")
        out = stamps.view("int64").astype(float)
        out[np.isnat(stamps)] = np.nan
        return out
    if pd.api.types.is_numeric_dtype(column.dtype):
        return pd.to_numeric(column, errors="coerce").astype(float).to_numpy()
    return None
