"""Cheap, exact answers to "is a training row within r?" for the privacy filters.

The filters do not need every synthetic row's distance to its closest training record
(DCR): the similarity filter asks "is a training row closer than ``r_similar``?" and the
outlier filter "is *no* training row within ``R``?" (``R`` at or above the outlier cut-off).
Both are answered here without the full nearest-neighbour search of
:mod:`airflow_synth.core.assess.privacy_neighbours` for most rows, and exactly for all of them:

* **near** (tiny radius, ``r**2 <= delta``): only a training row with the same discrete
  pattern (every category, boolean and NULL indicator equal) can be that close, because any
  other costs at least ``delta``. One k-d tree over the continuous coordinates plus one
  coordinate per pattern (patterns far apart, so a search never leaves its own) answers
  each row with a bounded search, ``O(log n)``.
* **within R** (large radius): a *witness*, any training row within ``R``, proves the
  answer "yes" at the cost of one distance. Candidates come from the training rows next to
  the query in one sorted order: by discrete pattern, then along the continuous data's
  principal direction (a few each side); for rows whose pattern no training row has, the
  same with one group left out of the pattern (that group's mismatch cost added). A witness
  is a real training row, so its distance is an upper bound of the DCR; rows without a
  witness (a few percent: the outliers themselves and rows near the cut-off) get their
  exact DCR from the exact search.

Cost is linear in the synthetic rows (a sort per pattern level once, then ``O(log n)`` per
row), and the exact search runs only on the rows no witness settles. Nothing here
approximates: a row is "within" only when a training row was found within, and "not within"
only when the exact search says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from airflow_synth.core.assess.privacy_encoding import EncodedRows
from airflow_synth.core.assess.privacy_neighbours import NeighbourIndex, Segment

#: Candidate training rows taken on each side of a query in the sorted order.
WITNESSES_PER_SIDE = 4
#: Training rows used to find the principal direction (a seeded sample beyond).
_DIRECTION_ROWS = 20_000
#: Training patterns (cheapest mismatch first) searched for a row whose own pattern offers
#: no witness.
PATTERNS_TRIED = 4
#: Cells of the (query pattern x training pattern) cost matrix computed at once.
_COST_CELLS = 4_000_000
#: Pattern searches allowed per row (plus a fixed allowance) before the full search is used.
_PAIR_BUDGET_PER_ROW = 64
_PAIR_BUDGET = 100_000
#: (row, pattern) searches sent to the k-d tree at once.
_PAIRS_PER_QUERY = 32_768
#: Query patterns whose nearest training patterns are remembered between calls.
_REMEMBERED_PATTERNS = 200_000
#: Slack on pattern costs computed by matrix product (their rounding is ~1e-12).
_COST_MARGIN = 1e-9
#: Query rows whose candidates are compared at once (bounded memory).
_CHUNK_ROWS = 16_384
#: Fixed seed of the pattern-hash multipliers (results never depend on it).
_KEY_SEED = 20_260_717


class _Sorted:
    """Training rows sorted by (pattern key without some groups, principal coordinate)."""

    def __init__(self, keys: np.ndarray, proj: np.ndarray) -> None:
        self.unique, rank, counts = np.unique(keys, return_inverse=True, return_counts=True)
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.stops = self.starts + counts
        composite = rank.astype(np.float64) * 4.0 + proj
        self.order = np.argsort(composite, kind="stable")
        self.composite = composite[self.order]

    def locate(self, keys: np.ndarray, proj: np.ndarray) -> tuple[np.ndarray, ...]:
        """Each query's key range in the sorted rows (empty when no row has its key) and
        its insertion point along the principal coordinate inside that range."""
        if not self.unique.size:
            empty = np.zeros(keys.size, dtype=np.int64)
            return empty, empty, empty
        pos = np.minimum(np.searchsorted(self.unique, keys), self.unique.size - 1)
        found = self.unique[pos] == keys
        start = np.where(found, self.starts[pos], 0)
        stop = np.where(found, self.stops[pos], 0)
        at = np.searchsorted(self.composite, pos.astype(np.float64) * 4.0 + proj)
        return start, stop, np.clip(at, start, stop)


class RadiusSearch:
    """Radius questions about the training rows ``train`` (the first rows of ``exact``'s
    reference), with ``exact`` answering what no witness settles."""

    def __init__(self, train: EncodedRows, exact: NeighbourIndex, n_train: int) -> None:
        self.n_train = n_train
        self.cont = np.ascontiguousarray(train.cont, dtype=np.float32)
        self.codes = np.ascontiguousarray(train.codes, dtype=np.int64)
        self.costs = exact.costs
        self.delta = exact.delta
        self._exact = exact
        groups = self.codes.shape[1]
        self._mult = np.random.default_rng(_KEY_SEED).integers(
            1, 2**63, size=groups, dtype=np.uint64
        )
        self._terms = self._key_terms(self.codes)
        self._keys = self._terms.sum(axis=1, dtype=np.uint64)
        self._direction, self._low, self._span = self._principal(self.cont)
        self._proj = self._project(self.cont)
        self._sorted: dict[int, _Sorted] = {}  # -1: the whole pattern; g: without group g
        self._tree: object | None = None
        self._pattern_codes: np.ndarray | None = None
        self._pattern_embedding: np.ndarray | None = None
        self._pattern_norms: np.ndarray | None = None
        #: query pattern key -> the training patterns its witnesses come from
        self._nearest_patterns: dict[int, np.ndarray] = {}
        self._embeddings = [np.asarray(e, dtype=np.float64) for e in exact.embeddings]
        #: Rows the last call settled by witness, and those sent to the exact search.
        self.last_stats: dict[str, int] = {}

    # -- public ----------------------------------------------------------------------------

    def nearer_than(self, q: EncodedRows, radius: float) -> np.ndarray:
        """Whether each query row's DCR is below ``radius`` (strictly), exactly."""
        n = len(q)
        if n == 0 or radius <= 0 or self.n_train == 0:
            return np.zeros(n, dtype=bool)
        if radius * radius > self.delta:  # rows of other patterns count too: search them all
            return self.exact_dcr(q) < radius
        tree, unique = self._pattern_tree()
        rank = self._rank(unique, q)
        seen = rank >= 0
        out = np.zeros(n, dtype=bool)
        if not seen.any():
            return out
        rows = np.flatnonzero(seen)
        points = self._tree_points(q.cont[rows], rank[rows])
        # a little above the radius: the decision below uses the distance recomputed as the
        # exact search computes it (float32), so both agree on rows at the boundary
        _, found = tree.query(points, k=1, distance_upper_bound=radius * (1 + 1e-5) + 1e-12)
        hit = found < self.n_train
        d = np.sqrt(self._d2(q, rows[hit], found[hit].astype(np.int64), None))
        out[rows[hit]] = d < radius
        return out

    def witnesses(self, q: EncodedRows, radius: float) -> np.ndarray:
        """An upper bound of each row's DCR (the distance to a training row found nearby;
        ``inf`` where none was found), searched until it is at most ``radius`` (``0``: as
        tight as the search goes)."""
        n = len(q)
        bound = np.full(n, np.inf)
        if n == 0 or self.n_train == 0:
            return bound
        proj = self._project(q.cont)
        terms = self._key_terms(np.asarray(q.codes, dtype=np.int64))
        keys = terms.sum(axis=1, dtype=np.uint64)
        bound = self._witness(q, np.arange(n), keys, proj, -1)
        open_rows = np.flatnonzero(bound > radius)
        # a row of another pattern is at least sqrt(delta) away: a witness within a smaller
        # radius can only be of the row's own pattern (unless bounds are wanted anyway)
        if open_rows.size and (radius * radius >= self.delta or radius <= 0):
            found = self._pattern_witness(q, open_rows, keys[open_rows], proj[open_rows])
            bound[open_rows] = np.minimum(bound[open_rows], found)
        self.last_stats = {"rows": n, "without_witness": int((bound > radius).sum())}
        return bound

    def exact_dcr(self, q: EncodedRows, upper: np.ndarray | None = None) -> np.ndarray:
        """Each row's exact DCR, for the few rows no witness settled. ``upper`` (a witness
        distance per row, from :meth:`witnesses`) bounds the search: only training patterns
        whose mismatch cost alone is below it can hold a closer row, and within each the
        pattern k-d tree finds the closest. Where too many patterns qualify, the full exact
        search (:class:`~airflow_synth.core.assess.privacy_neighbours.NeighbourIndex`) answers."""
        n = len(q)
        if n == 0:
            return np.empty(0)
        if self.n_train == 0:
            return np.full(n, np.inf)
        if upper is None:
            upper = self.witnesses(q, 0.0)
        out = np.full(n, np.nan)
        rows = np.flatnonzero(np.isfinite(upper))
        if rows.size:
            out[rows] = self._by_patterns(q, rows, np.asarray(upper, dtype=np.float64)[rows])
        rest = np.flatnonzero(np.isnan(out))
        if rest.size:
            (nearest,) = self._exact.query(q.take(rest), [Segment(0, self.n_train, 1)])
            out[rest] = nearest.distances[:, 0].astype(np.float64)
        self.last_stats["exact_rows"] = int(n)
        self.last_stats["full_search_rows"] = int(rest.size)
        return out

    def _by_patterns(self, q: EncodedRows, rows: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """Exact DCR of ``rows`` below ``upper`` (NaN where the budget of pattern searches
        is exceeded): every training pattern whose mismatch cost is below the best distance
        so far is searched, cheapest first, with a k-d tree bounded by what is left."""
        tree, unique = self._pattern_tree()
        out = np.full(rows.size, np.nan)
        n_patterns = unique.size
        # the witness is a training row at distance ``upper``: a little margin finds it again
        best2 = upper * upper * (1 + 1e-6) + 1e-12
        best_ref = np.full(rows.size, -1, dtype=np.int64)
        keys = self._key_terms(np.asarray(q.codes[rows], dtype=np.int64)).sum(1, dtype=np.uint64)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        q_codes = np.asarray(q.codes[rows[first]], dtype=np.int64)
        pair_row, pair_pattern, pair_cost = [], [], []
        step = max(1, _COST_CELLS // max(n_patterns, 1))
        total = 0
        for c in range(0, first.size, step):  # bounded memory: (query patterns, patterns)
            costs = self._pattern_costs(q_codes[c : c + step])
            members = np.flatnonzero((inverse >= c) & (inverse < c + step))
            for m in range(0, members.size, step):
                part = members[m : m + step]
                cost = costs[inverse[part] - c]
                r, pat = np.nonzero(cost < best2[part][:, None] + _COST_MARGIN)
                total += r.size
                if total > _PAIR_BUDGET_PER_ROW * rows.size + _PAIR_BUDGET:
                    return out  # too many patterns are candidates: the full search decides
                pair_row.append(part[r])
                pair_pattern.append(pat)
                pair_cost.append(cost[r, pat].astype(np.float64))
        if not total:
            return out
        p_row = np.concatenate(pair_row)
        p_pat = np.concatenate(pair_pattern)
        p_cost = np.concatenate(pair_cost)
        spacing = self._spacing()
        # cheapest patterns first (they shrink the bounds of the rest); within one cost,
        # pairs with similar bounds are searched together (a tree search costs what its
        # bound covers)
        for level in np.unique(p_cost):
            at_level = np.flatnonzero(p_cost == level)
            r_all = p_row[at_level]
            live = level < best2[r_all]
            at_level, r_all = at_level[live], r_all[live]
            if not at_level.size:
                continue
            left = np.sqrt(best2[r_all] - level)
            by_bound = np.argsort(left, kind="stable")
            at_level, left = at_level[by_bound], left[by_bound]
            for c in range(0, at_level.size, _PAIRS_PER_QUERY):
                chunk = at_level[c : c + _PAIRS_PER_QUERY]
                r, pat = p_row[chunk], p_pat[chunk]
                bound = min(float(left[c : c + _PAIRS_PER_QUERY].max()), spacing / 2)
                points = self._tree_points(q.cont[rows[r]], pat)
                dist, found = tree.query(points, k=1, distance_upper_bound=bound)
                hit = found < self.n_train
                d2 = np.where(hit, level + np.where(hit, dist, 0.0) ** 2, np.inf)
                # several pairs of one row in this chunk: keep each row's smallest
                for_row = np.lexsort((d2, r))
                first_of_row = np.r_[True, r[for_row][1:] != r[for_row][:-1]]
                idx = for_row[first_of_row]
                better = d2[idx] < best2[r[idx]]
                best2[r[idx][better]] = d2[idx][better]
                best_ref[r[idx][better]] = found[idx][better]
        done = best_ref >= 0
        if done.any():
            exact = self._d2(q, rows[done], best_ref[done], None)  # as the exact search does
            out[done] = np.sqrt(exact)
        return out

    # -- witnesses -------------------------------------------------------------------------

    def _witness(
        self, q: EncodedRows, rows: np.ndarray, keys: np.ndarray, proj: np.ndarray, group: int
    ) -> np.ndarray:
        """Smallest distance from each query row to the training rows next to it in the
        order of level ``group`` (-1: same pattern; g: same pattern but for group g)."""
        order = self._order(group)
        start, stop, at = order.locate(keys, proj)
        best = np.full(rows.size, np.inf)
        offsets = np.arange(-WITNESSES_PER_SIDE, WITNESSES_PER_SIDE)
        idx_all = np.flatnonzero(stop > start)
        for c in range(0, idx_all.size, _CHUNK_ROWS):  # bounded memory: (rows, 2W, dims)
            idx = idx_all[c : c + _CHUNK_ROWS]
            lo, hi = start[idx, None], stop[idx, None]
            pos = at[idx, None] + offsets[None, :]
            valid = (pos >= lo) & (pos < hi)
            ref = order.order[np.clip(pos, lo, hi - 1)]  # (m, 2W) training rows
            q_rows = rows[idx]
            diff = self.cont[ref] - q.cont[q_rows][:, None, :]
            d2 = np.einsum("ijk,ijk->ij", diff, diff)
            if group >= 0:
                q_codes = np.asarray(q.codes[q_rows, group], dtype=np.int64)
                d2 = d2 + self.costs[group][q_codes[:, None], self.codes[ref, group]]
            d2 = np.where(valid, d2, np.inf)
            best[idx] = np.sqrt(d2.min(axis=1).astype(np.float64))
        return best

    def _pattern_witness(
        self, q: EncodedRows, rows: np.ndarray, keys: np.ndarray, proj: np.ndarray
    ) -> np.ndarray:
        """Witnesses from other patterns: for each distinct pattern among ``rows``, the
        :data:`PATTERNS_TRIED` training patterns with the smallest mismatch cost to it, and
        in each the rows next to the query along the principal coordinate."""
        order = self._order(-1)
        best = np.full(rows.size, np.inf)
        n_patterns = order.unique.size
        if not n_patterns:
            return best
        unique_q, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        q_codes = np.asarray(q.codes[rows[first]], dtype=np.int64)
        tried = min(PATTERNS_TRIED, n_patterns)
        chosen = np.empty((unique_q.size, tried), dtype=np.int64)
        # patterns met before (batches of one model repeat them) keep their choice
        known = np.array([k in self._nearest_patterns for k in unique_q.tolist()], dtype=bool)
        for i in np.flatnonzero(known):
            chosen[i] = self._nearest_patterns[int(unique_q[i])]
        todo = np.flatnonzero(~known)
        step = max(1, _COST_CELLS // max(n_patterns, 1))
        for c in range(0, todo.size, step):  # bounded memory: (query patterns, patterns)
            part = todo[c : c + step]
            cost = self._pattern_costs(q_codes[part], dtype=np.float32)  # ranking only
            pick = np.empty((part.size, tried), dtype=np.int64)
            lines = np.arange(part.size)
            for t in range(tried):  # a few argmin passes: faster than a partition
                pick[:, t] = cost.argmin(axis=1)
                cost[lines, pick[:, t]] = np.inf
            chosen[part] = pick
            if len(self._nearest_patterns) < _REMEMBERED_PATTERNS:
                self._nearest_patterns.update(zip(unique_q[part].tolist(), pick, strict=True))
        assert self._pattern_codes is not None
        # the costs added to witness distances are exact (table look-ups), not the product's
        chosen_cost = np.zeros(chosen.shape, dtype=np.float64)
        for g in range(self.codes.shape[1]):
            chosen_cost += self.costs[g][q_codes[:, g][:, None], self._pattern_codes[chosen, g]]
        offsets = np.arange(-WITNESSES_PER_SIDE, WITNESSES_PER_SIDE)
        for t in range(tried):
            pattern = chosen[inverse, t]
            extra = chosen_cost[inverse, t].astype(np.float64)
            start, stop = order.starts[pattern], order.stops[pattern]
            at = np.clip(
                np.searchsorted(order.composite, pattern.astype(np.float64) * 4.0 + proj),
                start,
                stop,
            )
            for c in range(0, rows.size, _CHUNK_ROWS):
                part = slice(c, c + _CHUNK_ROWS)
                lo, hi = start[part, None], stop[part, None]
                pos = at[part, None] + offsets[None, :]
                valid = (pos >= lo) & (pos < hi)
                ref = order.order[np.clip(pos, lo, hi - 1)]
                diff = self.cont[ref] - q.cont[rows[part]][:, None, :]
                d2 = np.einsum("ijk,ijk->ij", diff, diff).astype(np.float64)
                d2 = np.where(valid, d2, np.inf).min(axis=1) + extra[part]
                best[part] = np.minimum(best[part], np.sqrt(d2))
        return best

    def _pattern_costs(self, q_codes: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        """Mismatch cost of each query pattern (distinct rows of codes) to each training
        pattern, ``(query patterns, training patterns)``: the squared distance between the
        patterns' embeddings, one matrix product (float64: exact to ~1e-12)."""
        if self._pattern_embedding is None:
            order = self._order(-1)
            self._pattern_codes = self.codes[order.order[order.starts]]  # (patterns, groups)
            self._pattern_embedding = self._embed(self._pattern_codes)
            self._pattern_norms = np.einsum("ij,ij->i", *(self._pattern_embedding,) * 2)
        assert self._pattern_norms is not None
        q = self._embed(q_codes).astype(dtype)
        cost = np.einsum("ij,ij->i", q, q)[:, None] + self._pattern_norms.astype(dtype)[None, :]
        cost -= 2.0 * (q @ self._pattern_embedding.T.astype(dtype))
        return np.maximum(cost, 0.0)

    def _embed(self, codes: np.ndarray) -> np.ndarray:
        parts = [e[codes[:, g]] for g, e in enumerate(self._embeddings)]
        if not parts:
            return np.zeros((codes.shape[0], 0))
        return np.hstack(parts)

    def _order(self, group: int) -> _Sorted:
        if group not in self._sorted:
            keys = self._keys if group < 0 else self._keys - self._terms[:, group]
            self._sorted[group] = _Sorted(keys, self._proj)
        return self._sorted[group]

    # -- near copies -----------------------------------------------------------------------

    def _pattern_tree(self) -> tuple[object, np.ndarray]:
        """A k-d tree over [continuous coordinates, pattern number x spacing]."""
        order = self._order(-1)
        if self._tree is None:
            from scipy.spatial import cKDTree  # SciPy comes with SDV

            rank = np.searchsorted(order.unique, self._keys)
            # sliding-midpoint splits: the default median build recursed without end on
            # 800 training rows of a DAG test (in the task process only; the same points
            # built in 0.3 ms in a fresh one), sliding midpoint built them at once
            self._tree = cKDTree(
                self._tree_points(self.cont, rank), balanced_tree=False, compact_nodes=False
            )
        return self._tree, order.unique

    def _spacing(self) -> float:
        """Distance between patterns in the tree: more than twice the largest continuous
        distance (coordinates are clipped to [-10, 11] by the encoding), so a search bounded
        by half of it never leaves the pattern it starts in."""
        return 64.0 * (1.0 + float(np.sqrt(max(self.cont.shape[1], 1))))

    def _tree_points(self, cont: np.ndarray, rank: np.ndarray) -> np.ndarray:
        pattern = rank.astype(np.float64) * self._spacing()
        return np.hstack([cont.astype(np.float64), pattern[:, None]])

    def _rank(self, unique: np.ndarray, q: EncodedRows) -> np.ndarray:
        """Each query row's pattern number among the training patterns (-1: none has it)."""
        keys = self._key_terms(np.asarray(q.codes, dtype=np.int64)).sum(axis=1, dtype=np.uint64)
        if not unique.size:
            return np.full(len(q), -1)
        pos = np.minimum(np.searchsorted(unique, keys), unique.size - 1)
        return np.where(unique[pos] == keys, pos, -1)

    # -- helpers ---------------------------------------------------------------------------

    def _d2(
        self, q: EncodedRows, rows: np.ndarray, refs: np.ndarray, groups: Sequence[int] | None
    ) -> np.ndarray:
        """Squared distances of query ``rows`` to training ``refs`` as the exact search
        computes them (float32 continuous part, plus the groups' mismatch costs)."""
        diff = q.cont[rows].astype(np.float32) - self.cont[refs]
        d2 = np.einsum("ij,ij->i", diff, diff).astype(np.float32)
        for g in range(self.codes.shape[1]) if groups is None else groups:
            d2 += self.costs[g][np.asarray(q.codes[rows, g], dtype=np.int64), self.codes[refs, g]]
        return d2.astype(np.float64)

    def _key_terms(self, codes: np.ndarray) -> np.ndarray:
        return (codes.astype(np.uint64) + np.uint64(1)) * self._mult[None, :]

    @staticmethod
    def _principal(cont: np.ndarray) -> tuple[np.ndarray, float, float]:
        if cont.shape[1] == 0 or cont.shape[0] == 0:
            return np.zeros(cont.shape[1], dtype=np.float32), 0.0, 1.0
        step = max(1, cont.shape[0] // _DIRECTION_ROWS)
        sample = cont[::step].astype(np.float64)
        centred = sample - sample.mean(axis=0)
        try:
            _, _, vt = np.linalg.svd(centred, full_matrices=False)
            direction = vt[0]
        except np.linalg.LinAlgError:  # pragma: no cover - degenerate data
            direction = np.ones(cont.shape[1]) / np.sqrt(cont.shape[1])
        proj = cont.astype(np.float64) @ direction
        low, high = float(proj.min()), float(proj.max())
        return direction.astype(np.float32), low, max(high - low, 1e-12)

    def _project(self, cont: np.ndarray) -> np.ndarray:
        """The principal coordinate scaled to [0, 2] over the training rows (clipped)."""
        if cont.shape[1] == 0:
            return np.zeros(cont.shape[0])
        proj = (cont.astype(np.float64) @ self._direction.astype(np.float64) - self._low) / (
            self._span
        )
        return np.clip(proj, 0.0, 1.0) * 2.0


__all__ = ["WITNESSES_PER_SIDE", "RadiusSearch"]
