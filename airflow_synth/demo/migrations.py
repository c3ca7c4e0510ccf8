"""Versioned SQL migrations for the demo source database, applied the way Flyway does.

The schema of the demo database lives in ``sql/migrations/V<n>__<what>.sql`` files so the
same files work with Flyway (e.g. in a docker-compose setup) and here, where no JVM or
container is available. Like Flyway we apply each pending file once, in version order, each
in its own transaction, and record it with a checksum in a history table; a re-run applies
nothing, and an applied file that was edited afterwards stops everything with an error
naming the file, because the database no longer matches what the file says.

The history table is ``synth_schema_history`` in the connection's current schema. Its
checksums are computed exactly as Flyway computes them, and versions that Flyway itself
applied (successful rows of ``flyway_schema_history``, e.g. from the docker-compose
``flyway`` service) count as applied too: running both tools on one database neither
applies a file twice nor misses an edited one.
"""

from __future__ import annotations

import re
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from airflow_synth.core.errors import SynthError

HISTORY_TABLE = "synth_schema_history"
FLYWAY_HISTORY_TABLE = "flyway_schema_history"

#: Flyway's versioned-migration naming: V1__x.sql, V2_1__y.sql (version 2.1), V3.2__z.sql.
_FILE_PATTERN = re.compile(r"^V(?P<version>\d+(?:[._]\d+)*)__(?P<description>\w[\w.-]*)\.sql$")

#: Serialises concurrent appliers (two `make demo` runs) on the same database.
_ADVISORY_LOCK_KEY = 0x53594E5448  # "SYNTH"


class MigrationError(SynthError):
    """A migration file is invalid, was changed after it was applied, or failed to run."""


@dataclass(frozen=True)
class Migration:
    """One ``V<n>__<what>.sql`` file."""

    version: str
    description: str
    script: str
    path: Path
    checksum: int
    sql: str

    @property
    def version_key(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.version.split("."))


def checksum(text: str) -> int:
    """Flyway's checksum of a script: CRC-32 over its lines without line breaks, signed.

    Same algorithm as Flyway's ``ChecksumCalculator`` (``BufferedReader.readLine`` per line,
    BOM dropped, ``java.util.zip.CRC32``, cast to ``int``), so it can be compared with
    ``flyway_schema_history.checksum``; line endings (a CRLF checkout) do not change it.
    """
    crc = 0
    for line in re.split(r"\r\n|\r|\n", text.removeprefix("\ufeff")):
        crc = zlib.crc32(line.encode("utf-8"), crc)
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def discover_migrations(migrations_dir: str | Path) -> list[Migration]:
    """The migrations in ``migrations_dir``, in version order.

    Every ``*.sql`` file must follow the naming rule: a misspelt name would otherwise be
    skipped silently and its tables never created.
    """
    folder = Path(migrations_dir)
    if not folder.is_dir():
        raise MigrationError(f"Migrations folder {folder} does not exist.")
    migrations: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_PATTERN.match(path.name)
        if not match:
            raise MigrationError(
                f"{path}: not a versioned migration name. Use V<version>__<description>.sql, "
                "e.g. V3__add_reviews.sql (two underscores; repeatable R__ files are not "
                "supported)."
            )
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise MigrationError(f"{path} is empty.")
        migrations.append(
            Migration(
                version=match["version"].replace("_", "."),
                description=match["description"].replace("_", " "),
                script=path.name,
                path=path,
                checksum=checksum(text),
                sql=text,
            )
        )
    migrations.sort(key=lambda m: m.version_key)
    for before, after in zip(migrations, migrations[1:], strict=False):
        if before.version_key == after.version_key:
            raise MigrationError(
                f"{before.path} and {after.path} have the same version {after.version}: "
                "renumber one of them."
            )
    return migrations


def require_no_open_transaction(conn: psycopg.Connection, what: str) -> None:
    """Refuse a connection inside a transaction: our commits would become savepoints.

    psycopg's ``conn.transaction()`` only commits when it starts the transaction itself; in
    an already open one it makes a savepoint and nothing is durable until the caller commits.
    """
    status = conn.info.transaction_status
    if status != psycopg.pq.TransactionStatus.IDLE:
        raise MigrationError(
            f"{what} needs a connection with no open transaction (it commits its own work), "
            f"but this one is {status.name}. Call conn.commit() or conn.rollback() first."
        )


def _history(conn: psycopg.Connection) -> dict[str, tuple[str, int | None, object]]:
    """Applied versions -> (script, checksum, when), from our table and Flyway's."""
    rows = []
    if conn.execute("SELECT to_regclass(%s)", (FLYWAY_HISTORY_TABLE,)).fetchone()[0]:
        rows += conn.execute(
            sql.SQL(
                "SELECT version, script, checksum, installed_on FROM {} "
                "WHERE success AND type = 'SQL' AND version IS NOT NULL"
            ).format(sql.Identifier(FLYWAY_HISTORY_TABLE))
        ).fetchall()
    rows += conn.execute(
        sql.SQL("SELECT version, script, checksum, applied_at FROM {}").format(
            sql.Identifier(HISTORY_TABLE)
        )
    ).fetchall()
    return {version: (script, digest, applied_at) for version, script, digest, applied_at in rows}


def _validate(migrations: list[Migration], applied: dict, folder: Path) -> None:
    by_version = {m.version: m for m in migrations}
    for version, (script, digest, applied_at) in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"Migration {script} (version {version}) was applied on {applied_at} but is "
                f"missing from {folder}. Restore the file; applied migrations must stay."
            )
        if migration.checksum != digest:
            raise MigrationError(
                f"{migration.path} was changed after it was applied on {applied_at} "
                f"(recorded checksum {digest}, file now {migration.checksum}). "
                "Applied migrations must not be edited: restore the file and put the change "
                "in a new V<n>__<what>.sql."
            )
    if applied:
        latest = max(by_version[v].version_key for v in applied)
        late = [m for m in migrations if m.version not in applied and m.version_key < latest]
        if late:
            raise MigrationError(
                f"{late[0].path} has a version below the latest applied one "
                f"({'.'.join(map(str, latest))}) but was never applied. Give it a higher "
                "version number."
            )


def apply_migrations(conn: psycopg.Connection, migrations_dir: str | Path) -> list[str]:
    """Apply the pending ``V<n>__*.sql`` files of ``migrations_dir``; return their names.

    Each file runs in its own transaction together with its history row, so a failing file
    leaves the database at the previous version. Already applied files are checked against
    their recorded checksum first; nothing runs if any of them changed.
    ``conn`` is a psycopg 3 connection (what ``PostgresHook.get_conn()`` returns) with no
    open transaction.
    """
    require_no_open_transaction(conn, "apply_migrations")
    folder = Path(migrations_dir)
    migrations = discover_migrations(folder)
    lock = sql.SQL("SELECT pg_advisory_xact_lock({})").format(sql.Literal(_ADVISORY_LOCK_KEY))
    with conn.transaction():
        conn.execute(lock)
        conn.execute(
            sql.SQL(
                """
                CREATE TABLE IF NOT EXISTS {} (
                    version      varchar PRIMARY KEY,
                    description  varchar NOT NULL,
                    script       varchar NOT NULL,
                    checksum     integer NOT NULL,
                    applied_at   timestamptz NOT NULL DEFAULT now(),
                    execution_ms integer NOT NULL
                )
                """
            ).format(sql.Identifier(HISTORY_TABLE))
        )
        _validate(migrations, _history(conn), folder)

    applied_now: list[str] = []
    for migration in migrations:
        with conn.transaction():
            conn.execute(lock)
            if migration.version in _history(conn):  # applied meanwhile by someone else
                continue
            started = time.perf_counter()
            try:
                conn.execute(migration.sql.encode("utf-8"))
            except psycopg.Error as exc:
                raise MigrationError(
                    f"{migration.path} failed, nothing of it was applied: {exc}".rstrip()
                ) from exc
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (version, description, script, checksum, execution_ms) "
                    "VALUES (%s, %s, %s, %s, %s)"
                ).format(sql.Identifier(HISTORY_TABLE)),
                (
                    migration.version,
                    migration.description,
                    migration.script,
                    migration.checksum,
                    round((time.perf_counter() - started) * 1000),
                ),
            )
        applied_now.append(migration.script)
    return applied_now
