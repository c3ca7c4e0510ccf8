"""The extract's fast path: the ADBC PostgreSQL driver reads the rows as Arrow batches.

Why ADBC: reading through a cursor turns every cell into a Python object and back into
Arrow (9.4 s of client CPU per 1M 14-column rows). ADBC runs the query as binary
``COPY ... TO STDOUT`` and decodes it into Arrow in C++ with the GIL released, so Python
only handles whole batches (0.36 s of CPU per 1M such rows with driver 1.8.0, 1.0 s with
the unoptimised wheels of 1.9.0-1.13.0, see ``pyproject.toml``; Parquet 0.27 s more). The
alternative, binary COPY read through psycopg and decoded with numpy, was measured in the
same session and lost: psycopg hands libpq's rows to Python one at a time (1.3 µs each
before any decoding), 2.8-4.0 s per 1M rows to Parquet where ADBC took 1.3-1.4 s.

ADBC opens its own connection. Its details are derived from the psycopg connection that
``PostgresHook`` made (host, port, database, user, password, SSL settings, ``options``), so
there is one source of truth for where and as whom we connect; that connection is made
read-only (``default_transaction_read_only``), so a SQL file can never change the source,
gets the statement and idle-in-transaction timeouts the describing transaction chose
(:mod:`airflow_synth.core.extract.session`), and is UTF-8, so Arrow strings are valid
whatever the database encoding. The password is
never logged and is removed from any error text.

Only types whose ADBC decoding equals our Arrow mapping are read as they are; the server
casts the rest first (:func:`select_with_casts`): numeric -> float8 (PostgreSQL rounds as
``float(Decimal)`` does), oid -> int8, interval -> microseconds (a month 30 days, a year 365,
as psycopg reads it; Arrow duration), timetz -> the time of day in UTC, anything else ->
text, PostgreSQL's own text form.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_synth.core.errors import ExtractError, SourceConnectionLostError
from airflow_synth.core.extract.retry import is_connection_lost
from airflow_synth.core.redact import scrub_message

#: OIDs that ADBC decodes to exactly the Arrow type of ``stream._ARROW_BY_OID``:
#: bool, int8, int2, int4, float4, float8, date, time, timestamp, timestamptz, name, text,
#: bpchar (padding kept), varchar.
NATIVE_OIDS = frozenset({16, 20, 21, 23, 700, 701, 1082, 1083, 1114, 1184, 19, 25, 1042, 1043})
#: Server-side casts of the other columns (any OID not listed here: text); a cast with
#: ``{c}`` is an expression of the column.
SERVER_CASTS = {
    26: "int8",
    1700: "float8",
    # interval -> µs: extract(epoch) counts a year as 365.25 days, psycopg as 365
    1186: "((extract(epoch FROM {c}) - extract(year FROM {c}) * 21600) * 1000000)::int8",
    1266: "({c} AT TIME ZONE 'UTC')::time",  # timetz -> the time of day in UTC
    869: "format('%s', {c})",  # inet as it prints (its ::text adds /32 to every host)
}
#: Settings of the extract's own connection (added to the source's ``options``).
SESSION_OPTIONS = "-c default_transaction_read_only=on"
#: The lowest instant PostgreSQL can store (4713 BC), in Arrow's units: anything below it
#: is how ADBC renders 'infinity' / '-infinity' (the value wraps around).
_LOWEST = {
    pa.types.is_date32: -2_440_588,  # days since 1970-01-01
    pa.types.is_timestamp: -210_866_803_200_000_000,  # µs since 1970-01-01
}


def server_cast(oid: int) -> str | None:
    """The type the server casts a column to before sending it, or None (sent as is)."""
    if oid in NATIVE_OIDS:
        return None
    return SERVER_CASTS.get(oid, "text")


def select_with_casts(sql: str, oids: Sequence[int]) -> str:
    """``sql`` ready for ADBC's ``COPY (...)``, in a SELECT that applies :func:`server_cast`.

    A trailing semicolon is dropped and the query keeps lines of its own, so a trailing
    ``--`` comment cannot swallow the closing parenthesis. Columns are renamed by position
    (``AS q(c1, ...)``), so duplicate or odd names cannot make the cast list ambiguous;
    the names of the file come from the described columns, not from this query.
    """
    body = sql.rstrip().rstrip(";").rstrip()
    casts = [server_cast(oid) for oid in oids]
    if not any(casts):
        return f"{body}\n"  # ADBC sends COPY (<this>) TO STDOUT
    names = [f"c{i}" for i in range(1, len(oids) + 1)]
    select_list = ", ".join(
        name if cast is None else cast.format(c=name) if "{c}" in cast else f"{name}::{cast}"
        for name, cast in zip(names, casts, strict=True)
    )
    return f"SELECT {select_list} FROM (\n{body}\n) AS airflow_synth_q({', '.join(names)})"


def quote_conninfo(value: str) -> str:
    """A libpq ``key=value`` value, quoted (backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo_for(parameters: Mapping[str, str], password: str | None, options: str = "") -> str:
    """The libpq connection string of the extract's read-only UTF-8 connection.

    ``parameters`` are the source connection's non-default settings as psycopg reports
    them (``conn.info.get_parameters()``: host, port, dbname, user, sslmode, options, ...,
    never the password, which comes separately). ``options`` (``-c name=value`` ...: the
    timeouts, see :func:`airflow_synth.core.extract.session.adbc_options`) come after the
    source's own, so they win.
    """
    settings = dict(parameters)
    settings.pop("password", None)
    settings["options"] = " ".join(
        part for part in (settings.get("options", ""), options, SESSION_OPTIONS) if part
    )
    settings["client_encoding"] = "UTF8"
    if password:
        settings["password"] = password
    return " ".join(f"{key}={quote_conninfo(str(value))}" for key, value in settings.items())


def connect(conn: Any, options: str = "") -> Any:
    """An ADBC connection to the same server, database and role as the psycopg ``conn``
    (``options``: more ``-c name=value`` settings, see :func:`conninfo_for`)."""
    import adbc_driver_postgresql.dbapi as adbc

    info = conn.info
    password = info.password or None
    try:
        return adbc.connect(conninfo_for(info.get_parameters(), password, options))
    except Exception as exc:  # noqa: BLE001 - whatever the driver raises, said plainly
        where = f"{info.host}:{info.port}/{info.dbname}"
        message = _without(str(exc), password)
        error = SourceConnectionLostError if is_connection_lost(exc) else ExtractError
        raise error(
            f"Cannot open the extract's read-only connection to {where} (derived from the "
            f"task's Postgres connection): {message}"
        ) from None


def _without(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def read_tables(
    conn: Any,
    query: str,
    schema: pa.Schema,
    oids: Sequence[int],
    batch_rows: int,
    *,
    options: str = "",
) -> Iterator[pa.Table]:
    """The rows of ``query`` as tables of ``batch_rows`` rows (the last may be shorter).

    ``query`` must already hold its parameters (COPY takes none): the caller merges them
    with psycopg's client-side quoting. Each table has exactly ``schema`` (names from the
    described columns, types cast where ADBC's differ); memory holds one table plus one
    ADBC batch (16 MB by default) at a time. ``options`` go to the ADBC connection (the
    timeouts, see :func:`connect`).
    """
    with connect(conn, options) as source, source.cursor() as cursor:
        try:
            cursor.execute(select_with_casts(query, oids))
            batches = iter(cursor.fetch_record_batch())
        except Exception as exc:  # noqa: BLE001 - the driver's text may quote values
            raise ReadError(exc) from None
        pending: list[pa.RecordBatch] = []
        held = 0
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - a failure met while streaming
                raise ReadError(exc) from None
            batch = conform(batch, schema)
            while batch.num_rows:
                take = min(batch.num_rows, batch_rows - held)
                pending.append(batch.slice(0, take))
                held += take
                batch = batch.slice(take)
                if held == batch_rows:
                    yield pa.Table.from_batches(pending, schema=schema)
                    pending, held = [], 0
        if pending:
            yield pa.Table.from_batches(pending, schema=schema)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with the names and types of ``schema``; refuses infinite dates."""
    if batch.num_columns != len(schema):
        raise ExtractError(
            f"PostgreSQL sent {batch.num_columns} columns where {len(schema)} were described"
        )
    columns = []
    for column, field in zip(batch.columns, schema, strict=True):
        if column.type != field.type:
            column = column.cast(field.type)
        _refuse_infinite(column, field)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _refuse_infinite(column: pa.Array, field: pa.Field) -> None:
    for is_kind, lowest in _LOWEST.items():
        if is_kind(field.type) and column.null_count < len(column):
            low = pc.min(column.cast(pa.int32() if field.type == pa.date32() else pa.int64()))
            if low.as_py() < lowest:
                raise ExtractError(
                    f"column {field.name!r} holds an infinite date or timestamp ('infinity'), "
                    "which Parquet cannot store: filter it out or map it to a real date in "
                    "the SQL."
                )


class ReadError(Exception):
    """The driver failed while reading, reduced to what ``stream._extract_error`` reads.

    ADBC's text repeats the statement it ran (parameters merged in) and the server's
    message may quote a value, so only the primary message and the hint are kept (the
    SQL text itself was checked by the ``DECLARE`` before, so no position is expected),
    and the driver's exception is not chained.
    """

    def __init__(self, exc: BaseException) -> None:
        details = {}
        for key, value in getattr(exc, "details", None) or []:
            details[key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        text = str(exc).split("\nQuery was:", 1)[0]
        if "ERROR:  " in text:  # libpq's "ERROR:  <primary>\nDETAIL: ..." form
            text = text.split("ERROR:  ", 1)[1]
        primary = details.get(b"PG_DIAG_MESSAGE_PRIMARY") or text.strip().splitlines()[0]
        self.diag = _Diag(primary, details.get(b"PG_DIAG_MESSAGE_HINT"))
        self.sqlstate = getattr(exc, "sqlstate", None)
        #: the server went away (not a failure of the query): the extract is retried
        self.connection_lost = is_connection_lost(exc)
        super().__init__(scrub_message(primary))


class _Diag:
    """The fields of psycopg's ``Diagnostic`` that the error message uses."""

    statement_position = None  # the SQL text was checked by the DECLARE before

    def __init__(self, message_primary: str, message_hint: str | None) -> None:
        self.message_primary = message_primary
        self.message_hint = message_hint
