"""Fit and sample a table set: roles, the engine (per table or HMA), fresh values.

The first half of the synthesize step (:mod:`airflow_synth.core.steps.synthesize`): every
column gets a role, keys and PII are kept from the models, the tables are fitted and
sampled (a table without relationships in filtered batches, like a single table), and
identifiers are issued fresh.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_synth.core.assess.assessment import SyntheticAssessor
from airflow_synth.core.assess.checks import (
    CheckSettings,
)
from airflow_synth.core.assess.limits import check_training_sizes
from airflow_synth.core.contract import TableContract
from airflow_synth.core.engine.combinations import CombinationSwitch
from airflow_synth.core.engine.fresh import FreshColumns, reissue_keys
from airflow_synth.core.engine.hma import (
    SYNTHESIZER,
    build_multitable_metadata,
    fit_hma,
    sample_hma,
)
from airflow_synth.core.engine.set_engine import ENGINE_NAME as PER_TABLE_ENGINE
from airflow_synth.core.engine.set_run import (
    SetPrepared,
    fit_set_table,
    prepare_set_engine,
    sample_set_engine,
)
from airflow_synth.core.engine.subset import integrity_subset
from airflow_synth.core.engine.synthesizers import SynthesizerSpec, resolve_synthesizer
from airflow_synth.core.errors import ContractError, DataError, SynthesizerConfigError
from airflow_synth.core.frames import to_training_frame
from airflow_synth.core.profile.roles import (
    FOREIGN_KEY,
    KEY,
    MODELLED,
    PII,
    SEQUENCE,
    ColumnRole,
    classify_columns,
    describe_roles,
    modelled_columns,
)
from airflow_synth.core.relations import TableSet, single_column_keys_only

log = logging.getLogger(__name__)

HMA_ENGINE = "hma"
#: Per-table engine's default synthesizer: fast enough for a million child rows on 2 cores.
DEFAULT_SET_SYNTHESIZER = "gaussian_copula"


def _read_tables(
    paths: Mapping[str, Path], caps: Mapping[str, int] | None = None, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """The staged tables as pandas; a table with a cap in ``caps`` is read as a seeded
    uniform sample of at most that many rows, taken in Arrow row group by row group before
    any pandas conversion (a 10M-row table costs its sample's memory, not 10M rows')."""
    caps = caps or {}
    return {
        name: to_training_frame(
            _read_capped(path, caps.get(name), seed + zlib.crc32(name.encode()))
        )
        for name, path in paths.items()
    }


def _read_capped(path: Path, cap: int | None, seed: int) -> pa.Table:
    parquet = pq.ParquetFile(path)
    total = parquet.metadata.num_rows
    if not cap or total <= cap:
        return parquet.read()
    keep = np.sort(np.random.default_rng(seed).choice(total, cap, replace=False))
    parts, start = [], 0
    for index in range(parquet.num_row_groups):
        rows = parquet.metadata.row_group(index).num_rows
        mine = keep[(keep >= start) & (keep < start + rows)] - start
        if mine.size:
            parts.append(parquet.read_row_group(index).take(pa.array(mine)))
        start += rows
    return pa.concat_tables(parts)


def row_caps(
    table_set: TableSet, max_training_rows: int | None, holdout_share: float
) -> dict[str, int]:
    """Rows read of each table without relationships (the others need every row: keys,
    orphans, parent contexts): enough for ``max_training_rows`` training rows after the
    holdout, with a margin, so the bound still decides the training rows."""
    if not max_training_rows:
        return {}
    cap = math.ceil(max_training_rows / max(1.0 - holdout_share, 0.05) * 1.05) + 10
    return {
        name: cap
        for name in table_set.order
        if not table_set.parents_of(name) and not table_set.children_of(name)
    }


@dataclass
class _Trained:
    """What fitting and sampling produced, whichever engine ran (the rest of the step is
    the same for both)."""

    train: dict[str, pd.DataFrame]
    holdout: dict[str, pd.DataFrame]
    sampled: dict[str, pd.DataFrame]  # related tables, sampled by the set engine
    real_keyed: dict[str, pd.DataFrame]  # keys and modelled columns of the real tables
    roles: dict[str, list[ColumnRole]]
    learned: dict[str, list[str]]
    model: Any
    description: dict[str, Any]
    fit_seconds: float
    sample_seconds: float
    split: dict[str, Any]
    metadata: Any = None  # HMA: one SDV metadata for the set
    table_models: dict[str, Any] = field(default_factory=dict)  # per table: TableModel
    standalone: list[str] = field(default_factory=list)  # sampled like a single table
    main_table: str | None = None

    def metadata_of(self, name: str) -> Any:
        if self.metadata is not None:
            return self.metadata
        if name in self.standalone:
            return self.table_models[name].metadata
        return self.model_run.metadata(name)

    model_run: Any = None


@dataclass
class PerTablePrepared:
    """A set planned for the per-table engine, before any table is fitted: the roles, what
    each table's model learns, and the engine's prepared state (plans, parent contexts,
    training and held-out rows). Each table can then be fitted in a task of its own
    (:func:`fit_prepared_table`); :func:`trained_per_table` samples from their models."""

    table_set: TableSet
    roles: dict[str, list[ColumnRole]]
    learned: dict[str, list[str]]
    prepared: SetPrepared
    #: rows read of the tables without relationships (:func:`row_caps`), and the seed
    caps: dict[str, int] = field(default_factory=dict)
    seed: int = 0
    #: the staged row counts of the capped tables (what the manifest reports as real rows)
    real_rows: dict[str, int] = field(default_factory=dict)

    def real(self, real_paths: Mapping[str, Path]) -> dict[str, pd.DataFrame]:
        """The learned columns (keys and modelled) of the staged real tables: every row, or
        the same capped sample :func:`prepare_per_table` read."""
        full = _read_tables(real_paths, self.caps, self.seed)
        return {name: full[name][self.learned[name]] for name in self.table_set.order}

    def frames(self, real: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """``real`` (:meth:`real`) as the engine was prepared: orphan child rows left out."""
        return self.prepared.frames(real)

    @property
    def to_fit(self) -> list[str]:
        """The tables whose model has something to learn (in the set's order)."""
        return list(self.table_set.order)


def prepare_per_table(
    real_paths: Mapping[str, Path],
    table_set: TableSet,
    specs: Mapping[str, SynthesizerSpec],
    *,
    dataset: str,
    seed: int | None,
    checks: CheckSettings,
    contracts: Mapping[str, TableContract],
    max_training_rows: int | None,
    fixed_combinations: CombinationSwitch | Mapping[str, CombinationSwitch],
    max_orphan_share: float,
    require_model: bool,
    holdout_salt: str | None = None,
) -> PerTablePrepared:
    """Roles, learned columns and the engine's prepared state of a set (no fit yet).

    A table without relationships is read as a seeded sample just big enough for
    ``max_training_rows`` training rows after the holdout (:func:`row_caps`): memory follows
    the bound, not the table's size."""
    caps = row_caps(table_set, max_training_rows, checks.holdout_share)
    full = _read_tables(real_paths, caps, seed or 0)
    totals = {name: pq.ParquetFile(real_paths[name]).metadata.num_rows for name in caps}
    for name, cap in caps.items():
        total = totals[name]
        if total > cap:
            log.info(
                "%s: read a seeded sample of %d of %d rows (enough for max_training_rows "
                "after the holdout); sampling still produces the full size",
                name,
                cap,
                total,
            )
    roles = classify_set(full, table_set, contracts)
    if require_model:  # a single table of keys and PII only has nothing to learn
        require_modelled(roles[table_set.order[0]], dataset)
    learned = {name: learned_columns(roles[name]) for name in table_set.order}
    standalone = [
        name
        for name in table_set.order
        if not table_set.parents_of(name) and not table_set.children_of(name)
    ]
    prepared = prepare_set_engine(
        {name: full[name][learned[name]] for name in table_set.order},
        table_set,
        roles,
        specs,
        seed=seed,
        holdout_share=checks.holdout_share,
        max_training_rows=max_training_rows,
        contracts=contracts,
        fixed_combinations=fixed_combinations,
        max_orphan_share=max_orphan_share,
        standalone=standalone,
        holdout_salt=holdout_salt,
    )
    check_training_sizes(prepared, roles, checks, single=require_model)  # before any fit
    return PerTablePrepared(table_set, roles, learned, prepared, caps, seed or 0, totals)


def fit_prepared_table(
    prepared: PerTablePrepared, frames: Mapping[str, pd.DataFrame], name: str
) -> tuple[Any, float]:
    """One table's model of a prepared set (``frames``: :meth:`PerTablePrepared.frames` of
    :meth:`PerTablePrepared.real`)
    and the seconds it took; None when the table has nothing to learn."""
    return fit_set_table(prepared.prepared, frames, name)


def trained_per_table(
    prepared: PerTablePrepared,
    real: Mapping[str, pd.DataFrame],
    models: Mapping[str, Any],
    *,
    seed: int | None,
    scale: float,
    fit_seconds: float,
) -> _Trained:
    """Sample the related tables from the fitted ``models`` (parents first); the tables
    without relationships are left to the caller's filtered sampling. ``real``:
    :meth:`PerTablePrepared.real`."""
    table_set, roles = prepared.table_set, prepared.roles
    frames = prepared.frames(real)
    run = sample_set_engine(
        prepared.prepared, frames, roles, models, seed=seed, scale=scale, fit_seconds=fit_seconds
    )
    plans = run.synthesizer.plans
    for name, total in prepared.real_rows.items():  # capped tables: the staged count
        run.split["tables"][name]["real_rows"] = total
    return _Trained(
        train=run.train,
        holdout=run.holdout,
        sampled=run.sampled,
        real_keyed=dict(real),
        roles={name: sequence_roles(roles[name], plans[name]) for name in roles},
        learned=prepared.learned,
        model=run.synthesizer,
        description={
            "name": PER_TABLE_ENGINE,
            "tables": {n: run.synthesizer.specs[n].describe() for n in table_set.order},
        },
        fit_seconds=run.fit_seconds,
        sample_seconds=run.sample_seconds,
        split=run.split,
        table_models=dict(run.synthesizer.models),
        standalone=list(run.standalone),
        model_run=run,
    )


def _fit_per_table(
    real_paths: Mapping[str, Path],
    table_set: TableSet,
    specs: Mapping[str, SynthesizerSpec],
    *,
    dataset: str,
    seed: int | None,
    scale: float,
    checks: CheckSettings,
    contracts: Mapping[str, TableContract],
    max_training_rows: int | None,
    fixed_combinations: CombinationSwitch | Mapping[str, CombinationSwitch],
    max_orphan_share: float,
    require_model: bool,
) -> _Trained:
    """Each table its own model (the set engine), in this process: prepare, fit every
    table, sample the related tables parents first."""
    prepared = prepare_per_table(
        real_paths,
        table_set,
        specs,
        dataset=dataset,
        seed=seed,
        checks=checks,
        contracts=contracts,
        max_training_rows=max_training_rows,
        fixed_combinations=fixed_combinations,
        max_orphan_share=max_orphan_share,
        require_model=require_model,
    )
    real = prepared.real(real_paths)
    frames = prepared.frames(real)
    started = time.monotonic()
    models = {name: fit_prepared_table(prepared, frames, name)[0] for name in prepared.to_fit}
    return trained_per_table(
        prepared,
        real,
        models,
        seed=seed,
        scale=scale,
        fit_seconds=time.monotonic() - started,
    )


def _fit_hma(
    real_paths: Mapping[str, Path],
    table_set: TableSet,
    out_dir: Path,
    *,
    seed: int | None,
    scale: float,
    checks: CheckSettings,
    contracts: Mapping[str, TableContract],
    max_parents: int | None,
    main_table: str | None,
    max_orphan_share: float,
    fixed_combinations: CombinationSwitch | Mapping[str, CombinationSwitch],
) -> _Trained:
    """SDV's HMA on an integrity-preserving subset of ``max_parents`` main-table rows."""
    single_column_keys_only(table_set, HMA_ENGINE)
    subset = integrity_subset(
        real_paths,
        table_set,
        out_dir / "subset",
        max_parents=max_parents,
        holdout_share=checks.holdout_share,
        seed=seed or 0,
        main_table=main_table,
        max_orphan_share=max_orphan_share,
    )
    train = _read_tables(subset.train_paths)
    holdout = _read_tables(subset.holdout_paths)
    roles = classify_set(train, table_set, contracts)
    learned = {name: learned_columns(roles[name]) for name in table_set.order}
    train = {name: frame[learned[name]] for name, frame in train.items()}
    holdout = {name: frame[learned[name]] for name, frame in holdout.items()}
    metadata = build_multitable_metadata(train, table_set, contracts)
    model, fit_seconds = fit_hma(train, metadata, seed, fixed_combinations=fixed_combinations)
    sampled, sample_seconds = sample_hma(model, scale, seed)
    return _Trained(
        train=train,
        holdout=holdout,
        sampled=sampled,
        real_keyed=train,
        roles=roles,
        learned=learned,
        model=model,
        description={"name": SYNTHESIZER, "params": {}, "tables": list(table_set.order)},
        fit_seconds=fit_seconds,
        sample_seconds=sample_seconds,
        split=subset.to_dict(),
        metadata=metadata,
        main_table=subset.main_table,
    )


def classify_set(
    frames: Mapping[str, pd.DataFrame],
    table_set: TableSet,
    contracts: Mapping[str, TableContract],
) -> dict[str, list[ColumnRole]]:
    """Every column's role, table by table: keys from the set, the rest as single-table."""
    unknown = sorted(set(contracts) - set(table_set.tables))
    if unknown:
        raise ContractError(
            f"Contracts given for {unknown}, which are not tables of the set "
            f"{sorted(table_set.tables)}. Fix the table names in `contracts`."
        )
    roles = {}
    for name in table_set.order:
        contract = contracts.get(name)
        if contract is not None:
            missing = [c for c in contract.column_names if c not in frames[name].columns]
            if missing:
                raise ContractError(
                    f"{contract.source}: columns {missing} are not in table {name!r}; "
                    "remove them from the contract or fix the names."
                )
        foreign_keys = {
            column: f"{rel.parent}.{parent_column}"
            for rel in table_set.relationships
            if rel.child == name
            for column, parent_column in zip(rel.child_columns, rel.parent_columns, strict=True)
        }
        roles[name] = classify_columns(
            frames[name],
            contract=contract,
            primary_key=table_set.tables[name].primary_key,
            foreign_keys=foreign_keys,
        )
        for line in describe_roles(roles[name]):
            log.info("%s: %s", name, line)
    return roles


def learned_columns(roles: Sequence[ColumnRole]) -> list[str]:
    """What the engine sees of a table: its keys (to join) and the modelled columns."""
    return [r.name for r in roles if r.role in (KEY, FOREIGN_KEY, SEQUENCE, MODELLED)]


def renumber_sequences(frame: pd.DataFrame, plan: Any) -> pd.DataFrame:
    """Per-parent sequences made consecutive again from each group's start (after a filter
    dropped rows), keeping their order."""
    if not plan.sequences or plan.owner is None or frame.empty:
        return frame
    out = frame.copy()
    groups = list(plan.owner.child_columns)
    for sequence in plan.sequences:
        column = sequence.column
        ordered = out.sort_values([*groups, column], kind="stable")
        if len(sequence.starts) == 1:  # every group starts at the same number (1)
            start = pd.Series(sequence.starts[0], index=ordered.index)
        else:  # a start of its own per group: the first one left
            start = ordered.groupby(groups, dropna=False)[column].transform("min")
        rank = ordered.groupby(groups, dropna=False).cumcount()
        out.loc[ordered.index, column] = (start + rank).to_numpy()
    return out


def sequence_roles(roles: Sequence[ColumnRole], plan: Any) -> list[ColumnRole]:
    """Roles with the plan's per-parent sequences marked as such (issued, not fresh)."""
    numbered = {s.column for s in plan.sequences}
    owner = plan.owner.parent if plan.owner is not None else "its parent"
    return [
        replace(r, role=SEQUENCE, kind="sequence", reason=f"numbered 1..n within each {owner}")
        if r.name in numbered
        else r
        for r in roles
    ]


def issue_fresh_values(
    sampled: Mapping[str, pd.DataFrame],
    real: Mapping[str, pd.DataFrame],
    roles: Mapping[str, Sequence[ColumnRole]],
    table_set: TableSet,
    seed: int,
) -> dict[str, pd.DataFrame]:
    """HMA's output with fresh keys (consistent across tables) and fresh PII columns."""
    tables = reissue_keys(
        sampled,
        real,
        {name: [r for r in roles[name] if r.role == KEY] for name in table_set.order},
        [
            (rel.child, child_column, rel.parent, parent_column)
            for rel in table_set.relationships
            for child_column, parent_column in zip(
                rel.child_columns, rel.parent_columns, strict=True
            )
        ],
        seed=seed,
    )
    return issue_fresh_pii(tables, real, roles, table_set, seed)


def table_specs(
    synthesizer: str | Mapping[str, str] | None, table_set: TableSet
) -> dict[str, SynthesizerSpec]:
    """Each table's synthesizer: one name for all, or ``{table: name}`` (others: default)."""
    chosen = synthesizer if isinstance(synthesizer, Mapping) else {}
    unknown = sorted(set(chosen) - set(table_set.tables))
    if unknown:
        raise SynthesizerConfigError(
            f"synthesizer names tables {unknown} that are not in the set "
            f"{sorted(table_set.tables)}; fix the table names."
        )
    default = synthesizer if isinstance(synthesizer, str) and synthesizer else None
    return {
        name: resolve_synthesizer(chosen.get(name) or default or DEFAULT_SET_SYNTHESIZER)
        for name in table_set.order
    }


def issue_fresh_pii(
    sampled: Mapping[str, pd.DataFrame],
    real: Mapping[str, pd.DataFrame],
    roles: Mapping[str, Sequence[ColumnRole]],
    table_set: TableSet,
    seed: int,
) -> dict[str, pd.DataFrame]:
    """The engine's output (keys already fresh) with fresh PII columns."""
    tables = dict(sampled)
    for name in table_set.order:
        pii = [r for r in roles[name] if r.role == PII]
        if pii and name in tables:
            fresh = FreshColumns(real[name], pii, seed=seed)
            tables[name] = fresh.complete(tables[name], [r.name for r in roles[name]])
    return tables


def _filter_copies(
    assessor: SyntheticAssessor, table_set: TableSet, name: str, checks: CheckSettings
) -> bool:
    """Whether to run the similarity filter on this table's synthetic rows.

    Only leaf tables: dropping a row orphans nothing there. Whether *exact* copies are
    dropped is the assessor's rule, the same as on the single-table path
    (:attr:`SyntheticAssessor.copies_are_evidence`): not where real rows repeat by
    themselves (in an event log a third of real rows equal another one, so an exact copy
    says nothing about memorisation and dropping it would distort the number of children
    per parent); near copies are dropped everywhere.
    """
    if not assessor.filtering or table_set.children_of(name):
        return False
    if not assessor.copies_are_evidence:
        log.info(
            "%s: exact copies are not filtered: %.1f%% of real rows equal another real row, "
            "so copies are not evidence of memorisation here",
            name,
            100 * assessor.real_repeat_rate,
        )
    return True


def require_modelled(roles: Sequence[ColumnRole], dataset: str) -> list[str]:
    """The modelled columns; a table of keys and PII only has nothing to learn."""
    modelled = modelled_columns(roles)
    if not modelled:
        raise DataError(
            f"Dataset {dataset!r}: every column is a key or PII ("
            + ", ".join(f"{r.name}: {r.kind}" for r in roles)
            + "), so there is nothing to learn. Mark the columns to learn with "
            "'role: modelled' in the contract, or add analytic columns to the query."
        )
    return modelled
