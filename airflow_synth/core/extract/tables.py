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
    """Stage every table of the set as Parquet and describe the set (keys, relationships).

    With ``engine="hma"`` a schema HMA cannot model (composite keys, self-references) is
    refused before any row of a catalog table moves.

    ``tables`` lists table names (read with ``SELECT *`` from ``schema``), or maps names to
    a SQL file (``None`` = the table itself). Keys and foreign keys of catalog tables come
    from the database; ``relationships`` and ``primary_keys`` add or override them (needed
    for SQL-file tables and for schemas without declared constraints). ``contracts`` (per
    table, possibly partial) may accept column types that need a declared role (JSON).
    """
    wanted = dict.fromkeys(tables) if not isinstance(tables, Mapping) else dict(tables)
    if not wanted:
        raise ValueError("tables is empty: name at least one table of the set")
    direct = [name for name, sql_file in wanted.items() if not sql_file]
    shapes: dict[str, TableShape] = {}
    catalog_relationships = []
    if direct:
        shapes, catalog_relationships = read_catalog(conn, direct, schema)
    if len(direct) == len(wanted):  # all from the catalog: validate before moving any row
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
            source = TableSource(name, query, f"{schema}.{name}")
        sources.append(replace(source, declared=(contracts or {}).get(name)))
    real_dir = Path(staging_dir) / REAL_DIR
    started = time.monotonic()
    try:
        staged = extract_tables(
            conn, sources, lambda name: real_dir / f"{name}.parquet", batch_rows=batch_rows
        )
        for name, info in staged.items():
            if name not in shapes:
                shapes[name] = TableShape(name, tuple(column for column, _ in info["columns"]))
        table_set = build_table_set(shapes, catalog_relationships, relationships, primary_keys)
    except BaseException:
        shutil.rmtree(real_dir, ignore_errors=True)  # a run that cannot go on keeps no real rows
        raise
    for rel in table_set.relationships:
        log.info("Relationship %s (%s)", rel, rel.source)
    return {
        "staging_dir": str(Path(staging_dir).resolve()),
        "schema": schema,
        "tables": staged,
        "table_set": table_set.to_dict(),
        "rows": sum(t["rows"] for t in staged.values()),
        "seconds": round(time.monotonic() - started, 3),
    }
