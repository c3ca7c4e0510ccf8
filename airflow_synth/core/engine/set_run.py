"""Train and sample a table set with the per-table engine, from staged real tables.

The glue between the multi-table synthesize step and
:class:`~airflow_synth.core.engine.set_engine.SetSynthesizer`: a per-table holdout (privacy
is judged per table on rows its model never saw), a bound on each table's training rows,
fresh keys issued from the real key columns' formats (none equal to a real key), and each
table's own metadata for its reports. No Airflow import.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from airflow_synth.core.contract import TableContract
from airflow_synth.core.engine.combinations import CombinationSwitch
from airflow_synth.core.engine.cpu_budget import cpu_budget, threads_for_training
from airflow_synth.core.engine.fresh import FreshValues
from airflow_synth.core.engine.holdout import holdout_mask
from airflow_synth.core.engine.metadata import build_metadata
from airflow_synth.core.engine.set_engine import ENGINE_NAME, SetSynthesizer
from airflow_synth.core.engine.set_plan import is_helper_column, plan_tables
from airflow_synth.core.engine.synthesizers import SynthesizerSpec
from airflow_synth.core.errors import DataError
from airflow_synth.core.keys import parent_positions
from airflow_synth.core.profile.roles import KEY, ColumnRole
from airflow_synth.core.relations import RelationshipError, TableSet

log = logging.getLogger(__name__)

#: Default bound on each table's training rows, single tables and every table of a set (the
#: rest of a big table is not needed to learn its shape; sampling still produces the full
#: size). A seeded random sample of the rows outside the holdout.
DEFAULT_MAX_TRAINING_ROWS = 200_000


@dataclass
class SetRun:
    """What a per-table run produced: the model, the split and the synthetic tables."""

    synthesizer: SetSynthesizer
    train: dict[str, pd.DataFrame]
    holdout: dict[str, pd.DataFrame]
    sampled: dict[str, pd.DataFrame]
    fit_seconds: float
    sample_seconds: float
    split: dict[str, Any] = field(default_factory=dict)
    #: tables fitted here but left for the caller to sample (see :func:`run_set_engine`)
    standalone: list[str] = field(default_factory=list)
    _metadata: dict[str, Any] = field(default_factory=dict)

    def metadata(self, table: str) -> Any:  # None for a table without modelled columns
        """SDV metadata of the table's modelled columns (the engine's helpers left out)."""
        if table not in self._metadata:
            fitted = self.synthesizer.models[table]
            profiles = fitted.profiles if fitted is not None else []
            sdtypes = {p.name: p.sdtype for p in profiles if not is_helper_column(p.name)}
            self._metadata[table] = (
                build_metadata(
                    self.train[table], table, self.synthesizer.contracts.get(table), sdtypes
                )
                if self.train[table].shape[1] and len(self.train[table])
                else None
            )
        return self._metadata[table]


def split_per_table(
    frames: Mapping[str, pd.DataFrame],
    holdout_share: float,
    max_training_rows: int | None,
    seed: int,
    columns: Mapping[str, Sequence[str]] | None = None,
    salt: str | None = None,
) -> tuple[dict[str, pd.Index], dict[str, pd.Index]]:
    """Training and held-out row labels of each table (seeded, independent per table).

    The holdout follows the single rule of :func:`~airflow_synth.core.engine.holdout.holdout_mask`
    (rows equal on the table's modelled ``columns`` are held out together); the training
    rows are then bounded to ``max_training_rows``, drawn at random. With a ``salt`` the
    holdout is the keyed, run-stable split (a model that may be reused later).
    """
    train, holdout = {}, {}
    for name, frame in frames.items():
        table_seed = seed + zlib.crc32(name.encode())
        measured = list((columns or {}).get(name, frame.columns))
        held = holdout_mask(frame, holdout_share, table_seed, columns=measured, salt=salt)
        holdout[name] = frame.index[held]
        rest = frame.index[~held]
        if max_training_rows and len(rest) > max_training_rows:
            rng = np.random.default_rng(table_seed)
            rest = rest[np.sort(rng.choice(len(rest), max_training_rows, replace=False))]
            log.info(
                "%s: training on a seeded sample of %d of %d rows (max_training_rows); "
                "sampling still produces the full size",
                name,
                max_training_rows,
                len(frame) - int(held.sum()),
            )
        train[name] = rest
    return train, holdout


def holdout_columns(
    name: str, frame: pd.DataFrame, plan: Any, standalone: Sequence[str]
) -> list[str]:
    """What makes rows "equal" for the holdout of one table.

    A table without relationships is split as a single table is: rows equal on the modelled
    columns are held out together. A related table is split by row (its keys make every row
    distinct): in an event log a third of the rows repeat others, so grouping would keep the
    biggest groups (the commonest events) out of the holdout, and a faithful model's copies
    of them would count as closer to training (the full-size demo's sessions: DCR share
    0.63 grouped, 0.52 by row).
    """
    return list(plan.modelled) if name in standalone else list(frame.columns)


def checked_frames(
    frames: Mapping[str, pd.DataFrame], table_set: TableSet, max_orphan_share: float
) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """Keys present and unique (composite ones too); child rows without a parent left out.

    Few orphans (a child whose non-NULL foreign key points at no parent row) are dirt: they
    are left out of training and counted; more than ``max_orphan_share`` of a table's rows
    mean the relationship is wrong, and the run stops before anything is trained.
    """
    out = dict(frames)
    for name in table_set.order:
        key = list(table_set.tables[name].primary_key)
        if not key:
            continue
        frame = frames[name]
        nulls = int(frame[key].isna().any(axis=1).sum())
        if nulls:
            raise DataError(
                f"Table {name}: {nulls:,} rows have a NULL in the primary key "
                f"({', '.join(key)}). Filter them out in the table's query or fix the data; a "
                "key must identify every row."
            )
        duplicates = int(frame.duplicated(subset=key).sum())
        if duplicates:
            raise DataError(
                f"Table {name}: the primary key ({', '.join(key)}) has {duplicates:,} duplicate "
                "values. Use a unique column (set) as the key, or deduplicate in the query."
            )
    left_out: dict[str, int] = {}
    for rel in table_set.relationships:
        child = out[rel.child]
        found = parent_positions(child, frames[rel.parent], rel) >= 0
        given = child[list(rel.child_columns)].notna().all(axis=1).to_numpy()
        orphans = given & ~found
        count = int(orphans.sum())
        if not count:
            continue
        share = count / max(len(child), 1)
        if share > max_orphan_share:
            raise RelationshipError(
                f"The relationship {rel} does not match the data: {count:,} of "
                f"{len(child):,} {rel.child} rows ({share:.1%}) reference no existing parent "
                f"(more than max_orphan_share {max_orphan_share:.0%}). Check that the declared "
                "columns are the right ones and of the same type; if the data really has that "
                "many orphans, clean it in the table's query or raise max_orphan_share. "
                "Nothing was trained or published."
            )
        log.info(
            "%s: %d rows reference no %s row; left out of training", rel.child, count, rel.parent
        )
        out[rel.child] = child[~orphans]
        left_out[str(rel)] = count
    return out, left_out


@dataclass
class SetPrepared:
    """A table set ready to be fitted table by table: the engine with its plans and parent
    contexts (no model yet), each table's training and held-out rows, and the settings the
    sampling needs. Fitting one table (:func:`fit_set_table`) needs only this and the real
    frames, so the tables of a set can be fitted in separate tasks."""

    engine: SetSynthesizer
    train_rows: dict[str, pd.Index]
    holdout_rows: dict[str, pd.Index]
    orphans: dict[str, int]
    standalone: list[str]
    max_training_rows: int | None
    max_orphan_share: float

    def frames(self, frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """The real frames as prepared: the few orphan child rows left out again (the
        same rows every time: the check is deterministic)."""
        return checked_frames(frames, self.engine.table_set, self.max_orphan_share)[0]


def prepare_set_engine(
    frames: Mapping[str, pd.DataFrame],
    table_set: TableSet,
    roles: Mapping[str, Sequence[ColumnRole]],
    specs: Mapping[str, SynthesizerSpec],
    *,
    seed: int | None,
    holdout_share: float,
    max_training_rows: int | None = DEFAULT_MAX_TRAINING_ROWS,
    contracts: Mapping[str, TableContract] | None = None,
    fixed_combinations: Mapping[str, CombinationSwitch] | CombinationSwitch = True,
    max_orphan_share: float = 0.05,
    standalone: Sequence[str] = (),
    holdout_salt: str | None = None,
) -> SetPrepared:
    """Check keys and orphans, plan every table, split each into training and held-out rows
    and fit the parent contexts: everything before the per-table fits."""
    frames, orphans = checked_frames(frames, table_set, max_orphan_share)
    plans = plan_tables(table_set, roles, frames)
    train_rows, holdout_rows = split_per_table(
        frames,
        holdout_share,
        max_training_rows,
        seed or 0,
        {name: holdout_columns(name, frames[name], plans[name], standalone) for name in frames},
        salt=holdout_salt,
    )
    engine = SetSynthesizer(
        table_set,
        plans,
        specs,
        contracts=contracts,
        fixed_combinations=fixed_combinations,
        seed=seed,
    )
    engine.fit_context(frames)
    return SetPrepared(
        engine,
        train_rows,
        holdout_rows,
        orphans,
        list(standalone),
        max_training_rows,
        max_orphan_share,
    )


def fit_set_table(
    prepared: SetPrepared, frames: Mapping[str, pd.DataFrame], name: str
) -> tuple[Any, float]:
    """Fit one table of a prepared set on its training rows (``frames`` as prepared, see
    :meth:`SetPrepared.frames`): its model (None: nothing to learn) and the seconds."""
    engine = prepared.engine
    model = engine.fit_table(name, frames, prepared.train_rows.get(name))
    return model, engine.fit_seconds.get(name, 0.0)


def sample_set_engine(
    prepared: SetPrepared,
    frames: Mapping[str, pd.DataFrame],
    roles: Mapping[str, Sequence[ColumnRole]],
    models: Mapping[str, Any],
    *,
    seed: int | None,
    scale: float,
    fit_seconds: float,
) -> SetRun:
    """Sample the set at ``scale`` x the real sizes from the fitted ``models`` (``frames``
    as prepared); keys are fresh. Tables named standalone that got a model are left for the
    caller to sample like a single table (:attr:`SetRun.standalone`)."""
    engine, table_set = prepared.engine, prepared.engine.table_set
    plans = engine.plans
    engine.models = {name: models.get(name) for name in table_set.order}
    issuers = {
        (name, column): FreshValues(
            _key_role(roles[name], column),
            frames[name][column],
            seed=(seed or 0) + zlib.crc32(name.encode()),
        )
        for name in table_set.order
        for column in plans[name].owned_keys
    }

    def issue_key(table: str, column: str, n: int) -> np.ndarray:
        return issuers[(table, column)].draw(n).to_numpy()

    own = [name for name in prepared.standalone if engine.models.get(name) is not None]
    started = time.monotonic()
    with threads_for_training(cpu_budget()):  # the worker's CPUs, not the host's
        sampled = engine.sample(scale=scale, seed=seed, issue_key=issue_key, skip=own)
    sample_seconds = time.monotonic() - started
    modelled = {name: list(plans[name].modelled) for name in table_set.order}
    train_rows, holdout_rows = prepared.train_rows, prepared.holdout_rows
    split = {
        "engine": ENGINE_NAME,
        "max_training_rows": prepared.max_training_rows,
        "orphans_left_out": prepared.orphans,
        "tables": {
            name: {
                "real_rows": len(frames[name]),
                "training_rows": len(train_rows[name]),
                "holdout_rows": len(holdout_rows[name]),
                "synthetic_rows": len(sampled[name]) if name in sampled else None,
                "owner": str(plans[name].owner) if plans[name].owner else None,
                "sequences": [s.column for s in plans[name].sequences],
            }
            for name in table_set.order
        },
    }
    return SetRun(
        synthesizer=engine,
        train={n: frames[n].loc[train_rows[n], modelled[n]] for n in table_set.order},
        holdout={n: frames[n].loc[holdout_rows[n], modelled[n]] for n in table_set.order},
        sampled=sampled,
        fit_seconds=fit_seconds,
        sample_seconds=sample_seconds,
        split=split,
        standalone=own,
    )


def run_set_engine(
    frames: Mapping[str, pd.DataFrame],
    table_set: TableSet,
    roles: Mapping[str, Sequence[ColumnRole]],
    specs: Mapping[str, SynthesizerSpec],
    *,
    seed: int | None,
    scale: float,
    holdout_share: float,
    max_training_rows: int | None = DEFAULT_MAX_TRAINING_ROWS,
    contracts: Mapping[str, TableContract] | None = None,
    fixed_combinations: Mapping[str, CombinationSwitch] | CombinationSwitch = True,
    max_orphan_share: float = 0.05,
    standalone: Sequence[str] = (),
) -> SetRun:
    """Plan, fit (bounded, per table) and sample the set at ``scale`` x the real sizes, in
    this process: :func:`prepare_set_engine`, :func:`fit_set_table` for every table (the
    ready-made chain runs those as mapped tasks), :func:`sample_set_engine`.

    ``frames`` are the whole real tables (keys, foreign keys and modelled columns; PII is
    left out by the caller). Keys in the output are fresh. Tables named in ``standalone``
    (no relationship) that got a model are fitted but not sampled here: the caller samples
    them in filtered batches like a single table (:attr:`SetRun.standalone`).
    """
    prepared = prepare_set_engine(
        frames,
        table_set,
        roles,
        specs,
        seed=seed,
        holdout_share=holdout_share,
        max_training_rows=max_training_rows,
        contracts=contracts,
        fixed_combinations=fixed_combinations,
        max_orphan_share=max_orphan_share,
        standalone=standalone,
    )
    frames = prepared.frames(frames)
    started = time.monotonic()
    models = {name: fit_set_table(prepared, frames, name)[0] for name in table_set.order}
    return sample_set_engine(
        prepared,
        frames,
        roles,
        models,
        seed=seed,
        scale=scale,
        fit_seconds=time.monotonic() - started,
    )


def _key_role(roles: Sequence[ColumnRole], column: str) -> ColumnRole:
    for role in roles:
        if role.name == column:
            return role if role.role == KEY else ColumnRole(column, KEY, role.kind, "key")
    raise KeyError(column)
