"""Nothing real left behind: the sweeper removes what a run that never cleaned up left.

A run's teardown (``cleanup_staging``) removes its staged rows, and a failed publication
deletes its own uploads; but a worker killed mid-task (SIGKILL, OOM, a lost node) runs
neither, and a server that died mid-publication keeps what it had. The sweeper finds those
leftovers by age and removes them:

- **staged runs** in the staging bucket: ``<prefix>/<dag>/<run>/<dataset>/...``, removed
  when the newest object under it is older than the age (:func:`sweep_staging_store`);
- **local staging folders** ``<root>/<dag>/<run>/<dataset>/`` (``SYNTH_STAGING_DIR``,
  ``staging_dir=``), only folders marked as ours (:data:`RUN_MARKER`) or holding staged
  real rows, judged by the newest file in them (:func:`sweep_local_staging`);
- **task folders** a killed task left in a worker's temp dir (``airflow-synth-task-*``,
  ``airflow-synth-frame-*``; :func:`sweep_task_folders`);
- **manifest-less run folders** in the published bucket: ``<dataset>/<run>/`` without
  ``manifest.json`` (a first publication that died midway) and its model under
  ``_models/<dataset>/<run>/`` (derived from real rows), and models of runs never published
  (:func:`sweep_published`); a run that has a manifest keeps it, and with ``prune=True``
  its unreachable attempts go by the publisher's own rule
  (:func:`~airflow_synth.core.publish.store.prune_attempts`, 6 hours after they stopped
  being reachable).

The age (``older_than``, default :data:`DEFAULT_SWEEP_AFTER` = 24 hours, as the staging
bucket's lifecycle rule) is measured from the newest object or file of a run, so a run in
flight keeps its files as long as it writes; set it above your longest run. Runs in
``keep`` (the sweeping run itself) are never touched. Every function returns what it
removed and never raises for one bad entry (a warning, then the next one).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_synth.core.extract.staging import RUN_MARKER
from airflow_synth.core.extract.tables import REAL_DIR, REAL_FILE
from airflow_synth.core.names import check_dataset_name
from airflow_synth.core.publish.layout import FAILED_DIR, MANIFEST_FILE, MODELS_PREFIX

log = logging.getLogger(__name__)

DEFAULT_SWEEP_AFTER = timedelta(hours=24)
#: Temp folders of a task's own workspace (object staging) and of ``@task.synthesize``.
TASK_FOLDER_PREFIXES = ("airflow-synth-task-", "airflow-synth-frame-")

#: (key, last modified) of every object under a prefix.
Listing = list[tuple[str, datetime]]


@dataclass
class SweepReport:
    """What one sweep removed (locations and counts only: never a value)."""

    staged_runs: list[str] = field(default_factory=list)
    staged_objects: int = 0
    local_folders: list[str] = field(default_factory=list)
    task_folders: list[str] = field(default_factory=list)
    published_runs: list[str] = field(default_factory=list)
    published_objects: int = 0
    pruned_objects: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def removed(self) -> int:
        return (
            len(self.staged_runs)
            + len(self.local_folders)
            + len(self.task_folders)
            + len(self.published_runs)
            + self.pruned_objects
        )

    def merge(self, other: SweepReport) -> SweepReport:
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(self, name, mine + theirs)
        return self

    def summary(self) -> str:
        if not self.removed and not self.warnings:
            return "nothing to sweep"
        parts = []
        if self.staged_runs:
            parts.append(f"{len(self.staged_runs)} staged run(s) ({self.staged_objects} objects)")
        if self.local_folders:
            parts.append(f"{len(self.local_folders)} local staging folder(s)")
        if self.task_folders:
            parts.append(f"{len(self.task_folders)} task folder(s)")
        if self.published_runs:
            parts.append(
                f"{len(self.published_runs)} manifest-less published run(s) "
                f"({self.published_objects} objects)"
            )
        if self.pruned_objects:
            parts.append(f"{self.pruned_objects} object(s) of unreachable attempts")
        if self.warnings:
            parts.append(f"{len(self.warnings)} warning(s)")
        return "removed " + ", ".join(parts) if self.removed else ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def aged_listing(store: Any, prefix: str) -> Listing:
    """(key, last modified) of every object under ``prefix``: the store's own listing
    (``list_objects``: S3), else the files' modification times (a folder-backed store)."""
    lister = getattr(store, "list_objects", None)
    if lister is not None:
        return list(lister(prefix))
    root = getattr(store, "root", None)
    if root is None:
        raise TypeError(f"{type(store).__name__} cannot tell how old its objects are")
    return [
        (key, datetime.fromtimestamp((Path(root) / key).stat().st_mtime, UTC))
        for key in store.list_keys(prefix)
    ]


def _groups(listing: Listing, prefix: str, depth: int) -> dict[tuple[str, ...], Listing]:
    """The listing grouped by the first ``depth`` segments after ``prefix`` (keys with
    fewer segments are left out)."""
    groups: dict[tuple[str, ...], Listing] = {}
    for key, modified in listing:
        parts = key[len(prefix) :].split("/")
        if len(parts) > depth:
            groups.setdefault(tuple(parts[:depth]), []).append((key, modified))
    return groups


def _newest(listing: Listing) -> datetime:
    return max(modified for _, modified in listing)


def _delete(store: Any, keys: Sequence[str], report: SweepReport, where: str) -> bool:
    try:
        store.delete_keys(list(keys))
    except Exception as exc:  # noqa: BLE001 - the next sweep tries again
        report.warnings.append(f"could not delete {where}: {type(exc).__name__}: {exc}")
        log.warning("Sweep: could not delete %s (%s: %s)", where, type(exc).__name__, exc)
        return False
    return True


def sweep_staging_store(
    store: Any,
    bucket: str,
    prefix: str,
    *,
    older_than: timedelta = DEFAULT_SWEEP_AFTER,
    keep: Iterable[tuple[str, str]] = (),
    now: datetime | None = None,
) -> SweepReport:
    """Remove staged runs (``<prefix>/<dag>/<run>/<dataset>/``) of the staging bucket whose
    newest object is older than ``older_than``; ``keep`` holds (dag, run) key parts never
    touched. One run's objects are deleted together."""
    now, report = _now(now), SweepReport()
    base = prefix.strip("/") + "/"
    kept = {tuple(k) for k in keep}
    for (dag, run, dataset), objects in sorted(_groups(aged_listing(store, base), base, 3).items()):
        where = f"s3://{bucket}/{base}{dag}/{run}/{dataset}/"
        if (dag, run) in kept or now - _newest(objects) <= older_than:
            continue
        if _delete(store, [key for key, _ in objects], report, where):
            report.staged_runs.append(where)
            report.staged_objects += len(objects)
            log.info("Swept %s: %d staged object(s) of a run gone quiet", where, len(objects))
    return report


def _newest_mtime(folder: Path) -> datetime:
    newest = folder.lstat().st_mtime
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in (*dirnames, *filenames):
            try:
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
            except OSError:  # removed meanwhile
                continue
    return datetime.fromtimestamp(newest, UTC)


def _ours(path: Path) -> bool:
    """A real folder (no symlink) that this user owns."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return path.is_dir() and not path.is_symlink() and info.st_uid == os.geteuid()


def _remove_folder(path: Path, report: SweepReport, into: list[str]) -> None:
    try:
        shutil.rmtree(path)
    except OSError as exc:
        report.warnings.append(f"could not remove {path}: {exc}")
        log.warning("Sweep: could not remove %s (%s)", path, exc)
        return
    into.append(str(path))
    log.info("Swept %s: a staging folder nobody cleaned up", path)


def _is_run_folder(path: Path) -> bool:
    """A run's staging folder: marked, or holding staged real rows (folders of before the
    marker)."""
    return any((path / name).exists() for name in (RUN_MARKER, REAL_FILE, REAL_DIR))


def sweep_local_staging(
    roots: Iterable[str | Path],
    *,
    older_than: timedelta = DEFAULT_SWEEP_AFTER,
    keep: Iterable[tuple[str, str]] = (),
    now: datetime | None = None,
) -> SweepReport:
    """Remove local run staging folders ``<root>/<dag>/<run>/<dataset>/`` whose newest file
    is older than ``older_than`` (only run folders: see :func:`_is_run_folder`), then the
    run and dag folders they leave empty. ``keep``: (dag, run) never touched."""
    now, report = _now(now), SweepReport()
    kept = {tuple(k) for k in keep}
    for root in dict.fromkeys(Path(r).expanduser().resolve() for r in roots):
        if not _ours(root):
            continue
        for dataset_dir in sorted(root.glob("*/*/*")):
            dag, run = dataset_dir.parent.parent.name, dataset_dir.parent.name
            if (dag, run) in kept or not _ours(dataset_dir) or not _is_run_folder(dataset_dir):
                continue
            try:
                if now - _newest_mtime(dataset_dir) <= older_than:
                    continue
            except OSError:
                continue
            _remove_folder(dataset_dir, report, report.local_folders)
            for parent in (dataset_dir.parent, dataset_dir.parent.parent):
                try:
                    parent.rmdir()  # only when empty
                except OSError:
                    break
    return report


def sweep_task_folders(
    temp_dirs: Iterable[str | Path] | None = None,
    *,
    older_than: timedelta = DEFAULT_SWEEP_AFTER,
    now: datetime | None = None,
) -> SweepReport:
    """Remove the private task folders (:data:`TASK_FOLDER_PREFIXES`) a killed task left in
    the temp dirs (default: this process's), when their newest file is older than
    ``older_than``. Only this user's folders, never through a symlink."""
    now, report = _now(now), SweepReport()
    dirs = [tempfile.gettempdir()] if temp_dirs is None else list(temp_dirs)
    for temp in dict.fromkeys(Path(d).resolve() for d in dirs):
        try:
            entries = sorted(temp.iterdir())
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(TASK_FOLDER_PREFIXES) or not _ours(entry):
                continue
            try:
                if now - _newest_mtime(entry) <= older_than:
                    continue
            except OSError:
                continue
            _remove_folder(entry, report, report.task_folders)
    return report


def sweep_published(
    store: Any,
    bucket: str,
    *,
    datasets: Iterable[str] | None = None,
    older_than: timedelta = DEFAULT_SWEEP_AFTER,
    keep: Iterable[tuple[str, str]] = (),
    prune: bool = False,
    now: datetime | None = None,
    prune_attempts: Callable[..., list[str]] | None = None,
) -> SweepReport:
    """Remove manifest-less run folders of the published bucket, with their models.

    For each dataset (``datasets``, else every dataset folder in the bucket): a run folder
    ``<dataset>/<run>/`` without ``manifest.json``, and a model folder
    ``_models/<dataset>/<run>/`` whose run has no manifest, are deleted once the newest
    object of the run is older than ``older_than``. Readers never reach such a run (they
    go through manifests); the model was trained on real rows. ``_failed/`` quarantines
    and ``latest.json`` are left alone. ``prune``: runs that do have a manifest get
    ``prune_attempts`` (the publisher's rule for attempts no reader can reach).
    ``keep``: (dataset, run) never touched.
    """
    from airflow_synth.core.publish.layout import DatasetLayout

    if prune and prune_attempts is None:
        from airflow_synth.core.publish.store import prune_attempts as publisher_prune

        prune_attempts = publisher_prune
    now, report = _now(now), SweepReport()
    kept = {tuple(k) for k in keep}
    if datasets is None:
        runs = _groups(aged_listing(store, ""), "", 2)
        models = _groups(aged_listing(store, f"{MODELS_PREFIX}/"), f"{MODELS_PREFIX}/", 2)
    else:
        runs, models = {}, {}
        for dataset in datasets:
            check_dataset_name(dataset)
            runs.update(_groups(aged_listing(store, f"{dataset}/"), "", 2))
            model_prefix = f"{MODELS_PREFIX}/{dataset}/"
            models.update(_groups(aged_listing(store, model_prefix), f"{MODELS_PREFIX}/", 2))
    for dataset, run in sorted(set(runs) | set(models)):
        if not _published_run(dataset, run) or (dataset, run) in kept:
            continue
        files, model = runs.get((dataset, run), []), models.get((dataset, run), [])
        manifest = f"{dataset}/{run}/{MANIFEST_FILE}"
        if any(key == manifest for key, _ in files):
            if prune and prune_attempts is not None:
                try:
                    layout = DatasetLayout(bucket=bucket, dataset=dataset, run=run)
                    report.pruned_objects += len(prune_attempts(store, layout))
                except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                    report.warnings.append(f"could not prune {dataset}/{run}/: {exc}")
            continue
        if now - _newest(files + model) <= older_than:
            continue
        keys = [key for key, _ in files + model]
        where = f"s3://{bucket}/{dataset}/{run}/"
        if _delete(store, keys, report, where):
            report.published_runs.append(where)
            report.published_objects += len(keys)
            log.info(
                "Swept %s: a run folder without manifest (%d object(s), its model included)",
                where,
                len(keys),
            )
    return report


def _published_run(dataset: str, run: str) -> bool:
    """A (dataset, run) of the published layout: a valid dataset name, a run folder (not
    ``_failed``, nor a file such as ``latest.json``)."""
    if run.startswith("_") or run == FAILED_DIR:
        return False
    try:
        check_dataset_name(dataset)
    except ValueError:
        return False
    return True


def sweep(
    *,
    staging_store: Any = None,
    staging_bucket: str | None = None,
    staging_prefix: str | None = None,
    local_roots: Iterable[str | Path] = (),
    temp_dirs: Iterable[str | Path] | None = (),
    published_store: Any = None,
    published_bucket: str | None = None,
    datasets: Iterable[str] | None = None,
    older_than: timedelta = DEFAULT_SWEEP_AFTER,
    keep_runs: Iterable[tuple[str, str]] = (),
    keep_published: Iterable[tuple[str, str]] = (),
    prune: bool = False,
    now: datetime | None = None,
) -> SweepReport:
    """Every sweep above that is given its place, in one report; one that fails becomes a
    warning of the report and the others still run. ``temp_dirs=None``: the process's temp
    dir; ``()``: no task folders."""
    now, report = _now(now), SweepReport()
    steps: list[tuple[str, Callable[[], SweepReport]]] = []
    if staging_store is not None and staging_bucket:
        steps.append(
            (
                f"s3://{staging_bucket}/{staging_prefix}/",
                lambda: sweep_staging_store(
                    staging_store,
                    str(staging_bucket),
                    str(staging_prefix),
                    older_than=older_than,
                    keep=keep_runs,
                    now=now,
                ),
            )
        )
    roots = list(local_roots)
    if roots:
        steps.append(
            (
                ", ".join(map(str, roots)),
                lambda: sweep_local_staging(roots, older_than=older_than, keep=keep_runs, now=now),
            )
        )
    if temp_dirs is None or list(temp_dirs):
        steps.append(
            (
                "task folders",
                lambda: sweep_task_folders(temp_dirs, older_than=older_than, now=now),
            )
        )
    if published_store is not None and published_bucket:
        steps.append(
            (
                f"s3://{published_bucket}/",
                lambda: sweep_published(
                    published_store,
                    str(published_bucket),
                    datasets=datasets,
                    older_than=older_than,
                    keep=keep_published,
                    prune=prune,
                    now=now,
                ),
            )
        )
    for where, step in steps:
        try:
            report.merge(step())
        except Exception as exc:  # noqa: BLE001 - one place down must not stop the others
            report.warnings.append(f"could not sweep {where}: {type(exc).__name__}: {exc}")
            log.warning("Sweep of %s failed (%s: %s)", where, type(exc).__name__, exc)
    return report
