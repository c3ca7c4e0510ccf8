"""Finding and checking migration files (no database: see tests/integration for applying)."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from airflow_synth.demo.migrations import MigrationError, checksum, discover_migrations

pytestmark = pytest.mark.unit

REPO_MIGRATIONS = Path(__file__).resolve().parents[2] / "sql" / "migrations"


def write(folder: Path, name: str, text: str = "SELECT 1;\n") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_repository_migrations_are_valid_and_start_at_v1() -> None:
    migrations = discover_migrations(REPO_MIGRATIONS)
    assert [m.script for m in migrations][:3] == [
        "V1__create_users_and_sessions.sql",
        "V2__create_demo_seed_info.sql",
        "V3__drop_demo_seed_info.sql",
    ]
    assert [m.version for m in migrations] == [str(i) for i in range(1, len(migrations) + 1)]


def test_versions_sort_numerically_and_dotted(tmp_path: Path) -> None:
    for name in ("V10__ten.sql", "V2__two.sql", "V2_1__two_point_one.sql", "V1.5__x.sql"):
        write(tmp_path, name)
    (tmp_path / "README.md").write_text("not a migration")
    migrations = discover_migrations(tmp_path)
    assert [m.version for m in migrations] == ["1.5", "2", "2.1", "10"]
    assert migrations[2].description == "two point one"


@pytest.mark.parametrize(
    "name", ["V1_create.sql", "v1__lower.sql", "R__repeatable.sql", "create_users.sql"]
)
def test_badly_named_sql_files_are_refused_by_name(tmp_path: Path, name: str) -> None:
    write(tmp_path, name)
    with pytest.raises(MigrationError, match=name.replace(".", r"\.")):
        discover_migrations(tmp_path)


def test_duplicate_versions_and_empty_files_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "V1__a.sql")
    write(tmp_path, "V1__b.sql")
    with pytest.raises(MigrationError, match="same version 1"):
        discover_migrations(tmp_path)
    (tmp_path / "V1__b.sql").unlink()
    write(tmp_path, "V2__empty.sql", "  \n")
    with pytest.raises(MigrationError, match="V2__empty.sql is empty"):
        discover_migrations(tmp_path)


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="nowhere"):
        discover_migrations(tmp_path / "nowhere")


def test_checksum_is_flyways_crc32_of_the_lines() -> None:
    # Flyway: CRC-32 over each line's UTF-8 bytes without its line break, as a signed int.
    assert checksum("a;\nb;\n") == zlib.crc32(b"a;b;")
    assert checksum("a;\r\nb;\r\n") == checksum("\ufeffa;\rb;") == checksum("a;\nb;\n")
    assert checksum("a;\nb;\n") != checksum("a;\nb;\n-- comment\n")
    negative = next(
        t for t in (f"SELECT {i};" for i in range(100)) if zlib.crc32(t.encode()) >= 2**31
    )
    assert checksum(negative) == zlib.crc32(negative.encode()) - 2**32
