"""The extract step over a table set: each table's rows streamed to private staging.

One loop serves every entry point: a single feature table is a set of one (its SQL file,
parameters and contract), a multi-table set lists catalog tables and SQL files. Each
query's column types are checked first (:mod:`airflow_synth.core.extract.pg_types`: a type
without a treatment fails before any row is read), then the table is streamed to Parquet
(bounded memory), checked against its contract, and described for XCom; a failure removes
every table staged so far, so a run that cannot go on keeps no real rows.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from airflow_synth.core.contract import TableContract, check_contract
from airflow_synth.core.extract import pg_types
from airflow_synth.core.extract.sql import read_sql_file, resolve_sql_file, sql_hash
from airflow_synth.core.extract.stream import DEFAULT_BATCH_ROWS, stream_query_to_parquet
from airflow_synth.core.relations import (
    TableShape,
    build_table_set,
    read_catalog,
    single_column_keys_only,
)

log = logging.getLogger(__name__)

#: Where a single feature table's real rows are staged (inside the run's staging folder).
REAL_FILE = "real.parquet"
#: Where a table set's real tables are staged, one Parquet file per table.
REAL_DIR = "real"


@dataclass(frozen=True)
class TableSource:
    """One table of the set: the query that reads it and how to check what it returns."""

    name: str
    query: str
    sql_name: str
    parameters: Mapping[str, Any] | Sequence[Any] | None = None
    contract: TableContract | None = None
    #: a (possibly partial) contract that only declares roles (multi-table sets): it may
    #: accept JSON columns and the like (see pg_types), it is not checked column by column
    declared: TableContract | None = None
    #: a table of the schema read whole (its keys come from the catalog), not a SQL file
    catalog: bool = False

    def to_dict(self) -> dict[str, Any]:
        """What a mapped extract task needs (contracts travel as their references)."""
        return {
            "name": self.name,
            "query": self.query,
            "sql_name": self.sql_name,
            "catalog": self.catalog,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], declared: TableContract | None = None
    ) -> TableSource:
        return cls(
            str(data["name"]),
            str(data["query"]),
            str(data["sql_name"]),
            declared=declared,
            catalog=bool(data.get("catalog")),
        )


def extract_tables(
    conn: Any,
    sources: Sequence[TableSource],
    staged_path: Callable[[str], Path],
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    max_rows: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Stream every source to ``staged_path(name)`` and check it against its contract.

    Returns each table's XCom description (staging URI, rows, columns, SQL name and hash,
    contract file). ``max_rows`` (dry runs) bounds every query. Any failure deletes what
    was staged before it is raised.
    """
    staged: dict[str, dict[str, Any]] = {}
    written: list[Path] = []
    try:
        for source in sources:
            query = limit_query(source.query, max_rows) if max_rows is not None else source.query
            path = staged_path(source.name)
            written.append(path)
            columns = pg_types.describe_query(conn, query, source.parameters, source.sql_name)
            decisions = pg_types.decide(
                columns, source.sql_name, source.contract or source.declared
            )
            result = stream_query_to_parquet(
                conn,
                query,
                path,
                source.parameters,
                batch_rows=batch_rows,
                sql_name=source.sql_name,
                field_metadata=pg_types.field_metadata(decisions),
            )
            if source.contract is not None:
                check_contract(source.contract, result.columns)
            log.info(
                "Extracted %d rows x %d columns from %s in %.1f s (%d bytes staged)",
                result.rows,
                len(result.columns),
                source.sql_name,
                result.seconds,
                result.bytes,
            )
            staged[source.name] = {
                **result.to_xcom(),
                "source": source.sql_name,
                "sql_sha256": sql_hash(query),
                "contract_file": source.contract.source if source.contract else None,
            }
    except BaseException:
        for path in written:  # a run that cannot go on keeps no real rows
            path.unlink(missing_ok=True)
        raise
    return staged


def limit_query(sql: str, max_rows: int) -> str:
    """The query bounded to ``max_rows`` rows (trailing semicolons removed first)."""
    body = sql.rstrip().rstrip(";").rstrip()
    return f"SELECT * FROM (\n{body}\n) AS airflow_synth_bounded LIMIT {int(max_rows)}"


def quote_identifier(name: str) -> str:
    """A PostgreSQL identifier, quoted (works with psycopg 2 and 3 connections alike)."""
    if not name or "\x00" in name:
        raise ValueError(f"{name!r} is not a valid table or schema name")
    return '"' + name.replace('"', '""') + '"'


def run_extract(
    conn: Any,
    sql: str,
    staging_dir: Path,
    *,
    sql_name: str,
    parameters: Mapping[str, Any] | Sequence[Any] | None = None,
    contract: TableContract | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    max_rows: int | None = None,
) -> dict[str, Any]:
    """Extract one feature table (a set of one) into ``staging_dir/real.parquet``.

    ``max_rows`` (dry runs) bounds the extract by wrapping the query in
    ``SELECT * FROM (...) LIMIT n``.
    """
    source = TableSource("table", sql, sql_name, parameters, contract)
    staged = extract_tables(
        conn,
        [source],
        lambda _: Path(staging_dir) / REAL_FILE,
        batch_rows=batch_rows,
        max_rows=max_rows,
    )["table"]
    sql_file = staged.pop("source")  # the single-table result names it sql_file
    return {**staged, "sql_file": sql_file}


def plan_multitable_extract(
    conn: Any,
    tables: Mapping[str, str | None] | Sequence[str],
    *,
    schema: str = "public",
    relationships: Sequence[str | Mapping[str, Any]] = (),
    primary_keys: Mapping[str, str | Sequence[str]] | None = None,
    sql_dirs: Sequence[str | Path] = (),
    engine: str | None = None,
    contracts: Mapping[str, TableContract] | None = None,
) -> list[TableSource]:
    """Each table's source (query and name), checked before any row moves.

    ``tables`` lists table names (read with ``SELECT *`` from ``schema``), or maps names to
    a SQL file (``None`` = the table itself). When every table comes from the catalog, the
    set (keys, relationships) is validated here, before any row is read; with
    ``engine="hma"`` a schema HMA cannot model (composite keys, self-references) is refused.
    """
    wanted = dict.fromkeys(tables) if not isinstance(tables, Mapping) else dict(tables)
    if not wanted:
        raise ValueError("tables is empty: name at least one table of the set")
    direct = [name for name, sql_file in wanted.items() if not sql_file]
    if direct and len(direct) == len(wanted):  # all from the catalog: validate first
        shapes, catalog_relationships = read_catalog(conn, direct, schema)
        checked = build_table_set(shapes, catalog_relationships, relationships, primary_keys)
        if engine == "hma":
            single_column_keys_only(checked, engine)
    sources = []
    for name, sql_file in wanted.items():
        if sql_file:
            path = resolve_sql_file(sql_file, sql_dirs)
            source = TableSource(name, read_sql_file(path), str(path))
        else:
            query = f"SELECT * FROM {quote_identifier(schema)}.{quote_identifier(name)}"
            source = TableSource(name, query, f"{schema}.{name}", catalog=True)
        sources.append(replace(source, declared=(contracts or {}).get(name)))
    return sources


def extract_set_table(
    conn: Any, source: TableSource, staging_dir: Path, *, batch_rows: int = DEFAULT_BATCH_ROWS
) -> dict[str, Any]:
    """Stream one table of a set to ``staging_dir/real/<name>.parquet`` (a task of its own
    per table in the ready-made chain); its XCom description."""
    real_dir = Path(staging_dir) / REAL_DIR
    staged = extract_tables(
        conn, [source], lambda name: real_dir / f"{name}.parquet", batch_rows=batch_rows
    )
    return staged[source.name]


def describe_set(
    conn: Any,
    staged: Mapping[str, Mapping[str, Any]],
    staging_dir: Path | str,
    *,
    schema: str = "public",
    relationships: Sequence[str | Mapping[str, Any]] = (),
    primary_keys: Mapping[str, str | Sequence[str]] | None = None,
    sources: Sequence[TableSource] = (),
    seconds: float = 0.0,
) -> dict[str, Any]:
    """The extracted set: each staged table (``staged``, in ``sources``' order), its keys and
    relationships (catalog tables' from the database, SQL-file tables' declared), as the
    later steps read it."""
    names = [s.name for s in sources] or list(staged)
    direct = [s.name for s in sources if s.catalog]
    shapes: dict[str, TableShape] = {}
    catalog_relationships: list[Any] = []
    if direct:
        shapes, catalog_relationships = read_catalog(conn, direct, schema)
    tables = {name: dict(staged[name]) for name in names}
    for name, info in tables.items():
        if name not in shapes:
            shapes[name] = TableShape(name, tuple(column for column, _ in info["columns"]))
    table_set = build_table_set(shapes, catalog_relationships, relationships, primary_keys)
    for rel in table_set.relationships:
        log.info("Relationship %s (%s)", rel, rel.source)
    return {
        "staging_dir": str(Path(staging_dir).resolve()),
        "schema": schema,
        "tables": tables,
        "table_set": table_set.to_dict(),
        "rows": sum(t["rows"] for t in tables.values()),
        "seconds": round(seconds, 3),
    }


def run_multitable_extract(
    conn: Any,
    tables: Mapping[str, str | None] | Sequence[str],
    staging_dir: Path,
    *,
    schema: str = "public",
    relationships: Sequence[str | Mapping[str, Any]] = (),
    primary_keys: Mapping[str, str | Sequence[str]] | None = None,
    sql_dirs: Sequence[str | Path] = (),
    batch_rows: int = DEFAULT_BATCH_ROWS,
    engine: str | None = None,
    contracts: Mapping[str, TableContract] | None = None,
) -> dict[str, Any]:
    """Stage every table of the set as Parquet and describe the set (keys, relationships),
    in this process: :func:`plan_multitable_extract`, :func:`extract_set_table` per table
    (the ready-made chain runs those as mapped tasks), :func:`describe_set`.

    Keys and foreign keys of catalog tables come from the database; ``relationships`` and
    ``primary_keys`` add or override them (needed for SQL-file tables and for schemas
    without declared constraints). ``contracts`` (per table, possibly partial) may accept
    column types that need a declared role (JSON). A failure removes every table staged.
    """
    sources = plan_multitable_extract(
        conn,
        tables,
        schema=schema,
        relationships=relationships,
        primary_keys=primary_keys,
        sql_dirs=sql_dirs,
        engine=engine,
        contracts=contracts,
    )
    real_dir = Path(staging_dir) / REAL_DIR
    started = time.monotonic()
    try:
        staged = {
            source.name: extract_set_table(conn, source, staging_dir, batch_rows=batch_rows)
            for source in sources
        }
        return describe_set(
            conn,
            staged,
            staging_dir,
            schema=schema,
            relationships=relationships,
            primary_keys=primary_keys,
            sources=sources,
            seconds=time.monotonic() - started,
        )
    except BaseException:
        shutil.rmtree(real_dir, ignore_errors=True)  # a run that cannot go on keeps no real rows
        raise
