"""Replace the rows a privacy filter removes with rows like them, so rates stay put.

Dropping rows is not neutral: the outlier filter removes more of some kinds of rows than
of others (on the demo, booked users have more extreme session statistics, so plain
re-sampling took the booking rate from 41.1% to 37.9%). Each removed row is therefore
replaced by a new sample from its own *stratum*: the tuple of its low-cardinality columns
(categories and booleans with at most :data:`MAX_STRATUM_VALUES` values in training, and
whether each number or date that has NULLs in training is NULL). Extra rows are drawn from
the model, pass the same filters, and are matched to the removed rows: first on the whole
tuple, and where no extra row shares it (a rare combination) on coarser tuples, leaving out
the column with the most values first, down to any row. The share of each stratum in the
published table is then the share the model produced, whatever the filters removed.

The counts (how many rows each filter's removals were replaced by, at which level) go to
``privacy.json`` (``filtered``) and the report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: A category or boolean column with more distinct training values is not a stratum column.
MAX_STRATUM_VALUES = 50
#: At most this many columns make the finest stratum (the fewest values first).
MAX_STRATUM_COLUMNS = 12
#: Extra rows drawn per row to replace in a round (at least ``MIN_POOL_ROWS``).
OVERSAMPLE = 4
MIN_POOL_ROWS = 1_000
#: A removed row waits for a row of the finest stratum holding at least this share of its
#: batch (a rarer one is left out: finding it would take too many extra rows) ...
MIN_STRATUM_SHARE = 0.01
#: ... drawing about this many times the rows expected to hold its stratum's replacements
#: (at most ``MAX_OVERSAMPLE`` rows per row to replace) ...
STRATUM_OVERSAMPLE = 1.2
MAX_OVERSAMPLE = 8
#: ... for this many rounds; then the rows still unmatched take the finest stratum offered.
FINE_ROUNDS = 1
#: Rounds in all (after these the rows still unmatched are left to plain new samples).
MAX_ROUNDS = 6
#: Rows of a batch that estimate how common each stratum is.
FREQUENCY_ROWS = 10_000
_NULL = "\x00null"
_KEY_SEED = 20_260_511


@dataclass(frozen=True)
class StratumColumn:
    name: str
    values: int  # distinct training values (2 for a NULL indicator)
    nulls_only: bool = False  # True: only "is NULL" counts (a number or a date)


class Strata:
    """The stratum of a row, at each level from the whole tuple (0) to none (``depth``).

    Columns are ordered so the one with the fewest values is kept longest: level ``k``
    leaves out the ``k`` columns with the most values.
    """

    def __init__(self, columns: Sequence[StratumColumn]) -> None:
        self.columns = list(columns)
        rng = np.random.default_rng(_KEY_SEED)
        self._mult = rng.integers(1, 2**63, size=max(len(self.columns), 1), dtype=np.uint64)

    @classmethod
    def fit(cls, train: pd.DataFrame, kinds: Mapping[str, str]) -> Strata:
        """Stratum columns of ``train``: categories/booleans with few values, NULL states."""
        found = []
        null_patterns: list[np.ndarray] = []
        for name, kind in kinds.items():
            if name not in train.columns:
                continue
            series = train[name]
            if kind in ("categorical", "boolean"):
                values = int(series.nunique(dropna=False))
                if 2 <= values <= MAX_STRATUM_VALUES:
                    found.append(StratumColumn(name, values))
            elif kind in ("numerical", "datetime") and 0 < series.isna().sum() < len(series):
                null = series.isna().to_numpy()
                if any(np.array_equal(null, seen) for seen in null_patterns):
                    continue  # NULL exactly where another column is: nothing new
                null_patterns.append(null)
                found.append(StratumColumn(name, 2, nulls_only=True))
        # fewest values first (kept longest); a real column of 2 before a NULL indicator
        found.sort(key=lambda c: (c.values, c.nulls_only))
        found = found[:MAX_STRATUM_COLUMNS]
        return cls(found)

    @property
    def depth(self) -> int:
        """The coarsest level (no column: any row)."""
        return len(self.columns)

    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def keys(self, frame: pd.DataFrame) -> np.ndarray:
        """``(rows, depth + 1)`` keys: column ``k`` is the stratum at level ``k``."""
        n = len(frame)
        out = np.zeros((n, self.depth + 1), dtype=np.uint64)
        if not self.columns or n == 0:
            return out
        terms = np.zeros((n, self.depth), dtype=np.uint64)
        for j, column in enumerate(self.columns):
            terms[:, j] = _value_hash(frame[column.name], column.nulls_only) * self._mult[j]
        # level k keeps the first depth - k columns (the ones with the fewest values)
        cumulative = np.cumsum(terms, axis=1, dtype=np.uint64)
        for level in range(self.depth):
            out[:, level] = cumulative[:, self.depth - level - 1]
        return out


def _value_hash(series: pd.Series, nulls_only: bool) -> np.ndarray:
    null = series.isna().to_numpy()
    if nulls_only:
        return null.astype(np.uint64) + np.uint64(1)
    text = series.astype(object).where(~null, _NULL).map(str).to_numpy(dtype=object)
    return pd.util.hash_array(text).astype(np.uint64) | np.uint64(1)


def match(
    deficit: np.ndarray,
    pool: np.ndarray,
    levels: Sequence[int],
    allowed: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Pair rows to replace with pool rows of the same stratum, finest level first.

    ``deficit`` and ``pool`` are :meth:`Strata.keys` of the removed rows and of the extra
    rows that passed the filters; ``allowed`` (per removed row) is the coarsest level it
    may be matched on (default: any). Returns, per level in ``levels``, an ``(m, 2)`` array
    of (deficit row, pool row) pairs; each pool row is used once, and within a stratum rows
    pair in order (both sides are random draws, so the pairing is too).
    """
    free_d = np.arange(deficit.shape[0])
    free_p = np.arange(pool.shape[0])
    out = []
    for level in levels:
        candidates = free_d if allowed is None else free_d[allowed[free_d] >= level]
        if not candidates.size or not free_p.size:
            out.append(np.empty((0, 2), dtype=np.int64))
            continue
        d_keys, p_keys = deficit[candidates, level], pool[free_p, level]
        left = pd.DataFrame({"k": d_keys, "o": _occurrence(d_keys), "d": candidates})
        right = pd.DataFrame({"k": p_keys, "o": _occurrence(p_keys), "p": free_p})
        pairs = left.merge(right, on=["k", "o"])[["d", "p"]].to_numpy(dtype=np.int64)
        out.append(pairs)
        free_d = np.setdiff1d(free_d, pairs[:, 0], assume_unique=True)
        free_p = np.setdiff1d(free_p, pairs[:, 1], assume_unique=True)
    return out


def _occurrence(keys: np.ndarray) -> np.ndarray:
    """0 for the first row with its key, 1 for the second, ... (in row order)."""
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    starts = np.r_[True, ranked[1:] != ranked[:-1]]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(keys.size), 0))
    occurrence = np.empty(keys.size, dtype=np.int64)
    occurrence[order] = np.arange(keys.size) - group_start
    return occurrence


@dataclass
class ReplacementLog:
    """How the rows each filter removed were replaced (JSON-safe via :meth:`to_dict`)."""

    columns: list[str] = field(default_factory=list)
    #: filter -> rows replaced by a row of the whole stratum / a coarser one / any row
    same: dict[str, int] = field(default_factory=dict)
    coarser: dict[str, int] = field(default_factory=dict)
    any_row: dict[str, int] = field(default_factory=dict)
    #: filter -> removed rows not replaced by a matched row (sampling stopped)
    unmatched: dict[str, int] = field(default_factory=dict)
    extra_rows: int = 0
    rounds: int = 0

    def add(self, what: dict[str, int], reasons: np.ndarray) -> None:
        for name, count in zip(*np.unique(reasons, return_counts=True), strict=True):
            what[str(name)] = what.get(str(name), 0) + int(count)

    def replaced(self, name: str) -> int:
        return sum(d.get(name, 0) for d in (self.same, self.coarser, self.any_row))

    def to_dict(self, name: str) -> dict[str, int]:
        return {
            "replaced": self.replaced(name),
            "replaced_same_stratum": self.same.get(name, 0),
            "replaced_coarser_stratum": self.coarser.get(name, 0),
            "replaced_any_row": self.any_row.get(name, 0),
            "not_replaced": self.unmatched.get(name, 0),
        }


class Refill:
    """Draw extra rows until each removed row has a replacement from its stratum.

    ``draw(n)`` samples ``n`` new rows from the model (and shows them to the privacy
    measurement); ``screen(frame)`` runs the filters on them, returning a
    :class:`~airflow_synth.core.assess.privacy.FilterResult`. ``stop()`` says when the filters
    removed too much to go on (the ``filtered_share`` gate will refuse the run).
    """

    def __init__(
        self,
        strata: Strata,
        draw: Callable[[int], pd.DataFrame],
        screen: Callable[[pd.DataFrame], Any],
        *,
        stop: Callable[[], bool] = lambda: False,
        max_pool_rows: int = 50_000,
        log: ReplacementLog | None = None,
    ) -> None:
        self.strata, self.draw, self.screen, self.stop = strata, draw, screen, stop
        self.max_pool_rows = max_pool_rows
        self.log = log or ReplacementLog(columns=strata.names())

    def replace(
        self, removed: pd.DataFrame, reasons: np.ndarray, batch: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Rows standing in for ``removed`` (one per removed row, fewer only if sampling
        must stop), each from the finest stratum the extra draws offered.

        ``batch`` (the sampled batch the rows were removed from) tells how common each
        stratum is: a removed row waits for a row of the finest stratum holding at least
        :data:`MIN_STRATUM_SHARE` of the batch (the extra draws are sized to find it), and
        falls back to coarser ones only after :data:`FINE_ROUNDS` rounds.
        """
        reasons = np.asarray(reasons, dtype=object)
        pending = self.strata.keys(removed)
        pending_reasons = reasons
        depth = self.strata.depth
        target, share = self._targets(pending, batch)
        chosen: list[pd.DataFrame] = []
        for round_ in range(MAX_ROUNDS):
            if not pending.shape[0] or self.stop():
                break
            fallback = round_ >= FINE_ROUNDS
            pool = self.draw(self._pool_rows(pending, target, share, fallback))
            self.log.extra_rows += len(pool)
            self.log.rounds += 1
            result = self.screen(pool)
            kept = pool.loc[result.keep].reset_index(drop=True)
            if kept.empty:
                continue
            levels = list(range(depth + 1))
            allowed = None if fallback else target
            pairs = match(pending, self.strata.keys(kept), levels, allowed)
            used = np.zeros(pending.shape[0], dtype=bool)
            for level, found in zip(levels, pairs, strict=True):
                if not found.size:
                    continue
                if level == depth:
                    into = self.log.any_row
                else:
                    into = self.log.same if level == 0 else self.log.coarser
                self.log.add(into, pending_reasons[found[:, 0]])
                used[found[:, 0]] = True
                chosen.append(kept.iloc[found[:, 1]])
            pending, pending_reasons = pending[~used], pending_reasons[~used]
            target, share = target[~used], share[~used]
        if pending.shape[0]:
            self.log.add(self.log.unmatched, pending_reasons)
        if not chosen:
            return removed.iloc[0:0]
        return pd.concat(chosen, ignore_index=True)

    def _targets(
        self, pending: np.ndarray, batch: pd.DataFrame | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per removed row: the finest level whose stratum holds at least
        :data:`MIN_STRATUM_SHARE` of ``batch`` (estimated on up to
        :data:`FREQUENCY_ROWS` of its rows), and that stratum's share."""
        n = pending.shape[0]
        depth = self.strata.depth
        target = np.full(n, depth, dtype=np.int64)
        share = np.ones(n)
        if batch is None or not len(batch) or not n:
            return target, share
        step = max(1, len(batch) // FREQUENCY_ROWS)
        sample = self.strata.keys(batch.iloc[::step])
        found = np.zeros(n, dtype=bool)
        for level in range(depth + 1):
            keys, counts = np.unique(sample[:, level], return_counts=True)
            pos = np.minimum(np.searchsorted(keys, pending[:, level]), keys.size - 1)
            level_share = np.where(keys[pos] == pending[:, level], counts[pos], 0) / len(sample)
            ok = ~found & (level_share >= MIN_STRATUM_SHARE)
            target[ok], share[ok] = level, level_share[ok]
            found |= ok
        return target, share

    def _pool_rows(
        self, pending: np.ndarray, target: np.ndarray, share: np.ndarray, fallback: bool
    ) -> int:
        """Extra rows to draw: enough to expect each stratum's removed rows
        (``OVERSAMPLE`` x count / share), at least :data:`MIN_POOL_ROWS`."""
        want = OVERSAMPLE * pending.shape[0]
        if not fallback and pending.shape[0]:
            keys = pending[np.arange(pending.shape[0]), target]
            _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
            need = counts[inverse] / np.maximum(share, MIN_STRATUM_SHARE)
            want = max(want, int(np.ceil(STRATUM_OVERSAMPLE * need.max())))
            want = min(want, MAX_OVERSAMPLE * pending.shape[0])
        return int(min(self.max_pool_rows, max(MIN_POOL_ROWS, want)))


__all__ = [
    "MAX_STRATUM_VALUES",
    "Refill",
    "ReplacementLog",
    "StratumColumn",
    "Strata",
    "match",
]
