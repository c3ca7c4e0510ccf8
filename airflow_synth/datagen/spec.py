"""Reading and validating a data spec (YAML) into plain, checked objects.

A spec that is wrong should fail when it is loaded, with a message that names the file,
the table, the column and what to change, never halfway through loading a million rows.
Everything here is pure Python; :mod:`airflow_synth.datagen.generate` turns a checked
:class:`DataSpec` into rows. The format itself is described in :mod:`airflow_synth.datagen`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airflow_synth.core.errors import SynthError

#: Column types a spec may use.
COLUMN_TYPES = (
    "id",
    "categorical",
    "boolean",
    "integer",
    "float",
    "date",
    "timestamp",
    "reference",
    "sequence",
)
#: Numeric distributions (parameters in brackets) for ``integer``/``float`` columns and lags.
DISTRIBUTIONS: Mapping[str, tuple[str, ...]] = {
    "normal": ("mean", "sd"),
    "lognormal": ("meanlog", "sdlog"),
    "gamma": ("shape", "scale"),
    "exponential": ("scale",),
    "uniform": ("low", "high"),
    "poisson": ("mean",),
    "constant": ("value",),
}
#: Distributions of the number of children per parent (``rows.per``).
COUNT_DISTRIBUTIONS: Mapping[str, tuple[str, ...]] = {
    "negative_binomial": ("mean", "dispersion"),
    "poisson": ("mean",),
    "geometric": ("mean",),
    "explicit": ("values",),
}
TRUTH_KINDS = ("shares", "rate", "rate_by_month", "children_per_parent", "row_count")
#: Shares must add up to 1 within this (YAML decimals are not exact).
SHARE_TOLERANCE = 1e-6

_CONDITION_KEYS = ("equals", "in", "not_in", "is_null", "between")
_COLUMN_KEYS: Mapping[str, set[str]] = {
    "id": {"format", "start", "length", "prefix"},
    "categorical": {
        "values",
        "given",
        "values_by",
        "default",
        "blend",
        "split",
        "map",
        "bins",
        "when",
        "otherwise",
    },
    "boolean": {"rate", "rate_by_month", "propensity"},
    "integer": {"distribution", "params_by", "null_share", "clip", "round", "replace", "offset"},
    "float": {
        "distribution",
        "params_by",
        "null_share",
        "clip",
        "round",
        "replace",
        "digits",
        "offset",
    },
    "date": {"start", "end", "growth", "from", "plus_days", "minus_days", "when", "time_of_day"},
    "timestamp": {
        "start",
        "end",
        "growth",
        "from",
        "plus_days",
        "minus_days",
        "when",
        "time_of_day",
    },
    "reference": {"references", "popularity", "null_share", "into", "distinct_per", "roots"},
    "sequence": {"per", "start"},
}
_COMMON_KEYS = {"type", "hidden", "description"}


class SpecError(SynthError):
    """The data spec is invalid; the message names the file, table and column to fix."""


def _suggest(name: object, choices: Any) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its type and the (checked) options of that type."""

    table: str
    name: str
    type: str
    options: Mapping[str, Any]
    #: Hidden columns drive other columns (e.g. ``booked``) but are not loaded.
    hidden: bool = False
    #: Columns of the same table (``col``) or of the parent (``parent.col``) it needs first.
    depends_on: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.table}.{self.name}"

    @property
    def output_columns(self) -> tuple[str, ...]:
        """Columns this entry writes (a ``split`` categorical and a composite reference
        write several)."""
        split = self.options.get("split")
        if split:
            return tuple(split["into"])
        if self.type == "reference" and self.is_composite:
            return tuple(self.options["into"])
        return (self.name,)

    # --- references -----------------------------------------------------------------------
    @property
    def parent_table(self) -> str:
        """The table a ``reference`` points at."""
        ref = self.options["references"]
        return str(ref[0] if isinstance(ref, list) else ref).split(".")[0]

    @property
    def parent_columns(self) -> tuple[str, ...]:
        """The parent's key columns a ``reference`` points at (several: a composite FK)."""
        ref = self.options["references"]
        return tuple(str(r).split(".", 1)[1] for r in (ref if isinstance(ref, list) else [ref]))

    @property
    def is_composite(self) -> bool:
        """A reference to a composite primary key (it writes one column per key column)."""
        return isinstance(self.options.get("references"), list)

    @property
    def is_self_reference(self) -> bool:
        """A reference to its own table (a hierarchy such as ``manager_id``)."""
        return self.type == "reference" and self.parent_table == self.table


@dataclass(frozen=True)
class RowsSpec:
    """How many rows a table has: a fixed number, or a declared count per parent row."""

    count: int | None = None
    #: Parent table and the reference column of this table that points at it.
    per: str | None = None
    via: str | None = None
    counts: Mapping[str, Any] = field(default_factory=dict)
    rank_by: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class TableSpec:
    name: str
    rows: RowsSpec
    #: The single ``id`` column that single-column references point at; None for a table
    #: without one (no key, or a composite key: see :attr:`key_columns`).
    primary_key: str | None
    columns: Mapping[str, ColumnSpec]
    #: The declared primary key, one column or several (``primary_key: [a, b]``); () if none.
    key_columns: tuple[str, ...] = ()

    def column(self, name: str) -> ColumnSpec:
        return self.columns[name]

    @property
    def output_columns(self) -> list[str]:
        """Loaded columns, in spec order."""
        return [out for c in self.columns.values() if not c.hidden for out in c.output_columns]


@dataclass(frozen=True)
class TruthSpec:
    """A declared truth: a fact about the data the generator honours to the row."""

    name: str
    kind: str
    table: str
    column: str | None = None
    description: str = ""
    #: For ``rate_by_month``: the date column whose month groups the rate.
    month_of: str | None = None


@dataclass(frozen=True)
class DataSpec:
    """A checked data spec. Build it with :func:`load_spec` or :func:`parse_spec`."""

    name: str
    tables: Mapping[str, TableSpec]
    truths: Mapping[str, TruthSpec]
    #: Folder of the Flyway-style migrations that create the schema (None: none declared).
    migrations: Path | None
    #: Where the spec came from (for messages) and a hash of its content (for reloads).
    source: str
    sha256: str
    description: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def table(self, name: str) -> TableSpec:
        if name not in self.tables:
            raise SpecError(
                f"{self.source}: no table {name!r} in spec {self.name!r}."
                + _suggest(name, self.tables)
            )
        return self.tables[name]

    def load_order(self) -> list[str]:
        """Tables with every referenced table before the tables referring to it."""
        order: list[str] = []
        visiting: set[str] = set()

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in order:
                return
            if name in visiting:
                raise SpecError(
                    f"{self.source}: tables refer to each other in a cycle "
                    f"({' -> '.join((*path, name))}); a spec needs an order to generate in."
                )
            visiting.add(name)
            for parent in _referenced_tables(self.tables[name]):
                visit(parent, (*path, name))
            visiting.discard(name)
            order.append(name)

        for name in self.tables:
            visit(name, ())
        return order


def _referenced_tables(table: TableSpec) -> list[str]:
    parents = [table.rows.per] if table.rows.per else []
    for column in table.columns.values():
        if column.type == "reference":
            parents.append(column.parent_table)
    return [p for p in dict.fromkeys(parents) if p != table.name]


def is_exact(table: TableSpec, column: ColumnSpec) -> bool:
    """Whether the column's counts are fixed by the spec (see the module docstring)."""
    o = column.options
    if column.type == "boolean":
        return True
    if column.type in ("date", "timestamp"):
        return "from" not in o
    if column.type != "categorical" or "blend" in o or "when" in o:
        return False
    if "values" in o:
        return True
    if "values_by" in o:
        given = str(o["given"])
        return "." not in given and is_exact(table, table.columns[given])
    return False


def load_spec(path: str | Path) -> DataSpec:
    """Read and check the YAML spec at ``path``.

    ``migrations`` in the file is resolved relative to the spec file's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"Data spec {path} does not exist.")
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path} is not valid YAML: {exc}") from exc
    return parse_spec(raw, source=str(path), base_dir=path.parent)


def parse_spec(
    raw: Mapping[str, Any], *, source: str = "<spec>", base_dir: Path | None = None
) -> DataSpec:
    """Check a spec given as a mapping (what ``yaml.safe_load`` returns)."""
    return _Parser(source, base_dir).spec(raw)


class _Parser:
    def __init__(self, source: str, base_dir: Path | None) -> None:
        self.source = source
        self.base_dir = base_dir
        #: The table whose columns are being read (a reference to it is a self-reference).
        self.current_table = ""

    def fail(self, where: str, message: str) -> SpecError:
        return SpecError(f"{self.source}: {where}: {message}")

    # --- top level ------------------------------------------------------------------
    def spec(self, raw: Any) -> DataSpec:
        if not isinstance(raw, Mapping):
            raise SpecError(f"{self.source}: a data spec is a YAML mapping with `tables:`.")
        self.keys(raw, {"name", "description", "migrations", "tables", "truths"}, "top level")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise self.fail("top level", "`name:` (the spec's name) is missing.")
        tables_raw = raw.get("tables")
        if not isinstance(tables_raw, Mapping) or not tables_raw:
            raise self.fail("top level", "`tables:` must map table names to table definitions.")
        self.table_names = [str(t) for t in tables_raw]
        tables = {str(t): self.table(str(t), body) for t, body in tables_raw.items()}
        self.check_references(tables)
        truths = {
            str(n): self.truth(str(n), body, tables)
            for n, body in (raw.get("truths") or {}).items()
        }
        migrations = raw.get("migrations")
        if migrations is not None:
            folder = Path(str(migrations))
            if not folder.is_absolute() and self.base_dir is not None:
                folder = (self.base_dir / folder).resolve()
            migrations = folder
        digest = hashlib.sha256(json.dumps(raw, default=str).encode("utf-8")).hexdigest()
        spec = DataSpec(
            name=name,
            tables=tables,
            truths=truths,
            migrations=migrations,
            source=self.source,
            sha256=digest,
            description=str(raw.get("description") or ""),
            raw=raw,
        )
        spec.load_order()  # raises on cycles
        return spec

    def keys(self, raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
        for key in raw:
            if key not in allowed:
                raise self.fail(
                    where,
                    f"unknown key {key!r}.{_suggest(key, allowed)} "
                    f"Allowed here: {', '.join(sorted(allowed))}.",
                )

    # --- tables ---------------------------------------------------------------------
    def table(self, name: str, body: Any) -> TableSpec:
        where = f"table {name!r}"
        if not isinstance(body, Mapping):
            raise self.fail(where, "a table is a mapping with `rows:` and `columns:`.")
        self.keys(body, {"rows", "primary_key", "columns", "description"}, where)
        columns_raw = body.get("columns")
        if not isinstance(columns_raw, Mapping) or not columns_raw:
            raise self.fail(where, "`columns:` must map column names to column definitions.")
        rows = self.rows(name, body.get("rows"))
        columns = {str(c): self.column(name, str(c), spec) for c, spec in columns_raw.items()}
        ids = [c.name for c in columns.values() if c.type == "id"]
        declared = body.get("primary_key", ids[0] if ids else None)
        if isinstance(declared, list) and len(declared) == 1:
            declared = declared[0]
        key_columns: tuple[str, ...] = ()
        if isinstance(declared, list):
            key_columns = tuple(str(c) for c in declared)
            primary_key = None
        elif declared is not None:
            primary_key = str(declared)
            key_columns = (primary_key,)
        else:
            primary_key = None
        for key in key_columns:
            if key not in columns:
                raise self.fail(
                    where, f"primary_key {key!r} is not a column.{_suggest(key, columns)}"
                )
        if primary_key is not None and columns[primary_key].type != "id":
            raise self.fail(where, f"primary_key {primary_key!r} must be a column of type id.")
        if len(ids) > 1:
            raise self.fail(where, f"more than one id column ({', '.join(ids)}); keep one.")
        table = TableSpec(
            name=name,
            rows=rows,
            primary_key=primary_key,
            columns=columns,
            key_columns=key_columns,
        )
        self.check_columns(table)
        if len(key_columns) > 1:
            self.check_composite_key(table)
        return table

    def check_composite_key(self, table: TableSpec) -> None:
        """A composite key must be unique *by construction*, never by luck of the draw.

        Rows of one parent are made together, so (parent column, a column numbered or
        drawn without repeats within that parent) is unique; so is any key holding the
        table's ``id`` column. Anything else could repeat, and the load would fail in the
        database halfway through: refused here instead.
        """
        where = f"table {table.name!r}, primary_key"
        key = table.key_columns
        if len(set(key)) != len(key):
            raise self.fail(where, f"{list(key)} names a column twice.")
        for name in key:
            column = table.columns[name]
            if column.type not in ("id", "sequence", "reference") or column.hidden:
                raise self.fail(
                    where,
                    f"column {name!r} ({column.type}) cannot be part of a composite key: use "
                    "id, sequence and (single-column, loaded) reference columns.",
                )
            if column.type == "reference" and (
                column.is_composite or column.is_self_reference or column.options.get("null_share")
            ):
                raise self.fail(
                    where,
                    f"column {name!r} can be NULL or writes several columns; a key column "
                    "needs exactly one value on every row.",
                )
        if any(table.columns[c].type == "id" for c in key):
            return
        via = table.rows.via
        unique_within = [
            c
            for c in key
            if (table.columns[c].type == "sequence" and table.columns[c].options["per"] == via)
            or table.columns[c].options.get("distinct_per") == via
        ]
        if via is None or via not in key or not unique_within:
            raise self.fail(
                where,
                f"({', '.join(key)}) is not unique by construction. A composite key needs the "
                "column the rows are counted by (`rows: {per: <parent>, via: <column>}`) "
                "plus a `type: sequence` numbered per that column, or a reference with "
                "`distinct_per:` that column (a link table); or the table's id column.",
            )

    def rows(self, table: str, raw: Any) -> RowsSpec:
        where = f"table {table!r}, rows"
        if isinstance(raw, bool) or raw is None:
            raise self.fail(where, "`rows:` is missing: give a number or `{per: <parent>, ...}`.")
        if isinstance(raw, int):
            if raw < 0:
                raise self.fail(where, f"must be >= 0, got {raw}.")
            return RowsSpec(count=raw)
        if not isinstance(raw, Mapping):
            raise self.fail(where, "give a row count or `{per: <parent table>, via: <column>}`.")
        self.keys(raw, {"per", "via", "counts", "rank_by"}, where)
        for key in ("per", "via", "counts"):
            if key not in raw:
                raise self.fail(where, f"`{key}:` is missing.")
        counts = raw["counts"]
        if not isinstance(counts, Mapping) or "distribution" not in counts:
            raise self.fail(where, "`counts:` needs `distribution:` (e.g. negative_binomial).")
        dist = counts["distribution"]
        if dist not in COUNT_DISTRIBUTIONS:
            raise self.fail(
                where,
                f"unknown count distribution {dist!r}.{_suggest(dist, COUNT_DISTRIBUTIONS)} "
                f"Use one of {', '.join(COUNT_DISTRIBUTIONS)}.",
            )
        self.keys(
            counts, {"distribution", "min", "max", "zero_share", *COUNT_DISTRIBUTIONS[dist]}, where
        )
        for param in COUNT_DISTRIBUTIONS[dist]:
            if param not in counts:
                raise self.fail(where, f"{dist} needs `{param}:`.")
        if dist == "explicit":
            self.shares(counts["values"], f"{where}, counts.values", integer_keys=True)
        else:
            for param in COUNT_DISTRIBUTIONS[dist]:
                self.number(counts[param], f"{where}, counts.{param}", positive=True)
        zero = counts.get("zero_share", 0)
        self.number(zero, f"{where}, counts.zero_share")
        if not 0 <= zero < 1:
            raise self.fail(where, f"counts.zero_share must be in [0, 1), got {zero}.")
        rank_by = raw.get("rank_by") or []
        for term in rank_by:
            self.term(term, f"{where}, rank_by", allow_parent=False)
        return RowsSpec(
            per=str(raw["per"]), via=str(raw["via"]), counts=dict(counts), rank_by=tuple(rank_by)
        )

    def column(self, table: str, name: str, raw: Any) -> ColumnSpec:
        where = f"table {table!r}, column {name!r}"
        if isinstance(raw, str):
            raw = {"type": raw}
        if not isinstance(raw, Mapping) or "type" not in raw:
            raise self.fail(where, f"needs `type:` (one of {', '.join(COLUMN_TYPES)}).")
        kind = raw["type"]
        if kind not in COLUMN_TYPES:
            raise self.fail(
                where,
                f"unknown type {kind!r}.{_suggest(kind, COLUMN_TYPES)} "
                f"Use one of {', '.join(COLUMN_TYPES)}.",
            )
        self.keys(raw, _COLUMN_KEYS[kind] | _COMMON_KEYS, where)
        options = {k: v for k, v in raw.items() if k not in _COMMON_KEYS}
        self.current_table = table
        depends = getattr(self, f"col_{kind}")(where, options)
        return ColumnSpec(
            table=table,
            name=name,
            type=kind,
            options=options,
            hidden=bool(raw.get("hidden", False)),
            depends_on=tuple(dict.fromkeys(depends)),
        )

    # --- per-type checks; each returns the columns the column depends on --------------
    def col_id(self, where: str, o: dict[str, Any]) -> list[str]:
        fmt = o.setdefault("format", "sequence")
        if fmt not in ("sequence", "random_string"):
            raise self.fail(where, f"id format {fmt!r} unknown: use sequence or random_string.")
        if fmt == "random_string":
            length = o.setdefault("length", 10)
            if not isinstance(length, int) or not 6 <= length <= 10:
                raise self.fail(where, f"random_string length must be 6..10, got {length!r}.")
        else:
            o.setdefault("start", 1)
        return []

    def col_categorical(self, where: str, o: dict[str, Any]) -> list[str]:
        ways = [k for k in ("values", "values_by", "map", "bins") if k in o]
        if len(ways) != 1:
            raise self.fail(
                where,
                "a categorical needs exactly one of `values:` (shares), `given:` + `values_by:` "
                "(conditional shares), `map:` or `bins:`.",
            )
        depends: list[str] = []
        if "values" in o:
            self.shares(o["values"], f"{where}, values")
            if "given" in o:
                raise self.fail(where, "`given:` goes with `values_by:`, not `values:`.")
        if "values_by" in o:
            if "given" not in o:
                raise self.fail(where, "`values_by:` needs `given: <column>`.")
            if not isinstance(o["values_by"], Mapping) or not o["values_by"]:
                raise self.fail(where, "`values_by:` maps each value of `given` to shares.")
            for value, shares in o["values_by"].items():
                self.shares(shares, f"{where}, values_by[{value!r}]")
            if "default" in o:
                self.shares(o["default"], f"{where}, default")
            depends.append(str(o["given"]))
        if "map" in o:
            m = o["map"]
            if not isinstance(m, Mapping) or "from" not in m or "values" not in m:
                raise self.fail(where, "`map:` needs `from: <column>` and `values: {a: x}`.")
            depends.append(str(m["from"]))
        if "bins" in o:
            b = o["bins"]
            if not isinstance(b, Mapping) or "from" not in b or "edges" not in b:
                raise self.fail(where, "`bins:` needs `from:`, `edges:` and `labels:`.")
            edges, labels = list(b["edges"]), list(b.get("labels") or [])
            if len(labels) != len(edges) - 1:
                raise self.fail(where, f"bins: {len(edges)} edges need {len(edges) - 1} labels.")
            if edges != sorted(edges):
                raise self.fail(where, "bins: edges must be increasing.")
            depends.append(str(b["from"]))
        if "when" in o:
            depends.extend(self.condition(o["when"], f"{where}, when"))
            if "otherwise" not in o:
                raise self.fail(where, "`when:` needs `otherwise: <value>` for the other rows.")
        if "blend" in o:
            blend = o["blend"]
            if not isinstance(blend, Mapping) or set(blend) != {"share", "values"}:
                raise self.fail(where, "`blend:` needs `share:` and `values:`.")
            self.shares(blend["values"], f"{where}, blend.values")
        if "split" in o:
            split = o["split"]
            if not isinstance(split, Mapping) or "into" not in split:
                raise self.fail(where, "`split:` needs `into: [col, ...]` (and `separator:`).")
            split.setdefault("separator", "|")
            for value in self.category_values(o):
                if value is not None and len(str(value).split(split["separator"])) != len(
                    split["into"]
                ):
                    raise self.fail(
                        where,
                        f"value {value!r} does not split into {len(split['into'])} parts "
                        f"with separator {split['separator']!r}.",
                    )
        return depends

    def category_values(self, o: Mapping[str, Any]) -> list[Any]:
        values: list[Any] = []
        sources = [
            o.get("values") or {},
            *(o.get("values_by") or {}).values(),
            o.get("default") or {},
        ]
        sources.append((o.get("blend") or {}).get("values") or {})
        if "otherwise" in o:
            sources.append({o["otherwise"]: 1})
        if "map" in o:
            sources.append({v: 1 for v in o["map"]["values"].values()})
            if "default" in o["map"]:
                sources.append({o["map"]["default"]: 1})
        if "bins" in o:
            sources.append({v: 1 for v in o["bins"]["labels"]})
            sources.append({o["bins"].get("missing"): 1})
        for source in sources:
            values.extend(v for v in source if v not in values)
        return values

    def col_boolean(self, where: str, o: dict[str, Any]) -> list[str]:
        if ("rate" in o) == ("rate_by_month" in o):
            raise self.fail(where, "a boolean needs exactly one of `rate:` or `rate_by_month:`.")
        depends: list[str] = []
        if "rate" in o:
            self.probability(o["rate"], f"{where}, rate")
        else:
            r = o["rate_by_month"]
            if not isinstance(r, Mapping) or "month_of" not in r or "curve" not in r:
                raise self.fail(
                    where, "`rate_by_month:` needs `month_of: <date column>` and `curve:`."
                )
            curve = r["curve"]
            if not isinstance(curve, Mapping) or not curve:
                raise self.fail(where, "`curve:` maps months ('2012-06') to rates (0..1).")
            for month, rate in curve.items():
                self.month(month, f"{where}, curve")
                self.probability(rate, f"{where}, curve[{month!r}]")
            depends.append(str(r["month_of"]))
        for term in o.get("propensity") or []:
            depends.extend(self.term(term, f"{where}, propensity"))
        return depends

    def col_integer(self, where: str, o: dict[str, Any]) -> list[str]:
        return self.numeric(where, o)

    def col_float(self, where: str, o: dict[str, Any]) -> list[str]:
        return self.numeric(where, o)

    def numeric(self, where: str, o: Mapping[str, Any]) -> list[str]:
        depends: list[str] = []
        self.distribution(o.get("distribution"), f"{where}, distribution")
        if "params_by" in o:
            p = o["params_by"]
            if not isinstance(p, Mapping) or "given" not in p or "values" not in p:
                raise self.fail(where, "`params_by:` needs `given: <column>` and `values:`.")
            depends.append(str(p["given"]))
        null_share = o.get("null_share", 0)
        if isinstance(null_share, Mapping):
            if "given" not in null_share or "values" not in null_share:
                raise self.fail(where, "`null_share:` by column needs `given:` and `values:`.")
            for value, share in null_share["values"].items():
                self.probability(share, f"{where}, null_share[{value!r}]")
            self.probability(null_share.get("default", 0), f"{where}, null_share.default")
            depends.append(str(null_share["given"]))
        else:
            self.probability(null_share, f"{where}, null_share")
        if "clip" in o:
            clip = o["clip"]
            if not isinstance(clip, list) or len(clip) != 2 or clip[0] > clip[1]:
                raise self.fail(where, f"`clip:` must be [low, high] with low <= high, got {clip}.")
        if o.get("round", "round") not in ("round", "floor", "ceil", "none"):
            raise self.fail(where, "`round:` must be round, floor, ceil or none.")
        if "replace" in o:
            r = o["replace"]
            if not isinstance(r, Mapping) or set(r) != {"share", "values"}:
                raise self.fail(where, "`replace:` needs `share:` and `values: {value: share}`.")
            self.probability(r["share"], f"{where}, replace.share")
            self.shares(r["values"], f"{where}, replace.values")
        return depends

    def distribution(self, raw: Any, where: str) -> None:
        if not isinstance(raw, Mapping) or "name" not in raw:
            raise self.fail(
                where,
                f"needs `{{name: <distribution>, ...}}` with one of {', '.join(DISTRIBUTIONS)}.",
            )
        name = raw["name"]
        if name not in DISTRIBUTIONS:
            raise self.fail(
                where,
                f"unknown distribution {name!r}.{_suggest(name, DISTRIBUTIONS)} "
                f"Use one of {', '.join(DISTRIBUTIONS)}.",
            )
        self.keys(raw, {"name", *DISTRIBUTIONS[name]}, where)
        for param in DISTRIBUTIONS[name]:
            if param not in raw:
                raise self.fail(where, f"{name} needs `{param}:`.")
            self.number(raw[param], f"{where}.{param}")

    def col_date(self, where: str, o: dict[str, Any]) -> list[str]:
        if "from" in o:
            if "start" in o or "end" in o:
                raise self.fail(where, "give either `from:` (derived) or `start:`/`end:`.")
            for key in ("plus_days", "minus_days"):
                if key in o:
                    if not isinstance(o[key], Mapping):
                        raise self.fail(where, f"`{key}:` is a numeric column definition.")
                    self.numeric(f"{where}, {key}", o[key])
            depends = [str(o["from"])]
            if "when" in o:
                depends.extend(self.condition(o["when"], f"{where}, when"))
            return depends
        for key in ("start", "end"):
            if key not in o:
                raise self.fail(where, f"`{key}:` is missing (or derive it with `from:`).")
        start, end = self.date(o["start"], f"{where}, start"), self.date(o["end"], f"{where}, end")
        if end < start:
            raise self.fail(where, f"end {end} is before start {start}.")
        growth = o.get("growth", 1)
        self.number(growth, f"{where}, growth", positive=True)
        if "when" in o:
            raise self.fail(where, "`when:` is only for derived dates (`from:`).")
        return []

    def col_timestamp(self, where: str, o: dict[str, Any]) -> list[str]:
        return self.col_date(where, o)

    def col_reference(self, where: str, o: dict[str, Any]) -> list[str]:
        ref = o.get("references")
        if isinstance(ref, list) and len(ref) == 1:
            ref = o["references"] = ref[0]
        targets = ref if isinstance(ref, list) else [ref]
        if not all(isinstance(t, str) and t.count(".") == 1 for t in targets):
            raise self.fail(
                where,
                "`references:` must be `<table>.<id column>`, or a list "
                "`[<table>.<key column>, ...]` for a composite primary key.",
            )
        tables = {t.split(".")[0] for t in targets}
        if len(tables) != 1:
            raise self.fail(
                where, f"a composite reference points at one table, got {sorted(tables)}."
            )
        table = tables.pop()
        if table not in self.table_names:
            raise self.fail(
                where,
                f"references unknown table {table!r}.{_suggest(table, self.table_names)} "
                f"Tables in this spec: {', '.join(self.table_names)}.",
            )
        pop = o.get("popularity", {"name": "uniform"})
        if not isinstance(pop, Mapping) or pop.get("name") not in ("uniform", "zipf"):
            raise self.fail(where, "`popularity:` is {name: uniform} or {name: zipf, exponent: s}.")
        if "null_share" in o:
            self.probability(o["null_share"], f"{where}, null_share")
        if "into" in o:
            into = o["into"]
            if not isinstance(ref, list):
                raise self.fail(where, "`into:` names the columns of a composite reference only.")
            if (
                not isinstance(into, list)
                or len(into) != len(targets)
                or len(set(map(str, into))) != len(into)
            ):
                raise self.fail(
                    where,
                    f"`into:` must list {len(targets)} different column names, one per "
                    f"referenced column ({', '.join(targets)}).",
                )
            o["into"] = [str(c) for c in into]
        elif isinstance(ref, list):
            o["into"] = [t.split(".", 1)[1] for t in targets]
        self_reference = table == self.current_table
        if "roots" in o:
            roots = o["roots"]
            if not self_reference:
                raise self.fail(where, "`roots:` is for a reference to the column's own table.")
            if isinstance(roots, bool) or not isinstance(roots, int) or roots < 1:
                raise self.fail(where, f"`roots:` is the number of top rows (>= 1), got {roots!r}.")
        if self_reference:
            if isinstance(ref, list):
                raise self.fail(where, "a self-reference points at the table's single id column.")
            if pop.get("name") != "uniform" or "null_share" in o:
                raise self.fail(
                    where,
                    "a self-reference (a hierarchy) picks a uniform earlier row; its NULLs are "
                    "the `roots:` (first rows); drop `popularity:`/`null_share:`.",
                )
            o.setdefault("roots", 1)
        depends: list[str] = []
        if "distinct_per" in o:
            if self_reference or isinstance(ref, list):
                raise self.fail(where, "`distinct_per:` is for a plain reference to another table.")
            if o.get("null_share"):
                raise self.fail(where, "`distinct_per:` and `null_share:` do not mix.")
            depends.append(str(o["distinct_per"]))
        return depends

    def col_sequence(self, where: str, o: dict[str, Any]) -> list[str]:
        """A number 1..n (or start..start+n-1) within each parent row, e.g. line_number."""
        if "per" not in o or not isinstance(o["per"], str):
            raise self.fail(
                where,
                "a sequence needs `per: <reference column>`, the column whose parent it counts "
                "within (the table's `rows.via`).",
            )
        start = o.setdefault("start", 1)
        if isinstance(start, bool) or not isinstance(start, int):
            raise self.fail(where, f"`start:` must be a whole number, got {start!r}.")
        return [o["per"]]

    # --- small value checks ---------------------------------------------------------
    def number(self, value: Any, where: str, positive: bool = False) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self.fail(where, f"must be a number, got {value!r}.")
        if positive and value <= 0:
            raise self.fail(where, f"must be > 0, got {value!r}.")

    def probability(self, value: Any, where: str) -> None:
        self.number(value, where)
        if not 0 <= value <= 1:
            raise self.fail(where, f"must be between 0 and 1, got {value!r}.")

    def shares(self, raw: Any, where: str, integer_keys: bool = False) -> None:
        if not isinstance(raw, Mapping) or not raw:
            raise self.fail(where, "must map values to shares, e.g. {basic: 0.7, facebook: 0.3}.")
        for value, share in raw.items():
            self.number(share, f"{where}[{value!r}]")
            if share < 0:
                raise self.fail(where, f"share of {value!r} is negative ({share}).")
            if integer_keys and (not isinstance(value, int) or value < 0):
                raise self.fail(where, f"{value!r} is not a count (an integer >= 0).")
        total = float(sum(raw.values()))
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise self.fail(
                where,
                f"shares add up to {total:.6g}, not 1. Fix the shares (the difference is "
                f"{1 - total:+.6g}); shares are taken as written, never rescaled.",
            )

    def date(self, value: Any, where: str) -> dt.date:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError as exc:
            raise self.fail(where, f"{value!r} is not a date (YYYY-MM-DD).") from exc

    def month(self, value: Any, where: str) -> None:
        try:
            dt.date.fromisoformat(f"{value}-01")
        except ValueError as exc:
            raise self.fail(where, f"{value!r} is not a month (write 'YYYY-MM', quoted).") from exc

    def condition(self, raw: Any, where: str, allow_parent: bool = True) -> list[str]:
        if not isinstance(raw, Mapping) or "column" not in raw:
            raise self.fail(
                where, "a condition is {column: c, in: [...]} (or equals/not_in/is_null/between)."
            )
        tests = [k for k in _CONDITION_KEYS if k in raw]
        if len(tests) != 1:
            raise self.fail(where, f"use exactly one of {', '.join(_CONDITION_KEYS)}.")
        return [str(raw["column"])]

    def term(self, raw: Any, where: str, allow_parent: bool = True) -> list[str]:
        """A propensity term: `{column, weight}` plus a condition or `distance_from`."""
        if not isinstance(raw, Mapping) or "column" not in raw or "weight" not in raw:
            raise self.fail(where, "a term is {column: c, weight: w, in: [...]} or similar.")
        self.number(raw["weight"], f"{where}.weight")
        self.keys(raw, {"column", "weight", "distance_from", *_CONDITION_KEYS}, where)
        return [str(raw["column"])]

    # --- cross checks ---------------------------------------------------------------
    def check_columns(self, table: TableSpec) -> None:
        """Every column a column depends on exists (in this table or its parent)."""
        for column in table.columns.values():
            for dep in column.depends_on:
                self.resolve(table, dep, f"table {table.name!r}, column {column.name!r}")
        if table.rows.per and (
            table.rows.via not in table.columns or table.columns[table.rows.via].type != "reference"
        ):
            raise self.fail(
                f"table {table.name!r}, rows",
                f"via {table.rows.via!r} must be a reference column of this table "
                f"(e.g. `{table.rows.via}: {{type: reference, references: "
                f"{table.rows.per}.id}}`).",
            )
        if table.rows.per:
            via = table.columns[str(table.rows.via)]
            if via.is_composite or via.options.get("null_share") or via.is_self_reference:
                raise self.fail(
                    f"table {table.name!r}, rows",
                    f"via {via.name!r} must be a plain, non-NULL reference to {table.rows.per!r}"
                    " (no composite key, no null_share).",
                )
        for column in table.columns.values():
            per = column.options.get("per") if column.type == "sequence" else None
            per = per or column.options.get("distinct_per")
            if per is not None and per != table.rows.via:
                key = "per" if column.type == "sequence" else "distinct_per"
                raise self.fail(
                    f"table {table.name!r}, column {column.name!r}",
                    f"`{key}: {per}` must be the column the table's rows are counted by "
                    f"(rows.via: {table.rows.via or 'none; add `rows: {per: <parent>, via: ...}`'}"
                    "): the rows of one parent are made together, which is what keeps the "
                    "numbering consecutive and the values distinct.",
                )
        seen: dict[str, str] = {}
        for column in table.columns.values():
            for out in () if column.hidden else column.output_columns:
                if out in seen:
                    raise self.fail(
                        f"table {table.name!r}, column {column.name!r}",
                        f"writes column {out!r}, which {seen[out]!r} writes too.",
                    )
                seen[out] = column.name
        self.check_cycles(table)

    def resolve(self, table: TableSpec, dep: str, where: str) -> None:
        if "." in dep:
            parent, column = dep.split(".", 1)
            if parent != table.rows.per:
                raise self.fail(
                    where,
                    f"{dep!r} names a column of table {parent!r}, but only the parent table "
                    f"({table.rows.per or 'none: add rows.per'}) can be used.",
                )
            return  # checked in check_references, once all tables are parsed
        if dep not in table.columns:
            raise self.fail(where, f"uses unknown column {dep!r}.{_suggest(dep, table.columns)}")

    def check_cycles(self, table: TableSpec) -> None:
        state: dict[str, int] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                raise self.fail(
                    f"table {table.name!r}",
                    f"columns depend on each other: {' -> '.join((*path, name))}.",
                )
            state[name] = 1
            for dep in table.columns[name].depends_on:
                if "." not in dep:
                    visit(dep, (*path, name))
            state[name] = 2

        for name in table.columns:
            visit(name, ())

    def check_references(self, tables: Mapping[str, TableSpec]) -> None:
        for table in tables.values():
            if table.rows.per and table.rows.per not in tables:
                raise self.fail(
                    f"table {table.name!r}, rows",
                    f"per: unknown table {table.rows.per!r}.{_suggest(table.rows.per, tables)}",
                )
            for column in table.columns.values():
                where = f"table {table.name!r}, column {column.name!r}"
                if column.type == "reference":
                    self.check_reference(table, column, tables, where)
                for dep in column.depends_on:
                    if "." in dep:
                        parent, name = dep.split(".", 1)
                        if name not in tables[parent].columns:
                            raise self.fail(
                                where,
                                f"uses unknown column {dep!r}."
                                + _suggest(name, tables[parent].columns),
                            )
            for term in table.rows.rank_by:
                if term["column"] not in tables[table.rows.per or table.name].columns:
                    raise self.fail(
                        f"table {table.name!r}, rows.rank_by",
                        f"unknown column {term['column']!r} of parent table {table.rows.per!r}.",
                    )

    def check_reference(
        self, table: TableSpec, column: ColumnSpec, tables: Mapping[str, TableSpec], where: str
    ) -> None:
        """The reference names its parent's whole primary key: one id, or every key column."""
        parent = tables[column.parent_table]
        keys = column.parent_columns
        target = ", ".join(f"{parent.name}.{k}" for k in keys)
        if not column.is_composite:
            if len(parent.key_columns) > 1:
                listed = ", ".join(f"{parent.name}.{k}" for k in parent.key_columns)
                raise self.fail(
                    where,
                    f"{parent.name!r} has a composite primary key "
                    f"({', '.join(parent.key_columns)}); reference all of it: "
                    f"`references: [{listed}]`.",
                )
            if keys[0] != parent.primary_key:
                raise self.fail(
                    where,
                    f"references {target}, which is not the primary key of "
                    f"{parent.name!r} ({parent.primary_key}).",
                )
        elif len(parent.key_columns) < 2 or sorted(keys) != sorted(parent.key_columns):
            raise self.fail(
                where,
                f"references ({target}), which is not the composite primary key of "
                f"{parent.name!r} ({', '.join(parent.key_columns) or 'none'}).",
            )
        if column.is_self_reference and parent.primary_key is None:
            raise self.fail(where, "a self-reference needs the table's single id primary key.")
        if "distinct_per" in column.options:
            self.check_distinct(table, column, tables, where)

    def check_distinct(
        self, table: TableSpec, column: ColumnSpec, tables: Mapping[str, TableSpec], where: str
    ) -> None:
        """Where sizes are fixed in the spec, a parent cannot want more distinct rows than
        exist (checked again at generate time, after any resizing)."""
        counts = table.rows.counts
        if counts.get("distribution") == "explicit":
            most = max(int(k) for k, share in counts["values"].items() if share > 0)
        elif "max" in counts:
            most = int(counts["max"])
        else:
            return
        parent = tables[column.parent_table]
        if parent.rows.count is not None and most > parent.rows.count:
            raise self.fail(
                where,
                f"up to {most} {table.name} rows per {table.rows.per} need as many distinct "
                f"{parent.name} rows, but {parent.name!r} has {parent.rows.count}; lower the "
                f"counts or give {parent.name!r} more rows.",
            )

    def truth(self, name: str, raw: Any, tables: Mapping[str, TableSpec]) -> TruthSpec:
        where = f"truth {name!r}"
        if not isinstance(raw, Mapping) or "kind" not in raw:
            raise self.fail(where, f"needs `kind:` (one of {', '.join(TRUTH_KINDS)}).")
        self.keys(raw, {"kind", "column", "table", "description"}, where)
        kind = raw["kind"]
        if kind not in TRUTH_KINDS:
            raise self.fail(
                where,
                f"unknown kind {kind!r}.{_suggest(kind, TRUTH_KINDS)} Use one of "
                f"{', '.join(TRUTH_KINDS)}.",
            )
        description = str(raw.get("description") or "")
        if kind in ("children_per_parent", "row_count"):
            table = raw.get("table")
            if table not in tables:
                raise self.fail(
                    where,
                    f"`table:` {table!r} is not a table of the spec.{_suggest(table, tables)}",
                )
            if kind == "children_per_parent" and not tables[table].rows.per:
                raise self.fail(
                    where, f"table {table!r} has a fixed row count; declare `rows: {{per: ...}}`."
                )
            return TruthSpec(name, kind, str(table), None, description)
        column = raw.get("column")
        if not isinstance(column, str) or column.count(".") != 1:
            raise self.fail(where, "`column:` must be `<table>.<column>`.")
        table_name, column_name = column.split(".")
        if table_name not in tables:
            raise self.fail(where, f"unknown table {table_name!r}.{_suggest(table_name, tables)}")
        columns = tables[table_name].columns
        if column_name not in columns:
            raise self.fail(
                where,
                f"truth on unknown column {column!r}.{_suggest(column_name, columns)}",
            )
        spec = columns[column_name]
        if kind == "shares" and not (
            spec.type == "categorical" and is_exact(tables[table_name], spec)
        ):
            raise self.fail(
                where,
                f"{column} must be a categorical with exact counts to have exact shares: "
                "`values:`, or `given:` an exact column (no blend, no when).",
            )
        if kind == "rate" and not (spec.type == "boolean" and "rate" in spec.options):
            raise self.fail(where, f"{column} must be a boolean with `rate:`.")
        if kind == "rate_by_month":
            if not (spec.type == "boolean" and "rate_by_month" in spec.options):
                raise self.fail(where, f"{column} must be a boolean with `rate_by_month:`.")
            month_of = spec.options["rate_by_month"]["month_of"]
            month_col = columns.get(month_of)
            if (
                month_col is None
                or month_col.type not in ("date", "timestamp")
                or ("from" in month_col.options)
            ):
                raise self.fail(
                    where,
                    f"month_of {month_of!r} must be a date/timestamp column of {table_name!r} "
                    "with start/end (derived dates have no exact month counts).",
                )
            return TruthSpec(name, kind, table_name, column_name, description, str(month_of))
        return TruthSpec(name, kind, table_name, column_name, description)
