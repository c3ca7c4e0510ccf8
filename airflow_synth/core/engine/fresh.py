"""Fresh values for keys and PII columns: realistic, seeded, and never equal to a real one.

Columns whose role is ``key``, ``foreign_key`` or ``pii`` (see
:mod:`airflow_synth.core.profile.roles`) are never shown to the synthesizer. Their values
are issued here, after sampling:

* by semantic kind, with Faker where a realistic fake exists (names, addresses, e-mail
  user names, URLs, sentences) and with plain random values where the format is simple
  (IPv4/IPv6, UUIDs);
* *format-preserving* otherwise: a real value is taken as a template and every digit and
  ASCII letter is replaced by a random one of its class, so ``C-00123`` becomes e.g.
  ``C-83920`` and a phone number keeps its national format; JSON documents keep their keys
  and value types with every value replaced;
* integer identifiers keep the real values' number of digits.

Every issued value is compared with the set of the column's real values (train and
holdout) and re-drawn on a match, and keys (and columns whose real values are nearly all
distinct) are kept unique across batches. :func:`count_leaks` repeats the comparison on
the published table: the ``pii_leak`` gate that proves the invariant on every run.
Nulls keep the real column's null share.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from airflow_synth.core.errors import DataError
from airflow_synth.core.profile.roles import KEY, ColumnRole

#: Faker values made per column at most; rows beyond draw from this pool (or get a suffix).
POOL_SIZE = 5_000
#: A PII column whose real values are at least this share distinct stays unique.
UNIQUE_SHARE = 0.9
#: Kinds that stay unique when the real column is (e-mails, ids...).
_UNIQUE_KINDS = {"email", "user_name", "identifier", "uuid", "phone", "opaque", "json", "url"}
#: Faker method per kind (the values form a pool drawn from).
_FAKER_METHODS = {
    "person_name": "name",
    "first_name": "first_name",
    "last_name": "last_name",
    "user_name": "user_name",
    "address": "address",
    "url": "url",
}
_MAX_ROUNDS = 25
#: Distinct fresh values kept for a repeating identifier (its most frequent real ones).
REPEAT_POOL_MAX = 200_000
_INT64_DIGITS = 18


def _column_seed(seed: int, name: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(str(name).encode("utf-8"))) % (2**32)


class FreshValues:
    """Issues fresh values for one column; none equals a value of ``real``.

    ``shard`` (``(index, count, seed)``) is one of ``count`` shards issuing values for the
    same column in different tasks: unique values are drawn from the shard's own part of
    the value space (an integer's residue, a text's hash modulo ``count``), so no two shards
    ever issue the same key; values that repeat (a user id on many rows) come from one
    pool shared by every shard, so the union keeps the real "rows per id" shape; draws use
    the shard's seed.
    """

    def __init__(
        self,
        role: ColumnRole,
        real: pd.Series,
        *,
        seed: int = 0,
        shard: tuple[int, int, int] | None = None,
    ) -> None:
        self.role = role
        self.rng = np.random.default_rng(_column_seed(seed, role.name))
        self._faker_seed = _column_seed(seed + 1, role.name)
        non_null = real.dropna()
        self.integer = pd.api.types.is_integer_dtype(real.dtype) or (
            len(non_null) > 0
            and pd.api.types.is_numeric_dtype(real.dtype)
            and not pd.api.types.is_bool_dtype(real.dtype)
            and bool((non_null == np.floor(non_null)).all())
            and role.kind in ("integer", "identifier", "phone")
        )
        self.null_share = 0.0 if role.role == KEY else float(real.isna().mean()) if len(real) else 0
        if self.integer:
            self.real = pd.Index(pd.unique(non_null.astype("int64")))
            digits = non_null.astype("int64").abs().astype(str).str.len().to_numpy()
            self.digits = digits if digits.size else np.array([6])
        else:
            text = non_null.map(_as_text)
            self.real = pd.Index(pd.unique(text))
            self.templates = text.to_numpy(dtype=object)
            if self.templates.size > POOL_SIZE:
                idx = self.rng.choice(self.templates.size, POOL_SIZE, replace=False)
                self.templates = self.templates[idx]
            if not self.templates.size:
                self.templates = np.array(["x0000000"], dtype=object)
        distinct = len(self.real) / len(non_null) if len(non_null) else 1.0
        self.unique = role.role == KEY or (
            role.kind in _UNIQUE_KINDS and distinct >= UNIQUE_SHARE and len(non_null) > 1
        )
        self.issued: set[Any] = set()
        self._pool: np.ndarray | None = None
        # Identifiers that repeat (a user id on many event rows): fresh ids repeat with the
        # real frequency profile (counts only, no value), so "rows per id" keeps its shape.
        self.weights: np.ndarray | None = None
        self._repeats: np.ndarray | None = None
        if (
            not self.unique
            and (self.integer or role.kind in _UNIQUE_KINDS)
            and len(non_null) > len(self.real) > 0
        ):
            counts = non_null.value_counts().to_numpy()[:REPEAT_POOL_MAX].astype(np.float64)
            self.weights = counts / counts.sum()
        self.partition: tuple[int, int] | None = None
        if shard is not None and shard[1] > 1:
            index, count, shard_seed = shard
            if self.weights is not None:
                self._repeat_pool()  # the same pool in every shard: drawn from the run's seed
            self.partition = (index, count)
            self.rng = np.random.default_rng(_column_seed(shard_seed, role.name))

    # -- public ------------------------------------------------------------------------

    def draw(self, n: int) -> pd.Series:
        """``n`` fresh values (nulls at the real null share); unique across calls if needed."""
        if self.weights is not None:
            values = self._repeat_pool()[self.rng.choice(self.weights.size, n, p=self.weights)]
        else:
            values = self._fresh(n)
        if self.null_share > 0 and n:
            nulls = self.rng.random(n) < self.null_share
            series = pd.Series(values, dtype=object if not self.integer else "Int64")
            series[nulls] = None
            return series
        return pd.Series(values, dtype="int64" if self.integer else object)

    # -- generation --------------------------------------------------------------------

    def _repeat_pool(self) -> np.ndarray:
        """As many distinct fresh values as the real column has (up to the cap)."""
        if self._repeats is None:
            assert self.weights is not None
            self.unique = True
            try:
                self._repeats = self._fresh(self.weights.size)
            finally:
                self.unique = False
                self.issued.clear()
        return self._repeats

    def _fresh(self, n: int) -> np.ndarray:
        out = self._own(n)
        bad = self._rejected(out)
        rounds = 0
        while bad.any():
            rounds += 1
            if rounds > _MAX_ROUNDS:
                raise DataError(
                    f"Cannot issue {n} fresh values for column {self.role.name!r} "
                    f"({self.role.role}, {self.role.kind}) that differ from every real value"
                    + (" and are unique" if self.unique else "")
                    + ". Declare a wider format for it, or a different kind in the contract."
                )
            count = int(bad.sum())
            # later rounds scramble harder: widen numbers, scramble pooled texts
            out[bad] = self._own(count, widen=max(0, rounds - 8) // 4, scramble=rounds >= 3)
            bad = self._rejected(out)
        if self.unique:
            self.issued.update(out.tolist())
        return out

    def _own(self, n: int, widen: int = 0, scramble: bool = False) -> np.ndarray:
        """``n`` generated values from this shard's part of the value space (all of it
        without shards, or where values need not be unique)."""
        if self.partition is None or not self.unique or n == 0:
            return self._generate(n, widen, scramble)
        index, count = self.partition
        if self.integer:  # move each number to the shard's residue class
            values = self._generate(n, widen, scramble)
            return values - values % count + index
        parts, have = [], 0
        while have < n:  # keep the texts whose hash falls in this shard's part
            candidates = self._generate((n - have) * count + 8, widen, scramble)
            own = candidates[shard_of_values(candidates, count) == index]
            parts.append(own)
            have += own.size
        return np.concatenate(parts)[:n]

    def _rejected(self, values: np.ndarray) -> np.ndarray:
        """Values equal to a real one, or repeating (within the batch or earlier) if unique."""
        bad = np.asarray(pd.Index(values).isin(self.real), dtype=bool)
        if self.unique:
            series = pd.Series(values)
            bad |= series.duplicated(keep="first").to_numpy()
            if self.issued:
                bad |= series.isin(self.issued).to_numpy()
        return bad

    def _generate(self, n: int, widen: int = 0, scramble: bool = False) -> np.ndarray:
        if n == 0:
            return np.array([], dtype="int64" if self.integer else object)
        if self.integer:
            return self._integers(n, widen)
        kind = self.role.kind
        if scramble and kind not in ("uuid", "ip_address", "json"):
            return _scramble(self._templates(n), self.rng, extra=widen)
        if kind == "uuid":
            return np.array(
                [str(uuid.UUID(bytes=self.rng.bytes(16), version=4)) for _ in range(n)],
                dtype=object,
            )
        if kind == "ip_address":
            return self._ip_addresses(n)
        if kind == "email":
            return self._emails(n)
        if kind == "json":
            return np.array([_scramble_json(t, self.rng) for t in self._templates(n)], dtype=object)
        if kind == "free_text":
            return self._from_pool(n, self._text_pool)
        if kind in _FAKER_METHODS:
            return self._from_pool(n, self._faker_pool)
        return _scramble(self._templates(n), self.rng)  # identifier, phone, opaque, text keys

    def _templates(self, n: int) -> np.ndarray:
        return self.templates[self.rng.integers(0, self.templates.size, n)]

    def _integers(self, n: int, widen: int) -> np.ndarray:
        digits = np.minimum(self.digits[self.rng.integers(0, self.digits.size, n)] + widen, 18)
        low = np.where(digits <= 1, 0, 10 ** (digits - 1).astype(np.float64)).astype(np.int64)
        high = (10 ** digits.astype(np.float64)).astype(np.int64)  # exclusive
        span = high - low
        return low + (self.rng.random(n) * span).astype(np.int64) % np.maximum(span, 1)

    def _ip_addresses(self, n: int) -> np.ndarray:
        if any(":" in str(t) for t in self.templates[:50]):
            groups = self.rng.integers(0, 65536, size=(n, 8))
            return np.array([":".join(f"{g:x}" for g in row) for row in groups], dtype=object)
        octets = self.rng.integers(1, 255, size=(n, 4))
        return np.array([".".join(map(str, row)) for row in octets], dtype=object)

    def _emails(self, n: int) -> np.ndarray:
        faker = self._faker()
        locals_ = self._pool_of(lambda: faker.user_name())
        domains = np.array(
            ["example.com", "example.net", "example.org", "mail.example", "test.example"]
        )
        picks = self.rng.integers(0, locals_.size, n)
        suffix = self.rng.integers(0, 10_000, n)
        use_suffix = self.rng.random(n) < 0.5
        local = [
            f"{locals_[p]}{s}" if u else str(locals_[p])
            for p, s, u in zip(picks, suffix, use_suffix, strict=True)
        ]
        domain = domains[self.rng.integers(0, domains.size, n)]
        return np.array([f"{a}@{b}" for a, b in zip(local, domain, strict=True)], dtype=object)

    def _faker(self) -> Any:
        from faker import Faker

        faker = Faker()
        faker.seed_instance(self._faker_seed)
        return faker

    def _pool_of(self, make: Any) -> np.ndarray:
        if self._pool is None:
            self._pool = np.array(
                list(dict.fromkeys(make() for _ in range(POOL_SIZE))), dtype=object
            )
        return self._pool

    def _faker_pool(self) -> np.ndarray:
        faker = self._faker()
        method = getattr(faker, _FAKER_METHODS[self.role.kind])
        return self._pool_of(lambda: method().replace("\n", ", "))

    def _text_pool(self) -> np.ndarray:
        faker = self._faker()
        lengths = iter(int(len(str(t))) for t in self._templates(POOL_SIZE))
        return self._pool_of(
            lambda: faker.text(max_nb_chars=max(next(lengths), 5)).replace("\n", " ")
        )

    def _from_pool(self, n: int, make_pool: Any) -> np.ndarray:
        pool = make_pool()
        picks = pool[self.rng.integers(0, pool.size, n)]
        if self.unique and n > 1:
            # beyond the pool, a counter keeps values distinct
            counter = self.rng.integers(2, 1_000_000, n)
            sep = "" if self.role.kind in ("user_name", "url") else " "
            picks = np.array(
                [f"{v}{sep}{c}" for v, c in zip(picks, counter, strict=True)], dtype=object
            )
        return picks


def shard_of_values(values: np.ndarray, count: int) -> np.ndarray:
    """Which of ``count`` shards owns each text value (a stable hash, the same everywhere)."""
    return np.fromiter(
        (zlib.crc32(str(v).encode("utf-8")) % count for v in values),
        dtype=np.int64,
        count=len(values),
    )


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _scramble(templates: Sequence[Any], rng: np.random.Generator, extra: int = 0) -> np.ndarray:
    """Replace each ASCII digit/letter of each template by a random one of its class."""
    text = np.array([str(t) for t in templates], dtype=str)
    if extra:
        text = np.char.add(text, np.array(["0" * extra] * len(text)))
    width = text.dtype.itemsize // 4
    if width == 0:
        return text.astype(object)
    codes = text.view(np.uint32).reshape(len(text), width).copy()
    draws = rng.integers(0, 26, size=codes.shape, dtype=np.uint32)
    digit = (codes >= 48) & (codes <= 57)
    lower = (codes >= 97) & (codes <= 122)
    upper = (codes >= 65) & (codes <= 90)
    codes[digit] = 48 + draws[digit] % 10
    codes[lower] = 97 + draws[lower]
    codes[upper] = 65 + draws[upper]
    return codes.view(f"<U{width}").reshape(len(text)).astype(object)


def _scramble_json(text: str, rng: np.random.Generator) -> str:
    """The same JSON shape and keys with every value replaced (strings format-preserved)."""
    try:
        document = json.loads(text)
    except ValueError:
        return str(_scramble([text], rng)[0])

    def fresh(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fresh(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fresh(v) for v in value]
        if isinstance(value, bool) or value is None:
            return bool(rng.integers(0, 2)) if isinstance(value, bool) else None
        if isinstance(value, int):
            return int(_scramble([value], rng)[0].lstrip("-") or 0)
        if isinstance(value, float):
            return round(float(rng.normal(value, abs(value) * 0.5 + 1.0)), 6)
        return str(_scramble([value], rng)[0])

    return json.dumps(fresh(document), ensure_ascii=False)


class FreshColumns:
    """Fresh values for every fresh column of one table (primary key and PII).

    Foreign keys are not issued here: they take their synthetic parent's key (see
    :func:`reissue_keys`).
    """

    def __init__(
        self,
        real: pd.DataFrame,
        roles: Iterable[ColumnRole],
        *,
        seed: int = 0,
        shard: tuple[int, int, int] | None = None,
    ) -> None:
        self.roles = [r for r in roles if r.fresh and r.role != "foreign_key"]
        self.generators = {
            r.name: FreshValues(r, real[r.name], seed=seed, shard=shard) for r in self.roles
        }

    def complete(self, sampled: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
        """``sampled`` (modelled columns) plus fresh columns, in the order of ``columns``."""
        out = sampled.reset_index(drop=True).copy()
        for name, generator in self.generators.items():
            out[name] = generator.draw(len(out)).to_numpy()
        return out[[c for c in columns if c in out.columns]]


def reissue_keys(
    tables: Mapping[str, pd.DataFrame],
    real: Mapping[str, pd.DataFrame],
    keys: Mapping[str, Sequence[ColumnRole]],
    relationships: Sequence[tuple[str, str, str, str]],
    *,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Replace the synthesizer's keys with fresh ones, consistently across tables.

    ``keys`` maps a table to its primary-key roles; ``relationships`` are (child,
    child_column, parent, parent_column). Each parent key value gets one fresh value and
    every child foreign key that pointed at it is mapped the same way, so integrity is kept
    while no published key equals a real one.
    """
    out = {name: frame.copy() for name, frame in tables.items()}
    for table, roles in keys.items():
        for role in roles:
            synthetic = out[table][role.name]
            generator = FreshValues(
                role, real[table][role.name], seed=seed + zlib.crc32(table.encode())
            )
            distinct = pd.unique(synthetic.dropna())
            fresh = generator.draw(len(distinct)).to_numpy()
            mapping = pd.Series(fresh, index=distinct)
            out[table][role.name] = synthetic.map(mapping)
            for child, child_column, parent, parent_column in relationships:
                if parent == table and parent_column == role.name:
                    out[child][child_column] = out[child][child_column].map(mapping)
    return out


def count_leaks(
    published: pd.DataFrame, real: pd.DataFrame, columns: Iterable[str]
) -> dict[str, int]:
    """Per column, how many published (non-null) values equal some real value of it.

    Compared as text for text columns and as numbers for numeric ones, so ``42`` and
    ``"42"`` never hide a leak from each other in either direction.
    """
    leaks = {}
    for name in columns:
        mine, theirs = published[name].dropna(), real[name].dropna()
        if mine.empty or theirs.empty:
            leaks[name] = 0
            continue
        left, right = _comparable(mine), _comparable(theirs)
        leaks[name] = int(left.isin(pd.Index(pd.unique(right))).sum())
    return leaks


def _comparable(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values):
        as_float = values.astype("float64")
        whole = as_float == np.floor(as_float)
        return as_float.where(~whole, as_float.round()).map(
            lambda v: str(int(v)) if float(v).is_integer() else repr(float(v))
        )
    return values.map(_as_text).map(_numeric_text)


def _numeric_text(text: str) -> str:
    """``"042"`` stays text; ``"42"`` and ``"42.0"`` compare equal to the number 42."""
    try:
        number = float(text)
    except ValueError:
        return text
    if not np.isfinite(number) or (text.startswith("0") and len(text) > 1 and "." not in text):
        return text
    return str(int(number)) if number.is_integer() else repr(number)


__all__ = ["FreshColumns", "FreshValues", "count_leaks", "reissue_keys"]
