"""One table's model: profile, codec, rules and a synthesizer, fitted together.

Every table the pipeline learns, whether it is the only table of a run or one table of a
set, goes through :func:`fit_table_model`: the column profile picks kinds, the
:class:`~airflow_synth.core.engine.profile_codec.ProfileCodec` turns point masses and NULLs
into states the synthesizer can learn, the discovered rules repair each sample, and the
detected fixed combinations become constraints. Keeping it in one function is what lets
the single-table step and the multi-table engine behave the same on the same columns.
No Airflow import.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from airflow_synth.core.contract import TableContract
from airflow_synth.core.engine.combinations import (
    CombinationSwitch,
    combination_constraints,
    switch_for,
)
from airflow_synth.core.engine.cpu_budget import (
    CpuBudget,
    measure_cpu_budget,
    threads_for_training,
)
from airflow_synth.core.engine.metadata import build_metadata
from airflow_synth.core.engine.profile_codec import ProfileCodec, ProfiledSynthesizer
from airflow_synth.core.engine.sampling import fit_synthesizer
from airflow_synth.core.engine.synthesizers import SynthesizerSpec
from airflow_synth.core.profile.kinds import ColumnProfile, profile_columns
from airflow_synth.core.profile.rules import RuleSet, discover_rules

log = logging.getLogger(__name__)


@dataclass
class TableModel:
    """A fitted table model and what was learned about the table on the way."""

    synthesizer: ProfiledSynthesizer
    profiles: list[ColumnProfile]
    rules: RuleSet
    metadata: Any  # SDV Metadata of the (decoded) training columns
    fit_seconds: float


def fit_table_model(
    train: pd.DataFrame,
    table: str,
    spec: SynthesizerSpec,
    *,
    contract: TableContract | None = None,
    seed: int | None = None,
    fixed_combinations: CombinationSwitch = True,
    kinds: Mapping[str, str] | None = None,
    rules_off: Sequence[str] = (),
    smooth: Sequence[str] = (),
    threads: int | None = None,
) -> TableModel:
    """Profile ``train``, discover its rules and fit ``spec`` on the encoded rows.

    ``kinds`` adds column kinds on top of the contract's (the multi-table engine declares
    its helper columns, e.g. a children count is ``discrete``); ``rules_off`` switches off
    discovered rules on top of the contract's ``rules_off``; ``smooth`` columns are learned
    as plain numbers without point-mass states (a copula links a number to the other
    columns, but not a state category: a children count kept as states lost its 0.46 rank
    correlation with the parent's credit).

    ``threads`` is the task's share of the worker's CPUs (e.g. an Airflow task's pool
    slots) and is used as given; without it, ``SYNTH_CPU_THREADS`` or the worker's measured
    CPU budget (cgroup quota, CPU affinity: not the host's core count) decides. torch and the
    BLAS/OpenMP pools use that many threads for this fit only and are restored afterwards,
    so the next task in the same worker process starts from the settings it had.
    """
    budget = measure_cpu_budget(threads)
    count = training_threads(spec, budget)
    log.info("Training with %d threads (CPU budget: %s)", count, budget.describe())
    with threads_for_training(count):
        return _fit(
            train,
            table,
            spec,
            contract=contract,
            seed=seed,
            fixed_combinations=fixed_combinations,
            kinds=kinds,
            rules_off=rules_off,
            smooth=smooth,
            threads=count,
        )


def training_threads(spec: SynthesizerSpec, budget: CpuBudget) -> int:
    """Threads for training ``spec`` within ``budget``.

    A number a person or the task set is used as given. A measured budget goes through the
    model's measured share (:meth:`SynthesizerSpec.torch_threads`: half the CPUs for the
    neural models, whose small operations train faster on fewer threads than cores); SDV's
    copulas are numpy/scipy work and get the whole budget.
    """
    if budget.explicit or not spec.is_neural:
        return budget.cpus
    return spec.torch_threads(budget.cpus)


def _fit(
    train: pd.DataFrame,
    table: str,
    spec: SynthesizerSpec,
    *,
    contract: TableContract | None,
    seed: int | None,
    fixed_combinations: CombinationSwitch,
    kinds: Mapping[str, str] | None,
    rules_off: Sequence[str],
    smooth: Sequence[str],
    threads: int,
) -> TableModel:
    declared_kinds = {**(contract.kinds if contract else {}), **(kinds or {})}
    profiles = [
        replace(p, point_masses=()) if p.name in smooth else p
        for p in profile_columns(train, declared=declared_kinds or None)
    ]
    codec = ProfileCodec(profiles, train, seed=seed or 0, states=spec.needs_profile_states)
    rules = RuleSet(
        discover_rules(
            train,
            profiles,
            declared=contract.extra.get("rules", []) if contract else (),
            switched_off=[*(contract.extra.get("rules_off", []) if contract else ()), *rules_off],
        ),
        seed=seed or 0,
    )
    for line in rules.summary_lines():
        log.info("%s: %s", table, line)
    metadata = build_metadata(train, table, contract, {p.name: p.sdtype for p in profiles})
    encoded = codec.encode(train)
    model_metadata = build_metadata(encoded, table, contract, codec.sdtypes())
    on, left_out = switch_for(fixed_combinations, table)
    constraints = (
        combination_constraints({table: encoded}, model_metadata, {table: left_out}) if on else []
    )
    fitted, seconds = fit_synthesizer(
        encoded,
        model_metadata,
        spec,
        table,
        seed=seed,
        torch_threads=threads,
        constraints=constraints,
    )
    return TableModel(ProfiledSynthesizer(fitted, codec, rules), profiles, rules, metadata, seconds)
