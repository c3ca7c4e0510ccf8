"""MOSTLY AI's TabularARGN (``mostlyai-engine``) behind the small SDV-shaped API we use.

Why a second engine: a Gaussian copula keeps every column's shape but only linear links
between columns; on the demo table it kept 0.34 of the real dependence, TabularARGN (an
autoregressive network over discretised columns, Apache-2.0, CPU) keeps 0.95 in about half
a minute (``python -m benchmarks fidelity``). It is an optional extra
(``pip install 'airflow-synth[argn]'``, see the README) because it brings torch,
transformers and friends; :func:`engine_available` says whether it is installed.

The wrapper gives the pipeline what it gets from SDV: ``fit({table: frame})``,
``sample(num_rows) -> {table: frame}`` with the training dtypes restored,
``_set_random_state(seed)`` and pickling. Design points:

* Column kinds come from our metadata (the profile), not from the engine's guesses, so an
  integer code stays a category and a date stays a date.
* Training is bounded by ``max_training_minutes`` and ``epochs`` (the engine also stops
  early when its validation loss stops improving) and logs epoch, loss and an ETA.
* Real rows live only in a private temporary workspace during ``fit`` and are deleted as
  soon as training ends; the pickled model carries only the network weights and the
  engine's column statistics (value protection on: rare categories and extreme values are
  left out of them), never rows.
* Seeding: each ``sample`` call after ``_set_random_state(seed)`` uses its own derived
  seed, so batches differ from each other and a run is repeatable.
* The process is left as the engine found it (:func:`engine_side_effects_undone`): training
  switches the CPU to flush denormal floats to zero and reseeds the global generators,
  which silently changed what a later HMA run in the same worker produced from the same
  seed. Training and sampling run with the worker's CPU budget in threads (cgroup quota,
  CPU affinity; :mod:`~airflow_synth.core.engine.cpu_budget`), restored the same way.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import math
import os
import random
import shutil
import tarfile
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airflow_synth.core.engine.cpu_budget import (
    active_training_threads,
    measure_cpu_budget,
    threads_for_training,
)

log = logging.getLogger(__name__)

#: The engine's loggers: their INFO lines (statistics, paths) stay out of task logs.
ENGINE_LOGGERS = ("mostlyai", "mostlyai.engine")
#: What a fitted model needs to generate; everything else in the workspace is real rows
#: (``OriginalData``), optimizer state or earlier samples.
_KEPT = ("ModelStore/model-data/model-weights.pt", "ModelStore/model-data/model-configs.json")
_KEPT_DIRS = ("ModelStore/tgt-stats", "OriginalData/tgt-meta")
#: SDV sdtype -> the engine's encoding type.
_ENCODINGS = {
    "categorical": "TABULAR_CATEGORICAL",
    "boolean": "TABULAR_CATEGORICAL",
    "numerical": "TABULAR_NUMERIC_AUTO",
    "datetime": "TABULAR_DATETIME",
}
_BOOLEANS = {"True": True, "False": False, True: True, False: False}
INSTALL_HINT = (
    "Install the optional extra: pip install 'airflow-synth[argn]' && "
    "pip install --no-deps mostlyai-engine==2.7.3 (see the README, 'Synthesizers'), "
    "or choose synthesizer='gaussian_copula'."
)


def engine_available() -> bool:
    """Whether ``mostlyai-engine`` can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec("mostlyai.engine") is not None
    except ModuleNotFoundError:
        return False


class EngineMissingError(ImportError):
    """The optional engine is not installed on this worker."""


def _engine() -> Any:
    if not engine_available():
        raise EngineMissingError(
            f"Synthesizer 'tabular_argn' needs mostlyai-engine. {INSTALL_HINT}"
        )
    for name in ENGINE_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    import mostlyai.engine as engine

    return engine


class TabularARGNSynthesizer:
    """TabularARGN with SDV's single-table API (see the module docstring).

    :param metadata: SDV metadata of the one table; its sdtypes choose the encodings.
    :param model: the engine's model size, ``MOSTLY_AI/Small``, ``/Medium`` or ``/Large``.
    :param max_training_minutes: time budget of training; the best model so far is kept.
    :param epochs: most passes over the training rows.
    :param flexible_generation: train for any column order (needed only for conditional
        generation; off trains faster and fits better).
    :param value_protection: leave rare categories and extreme values out of what the model
        can produce (a privacy measure of the engine; on by default).
    """

    def __init__(
        self,
        metadata: Any,
        model: str = "MOSTLY_AI/Medium",
        max_training_minutes: float = 10.0,
        epochs: int = 100,
        flexible_generation: bool = False,
        value_protection: bool = True,
    ) -> None:
        if model not in ("MOSTLY_AI/Small", "MOSTLY_AI/Medium", "MOSTLY_AI/Large"):
            raise ValueError(
                "model must be 'MOSTLY_AI/Small', 'MOSTLY_AI/Medium' or 'MOSTLY_AI/Large', "
                f"got {model!r}."
            )
        if not (isinstance(max_training_minutes, int | float) and max_training_minutes > 0):
            raise ValueError(f"max_training_minutes must be above 0, got {max_training_minutes!r}.")
        self.metadata = metadata
        self.model = model
        self.max_training_minutes = float(max_training_minutes)
        self.epochs = int(epochs)
        self.flexible_generation = bool(flexible_generation)
        self.value_protection = bool(value_protection)
        self._table: str | None = None
        self._dtypes: dict[str, Any] = {}
        self._columns: list[str] = []
        self._workspace: Path | None = None
        self._archive: bytes | None = None
        self._seed: int | None = None
        self._draws = 0
        #: what training did: epochs, seconds, stop reason (no values)
        self.training: dict[str, Any] = {}

    # -- fitting -------------------------------------------------------------------------

    def _encoding_types(self, frame: pd.DataFrame, table: str) -> dict[str, str]:
        columns = self.metadata.tables[table].columns if self.metadata is not None else {}
        types = {}
        for name in frame.columns:
            sdtype = columns.get(name, {}).get("sdtype")
            types[name] = _ENCODINGS.get(sdtype, "TABULAR_CATEGORICAL")
            if sdtype == "numerical" and _whole_with_point_mass(frame[name]):
                # binned numbers smear a mass (0 on 19% of rows, a cap) over its bin;
                # digit by digit every value, the masses included, is drawn exactly. Only
                # whole numbers: decimals add digits that small tables cannot teach it
                # (a 60% zero share of a 2-decimal amount came out at 46% on 400 rows)
                types[name] = "TABULAR_NUMERIC_DIGIT"
        return types

    def fit(self, data: Mapping[str, pd.DataFrame] | pd.DataFrame) -> None:
        """Train on the one table in ``data``; real rows are deleted when this returns."""
        engine = _engine()
        table, frame = _one_table(data)
        self._table, self._columns = table, list(frame.columns)
        self._dtypes = {c: frame[c].dtype for c in frame.columns}
        encodings = self._encoding_types(frame, table)
        workspace = Path(tempfile.mkdtemp(prefix="airflow-synth-argn-"))
        started = time.monotonic()
        progress = _TrainingLog(self.max_training_minutes, self.epochs)
        try:
            with engine_side_effects_undone():
                self._train(engine, frame, encodings, workspace, progress)
        except BaseException:
            shutil.rmtree(workspace, ignore_errors=True)
            raise
        self._archive = _pack(workspace)
        shutil.rmtree(workspace, ignore_errors=True)  # the real rows go with it
        self.training = {**progress.summary(), "seconds": round(time.monotonic() - started, 1)}
        log.info(
            "TabularARGN trained %s epochs in %.0f s (%s)",
            self.training.get("epochs"),
            self.training["seconds"],
            self.training.get("stopped", "converged"),
        )

    def _train(
        self,
        engine: Any,
        frame: pd.DataFrame,
        encodings: dict[str, str],
        workspace: Path,
        progress: _TrainingLog,
    ) -> None:
        if self._seed is not None:
            engine.set_random_state(self._seed)
        engine.split(
            tgt_data=_for_engine(frame),
            tgt_encoding_types=encodings,
            model_type="TABULAR",
            workspace_dir=workspace,
        )
        engine.analyze(value_protection=self.value_protection, workspace_dir=workspace)
        engine.encode(workspace_dir=workspace)
        engine.train(
            model=self.model,
            max_training_time=self.max_training_minutes,
            max_epochs=self.epochs,
            enable_flexible_generation=self.flexible_generation,
            device="cpu",
            workspace_dir=workspace,
            update_progress=progress,
        )

    # -- sampling ------------------------------------------------------------------------

    def _set_random_state(self, seed: int | None) -> None:
        """SDV's seeding hook: later ``sample`` calls draw from ``seed``, batch by batch."""
        self._seed, self._draws = seed, 0

    def _ready_workspace(self) -> Path:
        if self._archive is None:
            raise RuntimeError("TabularARGNSynthesizer must be fitted before sampling.")
        if self._workspace is None or not self._workspace.exists():
            self._workspace = Path(tempfile.mkdtemp(prefix="airflow-synth-argn-model-"))
            _unpack(self._archive, self._workspace)
        return self._workspace

    def sample(self, num_rows: int, **_: Any) -> dict[str, pd.DataFrame]:
        """``num_rows`` synthetic rows as ``{table: frame}``, in the training dtypes."""
        engine = _engine()
        assert self._table is not None
        if num_rows <= 0:
            empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in self._dtypes.items()})
            return {self._table: empty}
        workspace = self._ready_workspace()
        seed = None if self._seed is None else self._seed + 7919 * self._draws
        self._draws += 1
        shutil.rmtree(workspace / "SyntheticData", ignore_errors=True)
        with engine_side_effects_undone():
            engine.set_random_state(seed)
            engine.generate(
                sample_size=int(num_rows),
                rare_category_replacement_method="SAMPLE",
                device="cpu",
                workspace_dir=workspace,
            )
        files = sorted((workspace / "SyntheticData").glob("*.parquet"))
        frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        shutil.rmtree(workspace / "SyntheticData", ignore_errors=True)
        return {self._table: _restore_dtypes(frame[self._columns], self._dtypes)}

    # -- lifetime ------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        import cloudpickle

        with open(path, "wb") as handle:
            cloudpickle.dump(self, handle)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_workspace"] = None  # unpacked again where the model is loaded
        return state

    def __del__(self) -> None:
        workspace = getattr(self, "_workspace", None)
        if workspace is not None:
            shutil.rmtree(workspace, ignore_errors=True)


def engine_threads() -> int:
    """Threads for the engine: the caller's inside a fit, else the worker's CPU budget.

    Inside :func:`~airflow_synth.core.engine.table_model.fit_table_model` the threads it
    chose (and logged) are kept. Anywhere else (sampling in a later task, often on another
    worker than the fit) the budget is measured here: an explicit ``SYNTH_CPU_THREADS`` as
    given, a measured one at the engine's share (half: on 2 cores TabularARGN trains 1.6x
    faster on 1 thread than on 2).
    """
    active = active_training_threads()
    if active is not None:
        return active
    budget = measure_cpu_budget()
    if budget.explicit:
        return budget.cpus
    from airflow_synth.core.engine.synthesizers import SYNTHESIZERS, SynthesizerSpec

    return SynthesizerSpec("tabular_argn", SYNTHESIZERS["tabular_argn"]).torch_threads(budget.cpus)


@contextlib.contextmanager
def engine_side_effects_undone(threads: int | None = None) -> Iterator[None]:
    """Undo what the engine changes process-wide, so the next task in this worker is unchanged.

    Training calls ``torch.set_flush_denormal(True)`` (the CPU then rounds tiny floats to
    zero in *every* library, numpy and scipy included) and ``set_random_state`` reseeds
    Python's, NumPy's and torch's global generators and exports ``MOSTLYAI_ENGINE_SEED``.
    In a long-lived worker (or ``dag.test()``) an HMA run after an ARGN fit then produced
    other rows from the same seed. Flush-to-zero is off by default and has no getter, so it
    is switched off again; the rest is restored to what it was. The block runs with
    ``threads`` torch and BLAS threads (default :func:`engine_threads`), put back by
    :func:`~airflow_synth.core.engine.cpu_budget.threads_for_training` on the way out.
    """
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    torch_state, dtype = torch.get_rng_state(), torch.get_default_dtype()
    seed_variable = os.environ.get("MOSTLYAI_ENGINE_SEED")
    try:
        with (
            threads_for_training(threads or engine_threads()),
            warnings.catch_warnings(),  # the engine adds filters of its own
        ):
            yield
    finally:
        torch.set_flush_denormal(False)
        torch.set_default_dtype(dtype)
        torch.set_rng_state(torch_state)
        np.random.set_state(numpy_state)
        random.setstate(python_state)
        if seed_variable is None:
            os.environ.pop("MOSTLYAI_ENGINE_SEED", None)
        else:
            os.environ["MOSTLYAI_ENGINE_SEED"] = seed_variable


class _TrainingLog:
    """The engine's progress callback: one log line per epoch with loss and an ETA."""

    def __init__(self, budget_minutes: float, epochs: int, every: float = 10.0) -> None:
        self.budget = budget_minutes * 60
        self.epochs = epochs
        self.every = every
        self.started = time.monotonic()
        self.last_logged = -math.inf
        self.epoch = 0.0
        self.val_loss: float | None = None

    def __call__(
        self,
        total: int | None = None,
        completed: int | None = None,
        advance: int | None = None,
        message: Any = None,
        **_: Any,
    ) -> None:
        if not isinstance(message, Mapping):
            return
        self.epoch = float(message.get("epoch") or self.epoch)
        loss = message.get("val_loss")
        if isinstance(loss, int | float) and math.isfinite(loss):
            self.val_loss = float(loss)
        elapsed = time.monotonic() - self.started
        if elapsed - self.last_logged < self.every or not self.epoch:
            return
        self.last_logged = elapsed
        per_epoch = elapsed / self.epoch
        eta = min(self.budget - elapsed, per_epoch * (self.epochs - self.epoch))
        log.info(
            "TabularARGN epoch %.1f/%d, validation loss %s, %.0f s elapsed, at most %.0f s to go",
            self.epoch,
            self.epochs,
            f"{self.val_loss:.4f}" if self.val_loss is not None else "n/a",
            elapsed,
            max(eta, 0.0),
        )

    def summary(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        stopped = None
        if elapsed >= self.budget * 0.98:
            stopped = "time budget reached"
        elif self.epoch >= self.epochs:
            stopped = "epoch limit reached"
        return {
            "epochs": round(self.epoch, 1),
            "val_loss": self.val_loss,
            "stopped": stopped or "early stopping (validation loss stopped improving)",
        }


def _whole_with_point_mass(column: pd.Series, share: float = 0.05) -> bool:
    """Whole numbers of which one value holds at least ``share`` of the rows (a point mass,
    as the column profile defines it)."""
    values = pd.to_numeric(column.dropna(), errors="coerce").dropna()
    if values.empty or not bool((values == values.round()).all()):
        return False
    return bool(values.value_counts(normalize=True).iloc[0] >= share)


def _one_table(data: Mapping[str, pd.DataFrame] | pd.DataFrame) -> tuple[str, pd.DataFrame]:
    if isinstance(data, pd.DataFrame):
        return "table", data
    if len(data) != 1:
        raise ValueError(f"TabularARGNSynthesizer models one table; got {len(data)} tables.")
    ((table, frame),) = data.items()
    return table, frame


def _for_engine(frame: pd.DataFrame) -> pd.DataFrame:
    """Booleans and categories as text: the engine treats them as categories either way."""
    out = frame.copy()
    for name in out.columns:
        dtype = out[name].dtype
        if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
            out[name] = (
                out[name]
                .astype(object)
                .where(out[name].notna(), None)
                .map(lambda v: None if v is None else str(v))
            )
    return out


def _restore_dtypes(frame: pd.DataFrame, dtypes: Mapping[str, Any]) -> pd.DataFrame:
    """Cast the engine's output (strings, nullable types) back to the training dtypes."""
    out = pd.DataFrame(index=frame.index)
    for name, dtype in dtypes.items():
        values = frame[name]
        if pd.api.types.is_bool_dtype(dtype):
            mapped = values.astype(object).map(_BOOLEANS)
            out[name] = mapped.astype(dtype) if mapped.notna().all() else mapped.astype("boolean")
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            out[name] = pd.to_datetime(values, errors="coerce").astype(dtype)
        elif pd.api.types.is_numeric_dtype(dtype):
            numbers = pd.to_numeric(values, errors="coerce")
            if pd.api.types.is_integer_dtype(dtype) and numbers.isna().any():
                out[name] = numbers.astype("float64")
            else:
                out[name] = numbers.astype(dtype)
        elif isinstance(dtype, pd.CategoricalDtype):
            out[name] = pd.Categorical(values.astype(object), categories=dtype.categories)
        else:
            out[name] = values.astype(object).where(values.notna(), None)
    return out


def _pack(workspace: Path) -> bytes:
    """The files a fitted model needs, as a tar archive in memory (no real rows)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for relative in _KEPT:
            if (workspace / relative).exists():
                archive.add(workspace / relative, arcname=relative)
        for folder in _KEPT_DIRS:
            if (workspace / folder).is_dir():
                archive.add(workspace / folder, arcname=folder)
    return buffer.getvalue()


def _unpack(archive: bytes, workspace: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(workspace, filter="data")


__all__ = [
    "INSTALL_HINT",
    "EngineMissingError",
    "TabularARGNSynthesizer",
    "engine_available",
]
