"""Every column gets exactly one role before training: key, foreign key, PII or modelled.

The role decides what happens to a column's real values:

* ``key`` (primary key) and ``foreign_key``: identifiers whose only job is to join rows.
  They are never learned; fresh values are issued (a foreign key takes its synthetic
  parent's fresh key), so no published key equals a real one.
* ``pii``: direct identifiers and free text (names, emails, phones, addresses, IPs, URLs,
  ids, long free text, opaque documents). Never shown to the model; generated fresh after
  sampling by :mod:`airflow_synth.core.engine.fresh`, and every published value is checked
  against the real ones (the ``pii_leak`` gate).
* ``modelled``: everything else; the synthesizer learns it.

Why classify ourselves instead of trusting SDV's detection: SDV 2.0 marks unusual text
columns as sdtype ``id`` and then *samples the real values* for a non-key ``id`` column, and
it dumps category labels and extremes of every column it sees into the log. A column the
model never sees can neither be replayed nor logged.

Each role carries its ``reason`` (declared in the contract, primary key, detected by name,
detected by content) so the report can show at once what was treated as PII and why. The
reasons name shares and lengths, never a value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from airflow_synth.core.contract import COLUMN_ROLES, PII_KINDS, TableContract
from airflow_synth.core.extract import pg_types

KEY, FOREIGN_KEY, PII, MODELLED = "key", "foreign_key", "pii", "modelled"
#: A key column numbered 1..n within its parent row (issued by the set engine).
SEQUENCE = "sequence"
ROLES = COLUMN_ROLES

#: SDV PII sdtypes a contract may name (``sdtype: email``) -> our kind.
SDTYPE_KINDS = {
    "email": "email",
    "phone_number": "phone",
    "name": "person_name",
    "first_name": "first_name",
    "last_name": "last_name",
    "user_name": "user_name",
    "address": "address",
    "street_address": "address",
    "ipv4_address": "ip_address",
    "ipv6_address": "ip_address",
    "ip_address": "ip_address",
    "url": "url",
    "uuid": "uuid",
    "id": "identifier",
    "text": "free_text",
    "pii": "identifier",
    "unknown": "identifier",
}

#: Name patterns (lower-cased column names); first match wins. Narrow on purpose: a
#: product's or a country's name is a category, a person's is PII.
_NAME_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("email", r"(^|_)(e_?mail|mail)(_?address|_?addr)?s?$"),
        ("phone", r"(^|_)(phone|tel|telephone|mobile|cell|fax|msisdn)(_?(no|number|nr))?s?$"),
        ("first_name", r"(^|_)(first|given|fore)_?name$"),
        ("last_name", r"(^|_)(last|family|sur|maiden)_?name$|^surname$"),
        ("user_name", r"(^|_)(user_?name|login|nick_?name|handle|screen_?name)$"),
        (
            "person_name",
            r"^(name|full_?name|contact(_?name)?|person(_?name)?|"
            r"(customer|client|employee|patient|owner|holder|recipient|sender|member)_?name)$",
        ),
        ("ip_address", r"(^|_)ip(_?addr(ess)?)?(_?v[46])?$|^ip_"),
        (
            "address",
            r"(^|_)(address|addr|street|street_?address|address_?line_?\d?|"
            r"zip|zip_?code|post_?code|postal_?code)$",
        ),
        ("url", r"(^|_)(url|website|homepage|web_?site|link)$"),
        ("uuid", r"(^|_)(uuid|guid)$"),
        (
            "identifier",
            r"(^|_)(ssn|social_security(_?number)?|passport(_?(no|number))?|iban|"
            r"(credit_?)?card_?(no|number)|account_?(no|number)|tax_?id|national_?id|"
            r"licen[cs]e_?(no|number)|vat_?(no|number)|device_?id|session_?id|token)$",
        ),
        (
            "free_text",
            r"(^|_)(comment|comments|remark|remarks|note|notes|description|message|"
            r"feedback|review|bio|memo|free_?text|body)$",
        ),
    )
)
#: Names that look like identifiers (``id``, ``user_id``, ``order_uuid``...): PII when the
#: values are mostly distinct, a category code otherwise (``plan_id`` with 5 values).
_ID_NAME = re.compile(r"(^|_)(id|key|no|nr|number|ref|reference)$|^id_")

_CONTENT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("email", re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")),
    (
        "uuid",
        re.compile(
            r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
        ),
    ),
    ("ip_address", re.compile(r"^(\d{1,3}\.){3}\d{1,3}(/\d{1,2})?$|^[0-9a-fA-F:]{3,39}(/\d+)?$")),
    ("url", re.compile(r"^(https?|ftp)://\S+$", re.IGNORECASE)),
    ("phone", re.compile(r"^\+?[\d\s().\-x/]{7,24}$")),
)
#: Text that is a date or a decimal number is neither a phone number nor an identifier.
_NOT_PHONE = re.compile(r"^\d{4}-\d{2}-\d{2}|^-?\d+\.\d+$")
#: An id-named column with at most this many distinct values (and mostly repeated) is a
#: code (``plan_id``, ``status_id``) and learned; with more it identifies (``user_id``).
ID_CODES_MAX = 100
#: Share of sampled values that must match a content pattern.
CONTENT_MATCH_SHARE = 0.9
#: A text column with at least this many values, nearly all distinct, is an identifier.
IDENTIFIER_MIN_VALUES = 10
IDENTIFIER_UNIQUE_SHARE = 0.9
#: Values inspected per column (seeded head-independent sample).
SAMPLE_VALUES = 2_000
#: Long free text: median length and words, or this median length alone.
FREE_TEXT_MEDIAN_CHARS = 25
FREE_TEXT_MEDIAN_WORDS = 4
FREE_TEXT_LONG_CHARS = 60


@dataclass(frozen=True)
class ColumnRole:
    """One column's role, its kind and why (no values in any field)."""

    name: str
    role: str
    #: PII: one of :data:`PII_KINDS`; key/foreign key: ``integer`` or ``text``;
    #: modelled: the declared sdtype, or ``auto`` (the synthesizer's detection decides).
    kind: str
    reason: str
    #: foreign keys: the referenced ``table.column``
    references: str | None = None

    @property
    def fresh(self) -> bool:
        """True when the column's values are issued by us, never learned.

        A sequence (``line_number`` 1..n within its order) is issued too, but as numbers
        that real rows share by design, not as identifiers: it is not "fresh".
        """
        return self.role not in (MODELLED, SEQUENCE)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["references"] is None:
            del data["references"]
        return data


def classify_columns(
    frame: pd.DataFrame,
    *,
    contract: TableContract | None = None,
    primary_key: Sequence[str] = (),
    foreign_keys: Mapping[str, str] | None = None,
) -> list[ColumnRole]:
    """The role of every column of ``frame``, in column order.

    Precedence: the contract's declaration, then the primary key and foreign keys
    (``{column: "parent.column"}``), then the column's PostgreSQL type as the extract
    decided it (:mod:`~airflow_synth.core.extract.pg_types`: a ``uuid`` is issued fresh, an
    enum is learned), then the column's name, then its content.
    """
    foreign_keys = dict(foreign_keys or {})
    keys = list(primary_key)
    if contract is not None and contract.primary_key and not keys:
        keys = [contract.primary_key]
    declared = {c.name: c for c in contract.columns} if contract is not None else {}
    where = f"declared in {contract.source}" if contract is not None else ""
    typed = pg_types.frame_types(frame)
    roles = []
    for name in frame.columns:
        column = frame[name]
        if name in declared and declared[name].role is not None:
            roles.append(_declared_role(name, column, declared[name], where, foreign_keys))
        elif name in keys:
            roles.append(ColumnRole(name, KEY, _key_kind(column), "primary key"))
        elif name in foreign_keys:
            roles.append(
                ColumnRole(
                    name,
                    FOREIGN_KEY,
                    _key_kind(column),
                    f"foreign key to {foreign_keys[name]}",
                    references=foreign_keys[name],
                )
            )
        elif name in declared and declared[name].sdtype in ("id", "text"):
            # an id that is not the key, or free text: never learned
            kind = "identifier" if declared[name].sdtype == "id" else "free_text"
            roles.append(ColumnRole(name, PII, kind, where))
        elif name in declared and declared[name].sdtype is not None:
            roles.append(ColumnRole(name, MODELLED, declared[name].sdtype, where))
        elif (by_type := _typed_role(name, typed.get(name))) is not None:
            roles.append(by_type)
        else:
            roles.append(detect_role(name, column))
    return roles


def _typed_role(name: str, decided: Mapping[str, str] | None) -> ColumnRole | None:
    """The role the column's PostgreSQL type fixes, or None (detected by name, content)."""
    if not decided:
        return None
    handling, type_name = decided.get("handling"), decided.get("type", "?")
    if handling == pg_types.CATEGORY:
        return ColumnRole(name, MODELLED, "categorical", f"PostgreSQL type {type_name} (enum)")
    if handling in (pg_types.FRESH, pg_types.DECLARED):  # declared: the contract said pii
        kind = decided.get("pii_kind") or "identifier"
        return ColumnRole(name, PII, kind, f"PostgreSQL type {type_name}")
    return None


def _declared_role(
    name: str, column: pd.Series, spec: Any, where: str, foreign_keys: Mapping[str, str]
) -> ColumnRole:
    role = spec.role
    if role == MODELLED:
        return ColumnRole(name, MODELLED, spec.sdtype or "auto", where)
    if role == KEY:
        return ColumnRole(name, KEY, _key_kind(column), where)
    if role == FOREIGN_KEY:
        return ColumnRole(
            name,
            FOREIGN_KEY,
            _key_kind(column),
            where,
            references=foreign_keys.get(name),
        )
    kind = spec.pii_kind or SDTYPE_KINDS.get(spec.pii_sdtype or "")
    return ColumnRole(name, PII, kind or detect_role(name, column, force_pii=True).kind, where)


def _key_kind(column: pd.Series) -> str:
    """``integer`` for whole numbers (also float columns, as pandas reads ints with NULLs)."""
    if pd.api.types.is_integer_dtype(column.dtype):
        return "integer"
    if pd.api.types.is_float_dtype(column.dtype):
        values = column.dropna()
        if len(values) and bool((values == values.round()).all()):
            return "integer"
    return "text"


def detect_role(name: str, column: pd.Series, *, force_pii: bool = False) -> ColumnRole:
    """Name first, then content. ``force_pii``: the column is PII, only the kind is wanted."""
    lowered = _normal_name(name)
    is_text = _is_text(column)
    is_integer = pd.api.types.is_integer_dtype(column.dtype)
    values = _sample_values(column) if is_text else None
    for kind, pattern in _NAME_PATTERNS:
        if pattern.search(lowered) and (is_text or is_integer or force_pii):
            if (
                kind == "free_text"
                and values is not None
                and not force_pii
                and not _is_free_text(values)[0]
                and _distinct_share(column) < IDENTIFIER_UNIQUE_SHARE
            ):
                continue  # a "description" that is really a short category label
            return ColumnRole(name, PII, kind, "detected by name")
    if _ID_NAME.search(lowered) and (is_text or is_integer):
        share, distinct = _distinct_share(column), int(column.nunique())
        if share >= 0.5 or distinct > ID_CODES_MAX or force_pii:
            return ColumnRole(
                name,
                PII,
                "identifier",
                f"detected by name and content: {share:.0%} distinct, {distinct} values",
            )
    if values is not None and len(values):
        found = _content_kind(values)
        if found is not None:
            return ColumnRole(name, PII, found[0], f"detected by content: {found[1]}")
        long_text, why = _is_free_text(values)
        if long_text:
            return ColumnRole(name, PII, "free_text", f"detected by content: {why}")
        share = _distinct_share(column)
        if (
            column.notna().sum() >= IDENTIFIER_MIN_VALUES and share >= IDENTIFIER_UNIQUE_SHARE
        ) or force_pii:
            return ColumnRole(
                name,
                PII,
                "identifier",
                f"detected by content: {share:.0%} of values distinct (a free-text identifier)",
            )
    elif force_pii:
        return ColumnRole(name, PII, "identifier", "declared")
    return ColumnRole(name, MODELLED, "auto", "learned by the synthesizer")


def _normal_name(name: str) -> str:
    """``customerEmail`` / ``Customer Email`` -> ``customer_email``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name))
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


def _is_text(column: pd.Series) -> bool:
    if pd.api.types.is_string_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column):
        return True
    if column.dtype == object:
        non_null = column.dropna()
        return bool(len(non_null)) and non_null.map(lambda v: isinstance(v, str | bytes)).all()
    return False


def _sample_values(column: pd.Series) -> pd.Series:
    values = column.dropna()
    if len(values) > SAMPLE_VALUES:
        values = values.sample(n=SAMPLE_VALUES, random_state=0)
    return values.map(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))


def _distinct_share(column: pd.Series) -> float:
    values = column.dropna()
    return float(values.nunique() / len(values)) if len(values) else 0.0


def _content_kind(values: pd.Series) -> tuple[str, str] | None:
    stripped = values.str.strip()
    if _looks_like_json(stripped):
        return "json", "JSON documents"
    if stripped.str.startswith(("b'", 'b"', "\\x")).mean() >= CONTENT_MATCH_SHARE:
        return "opaque", "binary data"
    for kind, pattern in _CONTENT_PATTERNS:
        share = float(stripped.str.match(pattern).mean())
        if share < CONTENT_MATCH_SHARE:
            continue
        if kind == "phone":
            if stripped.str.match(_NOT_PHONE).mean() > 1 - CONTENT_MATCH_SHARE:
                continue
            digits = stripped.str.count(r"\d")
            if digits.median() < 7 or _share_distinct(stripped) < 0.5:
                continue  # short digit codes are categories, not phone numbers
        if kind == "ip_address" and not stripped.str.contains(r"[.:]").all():
            continue
        label = kind.replace("_", " ")
        return kind, f"{share:.0%} of values look like {label}s"
    return None


def _share_distinct(values: pd.Series) -> float:
    return float(values.nunique() / len(values)) if len(values) else 0.0


def _looks_like_json(values: pd.Series) -> bool:
    candidates = values[values.str.startswith(("{", "["))]
    if len(candidates) < CONTENT_MATCH_SHARE * len(values):
        return False
    return all(_parses(v) for v in candidates.head(50))


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _is_free_text(values: pd.Series) -> tuple[bool, str]:
    lengths = values.str.len()
    words = values.str.split().str.len()
    median_chars, median_words = float(lengths.median()), float(words.median())
    why = f"free text (median {median_chars:.0f} characters, {median_words:.0f} words)"
    if median_chars >= FREE_TEXT_LONG_CHARS:
        return True, why
    if median_chars >= FREE_TEXT_MEDIAN_CHARS and median_words >= FREE_TEXT_MEDIAN_WORDS:
        return _share_distinct(values) >= 0.2, why
    return False, why


def modelled_columns(roles: Iterable[ColumnRole]) -> list[str]:
    """Names of the columns the synthesizer learns."""
    return [r.name for r in roles if r.role == MODELLED]


def fresh_columns(roles: Iterable[ColumnRole]) -> list[ColumnRole]:
    """Roles of the columns whose values are issued fresh (keys, foreign keys, PII)."""
    return [r for r in roles if r.fresh]


def describe_roles(roles: Iterable[ColumnRole]) -> list[str]:
    """Log lines: one per fresh column (name, role, kind, reason), one for the modelled."""
    roles = list(roles)
    lines = [
        f"Column {r.name!r}: {r.role} ({r.kind}, {r.reason}): generated fresh, never learned"
        for r in roles
        if r.fresh
    ]
    modelled = modelled_columns(roles)
    lines.append(f"{len(modelled)} column(s) learned by the synthesizer: {', '.join(modelled)}")
    return lines


__all__ = [
    "FOREIGN_KEY",
    "KEY",
    "MODELLED",
    "PII",
    "PII_KINDS",
    "ROLES",
    "ColumnRole",
    "classify_columns",
    "describe_roles",
    "detect_role",
    "fresh_columns",
    "modelled_columns",
]
