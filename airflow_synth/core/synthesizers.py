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
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_synth.core.errors import SynthesizerConfigError

DEFAULT_SYNTHESIZER = "gaussian_copula"

#: name -> SDV class path. Names are what users type in DAGs and in the UI form.
SYNTHESIZERS: dict[str, str] = {
    "gaussian_copula": "sdv.single_table.GaussianCopulaSynthesizer",
    "ctgan": "sdv.single_table.CTGANSynthesizer",
    "tvae": "sdv.single_table.TVAESynthesizer",
    "copulagan": "sdv.single_table.CopulaGANSynthesizer",
}

#: Parameters SDV takes that we set ourselves (metadata) or that make no sense as settings.
_RESERVED = {"self", "metadata"}
_DISTRIBUTIONS = {"norm", "beta", "truncnorm", "uniform", "gamma", "gaussian_kde"}
_NEURAL = {"ctgan", "tvae", "copulagan"}


@dataclass(frozen=True)
class SynthesizerSpec:
    """A validated synthesizer choice: the SDV class and the keyword arguments for it."""

    name: str
    class_path: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def is_neural(self) -> bool:
        return self.name in _NEURAL

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


def resolve_synthesizer(
    name: str | None = None, params: Mapping[str, Any] | None = None
) -> SynthesizerSpec:
    """Validate a synthesizer name and its parameters; raise a helpful error if wrong."""
    name = (name or "").strip().lower() or DEFAULT_SYNTHESIZER  # a blank form field: default
    if name not in SYNTHESIZERS:
        close = difflib.get_close_matches(name, SYNTHESIZERS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SynthesizerConfigError(
            f"Unknown synthesizer {name!r}.{hint} Choose one of: {', '.join(SYNTHESIZERS)}."
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
