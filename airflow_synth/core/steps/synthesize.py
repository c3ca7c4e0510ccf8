"""The synthesize step: train, sample, assess, gate and save, over a table set.

A single feature table (``run_synthesize``) and a set of related tables
(``run_multitable_synthesize``) share every part of the step: roles
(:mod:`~airflow_synth.core.profile.roles`), the per-table model
(:func:`~airflow_synth.core.engine.table_model.fit_table_model`), fresh identifiers
(:mod:`~airflow_synth.core.engine.fresh`), the per-table assessment and gates
(:class:`~airflow_synth.core.assessment.SyntheticAssessor`), the public metadata and the model
save. What a set adds on top is what only a set has: the set engine that samples parents
first, referential integrity, children per parent and cross-table rules.

Inputs are paths and plain values; outputs are small JSON-safe dicts made for XCom.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from airflow_synth.core.assess import check_integrity as check_set_integrity
from airflow_synth.core.assess import (
    children_per_parent,
    cross_table_hold_rates,
    discover_cross_table_orderings,
    nullable_relationships,
    parent_child_count_links,
    render_set_report,
)
from airflow_synth.core.assessment import PRIVACY_MIN_ROWS, SyntheticAssessor
from airflow_synth.core.checks import (
    CheckSettings,
    GateVerdict,
    enforce_gates,
)
from airflow_synth.core.checks import verdict as gate_verdict
from airflow_synth.core.combinations import CombinationSwitch
from airflow_synth.core.contract import TableContract
from airflow_synth.core.engine.fresh import FreshColumns, count_leaks, reissue_keys
from airflow_synth.core.engine.set_engine import ENGINE_NAME as PER_TABLE_ENGINE
from airflow_synth.core.engine.set_run import DEFAULT_MAX_TRAINING_ROWS, run_set_engine
from airflow_synth.core.errors import ContractError, DataError, SynthesizerConfigError
from airflow_synth.core.extract.staging import path_from_uri
from airflow_synth.core.frames import conform_to_schema, read_training_frame, to_training_frame
from airflow_synth.core.metadata import public_metadata
from airflow_synth.core.multitable import (
    SYNTHESIZER,
    build_multitable_metadata,
    cardinality_report,
    fit_hma,
    multitable_quality,
    sample_hma,
)
from airflow_synth.core.profile.roles import (
    FOREIGN_KEY,
    KEY,
    MODELLED,
    PII,
    SEQUENCE,
    ColumnRole,
    classify_columns,
    describe_roles,
    fresh_columns,
    modelled_columns,
)
from airflow_synth.core.publish.layout import DatasetLayout, safe_key_part
from airflow_synth.core.publish.store import ObjectStore, json_bytes
from airflow_synth.core.publish.tables import TABLES_DIR, table_of_one
from airflow_synth.core.relations import TableSet, single_column_keys_only
from airflow_synth.core.subset import DEFAULT_MAX_ORPHAN_SHARE, integrity_subset
from airflow_synth.core.synthesize import library_versions, sample_to_parquet
from airflow_synth.core.synthesizers import SynthesizerSpec, resolve_synthesizer

log = logging.getLogger(__name__)

SYNTHETIC_FILE = "synthetic.parquet"
#: Default bound on the main table's training rows (parents), see README "Multi-table ESL".
DEFAULT_MAX_PARENTS = 1_000
HMA_ENGINE = "hma"
#: The multi-table engines: SDV's HMA (small schemas) and each table its own model.
ENGINES = (PER_TABLE_ENGINE, HMA_ENGINE)
#: The per-table engine scales to full size and any schema; HMA stays selectable.
DEFAULT_ENGINE = PER_TABLE_ENGINE
#: Per-table engine's default synthesizer: fast enough for a million child rows on 2 cores.
DEFAULT_SET_SYNTHESIZER = "gaussian_copula"
QUALITY_FILE = "quality.json"
METADATA_FILE = "metadata.json"
REPORTS_DIR = "reports"
_LOOKUP_REASON = (
    "not measurable: every real row is referenced by training rows (a lookup table), so "
    "none could be held out"
)
_PRIVACY_METRICS = ("exact_match_rate", "near_copy_rate", "dcr_share")


def run_synthesize(
    staged_path: Path,
    out_dir: Path,
    *,
    dataset: str,
    spec: SynthesizerSpec,
    num_rows: int | None = None,
    seed: int | None = None,
    contract: TableContract | None = None,
    model_store: ObjectStore | None = None,
    layout: DatasetLayout | None = None,
    checks: CheckSettings | None = None,
    enforce_gates_: bool = True,
) -> dict[str, Any]:
    """Synthesize one feature table: :func:`synthesize_set` over a table set of one.

    With ``enforce_gates_=False`` (dry runs) failed gates are logged, not raised.

    The synthetic Parquet has exactly the staged file's schema. Sampled batches pass the
    privacy filters; the final table gets its fidelity and privacy reports and the gates
    decide: a failed gate raises :class:`QualityGateError` after the reports are written
    and summarised in the log, and before the model is saved, so nothing leaves the run.
    """
    name = safe_key_part(dataset)
    return synthesize_set(
        {name: Path(staged_path)},
        table_of_one(name, Path(staged_path)),
        out_dir,
        dataset=dataset,
        specs={name: spec},
        sizes={name: int(num_rows)} if num_rows else None,
        seed=seed,
        contracts={name: contract} if contract is not None else {},
        model_store=model_store,
        layout=layout,
        checks=checks,
        enforce_gates_=enforce_gates_,
        max_training_rows=None,
        as_table=True,
    )


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


def save_model(
    store: ObjectStore,
    layout: DatasetLayout,
    synthesizer: Any,
    work_dir: Path,
    synthesizer_info: Mapping[str, Any],
    seed: int | None,
    versions: Mapping[str, str],
) -> str:
    """Upload the fitted synthesizer and a small JSON describing how to load it."""
    local = Path(work_dir) / "model.pkl"
    synthesizer.save(str(local))
    try:
        store.put_file(local, layout.model_key)
    finally:
        local.unlink(missing_ok=True)
    info = {
        "dataset": layout.dataset,
        "run": layout.run,
        "synthesizer": dict(synthesizer_info),
        "seed": seed,
        "versions": dict(versions),
        "load_with": "airflow_synth.core.engine.profile_codec.load_model(path)",
        "columns": "the modelled columns only: keys and PII are issued fresh by the pipeline",
    }
    store.put_bytes(json_bytes(info), layout.model_info_key)
    log.info("Saved model to %s", layout.uri(layout.model_key))
    return layout.uri(layout.model_key)


def _read_tables(paths: Mapping[str, Path]) -> dict[str, pd.DataFrame]:
    return {name: to_training_frame(pq.read_table(path)) for name, path in paths.items()}


def run_multitable_synthesize(
    extracted: Mapping[str, Any],
    out_dir: Path,
    *,
    dataset: str,
    seed: int | None = None,
    max_parents: int | None = DEFAULT_MAX_PARENTS,
    scale: float = 1.0,
    main_table: str | None = None,
    max_orphan_share: float = DEFAULT_MAX_ORPHAN_SHARE,
    fixed_combinations: CombinationSwitch | Mapping[str, CombinationSwitch] = True,
    checks: CheckSettings | None = None,
    model_store: ObjectStore | None = None,
    layout: DatasetLayout | None = None,
    enforce_gates_: bool = True,
    contracts: Mapping[str, TableContract] | None = None,
    engine: str = DEFAULT_ENGINE,
    synthesizer: str | Mapping[str, str] | None = None,
    max_training_rows: int | None = DEFAULT_MAX_TRAINING_ROWS,
) -> dict[str, Any]:
    """Synthesize the extracted table set (the extract step's result): see
    :func:`synthesize_set`.

    ``engine``: ``"per_table"`` (each table its own ``synthesizer``, one name or
    ``{table: name}``, trained on at most ``max_training_rows`` rows per table; ``scale`` x
    the *real* sizes is sampled, see :mod:`airflow_synth.core.engine.set_engine`) or
    ``"hma"`` (SDV's HMA on an integrity-preserving subset of ``max_parents`` main-table
    rows; ``scale`` x the subset is sampled).
    """
    table_set = TableSet.from_dict(extracted["table_set"])
    real_paths = {
        name: path_from_uri(info["staging_uri"]) for name, info in extracted["tables"].items()
    }
    return synthesize_set(
        real_paths,
        table_set,
        out_dir,
        dataset=dataset,
        specs=table_specs(synthesizer, table_set),
        seed=seed,
        scale=scale,
        contracts=contracts,
        model_store=model_store,
        layout=layout,
        checks=checks,
        enforce_gates_=enforce_gates_,
        max_training_rows=max_training_rows,
        engine=engine,
        max_parents=max_parents,
        main_table=main_table,
        max_orphan_share=max_orphan_share,
        fixed_combinations=fixed_combinations,
    )


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


def synthesize_set(
    real_paths: Mapping[str, Path],
    table_set: TableSet,
    out_dir: Path,
    *,
    dataset: str,
    specs: Mapping[str, SynthesizerSpec],
    seed: int | None = None,
    scale: float = 1.0,
    sizes: Mapping[str, int] | None = None,
    contracts: Mapping[str, TableContract] | None = None,
    model_store: ObjectStore | None = None,
    layout: DatasetLayout | None = None,
    checks: CheckSettings | None = None,
    enforce_gates_: bool = True,
    max_training_rows: int | None = DEFAULT_MAX_TRAINING_ROWS,
    engine: str = DEFAULT_ENGINE,
    max_parents: int | None = DEFAULT_MAX_PARENTS,
    main_table: str | None = None,
    max_orphan_share: float = DEFAULT_MAX_ORPHAN_SHARE,
    fixed_combinations: CombinationSwitch | Mapping[str, CombinationSwitch] = True,
    as_table: bool = False,
) -> dict[str, Any]:
    """The synthesize step for a table set (a single feature table is a set of one).

    ``as_table`` (a set of one table without relationships only) lays the outputs out as
    a single feature table's (``synthetic.parquet`` and the reports in ``out_dir``) and
    returns the single-table result; otherwise every table gets ``tables/<name>.parquet``
    and ``reports/<name>/``, with the set's own report and ``quality.json`` beside them.

    Every column gets a role first (``contracts`` per table may declare them): keys and
    PII never reach a model and are issued fresh (no published key or PII value equals a
    real one; each table's ``pii_leak`` gate checks it). Each table is then fitted on its
    training rows (``max_training_rows`` at most), a holdout kept aside to measure privacy.

    Sampling: a table without relationships is sampled in batches through the privacy
    filters, each removed row replaced by a row of its stratum, ``sizes[name]`` rows
    (default real rows x ``scale``). Related tables are sampled parents first by the set
    engine (or HMA); of the filters only the similarity filter applies to them, on leaf
    tables (dropping a parent would orphan its children), without replacement.

    Assessment: every table gets its fidelity and privacy reports and the single-table
    gates; a set adds referential integrity (must be 1.0), children per parent, parent
    attribute <-> child count links and cross-table rules, and its quality gate is the
    mean of the tables' scores. A failed gate raises :class:`QualityGateError` after the
    reports are written and before the model is saved, so nothing leaves the run.
    """
    checks = checks or CheckSettings()
    out_dir = Path(out_dir)
    if engine not in ENGINES:
        raise SynthesizerConfigError(f"engine must be one of {ENGINES}, got {engine!r}.")
    one = as_table
    if one and (len(table_set.order) != 1 or table_set.relationships):
        raise ValueError("as_table needs a set of exactly one table without relationships")
    related_checks = replace(checks, outlier_filter=False)
    if engine == PER_TABLE_ENGINE:
        trained = _fit_per_table(
            real_paths,
            table_set,
            specs,
            dataset=dataset,
            seed=seed,
            scale=scale,
            checks=checks,
            contracts=contracts or {},
            max_training_rows=max_training_rows,
            fixed_combinations=fixed_combinations,
            max_orphan_share=max_orphan_share,
            require_model=len(table_set.order) == 1,
        )
    else:
        trained = _fit_hma(
            real_paths,
            table_set,
            out_dir,
            seed=seed,
            scale=scale,
            checks=related_checks,
            contracts=contracts or {},
            max_parents=max_parents,
            main_table=main_table,
            max_orphan_share=max_orphan_share,
            fixed_combinations=fixed_combinations,
        )
    roles = trained.roles
    real_fresh = {  # every real value of the fresh columns, from the whole staged table
        name: pq.read_table(
            real_paths[name], columns=[r.name for r in fresh_columns(roles[name])]
        ).to_pandas()
        for name in table_set.order
    }
    tables_dir = out_dir if one else out_dir / TABLES_DIR
    tables_dir.mkdir(parents=True, exist_ok=True)
    assessors = {  # a table of keys and PII only has nothing to assess but its keys
        name: SyntheticAssessor(
            trained.train[name],
            trained.holdout[name],
            trained.metadata_of(name),
            name,
            checks if name in trained.standalone else related_checks,
            seed=seed or 0,
        )
        for name in table_set.order
        if trained.train[name].shape[1] and len(trained.train[name])
    }
    table_files: dict[str, str] = {}
    for name in trained.standalone:  # no relationship: filtered batches, like one table
        path = tables_dir / (SYNTHETIC_FILE if one else f"{name}.parquet")
        real_rows = pq.ParquetFile(real_paths[name]).metadata.num_rows
        wanted = (sizes or {}).get(name) or round(real_rows * scale)
        started = time.monotonic()
        rows = _sample_standalone(
            trained.table_models[name],
            assessors[name],
            real_paths[name],
            roles[name],
            path,
            name,
            int(wanted),
            checks.max_filtered_share,
            seed,
        )
        trained.sample_seconds += time.monotonic() - started
        trained.split.setdefault("tables", {}).setdefault(name, {})["synthetic_rows"] = rows
        table_files[name] = str(path)
    sampled = trained.sampled
    if engine == PER_TABLE_ENGINE:  # keys are fresh already; PII comes from its pools
        sampled = issue_fresh_pii(sampled, real_fresh, roles, table_set, seed or 0)
    else:
        sampled = issue_fresh_values(sampled, real_fresh, roles, table_set, seed or 0)
    for name, frame in sampled.items():
        if name in assessors:
            assessors[name].observe(frame)  # privacy is judged on the raw sample
        if name in assessors and _filter_copies(assessors[name], table_set, name, checks):
            # a leaf row that copies a training row can go without orphaning anything
            frame = assessors[name].row_filter(frame)
            if engine == PER_TABLE_ENGINE:  # a dropped line leaves no gap in its numbers
                frame = renumber_sequences(frame, trained.model.plans[name])
        path = tables_dir / f"{name}.parquet"
        schema = pq.read_schema(real_paths[name])
        pq.write_table(conform_to_schema(frame, schema), path, compression="zstd")
        table_files[name] = str(path)
    del sampled
    synthetic: dict[str, pd.DataFrame] = {}  # what each table's assessor judges
    keyed: dict[str, pd.DataFrame] = {}  # keys and modelled columns: integrity, cardinality
    leaks: dict[str, dict[str, int]] = {}
    for name in table_set.order:
        published = to_training_frame(pq.read_table(table_files[name]))
        leaks[name] = count_leaks(published, real_fresh[name], list(real_fresh[name].columns))
        keyed[name] = published[trained.learned[name]]
        synthetic[name] = published[list(trained.train[name].columns)]
    del real_fresh
    finish = _finish_table if one else _finish_set
    return finish(
        trained,
        assessors,
        synthetic,
        keyed,
        leaks,
        table_files,
        table_set,
        out_dir,
        dataset=dataset,
        seed=seed,
        scale=scale,
        checks=checks,
        layout=layout,
        model_store=model_store,
        enforce_gates_=enforce_gates_,
        max_parents=max_parents if engine == HMA_ENGINE else None,
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
    """Each table its own model (the set engine); related tables sampled parents first."""
    full = _read_tables(real_paths)
    roles = classify_set(full, table_set, contracts)
    if require_model:  # a single table of keys and PII only has nothing to learn
        require_modelled(roles[table_set.order[0]], dataset)
    learned = {name: learned_columns(roles[name]) for name in table_set.order}
    standalone = [
        name
        for name in table_set.order
        if not table_set.parents_of(name) and not table_set.children_of(name)
    ]
    run = run_set_engine(
        {name: full[name][learned[name]] for name in table_set.order},
        table_set,
        roles,
        specs,
        seed=seed,
        scale=scale,
        holdout_share=checks.holdout_share,
        max_training_rows=max_training_rows,
        contracts=contracts,
        fixed_combinations=fixed_combinations,
        max_orphan_share=max_orphan_share,
        standalone=standalone,
    )
    real_keyed = {name: full[name][learned[name]] for name in table_set.order}
    del full
    plans = run.synthesizer.plans
    return _Trained(
        train=run.train,
        holdout=run.holdout,
        sampled=run.sampled,
        real_keyed=real_keyed,
        roles={name: sequence_roles(roles[name], plans[name]) for name in roles},
        learned=learned,
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


def _sample_standalone(
    fitted: Any,
    assessor: SyntheticAssessor,
    real_path: Path,
    roles: Sequence[ColumnRole],
    path: Path,
    name: str,
    wanted: int,
    max_filtered_share: float,
    seed: int | None,
) -> int:
    """Sample a table without relationships in filtered batches into ``path``.

    Rows the privacy filters remove are replaced by rows of their stratum, keys and PII
    are issued fresh per batch, and privacy is judged on at least
    :data:`PRIVACY_MIN_ROWS` raw rows (extra ones are drawn, not published).
    """
    frame, schema = read_training_frame(real_path)
    fresh = FreshColumns(frame, roles, seed=seed or 0)
    columns = list(frame.columns)
    del frame
    assessor.expect(max(wanted, PRIVACY_MIN_ROWS))
    rows, _ = sample_to_parquet(
        fitted.synthesizer,
        wanted,
        schema,
        path,
        name,
        screen=assessor.screen if assessor.filtering else None,
        strata=assessor.strata,
        replacements=assessor.replacements,
        max_filtered_share=max_filtered_share,
        observe=assessor.observe,
        complete=lambda batch: fresh.complete(batch, columns),
    )
    extra = assessor.top_up(lambda n: fitted.synthesizer.sample(num_rows=n)[name])
    if extra:
        log.info("%s: privacy judged on %d more sampled rows (not published)", name, extra)
    return rows


def _finish_table(
    trained: _Trained,
    assessors: Mapping[str, SyntheticAssessor],
    synthetic: Mapping[str, pd.DataFrame],
    keyed: Mapping[str, pd.DataFrame],
    leaks: Mapping[str, dict[str, int]],
    table_files: Mapping[str, str],
    table_set: TableSet,
    out_dir: Path,
    *,
    dataset: str,
    seed: int | None,
    scale: float,
    checks: CheckSettings,
    layout: DatasetLayout | None,
    model_store: ObjectStore | None,
    enforce_gates_: bool,
    max_parents: int | None,
) -> dict[str, Any]:
    """Reports, gates and model of a set of one: the single feature table's result."""
    name = table_set.order[0]
    fitted = trained.table_models[name]
    spec = trained.model.specs[name]
    assessor = assessors[name]
    roles = trained.roles[name]
    rows = len(synthetic[name])
    settings = {
        "dataset": dataset,
        "run": layout.run if layout is not None else None,
        "synthesizer": spec.describe(),
        "seed": seed,
        "rows": rows,
        "training_rows": len(trained.train[name]),
        "holdout_rows": len(trained.holdout[name]),
    }
    assessment = assessor.assess(
        synthetic[name],
        out_dir,
        settings,
        title=f"{dataset}: synthetic copy",
        fresh_leaks=leaks[name],
        roles=[r.to_dict() for r in roles],
        rules=fitted.rules,
    )
    for line in assessment.summary_lines():
        log.info(line)
    metadata_path = out_dir / METADATA_FILE
    metadata_path.write_bytes(json_bytes(public_metadata(fitted.metadata, roles, fitted.profiles)))
    if enforce_gates_:
        enforce_gates(
            assessment.gates,
            where=f"Dataset {dataset!r}",
            reports={**assessment.files, METADATA_FILE: metadata_path},
        )
    elif not assessment.passed:
        log.warning("DRY RUN: a real run would stop here: %s", assessment.summary_lines()[-1])
    versions = library_versions()
    model_uri = None
    if model_store is not None and layout is not None:
        model_uri = save_model(
            model_store, layout, fitted.synthesizer, out_dir, spec.describe(), seed, versions
        )
    return {
        "synthetic_uri": Path(table_files[name]).resolve().as_uri(),
        "metadata_uri": metadata_path.resolve().as_uri(),
        "report_uris": {n: path.resolve().as_uri() for n, path in assessment.files.items()},
        "rows": rows,
        "training_rows": len(trained.train[name]),
        "holdout_rows": len(trained.holdout[name]),
        "fit_seconds": round(trained.fit_seconds, 3),
        "sample_seconds": round(trained.sample_seconds, 3),
        "checks_seconds": round(assessment.seconds, 3),
        "synthesizer": spec.describe(),
        "seed": seed,
        "model_uri": model_uri,
        "scores": assessment.scores(),
        "filters": assessment.filters,
        "gates": [g.to_dict() for g in assessment.gates],
        "checks": checks.to_dict(),
        "versions": versions,
    }


def _finish_set(
    trained: _Trained,
    assessors: Mapping[str, SyntheticAssessor],
    synthetic: Mapping[str, pd.DataFrame],
    keyed: Mapping[str, pd.DataFrame],
    leaks: Mapping[str, dict[str, int]],
    table_files: Mapping[str, str],
    table_set: TableSet,
    out_dir: Path,
    *,
    dataset: str,
    seed: int | None,
    scale: float,
    checks: CheckSettings,
    layout: DatasetLayout | None,
    model_store: ObjectStore | None,
    enforce_gates_: bool,
    max_parents: int | None,
) -> dict[str, Any]:
    """Per-table reports plus what only a set has; set-level gates, metadata and model."""
    real_keyed, train, holdout = trained.real_keyed, trained.train, trained.holdout
    started = time.monotonic()
    integrity = check_set_integrity(
        keyed, table_set, nullable_foreign_keys=nullable_relationships(real_keyed, table_set)
    )
    if trained.metadata is not None:  # HMA: SDV's multi-table quality report
        quality = multitable_quality(train, synthetic, trained.metadata)
    else:  # per table: the mean of the tables' own quality scores (filled in below)
        quality = {"score": None, "properties": {}}
    quality["cardinality"] = cardinality_report(real_keyed, keyed, table_set)
    quality["children_per_parent"] = children_per_parent(real_keyed, keyed, table_set)
    settings = {
        "dataset": dataset,
        "run": layout.run if layout is not None else None,
        "synthesizer": trained.description["name"],
        "seed": seed,
        "scale": scale,
        "max_parents": max_parents,
        "subset": trained.split,
    }
    per_table: dict[str, Any] = {}
    report_files: dict[str, str] = {}
    gates = [
        GateVerdict("referential_integrity", integrity["score"], 1.0, "min", integrity["passed"]),
    ]
    for name in table_set.order:
        if name not in assessors:
            log.info("%s: no modelled rows (keys and PII only, or empty): nothing to assess", name)
            per_table[name] = {"rows": len(keyed[name]), "training_rows": 0, "scores": {}}
            continue
        folder = out_dir / REPORTS_DIR / name
        folder.mkdir(parents=True, exist_ok=True)
        fitted = trained.table_models.get(name)
        assessment = assessors[name].assess(
            synthetic[name],
            folder,
            {**settings, "table": name},
            title=f"{dataset}: {name}",
            fresh_leaks=leaks[name],
            roles=[r.to_dict() for r in trained.roles[name]],
            rules=fitted.rules if name in trained.standalone else None,
        )
        unmeasured = (
            assessment.privacy is None
            and name != trained.main_table
            and checks.holdout_share > 0
            and len(holdout[name]) == 0
            and name not in trained.standalone
        )
        for verdict in assessment.gates:
            if verdict.metric == "quality_score":
                continue  # the set-level multi-table score is the quality gate
            if unmeasured and verdict.metric in _PRIVACY_METRICS:
                # a lookup table: no row can be held out, whatever the settings; listed as
                # waived with the reason (a main table without holdout fails closed)
                verdict = replace(verdict, passed=True, waived=True, reason=_LOOKUP_REASON)
                log.info("%s: %s", name, verdict.describe())
            gates.append(replace(verdict, metric=f"{name}.{verdict.metric}"))
        per_table[name] = {
            "rows": len(synthetic[name]),
            "training_rows": len(train[name]),
            "holdout_rows": len(holdout[name]),
            "scores": assessment.scores(),
        }
        for file_name, path in assessment.files.items():
            report_files[f"{REPORTS_DIR}/{name}/{file_name}"] = str(path)
    if trained.metadata is None:
        scores = [t["scores"].get("quality_score") for t in per_table.values() if t["scores"]]
        known = [score for score in scores if score is not None]
        quality["score"] = round(sum(known) / len(known), 6) if len(known) == len(scores) else None
    gates.insert(  # listed even when waived (min_quality None), so reports show it
        1,
        gate_verdict(
            "quality_score",
            quality["score"],
            checks.min_quality,
            "min",
            missing="no quality score for every table of the set",
        ),
    )
    quality["links"] = parent_child_count_links(real_keyed, keyed, table_set)
    orderings = discover_cross_table_orderings(real_keyed, table_set)
    quality["cross_table_rules"] = cross_table_hold_rates(orderings, keyed, table_set)
    set_report = out_dir / REPORTS_DIR / "report.html"
    set_report.parent.mkdir(parents=True, exist_ok=True)
    set_report.write_text(
        render_set_report(
            title=f"{dataset}: synthetic table set",
            integrity=integrity,
            children=quality["children_per_parent"],
            links=quality["links"],
            orderings=quality["cross_table_rules"],
            settings={k: v for k, v in settings.items() if k != "subset"},
            table_reports={name: f"{name}/report.html" for name in table_set.order},
        ),
        encoding="utf-8",
    )
    report_files[f"{REPORTS_DIR}/report.html"] = str(set_report)
    checks_seconds = time.monotonic() - started
    gate_dicts = [g.to_dict() for g in gates]
    quality_path = out_dir / QUALITY_FILE
    quality_path.write_bytes(
        json_bytes({**quality, "integrity": integrity, "tables": per_table, "gates": gate_dicts})
    )
    metadata_path = out_dir / METADATA_FILE
    if trained.metadata is not None:
        public = public_metadata(trained.metadata)
    else:
        public = {
            "tables": {
                name: public_metadata(trained.metadata_of(name))["tables"][name]
                if trained.metadata_of(name) is not None
                else {"columns": {}}
                for name in table_set.order
            },
            "relationships": [r.to_dict() for r in table_set.relationships],
        }
    public["columns_roles"] = {
        name: [r.to_dict() for r in table_roles] for name, table_roles in trained.roles.items()
    }
    metadata_path.write_bytes(json_bytes(public))
    for line in summary_lines(quality, integrity, per_table, gates):
        log.info(line)
    if enforce_gates_:
        enforce_gates(
            gates,
            where=f"Multi-table dataset {dataset!r}",
            reports={
                QUALITY_FILE: quality_path,
                METADATA_FILE: metadata_path,
                **{name: Path(path) for name, path in report_files.items()},
            },
        )
    versions = library_versions()
    model_uri = None
    if model_store is not None and layout is not None:
        model_uri = save_model(
            model_store, layout, trained.model, out_dir, trained.description, seed, versions
        )
    return {
        "table_files": dict(table_files),
        "metadata_uri": metadata_path.resolve().as_uri(),
        "quality_uri": quality_path.resolve().as_uri(),
        "report_files": report_files,
        "table_set": table_set.to_dict(),
        "rows": {name: len(frame) for name, frame in keyed.items()},
        "subset": trained.split,
        "synthesizer": trained.description,
        "seed": seed,
        "scale": scale,
        "fit_seconds": round(trained.fit_seconds, 3),
        "sample_seconds": round(trained.sample_seconds, 3),
        "checks_seconds": round(checks_seconds, 3),
        "integrity": {"score": integrity["score"], "passed": integrity["passed"]},
        "scores": {
            "quality_score": quality["score"],
            **{k: v for k, v in quality["properties"].items()},
            "tables": {name: t["scores"] for name, t in per_table.items()},
        },
        "gates": gate_dicts,
        "checks": checks.to_dict(),
        "model_uri": model_uri,
        "versions": versions,
    }


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


def summary_lines(
    quality: Mapping[str, Any],
    integrity: Mapping[str, Any],
    per_table: Mapping[str, Any],
    gates: Sequence[GateVerdict],
) -> list[str]:
    """What the task log says about a multi-table run, a few lines a person can read."""
    props = ", ".join(f"{k} {v:.3f}" for k, v in quality["properties"].items() if v is not None)
    lines = [
        f"Multi-table quality {quality['score']:.3f} ({props})"
        if quality["score"] is not None
        else "Multi-table quality n/a",
        f"Referential integrity {integrity['score']:.4f} over "
        f"{len(integrity['relationships'])} relationship(s); primary keys "
        + ("unique" if integrity["passed"] else "NOT unique or NULL"),
    ]
    for name, info in per_table.items():
        scores = info["scores"]
        dependence = _fmt(scores.get("dependence_preservation"))
        exact, dcr = _fmt(scores.get("exact_match_rate")), _fmt(scores.get("dcr_share"))
        lines.append(
            f"  {name}: {info['rows']:,} rows; dependence {dependence}, exact-match {exact}, "
            f"DCR share {dcr}"
        )
    lines.extend(g.describe() for g in gates)
    failed = [g.metric for g in gates if not g.passed]
    lines.append("Gates: all passed" if not failed else f"Gates FAILED: {', '.join(failed)}")
    return lines


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"
