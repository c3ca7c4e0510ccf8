"""SDV's HMA as a set engine: metadata for a table set, fit and sample.

HMA (hierarchical modelling) learns each table together with, for every parent row, the
distribution of its children; sampling then creates parents first and children for each
synthetic parent, so every foreign key points at a synthetic parent *by construction*
(the assess room still checks it). Selectable for small schemas (``engine="hma"``); the
per-table engine (:mod:`.set_engine`) is the default. No Airflow import.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd
from sdv.metadata import Metadata

from airflow_synth.core.contract import TableContract
from airflow_synth.core.engine.combinations import (
    CombinationSwitch,
    combination_constraints,
    switch_for,
)
from airflow_synth.core.engine.metadata import apply_contract_column
from airflow_synth.core.engine.sampling import heartbeat, quiet_model_logs, seed_everything
from airflow_synth.core.errors import ContractError
from airflow_synth.core.redact import library_errors, redacted_names, scrub_message
from airflow_synth.core.relations import TableSet

log = logging.getLogger(__name__)

SYNTHESIZER = "hma"


def build_multitable_metadata(
    frames: Mapping[str, pd.DataFrame],
    table_set: TableSet,
    contracts: Mapping[str, TableContract] | None = None,
) -> Metadata:
    """SDV metadata of the set: detected column types, *our* keys and relationships.

    ``frames`` hold the keys and the modelled columns only (PII is classified beforehand
    and generated fresh, see :mod:`airflow_synth.core.profile.roles`). SDV guesses
    relationships from column names; the set's relationships (catalog + declaration) are
    the truth, so the guessed ones are replaced. ``contracts`` (per table) override the
    detected sdtypes of the modelled columns.
    """
    with library_errors("Detecting the multi-table metadata", redacted_names(dict(frames))):
        metadata = Metadata.detect_from_dataframes(dict(frames))
    for rel in metadata.to_dict().get("relationships", []):
        metadata.remove_relationship(rel["parent_table_name"], rel["child_table_name"])
    keys = {name: set(shape.primary_key) for name, shape in table_set.tables.items()}
    for rel in table_set.relationships:
        keys[rel.child].update(rel.child_columns)
    try:
        for name in table_set.order:
            spec = metadata.to_dict()["tables"][name]
            current = spec.get("primary_key")
            wanted = table_set.tables[name].primary_key
            if current and (not wanted or current != wanted[0]):
                metadata.remove_primary_key(name)
            for column in sorted(keys[name]):
                if spec["columns"][column].get("sdtype") != "id":
                    metadata.update_column(column, table_name=name, sdtype="id")
            if wanted:
                metadata.set_primary_key(wanted[0], table_name=name)
            contract = (contracts or {}).get(name)
            for column in contract.columns if contract is not None else ():
                if column.name in frames[name].columns and column.name not in keys[name]:
                    apply_contract_column(metadata, name, frames[name], column)
        for rel in table_set.relationships:
            metadata.add_relationship(
                parent_table_name=rel.parent,
                child_table_name=rel.child,
                parent_primary_key=rel.parent_columns[0],
                child_foreign_key=rel.child_columns[0],
            )
        metadata.validate()
    except ContractError:
        raise
    except Exception as exc:  # SDV's InvalidMetadataError lists the problems
        names = redacted_names(dict(frames))
        raise ContractError(
            f"SDV rejected the multi-table metadata: {scrub_message(str(exc), names)}"
        ) from None
    return metadata


def fit_hma(
    frames: Mapping[str, pd.DataFrame],
    metadata: Metadata,
    seed: int | None,
    *,
    fixed_combinations: CombinationSwitch | Mapping[str, CombinationSwitch] = True,
) -> tuple[Any, float]:
    """Fit HMA on the (subset) tables; return the synthesizer and the seconds it took.

    ``fixed_combinations`` adds :func:`combination_constraints` (see there for why).
    """
    from sdv.multi_table import HMASynthesizer

    seed_everything(seed)
    names = redacted_names(dict(frames))  # names a library error may keep
    with library_errors("Creating HMA", names):
        synthesizer = HMASynthesizer(metadata, verbose=False)
    switches = {name: switch_for(fixed_combinations, name) for name in frames}
    kept = {name: frame for name, frame in frames.items() if switches[name][0]}
    if kept:
        left_out = {name: switches[name][1] for name in kept}
        constraints = combination_constraints(kept, metadata, left_out)
        if constraints:
            with library_errors("Adding fixed-combination constraints to HMA", names):
                synthesizer.add_constraints(constraints)
    sizes = ", ".join(f"{name} {len(frame):,}" for name, frame in frames.items())
    log.info("Training HMA on %s rows", sizes)
    started = time.monotonic()
    with (
        heartbeat("training HMA"),
        quiet_model_logs(),
        library_errors(f"Training HMA on tables {', '.join(frames)}", names),
    ):
        synthesizer.fit(dict(frames))
    seconds = time.monotonic() - started
    log.info("Trained HMA in %.1f s", seconds)
    return synthesizer, seconds


def sample_hma(synthesizer: Any, scale: float, seed: int | None) -> tuple[dict[str, Any], float]:
    """Sample ``scale`` times the training set's size (each table), seeded."""
    seed_everything(seed)
    started = time.monotonic()
    names = redacted_names(_metadata_names(synthesizer))  # names a library error may keep
    with (
        heartbeat("sampling HMA"),
        quiet_model_logs(),
        library_errors("Sampling HMA", names),
    ):
        tables = synthesizer.sample_scale(scale=scale)
    seconds = time.monotonic() - started
    sizes = ", ".join(f"{name} {len(frame):,}" for name, frame in tables.items())
    log.info("Sampled %s rows in %.1f s", sizes, seconds)
    return tables, seconds


def _metadata_names(synthesizer: Any) -> list[str]:
    """Table and column names of a fitted synthesizer's metadata ([] if it has none)."""
    try:
        tables = synthesizer.get_metadata().to_dict()["tables"]
    except Exception:  # noqa: BLE001 - names only make error messages friendlier
        return []
    return [*tables, *(column for spec in tables.values() for column in spec["columns"])]
