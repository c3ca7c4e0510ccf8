"""Stream a query's result from Postgres into a Parquet file with bounded memory.

On a psycopg 3 connection (what ``PostgresHook`` hands out with SQLAlchemy 2) the ADBC
PostgreSQL driver reads the rows as binary COPY decoded to Arrow in C++
(:mod:`airflow_synth.core.extract.columnar`): 5-7x pandas' speed and 0.7-0.8x ``psql
\\copy``'s on 2 busy cores (``python -m benchmarks extract``), the server's COPY being what
is left to wait for; batches become Parquet row groups (zstd) one at a time, written on a
second thread while the next batch is read, so memory stays flat however big the table is
(pandas ``read_sql`` holds everything and more: 1.6 GB peak for 1M rows here). Parameters
are bound by the driver (``%(name)s`` placeholders), never formatted into the SQL text by
us. Any other DB-API connection (psycopg 2) is read through a server-side cursor a row at
a time, the slow path.

Every transaction on the source is read-only and has a statement timeout and an
idle-in-transaction timeout (:mod:`airflow_synth.core.extract.session`); the ADBC
connection gets the same settings.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, cast

import pyarrow as pa
import pyarrow.parquet as pq

from airflow_synth.core.contract import schema_columns
from airflow_synth.core.errors import EmptyExtractError, ExtractError
from airflow_synth.core.extract import columnar, session
from airflow_synth.core.extract.retry import is_connection_lost, lost_connection_error
from airflow_synth.core.extract.sql import error_line
from airflow_synth.core.redact import scrub_message

log = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 50_000
CURSOR_NAME = "airflow_synth_extract"
#: Sent first in every extract transaction (see :mod:`airflow_synth.core.extract.session`).
READ_ONLY = session.READ_ONLY

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
    1083: pa.time64("us"),  # time
    1266: pa.time64("us"),  # timetz: the time of day in UTC
    1186: pa.duration("us"),  # interval: a month counts 30 days, a year 365 (as psycopg)
}
_NUMERIC_OID = 1700
_TIMETZ_OID = 1266
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
    elif oid == _TIMETZ_OID:  # Arrow would drop the offset: the time of day in UTC
        values = [None if v is None else _utc_time(v) for v in values]
    elif pa.types.is_string(arrow_type) and oid not in _ARROW_BY_OID:
        values = [None if v is None else str(v) for v in values]
    return pa.array(values, type=arrow_type)


def _utc_time(value: dt.time) -> dt.time:
    offset = value.utcoffset() or dt.timedelta(0)
    return (dt.datetime.combine(dt.date(2000, 1, 2), value.replace(tzinfo=None)) - offset).time()


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
    field_metadata: Sequence[Mapping[bytes, bytes]] | None = None,
) -> ExtractResult:
    """Run ``sql`` on a psycopg connection and write the rows to ``out_path`` as Parquet.

    The query is first declared as a cursor on ``conn`` with its parameters bound by the
    server, which checks the SQL and describes the columns (:func:`arrow_schema_for`)
    before any row moves; then the rows are read (ADBC on psycopg 3, see the module doc)
    in a read-only connection. Every transaction is read-only with a statement and an
    idle-in-transaction timeout (:func:`~airflow_synth.core.extract.session.guard_transaction`).
    Every ``batch_rows`` rows become one Parquet row group. ``conn``'s transaction is
    rolled back at the end (on the ADBC path as soon as the query is described, so ``conn``
    does not sit idle in a transaction while the rows are read).

    The file appears under its final name only once complete (written beside it, then
    renamed), so a crashed extract never leaves a truncated file that looks finished.
    Raises :class:`ExtractError` with the database's message and the failing line of
    ``sql_name`` (values from the data withheld), and :class:`EmptyExtractError` when no
    row comes back. ``field_metadata`` (one mapping per column, see
    :func:`airflow_synth.core.extract.pg_types.field_metadata`) is written into the schema.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    started = time.monotonic()
    rows_written = 0
    next_log = batch_rows * 10
    writer: pq.ParquetWriter | None = None
    read = _adbc_tables if _is_psycopg3(conn) else _cursor_tables
    try:
        with (
            closing(read(conn, sql, parameters or None, sql_name, batch_rows)) as tables,
            ThreadPoolExecutor(1, thread_name_prefix="extract-parquet") as pool,
        ):
            schema = cast(pa.Schema, next(tables))
            if field_metadata is not None:
                schema = _with_field_metadata(schema, field_metadata)
            # The writer's CPU per 1M rows of the benchmark table: zstd at level 1 (Arrow's
            # default) 0.30 s for 30 MiB, lz4 0.23 s for 55 MiB, none 0.18 s for 114 MiB
            # (which object staging uploads and the next task downloads again); dictionary
            # encoding would add 0.20 s and 11 MiB, column statistics (nothing reads them)
            # 0.03 s.
            writer = pq.ParquetWriter(
                partial, schema, compression="zstd", use_dictionary=False, write_statistics=False
            )
            # one row group is written (GIL released) while the next is read
            pending: Future[None] | None = None
            for table in tables:
                if pending is not None:
                    pending.result()
                pending = pool.submit(writer.write_table, table, row_group_size=batch_rows)
                rows_written += table.num_rows
                if rows_written >= next_log:  # row counts only: never a value
                    log.info("Extracted %d rows so far from %s", rows_written, sql_name)
                    next_log += batch_rows * 10
            if pending is not None:
                pending.result()
        writer.close()
        writer = None
    except BaseException:
        if writer is not None:
            with suppress(Exception):  # a full disk fails the footer too: the file goes anyway
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


def _with_field_metadata(schema: pa.Schema, metadata: Sequence[Mapping[bytes, bytes]]) -> pa.Schema:
    if len(metadata) != len(schema):  # the query changed between its description and now
        raise ExtractError(
            f"The query described {len(metadata)} columns but returns {len(schema)}; re-run."
        )
    return pa.schema([f.with_metadata(dict(m)) for f, m in zip(schema, metadata, strict=True)])


#: What the read functions yield: the schema first, then tables of ``batch_rows`` rows.
Tables = Iterator[pa.Schema | pa.Table]


def _is_psycopg3(conn: Any) -> bool:
    """A psycopg 3 connection: it can describe itself to ADBC and quote client-side."""
    return type(conn).__module__.split(".")[0] == "psycopg" and hasattr(conn, "pgconn")


def _declare(cursor: Any, sql: str, parameters: Any, sql_name: str) -> None:
    """``DECLARE`` the query on a named cursor: the server binds the parameters, checks the
    SQL and describes the columns; errors become :class:`ExtractError` naming the line."""
    try:
        cursor.execute(sql, parameters)
    except Exception as exc:  # driver errors differ between psycopg 2 and 3
        _raise_extract_error(exc, sql, sql_name, _sent_statement(cursor))


def _raise_extract_error(
    exc: Exception, sql: str, sql_name: str, sent: str | None = None
) -> NoReturn:
    """Raise the :class:`ExtractError` for a database error, chained to it unless the
    error is about the rows (its text and traceback may quote a real value); any other
    exception (ours, an interruption, a lost connection) is raised as it is."""
    if is_connection_lost(exc):  # not the SQL's fault: retried (see retry.with_source_retries)
        raise lost_connection_error(sql_name, None, exc, attempts=1, seconds=0) from exc
    if not hasattr(exc, "diag"):  # psycopg 2 and 3 errors from the server carry diag
        raise exc
    error = _extract_error(exc, sql, sql_name, sent)
    if _is_data_error(exc):
        raise error from None
    raise error from exc


def _adbc_tables(conn: Any, sql: str, parameters: Any, sql_name: str, batch_rows: int) -> Tables:
    """The rows read by ADBC (psycopg 3 connections).

    COPY takes no server-side parameters, so after the ``DECLARE`` has bound and checked
    them on the server, psycopg merges them into the query with its own client-side
    quoting (``ClientCursor.mogrify``, as psycopg 2 always did), never string formatting.

    The ``DECLARE`` runs in a guarded transaction (read-only, timeouts), ended before the
    rows are read; the ADBC connection gets the timeouts that transaction chose.
    """
    try:
        with conn.cursor() as setup:
            settings = session.guard_transaction(setup)
        with conn.cursor(name=CURSOR_NAME) as cursor:
            _declare(cursor, sql, parameters, sql_name)
            description = cursor.description
    finally:  # conn must not sit idle in a transaction while ADBC reads
        _end_transaction(conn)
    schema = arrow_schema_for(description)
    yield schema
    oids = [col.type_code for col in description]
    query = sql if parameters is None else _client_side(conn, sql, parameters)
    try:
        yield from columnar.read_tables(
            conn, query, schema, oids, batch_rows, options=session.adbc_options(settings)
        )
    except columnar.ReadError as exc:  # holds no value; the driver's error is not chained
        if exc.connection_lost:
            raise lost_connection_error(sql_name, None, exc, attempts=1, seconds=0) from None
        raise _extract_error(exc, sql, sql_name) from None


def _client_side(conn: Any, sql: str, parameters: Any) -> str:
    """``sql`` with ``parameters`` merged in by psycopg's client-side quoting."""
    import psycopg

    return psycopg.ClientCursor(conn).mogrify(sql, parameters)


def _cursor_tables(conn: Any, sql: str, parameters: Any, sql_name: str, batch_rows: int) -> Tables:
    """The rows through a server-side cursor, a row at a time (psycopg 2 connections).

    The query runs in the task's transaction, made read-only first with the timeouts (as
    the ADBC path's connection is), so a SQL file cannot change the source; it is rolled
    back at the end.
    """
    with conn.cursor() as setup:
        session.guard_transaction(setup)
    with conn.cursor(name=CURSOR_NAME) as cursor:
        cursor.itersize = batch_rows
        _declare(cursor, sql, parameters, sql_name)
        # psycopg 2 describes a named cursor only once it has fetched
        batch = _fetch(cursor, batch_rows, sql, sql_name)
        description = cursor.description
        schema = arrow_schema_for(description)
        oids = [col.type_code for col in description]
        yield schema
        while batch:
            yield pa.Table.from_batches([_batch(batch, schema, oids)], schema=schema)
            batch = _fetch(cursor, batch_rows, sql, sql_name)


def _fetch(cursor: Any, size: int, sql: str, sql_name: str) -> list[tuple]:
    try:
        return cursor.fetchmany(size)
    except Exception as exc:
        _raise_extract_error(exc, sql, sql_name, _sent_statement(cursor))


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


def _extract_error(exc: Any, sql: str, sql_name: str, sent: str | None = None) -> ExtractError:
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
    if "statement timeout" in message:  # the guard's limit (or the source's), not a typo
        text += (
            "\nThe query ran longer than the statement timeout (default 1 h; see "
            "airflow_synth.core.extract.session): make it cheaper, or give the Airflow "
            "Postgres connection a longer one in its extra, "
            '{"options": "-c statement_timeout=4h"}. Nothing was extracted or published.'
        )
        return ExtractError(text)
    text += "\nFix the SQL file and re-run; nothing was extracted or published."
    return ExtractError(text)
