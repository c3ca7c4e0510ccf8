"""Objects one task hands to the next through private staging (a fit, a model, a plan).

A fitted model or a prepared table set is not JSON: it travels as a pickle file in the
run's private staging prefix, written by one task and read by the next on any worker, and
deleted with the run's other staged files by the teardown. Only our own tasks read these
files, and only from the run's own staging prefix (never a published or user-given path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def dump_staged(obj: Any, path: Path) -> Path:
    """Pickle ``obj`` (cloudpickle: fitted SDV models and closures included) to ``path``."""
    import cloudpickle

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        cloudpickle.dump(obj, handle)
    return path


def load_staged(path: Path, kind: type[T] | None = None) -> T:
    """The object :func:`dump_staged` wrote; ``kind`` checks what it is (None: a model of a
    table, which may legitimately be ``None``: nothing to learn)."""
    import cloudpickle

    with open(path, "rb") as handle:
        obj = cloudpickle.load(handle)
    if kind is not None and not isinstance(obj, kind):
        raise TypeError(f"{path} is not a staged {kind.__name__}")
    return obj
