"""Where a task keeps its files, so that any worker can run any step of a run.

On a distributed executor (Celery, Kubernetes) the extract, synthesize and publish tasks of
one run land on different machines that share no disk. Each task therefore works in a
private local folder of its own (:attr:`TaskWorkspace.local`, owner-only, removed when the
task ends, failed or not) and hands its files to the next task through the run's staging
prefix in the object store: :meth:`TaskWorkspace.stage` uploads what its XCom result names
(the XCom then carries ``s3://`` URIs), :meth:`TaskWorkspace.fetch` downloads them in the
next task. The run's teardown deletes the staged objects (:func:`remove_run_staging`); the
staging bucket's lifecycle rule is the backstop for a teardown that never ran.

A local staging folder (``staging_dir=`` a path, or ``$SYNTH_STAGING_DIR``) is the explicit
choice for LocalExecutor: every task of the run uses the same folder on the one machine.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_synth.core.errors import ConnectionConfigError, StorageUnavailableError
from airflow_synth.core.extract.staging import (
    ObjectStaging,
    StagingLocation,
    disk_full_named,
    remove_staging,
    run_staging_dir,
)
from airflow_synth.core.names import safe_key_part
from airflow_synth.hooks.object_store import is_transient_s3_failure, s3_failure
from airflow_synth.hooks.synth import SynthHook

log = logging.getLogger(__name__)

#: A task's private working folder (object staging) is a temp dir named so: the sweeper
#: finds the ones a killed task left behind.
TASK_DIR_PREFIX = "airflow-synth-task-"
_STAGING_FAILED = "Staging real rows between tasks failed."
_STAGING_FIX = (
    "\nThe staging bucket is private and separate from the published one (README, "
    "'Production deployment'): create it, set 'staging' in the synth connection, or give "
    "staging_dir= a local folder on a single-machine (LocalExecutor) Airflow."
)


@dataclass
class TaskWorkspace:
    """A task's local folder, and how its files reach the run's other tasks."""

    local: Path
    location: StagingLocation
    staging: ObjectStaging | None = None  # None: a local staging folder every task shares

    def stage(self, result: Mapping[str, Any]) -> dict[str, Any]:
        """``result`` (an XCom value) with the local files it names handed to the next task."""
        if self.staging is None:
            return dict(result)
        with _staging_failures_named(self):
            return self.staging.stage(result)

    def check(self) -> None:
        """Reach the staging bucket before any real row is read (a missing bucket fails the
        extract up front, naming the bucket, not after the query ran)."""
        if self.staging is None:
            return
        try:
            self.staging.store.check()
        except StorageUnavailableError as exc:  # an outage: the settings may well be right
            raise StorageUnavailableError(f"{_STAGING_FAILED} {exc}") from exc
        except ConnectionConfigError as exc:
            raise ConnectionConfigError(f"{_STAGING_FAILED} {exc}{_STAGING_FIX}") from exc

    def fetch(self, result: Mapping[str, Any]) -> dict[str, Any]:
        """An upstream XCom value with the staged files it names brought into :attr:`local`."""
        if self.staging is None:
            return dict(result)
        with _staging_failures_named(self):
            return self.staging.fetch(result)


def run_key(context: Mapping[str, Any], dataset: str) -> tuple[str, str, str]:
    """(dag, run, dataset) of the task's run: every staging location derives from it, never
    from XCom, so the teardown finds it even when the extract pushed nothing."""
    return context["dag"].dag_id, context["run_id"], dataset


@contextmanager
def task_workspace(
    context: Mapping[str, Any], dataset: str, hook: SynthHook, staging_dir: str | None = None
) -> Iterator[TaskWorkspace]:
    """The task's workspace (see the module docstring); its local folder is removed at the
    end of the task when staging is in the object store. A full disk met in the task fails
    it with a :class:`~airflow_synth.core.errors.DiskFullError` that names the folder."""
    location = hook.staging(staging_dir)
    dag_id, run_id, _ = run_key(context, dataset)
    if not location.in_object_store:
        root = location.local_root or Path(tempfile.gettempdir())
        with disk_full_named(root, "the local staging root"):
            folder = run_staging_dir(dag_id, run_id, dataset, location.local_root)
        with disk_full_named(folder, "the run's local staging folder"):
            yield TaskWorkspace(folder, location)
        return
    local = Path(tempfile.mkdtemp(prefix=TASK_DIR_PREFIX))  # mode 0700
    try:
        key = "/".join(safe_key_part(part) for part in (dag_id, run_id, dataset))
        staging = ObjectStaging(
            hook.staging_store(location), str(location.bucket), location.prefix, key, local
        )
        with disk_full_named(local, "the task's working folder in the worker's temp dir"):
            yield TaskWorkspace(local, location, staging)
    finally:
        shutil.rmtree(local, ignore_errors=True)  # no real row stays on this worker


def remove_run_staging(
    context: Mapping[str, Any], dataset: str, hook: SynthHook, staging_dir: str | None = None
) -> bool:
    """Delete everything the run staged (real and synthetic rows); True if there was some."""
    location = hook.staging(staging_dir)
    dag_id, run_id, _ = run_key(context, dataset)
    if not location.in_object_store:
        folder = run_staging_dir(dag_id, run_id, dataset, location.local_root, create=False)
        removed = remove_staging(folder, base=location.local_root)
        log.info("%s staging folder %s", "Removed" if removed else "No", folder)
        return removed
    with task_workspace(context, dataset, hook, staging_dir) as workspace:
        assert workspace.staging is not None
        with _staging_failures_named(workspace):
            count = workspace.staging.remove()
    log.info("Removed %d staged object(s) under %s", count, workspace.staging.uri)
    return count > 0


@contextmanager
def _staging_failures_named(workspace: TaskWorkspace) -> Iterator[None]:
    """An object-store failure while staging names the staging bucket and connection."""
    try:
        yield
    except ConnectionConfigError:
        raise
    except Exception as exc:
        transient = is_transient_s3_failure(exc)
        if transient or type(exc).__module__.startswith(("botocore", "airflow", "boto3")):
            store = workspace.staging.store if workspace.staging else None
            conn_id = getattr(store, "aws_conn_id", "?")
            error = s3_failure(
                conn_id, str(workspace.location.bucket), exc, prefix=f"{_STAGING_FAILED} "
            )
            if not transient:
                error.args = (f"{error.args[0]}{_STAGING_FIX}",)
            raise error from exc
        raise
