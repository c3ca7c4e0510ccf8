"""Load a synthetic table set into a target PostgreSQL schema (a test or staging environment).

The point of loading a synthetic set into a lower environment is that testers and
applications can use it like the real thing, so the loader guarantees what a data-platform
engineer expects of a replace-style deploy:

* **All or nothing.** Everything happens in ONE transaction. Any error rolls back, and the
  target keeps the previous set untouched. Readers in other connections see the old set
  or the new set, never a mix and never an empty table.
* **Readers are not frozen during the load.** The new rows go into fresh tables with private
  names (``_synth_new_<token>_<i>``) next to the old ones; only at the very end are the old
  tables dropped and the new ones renamed. The exclusive lock on the user-visible tables is
  therefore held for milliseconds (drop + rename + commit), not for the whole COPY. Because
  all of it is one transaction, nothing of the private tables is ever visible outside.
* **Postgres proves integrity.** Primary keys and foreign keys are real constraints, added
  after the bulk COPY (one index build instead of row-by-row maintenance). A synthetic set
  whose FKs do not hold is refused by the database, not by a check of ours that could drift.
* **Concurrent loads into one schema serialise** on a transaction-level advisory lock
  derived from the schema name (:func:`advisory_lock_key`).
* **It never damages what it does not own.** Only the tables named in the set are dropped,
  never with CASCADE. A table outside the set with an FK into one of ours, or a view on one
  of ours, stops the load before anything is copied, with an error naming it.
* **Grants survive.** Table privileges granted on the replaced tables (to testers, apps)
  are granted again on the new ones.
* **Bookkeeping.** Every load adds a row to ``<schema>._synth_loads`` (tables, row counts,
  order, replaced tables, seconds, and the caller's ``source`` dict as jsonb, e.g. the
  manifest URI and run id), so "what is in staging right now, and where did it come from"
  has an answer in the database itself.

Rows are streamed: Parquet record batches (``ParquetFile.iter_batches``) are rendered to CSV
by Arrow's C++ writer and sent with ``COPY ... FROM STDIN (FORMAT csv)``; memory is bounded
by ``batch_rows``. CSV keeps NULL (unquoted empty) apart from the empty string (quoted
``""``), quotes text containing tabs, newlines, backslashes or ``\\.``, writes NaN/±inf as
``nan``/``inf`` (which Postgres reads), timestamps in ISO form with their UTC offset. Values
with no CSV form (bytea, intervals) are converted per batch first. Nanosecond timestamps are
rounded to microseconds by Postgres (its resolution).

Pure: psycopg 3 + pyarrow, no Airflow import. SQL identifiers are always quoted with
:mod:`psycopg.sql`; values are always bound parameters.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from airflow_synth.core.errors import SynthError

log = logging.getLogger(__name__)

#: Bookkeeping table created in the target schema; one row per load.
LOADS_TABLE = "_synth_loads"
#: Prefix reserved for the loader's own objects in the target schema.
RESERVED_PREFIX = "_synth_"
#: PostgreSQL's identifier limit (NAMEDATALEN - 1) in bytes; longer names are silently
#: truncated by the server, so two distinct names could collide: we refuse them instead.
MAX_IDENTIFIER_BYTES = 63
DEFAULT_BATCH_ROWS = 50_000
#: How long the final swap waits for readers holding the old tables before giving up.
DEFAULT_LOCK_TIMEOUT_S = 60.0

# A type name as written in CREATE TABLE: one (optionally schema-qualified) word or one of
# the multi-word built-in names, an optional (p[,s]) modifier, an optional "with/without
# time zone" and an optional array suffix. Anything else (quotes, semicolons, comments,
# "text primary key", "int references t(1)") is refused: a type name cannot be quoted as an
# identifier, so it must not be able to smuggle in more SQL.
_PG_TYPE = re.compile(
    r"^(?:double precision|character varying|bit varying"
    r"|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)"
    r"(?:\s*\(\s*\d+\s*(?:,\s*-?\d+\s*)?\))?"
    r"(?: with(?:out)? time zone)?"
    r"(?:\[\])?$",
    re.IGNORECASE,
)
_COPY_CONTEXT = re.compile(r"COPY (\S+), line (\d+)(?:, column ([^:]+))?")
_PRIVILEGES = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN"}
)


class TargetLoadError(SynthError):
    """Loading the synthetic set into the target database failed; the target is unchanged."""


@dataclass(frozen=True)
class TargetColumn:
    """One column of a target table; ``pg_type`` None -> derived from the Parquet/Arrow type."""

    name: str
    pg_type: str | None = None


@dataclass(frozen=True)
class TargetTable:
    """A table of the synthetic set: its target name and the local Parquet file with its rows.

    ``columns`` empty means every Parquet column in file order, types from Arrow.
    """

    name: str
    path: Path
    primary_key: tuple[str, ...] = ()
    columns: tuple[TargetColumn, ...] = ()


@dataclass(frozen=True)
class TargetForeignKey:
    """``child(child_columns)`` references ``parent(parent_columns)`` (the parent's PK)."""

    child: str
    child_columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]

    def describe(self) -> str:
        return (
            f"{self.child}({', '.join(self.child_columns)}) -> "
            f"{self.parent}({', '.join(self.parent_columns)})"
        )


@dataclass
class TargetLoadResult:
    """What a load did; small enough for XCom."""

    schema: str
    tables: dict[str, int]
    load_order: list[str]
    replaced: list[str]
    seconds: float

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def to_xcom(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "tables": dict(self.tables),
            "load_order": list(self.load_order),
            "replaced": list(self.replaced),
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
        }


# --------------------------------------------------------------------------------------------
# Pure parts: type mapping, ordering, validation
# --------------------------------------------------------------------------------------------
def postgres_type_for(arrow_type: pa.DataType) -> str:
    """The PostgreSQL column type that holds every value of ``arrow_type`` without loss.

    Unsigned integers get the next wider signed type (uint64 -> numeric(20,0)) because
    Postgres has no unsigned types; a column that is entirely NULL (Arrow ``null``) becomes
    text. Nested types (list, struct, map) have no faithful column type here and raise.
    """
    t = arrow_type
    if pa.types.is_dictionary(t):
        return postgres_type_for(t.value_type)
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_uint64(t):
        return "numeric(20,0)"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "real"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})" if t.precision <= 1000 else "numeric"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "text"
    if pa.types.is_null(t):
        return "text"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "bytea"
    if pa.types.is_binary_view(t):
        return "bytea"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp with time zone" if t.tz is not None else "timestamp without time zone"
    if pa.types.is_time(t):
        return "time without time zone"
    if pa.types.is_duration(t):
        return "interval"
    raise TargetLoadError(
        f"Arrow type {t} has no PostgreSQL column type in the target loader; cast the column "
        "to a scalar type (e.g. JSON text) in the Parquet file, or leave it out with `columns=`"
    )


def load_order(tables: Sequence[str], foreign_keys: Sequence[TargetForeignKey]) -> list[str]:
    """Parents before children, otherwise in the given order (so the result is deterministic).

    A table referencing itself (a hierarchy such as ``employees.manager_id``) does not
    constrain the order and is allowed: the FK constraints are added after all rows are in,
    so Postgres checks it like any other. A cycle between different tables raises
    :class:`TargetLoadError` naming the tables in the cycle.
    """
    names = list(tables)
    known = set(names)
    if len(known) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise TargetLoadError(f"table names appear twice in the set: {dupes}")
    parents: dict[str, set[str]] = {n: set() for n in names}
    for fk in foreign_keys:
        for side in (fk.child, fk.parent):
            if side not in known:
                raise TargetLoadError(
                    f"foreign key {fk.describe()} names table {side!r}, which is not in the "
                    f"set {names}; add the table to the set or drop the foreign key"
                )
        if fk.child != fk.parent:
            parents[fk.child].add(fk.parent)
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(names):
        ready = [n for n in names if n not in done and parents[n] <= done]
        if not ready:
            cycle = _find_cycle({n: parents[n] - done for n in names if n not in done})
            raise TargetLoadError(
                "the foreign keys form a cycle, so no parents-first load order exists: "
                + " -> ".join(cycle)
                + "; break it by leaving one of these foreign keys out of the set (load it as "
                "a plain column) or merge the tables"
            )
        order.append(ready[0])
        done.add(ready[0])
    return order


def _find_cycle(parents: Mapping[str, set[str]]) -> list[str]:
    """One cycle (child -> parent -> ... -> child) in a graph where every node has a parent."""
    start = next(iter(parents))
    path: list[str] = []
    seen: dict[str, int] = {}
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = sorted(parents[node])[0]
    return [*path[seen[node] :], node]


def validate_identifier(name: str, what: str) -> str:
    """Refuse names Postgres would mangle: empty, NUL, or over 63 bytes (silently truncated)."""
    if not isinstance(name, str) or not name:
        raise TargetLoadError(f"{what} name must be a non-empty string, got {name!r}")
    if "\x00" in name:
        raise TargetLoadError(f"{what} name {name!r} contains a NUL character")
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise TargetLoadError(
            f"{what} name {name!r} is longer than PostgreSQL's {MAX_IDENTIFIER_BYTES}-byte "
            "identifier limit (the server would silently truncate it); use a shorter name"
        )
    return name


def validate_pg_type(pg_type: str, where: str) -> str:
    """A type name that is safe to put into CREATE TABLE (type names cannot be quoted)."""
    if not _PG_TYPE.match(pg_type.strip()):
        raise TargetLoadError(
            f"{where}: {pg_type!r} is not a PostgreSQL type name the loader accepts "
            "(e.g. 'varchar(40)', 'numeric(12,2)', 'timestamp with time zone', 'text[]')"
        )
    return pg_type.strip()


def advisory_lock_key(schema: str) -> int:
    """The signed 64-bit key of the per-schema advisory lock (stable across processes)."""
    digest = hashlib.sha256(f"airflow_synth.target_load:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class _PlannedTable:
    """A table after validation: its columns with their Arrow and Postgres types."""

    name: str
    path: Path
    primary_key: tuple[str, ...]
    columns: tuple[str, ...]
    arrow_types: tuple[pa.DataType, ...]
    pg_types: tuple[str, ...]
    num_rows: int


@dataclass(frozen=True)
class LoadPlan:
    """A validated load: tables in load order and the foreign keys; no database touched."""

    schema: str
    tables: tuple[_PlannedTable, ...]
    foreign_keys: tuple[TargetForeignKey, ...]
    source: Mapping[str, Any] = field(default_factory=dict)

    @property
    def order(self) -> list[str]:
        return [t.name for t in self.tables]


def plan_load(
    schema: str,
    tables: Sequence[TargetTable],
    foreign_keys: Sequence[TargetForeignKey] = (),
    source: Mapping[str, Any] | None = None,
) -> LoadPlan:
    """Validate everything that can be checked without the database, and fix the order.

    Reads only the Parquet footers (schemas and row counts), not the data.
    """
    validate_identifier(schema, "target schema")
    if schema.lower().startswith("pg_") or schema.lower() == "information_schema":
        raise TargetLoadError(f"target schema {schema!r} is a system schema; choose another")
    if not tables:
        raise TargetLoadError("the synthetic set has no tables; nothing to load")
    source = dict(source or {})
    try:
        json.dumps(source, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TargetLoadError(
            f"`source` must be JSON-serialisable (it is stored as jsonb in {LOADS_TABLE}): {exc}"
        ) from exc

    planned: dict[str, _PlannedTable] = {}
    for table in tables:
        validate_identifier(table.name, "table")
        if table.name.startswith(RESERVED_PREFIX):
            raise TargetLoadError(
                f"table name {table.name!r} starts with {RESERVED_PREFIX!r}, which the loader "
                "reserves for its own objects; rename the table"
            )
        if table.name in planned:
            raise TargetLoadError(f"table {table.name!r} appears twice in the set")
        planned[table.name] = _plan_table(table)

    for fk in foreign_keys:
        _check_foreign_key(fk, planned)
    order = load_order(list(planned), foreign_keys)
    return LoadPlan(schema, tuple(planned[n] for n in order), tuple(foreign_keys), source)


def _plan_table(table: TargetTable) -> _PlannedTable:
    path = Path(table.path)
    if not path.is_file():
        raise TargetLoadError(f"table {table.name!r}: Parquet file {str(path)!r} does not exist")
    try:
        pf = pq.ParquetFile(path)
        arrow_schema = pf.schema_arrow
        num_rows = pf.metadata.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise TargetLoadError(
            f"table {table.name!r}: {str(path)!r} is not a readable Parquet file: {exc}"
        ) from exc
    file_columns = list(arrow_schema.names)
    if table.columns:
        wanted = [(c.name, c.pg_type) for c in table.columns]
    else:
        wanted = [(name, None) for name in file_columns]
    names = [n for n, _ in wanted]
    for name in names:
        validate_identifier(name, f"table {table.name!r}: column")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise TargetLoadError(f"table {table.name!r}: columns appear twice: {dupes}")
    missing = [n for n in names if n not in file_columns]
    if missing:
        raise TargetLoadError(
            f"table {table.name!r}: columns {missing} are not in {str(path)!r} "
            f"(it has {file_columns})"
        )
    if len(set(table.primary_key)) != len(table.primary_key):
        raise TargetLoadError(f"table {table.name!r}: primary key {table.primary_key} repeats")
    for key in table.primary_key:
        if key not in file_columns:
            raise TargetLoadError(
                f"table {table.name!r}: primary-key column {key!r} is not in {str(path)!r} "
                f"(it has {file_columns})"
            )
        if key not in names:
            raise TargetLoadError(
                f"table {table.name!r}: primary-key column {key!r} is left out by `columns`; "
                "add it to the table's columns"
            )
    arrow_types = tuple(arrow_schema.field(n).type for n in names)
    pg_types = []
    for (name, pg_type), arrow_type in zip(wanted, arrow_types, strict=True):
        where = f"table {table.name!r}, column {name!r}"
        if pg_type is not None:
            pg_types.append(validate_pg_type(pg_type, where))
            _csv_converter(arrow_type, where)  # the values must still be writable
            continue
        try:
            pg_types.append(postgres_type_for(arrow_type))
        except TargetLoadError as exc:
            raise TargetLoadError(f"{where}: {exc}") from None
    return _PlannedTable(
        name=table.name,
        path=path,
        primary_key=tuple(table.primary_key),
        columns=tuple(names),
        arrow_types=arrow_types,
        pg_types=tuple(pg_types),
        num_rows=num_rows,
    )


def _check_foreign_key(fk: TargetForeignKey, planned: Mapping[str, _PlannedTable]) -> None:
    for side in (fk.child, fk.parent):
        if side not in planned:
            raise TargetLoadError(
                f"foreign key {fk.describe()} names table {side!r}, which is not in the set "
                f"{list(planned)}; add the table to the set or drop the foreign key"
            )
    if not fk.child_columns or len(fk.child_columns) != len(fk.parent_columns):
        raise TargetLoadError(
            f"foreign key {fk.describe()} needs the same, non-zero number of child and parent "
            "columns"
        )
    for table, cols in ((fk.child, fk.child_columns), (fk.parent, fk.parent_columns)):
        absent = [c for c in cols if c not in planned[table].columns]
        if absent:
            raise TargetLoadError(
                f"foreign key {fk.describe()}: columns {absent} are not columns of table "
                f"{table!r} (it has {list(planned[table].columns)})"
            )
    parent_pk = planned[fk.parent].primary_key
    if set(fk.parent_columns) != set(parent_pk) or len(fk.parent_columns) != len(parent_pk):
        raise TargetLoadError(
            f"foreign key {fk.describe()}: the referenced columns must be the parent's primary "
            f"key {list(parent_pk) or '(none declared)'}; declare primary_key="
            f"{tuple(fk.parent_columns)} on table {fk.parent!r}"
        )


# --------------------------------------------------------------------------------------------
# Arrow -> CSV for COPY
# --------------------------------------------------------------------------------------------
def _csv_converter(arrow_type: pa.DataType, where: str) -> Any:
    """A function turning a column of ``arrow_type`` into one Arrow's CSV writer renders as
    Postgres reads it, or None when the column can be written as it is."""
    t = arrow_type
    if pa.types.is_dictionary(t):
        inner = _csv_converter(t.value_type, where)
        return lambda col: (inner or (lambda c: c))(col.cast(t.value_type))
    if pa.types.is_string_view(t):
        return lambda col: col.cast(pa.string())
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    ):
        return lambda col: pa.array(
            [None if v is None else "\\x" + v.hex() for v in col.to_pylist()], pa.string()
        )
    if pa.types.is_duration(t):

        def _interval(col: pa.Array) -> pa.Array:
            micros = col.cast(pa.duration("us"), safe=False).cast(pa.int64()).cast(pa.string())
            return pc.binary_join_element_wise(micros, " microseconds", "")

        return _interval
    if pa.types.is_nested(t):
        raise TargetLoadError(
            f"{where}: Arrow type {t} cannot be written by the target loader; cast it to a "
            "scalar type (e.g. JSON text) in the Parquet file or leave the column out"
        )
    return None


def _csv_chunks(table: _PlannedTable, batch_rows: int) -> Iterator[bytes]:
    """The table's rows as CSV (no header), one chunk per Parquet record batch."""
    converters = [
        _csv_converter(t, f"table {table.name!r}, column {c!r}")
        for c, t in zip(table.columns, table.arrow_types, strict=True)
    ]
    pf = pq.ParquetFile(table.path)
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    for batch in pf.iter_batches(batch_size=batch_rows, columns=list(table.columns)):
        arrays = []
        for name, convert in zip(table.columns, converters, strict=True):
            col = batch.column(name)
            arrays.append(convert(col) if convert is not None else col)
        out = io.BytesIO()
        pacsv.write_csv(pa.RecordBatch.from_arrays(arrays, names=list(table.columns)), out, options)
        yield out.getvalue()


# --------------------------------------------------------------------------------------------
# The load
# --------------------------------------------------------------------------------------------
def load_tables_into_postgres(
    conn: psycopg.Connection,
    schema: str,
    tables: Sequence[TargetTable],
    foreign_keys: Sequence[TargetForeignKey] = (),
    *,
    source: Mapping[str, Any] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> TargetLoadResult:
    """Replace ``tables`` in ``schema`` with the synthetic set, atomically, FK-checked.

    ``conn`` must have no transaction in progress (the load is its own transaction and must
    commit; inside a caller's transaction it would only be a savepoint). ``source`` is
    recorded as jsonb in ``<schema>._synth_loads`` (e.g. manifest URI, run id).
    ``lock_timeout_s`` bounds how long the final swap waits for sessions still reading the
    old tables; on timeout nothing changes and the error names the cause.
    """
    if batch_rows < 1:
        raise TargetLoadError(f"batch_rows must be at least 1, got {batch_rows}")
    plan = plan_load(schema, tables, foreign_keys, source)
    status = conn.info.transaction_status
    if status != TransactionStatus.IDLE:
        raise TargetLoadError(
            "the connection has a transaction in progress (status "
            f"{status.name}); commit or roll it back before loading, because the load must be "
            "its own transaction to be atomic"
        )
    token = secrets.token_hex(4)
    temp = {t.name: f"{RESERVED_PREFIX}new_{token}_{i}" for i, t in enumerate(plan.tables)}
    counts: dict[str, int] = {}
    started = time.perf_counter()
    step = "starting the load transaction"
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SET LOCAL TimeZone = 'UTC'")
            cur.execute("SET LOCAL client_encoding = 'UTF8'")
            step = f"waiting for the advisory lock of schema {schema!r}"
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_lock_key(schema),))
            step = f"creating schema {schema!r}"
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            step = f"inspecting schema {schema!r}"
            existing = _existing_tables(cur, plan)
            _refuse_outside_dependents(cur, plan, existing)
            for table in plan.tables:
                step = f"creating table {table.name!r}"
                _create_table(cur, schema, temp[table.name], table)
                step = f"copying rows into table {table.name!r}"
                counts[table.name] = _copy_table(cur, schema, temp[table.name], table, batch_rows)
                if table.primary_key:
                    step = f"adding the primary key of table {table.name!r}"
                    _add_primary_key(cur, schema, temp[table.name], table, token)
            fk_names: set[str] = set()
            for fk in plan.foreign_keys:
                step = f"adding foreign key {fk.describe()}"
                _add_foreign_key(
                    cur, schema, temp, fk, _unique_name(_fk_constraint_name(fk), fk_names)
                )
            for table in plan.tables:
                step = f"analyzing table {table.name!r}"
                cur.execute(
                    sql.SQL("ANALYZE {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(temp[table.name])
                    )
                )
            replaced = [t.name for t in plan.tables if t.name in existing]
            step = f"recording the load in {schema}.{LOADS_TABLE}"
            _record_load(cur, plan, counts, replaced, time.perf_counter() - started)
            step = f"replacing the previous tables in schema {schema!r}"
            cur.execute(
                sql.SQL("SET LOCAL lock_timeout = {}").format(
                    sql.Literal(f"{int(lock_timeout_s * 1000)}ms")
                )
            )
            _swap(cur, plan, temp, existing, token)
            step = "committing"
    except TargetLoadError:
        raise
    except psycopg.Error as exc:
        raise _load_error(exc, step, plan, temp, token) from exc
    seconds = time.perf_counter() - started
    result = TargetLoadResult(
        schema=schema, tables=counts, load_order=plan.order, replaced=replaced, seconds=seconds
    )
    log.info(
        "loaded %d rows in %d tables into schema %s in %.1f s (order %s; replaced %s)",
        result.rows,
        len(counts),
        schema,
        seconds,
        plan.order,
        replaced or "none",
    )
    return result


def _existing_tables(cur: psycopg.Cursor, plan: LoadPlan) -> dict[str, int]:
    """oid of each table of the set that already exists in the schema (a relation that is
    not a table under one of our names is refused: we only ever drop tables)."""
    cur.execute(
        """
        SELECT c.relname, c.oid::int8, c.relkind
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %s AND c.relname = ANY(%s)
        """,
        (plan.schema, plan.order),
    )
    existing = {}
    for relname, oid, relkind in cur.fetchall():
        if relkind not in ("r", "p"):
            kind = {"v": "view", "m": "materialized view", "f": "foreign table"}.get(
                relkind, f"relation of kind {relkind!r}"
            )
            raise TargetLoadError(
                f"{plan.schema}.{relname} exists and is a {kind}, not a table; the loader only "
                "replaces tables. Drop or rename it, or load into another schema. Nothing was "
                "changed."
            )
        existing[relname] = oid
    return existing


def _refuse_outside_dependents(
    cur: psycopg.Cursor, plan: LoadPlan, existing: Mapping[str, int]
) -> None:
    """Stop before copying anything if dropping the old tables would need CASCADE."""
    if not existing:
        return
    oids = list(existing.values())
    cur.execute(
        """
        SELECT con.conname, ns.nspname, child.relname, parent.relname
          FROM pg_constraint con
          JOIN pg_class child ON child.oid = con.conrelid
          JOIN pg_namespace ns ON ns.oid = child.relnamespace
          JOIN pg_class parent ON parent.oid = con.confrelid
         WHERE con.contype = 'f'
           AND con.confrelid = ANY(%(oids)s::oid[])
           AND NOT con.conrelid = ANY(%(oids)s::oid[])
         ORDER BY 2, 3, 1
        """,
        {"oids": oids},
    )
    rows = cur.fetchall()
    if rows:
        found = "; ".join(
            f"{ns}.{child} (constraint {con}) references {plan.schema}.{parent}"
            for con, ns, child, parent in rows
        )
        raise TargetLoadError(
            f"cannot replace the set in schema {plan.schema!r}: tables outside the set have "
            f"foreign keys into it: {found}. The loader never drops with CASCADE. Add those "
            "tables to the set, drop their foreign keys (ALTER TABLE ... DROP CONSTRAINT), or "
            "load into another schema. Nothing was changed."
        )
    cur.execute(
        """
        SELECT DISTINCT vns.nspname, v.relname, t.relname
          FROM pg_depend d
          JOIN pg_rewrite r ON r.oid = d.objid
          JOIN pg_class v ON v.oid = r.ev_class
          JOIN pg_namespace vns ON vns.oid = v.relnamespace
          JOIN pg_class t ON t.oid = d.refobjid
         WHERE d.classid = 'pg_rewrite'::regclass
           AND d.refobjid = ANY(%(oids)s::oid[])
           AND v.oid <> d.refobjid
         ORDER BY 1, 2
        """,
        {"oids": oids},
    )
    views = cur.fetchall()
    if views:
        found = "; ".join(f"{ns}.{view} reads {plan.schema}.{tbl}" for ns, view, tbl in views)
        raise TargetLoadError(
            f"cannot replace the set in schema {plan.schema!r}: views depend on its tables: "
            f"{found}. The loader never drops with CASCADE. Drop those views before the load "
            "and re-create them after it, or load into another schema. Nothing was changed."
        )


def _create_table(cur: psycopg.Cursor, schema: str, name: str, table: _PlannedTable) -> None:
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(col), sql.SQL(pg_type))
        for col, pg_type in zip(table.columns, table.pg_types, strict=True)
    )
    cur.execute(
        sql.SQL("CREATE TABLE {}.{} ({})").format(
            sql.Identifier(schema), sql.Identifier(name), columns
        )
    )


def _copy_table(
    cur: psycopg.Cursor, schema: str, name: str, table: _PlannedTable, batch_rows: int
) -> int:
    statement = sql.SQL("COPY {}.{} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(schema),
        sql.Identifier(name),
        sql.SQL(", ").join(sql.Identifier(c) for c in table.columns),
    )
    with cur.copy(statement) as copy:
        for chunk in _csv_chunks(table, batch_rows):
            copy.write(chunk)
    return cur.rowcount if cur.rowcount >= 0 else table.num_rows


def _pk_constraint_name(token: str, table: _PlannedTable) -> str:
    return f"{RESERVED_PREFIX}pk_{token}_{table.name.encode().hex()[:16]}"


def _fit_name(base: str, suffix: str) -> str:
    """``<base>_<suffix>`` within 63 bytes, cutting ``base`` on a character boundary."""
    room = MAX_IDENTIFIER_BYTES - len(suffix.encode()) - 1
    cut = base.encode()[:room].decode("utf-8", errors="ignore")
    return f"{cut}_{suffix}"


def _add_primary_key(
    cur: psycopg.Cursor, schema: str, name: str, table: _PlannedTable, token: str
) -> None:
    cur.execute(
        sql.SQL("ALTER TABLE {}.{} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
            sql.Identifier(schema),
            sql.Identifier(name),
            sql.Identifier(_pk_constraint_name(token, table)),
            sql.SQL(", ").join(sql.Identifier(c) for c in table.primary_key),
        )
    )


def _fk_constraint_name(fk: TargetForeignKey) -> str:
    return _fit_name(f"{fk.child}_{'_'.join(fk.child_columns)}", "fkey")


def _unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``name`` with a counter when this load already used it (two FKs of one
    table over columns whose names join the same way, e.g. ``(a_b)`` and ``(a, b)``)."""
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = _fit_name(name.removesuffix("_fkey"), f"fkey{n}")
    used.add(candidate)
    return candidate


def _add_foreign_key(
    cur: psycopg.Cursor, schema: str, temp: Mapping[str, str], fk: TargetForeignKey, name: str
) -> None:
    # Constraint names only need to be unique per table, so the final name is safe now.
    cur.execute(
        sql.SQL(
            "ALTER TABLE {}.{} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {}.{} ({})"
        ).format(
            sql.Identifier(schema),
            sql.Identifier(temp[fk.child]),
            sql.Identifier(name),
            sql.SQL(", ").join(sql.Identifier(c) for c in fk.child_columns),
            sql.Identifier(schema),
            sql.Identifier(temp[fk.parent]),
            sql.SQL(", ").join(sql.Identifier(c) for c in fk.parent_columns),
        )
    )


def _record_load(
    cur: psycopg.Cursor,
    plan: LoadPlan,
    counts: Mapping[str, int],
    replaced: Sequence[str],
    seconds: float,
) -> None:
    cur.execute(
        sql.SQL(
            """
            CREATE TABLE IF NOT EXISTS {}.{} (
                load_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                loaded_at timestamptz NOT NULL DEFAULT now(),
                loaded_by text NOT NULL DEFAULT current_user,
                tables jsonb NOT NULL,
                load_order text[] NOT NULL,
                replaced text[] NOT NULL,
                total_rows bigint NOT NULL,
                seconds double precision NOT NULL,
                source jsonb NOT NULL
            )
            """
        ).format(sql.Identifier(plan.schema), sql.Identifier(LOADS_TABLE))
    )
    cur.execute(
        sql.SQL(
            "INSERT INTO {}.{} (tables, load_order, replaced, total_rows, seconds, source)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
        ).format(sql.Identifier(plan.schema), sql.Identifier(LOADS_TABLE)),
        (
            Jsonb(dict(counts)),
            plan.order,
            list(replaced),
            sum(counts.values()),
            round(seconds, 3),
            Jsonb(dict(plan.source)),
        ),
    )


def _swap(
    cur: psycopg.Cursor,
    plan: LoadPlan,
    temp: Mapping[str, str],
    existing: Mapping[str, int],
    token: str,
) -> None:
    """Drop the old tables (one statement, no CASCADE) and give the new ones their names.

    Everything before this ran on private tables; the exclusive locks on the user-visible
    names are taken only here, right before COMMIT.
    """
    schema = sql.Identifier(plan.schema)
    old = [t for t in reversed(plan.order) if t in existing]  # children first
    grants = _table_grants(cur, existing)
    if old:
        cur.execute(
            sql.SQL("DROP TABLE {} RESTRICT").format(
                sql.SQL(", ").join(sql.SQL("{}.{}").format(schema, sql.Identifier(t)) for t in old)
            )
        )
    for table in plan.tables:
        cur.execute(
            sql.SQL("ALTER TABLE {}.{} RENAME TO {}").format(
                schema, sql.Identifier(temp[table.name]), sql.Identifier(table.name)
            )
        )
        for privilege, grantee, grantable in grants.get(table.name, ()):
            cur.execute(
                sql.SQL("GRANT {} ON {}.{} TO {}{}").format(
                    sql.SQL(privilege),
                    schema,
                    sql.Identifier(table.name),
                    sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee),
                    sql.SQL(" WITH GRANT OPTION" if grantable else ""),
                )
            )
        if not table.primary_key:
            continue
        # The PK index is a relation in the schema's namespace, so its usual name was taken
        # by the old table until the DROP above. Keep the private name if anything else holds
        # the usual one (the load must not fail over a cosmetic name).
        final = _fit_name(table.name, "pkey")
        cur.execute("SELECT to_regclass(%s)", (sql.Identifier(plan.schema, final).as_string(cur),))
        if cur.fetchone()[0] is None:
            cur.execute(
                sql.SQL("ALTER TABLE {}.{} RENAME CONSTRAINT {} TO {}").format(
                    schema,
                    sql.Identifier(table.name),
                    sql.Identifier(_pk_constraint_name(token, table)),
                    sql.Identifier(final),
                )
            )


def _table_grants(
    cur: psycopg.Cursor, existing: Mapping[str, int]
) -> dict[str, list[tuple[str, str | None, bool]]]:
    """Table privileges granted on the old tables to others than their owner.

    Testers and applications of a staging environment are granted access to its tables;
    a replace that silently dropped those grants would break them after every load, so
    the new tables get the same table-level grants (grantee None = PUBLIC). Column-level
    grants are not carried over.
    """
    if not existing:
        return {}
    cur.execute(
        """
        SELECT c.relname, a.privilege_type,
               CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
               a.is_grantable
          FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
         WHERE c.oid = ANY(%s::oid[]) AND a.grantee <> c.relowner
         ORDER BY 1, 3, 2
        """,
        (list(existing.values()),),
    )
    grants: dict[str, list[tuple[str, str | None, bool]]] = {}
    for relname, privilege, grantee, grantable in cur.fetchall():
        if privilege in _PRIVILEGES:  # a fixed keyword list: safe to put into the SQL text
            grants.setdefault(relname, []).append((privilege, grantee, grantable))
    return grants


def _load_error(
    exc: psycopg.Error, step: str, plan: LoadPlan, temp: Mapping[str, str], token: str
) -> TargetLoadError:
    """An actionable message: what step, which table/column/row, the server's words, and
    that the target is unchanged. Private table names are translated back to the set's."""
    real = {v: k for k, v in temp.items()}
    names = dict(real)
    names.update({_pk_constraint_name(token, t): _fit_name(t.name, "pkey") for t in plan.tables})

    def readable(text: str | None) -> str:
        text = text or ""
        for private in sorted(names, key=len, reverse=True):  # `_1` must not eat `_10`
            text = text.replace(private, names[private])
        return text

    diag = exc.diag
    parts = [f"loading the synthetic set into schema {plan.schema!r} failed while {step}:"]
    parts.append(readable(diag.message_primary or str(exc)).strip().rstrip(".") + ".")
    if diag.message_detail:
        parts.append(readable(diag.message_detail).strip())
    match = _COPY_CONTEXT.search(diag.context or "")
    if match:
        table = real.get(match.group(1).strip('"'), match.group(1))
        where = f"At table {table!r}, row {match.group(2)}"
        if match.group(3):
            where += f", column {match.group(3).strip()}"
        parts.append(where + " (rows counted from 1 in the Parquet file).")
    hint = {
        pgerrors.ForeignKeyViolation: "Every foreign key must point at an existing synthetic "
        "parent: fix the set (or its declared relationships) and re-run.",
        pgerrors.UniqueViolation: "Primary keys must be unique: fix the key column in the "
        "synthetic set and re-run.",
        pgerrors.NotNullViolation: "Primary-key columns cannot hold NULL: fix the set.",
        pgerrors.LockNotAvailable: "Another session kept using the old tables; end it (see "
        "pg_stat_activity) or raise lock_timeout_s, and re-run.",
        pgerrors.InsufficientPrivilege: "Grant the loading role CREATE on the database/schema "
        "and ownership of the tables it replaces.",
        pgerrors.DependentObjectsStillExist: "Drop the dependent objects named above (the "
        "loader never uses CASCADE), or load into another schema.",
    }.get(type(exc))
    if hint is None and isinstance(exc, pgerrors.DataError):
        hint = "A value does not fit its column type: fix the value or the column's pg_type."
    if hint:
        parts.append(hint)
    parts.append("The load was rolled back; the target still holds the previous set.")
    return TargetLoadError(" ".join(parts))
