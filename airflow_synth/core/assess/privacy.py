"""Does the synthetic table leak real rows? Measure it, and filter the rows that would.

A synthesizer can memorise: replay training rows, or produce rows so close to one real
person that they identify them. We measure that against a *holdout* of real rows the
model never saw: a synthetic row should be no closer to the training rows than a fresh
real row is. Two filters (as Gretel's privacy filters) then drop the rows that fail:

* *similarity*: rows whose distance to the closest training record (DCR) is below the
  ``similarity_quantile`` of the held-out rows' DCRs (closer than 99% of genuinely new
  real rows are, by default; held-out rows that equal a training row are left out of that
  yardstick, or duplicated real rows would pull it to 0), and rows that copy a training
  row exactly, unless :attr:`PrivacyEvaluator.drop_exact_copies` is off (where real rows
  repeat each other, a copy is what a faithful generator produces too);
* *outlier*: rows whose DCR is above the ``outlier_quantile`` of the holdout rows' DCRs
  *and* among the farthest rows the model produces: above its ``1 - outlier_max_share`` DCR
  quantile, at most ``outlier_max_share`` (1%) of a batch. Far from every real row, such
  rows stand out and help membership and attribute inference (and are often implausible
  anyway); but where far more rows lie beyond the holdout cut-off, the model is a little
  off everywhere (or the holdout sits unusually close to training, as when columns
  determine each other), which the fidelity gates judge: the filter does not gut the table.

The filters ask radius questions, not every row's DCR: DCRs measured before are reused,
and the rest are answered exactly by :mod:`airflow_synth.core.assess.privacy_radius` (a k-d tree
per discrete pattern for near copies, *witnesses* for outliers), at a cost linear in rows.

Columns listed in ``exclude`` (ids, PII, generated fresh) are left out of every distance
and of exact matching. Distances are Euclidean on the encoding of
:mod:`airflow_synth.core.assess.privacy_encoding`, found exactly (not approximately) by
:mod:`airflow_synth.core.assess.privacy_neighbours`. Nearest neighbours of a synthetic table are
computed once and cached by row content, so ``filter`` then ``report`` (on the same
frame, or on the kept rows) search once; :meth:`PrivacyEvaluator.evaluate` does both.

Keys of the report (``privacy.json``):

* ``rows``: how many training, holdout, synthetic rows were measured, and the size of the
  training sample used for ``dcr_share``.
* ``exact_match_rate``: share of synthetic rows identical to some training row on all
  non-excluded columns (NULL equals NULL); 0 is the target.
* ``exact_match_rate_holdout``: the same against the holdout rows, for reference.
* ``exact_match_rate_holdout_to_train``: share of holdout rows identical to some training
  row, for reference: 0 by construction when the holdout is split by distinct row
  (:func:`airflow_synth.core.engine.holdout.split_holdout`).
* ``exact_match_rate_real_repeats``: share of training rows identical to *another* training
  row: how often real rows repeat, so the fair yardstick for ``exact_match_rate`` (a
  generator drawing from the true distribution matches training rows at about this rate);
  high on coarse tables (few, low-cardinality columns), 0 for tables with continuous columns.
* ``near_copy_rate``: share of synthetic rows that are not exact copies but sit closer to a
  training row than any real row sits to another, different real row: closer than the
  smallest of ``m`` reference distances (each held-out row's DCR, and each distinct
  training row's distance to its nearest other training row, up to
  ``NEAR_COPY_REFERENCE_ROWS`` of them). A real row the model never saw falls there with
  probability ``1 / (m + 1)`` (``near_copy_rate_expected``), whatever the data; a row that
  is a training row plus a little noise falls there almost surely. ``None`` (with
  ``near_copy_reason``) when there is no reference distance.
* ``dcr_share``: share of synthetic rows closer to the training rows than to the holdout
  (a tie counts at its no-memorisation value), normalised for the sizes of the two sets:
  fresh rows land closer to the training set with probability train / (train + holdout)
  (0.8 at a 20% holdout), and that probability is mapped to 0.5 by re-weighting the odds
  (what the share would be with equal-sized sets). 0.5 is ideal, 1.0 means every row
  copies training data.
  ``dcr_share_ci95`` is its 95% (Wilson) interval; ``dcr_share_full_train`` and
  ``dcr_share_full_train_expected`` are the raw share and its no-memorisation value.
* ``dcr_share_sample``: the same comparison against a random training sample as large as
  the holdout (MOSTLY AI's variant), for reference; it dilutes memorisation (a model that
  copied all training rows scores only 0.5 + 0.5 * holdout / train).
* ``dcr_share_full_train``: the same against the *whole* training set: a model that copies
  training rows scores 1.0 whatever the split, fresh real rows score about
  ``dcr_share_full_train_expected`` = train / (train + holdout) (exactly so for continuous
  data; ties in coarse data move it towards 0.5). Gate on this one to catch memorising
  with a small holdout (``dcr_share`` of a full copy is only 0.625 at a 20% holdout).
* ``dcr``: distance to the closest training record, 5th percentile, median and mean, of
  the synthetic rows and of the holdout rows (the yardstick).
* ``nndr``: median and 5th percentile of each synthetic row's nearest-neighbour distance
  ratio (closest / second-closest training row); near 0 means a row sits on top of one real
  row.
* ``thresholds``: the DCR cut-offs of the two filters, the quantiles they come from, the
  largest share of a batch the outlier filter drops (``outlier_max_share``) and whether
  each filter is on.
* ``filtered``: rows before filtering and rows dropped by each filter (set by
  :meth:`PrivacyEvaluator.evaluate`, ``None`` from ``report`` alone).
* ``encoding``: how columns were turned into numbers (no real values in it).
* ``columns_used`` / ``columns_excluded``: the columns measured and those left out.
* ``seconds``: wall time of this measurement; ``seconds_setup``: the one-off preparation
  (encoding the real rows, the holdout's distances).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from airflow_synth.core.assess.privacy_encoding import EncodedRows, TableEncoder, check_kinds
from airflow_synth.core.assess.privacy_neighbours import NeighbourIndex, Segment
from airflow_synth.core.assess.privacy_radius import RadiusSearch
from airflow_synth.core.errors import DataError, SynthError

#: Decimals kept in the report: enough for rates of one row in a million.
_DECIMALS = 6
#: Distinct training rows whose distance to their nearest other training row joins the
#: near-copy reference (a seeded sample beyond).
NEAR_COPY_REFERENCE_ROWS = 20_000
#: Distinct synthetic rows whose measurements are kept between calls (~35 bytes each).
_CACHE_ROWS = 1_000_000
#: :meth:`MeasurementSample.expect` measures about this many times ``max_rows`` rows.
SAMPLE_MARGIN = 1.2
#: Measured DCRs needed to place the outlier filter's quantile cut (evenly spaced rows of
#: the batch are measured when fewer are known).
PROBE_ROWS = 2_000


class PrivacyConfigError(SynthError, ValueError):
    """A privacy setting is out of range."""


@dataclasses.dataclass(frozen=True)
class PrivacySettings:
    """What the privacy filters drop; the defaults follow Gretel's "medium" filters."""

    #: Drop synthetic rows that copy or nearly copy a training row.
    similarity_filter: bool = True
    #: Drop synthetic rows that are outliers in the real data's space.
    outlier_filter: bool = True
    #: "Nearly copy": DCR to training below this quantile of the held-out rows' DCR to
    #: training (those not equal to a training row), plus exact copies when they count.
    similarity_quantile: float = 0.01
    #: "Outlier": DCR to training above this quantile of the holdout rows' DCR to training.
    outlier_quantile: float = 0.995
    #: ...and among the most extreme rows of the batch: the outlier filter drops at most
    #: this share of a batch (rounded up), its rows farthest from every real row. ``None``:
    #: twice ``1 - outlier_quantile`` (1% by default), room for the 0.5% of rows a faithful
    #: model puts there. Where far more rows are "outliers" the model is a bit off
    #: everywhere (or the holdout sits unusually close to training, as when columns
    #: determine each other): the fidelity gates judge that, the filter does not gut it.
    outlier_max_share: float | None = None
    #: One-hot width cap per categorical column (rarer values become "other").
    max_categories: int = 30

    @property
    def outlier_share(self) -> float:
        """The largest share of a batch the outlier filter drops."""
        if self.outlier_max_share is not None:
            return float(self.outlier_max_share)
        return min(1.0, 2.0 * (1.0 - self.outlier_quantile))

    def __post_init__(self) -> None:
        for name in ("similarity_quantile", "outlier_quantile"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise PrivacyConfigError(f"{name} must be a number in [0, 1], got {value!r}.")
        share = self.outlier_max_share
        if share is not None and not (isinstance(share, (int, float)) and 0.0 <= share <= 1.0):
            raise PrivacyConfigError(
                f"outlier_max_share must be a number in [0, 1], got {share!r}."
            )
        if self.similarity_quantile >= self.outlier_quantile:
            raise PrivacyConfigError(
                f"similarity_quantile ({self.similarity_quantile}) must be below "
                f"outlier_quantile ({self.outlier_quantile}), or every row would be dropped."
            )
        if not isinstance(self.max_categories, int) or self.max_categories < 1:
            raise PrivacyConfigError(
                f"max_categories must be a positive integer, got {self.max_categories!r}."
            )


@dataclasses.dataclass(frozen=True)
class FilterResult:
    """The synthetic rows that passed, and how many rows each filter dropped.

    ``reasons`` has one entry per input row: ``""`` for a kept row, else the name of the
    filter that dropped it (``"similarity"`` or ``"outlier"``), so a caller can replace
    each dropped row by one like it.
    """

    kept: pd.DataFrame
    dropped: dict[str, int]
    reasons: np.ndarray | None = None

    @property
    def keep(self) -> np.ndarray:
        """One boolean per input row: whether it passed."""
        assert self.reasons is not None
        return self.reasons == ""


@dataclasses.dataclass(frozen=True)
class _Measured:
    """Per-row measurements of one synthetic frame."""

    dcr: np.ndarray  # distance to the closest training row
    nndr: np.ndarray  # closest / second closest training row (0 when both are 0)
    closer_to_train: np.ndarray  # 1 closer to the train sample, 0.5 tie, 0 closer to holdout
    closer_to_all_train: np.ndarray  # the same against the whole training set
    exact_train: np.ndarray
    exact_holdout: np.ndarray


class PrivacyEvaluator:
    """Privacy measurement and filters of synthetic tables against one train/holdout split.

    ``kinds`` maps each measured column to ``numerical``, ``categorical``, ``datetime`` or
    ``boolean`` (SDV sdtypes); every other column of ``train`` must be listed in
    ``exclude``. Setting up encodes the real rows and computes each holdout row's DCR, which
    defines the filter thresholds; ``seed`` fixes the training sample behind ``dcr_share``.
    """

    def __init__(
        self,
        train: pd.DataFrame,
        holdout: pd.DataFrame,
        kinds: Mapping[str, str],
        *,
        exclude: Sequence[str] = (),
        settings: PrivacySettings = PrivacySettings(),  # noqa: B008 - frozen, safe default
        seed: int = 0,
    ) -> None:
        started = time.perf_counter()
        self.settings = settings
        self.columns_excluded = [c for c in train.columns if c in set(exclude)]
        kinds = check_kinds(kinds, exclude)
        _check_columns(train, holdout, kinds, exclude)
        self.columns_used = list(kinds)
        if len(train) == 0 or len(holdout) == 0:
            raise DataError(
                f"Privacy needs real rows on both sides: got {len(train)} training and "
                f"{len(holdout)} holdout rows. Hold out some rows (e.g. 20%) before training."
            )
        self.encoder = TableEncoder(train, kinds, max_categories=settings.max_categories)
        train_rows = self.encoder.encode(train)
        holdout_rows = self.encoder.encode(holdout)
        self.n_train, self.n_holdout = len(train), len(holdout)
        self._train_hashes, counts = np.unique(train_rows.hashes, return_counts=True)
        self._holdout_hashes = np.unique(holdout_rows.hashes)
        holdout_is_copy = _member(holdout_rows.hashes, self._train_hashes)
        self.holdout_exact = float(holdout_is_copy.mean())
        #: share of training rows equal to another training row: how often real rows repeat
        self.real_repeat_rate = float(counts[counts >= 2].sum()) / self.n_train
        #: exact copies count as memorisation only where real rows do not repeat this much;
        #: the assessor sets it (one rule for single- and multi-table, see SyntheticAssessor)
        self.drop_exact_copies = True

        # Reference rows: [training sample | rest of training | holdout], so each question
        # (nearest training rows, nearest in the sample, nearest in the holdout) is a range.
        self.n_sample = min(self.n_train, self.n_holdout)
        rng = np.random.default_rng(seed)
        order = rng.permutation(self.n_train)
        reference = _concat(train_rows.take(order), holdout_rows)
        self._index = NeighbourIndex(reference, [g.embedding for g in self.encoder.groups])
        self._radius = RadiusSearch(
            reference.take(np.arange(self.n_train)), self._index, self.n_train
        )
        self._train = Segment(0, self.n_train, 2)
        self._sample = Segment(0, self.n_sample, 1)
        self._holdout = Segment(self.n_train, self.n_train + self.n_holdout, 1)

        unique, inverse = np.unique(holdout_rows.hashes, return_inverse=True)
        first = _first_positions(inverse, unique.size)
        (nearest,) = self._index.query(holdout_rows.take(first), [Segment(0, self.n_train, 1)])
        self.holdout_dcr = nearest.distances[:, 0].astype(np.float64)[inverse]
        dcr = self.holdout_dcr
        # Yardsticks of "too close" come from held-out rows that are not themselves copies
        # of a training row: those sit at 0 and dragged the cut-off to 0 (with 3% duplicated
        # rows not one of 500 near copies was filtered). Exact copies are judged apart.
        fresh = dcr[~holdout_is_copy]
        self.similarity_threshold = (
            float(np.quantile(fresh, settings.similarity_quantile)) if fresh.size else 0.0
        )
        reference = np.concatenate([fresh, self._distinct_train_gaps(train_rows, counts, rng)])
        self.near_copy_reference = int(reference.size)
        self.near_copy_threshold = float(reference.min()) if reference.size else 0.0
        self.near_copy_expected: float | None = (
            1.0 / (reference.size + 1) if reference.size else None
        )
        self.outlier_threshold = float(np.quantile(dcr, settings.outlier_quantile))
        self._cache: tuple[np.ndarray, _Measured] | None = None
        #: the outlier cut the last filter call applied (holdout cut-off or model quantile)
        self.last_outlier_cut = self.outlier_threshold
        #: exact DCRs of evenly spaced rows the filter measured (when none were cached)
        self._probe_dcr = np.empty(0)
        self.seconds_setup = time.perf_counter() - started

    # -- public --------------------------------------------------------------------------

    def filter(self, synthetic: pd.DataFrame) -> FilterResult:
        """Drop the synthetic rows the enabled filters catch (similarity checked first).

        Exact, without measuring every row: the DCRs measured before (cached) are used
        where known, and the rest are answered as radius questions
        (:class:`~airflow_synth.core.assess.privacy_radius.RadiusSearch`).
        """
        rows = self.encoder.encode(synthetic)
        exact = _member(rows.hashes, self._train_hashes)
        similar, outlier = self._decide(rows, self._cached_dcr(rows.hashes), exact)
        return _result(synthetic, similar, outlier)

    def blame(self, synthetic: pd.DataFrame) -> dict[str, float]:
        """Per measured column, its share of the squared distances between the rows of
        ``synthetic`` and their nearest training rows (shares add up to 1): which columns
        put rows far from every real row (the outlier filter's rows). Names and numbers
        only, never a value. Empty when every row sits on a training row (exact copies)."""
        if not len(synthetic):
            return {}
        rows = self.encoder.encode(synthetic)
        (nearest,) = self._index.query(rows, [Segment(0, self.n_train, 1)])
        found = nearest.indices[:, 0] >= 0
        if not found.any():
            return {}
        rows = rows.take(np.flatnonzero(found))
        ref = self._index.ref.take(nearest.indices[found, 0])
        squared = (self.encoder.dense(rows) - self.encoder.dense(ref)).astype(np.float64) ** 2
        owners = self.encoder.continuous_columns + [
            g.column for g in self.encoder.groups for _ in range(g.embedding.shape[1])
        ]
        total = float(squared.sum())
        if total <= 0:
            return {}
        shares: dict[str, float] = {}
        for column, part in zip(owners, squared.sum(axis=0), strict=True):
            shares[column] = shares.get(column, 0.0) + float(part) / total
        return {c: share for c, share in shares.items() if share > 0}

    def report(self, synthetic: pd.DataFrame) -> dict[str, Any]:
        """The privacy report (``privacy.json`` body) of ``synthetic``; keys as documented."""
        started = time.perf_counter()
        measured = self._measure(synthetic)
        return self._report(len(synthetic), measured, None, time.perf_counter() - started)

    def report_measured_rows(self, synthetic: pd.DataFrame, max_rows: int) -> dict[str, Any]:
        """The privacy report of those rows of ``synthetic`` measured before (cached):
        after a run that measured a uniform sample of its raw rows, the published rows among
        them are a uniform sample of the published rows, reported without a new search.
        With none measured before, a seeded sample of ``max_rows`` rows is measured."""
        started = time.perf_counter()
        rows = self.encoder.encode(synthetic)
        known = ~np.isnan(self._cached_dcr(rows.hashes))
        if not known.any():
            from airflow_synth.core.assess.fidelity import subsample

            return self.report(subsample(synthetic, max_rows, 0))
        positions = np.flatnonzero(known)
        if positions.size > max_rows:
            rng = np.random.default_rng(0)
            positions = np.sort(rng.choice(positions, max_rows, replace=False))
        measured = self._measure(synthetic.iloc[positions])
        return self._report(positions.size, measured, None, time.perf_counter() - started)

    def measure(self, synthetic: pd.DataFrame) -> RowMeasurements:
        """Per-row measurements of ``synthetic`` (cached by row content), to be kept in a
        :class:`MeasurementSample` and reported later with :meth:`report_measured`."""
        return self._measure(synthetic)

    def report_measured(
        self, measured: RowMeasurements, filtered: dict[str, int] | None = None
    ) -> dict[str, Any]:
        """The privacy report of rows measured earlier (e.g. the raw sample)."""
        started = time.perf_counter()
        n = int(measured.dcr.size)
        return self._report(n, measured, filtered, time.perf_counter() - started)

    def evaluate(self, synthetic: pd.DataFrame) -> tuple[FilterResult, dict[str, Any]]:
        """Filter, then report on the rows kept (what gets published), searching once."""
        started = time.perf_counter()
        measured = self._measure(synthetic)
        similar, outlier = self._decide(None, measured.dcr, measured.exact_train)
        keep = ~(similar | outlier)
        result = _result(synthetic, similar, outlier)
        filtered = {"rows_before": len(synthetic), **result.dropped}
        kept = _take(measured, keep)
        report = self._report(int(keep.sum()), kept, filtered, time.perf_counter() - started)
        return result, report

    # -- measuring -----------------------------------------------------------------------

    def outlier_limit(self, n: int) -> int:
        """The most rows of an ``n``-row batch the outlier filter drops."""
        return math.ceil(self.settings.outlier_share * n - 1e-9) if n else 0

    def _decide(
        self, rows: EncodedRows | None, dcr: np.ndarray, exact: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The two filters' verdicts. ``dcr`` holds each row's exact DCR where known (NaN
        elsewhere: then ``rows``, the encoded rows, are asked radius questions).

        * similarity: an exact copy of a training row (where copies count), or a row not
          identical to one but closer than the similarity cut-off;
        * outlier: DCR above the outlier cut-off *and* among the ``outlier_limit(n)`` rows
          with the largest DCR (ties: the first rows), among the rows not similar.
        """
        n = exact.size
        dcr = np.array(dcr, dtype=np.float64)
        similar = np.zeros(n, dtype=bool)
        if self.settings.similarity_filter:
            near = np.zeros(n, dtype=bool)
            known = ~np.isnan(dcr)
            near[known] = dcr[known] < self.similarity_threshold
            todo = np.flatnonzero(~known & ~exact)
            if todo.size:
                assert rows is not None
                near[todo] = self._radius.nearer_than(rows.take(todo), self.similarity_threshold)
            similar = near & ~exact
            if self.drop_exact_copies:
                similar |= exact
        outlier = np.zeros(n, dtype=bool)
        if self.settings.outlier_filter:
            outlier = self._outliers(rows, dcr, ~similar)
        return similar, outlier

    def _outliers(
        self, rows: EncodedRows | None, dcr: np.ndarray, eligible: np.ndarray
    ) -> np.ndarray:
        """Rows farther from every training row than both the holdout cut-off and the
        model's own ``1 - outlier_share`` DCR quantile, at most ``outlier_limit(n)`` of
        them (the farthest; ties: the first rows).

        The quantile comes from the DCRs measured so far (the raw sample the pipeline
        measures before filtering), or, with fewer than :data:`PROBE_ROWS` of those, from
        this batch (up to :data:`PROBE_ROWS` evenly spaced rows measured). Rows whose DCR is
        unknown are asked for a *witness* (a training row within the cut); only rows
        without one are measured exactly, so the verdict is exact and costs about a witness
        search per row.
        """
        n = dcr.size
        out = np.zeros(n, dtype=bool)
        limit = self.outlier_limit(n)
        if limit == 0 or not eligible.any():
            return out
        known = ~np.isnan(dcr)

        def measure(positions: np.ndarray, upper: np.ndarray | None = None) -> None:
            if positions.size:
                assert rows is not None
                dcr[positions] = self._radius.exact_dcr(rows.take(positions), upper)
                known[positions] = True

        share = self.settings.outlier_share
        cut = self.outlier_cut(dcr[known & eligible], share)
        if cut is None:  # too few DCRs known to place the quantile: measure some of the batch
            unknown = np.flatnonzero(~known & eligible)
            wanted = min(max(PROBE_ROWS - int((known & eligible).sum()), 0), unknown.size)
            probe = unknown[np.linspace(0, unknown.size - 1, wanted).astype(np.int64)]
            measure(probe)
            # evenly spaced rows: an unbiased sample of the model's DCRs, kept for the next
            # batches of the same model (they need not measure their own)
            self._probe_dcr = np.concatenate([self._probe_dcr, dcr[probe]])
            cut = self.outlier_cut(dcr[known & eligible], share, force=True)
        assert cut is not None
        self.last_outlier_cut = cut
        unknown = np.flatnonzero(~known & eligible)
        if unknown.size:
            assert rows is not None
            bound = self._radius.witnesses(rows.take(unknown), cut)
            open_ = bound > cut
            measure(unknown[open_], bound[open_])
        candidates = np.flatnonzero(eligible & known & (dcr > cut))
        if candidates.size > limit:
            order = np.lexsort((candidates, -dcr[candidates]))  # farthest first, then first row
            candidates = candidates[order[:limit]]
        out[candidates] = True
        return out

    def outlier_cut(
        self, batch_dcr: np.ndarray, share: float, *, force: bool = False
    ) -> float | None:
        """The DCR above which a row is an outlier: the holdout cut-off, or the model's
        ``1 - share`` DCR quantile where that is higher. The quantile is taken over the DCRs
        measured so far (cached, or probed by earlier filter calls) when there are at least
        :data:`PROBE_ROWS`, else over ``batch_dcr`` when ``force`` or there are enough;
        None: too few known."""
        pool = batch_dcr
        if self._cache is not None and self._cache[1].dcr.size >= PROBE_ROWS:
            pool = self._cache[1].dcr
        elif self._probe_dcr.size >= PROBE_ROWS:
            pool = self._probe_dcr
        elif batch_dcr.size < PROBE_ROWS and not force:
            return None
        if not pool.size or share >= 1:
            return self.outlier_threshold
        return max(self.outlier_threshold, float(np.quantile(pool, 1.0 - share)))

    def _cached_dcr(self, hashes: np.ndarray) -> np.ndarray:
        """Each row's DCR measured before (by ``measure``/``report``), NaN where not."""
        out = np.full(hashes.size, np.nan)
        if self._cache is None or not self._cache[0].size or not hashes.size:
            return out
        cached, values = self._cache
        pos = np.minimum(np.searchsorted(cached, hashes), cached.size - 1)
        hit = cached[pos] == hashes
        out[hit] = values.dcr[pos[hit]]
        return out

    def _near_copies(self, measured: _Measured) -> np.ndarray:
        """Gated as near copies: not exact, closer than any real row to another."""
        return ~measured.exact_train & (measured.dcr < self.near_copy_threshold)

    def _distinct_train_gaps(
        self, train_rows: EncodedRows, counts: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Distance of each distinct training row (up to ``NEAR_COPY_REFERENCE_ROWS``) to
        its nearest other training row: more reference distances than the holdout alone
        gives (80 vs 20 rows on a 100-row table), so the near-copy limit is tighter."""
        single = np.isin(train_rows.hashes, self._train_hashes[counts == 1])
        positions = np.flatnonzero(single)
        if positions.size > NEAR_COPY_REFERENCE_ROWS:
            positions = np.sort(rng.choice(positions, NEAR_COPY_REFERENCE_ROWS, replace=False))
        if positions.size == 0 or self.n_train < 2:
            return np.empty(0)
        (nearest,) = self._index.query(train_rows.take(positions), [self._train])
        return nearest.distances[:, 1].astype(np.float64)  # [:, 0] is the row itself

    def _measure(self, synthetic: pd.DataFrame) -> _Measured:
        """Per-row measurements. Distinct rows are searched once: results are cached by row
        content (up to ``_CACHE_ROWS`` rows), so filtering batch after batch and then
        reporting on the rows kept searches each row once."""
        rows = self.encoder.encode(synthetic)
        unique, inverse = np.unique(rows.hashes, return_inverse=True)
        if unique.size == 0:  # nothing to measure (e.g. every row was filtered away)
            return self._search(rows)
        if self._cache is None:
            values = self._search(rows.take(_first_positions(inverse, unique.size)))
            self._cache = (unique, values)
            return _take(values, inverse)
        cached, cached_values = self._cache
        pos = np.minimum(np.searchsorted(cached, unique), max(cached.size - 1, 0))
        hit = cached[pos] == unique if cached.size else np.zeros(unique.size, dtype=bool)
        values = _take(cached_values, pos) if cached.size else None
        if not hit.all():
            first = _first_positions(inverse, unique.size)[~hit]
            searched = self._search(rows.take(first))
            values = searched if values is None else _join(values, searched, hit)
            if cached.size + searched.dcr.size <= _CACHE_ROWS:
                merged = np.concatenate([cached, unique[~hit]])
                order = np.argsort(merged, kind="stable")
                both = [
                    np.concatenate(pair)
                    for pair in zip(_fields(cached_values), _fields(searched), strict=True)
                ]
                self._cache = (merged[order], _take(_Measured(*both), order))
            else:
                self._cache = (unique, values)
        assert values is not None
        return _take(values, inverse)

    def _search(self, rows: EncodedRows) -> _Measured:
        train, sample, holdout = self._index.query(rows, [self._train, self._sample, self._holdout])
        d1 = train.distances[:, 0].astype(np.float64)
        d2 = train.distances[:, 1].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            nndr = np.where(d2 > 0, d1 / d2, 0.0)  # both 0: on top of duplicated real rows
        if self.n_train < 2:
            nndr = np.full(d1.shape, np.nan)
        to_sample = sample.distances[:, 0]
        to_holdout = holdout.distances[:, 0]
        closer = _closer(to_sample, to_holdout)
        return _Measured(
            dcr=d1,
            nndr=nndr,
            closer_to_train=closer,
            # a tie here carries no evidence: count it at its no-memorisation value
            closer_to_all_train=_closer(
                train.distances[:, 0],
                to_holdout,
                tie=self.n_train / (self.n_train + self.n_holdout),
            ),
            exact_train=_member(rows.hashes, self._train_hashes),
            exact_holdout=_member(rows.hashes, self._holdout_hashes),
        )

    def _report(
        self, n: int, m: _Measured, filtered: dict[str, int] | None, seconds: float
    ) -> dict[str, Any]:
        return {
            "rows": {
                "train": self.n_train,
                "holdout": self.n_holdout,
                "synthetic": n,
                "train_sample": self.n_sample,
            },
            "exact_match_rate": _mean(m.exact_train),
            "exact_match_rate_holdout": _mean(m.exact_holdout),
            "exact_match_rate_holdout_to_train": _number(self.holdout_exact),
            "exact_match_rate_real_repeats": _number(self.real_repeat_rate),
            "near_copy_rate": _mean(self._near_copies(m))
            if self.near_copy_expected is not None
            else None,
            "near_copy_rate_expected": _number(self.near_copy_expected)
            if self.near_copy_expected is not None
            else None,
            "near_copy_reason": None
            if self.near_copy_expected is not None
            else "no real row differs from all others: nothing to measure closeness against",
            **_dcr_shares(
                _mean(m.closer_to_all_train), self.n_train / (self.n_train + self.n_holdout), n
            ),
            "dcr_share_sample": _mean(m.closer_to_train),
            "dcr": {
                "synthetic_to_train": _summary(m.dcr),
                "holdout_to_train": _summary(self.holdout_dcr),
            },
            "nndr": {"median": _stat(m.nndr, 50), "p5": _stat(m.nndr, 5)},
            "thresholds": {
                "similarity_dcr": _number(self.similarity_threshold),
                "near_copy_dcr": _number(self.near_copy_threshold),
                "near_copy_reference_rows": self.near_copy_reference,
                "drop_exact_copies": bool(self.drop_exact_copies),
                "outlier_dcr": _number(self.outlier_threshold),
                "similarity_quantile": self.settings.similarity_quantile,
                "outlier_quantile": self.settings.outlier_quantile,
                "outlier_max_share": self.settings.outlier_share,
                "similarity_filter": self.settings.similarity_filter,
                "outlier_filter": self.settings.outlier_filter,
            },
            "filtered": filtered,
            "encoding": self.encoder.describe(),
            "columns_used": list(self.columns_used),
            "columns_excluded": list(self.columns_excluded),
            "seconds": round(seconds, 3),
            "seconds_setup": round(self.seconds_setup, 3),
        }


#: Per-row measurements of synthetic rows (opaque to callers: keep, sample, report them).
RowMeasurements = _Measured


def _result(synthetic: pd.DataFrame, similar: np.ndarray, outlier: np.ndarray) -> FilterResult:
    reasons = np.full(len(synthetic), "", dtype=object)
    reasons[similar] = "similarity"
    reasons[outlier] = "outlier"
    kept = synthetic.loc[~(similar | outlier)].reset_index(drop=True)
    dropped = {"similarity": int(similar.sum()), "outlier": int(outlier.sum())}
    return FilterResult(kept, dropped, reasons)


class MeasurementSample:
    """A bounded, uniform sample of per-row measurements, fed batch by batch.

    Privacy is judged on the *raw* sample, before any filter; a run may sample millions of
    rows, so at most ``max_rows`` rows' measurements are kept: each row gets a random key
    and the ``max_rows`` smallest keys stay (a uniform sample without replacement of all
    rows seen, whatever the batch sizes). ``seen`` counts every row offered.
    """

    def __init__(self, max_rows: int, seed: int = 0) -> None:
        if max_rows < 1:
            raise PrivacyConfigError(f"max_rows must be at least 1, got {max_rows}.")
        self.max_rows = max_rows
        self.seen = 0
        self._rng = np.random.default_rng(seed)
        self._keys = np.empty(0)
        self._rows: _Measured | None = None
        self._limit = 1.0

    def expect(self, rows: int) -> None:
        """Say how many rows will be offered in all (about): then only rows whose key is
        below ``SAMPLE_MARGIN x max_rows / rows`` are ever measured, about
        ``SAMPLE_MARGIN x max_rows`` rows instead of ``max_rows x (1 + 1/2 + 1/3 + ...)``.
        The sample stays uniform (a row's key decides, not its content); if far fewer rows
        come than announced it is smaller than ``max_rows``."""
        if rows > 0:
            self._limit = min(1.0, SAMPLE_MARGIN * self.max_rows / rows)

    def select(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw the keys of ``n`` new rows; return the positions that could be kept and
        their keys. Only those need measuring: once the sample is full, a row whose key is
        above every kept key can never enter it (so a long run measures a shrinking share
        of each batch, not all of it)."""
        self.seen += n
        keys = self._rng.random(n)
        if self._keys.size >= self.max_rows:
            positions = np.flatnonzero(keys < min(self._keys.max(), self._limit))
        else:
            positions = np.flatnonzero(keys < self._limit)
        return positions, keys[positions]

    def add(self, measured: RowMeasurements, keys: np.ndarray | None = None) -> None:
        """Offer measurements: a whole batch, or the rows :meth:`select` chose (``keys``)."""
        n = int(measured.dcr.size)
        if keys is None:
            self.seen += n
            keys = self._rng.random(n)
        if self._rows is None:
            rows, all_keys = measured, keys
        else:
            rows = _Measured(
                *(
                    np.concatenate(p)
                    for p in zip(_fields(self._rows), _fields(measured), strict=True)
                )
            )
            all_keys = np.concatenate([self._keys, keys])
        if all_keys.size > self.max_rows:
            keep = np.sort(np.argpartition(all_keys, self.max_rows - 1)[: self.max_rows])
            rows, all_keys = _take(rows, keep), all_keys[keep]
        self._rows, self._keys = rows, all_keys

    @property
    def rows(self) -> RowMeasurements | None:
        """The kept measurements (None before the first batch)."""
        return self._rows

    def arrays(self) -> dict[str, np.ndarray]:
        """The kept keys and measurements as plain arrays (numbers only, no value of any
        row): what a shard hands on so one task can judge the union of all shards."""
        out = {"keys": self._keys, "seen": np.array([self.seen], dtype=np.int64)}
        if self._rows is not None:
            for f in dataclasses.fields(self._rows):
                out[f"m_{f.name}"] = getattr(self._rows, f.name)
        return out

    def merge(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Take another sample's :meth:`arrays` in: the smallest keys of both stay, so the
        result is a uniform sample of every row either saw (as if one sample saw all)."""
        self.seen += int(np.asarray(arrays["seen"]).sum())
        keys = np.asarray(arrays["keys"])
        if not keys.size:
            return
        rows = _Measured(
            *(np.asarray(arrays[f"m_{f.name}"]) for f in dataclasses.fields(_Measured))
        )
        self.add(rows, keys)


def normalise_share(raw: float, expected: float) -> float:
    """Re-weight a share whose no-memorisation value is ``expected`` so that value maps to
    0.5 (equal odds), 1 stays 1 and 0 stays 0: what the share would be with training and
    holdout sets of equal size."""
    if expected <= 0 or expected >= 1:
        return raw
    odds_train, odds_holdout = raw / expected, (1 - raw) / (1 - expected)
    return odds_train / (odds_train + odds_holdout) if odds_train + odds_holdout else 0.5


def _dcr_shares(raw: float | None, expected: float, n: int) -> dict[str, Any]:
    """``dcr_share`` (normalised, 0.5 ideal) with its 95% interval, and the raw numbers."""
    if raw is None:
        return {
            "dcr_share": None,
            "dcr_share_ci95": None,
            "dcr_share_full_train": None,
            "dcr_share_full_train_expected": expected,
        }
    from airflow_synth.core.assess.checks import wilson_interval

    low, high = wilson_interval(raw, n)
    return {
        "dcr_share": _number(normalise_share(raw, expected)),
        "dcr_share_ci95": [
            _number(normalise_share(low, expected)),
            _number(normalise_share(high, expected)),
        ],
        "dcr_share_full_train": _number(raw),
        "dcr_share_full_train_expected": _number(expected),
    }


def _closer(to_train: np.ndarray, to_holdout: np.ndarray, tie: float = 0.5) -> np.ndarray:
    """1 where closer to the training rows, 0 where closer to the holdout, ``tie`` on ties."""
    return np.where(to_train < to_holdout, 1.0, np.where(to_train == to_holdout, tie, 0.0))


def _fields(m: _Measured) -> list[np.ndarray]:
    return [getattr(m, f.name) for f in dataclasses.fields(m)]


def _take(m: _Measured, idx: np.ndarray) -> _Measured:
    return _Measured(*(a[idx] for a in _fields(m)))


def _join(old: _Measured, new: _Measured, hit: np.ndarray) -> _Measured:
    """Cached rows where ``hit``, newly searched rows (in order) elsewhere."""
    parts = []
    for a, b in zip(_fields(old), _fields(new), strict=True):
        out = a.copy()
        out[~hit] = b
        parts.append(out)
    return _Measured(*parts)


def _check_columns(
    train: pd.DataFrame, holdout: pd.DataFrame, kinds: Mapping[str, str], exclude: Sequence[str]
) -> None:
    unknown = [c for c in kinds if c not in train.columns]
    if unknown:
        raise DataError(f"Columns {unknown} have a kind but are not in the training data.")
    untyped = [c for c in train.columns if c not in kinds and c not in set(exclude)]
    if untyped:
        raise DataError(
            f"Columns {untyped} have no kind for the privacy measurement. Give each one a "
            "kind (numerical, categorical, datetime, boolean) or list it in `exclude`."
        )
    if not kinds:
        raise DataError("Every column is excluded: there is nothing to measure privacy on.")
    missing = [c for c in kinds if c not in holdout.columns]
    if missing:
        raise DataError(f"The holdout rows lack columns {missing} that training has.")


def _concat(a: EncodedRows, b: EncodedRows) -> EncodedRows:
    return EncodedRows(
        np.concatenate([a.cont, b.cont]),
        np.concatenate([a.codes, b.codes]),
        np.concatenate([a.hashes, b.hashes]),
    )


def _first_positions(inverse: np.ndarray, size: int) -> np.ndarray:
    """For ``np.unique(..., return_inverse=True)``: one row position per distinct value."""
    first = np.empty(size, dtype=np.int64)
    first[inverse[::-1]] = np.arange(inverse.size - 1, -1, -1)
    return first


def _member(hashes: np.ndarray, sorted_unique: np.ndarray) -> np.ndarray:
    if sorted_unique.size == 0:
        return np.zeros(hashes.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_unique, hashes), sorted_unique.size - 1)
    return sorted_unique[pos] == hashes


def _number(value: float) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    value = float(value)
    return round(value, _DECIMALS) if math.isfinite(value) else None


def _mean(values: np.ndarray) -> float | None:
    return _number(np.mean(values)) if values.size else None


def _stat(values: np.ndarray, percentile: float) -> float | None:
    values = values[~np.isnan(values)] if values.size else values
    return _number(np.percentile(values, percentile)) if values.size else None


def _summary(values: np.ndarray) -> dict[str, float | None]:
    return {"p5": _stat(values, 5), "median": _stat(values, 50), "mean": _mean(values)}


__all__ = [
    "FilterResult",
    "MeasurementSample",
    "PrivacyConfigError",
    "PrivacyEvaluator",
    "PrivacySettings",
    "RowMeasurements",
]
