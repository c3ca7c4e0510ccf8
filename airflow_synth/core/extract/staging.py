"""The private staging area for real rows.

Real (non-synthetic) rows exist only here, only for the duration of a run, and the run's
teardown removes them whether the run succeeded or failed. Two kinds of staging:

- **object store** (the default): a private bucket/prefix through the AWS connection, one
  prefix per (dag, run, dataset). Each task works in a private local folder of its own,
  removed when the task ends, and hands files on through the object store, so any worker
  (Celery, Kubernetes) can run any step (:class:`ObjectStaging`);
- **a local folder** (an explicit choice for LocalExecutor: one machine runs every task):
  each run gets its own folder (mode 0700) under the staging root. The root must be this
  user's own (:func:`check_private_root`): under a shared ``/tmp`` another local user could
  create it first and read or redirect the real rows staged there.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from airflow_synth.core.errors import DiskFullError, SynthError
from airflow_synth.core.names import safe_key_part

STAGING_ENV = "SYNTH_STAGING_DIR"
#: Left in every run's local staging folder: the sweeper removes only folders that hold it
#: (a staging root set to a shared folder by mistake never loses anything else).
RUN_MARKER = ".airflow-synth-run"


def staging_root(base: str | Path | None = None) -> Path:
    """The staging root: ``base``, else ``$SYNTH_STAGING_DIR``, else a folder in the temp dir."""
    chosen = (
        base or os.environ.get(STAGING_ENV) or Path(tempfile.gettempdir()) / "airflow-synth-staging"
    )
    return Path(chosen).expanduser().resolve()


class UnsafeStagingError(SynthError):
    """The local staging root (or a folder in it) is not this user's own: real rows are
    not staged there."""


def _fix_staging(root: Path) -> str:
    return (
        f"Remove {root} (it only ever holds staging), or set {STAGING_ENV} (or the task's "
        "staging_dir) to a folder of this user's own, e.g. under $AIRFLOW_HOME."
    )


def check_private_root(root: Path) -> None:
    """Refuse a staging root another local user could read or redirect: one not owned by
    this process's user, or writable by group or others without the sticky bit (where
    they could rename our folders). A symlinked root is judged by the folder it points to.
    POSIX only (elsewhere nothing is checked)."""
    if not hasattr(os, "geteuid"):
        return
    me = os.geteuid()
    info = os.stat(root)
    if info.st_uid != me:
        raise UnsafeStagingError(
            f"The local staging root {root} belongs to uid {info.st_uid}, not to this "
            f"task's user (uid {me}): another local user could read the real rows staged "
            f"there or redirect them. {_fix_staging(root)}"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
        raise UnsafeStagingError(
            f"The local staging root {root} is writable by group or others (mode "
            f"{mode:04o}) without the sticky bit: another local user could rename the run "
            f"folders in it and redirect real rows. Make it private (chmod 700 {root}), or "
            f"set {STAGING_ENV} (or the task's staging_dir) to a folder of this user's own."
        )


def _check_own_folder(path: Path, root: Path) -> None:
    """A folder under the root must be a real folder of ours (another user may have made
    it first where the root lets others create entries)."""
    if not hasattr(os, "geteuid"):
        return
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafeStagingError(
            f"{path} in the local staging root is not a folder but a link or a file: real "
            f"rows are not staged through it. {_fix_staging(root)}"
        )
    if info.st_uid != os.geteuid():
        raise UnsafeStagingError(
            f"{path} in the local staging root belongs to uid {info.st_uid}, not to this "
            f"task's user (uid {os.geteuid()}): real rows are not staged there. "
            + _fix_staging(root)
        )


def run_staging_dir(
    dag_id: str, run_id: str, dataset: str, base: str | Path | None = None, create: bool = True
) -> Path:
    """The private folder of one (dag, run, dataset); created with owner-only permissions
    and marked (:data:`RUN_MARKER`, touched on each use) for the sweeper."""
    root = staging_root(base)
    path = root / safe_key_part(dag_id) / safe_key_part(run_id) / safe_key_part(dataset)
    if create:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        check_private_root(root)
        for part in (path.parent.parent, path.parent, path):  # each checked before entered
            part.mkdir(exist_ok=True, mode=0o700)
            _check_own_folder(part, root)
            os.chmod(part, 0o700)
        (path / RUN_MARKER).touch()
    return path


def remove_staging(path: str | Path, base: str | Path | None = None) -> bool:
    """Delete a run's staging folder (and its run folder if now empty). True if removed.

    Refuses anything outside the staging root, so a bad XCom value can never make the
    cleanup delete an unrelated folder.
    """
    root = staging_root(base)
    path = Path(path).resolve()
    if root not in path.parents:
        raise ValueError(f"refusing to delete {path}: not inside the staging root {root}")
    existed = path.exists()
    shutil.rmtree(path, ignore_errors=True)
    for parent in (path.parent, path.parent.parent):
        # only folders strictly inside the root: never the root, never above it
        if root in parent.parents and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
    return existed


def is_disk_full(exc: BaseException) -> bool:
    """An ``OSError`` of a full disk or an exhausted quota (pyarrow's writer says so too)."""
    if not isinstance(exc, OSError):
        return False
    return exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(exc)


def _space(path: Path) -> str:
    """``"12.0 MiB free of 1.0 GiB"`` on the filesystem holding ``path`` (or its parent)."""
    for candidate in (path, *path.parents):
        try:
            usage = shutil.disk_usage(candidate)
        except OSError:
            continue
        return f"{_size(usage.free)} free of {_size(usage.total)}"
    return "free space unknown"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


@contextmanager
def disk_full_named(path: str | Path, what: str) -> Iterator[None]:
    """Turn a full disk met in the block into a :class:`DiskFullError` that names ``path``
    (``what`` says which folder it is), the space on its filesystem and what to do."""
    try:
        yield
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        path = Path(path)
        written = f" (writing {exc.filename})" if getattr(exc, "filename", None) else ""
        raise DiskFullError(
            f"No space left on the device of {path}, {what}{written}: {_space(path)} now "
            "(after the partial files were removed). Nothing was published, and the real rows "
            "written so far were removed. Free space there or stage on a bigger disk: a local "
            f"staging folder is staging_dir= or ${STAGING_ENV}, a task's working folder is in "
            "the worker's temp dir ($TMPDIR); either needs room for about twice the extracted "
            "table's Parquet size. Not transient by itself: an Airflow task retry is safe "
            "once there is room.",
            str(path),
        ) from exc


def path_from_uri(uri: str) -> Path:
    """Local path of a ``file://`` staging URI."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("file", ""):
        raise ValueError(f"staging URI {uri!r} is not a local file URI")
    return Path(unquote(parsed.path))


# -- staging in an object store: any worker can run the next step ----------------------------

#: The default staging prefix inside the staging bucket.
DEFAULT_STAGING_PREFIX = "runs"


@dataclass(frozen=True)
class StagingLocation:
    """Where a run's real rows wait between its tasks.

    ``s3://bucket/prefix`` (the default, through the AWS connection): any worker can run
    the next step, nothing is shared but the object store. A local folder: one machine
    only (LocalExecutor), an explicit choice.
    """

    bucket: str | None = None
    prefix: str = DEFAULT_STAGING_PREFIX
    local_root: Path | None = None

    @classmethod
    def parse(cls, value: str | Path) -> StagingLocation:
        """``s3://bucket[/prefix]`` or a local folder (``file://`` or a plain path)."""
        text = str(value).strip()
        parsed = urlparse(text)
        if parsed.scheme == "s3":
            if not parsed.netloc:
                raise ValueError(f"staging location {text!r} names no bucket (s3://bucket/prefix)")
            prefix = parsed.path.strip("/") or DEFAULT_STAGING_PREFIX
            return cls(bucket=parsed.netloc, prefix=prefix)
        if parsed.scheme not in ("", "file"):
            raise ValueError(
                f"staging location {text!r} is neither s3://bucket/prefix nor a local folder"
            )
        return cls(local_root=staging_root(path_from_uri(text)))

    @property
    def in_object_store(self) -> bool:
        return self.bucket is not None

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}/" if self.bucket else str(self.local_root)


class ObjectStaging:
    """One run's staged files in an object store, mirrored from a task's private workspace.

    A task works in a local folder of its own (:attr:`local`, removed when the task ends);
    :meth:`stage` uploads the files an XCom result names and rewrites their references to
    ``s3://`` URIs, :meth:`fetch` does the reverse in the next task (on whatever worker),
    and :meth:`remove` deletes every object of the run (the teardown). Uploads and
    downloads go file to file, so memory stays bounded whatever the table's size.
    """

    def __init__(self, store: Any, bucket: str, prefix: str, run_key: str, local: Path) -> None:
        self.store, self.bucket, self.local = store, bucket, Path(local).resolve()
        self.run_prefix = f"{prefix.strip('/')}/{run_key.strip('/')}/"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.run_prefix}"

    def stage(self, result: Any) -> Any:
        """``result`` with every local file under :attr:`local` uploaded and named by URI."""
        return _rewrite(result, self._upload)

    def fetch(self, result: Any) -> Any:
        """``result`` with every staged object of this run downloaded and named by file URI."""
        return _rewrite(result, self._download)

    def remove(self) -> int:
        """Delete every staged object of the run; how many there were."""
        keys = self.store.list_keys(self.run_prefix)
        self.store.delete_keys(keys)
        return len(keys)

    def _upload(self, value: str) -> str:
        path = _local_path(value)
        if path is None or self.local not in path.parents and path != self.local:
            return value
        relative = path.relative_to(self.local).as_posix()
        if path.is_dir():
            return self.uri + (relative + "/" if relative != "." else "")
        if not path.is_file():
            return value
        key = self.run_prefix + relative
        self.store.put_file(path, key)
        return f"s3://{self.bucket}/{key}"

    def _download(self, value: str) -> str:
        if not value.startswith(self.uri):
            return value
        relative = value[len(self.uri) :]
        target = (self.local / relative).resolve()
        if self.local not in target.parents and target != self.local:
            raise ValueError(f"refusing to stage {value!r} outside the workspace {self.local}")
        if not relative or relative.endswith("/"):
            target.mkdir(parents=True, exist_ok=True, mode=0o700)
            return str(target)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.store.download(self.run_prefix + relative, target)
        return target.as_uri()


def _local_path(value: str) -> Path | None:
    if value.startswith("file://"):
        return path_from_uri(value).resolve()
    if value.startswith("/"):
        return Path(value).resolve()
    return None


def _rewrite(value: Any, change: Callable[[str], str]) -> Any:
    """``value`` (an XCom result: dicts, lists, strings) with ``change`` applied to strings."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, Mapping):
        return {key: _rewrite(item, change) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_rewrite(item, change) for item in value]
    return value
