"""What the extract does with each PostgreSQL type a feature query can return.

Every result column gets one treatment, decided from the query's description (the type
OIDs the server reports for a declared cursor, see :func:`describe_query`) before any row
is read:

* ``modelled``: numbers, booleans, dates and times, intervals: learned by the synthesizer
  (an interval as a duration, a time of day as seconds since midnight);
* ``text``: text types: a learned category, or PII when its name or content says so
  (:mod:`airflow_synth.core.profile.roles`);
* ``category``: enums: a learned category, never taken for PII;
* ``fresh``: identifiers by type (``uuid``, ``inet``, ``cidr``): never learned, issued
  fresh, so no published value equals a real one (the ``pii_leak`` gate);
* ``declared``: refused unless the contract declares the column ``role: pii`` (issued
  fresh) or ``role: modelled`` (whole values learned as categories): JSON documents, MAC
  addresses;
* ``refused``: everything else (binary data, arrays, ranges, geometry, XML, text search,
  bit strings, money, catalog identifiers, composite and pseudo types): one error lists
  every such column with its type and what to select instead.

The decision travels with the staged rows as Parquet field metadata (:func:`field_metadata`),
so the roles step issues a ``uuid`` column fresh and learns an enum as a category whatever
its values look like. Pure: no Airflow import; the only I/O is :func:`describe_query` on
the connection it is given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_synth.core.errors import ExtractError

MODELLED, TEXT, CATEGORY, FRESH, DECLARED, REFUSED = (
    "modelled",
    "text",
    "category",
    "fresh",
    "declared",
    "refused",
)
HANDLINGS = (MODELLED, TEXT, CATEGORY, FRESH, DECLARED, REFUSED)
#: Contract roles that make a ``declared`` type acceptable.
DECLARABLE_ROLES = ("pii", "modelled")
#: Parquet field metadata key of a column's decision (a small JSON object, no value).
FIELD_KEY = b"airflow_synth.pg"
#: ``DataFrame.attrs`` key under which :func:`airflow_synth.core.frames.to_training_frame`
#: keeps the decisions of the staged columns ({column: {"type", "handling", "pii_kind"}}).
ATTRS_KEY = "airflow_synth.pg_types"
#: The cursor :func:`describe_query` declares (and closes) to read the column types.
DESCRIBE_CURSOR = "airflow_synth_describe"


class ColumnTypeError(ExtractError):
    """The query returns columns of types the extract refuses; raised before any row moves."""


@dataclass(frozen=True)
class Treatment:
    """What happens to the values of one PostgreSQL type."""

    handling: str
    #: what the values are and become (README table, error messages)
    what: str
    #: refused and declared types: select-list expressions to write instead, as
    #: ``(expression with {col}, suffix of the alias)``; an empty suffix keeps the name
    instead: tuple[tuple[str, str], ...] = ()
    #: what else the user may do (drop it, declare it in the contract...)
    advice: str = ""
    #: fresh and declared types: the fresh-value generator's kind
    pii_kind: str | None = None

    def __post_init__(self) -> None:
        if self.handling not in HANDLINGS:
            raise ValueError(f"unknown handling {self.handling!r}")


def _refused(what: str, *instead: tuple[str, str], advice: str = "") -> Treatment:
    return Treatment(REFUSED, what, tuple(instead), advice)


_DROP = ", or drop the column"
_INTERNAL = _refused(
    "a value internal to this server, meaningless outside it",
    advice="drop the column",
)
_CATALOG_ID = _refused(
    "a catalog identifier (an OID), meaningless outside this database",
    ("{col}::text", ""),
    advice=" (the object's name, learned as a category)" + _DROP,
)
_NUMBER = Treatment(MODELLED, "number, learned")
_WHOLE = Treatment(MODELLED, "whole number, learned")
_TEXT = Treatment(TEXT, "text: a learned category, or PII when its name or content says so")
_JSON = Treatment(
    DECLARED,
    "a JSON document",
    (("{col}->>'key'", "_key"),),
    " (one per field you need), or declare the column in the contract: `role: pii` "
    "(fresh documents: the same keys, every value replaced) or `role: modelled` "
    "(whole documents learned as categories)",
    pii_kind="json",
)
_MAC = Treatment(
    DECLARED,
    "a MAC address: it identifies a device",
    (("trunc({col})::text", "_vendor"),),
    " (the maker's prefix, a category), or declare the column `role: pii` in the contract "
    "(fresh random text in its format, not valid hexadecimal)" + _DROP,
    pii_kind="identifier",
)

#: The treatment of every base type of ``pg_catalog`` (PostgreSQL 13-17) by type name;
#: arrays, enums, ranges, composite and pseudo types follow :func:`treatment_of`'s rules.
TREATMENTS: dict[str, Treatment] = {
    # numbers and booleans
    "int2": _WHOLE,
    "int4": _WHOLE,
    "int8": _WHOLE,
    "float4": _NUMBER,
    "float8": _NUMBER,
    "numeric": Treatment(MODELLED, "number (read as float8), learned"),
    "bool": Treatment(MODELLED, "boolean, learned"),
    "money": _refused(
        "money, whose text form depends on the server's lc_monetary",
        ("{col}::numeric", ""),
        advice=" (a number, learned)",
    ),
    # dates and times
    "date": Treatment(MODELLED, "date, learned"),
    "timestamp": Treatment(MODELLED, "timestamp, learned"),
    "timestamptz": Treatment(MODELLED, "timestamp in UTC, learned"),
    "time": Treatment(MODELLED, "time of day (learned as seconds since midnight)"),
    "timetz": Treatment(
        MODELLED, "time of day in UTC, the offset dropped (learned as seconds since midnight)"
    ),
    "interval": Treatment(
        MODELLED,
        "duration: a month counts 30 days, a year 365 (learned as seconds, "
        "published as an Arrow duration, loaded back as interval)",
    ),
    # text
    "text": _TEXT,
    "varchar": _TEXT,
    "bpchar": _TEXT,
    "name": _TEXT,
    "char": _TEXT,
    # identifiers: issued fresh
    "uuid": Treatment(FRESH, "identifier: fresh random UUIDs", pii_kind="uuid"),
    "inet": Treatment(
        FRESH, "network address (personal data): fresh random IP addresses", pii_kind="ip_address"
    ),
    "cidr": Treatment(
        FRESH, "network address (personal data): fresh random IP addresses", pii_kind="ip_address"
    ),
    # allowed when the contract says how
    "json": _JSON,
    "jsonb": _JSON,
    "macaddr": _MAC,
    "macaddr8": _MAC,
    # refused: say what to select instead
    "bytea": _refused(
        "binary data, which can be neither learned nor issued fresh",
        ("octet_length({col})", "_bytes"),
        advice=" (its size)" + _DROP + " (a hash of it would still identify the row)",
    ),
    "xml": _refused(
        "an XML document",
        ("(xpath('/*/text()', {col}))[1]::text", "_text"),
        advice=" (one xpath() per value you need)" + _DROP,
    ),
    "jsonpath": _refused("a JSON path", ("{col}::text", ""), advice=" (a category)" + _DROP),
    "tsvector": _refused("a text search vector", ("length({col})", "_lexemes"), advice=_DROP),
    "tsquery": _refused("a text search query", ("numnode({col})", "_nodes"), advice=_DROP),
    "bit": _refused(
        "a bit string",
        ("{col}::text", ""),
        advice=" (a category), or bit_count() for the number of ones",
    ),
    "varbit": _refused(
        "a bit string",
        ("{col}::text", ""),
        advice=" (a category), or bit_count() for the number of ones",
    ),
    "point": _refused("a geometric point", ("{col}[0]", "_x"), ("{col}[1]", "_y")),
    "lseg": _refused("a geometric line segment", ("length({col})", "_length"), advice=_DROP),
    "line": _refused("an infinite geometric line", advice="drop the column"),
    "box": _refused(
        "a geometric box",
        ("area({col})", "_area"),
        ("(center({col}))[0]", "_x"),
        ("(center({col}))[1]", "_y"),
    ),
    "path": _refused(
        "a geometric path", ("length({col})", "_length"), ("npoints({col})", "_points")
    ),
    "polygon": _refused(
        "a geometric polygon", ("area(path({col}))", "_area"), ("npoints({col})", "_points")
    ),
    "circle": _refused(
        "a geometric circle",
        ("radius({col})", "_radius"),
        ("(center({col}))[0]", "_x"),
        ("(center({col}))[1]", "_y"),
    ),
    # catalog identifiers
    "oid": _refused(
        "a catalog identifier (an OID), meaningless outside this database",
        ("{col}::bigint", ""),
        advice=" if you mean the number" + _DROP,
    ),
    **{
        name: _CATALOG_ID
        for name in (
            "regproc",
            "regprocedure",
            "regoper",
            "regoperator",
            "regclass",
            "regtype",
            "regconfig",
            "regdictionary",
            "regnamespace",
            "regrole",
            "regcollation",
        )
    },
    # the server's internals
    **{
        name: _INTERNAL
        for name in (
            "tid",
            "xid",
            "xid8",
            "cid",
            "pg_lsn",
            "txid_snapshot",
            "pg_snapshot",
            "aclitem",
            "refcursor",
            "gtsvector",
            "pg_node_tree",
            "pg_ndistinct",
            "pg_dependencies",
            "pg_mcv_list",
            "pg_brin_bloom_summary",
            "pg_brin_minmax_multi_summary",
        )
    },
}

ARRAY = _refused(
    "an array",
    ("cardinality({col})", "_count"),
    advice=" (or pick elements: {col}[1]; or unnest() it in FROM, one row per element)",
)
ENUM = Treatment(CATEGORY, "enum: a learned category")
RANGE = _refused("a range", ("lower({col})", "_lower"), ("upper({col})", "_upper"))
COMPOSITE = _refused(
    "a row of fields", advice="select its fields instead: ({col}).field AS field, one per field"
)
PSEUDO = _refused("a value without a storable type", ("{col}::text", ""), advice=_DROP)
#: Types of extensions, by name (their OIDs differ per database).
EXTENSION_TREATMENTS: dict[str, Treatment] = {"citext": _TEXT}
EXTENSION = _refused(
    "a type of an extension", ("{col}::text", ""), advice=" (a category), or a number from it"
)
UNLISTED = _refused(
    "a built-in type this version of airflow-synth does not know",
    ("{col}::text", ""),
    advice=" (a category), or a number from it",
)

#: OIDs of the types in :data:`TREATMENTS` (fixed in PostgreSQL's catalogue), so a query of
#: such columns needs no catalog lookup. Checked against ``pg_type`` by the tests.
BUILTIN_OIDS: dict[int, str] = {
    16: "bool",
    17: "bytea",
    18: "char",
    19: "name",
    20: "int8",
    21: "int2",
    23: "int4",
    24: "regproc",
    25: "text",
    26: "oid",
    27: "tid",
    28: "xid",
    29: "cid",
    114: "json",
    142: "xml",
    194: "pg_node_tree",
    600: "point",
    601: "lseg",
    602: "path",
    603: "box",
    604: "polygon",
    628: "line",
    650: "cidr",
    700: "float4",
    701: "float8",
    718: "circle",
    774: "macaddr8",
    790: "money",
    829: "macaddr",
    869: "inet",
    1033: "aclitem",
    1042: "bpchar",
    1043: "varchar",
    1082: "date",
    1083: "time",
    1114: "timestamp",
    1184: "timestamptz",
    1186: "interval",
    1266: "timetz",
    1560: "bit",
    1562: "varbit",
    1700: "numeric",
    1790: "refcursor",
    2202: "regprocedure",
    2203: "regoper",
    2204: "regoperator",
    2205: "regclass",
    2206: "regtype",
    2950: "uuid",
    2970: "txid_snapshot",
    3220: "pg_lsn",
    3361: "pg_ndistinct",
    3402: "pg_dependencies",
    3614: "tsvector",
    3615: "tsquery",
    3642: "gtsvector",
    3734: "regconfig",
    3769: "regdictionary",
    3802: "jsonb",
    4072: "jsonpath",
    4089: "regnamespace",
    4096: "regrole",
    4191: "regcollation",
    4600: "pg_brin_bloom_summary",
    4601: "pg_brin_minmax_multi_summary",
    5017: "pg_mcv_list",
    5038: "pg_snapshot",
    5069: "xid8",
}


@dataclass(frozen=True)
class ColumnType:
    """One result column and its type as the catalogue describes it."""

    name: str
    oid: int
    type_name: str
    #: ``pg_type.typtype``: b(ase), e(num), c(omposite), d(omain), p(seudo), r(ange), m(ultirange)
    typtype: str = "b"
    #: ``pg_type.typcategory`` (``A`` = array)
    category: str = ""
    schema: str = "pg_catalog"
    #: the type's name for messages (``int4[]`` for an array), default ``type_name``
    display: str = ""

    @property
    def label(self) -> str:
        return self.display or self.type_name


@dataclass(frozen=True)
class Decision:
    """What the extract does with one column."""

    column: ColumnType
    treatment: Treatment
    #: the role the contract declares for the column, if any
    declared: str | None = None
    #: why the column is refused (None: accepted)
    refusal: str | None = None

    @property
    def handling(self) -> str:
        return self.treatment.handling

    def metadata(self) -> dict[bytes, bytes]:
        """The Parquet field metadata that carries this decision (type names, no value)."""
        info = {"type": self.column.label, "handling": self.handling}
        if self.treatment.pii_kind:
            info["pii_kind"] = self.treatment.pii_kind
        return {FIELD_KEY: json.dumps(info, sort_keys=True).encode("utf-8")}


def treatment_of(column: ColumnType) -> Treatment:
    """The treatment of ``column``'s type: by name in ``pg_catalog``, else by kind of type."""
    if column.category == "A":
        return ARRAY
    if column.typtype == "e":
        return ENUM
    if column.typtype == "c" or column.type_name == "record":
        return COMPOSITE
    if column.typtype in ("r", "m"):
        return RANGE
    if column.typtype == "p":
        return PSEUDO
    if column.schema == "pg_catalog":
        return TREATMENTS.get(column.type_name, UNLISTED)
    return EXTENSION_TREATMENTS.get(column.type_name, EXTENSION)


# --------------------------------------------------------------------------------------------
# deciding: every column at once, one error for all refused ones
# --------------------------------------------------------------------------------------------
def declared_roles(contract: Any) -> dict[str, str]:
    """The role a contract gives each column it declares one for (``pii``, ``modelled``...).

    ``pii: true`` and the sdtypes ``id``/``text``/``pii`` mean PII (never learned), another
    sdtype means modelled, the primary key is a ``key``.
    """
    if contract is None:
        return {}
    roles: dict[str, str] = {}
    for column in contract.columns:
        if column.role is not None:
            roles[column.name] = column.role
        elif column.pii or column.sdtype in ("id", "text", "pii"):
            roles[column.name] = "pii"
        elif column.sdtype is not None:
            roles[column.name] = "modelled"
    if contract.primary_key and contract.primary_key not in roles:
        roles[contract.primary_key] = "key"
    return roles


def decide(columns: Sequence[ColumnType], sql_name: str, contract: Any = None) -> list[Decision]:
    """Each column's :class:`Decision`; raises :class:`ColumnTypeError` naming every
    refused column (its type and what to write instead) in one message.

    ``contract`` (a :class:`~airflow_synth.core.contract.TableContract`, possibly partial)
    may accept a ``declared`` type (``role: pii`` or ``role: modelled``); it cannot make a
    ``fresh`` type (an identifier) learned, nor accept a refused type.
    """
    roles = declared_roles(contract)
    where = getattr(contract, "source", "the contract")
    decisions = []
    for column in columns:
        treatment = treatment_of(column)
        declared = roles.get(column.name)
        refusal = None
        needs_role = treatment.handling == DECLARED and declared not in DECLARABLE_ROLES
        if treatment.handling == REFUSED or needs_role:
            refusal = _instead(column, treatment)
        elif treatment.handling == FRESH and declared == "modelled":
            refusal = (
                "an identifier is issued fresh, never learned (learning it would publish "
                f"real values): remove `role: modelled` (or its sdtype) from {where}"
            )
        decisions.append(Decision(column, treatment, declared, refusal))
    refused = [d for d in decisions if d.refusal is not None]
    if refused:
        lines = "\n".join(
            f"  - {d.column.name} ({d.column.label}): {d.treatment.what}; {d.refusal}"
            for d in refused
        )
        raise ColumnTypeError(
            f"The query in {sql_name} returns {len(refused)} column(s) of PostgreSQL types "
            "that are not turned into synthetic data as they are (decided from the query's "
            f"column types; no row was read):\n{lines}\n"
            "Change the SQL file (or the contract where offered) and re-run; nothing was "
            "extracted or published. The README's 'PostgreSQL types' lists every type's "
            "treatment."
        )
    return decisions


def sql_name(name: str) -> str:
    """``name`` as it is written in SQL (double-quoted unless a plain lower-case word)."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


def instead_expressions(name: str, treatment: Treatment) -> list[str]:
    """The select-list items to write instead of column ``name`` (``expr AS alias``)."""
    return [
        f"{expression.format(col=sql_name(name))} AS {sql_name(name + suffix)}"
        for expression, suffix in treatment.instead
    ]


def _instead(column: ColumnType, treatment: Treatment) -> str:
    items = instead_expressions(column.name, treatment)
    advice = treatment.advice.format(col=sql_name(column.name))
    if not items:
        return advice.lstrip(", ")
    return "write " + ", ".join(items) + " instead" + advice


# --------------------------------------------------------------------------------------------
# the decision in the staged file, read back by the roles step
# --------------------------------------------------------------------------------------------
def field_metadata(decisions: Iterable[Decision]) -> list[dict[bytes, bytes]]:
    """Field metadata for the staged Parquet file, one per column in order."""
    return [d.metadata() for d in decisions]


def schema_types(schema: Any) -> dict[str, dict[str, str]]:
    """The decisions recorded in an Arrow schema's field metadata, by column name."""
    found = {}
    for field in schema:
        raw = (field.metadata or {}).get(FIELD_KEY)
        if raw:
            try:
                found[field.name] = json.loads(raw)
            except ValueError:
                continue
    return found


def frame_types(frame: Any) -> Mapping[str, Mapping[str, str]]:
    """The decisions :func:`airflow_synth.core.frames.to_training_frame` kept on ``frame``."""
    return getattr(frame, "attrs", {}).get(ATTRS_KEY) or {}


# --------------------------------------------------------------------------------------------
# reading the types: the query declared as a cursor, described, never fetched
# --------------------------------------------------------------------------------------------
_LOOKUP = (  # an array is shown as its element's name and [] (int4[], mood[])
    "SELECT t.oid::int8, t.typname, t.typtype, t.typcategory, n.nspname, "
    "CASE WHEN t.typname = '_' || e.typname THEN e.typname || '[]' ELSE t.typname END, "
    "t.typbasetype::int8 "
    "FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace "
    "LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem "
    "WHERE t.oid = ANY(%s::oid[])"
)


def describe_query(
    conn: Any, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None, sql_name: str
) -> list[ColumnType]:
    """The result columns of ``sql`` and their types, without reading a row.

    The query is declared as a cursor in a read-only transaction with the extract's
    timeouts (:func:`~airflow_synth.core.extract.session.guard_transaction`; the server
    binds the parameters and checks the SQL, errors name the file's line as the extract's
    do) and
    described with ``FETCH FORWARD 0``, which returns no row; types outside
    :data:`BUILTIN_OIDS` are looked up in ``pg_type`` (domains resolved to their base
    type). Works on psycopg 2 and 3 connections; the transaction is rolled back.
    """
    from airflow_synth.core.extract import session, stream

    try:
        with conn.cursor() as cursor:
            session.guard_transaction(cursor)
            try:
                cursor.execute(f'DECLARE "{DESCRIBE_CURSOR}" CURSOR FOR {sql}', parameters or None)
            except Exception as exc:  # driver errors differ between psycopg 2 and 3
                stream._raise_extract_error(exc, sql, sql_name, stream._sent_statement(cursor))
            cursor.execute(f'FETCH FORWARD 0 FROM "{DESCRIBE_CURSOR}"')
            described = [(str(col.name), int(col.type_code)) for col in cursor.description]
            unknown = {oid for _, oid in described if oid not in BUILTIN_OIDS}
            catalog = _lookup(cursor, unknown) if unknown else {}
    finally:
        stream._end_transaction(conn)
    columns = []
    for name, oid in described:
        if oid in BUILTIN_OIDS:
            columns.append(ColumnType(name, oid, BUILTIN_OIDS[oid]))
        elif oid in catalog:
            typname, typtype, category, schema, display = catalog[oid]
            columns.append(ColumnType(name, oid, typname, typtype, category, schema, display))
        else:  # not in pg_type: treated as a pseudo type (refused)
            columns.append(ColumnType(name, oid, f"oid {oid}", "p", "", "", f"type oid {oid}"))
    return columns


def _lookup(cursor: Any, oids: set[int]) -> dict[int, tuple[str, str, str, str, str]]:
    """``pg_type`` rows of ``oids``; a domain is described by its base type."""
    found: dict[int, tuple[str, str, str, str, str]] = {}
    base_of: dict[int, int] = {}
    pending = set(oids)
    for _ in range(8):  # domains over domains: a few levels at most
        if not pending:
            break
        cursor.execute(_LOOKUP, ("{" + ",".join(str(int(o)) for o in sorted(pending)) + "}",))
        pending = set()
        for oid, typname, typtype, category, schema, display, base in cursor.fetchall():
            if typtype == "d" and base:
                base_of[int(oid)] = int(base)
                if base not in found and base not in BUILTIN_OIDS:
                    pending.add(int(base))
            else:
                found[int(oid)] = (typname, typtype, category, schema, display)
    for oid, base in base_of.items():
        while base in base_of:
            base = base_of[base]
        if base in BUILTIN_OIDS:
            found[oid] = (BUILTIN_OIDS[base], "b", "", "pg_catalog", BUILTIN_OIDS[base])
        elif base in found:
            found[oid] = found[base]
    return found


__all__ = [
    "ATTRS_KEY",
    "BUILTIN_OIDS",
    "CATEGORY",
    "DECLARED",
    "FIELD_KEY",
    "FRESH",
    "HANDLINGS",
    "MODELLED",
    "REFUSED",
    "TEXT",
    "TREATMENTS",
    "ColumnType",
    "ColumnTypeError",
    "Decision",
    "Treatment",
    "decide",
    "describe_query",
    "field_metadata",
    "frame_types",
    "schema_types",
    "treatment_of",
]
