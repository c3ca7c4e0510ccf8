"""Conditional writes (S3 ``If-Match`` / ``If-None-Match`` on PutObject) for the publisher.

``latest.json`` and a run's manifest move forward only
(:mod:`airflow_synth.core.publish.pointer`): read the object and its ETag, decide, and
write on the condition that nobody wrote in between. AWS S3 supports both headers since
2024 and SeaweedFS 4 does too (the local stack's server); a server that ignores them
would silently overwrite, so support is **probed** once per process and bucket: a probe
object is created with ``If-None-Match: *``, written again with ``If-None-Match: *`` and
with a wrong ``If-Match``, both of which must be refused (HTTP 412), then deleted. Where
the probe fails the publisher falls back to read-compare-write with a read-back (see the
pointer module), and says so once in the log.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, ClassVar

log = logging.getLogger(__name__)

#: Where the probe object lives for the moment of the probe (outside every dataset).
PROBE_PREFIX = "_airflow_synth/conditional-write-probe/"
_REFUSED = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}


def _code(exc: Exception) -> str | None:
    response: Any = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(code) if code else (str(status) if status else None)


class ConditionalWrites:
    """An :class:`~airflow_synth.hooks.object_store.S3ObjectStore` with conditional writes.

    Every other attribute is the wrapped store's, so it stands in for it anywhere.
    """

    #: probe results per (connection, bucket), for the life of the process
    _support: ClassVar[dict[tuple[str, str], bool]] = {}

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @property
    def _client(self) -> Any:
        return self._store.hook.get_conn()

    def supports_conditional_writes(self) -> bool:
        key = (str(self._store.aws_conn_id), str(self._store.bucket))
        if key not in self._support:
            self._support[key] = self._probe()
        return self._support[key]

    def _probe(self) -> bool:
        client, bucket = self._client, self._store.bucket
        probe = f"{PROBE_PREFIX}{secrets.token_hex(8)}"
        try:
            client.put_object(Bucket=bucket, Key=probe, Body=b"1", IfNoneMatch="*")
            honoured = not self.put_bytes_if(b"2", probe, if_none_match=True)
            honoured = honoured and not self.put_bytes_if(b"3", probe, if_match='"0"')
        except Exception as exc:  # noqa: BLE001 - any refusal of the headers means "no"
            honoured = False
            log.debug("conditional write probe failed: %s", exc)
        finally:
            try:
                client.delete_object(Bucket=bucket, Key=probe)
            except Exception as exc:  # noqa: BLE001 - a leftover probe object is harmless
                log.debug("could not delete the probe object %s: %s", probe, exc)
        if not honoured:
            log.warning(
                "Bucket %s (connection %s) does not honour conditional writes (If-Match / "
                "If-None-Match): latest.json is moved by read-compare-write with a read-back "
                "instead, which two publications finishing at the same instant can still race.",
                bucket,
                self._store.aws_conn_id,
            )
        return honoured

    def get_bytes_with_etag(self, key: str) -> tuple[bytes, str] | None:
        client = self._client
        try:
            got = client.get_object(Bucket=self._store.bucket, Key=key)
        except client.exceptions.NoSuchKey:
            return None
        return got["Body"].read(), str(got["ETag"])

    def put_bytes_if(
        self, data: bytes, key: str, *, if_match: str | None = None, if_none_match: bool = False
    ) -> bool:
        """Write ``data`` only if the object's ETag is ``if_match`` (or, ``if_none_match``,
        only if there is no object); False when the server refused on the condition."""
        condition: dict[str, str] = {}
        if if_match is not None:
            condition["IfMatch"] = if_match
        if if_none_match:
            condition["IfNoneMatch"] = "*"
        try:
            self._client.put_object(Bucket=self._store.bucket, Key=key, Body=data, **condition)
        except Exception as exc:
            if _code(exc) in _REFUSED:
                return False
            raise
        return True


def with_conditional_writes(store: Any) -> Any:
    """``store`` able to write on a condition (an S3 store is wrapped; others as they are)."""
    if hasattr(store, "supports_conditional_writes") or not hasattr(store, "hook"):
        return store
    return ConditionalWrites(store)
