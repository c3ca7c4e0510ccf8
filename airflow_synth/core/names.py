"""Small rules every room shares: dataset names, a name safe as a path segment, JSON as
written to files.

They sit below all rooms because staging (extract), reports (assess) and publication all
name things and write JSON the same way.

A **dataset name is an identity**: it is used as it is as the dataset's key prefix
(``s3://<bucket>/<dataset>/``), so it must already be a safe key segment.
:func:`check_dataset_name` refuses every other name instead of rewriting it (rewriting
made "sales eu", "sales/eu" and "sales_eu" one prefix that overwrote itself). Run ids are
Airflow's and are made safe with :func:`safe_key_part`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from airflow_synth.core.errors import SynthError

#: The characters a dataset name may use: lowercase letters, digits, ``_`` and ``-``,
#: starting and ending with a letter or digit (so it never collides with the
#: ``_models``/``_failed`` prefixes, is the same on case-insensitive file systems, and
#: makes a valid Airflow task group id ``esl_<dataset>``, where a ``.`` is not allowed).
DATASET_NAME_PATTERN = r"[a-z0-9]([a-z0-9_-]*[a-z0-9])?"
#: Longest dataset name (keeps every published key far below S3's 1,024 bytes).
DATASET_NAME_MAX_LENGTH = 64
DATASET_NAME_RULE = (
    f"{DATASET_NAME_MAX_LENGTH} characters at most of a-z, 0-9, '_' and '-', starting and "
    "ending with a letter or digit"
)
_DATASET_NAME = re.compile(rf"{DATASET_NAME_PATTERN}\Z")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def safe_key_part(value: str) -> str:
    """Make a run id (or a staging folder name) safe as one S3 key segment (no "/", ":" or
    "+"). Dataset names are never rewritten: see :func:`check_dataset_name`."""
    cleaned = _UNSAFE.sub("_", value.strip()).strip("._")
    if not cleaned:
        raise ValueError(f"{value!r} cannot be used as a path segment")
    return cleaned


class DatasetNameError(SynthError, ValueError):
    """A dataset name outside the documented character set (:data:`DATASET_NAME_RULE`)."""


def check_dataset_name(name: Any, *, templated_ok: bool = False) -> str:
    """``name`` as it is, if it is a valid dataset name; else :class:`DatasetNameError`.

    The one mapping from a dataset name to its key prefix is the identity, so every writer
    and reader (publish, ``latest.json``, health check, model loading) calls this and two
    different names can never share a prefix. Nothing is rewritten: ``"Sales EU"`` is
    refused with a message that suggests ``"sales_eu"``.

    ``templated_ok``: a Jinja template (``{{ ... }}``) passes as it is; at DAG parse time it
    is not rendered yet, and is checked once rendered, at run time.
    """
    if templated_ok and isinstance(name, str) and ("{{" in name or "{%" in name):
        return name
    if isinstance(name, str) and len(name) <= DATASET_NAME_MAX_LENGTH and _DATASET_NAME.match(name):
        return name
    suggestion = ""
    if isinstance(name, str):
        candidate = re.sub(r"[^a-z0-9_-]+", "_", name.strip().lower()).strip("_-")
        candidate = candidate[:DATASET_NAME_MAX_LENGTH].rstrip("_-")
        if candidate and _DATASET_NAME.match(candidate):
            suggestion = f" (e.g. {candidate!r})"
    raise DatasetNameError(
        f"Dataset name {name!r} is not allowed: a dataset name is used as it is as the "
        f"dataset's folder in the bucket, so it must be {DATASET_NAME_RULE}. "
        f"Rename the dataset{suggestion}; names are never rewritten, so two datasets "
        "cannot end up in one folder."
    )


def json_bytes(data: Mapping[str, Any]) -> bytes:
    """JSON as every report, manifest and pointer is written (indented, UTF-8)."""
    return json.dumps(data, indent=2, sort_keys=False, default=str).encode("utf-8")
