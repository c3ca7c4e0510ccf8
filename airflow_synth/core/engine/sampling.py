"""Train a local SDV synthesizer and sample a synthetic table to Parquet.

Training happens in this process only: no data and no model leaves the worker here.
Long trainings log a heartbeat so an operator watching the task log knows it is alive,
and sampling is done in batches written straight to Parquet, so the synthetic table never
has to fit in memory at once.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_synth.core.engine.replacement import Refill, ReplacementLog, Strata
from airflow_synth.core.engine.synthesizers import SynthesizerSpec
from airflow_synth.core.frames import conform_to_schema
from airflow_synth.core.redact import library_errors

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_BATCH_ROWS = 50_000
HEARTBEAT_SECONDS = 30.0


@dataclass
class SynthesisResult:
    """What a synthesize step produced; ``to_xcom`` keeps it small and JSON-safe."""

    path: Path
    rows: int
    fit_seconds: float
    sample_seconds: float
    synthesizer: dict[str, Any]
    seed: int | None
    training_rows: int
    versions: dict[str, str] = field(default_factory=dict)

    def to_xcom(self) -> dict[str, Any]:
        return {
            "synthetic_uri": self.path.resolve().as_uri(),
            "rows": self.rows,
            "training_rows": self.training_rows,
            "fit_seconds": round(self.fit_seconds, 3),
            "sample_seconds": round(self.sample_seconds, 3),
            "synthesizer": self.synthesizer,
            "seed": self.seed,
            "versions": self.versions,
        }


def library_versions() -> dict[str, str]:
    """Versions recorded with every model and dataset, so results can be reproduced."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in (
        "airflow-synth",
        "sdv",
        "sdmetrics",
        "rdt",
        "pandas",
        "pyarrow",
        "apache-airflow-core",
    ):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found


def seed_everything(seed: int | None) -> None:
    """Seed Python, NumPy and (if loaded) torch: SDV's neural models are not seeded otherwise."""
    if seed is None:
        return
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch
    except ImportError:  # pragma: no cover - torch comes with SDV
        return
    torch.manual_seed(seed)


def limit_torch_threads(threads: int | None) -> None:
    """Cap torch's CPU threads: on small workers more threads than cores is 4x slower."""
    if not threads:
        return
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(threads)


#: Loggers that write a line per fitted or sampled model: HMA fits one per parent row.
CHATTY_LOGGERS = ("SingleTableSynthesizer", "MultiTableSynthesizer", "copulas")


@contextmanager
def quiet_model_logs(level: int = logging.WARNING) -> Iterator[None]:
    """Raise SDV's per-model loggers to ``level`` for the block.

    HMA fits and samples a small model per parent row, and SDV logs each one at INFO:
    1,700 lines for the demo's 1,000 users, which bury the task log a person reads.
    """
    loggers = [logging.getLogger(name) for name in CHATTY_LOGGERS]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(level, lg.getEffectiveLevel()))
    try:
        yield
    finally:
        for lg, old in zip(loggers, before, strict=True):
            lg.setLevel(old)


@contextmanager
def heartbeat(what: str, every: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """Log "still <what>" every ``every`` seconds until the block ends."""
    stop = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not stop.wait(every):
            log.info("Still %s: %.0f s elapsed", what, time.monotonic() - started)

    thread = threading.Thread(target=beat, name="airflow-synth-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=1)


def fit_synthesizer(
    frame: pd.DataFrame,
    metadata: Any,
    spec: SynthesizerSpec,
    table_name: str,
    seed: int | None = None,
    torch_threads: int | None = None,
    constraints: Sequence[Any] = (),
) -> tuple[Any, float]:
    """Fit ``spec`` on ``frame``; return the fitted synthesizer and the seconds it took.

    ``constraints`` (SDV constraints, e.g. the detected fixed combinations) are added first.
    """
    seed_everything(seed)
    if spec.is_neural:
        limit_torch_threads(torch_threads or spec.torch_threads(os.cpu_count() or 2))
    names = [table_name, *map(str, frame.columns)]  # names a library error may keep
    with library_errors(f"Creating {spec.name} for table {table_name!r}", names):
        synthesizer = spec.create(metadata)
        if constraints and hasattr(synthesizer, "add_constraints"):
            synthesizer.add_constraints(list(constraints))
    log.info(
        "Training %s on %d rows x %d columns (params %s)",
        spec.name,
        len(frame),
        frame.shape[1],
        spec.params or "defaults",
    )
    started = time.monotonic()
    with (
        heartbeat(f"training {spec.name}"),
        library_errors(f"Training {spec.name} on table {table_name!r}", names),
    ):
        synthesizer.fit({table_name: frame})
    seconds = time.monotonic() - started
    log.info("Trained %s in %.1f s", spec.name, seconds)
    if seed is not None:
        synthesizer._set_random_state(seed)  # noqa: SLF001 - SDV's only per-model seeding hook
    return synthesizer, seconds


def _by_filter(counts: Mapping[str, int]) -> str:
    """``similarity filter 290, outlier filter 10`` (the filters that removed rows)."""
    shown = [f"{name} filter {n}" for name, n in sorted(counts.items()) if n]
    return ", ".join(shown) or "no filter named"


def sample_to_parquet(
    synthesizer: Any,
    num_rows: int,
    schema: pa.Schema,
    out_path: str | Path,
    table_name: str,
    *,
    primary_key: str | None = None,
    batch_rows: int = DEFAULT_SAMPLE_BATCH_ROWS,
    row_filter: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    complete: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    max_filtered_share: float = 0.5,
    observe: Callable[[pd.DataFrame], None] | None = None,
    screen: Callable[[pd.DataFrame], Any] | None = None,
    strata: Strata | None = None,
    replacements: ReplacementLog | None = None,
) -> tuple[int, float]:
    """Sample ``num_rows`` rows in batches into ``out_path`` with the source ``schema``.

    Primary keys are kept unique across batches (a repeated key is dropped and re-sampled).
    ``complete`` adds the columns the model never saw (fresh keys and PII) to each batch
    after filtering.
    ``observe`` sees every raw batch before anything is dropped (extra rows drawn to replace
    removed ones too): privacy is judged on what the model produces, not on what the
    filters let through.
    ``screen`` (the privacy filters: a frame in, a
    :class:`~airflow_synth.core.assess.privacy.FilterResult` out) may remove rows from each batch;
    each removed row is replaced by an extra sample of its stratum (``strata``, see
    :mod:`airflow_synth.core.engine.replacement`), so the filters do not move the rates the model
    produced; ``replacements`` records how. ``row_filter`` (a frame in, the kept rows out)
    is the older form: removed rows are replaced by plain new samples.
    Either way, if the filters remove more than ``max_filtered_share`` of everything
    sampled, the model reproduces real rows: sampling stops early (fewer rows than asked,
    logged) and the caller's ``filtered_share`` gate refuses the run, with its reports
    written so the user can see why.
    Returns (rows written, seconds).
    """
    out_path = Path(out_path)
    names = [table_name, *schema.names]  # names a library error may keep
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    started = time.monotonic()
    written = 0
    seen_keys: set[Any] = set()
    empty_batches = 0  # in a row, emptied by the primary key's uniqueness
    emptied_by_filters = 0  # in a row, emptied by the privacy filters
    counts = {"sampled": 0, "filtered": 0}
    by_filter: dict[str, int] = {}
    warned = False

    def draw(rows: int) -> pd.DataFrame:
        with library_errors(f"Sampling table {table_name!r}", names):
            frame = synthesizer.sample(num_rows=rows)[table_name]
        counts["sampled"] += len(frame)
        if observe is not None:
            observe(frame)
        return frame

    def too_much() -> bool:
        nonlocal warned
        over = counts["filtered"] > max_filtered_share * max(counts["sampled"], num_rows)
        if over and not warned:
            warned = True
            log.warning(
                "The privacy filters removed %d of %d sampled rows of %r (%s; more than "
                "max_filtered_share=%g of them): the model reproduces real rows or strays "
                "far from them; sampling stopped. The filtered_share gate names the columns; "
                "see the settings similarity_filter, outlier_filter, max_filtered_share and "
                "holdout_share",
                counts["filtered"],
                counts["sampled"],
                table_name,
                _by_filter(by_filter),
                max_filtered_share,
            )
        return over

    def screened(frame: pd.DataFrame) -> Any:
        assert screen is not None
        result = screen(frame)
        counts["filtered"] += int(len(frame) - int(result.keep.sum()))
        for name, dropped in (result.dropped or {}).items():
            by_filter[name] = by_filter.get(name, 0) + int(dropped)
        return result

    refill = None
    if screen is not None:
        strata = strata or Strata([])
        refill = Refill(
            strata, draw, screened, stop=too_much, max_pool_rows=batch_rows, log=replacements
        )
    try:
        with pq.ParquetWriter(partial, schema, compression="zstd") as writer:
            while written < num_rows:
                want = min(batch_rows, num_rows - written)
                frame = draw(want)
                stop = False
                if refill is not None:
                    result = screened(frame)
                    keep = result.keep
                    removed, reasons = frame.loc[~keep], result.reasons[~keep]
                    batch, frame = frame, frame.loc[keep]
                    if len(removed) and not too_much():
                        extra = refill.replace(removed, reasons, batch)
                        frame = pd.concat([frame, extra], ignore_index=True)
                    elif len(removed):
                        refill.log.add(refill.log.unmatched, reasons)
                    frame = frame.reset_index(drop=True)
                    stop = too_much()
                elif row_filter is not None:
                    kept = row_filter(frame)
                    counts["filtered"] += len(frame) - len(kept)
                    by_filter["privacy"] = by_filter.get("privacy", 0) + len(frame) - len(kept)
                    frame = kept
                    stop = too_much()
                filtered_now = refill is not None or row_filter is not None
                if frame.empty and filtered_now and not stop:  # the filters removed every row
                    emptied_by_filters += 1
                    if emptied_by_filters > 10:
                        log.warning(
                            "The privacy filters removed every row of %d batches of %r in a "
                            "row (%s): sampling stopped; the filtered_share gate names the "
                            "columns and the settings to change",
                            emptied_by_filters,
                            table_name,
                            _by_filter(by_filter),
                        )
                        break
                    continue
                emptied_by_filters = 0
                if complete is not None:  # fresh keys and PII join the kept rows
                    frame = complete(frame)
                if primary_key:
                    frame = frame[~frame[primary_key].isin(seen_keys)]
                    frame = frame.drop_duplicates(subset=[primary_key])
                    seen_keys.update(frame[primary_key].tolist())
                if frame.empty and stop:
                    break
                if frame.empty:  # the primary key's uniqueness emptied it (or the model)
                    empty_batches += 1
                    if empty_batches > 10 and primary_key:
                        raise RuntimeError(
                            f"Cannot sample new unique values for primary key {primary_key!r}: "
                            "its id generator is exhausted. Widen the column's regex_format."
                        )
                    if empty_batches > 10:
                        raise RuntimeError(
                            f"The synthesizer returned no rows for table {table_name!r} in "
                            f"{empty_batches} batches in a row."
                        )
                    continue
                empty_batches = 0
                writer.write_table(conform_to_schema(frame, schema))
                written += len(frame)
                log.info("Sampled %d / %d rows", written, num_rows)
                if stop:
                    break
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out_path)
    return written, time.monotonic() - started
