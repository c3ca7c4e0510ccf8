"""The private staging area for real rows.

Real (non-synthetic) rows exist only here, only for the duration of a run: each run gets
its own folder (mode 0700) under the staging root, and the run's teardown removes it
whether the run succeeded or failed. The root defaults to ``$SYNTH_STAGING_DIR`` or a
folder in the system temp dir; with a distributed executor point it at storage every
worker of the run can see (or run the ESL group on one worker queue).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from airflow_synth.core.names import safe_key_part

STAGING_ENV = "SYNTH_STAGING_DIR"


def staging_root(base: str | Path | None = None) -> Path:
    """The staging root: ``base``, else ``$SYNTH_STAGING_DIR``, else a folder in the temp dir."""
    chosen = (
        base or os.environ.get(STAGING_ENV) or Path(tempfile.gettempdir()) / "airflow-synth-staging"
    )
    return Path(chosen).expanduser().resolve()


def run_staging_dir(
    dag_id: str, run_id: str, dataset: str, base: str | Path | None = None, create: bool = True
) -> Path:
    """The private folder of one (dag, run, dataset); created with owner-only permissions."""
    root = staging_root(base)
    path = root / safe_key_part(dag_id) / safe_key_part(run_id) / safe_key_part(dataset)
    if create:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        for part in (path, path.parent, path.parent.parent):
            os.chmod(part, 0o700)
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


def path_from_uri(uri: str) -> Path:
    """Local path of a ``file://`` staging URI."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("file", ""):
        raise ValueError(f"staging URI {uri!r} is not a local file URI")
    return Path(unquote(parsed.path))
