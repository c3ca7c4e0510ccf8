"""One place that turns a synthesizer *name plus parameters* into an SDV synthesizer.

SDV's single-table synthesizers share one small API (``fit``, ``sample``, ``save``), so the
rest of airflow-synth never branches on the model: it asks :func:`resolve_synthesizer` and
gets back a validated spec. Parameter names are checked against the class signature and
values against the type of the documented default, so a typo (``epoch=10``) fails before
any data is touched, with a suggestion, instead of deep inside training.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_synth.core.errors import SynthesizerConfigError

log = logging.getLogger(__name__)

#: What a run trains when no synthesizer is named: :data:`AUTO`.
DEFAULT_SYNTHESIZER = "auto"
#: ``auto`` picks the most faithful engine installed on the worker: TabularARGN (the
#: ``argn`` extra) keeps 0.95 of the demo's dependence in ~40 s, GaussianCopula 0.34 in
#: ~15 s (``python -m benchmarks fidelity``; README "How faithful is it").
AUTO = "auto"
AUTO_PREFERENCE = ("tabular_argn", "gaussian_copula")

#: name -> SDV class path. Names are what users type in DAGs and in the UI form.
SYNTHESIZERS: dict[str, str] = {
    "gaussian_copula": "sdv.single_table.GaussianCopulaSynthesizer",
    "ctgan": "sdv.single_table.CTGANSynthesizer",
    "tvae": "sdv.single_table.TVAESynthesizer",
    "copulagan": "sdv.single_table.CopulaGANSynthesizer",
    # MOSTLY AI's TabularARGN: the optional extra ``argn`` (see engine/tabular_argn.py)
    "tabular_argn": "airflow_synth.core.engine.tabular_argn.TabularARGNSynthesizer",
}

#: Parameters SDV takes that we set ourselves (metadata) or that make no sense as settings.
_RESERVED = {"self", "metadata"}
_DISTRIBUTIONS = {"norm", "beta", "truncnorm", "uniform", "gamma", "gaussian_kde"}
_NEURAL = {"ctgan", "tvae", "copulagan", "tabular_argn"}
#: Share of the worker's cores torch may use while training, per model (default: half).
#: Measured on 2 cores: more threads than free cores is 4x slower for SDV's GANs, and
#: TabularARGN's small operations train 1.6x faster on 1 thread than on 2 (14 vs 23 s on
#: 1k rows, 33 vs 175 s on 10k rows), 3x with another process busy.
_CORE_SHARE: dict[str, float] = {}
_KEEPS_POINT_MASSES = {"tabular_argn"}


@dataclass(frozen=True)
class SynthesizerSpec:
    """A validated synthesizer choice: the SDV class and the keyword arguments for it."""

    name: str
    class_path: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def is_neural(self) -> bool:
        return self.name in _NEURAL

    @property
    def needs_profile_states(self) -> bool:
        """Whether point masses and NULLs need the codec's state columns: SDV's models
        spread a mass over its neighbours; TabularARGN discretises and keeps them."""
        return self.name not in _KEEPS_POINT_MASSES

    def torch_threads(self, cores: int) -> int:
        """Threads torch may use for this model on a worker with ``cores`` cores."""
        return max(1, int(cores * _CORE_SHARE.get(self.name, 0.5)))

    def load_class(self) -> type:
        module, _, cls = self.class_path.rpartition(".")
        return getattr(importlib.import_module(module), cls)

    def create(self, metadata: Any) -> Any:
        """Instantiate the SDV synthesizer for ``metadata``."""
        cls = self.load_class()
        from sdv.errors import SynthesizerInputError  # SDV's own; not a ValueError

        try:
            return cls(metadata, **self.params)
        except (TypeError, ValueError, SynthesizerInputError) as exc:
            raise SynthesizerConfigError(
                f"Synthesizer {self.name!r} rejected its parameters {self.params}: {exc}"
            ) from exc

    def describe(self) -> dict[str, Any]:
        """JSON-safe description for manifests and logs."""
        return {"name": self.name, "class": self.class_path, "params": _jsonable(self.params)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _check_value(name: str, param: str, value: Any, default: Any) -> Any:
    """Coerce/validate one value against the type of SDV's default for it."""
    where = f"parameter {param!r} of synthesizer {name!r}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SynthesizerConfigError(f"{where} must be true or false, got {value!r}.")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise SynthesizerConfigError(f"{where} must be a whole number, got {value!r}.")
        try:
            number = int(value)
        except (ValueError, OverflowError) as exc:  # "abc", NaN, infinity
            raise SynthesizerConfigError(f"{where} must be a whole number, got {value!r}.") from exc
        if number != float(value) or number <= 0:
            raise SynthesizerConfigError(f"{where} must be a positive whole number, got {value!r}.")
        return number
    if isinstance(default, float):
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise SynthesizerConfigError(f"{where} must be a number, got {value!r}.") from exc
        if not math.isfinite(number) or number < 0:
            raise SynthesizerConfigError(
                f"{where} must be a finite, non-negative number, got {value!r}."
            )
        return number
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, int) and v > 0 for v in value
        ):
            raise SynthesizerConfigError(
                f"{where} must be a list of positive layer sizes like [256, 256], got {value!r}."
            )
        return tuple(value)
    if param == "default_distribution" and value not in _DISTRIBUTIONS:
        raise SynthesizerConfigError(
            f"{where} must be one of {sorted(_DISTRIBUTIONS)}, got {value!r}."
        )
    return value


def auto_synthesizer() -> str:
    """The engine ``auto`` means on this worker: TabularARGN where it is installed."""
    from airflow_synth.core.engine.tabular_argn import engine_available

    if engine_available():
        return AUTO_PREFERENCE[0]
    log.warning(
        "synthesizer 'auto': mostlyai-engine is not installed on this worker, so the run "
        "trains gaussian_copula (on the demo it keeps 0.34 of the real dependence where "
        "tabular_argn keeps 0.95). Install the extra: pip install 'airflow-synth[argn]' && "
        "pip install --no-deps mostlyai-engine==2.7.3"
    )
    return AUTO_PREFERENCE[1]


def resolve_synthesizer(
    name: str | None = None, params: Mapping[str, Any] | None = None
) -> SynthesizerSpec:
    """Validate a synthesizer name and its parameters; raise a helpful error if wrong."""
    name = (name or "").strip().lower() or DEFAULT_SYNTHESIZER  # a blank form field: default
    if name == AUTO:
        name = auto_synthesizer()
    if name not in SYNTHESIZERS:
        close = difflib.get_close_matches(name, SYNTHESIZERS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SynthesizerConfigError(
            f"Unknown synthesizer {name!r}.{hint} Choose one of: "
            f"{', '.join([AUTO, *SYNTHESIZERS])}."
        )
    spec = SynthesizerSpec(name=name, class_path=SYNTHESIZERS[name])
    signature = inspect.signature(spec.load_class().__init__)
    accepted = {p: v.default for p, v in signature.parameters.items() if p not in _RESERVED}
    clean: dict[str, Any] = {}
    for param, value in dict(params or {}).items():
        if value is None:
            continue
        if param not in accepted:
            close = difflib.get_close_matches(param, accepted, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise SynthesizerConfigError(
                f"Synthesizer {name!r} has no parameter {param!r}.{hint} "
                f"Valid parameters: {', '.join(sorted(accepted))}."
            )
        clean[param] = _check_value(name, param, value, accepted[param])
    batch_size = clean.get("batch_size", accepted.get("batch_size"))
    pac = clean.get("pac", accepted.get("pac"))
    if isinstance(batch_size, int) and isinstance(pac, int) and batch_size % pac:
        raise SynthesizerConfigError(
            f"Synthesizer {name!r}: batch_size ({batch_size}) must be a multiple of pac ({pac})."
        )
    return SynthesizerSpec(name=name, class_path=spec.class_path, params=clean)
