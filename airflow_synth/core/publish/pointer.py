"""Replace a small JSON object only forward: ``latest.json`` and a run's manifest.

Two publications may finish in any order (a slow run and a quick one, a retried attempt),
so the object readers follow is replaced only by something newer, as ranked by the caller
(a run's logical date, then the attempt's start). The write is one conditional PUT where
the store supports it (S3 ``If-Match`` / ``If-None-Match``): read the object and its ETag,
decide, write on the condition that nobody wrote in between, else read again and decide
again. A store that does not support conditional writes (:func:`conditional_writes` is
False: an S3 server that ignores the headers, a plain folder) falls back to
read-compare-write followed by a read-back that repeats the decision when another writer
replaced the object meanwhile; two writers that both finish the read-back before either
writes again can still race there (a window of one request round trip), which the
conditional path closes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from airflow_synth.core.errors import PublishError
from airflow_synth.core.names import json_bytes

log = logging.getLogger(__name__)

#: How often a write is retried when another writer got there first.
MAX_TRIES = 8


@runtime_checkable
class ConditionalStore(Protocol):
    """What an object store offers for conditional writes (S3 since 2024, SeaweedFS 4)."""

    def supports_conditional_writes(self) -> bool: ...
    def get_bytes_with_etag(self, key: str) -> tuple[bytes, str] | None: ...
    def put_bytes_if(
        self, data: bytes, key: str, *, if_match: str | None = None, if_none_match: bool = False
    ) -> bool: ...


def conditional_writes(store: Any) -> bool:
    """Whether ``store`` can write on a condition (and its server honours it)."""
    if not isinstance(store, ConditionalStore):
        return False
    return bool(store.supports_conditional_writes())


#: ``decide(current)`` returns the body to write over ``current`` (None: there is none),
#: or None to leave the object as it is.
Decide = Callable[[dict[str, Any] | None], Mapping[str, Any] | None]


def replace_forward(store: Any, key: str, decide: Decide) -> dict[str, Any] | None:
    """Write ``decide(current)`` at ``key`` unless it returns None; return what was written
    (None when the object there was left alone). See the module docstring."""
    conditional = conditional_writes(store)
    for _ in range(MAX_TRIES):
        if conditional:
            got = store.get_bytes_with_etag(key)
            current = json.loads(got[0]) if got is not None else None
            body = decide(current)
            if body is None:
                return None
            data = json_bytes(body)
            if got is None:
                written = store.put_bytes_if(data, key, if_none_match=True)
            else:
                written = store.put_bytes_if(data, key, if_match=got[1])
            if written:
                return dict(body)
            log.info("%s changed while it was being replaced; deciding again", key)
            continue
        raw = store.get_bytes(key)
        body = decide(json.loads(raw) if raw is not None else None)
        if body is None:
            return None
        data = json_bytes(body)
        store.put_bytes(data, key)
        if store.get_bytes(key) == data:  # nobody replaced it in between (read-back)
            return dict(body)
        log.info("%s was replaced by another writer; deciding again", key)
    raise PublishError(
        f"{key} kept changing while this publication tried to replace it ({MAX_TRIES} "
        "tries): another publication of the dataset is writing it. Re-run the task."
    )


def rank(body: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """How new a publication is: (run date, attempt start, attempt id), ISO text in UTC.

    A manifest or pointer written before attempts existed ranks lowest, so the first
    publication with attempts moves past it.
    """
    if not body:
        return ("", "", "")
    attempt = body.get("attempt") or {}
    return (
        str(body.get("run_date") or ""),
        str(attempt.get("started_at") or ""),
        str(attempt.get("id") or ""),
    )
