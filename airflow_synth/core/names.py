"""Small rules every room shares: a name safe as a path segment, JSON as written to files.

They sit below all rooms because staging (extract), reports (assess) and publication all
name things and write JSON the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def safe_key_part(value: str) -> str:
    """Make a run id or dataset name safe as one S3 key segment (no '/', ':' or '+')."""
    cleaned = _UNSAFE.sub("_", value.strip()).strip("._")
    if not cleaned:
        raise ValueError(f"{value!r} cannot be used as a path segment")
    return cleaned


def json_bytes(data: Mapping[str, Any]) -> bytes:
    """JSON as every report, manifest and pointer is written (indented, UTF-8)."""
    return json.dumps(data, indent=2, sort_keys=False, default=str).encode("utf-8")
