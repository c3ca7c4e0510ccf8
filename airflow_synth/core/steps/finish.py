"""Finish the synthesize step: reports, gates, public metadata and the saved model.

A single feature table gets its own reports and gates; a set gets them per table plus what
only a set has (integrity, children per parent, links, cross-table rules). Gates decide
before the model is saved. The model is saved into the task's own folder (``model/``: its
files are named in the result's ``model_files``, staged privately like every other file
of the run) and published by the publish step with the run's data, under the same
attempt: a run that fails a gate, or whose publish never completes, leaves no model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from airflow_synth.core.assess.assessment import SyntheticAssessor
from airflow_synth.core.assess.checks import (
    CheckSettings,
    GateVerdict,
    enforce_gates,
)
from airflow_synth.core.assess.checks import verdict as gate_verdict
from airflow_synth.core.assess.links import parent_child_count_links
from airflow_synth.core.assess.relationships import check_integrity as check_set_integrity
from airflow_synth.core.assess.relationships import children_per_parent, nullable_relationships
from airflow_synth.core.assess.set_quality import (
    cardinality_report,
    multitable_quality,
)
from airflow_synth.core.assess.set_report import render_set_report
from airflow_synth.core.engine.metadata import public_metadata
from airflow_synth.core.engine.sampling import library_versions
from airflow_synth.core.names import json_bytes
from airflow_synth.core.profile.orderings import (
    cross_table_hold_rates,
    discover_cross_table_orderings,
)
from airflow_synth.core.publish.layout import MODEL_FILE, MODEL_INFO_FILE, DatasetLayout
from airflow_synth.core.relations import TableSet
from airflow_synth.core.steps.fit import _Trained

log = logging.getLogger(__name__)

QUALITY_FILE = "quality.json"
METADATA_FILE = "metadata.json"
REPORTS_DIR = "reports"
#: The task-local folder the fitted model is saved to, for the publish step.
MODEL_DIR = "model"
_LOOKUP_REASON = (
    "not measurable: every real row is referenced by training rows (a lookup table), so "
    "none could be held out"
)
_PRIVACY_METRICS = ("exact_match_rate", "near_copy_rate", "dcr_share")


@dataclass
class _Sampled:
    """The synthetic tables as written, and what judges them."""

    assessors: Mapping[str, SyntheticAssessor]
    synthetic: Mapping[str, pd.DataFrame]  # modelled columns: what each assessor judges
    keyed: Mapping[str, pd.DataFrame]  # keys and modelled columns: integrity, cardinality
    leaks: Mapping[str, dict[str, int]]
    table_files: Mapping[str, str]
    table_set: TableSet
    out_dir: Path


@dataclass
class _Run:
    """The run's settings that reports, gates and the model save need."""

    dataset: str
    seed: int | None
    scale: float
    checks: CheckSettings
    layout: DatasetLayout | None
    save_model: bool  # save the model into the task's folder for the publish step
    enforce_gates_: bool
    max_parents: int | None


def save_model(
    synthesizer: Any,
    work_dir: Path,
    synthesizer_info: Mapping[str, Any],
    seed: int | None,
    versions: Mapping[str, str],
    *,
    dataset: str,
    run: str | None = None,
) -> dict[str, str]:
    """Save the fitted synthesizer and a small JSON describing how to load it into
    ``work_dir/model/``; their ``file://`` URIs by name (``model.pkl``, ``model.json``).

    Nothing is uploaded here: the files are staged with the task's result and published
    by the publish step with the run (``_models/<dataset>/<run>/<attempt>/``).
    """
    folder = Path(work_dir) / MODEL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / MODEL_FILE
    synthesizer.save(str(model))
    info = {
        "dataset": dataset,
        "run": run,
        "synthesizer": dict(synthesizer_info),
        "seed": seed,
        "versions": dict(versions),
        "load_with": "airflow_synth.core.engine.profile_codec.load_model(path)",
        "columns": "the modelled columns only: keys and PII are issued fresh by the pipeline",
    }
    (folder / MODEL_INFO_FILE).write_bytes(json_bytes(info))
    log.info("Saved the model for publication with the run (%s)", model)
    return {
        MODEL_FILE: model.resolve().as_uri(),
        MODEL_INFO_FILE: (folder / MODEL_INFO_FILE).resolve().as_uri(),
    }


def _gate_then_save(
    run: _Run,
    gates: Sequence[GateVerdict],
    where: str,
    reports: Mapping[str, Path],
    model: tuple[Any, Mapping[str, Any], Path],
) -> tuple[dict[str, str], dict[str, str]]:
    """The gates decide before the model is saved: a failed gate raises (a dry run only
    logs it); then the model is saved for the publish step. Returns (library versions,
    the model's files by name: {} when no model is kept)."""
    if run.enforce_gates_:
        enforce_gates(gates, where=where, reports=reports)
    elif not all(g.passed for g in gates):
        failed = ", ".join(g.metric for g in gates if not g.passed)
        log.warning("DRY RUN: a real run would stop here: Gates FAILED: %s", failed)
    versions = library_versions()
    model_files: dict[str, str] = {}
    if run.save_model:
        synthesizer, description, work_dir = model
        model_files = save_model(
            synthesizer,
            work_dir,
            description,
            run.seed,
            versions,
            dataset=run.dataset,
            run=run.layout.run if run.layout is not None else None,
        )
    return versions, model_files


def _finish_set(trained: _Trained, done: _Sampled, run: _Run) -> dict[str, Any]:
    """Per-table reports plus what only a set has; set-level gates, metadata and model."""
    real_keyed, train, holdout = trained.real_keyed, trained.train, trained.holdout
    started = time.monotonic()
    integrity = check_set_integrity(
        done.keyed,
        done.table_set,
        nullable_foreign_keys=nullable_relationships(real_keyed, done.table_set),
    )
    if trained.metadata is not None:  # HMA: SDV's multi-table quality report
        quality = multitable_quality(train, done.synthetic, trained.metadata)
    else:  # per table: the mean of the tables' own quality scores (filled in below)
        quality = {"score": None, "properties": {}}
    quality["cardinality"] = cardinality_report(real_keyed, done.keyed, done.table_set)
    quality["children_per_parent"] = children_per_parent(real_keyed, done.keyed, done.table_set)
    settings = {
        "dataset": run.dataset,
        "run": run.layout.run if run.layout is not None else None,
        "synthesizer": trained.description["name"],
        "seed": run.seed,
        "scale": run.scale,
        "max_parents": run.max_parents,
        "subset": trained.split,
    }
    per_table: dict[str, Any] = {}
    report_files: dict[str, str] = {}
    gates = [
        GateVerdict("referential_integrity", integrity["score"], 1.0, "min", integrity["passed"]),
    ]
    for name in done.table_set.order:
        if name not in done.assessors:
            log.info("%s: no modelled rows (keys and PII only, or empty): nothing to assess", name)
            per_table[name] = {"rows": len(done.keyed[name]), "training_rows": 0, "scores": {}}
            continue
        folder = done.out_dir / REPORTS_DIR / name
        folder.mkdir(parents=True, exist_ok=True)
        fitted = trained.table_models.get(name)
        assessment = done.assessors[name].assess(
            done.synthetic[name],
            folder,
            {**settings, "table": name},
            title=f"{run.dataset}: {name}",
            fresh_leaks=done.leaks[name],
            roles=[r.to_dict() for r in trained.roles[name]],
            rules=fitted.rules if name in trained.standalone else None,
        )
        unmeasured = (
            assessment.privacy is None
            and name != trained.main_table
            and run.checks.holdout_share > 0
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
            "rows": len(done.synthetic[name]),
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
            run.checks.min_quality,
            "min",
            missing="no quality score for every table of the set",
        ),
    )
    quality["links"] = parent_child_count_links(real_keyed, done.keyed, done.table_set)
    orderings = discover_cross_table_orderings(real_keyed, done.table_set)
    quality["cross_table_rules"] = cross_table_hold_rates(orderings, done.keyed, done.table_set)
    set_report = done.out_dir / REPORTS_DIR / "report.html"
    set_report.parent.mkdir(parents=True, exist_ok=True)
    set_report.write_text(
        render_set_report(
            title=f"{run.dataset}: synthetic table set",
            integrity=integrity,
            children=quality["children_per_parent"],
            links=quality["links"],
            orderings=quality["cross_table_rules"],
            settings={k: v for k, v in settings.items() if k != "subset"},
            table_reports={name: f"{name}/report.html" for name in done.table_set.order},
        ),
        encoding="utf-8",
    )
    report_files[f"{REPORTS_DIR}/report.html"] = str(set_report)
    checks_seconds = time.monotonic() - started
    gate_dicts = [g.to_dict() for g in gates]
    quality_path = done.out_dir / QUALITY_FILE
    quality_path.write_bytes(
        json_bytes({**quality, "integrity": integrity, "tables": per_table, "gates": gate_dicts})
    )
    metadata_path = done.out_dir / METADATA_FILE
    if trained.metadata is not None:
        public = public_metadata(trained.metadata)
    else:
        public = {
            "tables": {
                name: public_metadata(trained.metadata_of(name))["tables"][name]
                if trained.metadata_of(name) is not None
                else {"columns": {}}
                for name in done.table_set.order
            },
            "relationships": [r.to_dict() for r in done.table_set.relationships],
        }
    public["columns_roles"] = {
        name: [r.to_dict() for r in table_roles] for name, table_roles in trained.roles.items()
    }
    metadata_path.write_bytes(json_bytes(public))
    for line in summary_lines(quality, integrity, per_table, gates):
        log.info(line)
    versions, model_files = _gate_then_save(
        run,
        gates,
        f"Multi-table dataset {run.dataset!r}",
        {
            QUALITY_FILE: quality_path,
            METADATA_FILE: metadata_path,
            **{name: Path(path) for name, path in report_files.items()},
        },
        (trained.model, trained.description, done.out_dir),
    )
    return {
        "table_files": dict(done.table_files),
        "metadata_uri": metadata_path.resolve().as_uri(),
        "quality_uri": quality_path.resolve().as_uri(),
        "report_files": report_files,
        "table_set": done.table_set.to_dict(),
        "rows": {name: len(frame) for name, frame in done.keyed.items()},
        "subset": trained.split,
        "synthesizer": trained.description,
        "seed": run.seed,
        "scale": run.scale,
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
        "checks": run.checks.to_dict(),
        "model_files": model_files,
        "versions": versions,
    }


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
