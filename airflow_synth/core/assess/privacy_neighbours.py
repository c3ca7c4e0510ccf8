"""Exact nearest neighbours for mixed tables, fast because most pairs are never compared.

Brute force (every synthetic row against every real row, in ~130 one-hot-heavy
dimensions) costs about 12-25 s for 50k x 40k rows on two cores: too slow to run on every
synthetic table. The encoding (:mod:`airflow_synth.core.assess.privacy_encoding`) has a structure
that lets us skip almost all of that work *without approximating*:

    squared distance = continuous part + sum, over discrete groups whose codes differ,
                       of that group's mismatch cost (at least ``delta``; 1 with our encoding)

So a real row that differs from a query in L groups is at least ``L * delta`` away. The
search walks *levels*: level 0 compares each query only with the rows that have exactly its
discrete pattern, level 1 only with rows differing in exactly one group, and so on (rows
are found by hashing the pattern with the left-out groups removed, then a sorted join). A
query is final once its k-th best squared distance is at most ``(L + 1) * delta``, because
every row not yet compared is at least that far. Typical DCRs are far below 1, so most
queries are final after level 0 or 1; the few left go to a blocked brute-force GEMM.

Large join groups (a common pattern, or a table without categoricals) are computed as
cache-sized GEMM tiles (or, in at most ``_KDTREE_MAX_DIMS`` continuous dimensions, by a
k-d tree); small ones as vectorised pair lists. Memory stays bounded by ``_PAIR_CHUNK``
pairs, a few tiles of distances and ``_SORTED_CACHE_BYTES`` of sorted keys. BLAS runs on
one thread: OpenBLAS's threads spin on small GEMMs (16x slower on a busy 2-core machine).
Returned distances are recomputed directly from the chosen pairs, so an exact copy has
distance exactly 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits  # scikit-learn's dependency, via SDV

from airflow_synth.core.assess.privacy_encoding import EncodedRows

#: Highest level searched by joins (a cost model may hand the rest to brute force sooner).
MAX_LEVEL = 4
#: A join group with at least this many (query, reference) pairs is computed as a block.
_DENSE_MIN_PAIRS = 16_384
#: Pairs handled at once in the pair-list path (~60 MB of temporaries at 14 dimensions).
_PAIR_CHUNK = 1 << 20
#: Big level-0 groups in at most this many continuous dimensions go to a k-d tree.
_KDTREE_MAX_DIMS = 6
_KDTREE_MIN_ROWS = 4096
#: Dense distance tiles: 256 x 2048 float32 (2 MB) stay in a core's cache.
_TILE_ROWS = 256
_TILE_COLS = 2048
#: Memory for sorted reference keys kept between queries (16 bytes per row and subset).
_SORTED_CACHE_BYTES = 128 << 20
#: Cost model of :meth:`NeighbourIndex._brute_is_cheaper` (seconds per unit of work).
_SUBSET_SECONDS = 5e-4
_SORT_SECONDS = 6e-8
_MAC_SECONDS = 3e-11
_SCAN_SECONDS = 2e-9
#: Packed (distance, row) meaning "no candidate": +inf, then the largest row number.
_PACKED_NONE = np.int64((0x7F800000 << 32) | 0xFFFFFFFF)
#: Fixed seed of the pattern-hash multipliers: results never depend on it, timing barely.
_KEY_SEED = 20_261_101


@dataclass(frozen=True)
class Segment:
    """Reference rows ``[start, stop)`` to search for the ``k`` nearest (k = 1 or 2 here)."""

    start: int
    stop: int
    k: int


@dataclass(frozen=True)
class Nearest:
    """The k nearest reference rows of each query row, nearest first."""

    distances: np.ndarray  # (n, k) float32; inf where the segment has fewer than k rows
    indices: np.ndarray  # (n, k) int64 reference row numbers; -1 where none


class _Best:
    """Running k best candidates per query row for one segment."""

    def __init__(self, n: int, segment: Segment) -> None:
        self.segment = segment
        self.d2 = np.full((n, segment.k), np.inf, dtype=np.float32)
        self.idx = np.full((n, segment.k), -1, dtype=np.int64)

    def offer(self, rows: np.ndarray, d2: np.ndarray, idx: np.ndarray) -> None:
        """Merge candidates: ``rows`` unique, ``d2``/``idx`` one row of candidates each."""
        both_d = np.concatenate([self.d2[rows], d2], axis=1)
        both_i = np.concatenate([self.idx[rows], idx], axis=1)
        order = np.argsort(both_d, axis=1, kind="stable")[:, : self.segment.k]
        self.d2[rows] = np.take_along_axis(both_d, order, axis=1)
        self.idx[rows] = np.take_along_axis(both_i, order, axis=1)

    def reset(self, rows: np.ndarray) -> None:
        self.d2[rows] = np.inf
        self.idx[rows] = -1


class _Rows:
    """Rows laid out for the search: centred continuous part, codes per group, key terms."""

    def __init__(self, rows: EncodedRows, center: np.ndarray, mult: np.ndarray) -> None:
        self.cont = np.ascontiguousarray(rows.cont - center, dtype=np.float32)
        self.codes = np.ascontiguousarray(rows.codes.T, dtype=np.int64)  # (groups, n)
        # Pattern key = sum of one term per group (wrapping uint64); leaving groups out of
        # the key is subtracting their terms.
        self.terms = (self.codes.astype(np.uint64) + np.uint64(1)) * mult[:, None]
        self.keys = self.terms.sum(axis=0, dtype=np.uint64)

    def key_without(self, subset: tuple[int, ...], rows: np.ndarray | None = None) -> np.ndarray:
        keys = self.keys if rows is None else self.keys[rows]
        for g in subset:
            keys = keys - (self.terms[g] if rows is None else self.terms[g][rows])
        return keys


class NeighbourIndex:
    """Exact k-nearest-neighbour search over fixed reference rows, by segments."""

    def __init__(
        self, ref: EncodedRows, embeddings: Sequence[np.ndarray], *, max_level: int = MAX_LEVEL
    ) -> None:
        if len(ref) >= 2**32:
            raise ValueError("at most 2**32 - 1 reference rows")
        self.ref = ref
        self.max_level = max_level
        self.embeddings = [np.asarray(e, dtype=np.float32) for e in embeddings]
        self.costs = [((e[:, None, :] - e[None, :, :]) ** 2).sum(axis=-1) for e in self.embeddings]
        positive = [float(c[c > 0].min()) for c in self.costs if (c > 0).any()]
        self.delta = min(positive) if positive else math.inf
        rng = np.random.default_rng(_KEY_SEED)
        self._mult = rng.integers(1, 2**63, size=len(self.embeddings), dtype=np.uint64)
        self._center = ref.cont.mean(axis=0) if len(ref) else np.zeros(ref.cont.shape[1])
        self._ref = _Rows(ref, self._center, self._mult)
        self._sorted: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
        self._ref_dense: np.ndarray | None = None
        self._dense_center: np.ndarray | None = None
        #: How the last query went (rows still open after each level; the rest were brute).
        self.last_stats: dict[str, Any] = {}

    # -- public ----------------------------------------------------------------------------

    def query(self, q: EncodedRows, segments: Sequence[Segment]) -> list[Nearest]:
        """The k nearest rows of each segment for every row of ``q``."""
        n = len(q)
        best = [_Best(n, seg) for seg in segments]
        self.last_stats = {"queries": n, "open_after_level": [], "pairs": 0, "dense": 0}
        if n and len(self.ref):
            with threadpool_limits(limits=1, user_api="blas"):
                self._search(q, best)
        return [self._finish(q, b) for b in best]

    # -- levels ----------------------------------------------------------------------------

    def _search(self, q: EncodedRows, best: list[_Best]) -> None:
        rows = _Rows(q, self._center, self._mult)
        varying = [
            g
            for g in range(rows.codes.shape[0])
            if np.union1d(self._ref.codes[g], rows.codes[g]).size > 1
        ]
        active = np.arange(len(q))
        for level in range(min(self.max_level, len(varying)) + 1):
            if level and self._brute_is_cheaper(active.size, len(varying), level, len(best)):
                break
            for subset in itertools.combinations(varying, level):
                self._join(rows, active, subset, best)
            # Rows not compared yet differ in > level groups: at least (level + 1) * delta.
            bound = (level + 1) * self.delta if level < len(varying) else math.inf
            settled = np.logical_and.reduce([b.d2[active, -1] <= bound for b in best])
            active = active[~settled]
            self.last_stats["open_after_level"].append(int(active.size))
            if not active.size:
                return
        self._brute(q, active, best)

    def _brute_is_cheaper(self, queries: int, varying: int, level: int, segments: int) -> bool:
        """Rough cost model: the joins of one more level against brute force for the rest.

        Only speed depends on it (both paths are exact). Constants are seconds measured on a
        2-core x86 machine; being off by 2x costs little.
        """
        n_ref = len(self.ref)
        subsets = math.comb(varying, level)
        sorted_already = sum(len(key) == level for key in self._sorted)
        joins = subsets * _SUBSET_SECONDS + (subsets - sorted_already) * n_ref * _SORT_SECONDS
        width = self._ref.cont.shape[1] + sum(e.shape[1] for e in self.embeddings) + 2
        brute = queries * n_ref * (width * _MAC_SECONDS + segments * _SCAN_SECONDS)
        return brute < joins

    def _sorted_keys(self, subset: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Reference keys without ``subset``, sorted; kept for the next query while the
        cache stays under ``_SORTED_CACHE_BYTES`` (level 3 alone can be 455 sorts)."""
        if subset in self._sorted:
            return self._sorted[subset]
        keys = self._ref.key_without(subset)
        perm = np.argsort(keys)
        entry = (keys[perm], perm)
        if (len(self._sorted) + 1) * len(self.ref) * 16 <= _SORTED_CACHE_BYTES:
            self._sorted[subset] = entry
        return entry

    def _join(
        self, q: _Rows, active: np.ndarray, subset: tuple[int, ...], best: list[_Best]
    ) -> None:
        """Compare active queries with the rows equal to them outside ``subset``."""
        keys_sorted, perm = self._sorted_keys(subset)
        qk = q.key_without(subset, active)
        order = np.argsort(qk)  # sorted lookups are cache friendly, and group equal keys
        rows, qk = active[order], qk[order]
        lo = np.searchsorted(keys_sorted, qk, side="left")
        counts = np.searchsorted(keys_sorted, qk, side="right") - lo
        hit = counts > 0
        rows, qk, lo, counts = rows[hit], qk[hit], lo[hit], counts[hit]
        if not rows.size:
            return
        key_starts = np.flatnonzero(np.r_[True, qk[1:] != qk[:-1]])
        per_key = np.diff(np.r_[key_starts, qk.size])
        dense = np.repeat(per_key, per_key) * counts >= _DENSE_MIN_PAIRS
        big = dense[key_starts]
        for first, size in zip(key_starts[big].tolist(), per_key[big].tolist(), strict=True):
            refs = np.sort(perm[lo[first] : lo[first] + counts[first]])
            self._dense(q, rows[first : first + size], refs, subset, best)
        sparse = ~dense
        if sparse.any():
            self._pairs(q, rows[sparse], lo[sparse], counts[sparse], perm, subset, best)

    # -- pair lists ------------------------------------------------------------------------

    def _pairs(
        self,
        q: _Rows,
        rows: np.ndarray,
        lo: np.ndarray,
        counts: np.ndarray,
        perm: np.ndarray,
        subset: tuple[int, ...],
        best: list[_Best],
    ) -> None:
        ends = np.cumsum(counts)
        start = 0
        while start < rows.size:
            base = ends[start] - counts[start]
            stop = max(int(np.searchsorted(ends, base + _PAIR_CHUNK, side="right")), start + 1)
            chunk = slice(start, stop)
            self._pair_chunk(q, rows[chunk], lo[chunk], counts[chunk], perm, subset, best)
            start = stop

    def _pair_chunk(
        self,
        q: _Rows,
        rows: np.ndarray,
        lo: np.ndarray,
        counts: np.ndarray,
        perm: np.ndarray,
        subset: tuple[int, ...],
        best: list[_Best],
    ) -> None:
        total = int(counts.sum())
        owner = np.repeat(np.arange(rows.size), counts)
        firsts = np.cumsum(counts) - counts
        ref_rows = perm[np.repeat(lo - firsts, counts) + np.arange(total)]
        q_rows = rows[owner]
        cost = np.zeros(total, dtype=np.float32)
        if subset:
            keep = np.ones(total, dtype=bool)
            for g in subset:
                qc, rc = q.codes[g][q_rows], self._ref.codes[g][ref_rows]
                keep &= qc != rc  # equal codes here were compared at a lower level
                cost += self.costs[g][qc, rc]
            owner, ref_rows, q_rows, cost = owner[keep], ref_rows[keep], q_rows[keep], cost[keep]
        self.last_stats["pairs"] += int(owner.size)
        diff = q.cont[q_rows] - self._ref.cont[ref_rows]
        d2 = np.einsum("ij,ij->i", diff, diff) + cost
        # One sortable int64 per pair: float bits of d2 (monotonic for d2 >= 0), then the
        # reference row. A block minimum is then the nearest row *and* its distance.
        packed = (d2.view(np.int32).astype(np.int64) << 32) | ref_rows
        sizes = np.bincount(owner, minlength=rows.size)
        present = sizes > 0
        starts = (np.cumsum(sizes) - sizes)[present]
        sizes = sizes[present]
        n_ref = len(self.ref)
        for b in best:
            seg = b.segment
            work = packed
            if seg.start > 0:
                work = np.where(ref_rows >= seg.start, work, _PACKED_NONE)
            if seg.stop < n_ref:
                work = np.where(ref_rows < seg.stop, work, _PACKED_NONE)
            found = []
            for j in range(seg.k):
                smallest = np.minimum.reduceat(work, starts)
                found.append(smallest)
                if j + 1 < seg.k:
                    work = np.where(work == np.repeat(smallest, sizes), _PACKED_NONE, work)
            cand = np.stack(found, axis=1)
            cand_d = (cand >> 32).astype(np.int32).view(np.float32)
            cand_i = np.where(np.isfinite(cand_d), cand & 0xFFFFFFFF, -1)
            b.offer(rows[present], cand_d, cand_i)

    # -- dense blocks ----------------------------------------------------------------------

    def _dense(
        self,
        q: _Rows,
        q_rows: np.ndarray,
        refs: np.ndarray,
        subset: tuple[int, ...],
        best: list[_Best],
    ) -> None:
        """One join group as tiles of squared distances (continuous part by GEMM)."""
        dims = self._ref.cont.shape[1]
        if not subset and 0 < dims <= _KDTREE_MAX_DIMS and refs.size >= _KDTREE_MIN_ROWS:
            self.last_stats["kdtree"] = self.last_stats.get("kdtree", 0) + int(q_rows.size)
            self._kdtree(q, q_rows, refs, best)
            return
        self.last_stats["dense"] += int(q_rows.size * refs.size)
        ranges = [
            (*np.searchsorted(refs, [b.segment.start, b.segment.stop]).tolist(), b.segment.k)
            for b in best
        ]
        adjust = None
        if subset:
            q_codes = [q.codes[g][q_rows] for g in subset]
            r_codes = [self._ref.codes[g][refs] for g in subset]
            costs = [self.costs[g] for g in subset]

            def adjust(tile: np.ndarray, r: slice, c: slice) -> None:
                for qc, rc, cost in zip(q_codes, r_codes, costs, strict=True):
                    qcol, rrow = qc[r][:, None], rc[c][None, :]
                    tile += cost[qcol, rrow]
                    tile[qcol == rrow] = np.inf  # compared at a lower level

        found = _scan(_augment_query(q.cont[q_rows]), _augment_ref(self._ref.cont[refs]), ranges,
                      adjust)  # fmt: skip
        for b, (cand_d, cols) in zip(best, found, strict=True):
            b.offer(q_rows, cand_d, np.where(cols >= 0, refs[np.maximum(cols, 0)], -1))

    def _kdtree(self, q: _Rows, q_rows: np.ndarray, refs: np.ndarray, best: list[_Best]) -> None:
        """A big group in few continuous dimensions (a numbers-only table): a k-d tree
        answers exactly in ~n log n where tiles would cost n^2 (10x faster at 4 dims)."""
        from sklearn.neighbors import KDTree  # heavy import, needed for such tables only

        queries = q.cont[q_rows].astype(np.float64)
        for b in best:
            c0, c1 = np.searchsorted(refs, [b.segment.start, b.segment.stop]).tolist()
            if c0 == c1:
                continue
            k = min(b.segment.k, c1 - c0)
            tree = KDTree(self._ref.cont[refs[c0:c1]].astype(np.float64))
            dist, idx = tree.query(queries, k=k)
            d2 = np.full((q_rows.size, b.segment.k), np.inf, dtype=np.float32)
            found = np.full((q_rows.size, b.segment.k), -1, dtype=np.int64)
            d2[:, :k] = dist**2
            found[:, :k] = refs[c0 + idx]
            b.offer(q_rows, d2, found)

    def _brute(self, q: EncodedRows, rows: np.ndarray, best: list[_Best]) -> None:
        """Every reference row for the queries the levels did not settle."""
        self.last_stats["brute"] = int(rows.size)
        if self._ref_dense is None:
            full = self._full(self.ref.cont, self.ref.codes)
            self._dense_center = full.mean(axis=0)
            self._ref_dense = _augment_ref(full - self._dense_center)
        assert self._dense_center is not None
        ranges = [(b.segment.start, b.segment.stop, b.segment.k) for b in best]
        step = _TILE_ROWS * 8
        for s in range(0, rows.size, step):
            part = rows[s : s + step]
            centred = self._full(q.cont[part], q.codes[part]) - self._dense_center
            found = _scan(_augment_query(centred), self._ref_dense, ranges)
            for b, (cand_d, cols) in zip(best, found, strict=True):
                b.reset(part)  # brute force sees every row: replace, never merge twice
                b.offer(part, cand_d, cols)

    def _full(self, cont: np.ndarray, codes: np.ndarray) -> np.ndarray:
        parts = [cont] + [e[codes[:, g]] for g, e in enumerate(self.embeddings)]
        return np.hstack(parts).astype(np.float32)

    # -- result ----------------------------------------------------------------------------

    def _finish(self, q: EncodedRows, b: _Best) -> Nearest:
        """Recompute the chosen pairs' distances directly (exact 0 for copies), re-sort."""
        d2 = np.full(b.idx.shape, np.inf, dtype=np.float32)
        found = b.idx >= 0
        qi = np.nonzero(found)[0]
        ri = b.idx[found]
        diff = q.cont[qi] - self.ref.cont[ri]
        exact = np.einsum("ij,ij->i", diff, diff).astype(np.float32)
        for g, cost in enumerate(self.costs):
            exact += cost[q.codes[qi, g], self.ref.codes[ri, g]]
        d2[found] = exact
        order = np.argsort(d2, axis=1, kind="stable")
        distances = np.sqrt(np.take_along_axis(d2, order, axis=1))
        return Nearest(distances, np.take_along_axis(b.idx, order, axis=1))


def _augment_query(x: np.ndarray) -> np.ndarray:
    """[x, 1, |x|^2]: times an augmented reference gives |x|^2 + |r|^2 - 2 x.r in one GEMM."""
    ones = np.ones((x.shape[0], 1), dtype=np.float32)
    return np.hstack([x, ones, np.einsum("ij,ij->i", x, x)[:, None]]).astype(np.float32)


def _augment_ref(r: np.ndarray) -> np.ndarray:
    ones = np.ones((r.shape[0], 1), dtype=np.float32)
    return np.ascontiguousarray(
        np.hstack([-2.0 * r, np.einsum("ij,ij->i", r, r)[:, None], ones]), dtype=np.float32
    )


def _scan(
    q_aug: np.ndarray,
    ref_aug: np.ndarray,
    ranges: Sequence[tuple[int, int, int]],
    adjust: Callable[[np.ndarray, slice, slice], None] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The k smallest squared distances (and columns) of every query within each column
    range ``(start, stop, k)`` of the references, tile by tile.

    Tiles are small enough to stay in cache, and a tile costs one ``min`` per row unless it
    holds something better than the row's current k-th best (rare after the first tiles),
    so most of the work is the GEMM itself.
    """
    n = q_aug.shape[0]
    out = [
        (np.full((n, k), np.inf, dtype=np.float32), np.full((n, k), -1, dtype=np.int64))
        for _, _, k in ranges
    ]
    spans = [(start, stop) for start, stop, _ in ranges if stop > start]
    if not spans or not n:
        return out
    low, high = min(a for a, _ in spans), max(b for _, b in spans)
    for r0 in range(0, n, _TILE_ROWS):
        r = slice(r0, min(r0 + _TILE_ROWS, n))
        q_tile = q_aug[r]
        for c0 in range(low, high, _TILE_COLS):
            c = slice(c0, min(c0 + _TILE_COLS, high))
            tile = q_tile @ ref_aug[c].T
            if adjust is not None:
                adjust(tile, r, c)
            for (start, stop, k), (best_d, best_c) in zip(ranges, out, strict=True):
                x0, x1 = max(start, c.start), min(stop, c.stop)
                if x0 >= x1:
                    continue
                sub = tile[:, x0 - c0 : x1 - c0]
                rows = np.flatnonzero(sub.min(axis=1) < best_d[r, -1])
                if not rows.size:
                    continue
                cand_d, cand_c = _topk(sub[rows], k)
                rows += r0
                both_d = np.concatenate([best_d[rows], cand_d], axis=1)
                both_c = np.concatenate([best_c[rows], np.where(cand_c >= 0, cand_c + x0, -1)], 1)
                order = np.argsort(both_d, axis=1, kind="stable")[:, :k]
                best_d[rows] = np.take_along_axis(both_d, order, axis=1)
                best_c[rows] = np.take_along_axis(both_c, order, axis=1)
    return out


def _topk(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest entries per row of ``block`` (a scratch copy: it is overwritten)."""
    n = block.shape[0]
    out_d = np.full((n, k), np.inf, dtype=np.float32)
    out_c = np.full((n, k), -1, dtype=np.int64)
    rows = np.arange(n)
    for j in range(min(k, block.shape[1])):
        cols = block.argmin(axis=1)
        vals = block[rows, cols]
        out_d[:, j] = vals
        out_c[:, j] = np.where(np.isfinite(vals), cols, -1)
        block[rows, cols] = np.inf
    return out_d, out_c


__all__ = ["MAX_LEVEL", "Nearest", "NeighbourIndex", "Segment"]
