"""Schema contracts: the columns a feature query promises to return.

A contract file sits beside each feature SQL file (``x.sql`` -> ``x.contract.yaml``). It
fixes the column names, their order, their logical types and how SDV should treat each
one (sdtype, primary key, PII). Checking it on every extract turns "the upstream table
changed" from a silently different synthetic dataset into a failed run with a readable diff.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from airflow_synth.core.errors import ContractError

LOGICAL_TYPES = ("string", "integer", "float", "boolean", "date", "timestamp", "time", "duration")
SDTYPES = ("id", "categorical", "numerical", "datetime", "boolean", "pii", "text")
#: What a column is for (see :mod:`airflow_synth.core.profile.roles`): keys and PII are
#: generated fresh, ``modelled`` columns are learned (and never treated as PII).
COLUMN_ROLES = ("key", "foreign_key", "pii", "modelled")
#: Kinds of modelled columns (see :mod:`airflow_synth.core.profile.kinds`).
COLUMN_KINDS = ("boolean", "categorical", "discrete", "continuous", "datetime")
#: Kinds of PII; each has its own fresh-value generator (:mod:`airflow_synth.core.engine.fresh`).
PII_KINDS = (
    "email",
    "phone",
    "person_name",
    "first_name",
    "last_name",
    "user_name",
    "address",
    "ip_address",
    "url",
    "uuid",
    "identifier",
    "free_text",
    "json",
    "opaque",
)
CONTRACT_SUFFIX = ".contract.yaml"


@dataclass(frozen=True)
class ColumnContract:
    """One promised column."""

    name: str
    type: str
    sdtype: str | None = None
    pii: bool = False
    datetime_format: str | None = None
    #: SDV PII sdtype (e.g. ``email``, ``name``) used when ``pii`` is true.
    pii_sdtype: str | None = None
    #: declared role (one of :data:`COLUMN_ROLES`); None = detected
    role: str | None = None
    #: kind of PII (``email``, ``phone``, ``person_name``...), picks the fresh generator
    pii_kind: str | None = None
    #: kind of a modelled column (one of :data:`COLUMN_KINDS`); None = profiled
    kind: str | None = None


@dataclass(frozen=True)
class TableContract:
    """The promised shape of one feature table."""

    table: str
    columns: tuple[ColumnContract, ...]
    primary_key: str | None = None
    source: str = "<inline>"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def kinds(self) -> dict[str, str]:
        """Declared kinds of modelled columns (``kind:``), by column name."""
        return {c.name: c.kind for c in self.columns if c.kind is not None}

    def column(self, name: str) -> ColumnContract:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


def contract_path_for(sql_path: str | Path) -> Path:
    """The conventional contract location for a SQL file: same folder, ``.contract.yaml``."""
    sql_path = Path(sql_path)
    return sql_path.with_name(sql_path.stem + CONTRACT_SUFFIX)


def load_contract(path: str | Path) -> TableContract:
    """Read and validate a contract file; every problem names the file and the column."""
    path = Path(path)
    if not path.is_file():
        raise ContractError(
            f"Contract file {path} not found. Create it beside the SQL file (see the README, "
            "'Schema contracts'), or pass contract_file=None to detect types from the data."
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ContractError(f"Contract file {path} is not valid YAML: {exc}") from exc
    return parse_contract(raw, source=str(path))


def resolve_table_contracts(
    contracts: Mapping[str, str | Mapping[str, Any]] | None, search_dirs: Sequence[str | Path] = ()
) -> dict[str, str | dict[str, Any]]:
    """Check per-table contracts (a file name or an inline mapping each) before any row moves.

    Returns JSON-safe references for XCom: the absolute path of each file, or the inline
    mapping as given. Relative file names are looked up in ``search_dirs``, then the
    current folder; every problem names the table and the places tried.
    """
    refs: dict[str, str | dict[str, Any]] = {}
    for table, spec in (contracts or {}).items():
        if isinstance(spec, Mapping):
            parse_contract(dict(spec), source=f"<contract of table {table!r}>")
            refs[str(table)] = dict(spec)
            continue
        candidate = Path(str(spec))
        tried = [candidate] if candidate.is_absolute() else []
        tried += [Path(d) / candidate for d in search_dirs if d and not candidate.is_absolute()]
        tried += [] if candidate.is_absolute() else [Path.cwd() / candidate]
        found = next((p for p in tried if p.is_file()), None)
        if found is None:
            places = "\n".join(f"  - {p}" for p in tried)
            raise ContractError(
                f"Contract file {str(spec)!r} of table {table!r} not found. Looked in:\n"
                f"{places}\nFix the path in `contracts`, or put the file beside the SQL files."
            )
        load_contract(found)
        refs[str(table)] = str(found.resolve())
    return refs


def load_table_contracts(refs: Mapping[str, str | Mapping[str, Any]]) -> dict[str, TableContract]:
    """The contracts behind :func:`resolve_table_contracts`' references."""
    return {
        table: parse_contract(dict(ref), source=f"<contract of table {table!r}>")
        if isinstance(ref, Mapping)
        else load_contract(ref)
        for table, ref in refs.items()
    }


def parse_contract(raw: Any, source: str = "<inline>") -> TableContract:
    """Validate a contract given as a dict (the parsed YAML)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("columns"), list):
        raise ContractError(f"{source}: expected a mapping with a 'columns' list.")
    columns: list[ColumnContract] = []
    for i, item in enumerate(raw["columns"]):
        if not isinstance(item, dict) or "name" not in item or "type" not in item:
            raise ContractError(f"{source}: column #{i + 1} needs at least 'name' and 'type'.")
        name, logical = str(item["name"]), str(item["type"])
        if logical not in LOGICAL_TYPES:
            raise ContractError(
                f"{source}: column {name!r} has type {logical!r}; use one of {LOGICAL_TYPES}."
            )
        sdtype = item.get("sdtype")
        # ``sdtype: pii`` is the contract's way to say "PII of no particular kind".
        pii = bool(item.get("pii", False)) or sdtype == "pii"
        if sdtype is not None and sdtype not in SDTYPES and not pii:
            raise ContractError(
                f"{source}: column {name!r} has sdtype {sdtype!r}; use one of {SDTYPES} "
                "(or mark it 'pii: true' with an SDV PII sdtype such as email or name)."
            )
        role = item.get("role")
        if role is not None and role not in COLUMN_ROLES:
            raise ContractError(
                f"{source}: column {name!r} has role {role!r}; use one of {COLUMN_ROLES} "
                "(or leave it out to have the role detected)."
            )
        if role == "modelled" and pii:
            raise ContractError(
                f"{source}: column {name!r} is marked both PII and 'role: modelled'; "
                "PII is never learned. Remove one of the two."
            )
        if pii and role is None:
            role = "pii"
        pii_kind = item.get("pii_kind")
        if pii_kind is not None and pii_kind not in PII_KINDS:
            raise ContractError(
                f"{source}: column {name!r} has pii_kind {pii_kind!r}; use one of {PII_KINDS}."
            )
        if pii_kind is not None and role != "pii":
            raise ContractError(
                f"{source}: column {name!r} has pii_kind {pii_kind!r} but is not PII; add "
                "'role: pii' (or 'pii: true')."
            )
        kind = item.get("kind")
        if kind is not None and kind not in COLUMN_KINDS:
            raise ContractError(
                f"{source}: column {name!r} has kind {kind!r}; use one of {COLUMN_KINDS}."
            )
        if kind is not None and role not in (None, "modelled"):
            raise ContractError(
                f"{source}: column {name!r} has a kind but role {role!r}: only modelled "
                "columns have a kind. Remove one of the two."
            )
        columns.append(
            ColumnContract(
                name=name,
                type=logical,
                sdtype=sdtype,
                pii=role == "pii",
                datetime_format=item.get("datetime_format"),
                pii_sdtype=sdtype if pii and sdtype not in (None, "pii") else None,
                role=role,
                pii_kind=str(pii_kind) if pii_kind is not None else None,
                kind=kind,
            )
        )
    names = [c.name for c in columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ContractError(f"{source}: columns listed twice: {', '.join(duplicates)}.")
    primary_key = raw.get("primary_key")
    if primary_key is not None and primary_key not in names:
        raise ContractError(
            f"{source}: primary_key {primary_key!r} is not one of the listed columns."
        )
    known = {"table", "columns", "primary_key"}
    return TableContract(
        table=str(raw.get("table") or Path(source).name.removesuffix(CONTRACT_SUFFIX)),
        columns=tuple(columns),
        primary_key=primary_key,
        source=source,
        extra={k: v for k, v in raw.items() if k not in known},
    )


def logical_type(arrow_type: pa.DataType) -> str:
    """Map an Arrow type to the contract's small vocabulary of logical types."""
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_time(arrow_type):
        return "time"
    if pa.types.is_duration(arrow_type):
        return "duration"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    return f"unsupported:{arrow_type}"


def schema_columns(schema: pa.Schema) -> list[tuple[str, str]]:
    """(name, logical type) pairs of an Arrow schema, in order."""
    return [(f.name, logical_type(f.type)) for f in schema]


def contract_diff(contract: TableContract, actual: Sequence[tuple[str, str]]) -> list[str]:
    """Differences between the contract and the query's columns, one readable line each.

    Empty when they agree. Lines start with ``+`` (returned but not promised), ``-``
    (promised but not returned), ``~`` (retyped), ``=`` (returned more than once, e.g. a
    join selecting two ``id`` columns) or ``>`` (order changed).
    """
    promised = {c.name: c.type for c in contract.columns}
    returned = dict(actual)
    lines = [
        f"- {name} ({kind}): in the contract but not returned by the query"
        for name, kind in promised.items()
        if name not in returned
    ]
    lines += [
        f"+ {name} ({kind}): returned by the query but not in the contract"
        for name, kind in returned.items()
        if name not in promised
    ]
    lines += [
        f"~ {name}: contract says {promised[name]}, query returns {kind}"
        for name, kind in returned.items()
        if name in promised and promised[name] != kind
    ]
    counts = Counter(name for name, _ in actual)
    lines += [f"= {name}: returned {n} times by the query" for name, n in counts.items() if n > 1]
    common_promised = [n for n in promised if n in returned]
    common_returned = [n for n in returned if n in promised]
    if not lines and common_promised != common_returned:
        lines.append(f"> column order differs: contract {common_promised}, query {common_returned}")
    return lines


def check_contract(contract: TableContract, actual: Sequence[tuple[str, str]]) -> None:
    """Raise :class:`ContractError` with a readable diff when the query breaks its contract."""
    diff = contract_diff(contract, actual)
    if diff:
        body = "\n  ".join(diff)
        raise ContractError(
            f"The query's columns disagree with the contract {contract.source}:\n  {body}\n"
            "Either fix the SQL or update the contract file (and review the sdtypes) before "
            "training; nothing was trained or published."
        )
