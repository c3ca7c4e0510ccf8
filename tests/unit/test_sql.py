"""Finding, reading and fingerprinting feature SQL files (airflow_synth.core.extract.sql)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_synth.core.errors import SqlFileError, SynthError
from airflow_synth.core.extract.sql import (
    check_sql_template,
    read_sql_file,
    resolve_sql_file,
    sql_hash,
    strip_sql_comments,
)

pytestmark = pytest.mark.unit

QUERY = "SELECT id, age\nFROM users\nWHERE age > %(min_age)s\n"


@pytest.fixture
def two_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """Two search folders; only the second holds features/users.sql."""
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "features").mkdir(parents=True)
    (second / "features").mkdir(parents=True)
    (second / "features" / "users.sql").write_text(QUERY, encoding="utf-8")
    return first, second


# --------------------------------------------------------------------------------------------
# resolve_sql_file
# --------------------------------------------------------------------------------------------
def test_resolve_finds_relative_name_in_a_later_search_dir(two_dirs: tuple[Path, Path]) -> None:
    first, second = two_dirs
    found = resolve_sql_file("features/users.sql", [first, second])
    assert found == (second / "features" / "users.sql").resolve()
    assert found.is_absolute()


def test_resolve_prefers_the_first_search_dir_that_has_the_file(
    two_dirs: tuple[Path, Path],
) -> None:
    first, second = two_dirs
    (first / "features" / "users.sql").write_text("SELECT 1", encoding="utf-8")
    assert (
        resolve_sql_file("features/users.sql", [first, second])
        == (first / "features" / "users.sql").resolve()
    )


def test_resolve_accepts_string_dirs_and_skips_empty_ones(two_dirs: tuple[Path, Path]) -> None:
    _, second = two_dirs
    found = resolve_sql_file("features/users.sql", ["", None, str(second)])  # type: ignore[list-item]
    assert found.read_text(encoding="utf-8") == QUERY


def test_resolve_falls_back_to_the_current_directory(
    two_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, second = two_dirs
    monkeypatch.chdir(second)
    assert resolve_sql_file("features/users.sql") == (second / "features" / "users.sql").resolve()


def test_resolve_absolute_path_ignores_search_dirs(
    two_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    first, second = two_dirs
    absolute = second / "features" / "users.sql"
    assert resolve_sql_file(absolute, [first]) == absolute.resolve()
    with pytest.raises(SqlFileError) as err:
        resolve_sql_file(tmp_path / "nope.sql", [second])
    # only the absolute path itself was tried, not the search folders
    assert str(tmp_path / "nope.sql") in str(err.value)
    assert str(second) not in str(err.value)


def test_resolve_directory_is_not_a_sql_file(tmp_path: Path) -> None:
    (tmp_path / "features.sql").mkdir()
    with pytest.raises(SqlFileError):
        resolve_sql_file("features.sql", [tmp_path])


def test_resolve_missing_file_lists_every_place_tried(
    two_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first, second = two_dirs
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SqlFileError) as err:
        resolve_sql_file("features/orders.sql", [first, second])
    message = str(err.value)
    assert "'features/orders.sql' not found" in message
    for folder in (first, second, tmp_path):
        assert f"  - {folder / 'features' / 'orders.sql'}" in message
    assert "SYNTH_SQL_DIR" in message
    assert isinstance(err.value, SynthError)


# --------------------------------------------------------------------------------------------
# read_sql_file / strip_sql_comments
# --------------------------------------------------------------------------------------------
def test_read_returns_exact_text(tmp_path: Path) -> None:
    path = tmp_path / "q.sql"
    text = "-- users older than a bound\nSELECT 'ünïcode' AS s, 1\n"
    path.write_text(text, encoding="utf-8")
    assert read_sql_file(path) == text
    assert read_sql_file(str(path)) == text


@pytest.mark.parametrize(
    "content",
    ["", "   \n\t\n", "-- just a comment\n", "-- one\n   -- two\n\n", "  --SELECT 1"],
)
def test_read_refuses_empty_or_comment_only_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.sql"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SqlFileError, match="is empty") as err:
        read_sql_file(path)
    assert str(path) in str(err.value)


def test_read_accepts_code_after_a_comment_line(tmp_path: Path) -> None:
    path = tmp_path / "q.sql"
    path.write_text("-- header\nSELECT 1 -- trailing\n", encoding="utf-8")
    assert read_sql_file(path).startswith("-- header")


@pytest.mark.parametrize("make", ["missing", "directory"])
def test_read_unreadable_file_names_the_path(tmp_path: Path, make: str) -> None:
    path = tmp_path / "q.sql"
    if make == "directory":
        path.mkdir()
    with pytest.raises(SqlFileError, match="Cannot read SQL file") as err:
        read_sql_file(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value.__cause__, OSError)
    assert "UTF-8" in str(err.value)


def test_read_invalid_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.sql"
    path.write_bytes("SELECT 'café'".encode("latin-1"))
    with pytest.raises(SqlFileError, match="UTF-8") as err:
        read_sql_file(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT 1 -- one\nFROM t", "SELECT 1 \nFROM t"),
        ("-- only\n-- comments", "\n"),
        ("SELECT a--b\n", "SELECT a"),
        ("no comments here", "no comments here"),
        ("", ""),
    ],
)
def test_strip_sql_comments(text: str, expected: str) -> None:
    assert strip_sql_comments(text) == expected


# --------------------------------------------------------------------------------------------
# sql_hash
# --------------------------------------------------------------------------------------------
def test_sql_hash_known_vectors() -> None:
    # Published SHA-256 test vectors: the hash is plain sha256 of the UTF-8 text.
    assert sql_hash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sql_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_sql_hash_is_stable_and_sensitive_to_any_change() -> None:
    assert sql_hash(QUERY) == sql_hash(str(QUERY))
    variants = {QUERY, QUERY.rstrip("\n"), QUERY.replace("age >", "age >="), QUERY.upper()}
    assert len({sql_hash(v) for v in variants}) == len(variants)
    assert all(len(sql_hash(v)) == 64 for v in variants)
    assert sql_hash("é") != sql_hash("e")


# --------------------------------------------------------------------------------------------
# the SQL file's template reads only trusted values
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "SELECT 1",
        "SELECT * FROM t WHERE d >= '{{ ds }}' AND d < '{{ macros.ds_add(ds, 7) }}'",
        "SELECT * FROM t WHERE at < '{{ data_interval_end }}' -- {{ ts_nodash }}",
        "{% for i in range(2) %}SELECT {{ i }} {{ loop.index }}{% endfor %}",
        "SELECT * FROM t WHERE id > %(min_id)s AND a LIKE 'x%%'",
    ],
)
def test_a_template_of_airflow_run_values_passes_unchanged(text: str) -> None:
    assert check_sql_template(text, "features/x.sql") == text


@pytest.mark.parametrize(
    ("text", "shown", "placeholder"),
    [
        ("SELECT * FROM t WHERE city = '{{ params.city }}'", "{{ params.city }}", "city"),
        ("SELECT {{ dag_run.conf['day'] }}", "{{ dag_run.conf['day'] }}", "day"),
        ("{% set p = params %}SELECT {{ p.x }}", "{{ params }}", "value"),
        ("SELECT '{{ var.value.region }}'", "{{ var.value.region }}", "region"),
        ("SELECT '{{ run_id }}'", "{{ run_id }}", "run_id"),
        ("SELECT {{ ti.xcom_pull('t') }}", "{{ ti.xcom_pull }}", "xcom_pull"),
        ("SELECT {{ macros.ds_add(params.day, 1) }}", "{{ params.day }}", "day"),
    ],
)
def test_a_template_that_reads_a_user_value_is_refused_with_the_fix(
    text: str, shown: str, placeholder: str
) -> None:
    with pytest.raises(SqlFileError) as refused:
        check_sql_template(text, "features/x.sql")
    message = str(refused.value)
    assert message.startswith(f"SQL file features/x.sql reads {shown}")
    assert "SQL injection" in message
    assert f"%({placeholder})s" in message
    assert f'parameters={{"{placeholder}": "{shown}"}}' in message


def test_the_dags_own_macros_are_trusted() -> None:
    text = "SELECT * FROM t WHERE region = '{{ region }}'"
    assert check_sql_template(text, "x.sql", trusted={"region": "eu"}) == text
    with pytest.raises(SqlFileError, match="reads {{ region }}"):
        check_sql_template(text, "x.sql")


@pytest.mark.parametrize(
    "text", ["{% include 'other.sql' %}", "{% extends 'base.sql' %}", "{% import 'm' as m %}"]
)
def test_a_template_that_pulls_in_another_file_is_refused(text: str) -> None:
    with pytest.raises(SqlFileError, match="one file"):
        check_sql_template(text, "x.sql")


def test_a_broken_template_names_the_file_and_line() -> None:
    with pytest.raises(SqlFileError, match=r"x.sql is not a valid Jinja template, at line 2"):
        check_sql_template("SELECT 1\nWHERE {{ ds ", "x.sql")
