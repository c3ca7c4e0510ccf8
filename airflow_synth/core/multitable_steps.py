"""The multi-table ESL steps as plain functions: extract, synthesize, publish, load to a DB.

Same contract as :mod:`airflow_synth.core.steps`: paths, plain values and an
:class:`~airflow_synth.core.publish.ObjectStore` in; small JSON-safe dicts (for XCom) out.

- **extract** streams each table (``SELECT *`` of a catalog table, or the table's SQL file)
  to staged Parquet, and reads keys and foreign keys from the database catalog;
- **synthesize** takes an integrity-preserving subset, fits HMA, samples, checks integrity,
  computes the multi-table quality report and the per-table privacy figures, and applies the
  gates before anything leaves the run;
- **publish** uploads every table and report, then one manifest: the set exists for
  consumers only once the manifest does, so they never see some tables without the others;
- **load into Postgres** copies a published set into a target database/schema in one
  transaction (parents first), replacing the previous load.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
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
from airflow_synth.core.assessment import SyntheticAssessor
from airflow_synth.core.checks import CheckSettings, GateVerdict, enforce_gates
from airflow_synth.core.checks import verdict as gate_verdict
from airflow_synth.core.combinations import CombinationSwitch
from airflow_synth.core.contract import TableContract
from airflow_synth.core.engine.fresh import FreshColumns, count_leaks, reissue_keys
from airflow_synth.core.engine.set_engine import ENGINE_NAME as PER_TABLE_ENGINE
from airflow_synth.core.engine.set_run import DEFAULT_MAX_TRAINING_ROWS, run_set_engine
from airflow_synth.core.errors import ContractError, PublishError, SynthesizerConfigError
from airflow_synth.core.extract.sql import read_sql_file, resolve_sql_file, sql_hash
from airflow_synth.core.extract.staging import path_from_uri
from airflow_synth.core.extract.stream import DEFAULT_BATCH_ROWS, stream_query_to_parquet
from airflow_synth.core.frames import conform_to_schema, to_training_frame
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
)
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.core.publish.store import ObjectStore, json_bytes, publish_dataset
from airflow_synth.core.relations import (
    TableSet,
    TableShape,
    build_table_set,
    read_catalog,
    single_column_keys_only,
)
from airflow_synth.core.steps import check_formats, save_model, write_csv
from airflow_synth.core.subset import DEFAULT_MAX_ORPHAN_SHARE, integrity_subset
from airflow_synth.core.synthesize import library_versions
from airflow_synth.core.synthesizers import SynthesizerSpec, resolve_synthesizer

log = logging.getLogger(__name__)

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
TABLES_DIR = "tables"
REPORTS_DIR = "reports"
_LOOKUP_REASON = (
    "not measurable: every real row is referenced by training rows (a lookup table), so "
    "none could be held out"
)
_PRIVACY_METRICS = ("exact_match_rate", "near_copy_rate", "dcr_share")


def run_multitable_extract(
    conn: Any,
    tables: Mapping[str, str | None] | Sequence[str],
    staging_dir: Path,
    *,
    schema: str = "public",
    relationships: Sequence[str | Mapping[str, Any]] = (),
    primary_keys: Mapping[str, str | Sequence[str]] | None = None,
    sql_dirs: Sequence[str | Path] = (),
    batch_rows: int = DEFAULT_BATCH_ROWS,
    engine: str | None = None,
) -> dict[str, Any]:
    """Stage every table of the set as Parquet and describe the set (keys, relationships).

    With ``engine="hma"`` a schema HMA cannot model (composite keys, self-references) is
    refused before any row of a catalog table moves.

    ``tables`` lists table names (read with ``SELECT *`` from ``schema``), or maps names to
    a SQL file (``None`` = the table itself). Keys and foreign keys of catalog tables come
    from the database; ``relationships`` and ``primary_keys`` add or override them (needed
    for SQL-file tables and for schemas without declared constraints).
    """
    wanted = dict.fromkeys(tables) if not isinstance(tables, Mapping) else dict(tables)
    if not wanted:
        raise ValueError("tables is empty: name at least one table of the set")
    direct = [name for name, sql_file in wanted.items() if not sql_file]
    shapes: dict[str, TableShape] = {}
    catalog_relationships = []
    if direct:
        shapes, catalog_relationships = read_catalog(conn, direct, schema)
    if len(direct) == len(wanted):  # all from the catalog: validate before moving any row
        checked = build_table_set(shapes, catalog_relationships, relationships, primary_keys)
        if (engine or DEFAULT_ENGINE) == HMA_ENGINE:
            single_column_keys_only(checked, HMA_ENGINE)
    staged: dict[str, Any] = {}
    real_dir = Path(staging_dir) / "real"
    started = time.monotonic()
    try:
        for name, sql_file in wanted.items():
            if sql_file:
                path = resolve_sql_file(sql_file, sql_dirs)
                query, sql_name = read_sql_file(path), str(path)
            else:
                query = f"SELECT * FROM {quote_identifier(schema)}.{quote_identifier(name)}"
                sql_name = f"{schema}.{name}"
            result = stream_query_to_parquet(
                conn, query, real_dir / f"{name}.parquet", batch_rows=batch_rows, sql_name=sql_name
            )
            if name not in shapes:
                shapes[name] = TableShape(name, tuple(column for column, _ in result.columns))
            staged[name] = {**result.to_xcom(), "source": sql_name, "sql_sha256": sql_hash(query)}
            log.info("Extracted %d rows from %s in %.1f s", result.rows, sql_name, result.seconds)
        table_set = build_table_set(shapes, catalog_relationships, relationships, primary_keys)
    except BaseException:
        shutil.rmtree(real_dir, ignore_errors=True)  # a run that cannot go on keeps no real rows
        raise
    for rel in table_set.relationships:
        log.info("Relationship %s (%s)", rel, rel.source)
    return {
        "staging_dir": str(Path(staging_dir).resolve()),
        "schema": schema,
        "tables": staged,
        "table_set": table_set.to_dict(),
        "rows": sum(t["rows"] for t in staged.values()),
        "seconds": round(time.monotonic() - started, 3),
    }


def quote_identifier(name: str) -> str:
    """A PostgreSQL identifier, quoted (works with psycopg 2 and 3 connections alike)."""
    if not name or "\x00" in name:
        raise ValueError(f"{name!r} is not a valid table or schema name")
    return '"' + name.replace('"', '""') + '"'


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
    """Train the set's model, sample, check, report, gate, save the model.

    ``engine``: ``"hma"`` (SDV's HMA on an integrity-preserving subset of ``max_parents``
    main-table rows; ``scale`` x the subset is sampled) or ``"per_table"`` (each table its
    own ``synthesizer``, one name or ``{table: name}``, trained on at most
    ``max_training_rows`` rows per table; ``scale`` x the *real* sizes is sampled, see
    :mod:`airflow_synth.core.engine.set_engine`).

    Of the single-table row filters only the similarity filter applies, and only to leaf
    tables (no children in the set): a leaf row that copies a training row is dropped (not
    replaced), while removing a parent would orphan its children. The outlier filter is off.
    Every column gets a role first (``contracts`` per table may declare them): PII never
    reaches HMA and is generated fresh, and the keys HMA issues are replaced by fresh ones
    consistently across tables (so no published key or PII value equals a real one; the
    ``pii_leak`` gate of each table checks it).
    Privacy is measured per table against held-out parents and their children; the gates
    are the single-table ones, per table, plus referential integrity (must be 1.0) and the
    multi-table quality score (``min_quality``).
    """
    checks = replace(checks or CheckSettings(), outlier_filter=False)
    out_dir = Path(out_dir)
    table_set = TableSet.from_dict(extracted["table_set"])
    if engine not in ENGINES:
        raise SynthesizerConfigError(f"engine must be one of {ENGINES}, got {engine!r}.")
    real_paths = {
        name: path_from_uri(info["staging_uri"]) for name, info in extracted["tables"].items()
    }
    if engine == PER_TABLE_ENGINE:
        full = _read_tables(real_paths)
        roles = classify_set(full, table_set, contracts or {})
        learned = {name: learned_columns(roles[name]) for name in table_set.order}
        run = run_set_engine(
            {name: full[name][learned[name]] for name in table_set.order},
            table_set,
            roles,
            table_specs(synthesizer, table_set),
            seed=seed,
            scale=scale,
            holdout_share=checks.holdout_share,
            max_training_rows=max_training_rows,
            contracts=contracts,
            fixed_combinations=fixed_combinations,
            max_orphan_share=max_orphan_share,
        )
        train, holdout, sampled = run.train, run.holdout, run.sampled
        real_keyed = {name: full[name][learned[name]] for name in table_set.order}
        del full
        model, fit_seconds, sample_seconds = run.synthesizer, run.fit_seconds, run.sample_seconds
        subset_info, main_table_used = run.split, None
        metadata_of = run.metadata
        metadata = None
        description = {
            "name": PER_TABLE_ENGINE,
            "tables": {n: run.synthesizer.specs[n].describe() for n in table_set.order},
        }
    else:
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
        roles = classify_set(train, table_set, contracts or {})
        learned = {name: learned_columns(roles[name]) for name in table_set.order}
        train = {name: frame[learned[name]] for name, frame in train.items()}
        holdout = {name: frame[learned[name]] for name, frame in holdout.items()}
        real_keyed = train
        metadata = build_multitable_metadata(train, table_set, contracts)
        model, fit_seconds = fit_hma(train, metadata, seed, fixed_combinations=fixed_combinations)
        sampled, sample_seconds = sample_hma(model, scale, seed)
        subset_info, main_table_used = subset.to_dict(), subset.main_table
        description = {"name": SYNTHESIZER, "params": {}, "tables": list(table_set.order)}

        def metadata_of(_: str) -> Any:
            return metadata

    if engine == PER_TABLE_ENGINE:  # per-parent sequences: numbers, not identifiers
        roles = {name: sequence_roles(roles[name], model.plans[name]) for name in roles}
    real_fresh = {  # every real value of the fresh columns, from the whole staged table
        name: pq.read_table(
            real_paths[name], columns=[r.name for r in fresh_columns(roles[name])]
        ).to_pandas()
        for name in table_set.order
    }
    if engine == PER_TABLE_ENGINE:  # keys are fresh already; PII comes from its pools
        sampled = issue_fresh_pii(sampled, real_fresh, roles, table_set, seed or 0)
    else:
        sampled = issue_fresh_values(sampled, real_fresh, roles, table_set, seed or 0)

    tables_dir = out_dir / TABLES_DIR
    tables_dir.mkdir(parents=True, exist_ok=True)
    synthetic: dict[str, pd.DataFrame] = {}  # what each table's assessor judges
    keyed: dict[str, pd.DataFrame] = {}  # keys and modelled columns: integrity, cardinality
    table_files: dict[str, str] = {}
    leaks: dict[str, dict[str, int]] = {}
    assessors = {  # a table of keys and PII only has nothing to assess but its keys
        name: SyntheticAssessor(
            train[name], holdout[name], metadata_of(name), name, checks, seed=seed or 0
        )
        for name in table_set.order
        if train[name].shape[1] and len(train[name])
    }
    for name in table_set.order:
        if name in assessors:
            assessors[name].observe(sampled[name])  # privacy is judged on the raw sample
        if name in assessors and _filter_copies(assessors[name], table_set, name, checks):
            # a leaf row that copies a training row can go without orphaning anything
            sampled[name] = assessors[name].row_filter(sampled[name])
            if engine == PER_TABLE_ENGINE:  # a dropped line leaves no gap in its numbers
                sampled[name] = renumber_sequences(sampled[name], model.plans[name])
        schema = pq.read_schema(real_paths[name])
        path = tables_dir / f"{name}.parquet"
        pq.write_table(conform_to_schema(sampled[name], schema), path, compression="zstd")
        published = to_training_frame(pq.read_table(path))
        leaks[name] = count_leaks(published, real_fresh[name], list(real_fresh[name].columns))
        keyed[name] = published[learned[name]]
        synthetic[name] = published[list(train[name].columns)]
        table_files[name] = str(path)
    del sampled, real_fresh

    started = time.monotonic()
    integrity = check_set_integrity(
        keyed, table_set, nullable_foreign_keys=nullable_relationships(real_keyed, table_set)
    )
    if metadata is not None:  # HMA: SDV's multi-table quality report
        quality = multitable_quality(train, synthetic, metadata)
    else:  # per table: the mean of the tables' own quality scores (filled in below)
        quality = {"score": None, "properties": {}}
    quality["cardinality"] = cardinality_report(real_keyed, keyed, table_set)
    quality["children_per_parent"] = children_per_parent(real_keyed, keyed, table_set)
    settings = {
        "dataset": dataset,
        "run": layout.run if layout is not None else None,
        "synthesizer": description["name"],
        "seed": seed,
        "scale": scale,
        "max_parents": max_parents if engine == HMA_ENGINE else None,
        "subset": subset_info,
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
        assessor = assessors[name]
        folder = out_dir / REPORTS_DIR / name
        folder.mkdir(parents=True, exist_ok=True)
        assessment = assessor.assess(
            synthetic[name],
            folder,
            {**settings, "table": name},
            title=f"{dataset}: {name}",
            fresh_leaks=leaks[name],
            roles=[r.to_dict() for r in roles[name]],
        )
        unmeasured = (
            assessment.privacy is None
            and name != main_table_used
            and checks.holdout_share > 0
            and len(holdout[name]) == 0
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
    if metadata is None:
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
    if metadata is not None:
        public = public_metadata(metadata)
    else:
        public = {
            "tables": {
                name: public_metadata(metadata_of(name))["tables"][name]
                if metadata_of(name) is not None
                else {"columns": {}}
                for name in table_set.order
            },
            "relationships": [r.to_dict() for r in table_set.relationships],
        }
    public["columns_roles"] = {
        name: [r.to_dict() for r in table_roles] for name, table_roles in roles.items()
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
        model_uri = save_model(model_store, layout, model, out_dir, description, seed, versions)
    return {
        "table_files": table_files,
        "metadata_uri": metadata_path.resolve().as_uri(),
        "quality_uri": quality_path.resolve().as_uri(),
        "report_files": report_files,
        "table_set": table_set.to_dict(),
        "rows": {name: len(frame) for name, frame in keyed.items()},
        "subset": subset_info,
        "synthesizer": description,
        "seed": seed,
        "scale": scale,
        "fit_seconds": round(fit_seconds, 3),
        "sample_seconds": round(sample_seconds, 3),
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
        if pii:
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


def run_multitable_publish(
    store: ObjectStore,
    layout: DatasetLayout,
    *,
    synthesis: Mapping[str, Any],
    source: Mapping[str, Any],
    timings: Mapping[str, float],
    formats: Sequence[str] = ("parquet",),
) -> dict[str, Any]:
    """Upload every table, the reports and metadata, then ONE manifest naming them all."""
    started = time.monotonic()
    check_formats(formats)
    table_set = TableSet.from_dict(synthesis["table_set"])
    files: dict[str, Path] = {}
    tables: dict[str, Any] = {}
    for name in table_set.order:
        path = Path(synthesis["table_files"][name])
        key = f"{TABLES_DIR}/{name}.parquet"
        files[key] = path
        if "csv" in formats:
            files[f"{TABLES_DIR}/{name}.csv"] = write_csv(path, path.with_suffix(".csv"))
        shape = table_set.tables[name]
        tables[name] = {
            "uri": layout.uri(layout.key(key)),
            "rows": pq.ParquetFile(path).metadata.num_rows,
            "primary_key": list(shape.primary_key),
            "columns": shape.to_dict()["columns"],
        }
    files[METADATA_FILE] = path_from_uri(synthesis["metadata_uri"])
    files[QUALITY_FILE] = path_from_uri(synthesis["quality_uri"])
    files.update({name: Path(path) for name, path in synthesis["report_files"].items()})
    public = (
        "synthesizer",
        "seed",
        "scale",
        "subset",
        "fit_seconds",
        "sample_seconds",
        "checks_seconds",
        "integrity",
        "scores",
        "gates",
        "checks",
        "model_uri",
    )
    manifest = {
        "dataset": layout.dataset,
        "run": layout.run,
        "kind": "multi_table",
        "rows": sum(t["rows"] for t in tables.values()),
        "tables": tables,
        "relationships": [r.to_dict() for r in table_set.relationships],
        "load_order": list(table_set.order),
        "source": dict(source),
        "synthesis": {k: synthesis[k] for k in public if k in synthesis},
        "timings_seconds": {k: round(float(v), 3) for k, v in timings.items()},
        "versions": synthesis.get("versions", {}),
        "reports": {
            name: layout.uri(layout.key(name))
            for name in [QUALITY_FILE, *synthesis["report_files"]]
        },
    }
    published = publish_dataset(store, layout, files, manifest, load_started=started)
    report = f"{REPORTS_DIR}/{table_set.order[0]}/report.html"
    return {
        **published.to_xcom(),
        "dataset_uri": layout.dataset_uri,
        "tables": {name: t["uri"] for name, t in tables.items()},
        "report_uri": layout.uri(layout.key(report)) if report in files else None,
    }


def load_published_set(
    store: ObjectStore, layout: DatasetLayout, conn: Any, schema: str
) -> dict[str, Any]:
    """Copy a published multi-table set into ``schema`` of a target database, atomically.

    Reads the manifest (the only source of truth of what the set holds), downloads the
    tables to a temporary folder and loads them in one transaction, parents first; the
    previous load in that schema is replaced when the transaction commits.
    """
    from airflow_synth.core.target.postgres import (
        TargetColumn,
        TargetForeignKey,
        TargetTable,
        load_tables_into_postgres,
    )

    manifest_uri = layout.uri(layout.manifest_key)
    raw = store.get_bytes(layout.manifest_key)
    if raw is None:
        raise PublishError(
            f"No manifest at {manifest_uri}: the set was not published (or was deleted); "
            "publish it first. Nothing was loaded."
        )
    manifest = json.loads(raw)
    if manifest.get("kind") != "multi_table":
        raise PublishError(f"{manifest_uri} is not a multi-table manifest; nothing was loaded.")
    with tempfile.TemporaryDirectory(prefix="airflow_synth_target_") as tmp:
        tables = []
        for name in manifest["load_order"]:
            info = manifest["tables"][name]
            data = store.get_bytes(layout.key(f"{TABLES_DIR}/{name}.parquet"))
            if data is None:
                raise PublishError(f"{info['uri']} is missing; nothing was loaded.")
            path = Path(tmp) / f"{name}.parquet"
            path.write_bytes(data)
            tables.append(
                TargetTable(
                    name=name,
                    path=path,
                    primary_key=tuple(info.get("primary_key") or ()),
                    columns=tuple(
                        TargetColumn(c["name"], c.get("pg_type")) for c in info["columns"]
                    ),
                )
            )
        foreign_keys = [
            TargetForeignKey(
                child=r["child"],
                child_columns=tuple(r["child_key"]),
                parent=r["parent"],
                parent_columns=tuple(r["parent_key"]),
            )
            for r in manifest.get("relationships", [])
        ]
        result = load_tables_into_postgres(
            conn,
            schema,
            tables,
            foreign_keys,
            source={
                "manifest": manifest_uri,
                "dataset": manifest["dataset"],
                "run": manifest["run"],
            },
        )
    return result.to_xcom()
