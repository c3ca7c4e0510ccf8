"""The private staging area for real rows (airflow_synth.core.extract.staging)."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ownership import OTHER_UID, give_away

from airflow_synth.core.extract.staging import (
    STAGING_ENV,
    UnsafeStagingError,
    path_from_uri,
    remove_staging,
    run_staging_dir,
    staging_root,
)

pytestmark = pytest.mark.unit

RUN = "manual__2024-03-01T10:00:00+00:00"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000: without explicit chmod every new folder would be world-writable."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "staging"


# --------------------------------------------------------------------------------------------
# staging_root
# --------------------------------------------------------------------------------------------
def test_root_prefers_the_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: Path
) -> None:
    monkeypatch.setenv(STAGING_ENV, str(tmp_path / "from-env"))
    assert staging_root(root) == root.resolve()
    assert staging_root(str(root)) == root.resolve()


def test_root_falls_back_to_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STAGING_ENV, str(tmp_path / "from-env"))
    assert staging_root() == (tmp_path / "from-env").resolve()
    assert staging_root("") == (tmp_path / "from-env").resolve()


def test_root_default_is_in_the_temp_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STAGING_ENV, raising=False)
    expected = (Path(tempfile.gettempdir()) / "airflow-synth-staging").resolve()
    assert staging_root() == expected


def test_root_expands_user_and_resolves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert staging_root("~/stage/../staging") == (tmp_path / "staging").resolve()


# --------------------------------------------------------------------------------------------
# run_staging_dir
# --------------------------------------------------------------------------------------------
def test_run_dir_layout_uses_safe_names(root: Path) -> None:
    path = run_staging_dir("nightly/esl", RUN, "users features", base=root)
    assert path == root.resolve() / "nightly_esl" / "manual__2024-03-01T10_00_00_00_00" / (
        "users_features"
    )
    assert path.is_dir()


@pytest.mark.usefixtures("open_umask")
def test_run_dir_and_its_parents_are_owner_only(root: Path) -> None:
    path = run_staging_dir("dag", RUN, "users", base=root)
    # dataset, run and dag folders, and the root created here: 0700 even with umask 000
    for folder in (path, path.parent, path.parent.parent, root):
        assert oct(mode(folder)) == oct(0o700), folder


@pytest.mark.usefixtures("open_umask")
def test_existing_run_dir_is_tightened_again(root: Path) -> None:
    path = run_staging_dir("dag", RUN, "users", base=root)
    os.chmod(path, 0o777)
    os.chmod(path.parent, 0o755)
    (path / "real.parquet").write_bytes(b"rows")
    again = run_staging_dir("dag", RUN, "users", base=root)
    assert again == path
    assert (mode(path), mode(path.parent)) == (0o700, 0o700)
    assert (path / "real.parquet").read_bytes() == b"rows"  # idempotent: nothing wiped


def test_create_false_only_computes_the_path(root: Path) -> None:
    path = run_staging_dir("dag", RUN, "users", base=root, create=False)
    assert path == root.resolve() / "dag" / "manual__2024-03-01T10_00_00_00_00" / "users"
    assert not root.exists()


def test_run_dirs_of_different_datasets_and_runs_differ(root: Path) -> None:
    paths = {
        run_staging_dir("dag", "r1", "users", base=root, create=False),
        run_staging_dir("dag", "r1", "sessions", base=root, create=False),
        run_staging_dir("dag", "r2", "users", base=root, create=False),
        run_staging_dir("other", "r1", "users", base=root, create=False),
    }
    assert len(paths) == 4


def test_run_dir_refuses_names_that_would_escape(root: Path) -> None:
    with pytest.raises(ValueError):
        run_staging_dir("..", RUN, "users", base=root)
    path = run_staging_dir("../../etc", RUN, "users", base=root)
    assert root.resolve() in path.parents


# --------------------------------------------------------------------------------------------
# the root must be this user's own
# --------------------------------------------------------------------------------------------


def test_a_root_another_user_created_first_is_refused(root: Path, monkeypatch) -> None:
    """Another local user pre-creates the shared default root: real rows are not staged
    there, and nothing is created inside it."""
    root.mkdir(mode=0o777)
    give_away(root, monkeypatch)
    with pytest.raises(UnsafeStagingError) as refused:
        run_staging_dir("dag", RUN, "users", base=root)
    message = str(refused.value)
    assert f"{root.resolve()} belongs to uid {OTHER_UID}" in message
    assert STAGING_ENV in message
    assert list(root.iterdir()) == []


def test_a_symlinked_root_is_judged_by_its_target(root: Path, tmp_path: Path, monkeypatch) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    give_away(theirs, monkeypatch)
    root.symlink_to(theirs)
    with pytest.raises(UnsafeStagingError, match=f"belongs to uid {OTHER_UID}"):
        run_staging_dir("dag", RUN, "users", base=root)


def test_a_root_of_ours_writable_by_others_without_sticky_bit_is_refused(root: Path) -> None:
    root.mkdir()
    os.chmod(root, 0o777)
    with pytest.raises(UnsafeStagingError, match=r"mode 0777\) without the sticky bit"):
        run_staging_dir("dag", RUN, "users", base=root)
    os.chmod(root, 0o1777)  # sticky, like /tmp: others cannot rename our folders
    assert run_staging_dir("dag", RUN, "users", base=root).is_dir()


def test_a_folder_another_user_made_in_a_sticky_root_is_refused(root: Path, monkeypatch) -> None:
    """Where others may create entries (a sticky, world-writable root), each folder of the
    run's path must still be ours and a real folder, not a link."""
    root.mkdir()
    os.chmod(root, 0o1777)
    planted = root / "dag"
    planted.mkdir()
    give_away(planted, monkeypatch)
    with pytest.raises(UnsafeStagingError, match="dag in the local staging root belongs to uid"):
        run_staging_dir("dag", RUN, "users", base=root)
    planted.rmdir()
    elsewhere = root.parent / "elsewhere"
    elsewhere.mkdir()
    planted.symlink_to(elsewhere)
    with pytest.raises(UnsafeStagingError, match="not a folder but a link"):
        run_staging_dir("dag", RUN, "users", base=root)
    assert list(elsewhere.iterdir()) == []


def test_our_own_root_is_used_as_before(root: Path) -> None:
    path = run_staging_dir("dag", RUN, "users", base=root)
    assert path.is_dir() and mode(root) == 0o700


# --------------------------------------------------------------------------------------------
# remove_staging
# --------------------------------------------------------------------------------------------
def test_remove_deletes_files_and_empty_parents(root: Path) -> None:
    path = run_staging_dir("dag", RUN, "users", base=root)
    (path / "real.parquet").write_bytes(b"real rows")
    (path / "sub").mkdir()
    (path / "sub" / "x").write_text("y")
    assert remove_staging(path, base=root) is True
    assert not path.exists()
    assert not path.parent.exists()  # run folder, now empty
    assert not path.parent.parent.exists()  # dag folder, now empty
    assert root.is_dir()  # never the root itself


def test_remove_keeps_parents_that_still_hold_other_datasets(root: Path) -> None:
    users = run_staging_dir("dag", RUN, "users", base=root)
    sessions = run_staging_dir("dag", RUN, "sessions", base=root)
    (sessions / "real.parquet").write_bytes(b"x")
    assert remove_staging(users, base=root) is True
    assert not users.exists()
    assert (sessions / "real.parquet").read_bytes() == b"x"


def test_remove_of_missing_folder_returns_false(root: Path) -> None:
    path = run_staging_dir("dag", RUN, "users", base=root, create=False)
    root.mkdir()
    assert remove_staging(path, base=root) is False
    assert root.is_dir()


def test_remove_accepts_a_string_path(root: Path) -> None:
    path = run_staging_dir("dag", RUN, "users", base=root)
    assert remove_staging(str(path), base=str(root)) is True
    assert not path.exists()


@pytest.mark.parametrize(
    "target",
    [
        lambda root: root,
        lambda root: root.parent,
        lambda root: root.parent / "elsewhere",
        lambda root: root / ".." / "elsewhere",
        lambda root: Path("/"),
    ],
    ids=["root-itself", "parent-of-root", "sibling", "dotdot-escape", "filesystem-root"],
)
def test_remove_refuses_paths_outside_the_root(root: Path, target) -> None:
    root.mkdir()
    sibling = root.parent / "elsewhere"
    sibling.mkdir()
    (sibling / "keep.txt").write_text("precious")
    with pytest.raises(ValueError, match="refusing to delete .*not inside the staging root"):
        remove_staging(target(root), base=root)
    assert (sibling / "keep.txt").read_text() == "precious"
    assert root.is_dir()


def test_remove_refuses_a_symlink_that_points_outside(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="refusing"):
        remove_staging(root / "link", base=root)
    assert (outside / "keep.txt").exists()


def test_remove_never_deletes_folders_above_the_root(tmp_path: Path) -> None:
    # The root does not exist (yet): the cleanup of a never-created run folder must not
    # climb out of the root and delete the empty folder that would contain it.
    holder = tmp_path / "holder"
    holder.mkdir()
    root = holder / "staging"
    assert remove_staging(root / "dag", base=root) is False
    assert holder.is_dir()
    assert remove_staging(root / "dag" / "run", base=root) is False
    assert holder.is_dir()


def test_remove_shallow_path_keeps_root(root: Path) -> None:
    path = run_staging_dir("dag", RUN, "users", base=root)
    assert remove_staging(path.parent.parent, base=root) is True
    assert not path.parent.parent.exists()
    assert root.is_dir()
    assert root.parent.is_dir()


# --------------------------------------------------------------------------------------------
# path_from_uri
# --------------------------------------------------------------------------------------------
def test_path_from_uri_round_trips_as_uri(tmp_path: Path) -> None:
    path = tmp_path / "with space" / "ünï" / "real.parquet"
    assert path_from_uri(path.as_uri()) == path
    assert path_from_uri("/plain/path.parquet") == Path("/plain/path.parquet")


@pytest.mark.parametrize("uri", ["s3://synthetic/users/data.parquet", "http://x/y"])
def test_path_from_uri_refuses_remote_uris(uri: str) -> None:
    with pytest.raises(ValueError, match="is not a local file URI"):
        path_from_uri(uri)
