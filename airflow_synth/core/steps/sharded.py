"""A table's synthesize step in three parts: train once, sample in shards, assess the union.

Each part can run in a task of its own, on any worker (Airflow's dynamic task mapping
runs one task per shard), or all three in one process (:func:`synthesize_table`); both
produce the same rows for the same seed and shard count, because everything a shard
draws is seeded from its :class:`~airflow_synth.core.engine.shards.Shard`:

* :func:`train_table` fits the table's model (the per-table engine over a set of one:
  roles, holdout, bounded training rows) and plans the shards; :meth:`TableFit.save`
  writes what the shards need into one private file (the model, which can decode but holds
  no stand-in pools, the training and held-out rows the privacy checks compare against).
* :func:`sample_shard` samples one shard through the privacy filters into its own part
  file, issues fresh keys and PII from the shard's own part of the value space (no two
  shards issue the same key), and keeps what its privacy measurement saw
  (:class:`~airflow_synth.core.assess.assessment.SamplingState`: numbers, no values).
* :func:`finish_shards` merges the shards' states, judges the union (fidelity on a
  seeded sample of at most :data:`ASSESS_MAX_ROWS` rows of it, the fresh-value leak check
  on every row), and lets the gates decide before the model is saved.

No Airflow import; inputs are paths and plain values, outputs small JSON-safe dicts.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from airflow_synth.core.assess.assessment import (
    PRIVACY_MIN_ROWS,
    SamplingState,
    SyntheticAssessor,
)
from airflow_synth.core.assess.checks import CheckSettings
from airflow_synth.core.contract import TableContract
from airflow_synth.core.engine.cpu_budget import cpu_budget, threads_for_training
from airflow_synth.core.engine.fingerprint import fingerprint_summary, fingerprint_table
from airflow_synth.core.engine.fresh import FreshColumns, count_leaks
from airflow_synth.core.engine.metadata import public_metadata
from airflow_synth.core.engine.reuse import (
    KEYED,
    RECORD_FILE,
    RETRAINED,
    SEEDED,
    TABLE_MODEL_FILE,
    ModelRecord,
    ReusePlan,
    ReuseSettings,
    decide,
    model_key,
    utc_now,
)
from airflow_synth.core.engine.sampling import library_versions, sample_to_parquet
from airflow_synth.core.engine.set_run import DEFAULT_MAX_TRAINING_ROWS
from airflow_synth.core.engine.shards import Shard, plan_shards
from airflow_synth.core.engine.subset import DEFAULT_MAX_ORPHAN_SHARE
from airflow_synth.core.engine.synthesizers import SynthesizerSpec
from airflow_synth.core.engine.table_model import TableModel
from airflow_synth.core.extract.staging import path_from_uri
from airflow_synth.core.frames import to_training_frame
from airflow_synth.core.names import json_bytes, safe_key_part
from airflow_synth.core.profile.roles import ColumnRole, fresh_columns
from airflow_synth.core.publish.tables import table_of_one
from airflow_synth.core.steps.finish import METADATA_FILE, MODEL_DIR, _gate_then_save, _Run
from airflow_synth.core.steps.fit import (
    _Trained,
    fit_prepared_table,
    prepare_per_table,
    trained_per_table,
)
from airflow_synth.core.steps.staged import dump_staged, load_staged

log = logging.getLogger(__name__)

#: The single shard's file (what an unsharded table always wrote); shards go in a folder
#: of that name (``synthetic/part-00000.parquet``, ...).
SYNTHETIC_FILE = "synthetic.parquet"
FIT_FILE = "fit.pkl"
#: Synthetic rows the fidelity report reads at most: a seeded uniform sample of the union
#: beyond (the quality report's pair trends need no more; 10M rows would need ~10 GB).
ASSESS_MAX_ROWS = 1_000_000


@dataclass
class TableFit:
    """A trained table and its sampling plan: everything a shard needs, in one object."""

    name: str
    dataset: str
    model: TableModel
    spec: SynthesizerSpec
    roles: list[ColumnRole]
    train: pd.DataFrame
    holdout: pd.DataFrame
    checks: CheckSettings
    seed: int | None
    split: dict[str, Any]
    shards: list[Shard]
    fit_seconds: float
    #: the model's record (``fingerprint.json``: published with the model for the next run)
    record: dict[str, Any] | None = None
    #: reused or retrained, and why (``synthesis.model_reuse`` of the manifest)
    reuse: dict[str, Any] | None = None
    #: today's extract's fingerprint, summarised (``synthesis.fingerprint``)
    fingerprint: dict[str, Any] | None = None

    @property
    def rows(self) -> int:
        """Rows to sample in all (every shard's together)."""
        return sum(shard.rows for shard in self.shards)

    def assessor(self) -> SyntheticAssessor:
        """A fresh judge of this table's samples (the same in every task that builds it)."""
        return SyntheticAssessor(
            self.train,
            self.holdout,
            self.model.metadata,
            self.name,
            self.checks,
            seed=self.seed or 0,
        )

    def sampler(self) -> Any:
        """The model as shards sample it: it decodes, and holds no stand-in pools of real
        values (what is saved and staged is the same)."""
        return self.model.synthesizer.decode_only()

    def save(self, path: Path) -> Path:
        """Pickle the fit for the shard and assess tasks (private staging only: it holds
        the training and held-out rows; the published model is saved without them)."""
        return dump_staged(
            replace(self, model=replace(self.model, synthesizer=self.sampler())), path
        )

    @classmethod
    def load(cls, path: Path) -> TableFit:
        return load_staged(path, cls)

    def plan(self) -> list[dict[str, Any]]:
        """The shards as XCom carries them (what dynamic task mapping expands over)."""
        return [shard.to_dict() for shard in self.shards]


@dataclass
class ShardSample:
    """One sampled shard: its part file, rows, seconds and what its assessor saw."""

    shard: Shard
    path: Path
    rows: int
    seconds: float
    state: SamplingState = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """XCom form (the state is saved beside the part file, named by URI)."""
        state_path = self.path.with_name(self.path.stem + ".state.npz")
        self.state.save(state_path)
        return {
            "shard": self.shard.to_dict(),
            "part_uri": self.path.resolve().as_uri(),
            "state_uri": state_path.resolve().as_uri(),
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardSample:
        return cls(
            Shard.from_dict(data["shard"]),
            path_from_uri(data["part_uri"]),
            int(data["rows"]),
            float(data.get("seconds") or 0.0),
            SamplingState.load(path_from_uri(data["state_uri"])),
        )


def shard_path(out_dir: Path, shard: Shard, file_name: str = SYNTHETIC_FILE) -> Path:
    """Where a shard's part file goes: ``file_name`` for a single shard (what an unsharded
    table always wrote), ``<its stem>/part-<n>.parquet`` otherwise."""
    if shard.count == 1:
        return Path(out_dir) / file_name
    return Path(out_dir) / Path(file_name).stem / shard.part_name


def train_table(
    staged_path: Path,
    *,
    dataset: str,
    spec: SynthesizerSpec,
    num_rows: int | None = None,
    seed: int | None = None,
    contract: TableContract | None = None,
    checks: CheckSettings | None = None,
    max_training_rows: int | None = DEFAULT_MAX_TRAINING_ROWS,
    shards: int | None = None,
    reuse: ReusePlan | None = None,
) -> TableFit:
    """Fit one feature table (a set of one through the per-table engine) and plan its
    shards: ``num_rows`` (default: as many as were extracted) in ``shards`` shards
    (default: one per :data:`~airflow_synth.core.engine.shards.DEFAULT_MAX_SHARD_ROWS`).

    ``reuse``: the dataset's earlier model and the reuse settings. Before any fit, today's
    extract is fingerprinted and :func:`~airflow_synth.core.engine.reuse.decide` says
    whether the earlier model is reused (no fit at all; ``fit_seconds`` 0) or a new one
    is trained. Either way the roles, the training rows and the holdout are today's: the
    privacy checks compare the samples with today's real rows. With reuse switched on the
    holdout is the keyed split with the earlier model's salt, so the rows it was trained
    on stay out of today's holdout (see :func:`~airflow_synth.core.engine.holdout.holdout_mask`).
    """
    checks = checks or CheckSettings()
    name = safe_key_part(dataset)
    plan = reuse or ReusePlan(ReuseSettings())
    salt = plan.salt()
    prepared = prepare_per_table(
        {name: Path(staged_path)},
        table_of_one(name, Path(staged_path)),
        {name: spec},
        dataset=dataset,
        seed=seed,
        checks=checks,
        contracts={name: contract} if contract is not None else {},
        max_training_rows=max_training_rows,
        fixed_combinations=True,
        max_orphan_share=DEFAULT_MAX_ORPHAN_SHARE,
        require_model=True,
        holdout_salt=salt if plan.settings.enabled else None,  # keyed: reusable later
    )
    fingerprint = fingerprint_table(Path(staged_path), prepared.roles[name], salt=salt)
    key = model_key(
        synthesizer=spec.describe(),
        seed=seed,
        contract=contract,
        holdout_share=checks.holdout_share,
        max_training_rows=max_training_rows,
        versions=library_versions(),
    )
    now = plan.now or utc_now()
    decision = decide(plan.settings, plan.previous, fingerprint, key, now)
    model = _reused_model(plan, decision) if decision.reused else None
    if decision.reused and model is None:
        decision = replace(
            decision,
            decision=RETRAINED,
            reason="retrained: the earlier model could not be loaded",
        )
    log.info("%s: %s", name, decision.reason)
    real = prepared.real({name: Path(staged_path)})
    frames = prepared.frames(real)
    started = time.monotonic()
    if model is not None and plan.previous is not None:
        models = {name: model}
        record = plan.previous.reused_in(plan.run)
    else:
        models = {n: fit_prepared_table(prepared, frames, n)[0] for n in prepared.to_fit}
        record = ModelRecord(
            fingerprint=fingerprint,
            model_key=key,
            trained_at=now.isoformat(),
            trained_run=plan.run,
            holdout={
                "method": KEYED if plan.settings.enabled else SEEDED,
                "share": checks.holdout_share,
                "salt": salt,
            },
        )
    trained = trained_per_table(
        prepared,
        real,
        models,
        seed=seed,
        scale=1.0,
        fit_seconds=0.0 if decision.reused else time.monotonic() - started,
    )
    wanted = num_rows or pq.ParquetFile(staged_path).metadata.num_rows
    fit = table_fit(trained, name, dataset, checks, seed, int(wanted), shards)
    fit.record = record.to_dict()
    fit.reuse = decision.to_dict()
    fit.fingerprint = fingerprint_summary(fingerprint)
    return fit


def _reused_model(plan: ReusePlan, decision: Any) -> TableModel | None:
    """The earlier model, loaded (None when it cannot be: the run retrains instead)."""
    if plan.load_model is None:
        return None
    try:
        model = plan.load_model()
    except Exception as exc:  # noqa: BLE001 - a broken earlier model means: train anew
        log.warning(
            "The earlier model (run %s) could not be loaded (%s); training a new one",
            decision.model_run,
            type(exc).__name__,
        )
        return None
    if not isinstance(model, TableModel):
        log.warning(
            "The earlier model (run %s) is not a table model; training a new one",
            decision.model_run,
        )
        return None
    return model


def table_fit(
    trained: _Trained,
    name: str,
    dataset: str,
    checks: CheckSettings,
    seed: int | None,
    rows: int,
    shards: int | None = None,
) -> TableFit:
    """One table of a fitted set (a table without relationships) with its shard plan."""
    plan = plan_shards(rows, seed=seed, shards=shards)
    if len(plan) > 1:
        log.info("%s: %d rows to sample in %d shards", name, rows, len(plan))
    return TableFit(
        name=name,
        dataset=dataset,
        model=trained.table_models[name],
        spec=trained.model.specs[name],
        roles=list(trained.roles[name]),
        train=trained.train[name],
        holdout=trained.holdout[name],
        checks=checks,
        seed=seed,
        split=trained.split,
        shards=plan,
        fit_seconds=trained.fit_seconds,
    )


def sample_shard(
    fit: TableFit,
    real_path: Path,
    shard: Shard,
    out_dir: Path,
    *,
    assessor: SyntheticAssessor | None = None,
    file_name: str = SYNTHETIC_FILE,
) -> ShardSample:
    """Sample one shard of ``fit`` into its part file under ``out_dir``.

    Rows the privacy filters remove are replaced by rows of their stratum, fresh keys and
    PII come from the shard's own part of the value space, and the shard's share of
    :data:`PRIVACY_MIN_ROWS` raw rows is observed at least (extra rows are not published).
    ``assessor`` (built once by a caller that samples several shards) is forked, never
    changed; without it one is built from ``fit``.
    """
    started = time.monotonic()
    judge = (assessor or fit.assessor()).fork(shard.seed)
    schema = pq.read_schema(real_path)
    names = [r.name for r in fresh_columns(fit.roles)]
    real_fresh = to_training_frame(pq.read_table(real_path, columns=names))
    fresh = FreshColumns(
        real_fresh, fit.roles, seed=fit.seed or 0, shard=(shard.index, shard.count, shard.seed)
    )
    del real_fresh
    columns = list(schema.names)
    judge.expect(max(fit.rows, PRIVACY_MIN_ROWS))
    sampler = fit.sampler()
    sampler.reseed(shard.seed)
    path = shard_path(out_dir, shard, file_name)
    if shard.count > 1:
        log.info(
            "%s: sampling %s (%d rows, seed %d)", fit.name, shard.label, shard.rows, shard.seed
        )
    with threads_for_training(cpu_budget()):  # neural samplers too: the worker's CPUs only
        rows, _ = sample_to_parquet(
            sampler,
            shard.rows,
            schema,
            path,
            fit.name,
            screen=judge.screen if judge.filtering else None,
            strata=judge.strata,
            replacements=judge.replacements,
            max_filtered_share=fit.checks.max_filtered_share,
            observe=judge.observe,
            complete=lambda batch: fresh.complete(batch, columns),
        )
        minimum = math.ceil(PRIVACY_MIN_ROWS * shard.rows / max(fit.rows, 1))
        extra = judge.top_up(lambda n: sampler.sample(num_rows=n)[fit.name], minimum)
    if extra:
        log.info("%s: privacy judged on %d more sampled rows (not published)", fit.name, extra)
    return ShardSample(shard, path, rows, time.monotonic() - started, judge.sampling_state())


def sample_all_shards(
    fit: TableFit,
    real_path: Path,
    out_dir: Path,
    assessor: SyntheticAssessor | None = None,
    file_name: str = SYNTHETIC_FILE,
) -> list[ShardSample]:
    """Every shard of ``fit``, one after the other in this process (what the mapped shard
    tasks do side by side)."""
    judge = assessor or fit.assessor()
    return [
        sample_shard(fit, real_path, shard, out_dir, assessor=judge, file_name=file_name)
        for shard in fit.shards
    ]


def read_for_assessment(
    paths: Sequence[Path], columns: Sequence[str], max_rows: int, seed: int
) -> pd.DataFrame:
    """The ``columns`` of the union of ``paths``: every row up to ``max_rows``, else a
    seeded uniform sample of that many (each part contributes its share)."""
    counts = [pq.ParquetFile(path).metadata.num_rows for path in paths]
    total = sum(counts)
    rng = np.random.default_rng(seed)
    frames = []
    for path, count in zip(paths, counts, strict=True):
        table = pq.read_table(path, columns=list(columns))
        if total > max_rows and count:
            keep = np.sort(rng.choice(count, round(max_rows * count / total), replace=False))
            table = table.take(keep)
        frames.append(to_training_frame(table))
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


def fresh_leaks(
    paths: Sequence[Path], real_path: Path, roles: Sequence[ColumnRole]
) -> dict[str, int]:
    """Per fresh column, published values equal to a real one, over every row of every
    part (read one part at a time)."""
    names = [r.name for r in fresh_columns(roles)]
    real = to_training_frame(pq.read_table(real_path, columns=names))
    total: Counter[str] = Counter({name: 0 for name in names})
    for path in paths:
        published = to_training_frame(pq.read_table(path, columns=names))
        total.update(count_leaks(published, real, names))
    return dict(total)


def finish_shards(
    fit: TableFit,
    real_path: Path,
    samples: Sequence[ShardSample],
    out_dir: Path,
    run: _Run,
    *,
    assessor: SyntheticAssessor | None = None,
    part_uris: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Judge the union of the shards, gate it, save the model (into ``out_dir/model/``, for
    the publish step: ``model_files`` of the result): the table's result.

    ``part_uris`` name the parts in the result when they live elsewhere than the local
    paths read here (staged by the shard tasks); by default the local paths' URIs.
    """
    samples = sorted(samples, key=lambda s: s.shard.index)
    planned = sorted(s.index for s in fit.shards)
    if [s.shard.index for s in samples] != planned:
        raise ValueError(
            f"{fit.name}: the shards sampled ({[s.shard.index for s in samples]}) are not the "
            f"shards planned ({planned}); run every shard of the train task's plan."
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    judge = assessor or fit.assessor()
    judge.absorb([s.state for s in samples])
    paths = [s.path for s in samples]
    rows = sum(s.rows for s in samples)
    synthetic = read_for_assessment(paths, list(fit.train.columns), ASSESS_MAX_ROWS, fit.seed or 0)
    if rows > len(synthetic):
        log.info(
            "%s: fidelity judged on a seeded sample of %d of %d rows",
            fit.name,
            len(synthetic),
            rows,
        )
    leaks = fresh_leaks(paths, real_path, fit.roles)
    fit.split.setdefault("tables", {}).setdefault(fit.name, {})["synthetic_rows"] = rows
    settings = {
        "dataset": run.dataset,
        "run": run.layout.run if run.layout is not None else None,
        "synthesizer": fit.spec.describe(),
        "seed": run.seed,
        "rows": rows,
        "shards": len(samples),
        "training_rows": len(fit.train),
        "holdout_rows": len(fit.holdout),
        "model_reuse": fit.reuse,  # the report's header says reused/retrained and why
    }
    assessment = judge.assess(
        synthetic,
        out_dir,
        settings,
        title=f"{run.dataset}: synthetic copy",
        fresh_leaks=leaks,
        roles=[r.to_dict() for r in fit.roles],
        rules=fit.model.rules,
    )
    del synthetic
    for line in assessment.summary_lines():
        log.info(line)
    metadata_path = out_dir / METADATA_FILE
    metadata_path.write_bytes(
        json_bytes(public_metadata(fit.model.metadata, fit.roles, fit.model.profiles))
    )
    versions, model_files = _gate_then_save(
        run,
        assessment.gates,
        f"Dataset {run.dataset!r}",
        {**assessment.files, METADATA_FILE: metadata_path},
        (fit.sampler(), fit.spec.describe(), out_dir),
    )
    if model_files:  # what the next run decides on and reuses, next to model.pkl
        model_files = {**model_files, **save_reusable(fit, out_dir)}
    uris = list(part_uris) if part_uris is not None else [p.resolve().as_uri() for p in paths]
    return {
        "synthetic_uri": uris[0] if len(uris) == 1 else None,
        "part_uris": uris,
        "metadata_uri": metadata_path.resolve().as_uri(),
        "report_uris": {n: path.resolve().as_uri() for n, path in assessment.files.items()},
        "rows": rows,
        "shards": [
            {**s.shard.to_dict(), "rows": s.rows, "seconds": round(s.seconds, 3)} for s in samples
        ],
        "training_rows": len(fit.train),
        "holdout_rows": len(fit.holdout),
        "max_training_rows": fit.split.get("max_training_rows"),
        "fit_seconds": round(fit.fit_seconds, 3),
        "sample_seconds": round(sum(s.seconds for s in samples), 3),
        "checks_seconds": round(assessment.seconds, 3),
        "synthesizer": fit.spec.describe(),
        "seed": run.seed,
        "model_files": model_files,
        "scores": assessment.scores(),
        "filters": assessment.filters,
        "gates": [g.to_dict() for g in assessment.gates],
        "checks": run.checks.to_dict(),
        "versions": versions,
        "model_reuse": fit.reuse,
        "fingerprint": fit.fingerprint,
    }


def save_reusable(fit: TableFit, out_dir: Path) -> dict[str, str]:
    """The model's record (``fingerprint.json``) and the whole table model (profiles, rules,
    metadata, the decode-only synthesizer: ``table_model.pkl``) beside ``model.pkl``, for
    the next run to reuse; their ``file://`` URIs by name ({} for a fit without a record).
    Private like ``model.pkl``: published under ``_models/`` only."""
    if fit.record is None:
        return {}
    folder = Path(out_dir) / MODEL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / RECORD_FILE
    record.write_bytes(json_bytes(fit.record))
    model = dump_staged(replace(fit.model, synthesizer=fit.sampler()), folder / TABLE_MODEL_FILE)
    return {RECORD_FILE: record.resolve().as_uri(), TABLE_MODEL_FILE: model.resolve().as_uri()}
