"""Exact counts: apportioning a declared share of N rows, and handing the quota out in blocks.

Two steps make a declared truth hold to the row at any size:

1. **Apportion once, globally.** :func:`apportion` turns shares into integer counts that add
   up to N (largest-remainder / Hamilton method, ties broken by position), so "28% facebook
   sign-ups" becomes e.g. 2,800 of 10,000 rows, computed from the spec alone.
2. **Hand the quota out block by block.** Rows are made in fixed blocks; each block takes
   its share of the *remaining* quota with a multivariate hypergeometric draw
   (:class:`Quota`), exactly as if the N labels had been shuffled once and cut into blocks.
   The last block takes whatever remains, so per-block rounding can never drift, and the
   order of labels inside a block is a seeded shuffle.

Blocks have a fixed size that does not depend on how the caller batches the output, so the
data are the same for every ``batch_rows``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def apportion(total: int, shares: Sequence[float] | np.ndarray) -> np.ndarray:
    """Integer counts adding up to ``total``, as close to ``total * shares`` as possible.

    Largest-remainder method: everybody gets the floor of their exact quota, then the rows
    left over go to the largest remainders (the earlier entry wins a tie). ``shares`` must
    be non-negative; they are normalised, so weights work as well as shares.
    """
    weights = np.asarray(shares, dtype=float)
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    if weights.ndim != 1 or weights.size == 0 or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError("shares must be a non-empty list of non-negative numbers")
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    left = int(total - counts.sum())
    if left:
        order = np.lexsort((np.arange(weights.size), -(exact - counts)))
        counts[order[:left]] += 1
    return counts


class Quota:
    """The not yet used part of a set of exact counts, handed out block by block."""

    def __init__(self, counts: np.ndarray) -> None:
        self.remaining = np.asarray(counts, dtype=np.int64).copy()

    def take(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Counts per category for the next ``n`` rows (a random share of what remains)."""
        left = int(self.remaining.sum())
        if n > left:
            raise ValueError(f"asked for {n} rows but only {left} remain in the quota")
        if n == left:
            taken = self.remaining.copy()
        elif n == 0:
            taken = np.zeros_like(self.remaining)
        else:
            taken = rng.multivariate_hypergeometric(self.remaining, n, method="marginals")
        self.remaining -= taken
        return taken

    def labels(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Category codes of the next ``n`` rows, in seeded random order."""
        codes = np.repeat(np.arange(self.remaining.size, dtype=np.int32), self.take(n, rng))
        rng.shuffle(codes)
        return codes


class JointQuota:
    """Exact counts of a column *given* another exact column (one quota row per value).

    ``given`` codes of the block's rows say which row of the quota each row draws from;
    each group takes its labels from its own remaining counts, so both the joint counts and
    the marginal counts stay exact.
    """

    def __init__(self, counts: np.ndarray) -> None:
        self.quotas = [Quota(row) for row in np.asarray(counts, dtype=np.int64)]

    def labels(self, given: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        codes = np.empty(given.shape[0], dtype=np.int32)
        for value in np.unique(given):
            rows = np.flatnonzero(given == value)
            codes[rows] = self.quotas[int(value)].labels(rows.shape[0], rng)
        return codes

    def choose(self, given: np.ndarray, key: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Boolean quota: per group take the exact number of Trues, for the highest ``key``.

        With ``key = propensity + Gumbel noise`` this is weighted sampling without
        replacement, so who is True follows the propensity while the count stays exact.
        """
        groups = np.unique(given)
        trues = np.zeros(given.shape[0], dtype=bool)
        if groups.size == 0:
            return trues
        sizes = np.bincount(given, minlength=len(self.quotas))
        wanted = np.zeros(len(self.quotas), dtype=np.int64)
        for value in groups:
            wanted[value] = self.quotas[int(value)].take(int(sizes[value]), rng)[1]
        order = np.lexsort((-key, given))
        sorted_given = given[order]
        starts = np.searchsorted(sorted_given, sorted_given, side="left")
        rank = np.arange(given.shape[0]) - starts
        trues[order[rank < wanted[sorted_given]]] = True
        return trues


def gumbel(rng: np.random.Generator, n: int) -> np.ndarray:
    """Gumbel noise: adding it to log-weights and taking the top k samples without replacement."""
    return -np.log(-np.log(rng.random(n).clip(1e-300, 1.0 - 1e-16)))


# --- unique pseudo-random ids ---------------------------------------------------------------


def permute_bits(index: np.ndarray, key: int, half_bits: int) -> np.ndarray:
    """A keyed bijection of [0, 2**(2*half_bits)): a 4-round Feistel network."""
    mask = np.uint64((1 << half_bits) - 1)
    shift = np.uint64(half_bits)
    left = (index.astype(np.uint64) >> shift) & mask
    right = index.astype(np.uint64) & mask
    keys = np.random.default_rng(key).integers(1, 1 << 31, size=4, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for round_key in keys:
            mixed = (right * np.uint64(0x9E3779B1) + round_key) & np.uint64(0xFFFFFFFF)
            mixed ^= mixed >> np.uint64(13)
            mixed = (mixed * np.uint64(0x85EBCA6B)) & np.uint64(0xFFFFFFFF)
            mixed ^= mixed >> np.uint64(16)
            left, right = right, left ^ (mixed & mask)
    return (left << shift) | right


_ALPHABET = np.array(list("0123456789abcdefghijklmnopqrstuvwxyz"))


def random_string_ids(index: np.ndarray, length: int, key: int) -> np.ndarray:
    """Distinct ids like 'gxn3p5htnn' for distinct row numbers (a bijection, no look-ups).

    Row numbers are permuted within [0, 36**length) by cycle-walking a Feistel permutation
    of the smallest even number of bits holding 36**length (so at most ~4 rounds of walking
    are needed on average), then written in base 36: unique by construction, random-looking,
    and computable for any block of rows on its own.
    """
    space = 36**length
    if space > 1 << 52:
        raise ValueError("random_string ids are at most 10 characters")
    half_bits = (space.bit_length() + 1) // 2
    values = permute_bits(index, key, half_bits)
    outside = values >= np.uint64(space)
    while outside.any():
        values[outside] = permute_bits(values[outside], key, half_bits)
        outside = values >= np.uint64(space)
    digits = np.empty((index.shape[0], length), dtype=np.int64)
    rest = values.copy()
    for position in range(length - 1, -1, -1):
        digits[:, position] = (rest % np.uint64(36)).astype(np.int64)
        rest //= np.uint64(36)
    chars = np.ascontiguousarray(_ALPHABET[digits])
    return chars.view(f"<U{length}").ravel()
