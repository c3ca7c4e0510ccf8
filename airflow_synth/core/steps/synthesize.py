"""The synthesize step: train, sample, assess, gate and save, over a table set.

A single feature table (``run_synthesize``) and a set of related tables
(``run_multitable_synthesize``) share every part of the step: roles
(:mod:`~airflow_synth.core.profile.roles`), the per-table model
(:func:`~airflow_synth.core.engine.table_model.fit_table_model`), fresh identifiers
(:mod:`~airflow_synth.core.engine.fresh`), the per-table assessment and gates
(:class:`~airflow_synth.core.assess.assessment.SyntheticAssessor`), the public metadata
and the model save. What a set adds on top is what only a set has: the set engine that
samples parents first, referential integrity, children per parent and cross-table rules.

Inputs are paths and plain values; outputs are small JSON-safe dicts made for XCom.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from airflow_synth.core.assess.assessment import SyntheticAssessor
from airflow_synth.core.assess.checks import (
    CheckSettings,
)
from airflow_synth.core.assess.limits import gates_reported_only
from airflow_synth.core.contract import TableContract
from airflow_synth.core.engine.combinations import CombinationSwitch
from airflow_synth.core.engine.fresh import count_leaks
from airflow_synth.core.engine.reuse import ReusePlan
from airflow_synth.core.engine.set_engine import ENGINE_NAME as PER_TABLE_ENGINE
from airflow_synth.core.engine.set_run import DEFAULT_MAX_TRAINING_ROWS
from airflow_synth.core.engine.subset import DEFAULT_MAX_ORPHAN_SHARE
from airflow_synth.core.engine.synthesizers import SynthesizerSpec
from airflow_synth.core.errors import SynthesizerConfigError
from airflow_synth.core.extract.staging import path_from_uri
from airflow_synth.core.frames import conform_to_schema, to_training_frame
from airflow_synth.core.profile.roles import (
    fresh_columns,
)
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.core.publish.tables import TABLES_DIR
from airflow_synth.core.relations import TableSet
from airflow_synth.core.steps.finish import (
    _finish_set,
    _Run,
    _Sampled,
)
from airflow_synth.core.steps.fit import (
    HMA_ENGINE,
    PerTablePrepared,
    _filter_copies,
    _fit_hma,
    _fit_per_table,
    _Trained,
    fit_prepared_table,
    issue_fresh_pii,
    issue_fresh_values,
    prepare_per_table,
    renumber_sequences,
    table_specs,
    trained_per_table,
)
from airflow_synth.core.steps.sharded import (
    finish_shards,
    sample_all_shards,
    table_fit,
    train_table,
)

log = logging.getLogger(__name__)

#: Default bound on the main table's training rows (parents), see README "Multi-table ESL".
DEFAULT_MAX_PARENTS = 1_000
#: The multi-table engines: SDV's HMA (small schemas) and each table its own model.
ENGINES = (PER_TABLE_ENGINE, HMA_ENGINE)
#: The per-table engine scales to full size and any schema; HMA stays selectable.
DEFAULT_ENGINE = PER_TABLE_ENGINE


def run_synthesize(
    staged_path: Path,
    out_dir: Path,
    *,
    dataset: str,
    spec: SynthesizerSpec,
    num_rows: int | None = None,
    seed: int | None = None,
    contract: TableContract | None = None,
    save_model: bool = False,
    layout: DatasetLayout | None = None,
    checks: CheckSettings | None = None,
    enforce_gates_: bool = True,
    max_training_rows: int | None = DEFAULT_MAX_TRAINING_ROWS,
    shards: int | None = None,
    reuse: ReusePlan | None = None,
) -> dict[str, Any]:
    """Synthesize one feature table in this process: train, sample every shard, assess.

    The three parts of :mod:`airflow_synth.core.steps.sharded` one after the other (the
    ready-made DAGs run them as three tasks, the shards mapped over workers); the same
    seed and shard count give the same rows either way. The model is the per-table
    engine's over a table set of one. A table bigger than ``max_training_rows`` (outside
    the holdout) is trained on a seeded random sample of that many rows (``None``: all);
    ``num_rows`` (default: as many as extracted) are sampled all the same, in ``shards``
    part files (default: one per million rows).

    With ``enforce_gates_=False`` (dry runs) failed gates are logged, not raised.

    The synthetic Parquet has exactly the staged file's schema. Sampled batches pass the
    privacy filters; the union of the shards gets its fidelity and privacy reports and the
    gates decide: a failed gate raises :class:`QualityGateError` after the reports are
    written and summarised in the log, and before the model is saved, so nothing leaves
    the run.
    """
    checks = checks or CheckSettings()
    with gates_reported_only(not enforce_gates_):  # a table too small: logged, not refused
        fit = train_table(
            staged_path,
            dataset=dataset,
            spec=spec,
            num_rows=num_rows,
            seed=seed,
            contract=contract,
            checks=checks,
            max_training_rows=max_training_rows,
            shards=shards,
            reuse=reuse,  # the earlier model, when it may be reused (see train_table)
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    judge = fit.assessor()
    samples = sample_all_shards(fit, Path(staged_path), out_dir, judge)
    return finish_shards(
        fit,
        Path(staged_path),
        samples,
        out_dir,
        _Run(
            dataset=dataset,
            seed=seed,
            scale=1.0,
            checks=checks,
            layout=layout,
            save_model=save_model,
            enforce_gates_=enforce_gates_,
            max_parents=None,
        ),
    )


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
    save_model: bool = False,
    layout: DatasetLayout | None = None,
    enforce_gates_: bool = True,
    contracts: Mapping[str, TableContract] | None = None,
    engine: str = DEFAULT_ENGINE,
    synthesizer: str | Mapping[str, str] | None = None,
    max_training_rows: int | None = DEFAULT_MAX_TRAINING_ROWS,
    prepared: PerTablePrepared | None = None,
    models: Mapping[str, Any] | None = None,
    fit_seconds: float = 0.0,
) -> dict[str, Any]:
    """Synthesize the extracted table set (the extract step's result): see
    :func:`synthesize_set`.

    ``prepared`` (:func:`prepare_multitable`) and ``models`` (each table's
    :func:`fit_multitable_table`, e.g. from mapped fit tasks, ``fit_seconds`` in all): the
    per-table engine's tables were fitted already; only sampling and assessing run here.

    ``engine``: ``"per_table"`` (each table its own ``synthesizer``, one name or
    ``{table: name}``, trained on at most ``max_training_rows`` rows per table; ``scale`` x
    the *real* sizes is sampled, see :mod:`airflow_synth.core.engine.set_engine`) or
    ``"hma"`` (SDV's HMA on an integrity-preserving subset of ``max_parents`` main-table
    rows; ``scale`` x the subset is sampled).
    """
    table_set = TableSet.from_dict(extracted["table_set"])
    real_paths = staged_tables(extracted)
    trained = None
    if prepared is not None and models is not None:
        if engine != PER_TABLE_ENGINE:
            raise SynthesizerConfigError(
                f"Tables fitted one by one are the {PER_TABLE_ENGINE!r} engine's; got "
                f"engine {engine!r}."
            )
        trained = trained_per_table(
            prepared,
            prepared.real(real_paths),
            models,
            seed=seed,
            scale=scale,
            fit_seconds=fit_seconds,
        )
    return synthesize_set(
        real_paths,
        table_set,
        out_dir,
        dataset=dataset,
        specs=table_specs(synthesizer, table_set),
        seed=seed,
        scale=scale,
        contracts=contracts,
        save_model=save_model,
        layout=layout,
        checks=checks,
        enforce_gates_=enforce_gates_,
        max_training_rows=max_training_rows,
        engine=engine,
        max_parents=max_parents,
        main_table=main_table,
        max_orphan_share=max_orphan_share,
        fixed_combinations=fixed_combinations,
        trained=trained,
    )


def staged_tables(extracted: Mapping[str, Any]) -> dict[str, Path]:
    """Each table's staged real Parquet file, from the extract step's result."""
    return {name: path_from_uri(info["staging_uri"]) for name, info in extracted["tables"].items()}


def prepare_multitable(
    extracted: Mapping[str, Any],
    *,
    dataset: str,
    seed: int | None = None,
    checks: CheckSettings | None = None,
    contracts: Mapping[str, TableContract] | None = None,
    synthesizer: str | Mapping[str, str] | None = None,
    max_training_rows: int | None = DEFAULT_MAX_TRAINING_ROWS,
    fixed_combinations: CombinationSwitch | Mapping[str, CombinationSwitch] = True,
    max_orphan_share: float = DEFAULT_MAX_ORPHAN_SHARE,
) -> PerTablePrepared:
    """The per-table engine's preparation of an extracted set (roles, plans, splits, parent
    contexts): what every table's fit needs, before any fit (see :func:`fit_multitable_table`)."""
    table_set = TableSet.from_dict(extracted["table_set"])
    return prepare_per_table(
        staged_tables(extracted),
        table_set,
        table_specs(synthesizer, table_set),
        dataset=dataset,
        seed=seed,
        checks=checks or CheckSettings(),
        contracts=contracts or {},
        max_training_rows=max_training_rows,
        fixed_combinations=fixed_combinations,
        max_orphan_share=max_orphan_share,
        require_model=False,
    )


def fit_multitable_table(
    prepared: PerTablePrepared, extracted: Mapping[str, Any], name: str
) -> tuple[Any, float]:
    """Fit one table of a prepared set from the staged real tables (any task, any worker):
    its model (None: nothing to learn) and the seconds it took."""
    real = prepared.real(staged_tables(extracted))
    return fit_prepared_table(prepared, prepared.frames(real), name)


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
    save_model: bool = False,
    layout: DatasetLayout | None = None,
    checks: CheckSettings | None = None,
    enforce_gates_: bool = True,
    max_training_rows: int | None = DEFAULT_MAX_TRAINING_ROWS,
    engine: str = DEFAULT_ENGINE,
    max_parents: int | None = DEFAULT_MAX_PARENTS,
    main_table: str | None = None,
    max_orphan_share: float = DEFAULT_MAX_ORPHAN_SHARE,
    fixed_combinations: CombinationSwitch | Mapping[str, CombinationSwitch] = True,
    trained: _Trained | None = None,
) -> dict[str, Any]:
    """The synthesize step for a table set (a single feature table is a set of one).

    ``trained``: the set fitted already (the per-table engine's tables fitted in tasks of
    their own, see :func:`trained_per_table`): only sampling and assessing run here.

    Every table gets ``tables/<name>.parquet`` and ``reports/<name>/``, with the set's own
    report and ``quality.json`` beside them (a single feature table is synthesized by
    :func:`run_synthesize`, over the same engine, sampler and assessment).

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
    related_checks = replace(checks, outlier_filter=False)
    shared: dict[str, Any] = {  # what both engines are told
        "seed": seed,
        "scale": scale,
        "contracts": contracts or {},
        "max_orphan_share": max_orphan_share,
        "fixed_combinations": fixed_combinations,
    }
    if trained is not None:
        pass  # fitted elsewhere (mapped fit tasks)
    elif engine == PER_TABLE_ENGINE:
        with gates_reported_only(not enforce_gates_):  # tables too small: logged, not refused
            trained = _fit_per_table(
                real_paths,
                table_set,
                specs,
                dataset=dataset,
                checks=checks,
                max_training_rows=max_training_rows,
                require_model=False,
                **shared,
            )
    else:
        trained = _fit_hma(
            real_paths,
            table_set,
            out_dir,
            checks=related_checks,
            max_parents=max_parents,
            main_table=main_table,
            **shared,
        )
    roles = trained.roles
    real_fresh = {  # every real value of the fresh columns, from the whole staged table
        name: pq.read_table(
            real_paths[name], columns=[r.name for r in fresh_columns(roles[name])]
        ).to_pandas()
        for name in table_set.order
    }
    tables_dir = out_dir / TABLES_DIR
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
        real_rows = pq.ParquetFile(real_paths[name]).metadata.num_rows
        wanted = (sizes or {}).get(name) or round(real_rows * scale)
        fit = table_fit(trained, name, dataset, checks, seed, int(wanted), shards=1)
        samples = sample_all_shards(
            fit, real_paths[name], tables_dir, assessors[name], file_name=f"{name}.parquet"
        )
        assessors[name].absorb([s.state for s in samples])
        trained.sample_seconds += sum(s.seconds for s in samples)
        rows = sum(s.rows for s in samples)
        trained.split.setdefault("tables", {}).setdefault(name, {})["synthetic_rows"] = rows
        table_files[name] = str(samples[0].path)
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
    return _finish_set(
        trained,
        _Sampled(assessors, synthetic, keyed, leaks, table_files, table_set, out_dir),
        _Run(
            dataset=dataset,
            seed=seed,
            scale=scale,
            checks=checks,
            layout=layout,
            save_model=save_model,
            enforce_gates_=enforce_gates_,
            max_parents=max_parents if engine == HMA_ENGINE else None,
        ),
    )
