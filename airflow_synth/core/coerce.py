"""Turn task arguments into plain values, accepting what Airflow's templates render.

A setting reaches a task either as the value the DAG author wrote (``5``, ``{"a": 1}``)
or, when it comes from the Trigger form through Jinja without
``render_template_as_native_obj``, as the rendered *text* (``"5"``, ``'{"a": 1}'``,
``"None"``). These helpers accept both and reject anything else with an error that names
the setting, so every step (the early settings check, the synthesize step) reads a
setting the same way. Pure: no Airflow import, usable from ``core``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow_synth.core.errors import SynthesizerConfigError


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in ("", "None"))


def as_bool(value: Any) -> bool:
    """Accept booleans and their rendered-template strings ("True", "false", "")."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def as_int(value: Any, name: str) -> int | None:
    """Accept ints, numeric strings (Jinja renders strings) and empty values (-> None)."""
    if _is_empty(value):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise SynthesizerConfigError(f"{name} must be a whole number, got {value!r}.") from exc
    if number < 0:
        raise SynthesizerConfigError(f"{name} must not be negative, got {value!r}.")
    return number


def as_float(value: Any, name: str, default: float) -> float:
    """Accept positive numbers and their rendered text; empty values give ``default``."""
    if _is_empty(value):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise SynthesizerConfigError(f"{name} must be a number, got {value!r}.") from exc
    if number <= 0:
        raise SynthesizerConfigError(f"{name} must be positive, got {value!r}.")
    return number


def as_dict(value: Any, name: str) -> dict[str, Any]:
    """Accept dicts or JSON text (how params arrive when templates render to strings)."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise SynthesizerConfigError(f"{name} must be a JSON object, got {value!r}.") from exc
    if not isinstance(value, Mapping):
        raise SynthesizerConfigError(f"{name} must be a mapping, got {value!r}.")
    return dict(value)


def as_text(value: Any) -> str | None:
    """A name setting (connection id, bucket, schema): stripped text, or None when empty."""
    if _is_empty(value):
        return None
    return str(value).strip()
