"""The dev environment of ``make dev-shell`` / ``make dev-env``, without servers.

The env file is checked the way it is used: read by a real POSIX shell with
``set -a; . FILE; set +a``, whose result must equal :func:`expanded` (what the dev shell
itself passes to ``$SHELL``), value for value, including connection URIs full of ``&``,
``%`` and ``?``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from airflow_synth.local.devshell import (
    CURRENT_FOLDER,
    dev_environment,
    expanded,
    render_env_file,
    write_env_file,
)

pytestmark = pytest.mark.unit

CONNECTIONS = {
    "AIRFLOW_CONN_USERBOOKINGS_DB": "postgresql://postgres@127.0.0.1:5999/userbookings",
    "AIRFLOW_CONN_SYNTH_S3": "aws://k:s%2Fx@/?endpoint_url=http%3A%2F%2F127.0.0.1%3A1&region_name=x",
}


def _env(tmp_path: Path, **kwargs) -> dict[str, str]:
    project = tmp_path / "repo"
    return dev_environment(
        CONNECTIONS,
        airflow_home=tmp_path / "state" / "dev" / "airflow",
        project=project,
        venv=project / ".venv",
        state_dir=tmp_path / "state",
        **kwargs,
    )


def _read_with_shell(path: Path, base: dict[str, str]) -> dict[str, str]:
    out = subprocess.run(
        ["/bin/sh", "-c", 'set -a; . "$1"; set +a; exec env -0', "sh", str(path)],
        env=base,
        capture_output=True,
        check=True,
    ).stdout.decode()
    pairs = (item.split("=", 1) for item in out.split("\0") if "=" in item)
    return {key: value for key, value in pairs if key not in ("PWD", "SHLVL", "_", "OLDPWD")}


def test_everything_a_users_dag_needs_is_in_the_environment(tmp_path: Path) -> None:
    env = _env(tmp_path)
    project = (tmp_path / "repo").resolve()
    assert env["AIRFLOW_HOME"] == str((tmp_path / "state" / "dev" / "airflow").resolve())
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:///")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == CURRENT_FOLDER == "."
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(project / "plugins")
    assert env["SYNTH_SQL_DIR"] == str(project / "sql")
    assert env["VIRTUAL_ENV"] == str(project / ".venv")
    assert env["PATH"] == f"{project / '.venv' / 'bin'}:${{PATH}}"
    assert env["SYNTH_LOCAL_DIR"] == str((tmp_path / "state").resolve())
    for key, value in CONNECTIONS.items():
        assert env[key] == value


def test_a_pinned_dags_folder_is_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = _env(tmp_path, dags_folder=Path("my_dags"))
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path.resolve() / "my_dags")


def test_a_shell_reads_the_env_file_as_the_dev_shell_passes_it(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env["ODD"] = "it's $HOME & `x` \\ 100%"
    path = write_env_file(tmp_path / "dev.env", env)
    assert path.stat().st_mode & 0o777 == 0o600  # it holds the local S3 secret
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    assert _read_with_shell(path, base) == expanded(env, base)
    assert expanded(env, base)["PATH"].split(":") == [
        str((tmp_path / "repo" / ".venv" / "bin").resolve()),
        "/usr/bin",
        "/bin",
    ]


def test_the_env_file_is_plain_dotenv(tmp_path: Path) -> None:
    """``KEY=value`` lines only (no ``export``): IDE env-file readers take nothing else."""
    text = render_env_file(_env(tmp_path))
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert all(re_key(line) for line in lines), lines
    assert not any(line.startswith("export ") for line in lines)


def re_key(line: str) -> bool:
    key, sep, _ = line.partition("=")
    return bool(sep) and key.isidentifier()
