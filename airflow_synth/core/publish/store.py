"""Publish a synthetic dataset so consumers never see a partial one.

The protocol: (1) remove this run's old manifest, which hides the run; (2) upload every
file and check its size; (3) write the manifest, last; (4) move the ``latest`` pointer.
A failure before (3) leaves no manifest, so the half-written run is invisible to readers,
who always go through a manifest (or the pointer), never through a folder listing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from airflow_synth.core.errors import PublishError
from airflow_synth.core.names import json_bytes
from airflow_synth.core.publish.layout import DatasetLayout

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1


class ObjectStore(Protocol):
    """The few object-store operations publishing needs (S3Hook-backed in Airflow)."""

    def put_file(self, path: Path, key: str) -> None: ...
    def put_bytes(self, data: bytes, key: str) -> None: ...
    def get_bytes(self, key: str) -> bytes | None: ...
    def size(self, key: str) -> int | None: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def delete_keys(self, keys: Iterable[str]) -> None: ...


class FileObjectStore:
    """An :class:`ObjectStore` over a local folder (tests, and publishing to a mount)."""

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


@dataclass(frozen=True)
class PublishedDataset:
    """Where a published run lives: small, for XCom and Asset events."""

    manifest_uri: str
    data_uris: dict[str, str]
    latest_uri: str
    rows: int
    seconds: float

    def to_xcom(self) -> dict[str, Any]:
        return {
            "manifest_uri": self.manifest_uri,
            "data_uris": self.data_uris,
            "latest_uri": self.latest_uri,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
        }


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def publish_dataset(
    store: ObjectStore,
    layout: DatasetLayout,
    files: Mapping[str, Path],
    manifest: Mapping[str, Any],
    *,
    update_latest: bool = True,
    load_started: float | None = None,
) -> PublishedDataset:
    """Upload ``files`` (name in the run folder -> local path), then the manifest, then latest.

    ``manifest`` is completed here with the file list (size, sha256, URI), the publication
    time and ``timings_seconds.load`` (from ``load_started``, a ``time.monotonic()`` value,
    up to the manifest write), because only this function knows what was actually uploaded.
    """
    started = time.monotonic()
    load_started = started if load_started is None else load_started
    missing = [str(path) for path in files.values() if not Path(path).is_file()]
    if missing:  # checked before anything changes, so a published run stays intact
        raise PublishError(f"Cannot publish {layout.run_prefix}: missing local files {missing}")
    manifest_key = layout.manifest_key
    store.delete_keys([manifest_key])  # hide the run while it is (re)written
    wanted = {layout.key(name) for name in files}
    stale = [k for k in store.list_keys(layout.run_prefix) if k not in wanted and k != manifest_key]
    store.delete_keys(stale)
    entries = []
    for name, path in files.items():
        key = layout.key(name)
        path = Path(path)
        expected = path.stat().st_size
        try:
            store.put_file(path, key)
            actual = store.size(key)
        except Exception as exc:
            raise PublishError(
                f"Uploading {name} to {layout.uri(key)} failed: {exc}. The run stays "
                "unpublished (no manifest was written); re-run the load task."
            ) from exc
        if actual != expected:
            raise PublishError(
                f"{layout.uri(key)} has {actual} bytes after upload, expected {expected}; "
                "the run stays unpublished. Re-run the load task."
            )
        entries.append(
            {"name": name, "uri": layout.uri(key), "bytes": expected, "sha256": sha256_file(path)}
        )
    published_at = datetime.now(UTC).isoformat()
    timings = {**manifest.get("timings_seconds", {})}
    timings["load"] = round(time.monotonic() - load_started, 3)
    full_manifest = {
        "manifest_version": MANIFEST_VERSION,
        **manifest,
        "timings_seconds": timings,
        "files": entries,
        "published_at": published_at,
    }
    store.put_bytes(json_bytes(full_manifest), manifest_key)
    if update_latest:
        pointer = {
            "dataset": layout.dataset,
            "run": layout.run,
            "manifest_uri": layout.uri(manifest_key),
            "published_at": published_at,
            # the run before, so health checks can compare two publications
            "previous_manifest_uri": _previous_manifest(store, layout),
        }
        store.put_bytes(json_bytes(pointer), layout.latest_key)
    log.info("Published %s (%d files)", layout.uri(manifest_key), len(entries))
    return PublishedDataset(
        manifest_uri=layout.uri(manifest_key),
        data_uris={e["name"]: e["uri"] for e in entries},
        latest_uri=layout.uri(layout.latest_key),
        rows=int(manifest.get("rows", 0)),
        seconds=time.monotonic() - started,
    )


def _previous_manifest(store: ObjectStore, layout: DatasetLayout) -> str | None:
    """The manifest the pointer names now, unless it is this run's own (a re-run)."""
    current = read_latest(store, layout.dataset)
    if current is None:
        return None
    if current.get("run") == layout.run:
        return current.get("previous_manifest_uri")
    return current.get("manifest_uri")


def read_manifest(store: ObjectStore, layout: DatasetLayout) -> dict[str, Any] | None:
    """The run's manifest, or None while the run is unpublished."""
    raw = store.get_bytes(layout.manifest_key)
    return json.loads(raw) if raw is not None else None


def read_latest(store: ObjectStore, dataset: str) -> dict[str, Any] | None:
    """The ``latest`` pointer of a dataset, or None if it was never published."""
    raw = store.get_bytes(f"{dataset}/latest.json")
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
