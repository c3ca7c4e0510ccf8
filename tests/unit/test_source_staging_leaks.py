"""The extract's source connection is closed whatever fails around it (issue 13: "the
Postgres connection leaks when creating the staging folder fails")."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ownership import give_away

pytestmark = pytest.mark.unit

CONTEXT = {"dag": SimpleNamespace(dag_id="dag"), "run_id": "run"}


@pytest.fixture
def conn(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    from airflow_synth import runtime

    closed: list[bool] = []
    fake = SimpleNamespace(close=lambda: closed.append(True), closed=closed)
    monkeypatch.setattr(runtime, "postgres_connection", lambda conn_id: fake)
    monkeypatch.delenv("SYNTH_STAGING_DIR", raising=False)
    return fake


def enter(staging: str) -> Any:
    from airflow_synth import runtime

    with runtime.source_and_staging(CONTEXT, "ds", "src", staging):
        pytest.fail("the workspace could not be made: the block must not run")


def test_a_staging_folder_that_cannot_be_made_closes_the_connection(conn, tmp_path: Path):
    """The staging root is a file: making the run's folder fails after the source was
    reached; the connection is closed all the same."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(OSError):
        enter(str(blocker / "staging"))
    assert conn.closed == [True]


def test_an_unsafe_staging_root_closes_the_connection(conn, tmp_path: Path, monkeypatch):
    from airflow_synth.core.extract.staging import UnsafeStagingError

    root = tmp_path / "staging"
    root.mkdir()
    give_away(root, monkeypatch)
    with pytest.raises(UnsafeStagingError):
        enter(str(root))
    assert conn.closed == [True]
