"""Publish a synthetic dataset so consumers never see a partial one, and never lose one.

The protocol (:func:`publish_dataset`), one **attempt** at a time:

1. every file is uploaded under the attempt's own prefix
   (``<dataset>/<run>/<attempt>/...``; the model under ``_models/<dataset>/<run>/<attempt>/``)
   and its size checked; no key another attempt wrote is touched;
2. the attempt's manifest (every file's URI, size and sha256) is written beside them;
3. the run's manifest ``<dataset>/<run>/manifest.json`` (what readers find) is replaced by
   it, in one PUT, only if this attempt is newer than the one it names (see
   :mod:`~airflow_synth.core.publish.pointer`);
4. ``<dataset>/latest.json`` moves to it, only if this run is newer (logical date, then
   attempt start) than the run it names, in one conditional write;
5. the run's gate quarantine ``<dataset>/_failed/<run>/`` (an earlier attempt that failed a
   gate) is removed, and superseded attempts of the run are pruned
   (:func:`prune_attempts`).

A failure before (3) changes nothing readers can reach: the previous publication, its
manifest and ``latest.json`` stay as they were, and this attempt's uploads are deleted
(best effort; what a dead server kept is an unreferenced attempt that
:func:`prune_attempts` removes later). Readers always go through a manifest (or the
pointer) and the URIs it lists, never through a folder listing or a guessed key.

**Cleanup of superseded attempts.** A reader may hold an older manifest while a rerun
replaces it, so an attempt's files outlive its replacement: :func:`prune_attempts` deletes
an attempt only when no manifest a reader can reach names it (neither the run's manifest
nor ``latest.json``) and it stopped being reachable more than ``grace``
(:data:`ATTEMPT_GRACE`) ago: a published attempt since the run's current manifest was
written, an attempt that never published since it started. Publishing runs it for the run
it publishes (so the attempt just replaced stays, the one before it goes once the grace
has passed); a maintenance task may run it for every run.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from airflow_synth.core.errors import PublishError
from airflow_synth.core.names import json_bytes
from airflow_synth.core.publish.layout import (
    MANIFEST_FILE,
    DatasetLayout,
    attempt_started,
    key_of_uri,
    latest_key,
)
from airflow_synth.core.publish.pointer import rank, replace_forward

log = logging.getLogger(__name__)

MANIFEST_VERSION = 2
#: How long an attempt that no reachable manifest names any more keeps its files (a reader
#: that read the older manifest just before the switch still finishes reading).
ATTEMPT_GRACE = timedelta(hours=6)


class ObjectStore(Protocol):
    """The few object-store operations publishing needs (S3Hook-backed in Airflow)."""

    def put_file(self, path: Path, key: str) -> None: ...
    def put_bytes(self, data: bytes, key: str) -> None: ...
    def get_bytes(self, key: str) -> bytes | None: ...
    def size(self, key: str) -> int | None: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def delete_keys(self, keys: Iterable[str]) -> None: ...


class FileObjectStore:
    """An :class:`ObjectStore` over a local folder (tests, and publishing to a mount).

    Conditional writes (:mod:`~airflow_synth.core.publish.pointer`) hold an exclusive lock
    on the folder; the ETag is the content's sha256.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def put_file(self, path: Path, key: str) -> None:
        self.put_bytes(Path(path).read_bytes(), key)

    def put_bytes(self, data: bytes, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)

    def get_bytes(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root
        return sorted(
            str(p.relative_to(base))
            for p in base.rglob("*")
            if p.is_file() and str(p.relative_to(base)).startswith(prefix)
        )

    def delete_keys(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def download(self, key: str, path: Path) -> Path:
        """Copy one object to a local file (as :class:`S3ObjectStore` streams it)."""
        source = self._path(key)
        if not source.is_file():
            raise PublishError(f"{source} does not exist")
        shutil.copyfile(source, path)
        return Path(path)

    # conditional writes (see airflow_synth.core.publish.pointer)
    def supports_conditional_writes(self) -> bool:
        return True

    def get_bytes_with_etag(self, key: str) -> tuple[bytes, str] | None:
        data = self.get_bytes(key)
        return None if data is None else (data, hashlib.sha256(data).hexdigest())

    def put_bytes_if(
        self, data: bytes, key: str, *, if_match: str | None = None, if_none_match: bool = False
    ) -> bool:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = self.get_bytes_with_etag(key)
            if if_none_match and current is not None:
                return False
            if if_match is not None and (current is None or current[1] != if_match):
                return False
            self.put_bytes(data, key)
            return True
        finally:
            os.close(fd)  # releases the lock


@dataclass(frozen=True)
class PublishedDataset:
    """Where a published attempt lives: small, for XCom and Asset events.

    ``manifest_uri`` is the attempt's own manifest (never rewritten: exactly what this
    task published); ``run_manifest_uri`` the run's (what readers of the run find).
    """

    manifest_uri: str
    data_uris: dict[str, str]
    latest_uri: str
    rows: int
    seconds: float
    run_manifest_uri: str = ""
    attempt: str = ""
    latest_moved: bool = False

    def to_xcom(self) -> dict[str, Any]:
        return {
            "manifest_uri": self.manifest_uri,
            "run_manifest_uri": self.run_manifest_uri,
            "attempt": self.attempt,
            "data_uris": self.data_uris,
            "latest_uri": self.latest_uri,
            "latest_moved": self.latest_moved,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
        }


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def utc_text(value: datetime | str | None) -> str | None:
    """A time as the manifests compare it: ISO text in UTC (microseconds), None for None."""
    if value is None or value == "":
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _upload(store: ObjectStore, layout: DatasetLayout, name: str, path: Path, key: str) -> dict:
    expected = path.stat().st_size
    try:
        store.put_file(path, key)
        actual = store.size(key)
    except Exception as exc:
        raise PublishError(
            f"Uploading {name} to {layout.uri(key)} failed: {exc}. Nothing readers see changed "
            "(the run's manifest and latest.json still name the previous publication); "
            "re-run the load task."
        ) from exc
    if actual != expected:
        raise PublishError(
            f"{layout.uri(key)} has {actual} bytes after upload, expected {expected}; nothing "
            "readers see changed. Re-run the load task."
        )
    return {"name": name, "uri": layout.uri(key), "bytes": expected, "sha256": sha256_file(path)}


def publish_dataset(
    store: ObjectStore,
    layout: DatasetLayout,
    files: Mapping[str, Path],
    manifest: Mapping[str, Any],
    *,
    update_latest: bool = True,
    load_started: float | None = None,
    model_files: Mapping[str, Path] | None = None,
    run_date: datetime | str | None = None,
    grace: timedelta = ATTEMPT_GRACE,
) -> PublishedDataset:
    """Publish one attempt: ``files`` (name in the attempt folder -> local path), then
    ``model_files`` (name -> local path, under the attempt's model folder), then the
    manifests, then ``latest.json``; see the module docstring.

    ``layout`` names the attempt (a fresh one when it names none). ``manifest`` is
    completed here with the file list (size, sha256, URI), the model's files, the attempt,
    ``run_date`` (the run's logical date or start: what ``latest.json`` moves forward by;
    default the attempt's start), the publication time and ``timings_seconds.load`` (from
    ``load_started``, a ``time.monotonic()`` value, up to the manifest write), because
    only this function knows what was actually uploaded.
    """
    started = time.monotonic()
    load_started = started if load_started is None else load_started
    model_files = dict(model_files or {})
    local = [Path(path) for path in (*files.values(), *model_files.values())]
    missing = [str(path) for path in local if not path.is_file()]
    if missing:  # checked before anything changes
        raise PublishError(f"Cannot publish {layout.run_prefix}: missing local files {missing}")
    layout = layout if layout.attempt is not None else layout.for_attempt()
    assert layout.attempt is not None
    started_at = utc_text(attempt_started(layout.attempt))
    uploaded: list[str] = []
    try:
        entries = []
        for name, path in files.items():
            entries.append(_upload(store, layout, name, Path(path), layout.key(name)))
            uploaded.append(layout.key(name))
        model_entries = []
        for name, path in model_files.items():  # last: a failed upload before leaves none
            key = f"{layout.model_prefix}{name}"
            model_entries.append(_upload(store, layout, name, Path(path), key))
            uploaded.append(key)
        published_at = datetime.now(UTC).isoformat()
        timings = {**manifest.get("timings_seconds", {})}
        timings["load"] = round(time.monotonic() - load_started, 3)
        body: dict[str, Any] = {
            "manifest_version": MANIFEST_VERSION,
            **manifest,
            "timings_seconds": timings,
            "files": entries,
            "attempt": {"id": layout.attempt, "started_at": started_at},
            "run_date": utc_text(run_date) or started_at,
            "manifest_uri": layout.uri(layout.attempt_manifest_key),
            "run_manifest_uri": layout.uri(layout.manifest_key),
            "published_at": published_at,
        }
        if model_entries:
            body["model"] = {"uri": layout.uri(layout.model_key), "files": model_entries}
        store.put_bytes(json_bytes(body), layout.attempt_manifest_key)
        uploaded.append(layout.attempt_manifest_key)
        previous: dict[str, Any] = {}

        def newer_than_the_run_manifest(current: dict[str, Any] | None) -> dict[str, Any] | None:
            previous.clear()
            previous.update(current or {})
            return body if rank(body) > rank(current) else None

        switched = replace_forward(store, layout.manifest_key, newer_than_the_run_manifest)
    except Exception as exc:
        _discard(store, uploaded)
        if isinstance(exc, PublishError):
            raise
        raise PublishError(
            f"Publishing {layout.uri(layout.attempt_prefix)} failed: {exc}. Nothing readers "
            "see changed; re-run the load task."
        ) from exc
    if switched is None:
        log.warning(
            "%s names a newer attempt (%s) than this one: left as it is; this attempt stays "
            "readable through %s",
            layout.uri(layout.manifest_key),
            (previous.get("attempt") or {}).get("id"),
            layout.uri(layout.attempt_manifest_key),
        )
    moved = False
    if update_latest and switched is not None:
        moved = _move_latest(store, layout, body)
    if switched is not None:
        _after_publication(store, layout, previous or None, grace)
    log.info("Published %s (%d files)", layout.uri(layout.attempt_manifest_key), len(entries))
    return PublishedDataset(
        manifest_uri=layout.uri(layout.attempt_manifest_key),
        data_uris={e["name"]: e["uri"] for e in entries},
        latest_uri=layout.uri(layout.latest_key),
        rows=int(manifest.get("rows", 0)),
        seconds=time.monotonic() - started,
        run_manifest_uri=layout.uri(layout.manifest_key),
        attempt=layout.attempt,
        latest_moved=moved,
    )


def _discard(store: ObjectStore, keys: list[str]) -> None:
    """Delete a failed attempt's uploads (best effort: a dead server keeps them, and
    :func:`prune_attempts` removes the unreferenced attempt later)."""
    if not keys:
        return
    try:
        store.delete_keys(keys)
    except Exception as exc:  # noqa: BLE001 - the upload's error is what the user must see
        log.warning("Could not delete the failed attempt's %d upload(s): %s", len(keys), exc)


def _move_latest(store: ObjectStore, layout: DatasetLayout, body: Mapping[str, Any]) -> bool:
    """Point ``latest.json`` at this attempt if it is newer than what it names."""

    def pointer(current: dict[str, Any] | None) -> dict[str, Any] | None:
        if rank(body) <= rank(current):
            return None
        if current is None:
            previous = None
        elif current.get("run") == layout.run:  # a rerun: keep the run before it
            previous = current.get("previous_manifest_uri")
        else:
            previous = current.get("run_manifest_uri") or current.get("manifest_uri")
        return {
            "dataset": layout.dataset,
            "run": layout.run,
            "run_date": body["run_date"],
            "attempt": body["attempt"],
            "manifest_uri": body["manifest_uri"],
            "run_manifest_uri": body["run_manifest_uri"],
            "published_at": body["published_at"],
            # the run before, so health checks can compare two publications
            "previous_manifest_uri": previous,
        }

    written = replace_forward(store, layout.latest_key, pointer)
    if written is None:
        log.warning(
            "%s names a newer run than %s (run date %s): latest.json left as it is",
            layout.uri(layout.latest_key),
            layout.run,
            body["run_date"],
        )
    return written is not None


def _after_publication(
    store: ObjectStore, layout: DatasetLayout, replaced: Mapping[str, Any] | None, grace: timedelta
) -> None:
    """Once the run's manifest names this attempt: remove the run's gate quarantine (an
    earlier attempt failed a gate) and prune superseded attempts (best effort)."""
    try:
        stale = store.list_keys(layout.failed_prefix)
        if stale:
            store.delete_keys(stale)
            log.info(
                "Removed the quarantine %s of an earlier attempt", layout.uri(layout.failed_prefix)
            )
        prune_attempts(store, layout, current=replaced, keep={str(layout.attempt)}, grace=grace)
    except Exception as exc:  # noqa: BLE001 - the publication itself succeeded
        log.warning("Published, but cleaning up after it failed (%s); the sweeper retries", exc)


def prune_attempts(
    store: ObjectStore,
    layout: DatasetLayout,
    *,
    current: Mapping[str, Any] | None = None,
    keep: Iterable[str] = (),
    grace: timedelta = ATTEMPT_GRACE,
    now: datetime | None = None,
) -> list[str]:
    """Delete the files of the run's attempts no reader can need any more; the keys deleted.

    Kept: the attempt ``current`` names (default: the run's manifest as it is now), the
    attempt ``latest.json`` names, ``keep``, and any attempt that became unreachable less
    than ``grace`` ago: a published attempt (it has its own manifest) became unreachable
    when ``current`` was published; one that never published (failed or in progress) is
    judged by its start. Files of the layout before attempts (directly in the run folder)
    count as one published attempt.
    """
    now = now or datetime.now(UTC)
    if current is None:
        raw = store.get_bytes(layout.manifest_key)
        current = json.loads(raw) if raw is not None else None
    if not current:
        return []  # nothing published: nothing is known to be superseded
    kept = set(keep)
    kept.add(str((current.get("attempt") or {}).get("id") or ""))  # "" = the old layout
    latest = read_latest(store, layout.dataset) or {}
    if latest.get("run") == layout.run:
        kept.add(str((latest.get("attempt") or {}).get("id") or ""))
    superseded_since = datetime.fromisoformat(str(current["published_at"]))
    groups: dict[str, list[str]] = {}
    for prefix in (layout.run_prefix, layout.models_run_prefix):
        for key in store.list_keys(prefix):
            rest = key[len(prefix) :]
            head, _, tail = rest.partition("/")
            if attempt_started(head) is not None:
                groups.setdefault(head, []).append(key)
            elif rest != MANIFEST_FILE and prefix == layout.run_prefix:
                groups.setdefault("", []).append(key)  # the layout before attempts
    deleted: list[str] = []
    for attempt, keys in sorted(groups.items()):
        if attempt in kept:
            continue
        published = attempt == "" or f"{layout.run_prefix}{attempt}/{MANIFEST_FILE}" in keys
        since = superseded_since if published else attempt_started(attempt)
        if since is None or now - since <= grace:
            continue
        store.delete_keys(keys)
        deleted.extend(keys)
        log.info(
            "Pruned %s attempt %s of %s (%d files)",
            "superseded" if published else "unpublished",
            attempt or "(before attempts)",
            layout.uri(layout.run_prefix),
            len(keys),
        )
    return deleted


def read_manifest(store: ObjectStore, layout: DatasetLayout) -> dict[str, Any] | None:
    """The run's manifest, or None while the run is unpublished."""
    raw = store.get_bytes(layout.manifest_key)
    return json.loads(raw) if raw is not None else None


def read_latest(store: ObjectStore, dataset: str) -> dict[str, Any] | None:
    """The ``latest`` pointer of a dataset, or None if it was never published."""
    raw = store.get_bytes(latest_key(dataset))
    return json.loads(raw) if raw is not None else None


def read_json_uri(store: ObjectStore, bucket: str, uri: str | None) -> dict[str, Any] | None:
    """A JSON object a manifest or pointer names by URI (None: no URI, or gone)."""
    if not uri:
        return None
    raw = store.get_bytes(key_of_uri(uri, bucket))
    return json.loads(raw) if raw is not None else None


#: Index of a quarantined run, written after its reports.
FAILED_INDEX = "failed.json"
#: What a quarantine may hold: reports (JSON, HTML). Data (Parquet, CSV) and models (pickle)
#: are refused by name, whatever a caller passes.
REPORT_SUFFIXES = (".json", ".html")
_NOT_REPORTS = ("data.", "model.", "manifest.json", "latest.json")


def is_report_name(name: str) -> bool:
    """True for a report file name that may be quarantined (``reports/<t>/report.html``)."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return False
    return name.endswith(REPORT_SUFFIXES) and not parts[-1].startswith(_NOT_REPORTS)


def publish_failed_reports(
    store: ObjectStore,
    layout: DatasetLayout,
    reports: Mapping[str, Path],
    *,
    failed_gates: Iterable[str] = (),
    producer: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Upload a failed run's reports to ``<dataset>/_failed/<run>/``; return name -> URI.

    A run that misses a gate publishes nothing, but the user must be able to read *why*:
    the reports go to a quarantine folder that no manifest and no ``latest.json`` ever
    names, followed by ``failed.json`` (gates failed, run, time: names and counts, no
    values). Only report files (:func:`is_report_name`) are uploaded, never data or a
    model; a re-run of the same run replaces its earlier quarantine.
    """
    wanted = {name: Path(path) for name, path in reports.items() if is_report_name(name)}
    refused = sorted(set(reports) - set(wanted))
    if refused:
        log.warning("Not quarantining %s: only report files (.json, .html) go there", refused)
    missing = sorted(name for name, path in wanted.items() if not path.is_file())
    wanted = {name: path for name, path in wanted.items() if name not in missing}
    stale = [
        key
        for key in store.list_keys(layout.failed_prefix)
        if key not in {layout.failed_key(name) for name in wanted}
    ]
    store.delete_keys(stale)
    uris: dict[str, str] = {}
    for name, path in wanted.items():
        key = layout.failed_key(name)
        store.put_file(path, key)
        uris[name] = layout.uri(key)
    index = {
        "dataset": layout.dataset,
        "run": layout.run,
        "failed_at": datetime.now(UTC).isoformat(),
        "failed_gates": list(failed_gates),
        "published": False,
        "report_uri": failed_report_uri(uris),
        "reports": uris,
        "missing_reports": missing,
    }
    if producer:  # which DAG run failed (names only): who may see it in the UI
        index["airflow"] = dict(producer)
    index_key = layout.failed_key(FAILED_INDEX)
    store.put_bytes(json_bytes(index), index_key)
    uris[FAILED_INDEX] = layout.uri(index_key)
    return uris


def failed_report_uri(uris: Mapping[str, str]) -> str | None:
    """The one URI to show a user: ``report.html``, else the first table's, else the index."""
    if "report.html" in uris:
        return uris["report.html"]
    tables = [uri for name, uri in uris.items() if name.endswith("/report.html")]
    if tables:
        return tables[0]
    return uris.get(FAILED_INDEX)
