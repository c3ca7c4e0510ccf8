"""The per-table engine for table sets: each table its own model, parents first.

SDV's HMA models a whole schema at once: it refuses more than five tables or more than two
levels, keeps only single-column keys, and samples at ~50 ms per parent row. This engine
scales instead (the design in the issue, SDV still the modelling library of each table):

* every table is fitted on its own (:func:`~airflow_synth.core.engine.table_model.fit_table_model`:
  profile, rules, fixed combinations, any synthesizer of the registry), on its modelled
  columns plus helper columns: the number of children per row for each table it owns,
  its parent's context cluster (:mod:`~airflow_synth.core.engine.parent_context`) and
  "has a parent" flags of optional foreign keys. Fits need only the real tables, never
  another fit, so they can run as separate (mapped) tasks;
* sampling goes parents first: a root table gets its requested size (by default as many
  rows as the real table, times ``scale``), a child table as many rows as its synthetic
  owner rows ask for, drawn with each owner's context; foreign keys copy the key of the
  synthetic parent they were given, sequences are numbered, other keys issued fresh
  (:mod:`~airflow_synth.core.engine.set_plan` explains who owns what).

So keys are unique (composite ones too), every foreign key points at a synthetic parent,
and children per parent follow the parent's attributes. No Airflow import.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from airflow_synth.core.contract import TableContract
from airflow_synth.core.engine.combinations import CombinationSwitch
from airflow_synth.core.engine.parent_context import ParentContext
from airflow_synth.core.engine.set_plan import (
    CHILDREN_PREFIX,
    CONTEXT_COLUMN,
    HAS_PREFIX,
    TablePlan,
    children_per_parent,
    is_helper_column,
)
from airflow_synth.core.engine.synthesizers import SynthesizerSpec
from airflow_synth.core.engine.table_model import TableModel, fit_table_model
from airflow_synth.core.keys import parent_positions
from airflow_synth.core.profile.orderings import (
    discover_cross_table_orderings,
    repair_cross_table_orderings,
)
from airflow_synth.core.relations import Relationship, TableSet

log = logging.getLogger(__name__)

ENGINE_NAME = "per_table"
#: Sampling rounds to fill every parent context with child rows before mixing contexts.
_CONTEXT_ROUNDS = 4
#: ``issue_key(table, column, n)`` returns ``n`` unique fresh key values.
KeyIssuer = Callable[[str, str, int], Sequence[Any]]


def surrogate_keys(table: str, column: str, n: int) -> np.ndarray:
    """Default key issuer: 1..n (a loaded model sampling without the real keys at hand)."""
    return np.arange(1, n + 1, dtype=np.int64)


class SetSynthesizer:
    """Fit one model per table, sample the set parents first (see the module docstring)."""

    def __init__(
        self,
        table_set: TableSet,
        plans: Mapping[str, TablePlan],
        specs: Mapping[str, SynthesizerSpec],
        *,
        contracts: Mapping[str, TableContract] | None = None,
        fixed_combinations: Mapping[str, CombinationSwitch] | CombinationSwitch = True,
        seed: int | None = None,
    ) -> None:
        self.table_set = table_set
        self.plans = dict(plans)
        self.specs = dict(specs)
        self.contracts = dict(contracts or {})
        self.fixed_combinations = fixed_combinations
        self.seed = seed
        self.models: dict[str, TableModel | None] = {}
        self.contexts: dict[str, ParentContext] = {}
        self.real_rows: dict[str, int] = {}
        self.fit_seconds: dict[str, float] = {}
        self.orderings: list[Any] = []

    # -- fitting -------------------------------------------------------------------------

    def fit(
        self,
        frames: Mapping[str, pd.DataFrame],
        training_rows: Mapping[str, pd.Index] | None = None,
    ) -> None:
        """Fit every table on ``frames`` (the real tables, keys and modelled columns).

        ``training_rows`` bounds each table's training rows (index labels of its frame);
        counts of children and parent contexts are computed on the whole real tables.
        """
        self.fit_context(frames)
        for name in self.table_set.order:
            rows = training_rows.get(name) if training_rows is not None else None
            self.models[name] = self.fit_table(name, frames, rows)

    def fit_context(self, frames: Mapping[str, pd.DataFrame]) -> None:
        """What every table's fit shares: real sizes, cross-table orderings and the parents'
        contexts. After it, :meth:`fit_table` fits any table on its own (in any task)."""
        self.real_rows = {name: len(frame) for name, frame in frames.items()}
        # child >= parent across a join (order date after sign-up): gap quantiles only
        self.orderings = discover_cross_table_orderings(frames, self.table_set)
        for name in self.table_set.order:
            owner = self.plans[name].owner
            if owner is not None and owner.parent not in self.contexts:
                parent = self.plans[owner.parent]
                self.contexts[owner.parent] = ParentContext(
                    parent.modelled, seed=self._seed(owner.parent)
                ).fit(frames[owner.parent][list(parent.modelled)])

    def fit_table(
        self, name: str, frames: Mapping[str, pd.DataFrame], rows: pd.Index | None = None
    ) -> TableModel | None:
        """Fit one table's model (needs only real frames: tables can be fitted in parallel)."""
        plan = self.plans[name]
        train = self.training_frame(name, frames)
        if rows is not None:
            train = train.loc[rows]
        train = train.reset_index(drop=True)
        if train.shape[1] == 0:  # keys and PII only: rows are issued, nothing is learned
            log.info("%s: nothing to learn (keys and PII only); rows get fresh values", name)
            return None
        if len(train) == 0:  # an empty table stays empty (its parents learn 0 children)
            log.info("%s: no rows to learn from; the synthetic table is empty", name)
            return None
        kinds = {c: "continuous" for c in train.columns if c.startswith(CHILDREN_PREFIX)}
        kinds.update({c: "boolean" for c in train.columns if c.startswith(HAS_PREFIX)})
        if CONTEXT_COLUMN in train.columns:
            kinds[CONTEXT_COLUMN] = "categorical"
        combos = self.fixed_combinations
        started = time.monotonic()
        model = fit_table_model(
            train,
            name,
            self.specs[name],
            contract=self.contracts.get(name),
            seed=self._seed(name),
            fixed_combinations=combos.get(name, True) if isinstance(combos, Mapping) else combos,
            kinds=kinds,
            smooth=[c for c in train.columns if c.startswith(CHILDREN_PREFIX)],
        )
        self.fit_seconds[name] = time.monotonic() - started
        log.info(
            "%s: trained %s on %d rows x %d columns (%d helper columns) in %.1f s",
            name,
            self.specs[name].name,
            len(train),
            train.shape[1],
            train.shape[1] - len(plan.modelled),
            self.fit_seconds[name],
        )
        return model

    def training_frame(self, name: str, frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """The table's modelled columns plus the engine's helper columns."""
        plan = self.plans[name]
        frame = frames[name]
        out = frame[list(plan.modelled)].copy()
        for rel in plan.owned_children:
            out[plan.children_column(rel)] = children_per_parent(frames, rel)
        if plan.owner is not None and self.contexts[plan.owner.parent].clusters:
            out[CONTEXT_COLUMN] = _context_labels(
                self.contexts[plan.owner.parent], frames, plan.owner, self.plans
            )
        for rel in (*plan.others, *plan.self_refs):
            if str(rel) in plan.optional:
                out[plan.has_column(rel)] = frame[list(rel.child_columns)].notna().all(axis=1)
        return out

    # -- sampling ------------------------------------------------------------------------

    def sample(
        self,
        sizes: Mapping[str, int] | None = None,
        *,
        scale: float = 1.0,
        seed: int | None = None,
        issue_key: KeyIssuer = surrogate_keys,
        skip: Collection[str] = (),
    ) -> dict[str, pd.DataFrame]:
        """The synthetic set: root tables at ``sizes`` (default real rows x ``scale``).

        ``skip`` names tables without any relationship that the caller samples itself (in
        filtered batches, as a single table); they are left out of the result.
        """
        rng = np.random.default_rng(self.seed if seed is None else seed)
        out: dict[str, pd.DataFrame] = {}
        for name in self.table_set.order:
            if name in skip:
                continue
            plan = self.plans[name]
            fitted = self.models[name]
            model = fitted.synthesizer if fitted is not None else None
            draw_seed = int(rng.integers(2**31 - 1))
            if model is not None:
                model._set_random_state(draw_seed)  # noqa: SLF001
            if plan.owner is None:
                n = (sizes or {}).get(name, round(self.real_rows.get(name, 0) * scale))
                frame = _sample_rows(model, name, int(n))
            else:
                frame = self._sample_children(plan, model, out, rng)
            frame = frame.reset_index(drop=True)
            for column in plan.modelled:  # a table without a model: its columns, all NULL
                if column not in frame.columns:
                    frame[column] = pd.Series([None] * len(frame), dtype=object)
            for column in plan.owned_keys:
                frame[column] = np.asarray(issue_key(name, column, len(frame)))
            for rel in plan.others:
                self._draw_parents(plan, rel, frame, out[rel.parent], rng)
            frame = _unique_keys(plan, frame)
            for rel in plan.self_refs:
                self._draw_hierarchy(plan, rel, frame, rng)
            out[name] = self._repaired(name, frame, out, rng)
            log.info("%s: sampled %d rows", name, len(frame))
        return {name: self._published(name, frame) for name, frame in out.items()}

    def _repaired(
        self,
        name: str,
        frame: pd.DataFrame,
        out: Mapping[str, pd.DataFrame],
        rng: np.random.Generator,
    ) -> pd.DataFrame:
        """Cross-table orderings made to hold, then the table's own rules again."""
        relationships = self.table_set.parents_of(name)
        if not any(rule.relationship in map(str, relationships) for rule in self.orderings):
            return frame
        for rel in relationships:
            parent = frame if rel.parent == name else out[rel.parent]
            frame = repair_cross_table_orderings(frame, parent, rel, self.orderings, rng)
        fitted = self.models[name]
        return fitted.rules.repair(frame) if fitted is not None and fitted.rules else frame

    def _published(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        helper = [c for c in frame.columns if is_helper_column(c)]
        return frame.drop(columns=helper).reset_index(drop=True)

    def _sample_children(
        self,
        plan: TablePlan,
        model: Any,
        out: Mapping[str, pd.DataFrame],
        rng: np.random.Generator,
    ) -> pd.DataFrame:
        owner = plan.owner
        assert owner is not None
        parents = out[owner.parent]
        counts_column = self.plans[owner.parent].children_column(owner)
        counts = pd.to_numeric(parents[counts_column], errors="coerce").fillna(0)
        counts = self._scaled_counts(owner, counts.to_numpy(dtype=float), len(parents), rng)
        if plan.primary_key and set(plan.primary_key) <= set(owner.child_columns):
            counts = np.minimum(counts, 1)  # keyed by its parent: one row per parent at most
        context = self.contexts[owner.parent]
        labels = (
            context.labels(parents[list(self.plans[owner.parent].modelled)])
            if context.clusters
            else np.zeros(len(parents), dtype=np.int64)
        )
        slots = np.repeat(np.arange(len(parents)), counts)  # one slot per child row
        slot_labels = labels[slots]
        rows = _rows_by_context(model, plan.name, slot_labels, rng)
        frame = rows.reset_index(drop=True)
        key = parents.loc[slots, list(owner.parent_columns)].to_numpy()
        for i, column in enumerate(owner.child_columns):
            frame[column] = key[:, i]
        for sequence in plan.sequences:
            starts = sequence.start_values(len(parents), rng)
            order = pd.Series(slots).groupby(slots).cumcount().to_numpy()
            frame[sequence.column] = starts[slots] + order
        return frame

    def _scaled_counts(
        self, rel: Relationship, counts: np.ndarray, parents: int, rng: np.random.Generator
    ) -> np.ndarray:
        """The model's children counts, scaled so the child table keeps its real size.

        A table set at full size has as many child rows per parent row as the real one:
        ``real children x synthetic parents / real parents``. The model's counts keep their
        shape (which parents have many, which none); a few parents (15 nations) make their
        sum noisy, so it is scaled to the expected total with random rounding.
        """
        counts = np.clip(np.nan_to_num(counts), 0, None)
        real_parents = self.real_rows.get(rel.parent, 0)
        expected = self.real_rows.get(rel.child, 0) * parents / real_parents if real_parents else 0
        if counts.sum() > 0 and expected > 0:
            counts = counts * (expected / counts.sum())
        whole = np.floor(counts)
        return (whole + (rng.random(counts.size) < counts - whole)).astype(np.int64)

    def _draw_parents(
        self,
        plan: TablePlan,
        rel: Relationship,
        frame: pd.DataFrame,
        parents: pd.DataFrame,
        rng: np.random.Generator,
    ) -> None:
        if _implied(plan, rel):
            return  # set by a wider foreign key drawn before (e.g. a composite one)
        n = len(frame)
        if n == 0 or len(parents) == 0:
            for column in rel.child_columns:
                frame[column] = pd.Series([None] * n, dtype=object)
            return
        weights = plan.popularity[str(rel)].weights(len(parents), rng)
        keep = (
            frame[plan.has_column(rel)].astype(bool).to_numpy()
            if plan.has_column(rel) in frame.columns
            else np.ones(n, dtype=bool)
        )
        if plan.owner is not None and set(rel.child_columns) <= set(plan.primary_key):
            chosen = rng.choice(len(parents), n, p=weights / weights.sum())
            chosen = _distinct_within(chosen, frame, plan.owner.child_columns, weights, rng)
        else:  # each parent gets about its drawn count of children, exactly shared out
            chosen = np.zeros(n, dtype=np.int64)
            chosen[keep] = _slots(weights, int(keep.sum()), rng)
        values = parents[list(rel.parent_columns)].to_numpy(dtype=object)[chosen]
        for i, column in enumerate(rel.child_columns):
            frame[column] = _with_nulls(values[:, i], parents[rel.parent_columns[i]].dtype, keep)

    def _draw_hierarchy(
        self, plan: TablePlan, rel: Relationship, frame: pd.DataFrame, rng: np.random.Generator
    ) -> None:
        """Every non-root row points at an earlier row (no cycles); roots at the real share."""
        n = len(frame)
        has = (
            frame[plan.has_column(rel)].astype(bool).to_numpy()
            if plan.has_column(rel) in frame.columns
            else np.ones(n, dtype=bool)
        )
        if n:
            has[0] = False  # the first row has nobody before it
        weights = plan.popularity[str(rel)].weights(n, rng)
        cumulative = np.cumsum(weights)
        positions = np.arange(n)
        below = np.where(positions > 0, cumulative[np.maximum(positions - 1, 0)], 0.0)
        picks = np.searchsorted(cumulative, rng.random(n) * below, side="right")
        picks = np.minimum(picks, np.maximum(positions - 1, 0))
        keys = frame[list(rel.parent_columns)].to_numpy(dtype=object)[picks]
        for i, column in enumerate(rel.child_columns):
            frame[column] = _with_nulls(keys[:, i], frame[rel.parent_columns[i]].dtype, has)

    def _seed(self, name: str) -> int:
        return (self.seed or 0) + zlib.crc32(name.encode())

    def save(self, path: str) -> None:
        """Pickle the set model; each table's codec keeps no real values (decode only)."""
        import cloudpickle

        saved = copy.copy(self)
        saved.models = {
            name: None
            if fitted is None
            else dataclasses.replace(fitted, synthesizer=fitted.synthesizer.decode_only())
            for name, fitted in self.models.items()
        }
        with open(path, "wb") as handle:
            cloudpickle.dump(saved, handle)


def _context_labels(
    context: ParentContext,
    frames: Mapping[str, pd.DataFrame],
    rel: Relationship,
    plans: Mapping[str, TablePlan],
) -> np.ndarray:
    """Each child row's parent cluster (rows without a parent: cluster 0)."""
    labels = context.labels(frames[rel.parent][list(plans[rel.parent].modelled)])
    positions = parent_positions(frames[rel.child], frames[rel.parent], rel)
    found = np.where(positions >= 0, labels[np.maximum(positions, 0)], 0)
    return np.array([f"c{label}" for label in found], dtype=object)


def _sample_rows(model: Any, table: str, n: int) -> pd.DataFrame:
    if model is None:  # a table of keys and PII only
        return pd.DataFrame(index=pd.RangeIndex(max(n, 0)))
    sampled = model.sample(num_rows=n) if n > 0 else model.sample(num_rows=1).iloc[:0]
    if isinstance(sampled, Mapping):
        sampled = sampled[table]
    return sampled.reset_index(drop=True)


def _rows_by_context(
    model: Any, table: str, slot_labels: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """One generated row per slot, each generated with its slot's parent context.

    Rows are drawn in rounds and sorted into their context; a context the model rarely
    produces is topped up in later rounds, and what is still missing after
    ``_CONTEXT_ROUNDS`` is filled with rows of other contexts (counted in the log).
    """
    total = len(slot_labels)
    first = _sample_rows(model, table, total)
    if total == 0 or CONTEXT_COLUMN not in first.columns:
        return first.sample(frac=1.0, random_state=_draw_seed(rng)).reset_index(drop=True)
    need = pd.Series(slot_labels).value_counts()
    pools: dict[int, list[pd.DataFrame]] = {int(label): [] for label in need.index}
    have = dict.fromkeys(pools, 0)
    spare: list[pd.DataFrame] = []
    batch, missing = first, total
    for _ in range(_CONTEXT_ROUNDS):
        labels = pd.to_numeric(
            batch[CONTEXT_COLUMN].astype(str).str.lstrip("c"), errors="coerce"
        ).fillna(-1)
        for label, rows in batch.groupby(labels.astype(np.int64).to_numpy()):
            want = int(need.get(label, 0)) - have.get(int(label), 0)
            if want > 0:
                pools[int(label)].append(rows.iloc[:want])
                have[int(label)] += min(want, len(rows))
            spare.append(rows.iloc[max(want, 0) :])
        missing = int(sum(int(need[label]) - have[label] for label in pools))
        if missing == 0:
            break
        batch = _sample_rows(model, table, 2 * missing + 100)
    spare_rows = pd.concat(spare, ignore_index=True) if spare else first.iloc[:0]
    if missing:
        log.info(
            "%s: %d rows drawn with another parent context than their parent's", table, missing
        )
        if len(spare_rows) < missing:
            extra = _sample_rows(model, table, missing)
            spare_rows = pd.concat([spare_rows, extra], ignore_index=True)
    pieces, used = [], 0
    for label, slots in pd.Series(np.arange(total)).groupby(slot_labels):
        rows = pd.concat([first.iloc[:0], *pools[int(label)]], ignore_index=True)
        short = len(slots) - len(rows)
        if short > 0:
            rows = pd.concat([rows, spare_rows.iloc[used : used + short]], ignore_index=True)
            used += short
        rows = rows.sample(frac=1.0, random_state=_draw_seed(rng))
        rows.index = slots.to_numpy()
        pieces.append(rows)
    return pd.concat(pieces).sort_index().reset_index(drop=True)


def _draw_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


def _unique_keys(plan: TablePlan, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose primary key repeats an earlier row's dropped (counted in the log).

    Keys issued fresh or numbered per parent never repeat; a key made only of foreign keys
    (a link table) can when an owner asks for more distinct partners than exist.
    """
    if not plan.primary_key or plan.owned_keys or frame.empty:
        return frame
    repeated = frame.duplicated(subset=list(plan.primary_key)).to_numpy()
    if not repeated.any():
        return frame
    log.info(
        "%s: %d rows dropped whose key (%s) repeated another row's",
        plan.name,
        int(repeated.sum()),
        ", ".join(plan.primary_key),
    )
    return frame[~repeated].reset_index(drop=True)


def _slots(counts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` parent positions, parent ``i`` about ``counts[i]`` times (scaled to ``n``).

    Drawing each child's parent independently by weight adds multinomial noise on top of
    the drawn counts (a device table's children-per-parent distance went 0.06 -> 0.20);
    handing out slots keeps each parent's count as drawn.
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    scaled = counts * (n / counts.sum())
    whole = np.floor(scaled)
    extra = rng.random(counts.size) < scaled - whole
    slots = np.repeat(np.arange(counts.size), (whole + extra).astype(np.int64))
    if slots.size < n:  # rounding: top up by weight
        more = rng.choice(counts.size, n - slots.size, p=counts / counts.sum())
        slots = np.concatenate([slots, more])
    return rng.permutation(slots)[:n]


def _with_nulls(values: np.ndarray, dtype: Any, keep: np.ndarray) -> pd.Series:
    """Key values in the parent key's type, NULL where ``keep`` is False (integers: Int64)."""
    series = pd.Series(values).astype(dtype)
    if keep.all():
        return series
    if pd.api.types.is_integer_dtype(series.dtype):
        series = series.astype("Int64")
    return series.where(keep, None)


def _implied(plan: TablePlan, rel: Relationship) -> bool:
    """Whether ``rel``'s columns were all set by a wider relationship drawn before it."""
    index = plan.others.index(rel)
    earlier = [*plan.others[:index], *([plan.owner] if plan.owner else [])]
    covered = {c for r in earlier for c in r.child_columns}
    return set(rel.child_columns) <= covered


def _distinct_within(
    chosen: np.ndarray,
    frame: pd.DataFrame,
    group_columns: Sequence[str],
    weights: np.ndarray,
    rng: np.random.Generator,
    rounds: int = 20,
) -> np.ndarray:
    """Redraw parents picked twice for the same owner (a link table's key must be unique)."""
    groups = (
        pd.MultiIndex.from_frame(frame[list(group_columns)])
        if len(group_columns) > 1
        else (frame[group_columns[0]].to_numpy())
    )
    chosen = chosen.copy()
    p = weights / weights.sum()
    for _ in range(rounds):
        pairs = pd.DataFrame({"g": pd.factorize(groups)[0], "c": chosen})
        repeated = pairs.duplicated().to_numpy()
        if not repeated.any():
            break
        chosen[repeated] = rng.choice(len(weights), int(repeated.sum()), p=p)
    return chosen
