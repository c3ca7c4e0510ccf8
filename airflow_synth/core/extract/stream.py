"""Stream a query's result from Postgres into a Parquet file with bounded memory.

A server-side (named) cursor hands rows over in batches; each batch becomes one Arrow
record batch and one Parquet row group, so memory stays flat however big the table is
(pandas ``read_sql`` holds everything and more: 1.6 GB peak for 1M rows here). Values are
bound by the driver (``%(name)s`` placeholders), never formatted into the SQL text.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from airflow_synth.core.contract import schema_columns
from airflow_synth.core.errors import EmptyExtractError, ExtractError
from airflow_synth.core.extract.sql import error_line
from airflow_synth.core.redact import scrub_message

log = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 50_000

# PostgreSQL built-in type OIDs (stable across versions) -> Arrow types.
_ARROW_BY_OID: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    26: pa.int64(),
    700: pa.float32(),
    701: pa.float64(),
    1700: pa.float64(),  # numeric: read as float64 (SDV models numbers as floats anyway)
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    18: pa.string(),
    19: pa.string(),
    25: pa.string(),
    1042: pa.string(),
    1043: pa.string(),
}
_NUMERIC_OID = 1700
_JSON_OIDS = (114, 3802)  # json, jsonb: psycopg parses them; write them back as JSON text
# What a named cursor puts before the query: ``DECLARE "name" CURSOR [WITHOUT HOLD] FOR ``.
_DECLARE_PREFIX = re.compile(r"\s*DECLARE\s.*?\sCURSOR\s(?:.*?\s)?FOR\s", re.IGNORECASE)


@dataclass(frozen=True)
class ExtractResult:
    """What an extract produced: small enough to travel through XCom."""

    path: Path
    rows: int
    columns: list[tuple[str, str]]
    seconds: float
    bytes: int

    def to_xcom(self) -> dict[str, Any]:
        return {
            "staging_uri": self.path.resolve().as_uri(),
            "rows": self.rows,
            "columns": [list(c) for c in self.columns],
            "seconds": round(self.seconds, 3),
            "bytes": self.bytes,
        }


def arrow_schema_for(description: Sequence[Any]) -> pa.Schema:
    """Arrow schema for a DB-API cursor description (unknown types become strings)."""
    return pa.schema(
        [(col.name, _ARROW_BY_OID.get(col.type_code, pa.string())) for col in description]
    )


def _column_array(values: Sequence[Any], arrow_type: pa.DataType, oid: int) -> pa.Array:
    if oid == _NUMERIC_OID:
        values = [None if v is None else float(v) for v in values]
    elif oid in _JSON_OIDS:  # str() would give a Python repr ({'a': True}), not JSON
        values = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
    elif pa.types.is_string(arrow_type) and oid not in _ARROW_BY_OID:
        values = [None if v is None else str(v) for v in values]
    return pa.array(values, type=arrow_type)


def _batch(rows: list[tuple], schema: pa.Schema, oids: list[int]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    arrays = [
        _column_array(col, field.type, oid)
        for col, field, oid in zip(columns, schema, oids, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def stream_query_to_parquet(
    conn: Any,
    sql: str,
    out_path: str | Path,
    parameters: Mapping[str, Any] | Sequence[Any] | None = None,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    sql_name: str = "<query>",
    allow_empty: bool = False,
) -> ExtractResult:
    """Run ``sql`` on a psycopg connection and write the rows to ``out_path`` as Parquet.

    The file appears under its final name only once complete (written beside it, then
    renamed), so a crashed extract never leaves a truncated file that looks finished.
    Raises :class:`ExtractError` with the database's message and the failing line of
    ``sql_name``, and :class:`EmptyExtractError` when no row comes back.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    started = time.monotonic()
    rows_written = 0
    writer: pq.ParquetWriter | None = None
    try:
        with conn.cursor(name="airflow_synth_extract") as cursor:
            cursor.itersize = batch_rows
            try:
                cursor.execute(sql, parameters or None)
                first = cursor.fetchmany(batch_rows)
            except Exception as exc:  # driver errors differ between psycopg 2 and 3
                error = _extract_error(exc, sql, sql_name, _sent_statement(cursor))
                if _is_data_error(exc):  # its text (and traceback) may quote a real value
                    raise error from None
                raise error from exc
            description = cursor.description
            schema = arrow_schema_for(description)
            oids = [col.type_code for col in description]
            writer = pq.ParquetWriter(partial, schema, compression="zstd")
            batch = first
            while batch:
                writer.write_batch(_batch(batch, schema, oids))
                rows_written += len(batch)
                if rows_written % (batch_rows * 10) == 0:
                    log.info("Extracted %d rows so far from %s", rows_written, sql_name)
                batch = cursor.fetchmany(batch_rows)
        writer.close()
        writer = None
    except BaseException:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
        raise
    finally:
        _end_transaction(conn)
    if rows_written == 0 and not allow_empty:
        partial.unlink(missing_ok=True)
        raise EmptyExtractError(
            f"The query in {sql_name} returned 0 rows, so there is nothing to learn from. "
            "Check its WHERE clause and the parameters passed to it, and that the source "
            "tables are loaded. Nothing was trained or published."
        )
    os.replace(partial, out_path)
    return ExtractResult(
        path=out_path,
        rows=rows_written,
        columns=schema_columns(schema),
        seconds=time.monotonic() - started,
        bytes=out_path.stat().st_size,
    )


def _end_transaction(conn: Any) -> None:
    """Close the read transaction the named cursor needed; never mask the real error."""
    try:
        conn.rollback()
    except Exception:  # noqa: BLE001 - the connection may already be broken
        log.debug("rollback after extract failed", exc_info=True)


def _sent_statement(cursor: Any) -> str | None:
    """The statement text the server received, if the driver tells (psycopg 2 and 3)."""
    sent = getattr(cursor, "query", None)  # psycopg2
    if sent is None:
        sent = getattr(getattr(cursor, "_query", None), "query", None)  # psycopg 3
    if isinstance(sent, bytes):
        sent = sent.decode("utf-8", errors="replace")
    return sent if isinstance(sent, str) else None


def _locate(sql: str, position: int, sent: str | None) -> str:
    """Where ``position`` (counted by Postgres in the statement it received) is in ``sql``.

    A named cursor sends ``DECLARE "..." CURSOR FOR <query>``, with ``%(x)s`` turned into
    ``$1``, so the raw position points too far (on a later line, or past the end). Line
    numbers are counted in the received query (the prefix and placeholders hold no
    newline), and the line shown is the one of the SQL file.
    """
    prefix = _DECLARE_PREFIX.match(sent) if sent else None
    if sent is None or prefix is None:
        return error_line(sql, position)
    body, position = sent[prefix.end() :], position - prefix.end()
    where = error_line(body, position)
    if not where:
        return ""
    line_no = body[: position - 1].count("\n") + 1
    lines = sql.splitlines()
    text = lines[line_no - 1].strip() if line_no <= len(lines) else ""
    return f"{where.split(': ', 1)[0]}: {text}"


def _is_data_error(exc: Exception) -> bool:
    """An error about the rows (a failed cast, a division by zero), not about the SQL text.

    PostgreSQL gives a statement position only for errors in the query's text; errors
    met while computing rows quote the offending *value* (``invalid input syntax for type
    integer: "..."``), which must not reach a task log.
    """
    diag = getattr(exc, "diag", None)
    return getattr(diag, "statement_position", None) is None


def _extract_error(
    exc: Exception, sql: str, sql_name: str, sent: str | None = None
) -> ExtractError:
    diag = getattr(exc, "diag", None)
    message = getattr(diag, "message_primary", None) or str(exc).strip()
    if _is_data_error(exc) and scrub_message(message) != message:
        message = scrub_message(message) + " (values withheld: they come from the data)"
    position = getattr(diag, "statement_position", None)
    where = _locate(sql, int(position), sent) if position else ""
    hint = getattr(diag, "message_hint", None)
    text = f"The query in {sql_name} failed in the database: {message}"
    if where:
        text += f"\n  at {where} (of the rendered SQL)"
    if hint:
        text += f"\n  hint: {hint}"
    text += "\nFix the SQL file and re-run; nothing was extracted or published."
    return ExtractError(text)
