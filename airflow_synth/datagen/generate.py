"""Rows from a spec: vectorised, streamed in batches, deterministic for (spec, seed).

Each table is made in fixed blocks of rows (:data:`BLOCK_ROWS`; for a child table, runs
of whole parents holding about that many children). Every column of every block draws from
its own random stream, ``SeedSequence(seed, spawn_key=(table, column, block))``, and exact
columns take their share of the global quota block by block
(:mod:`airflow_synth.datagen.exact`). Blocks never depend on the caller's ``batch_rows``,
which only re-cuts the output, so the data are identical for every batch size.

Tables that other tables refer to are kept in memory as arrays (children need their keys
and attributes); the others are streamed with bounded memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from airflow_synth.datagen.exact import JointQuota, Quota, gumbel, random_string_ids
from airflow_synth.datagen.plan import (
    Plan,
    TablePlan,
    category_values,
    children_column,
    column_order,
    make_plan,
)
from airflow_synth.datagen.spec import ColumnSpec, DataSpec, TableSpec

#: Rows per block. Part of the output's definition: changing it changes the data.
BLOCK_ROWS = 65_536
#: Bump when the same (spec, seed) would give other rows, so seeded databases reload.
GENERATOR_VERSION = "datagen-1"
#: Rounds of redrawing repeated values of a ``distinct_per`` reference before the few
#: parents still holding a repeat draw their rows without replacement one by one.
DISTINCT_REDRAWS = 20


def _stream_key(*names: str) -> int:
    return zlib.crc32("\x1f".join(names).encode("utf-8"))


@dataclass
class _Block:
    """The columns of one block (internal form) and how to reach the parent's columns."""

    table: TableSpec
    start: int
    n: int
    values: dict[str, np.ndarray] = field(default_factory=dict)
    parent: dict[str, np.ndarray] | None = None
    parent_row: np.ndarray | None = None

    def get(self, name: str) -> np.ndarray:
        if "." in name:
            assert self.parent is not None and self.parent_row is not None
            return self.parent[name.split(".", 1)[1]][self.parent_row]
        return self.values[name]


class _TableMaker:
    """Makes the blocks of one table, holding the quotas that run across blocks."""

    def __init__(self, spec: DataSpec, plan: TablePlan, seed: int, tables: dict) -> None:
        self.spec = spec
        self.table = spec.tables[plan.name]
        self.plan = plan
        self.seed = seed
        self.tables = tables  # name -> dict of full internal arrays (referenced tables)
        self.columns = column_order(self.table)
        self.categories = {
            c.name: category_values(c) for c in self.columns if c.type in ("categorical", "boolean")
        }
        for name, exact in plan.exact.items():
            if name in self.table.columns and self.table.columns[name].type in (
                "date",
                "timestamp",
            ):
                self.categories[name] = exact.categories
        self.quotas: dict[str, Any] = {}
        for name, exact in plan.exact.items():
            self.quotas[name] = (
                Quota(exact.counts) if exact.given is None else JointQuota(exact.counts)
            )
        self.popularity: dict[str, np.ndarray] = {}

    def rng(self, purpose: str, block: int) -> np.random.Generator:
        key = (_stream_key(self.table.name), _stream_key(purpose), block)
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    # --- blocks -------------------------------------------------------------------------
    def blocks(self) -> Iterator[_Block]:
        rows = self.plan.rows
        if self.table.rows.per:
            yield from self._child_blocks()
            return
        for number, start in enumerate(range(0, rows, BLOCK_ROWS)):
            block = _Block(self.table, start, min(BLOCK_ROWS, rows - start))
            self._fill(block, number)
            yield block

    def _child_blocks(self) -> Iterator[_Block]:
        parent_name = self.table.rows.per
        parent = self.tables[parent_name]
        counts = np.asarray(self.plan.children.categories)[parent[children_column(self.table.name)]]
        ends = np.cumsum(counts)
        block_of_parent = (ends - counts) // BLOCK_ROWS
        bounds = np.flatnonzero(np.diff(block_of_parent)) + 1
        starts = np.concatenate([[0], bounds]).astype(np.int64)
        stops = np.concatenate([bounds, [counts.size]]).astype(np.int64)
        row = 0
        for number, (first, stop) in enumerate(zip(starts, stops, strict=True)):
            parent_row = np.repeat(np.arange(first, stop), counts[first:stop])
            if parent_row.size == 0:
                continue
            block = _Block(self.table, row, parent_row.size, parent=parent, parent_row=parent_row)
            block.values[self.table.rows.via] = parent_row
            self._fill(block, number)
            row += parent_row.size
            yield block

    def _fill(self, block: _Block, number: int) -> None:
        for column in self.columns:
            if column.name in block.values:
                continue
            rng = self.rng(column.name, number)
            block.values[column.name] = getattr(self, f"_make_{column.type}")(column, block, rng)
        for name in self.plan.exact:
            if name.startswith("__children_of_"):
                block.values[name] = self._children(name, block, number)
        self._check_key(block)

    def _check_key(self, block: _Block) -> None:
        """A composite key never repeats: checked on every block, not assumed.

        The spec only accepts composite keys that are unique by construction (the parent
        column plus a per-parent sequence or ``distinct_per`` reference), and a block holds
        whole parents, so a block without repeats means a table without repeats. A repeat
        here is a bug in the generator, and it stops before the database sees it.
        """
        key = self.table.key_columns
        if len(key) < 2 or block.n < 2 or any(self.table.columns[c].type == "id" for c in key):
            return
        arrays = [np.asarray(block.values[c]) for c in key]
        order = np.lexsort(arrays[::-1])
        same = np.ones(block.n - 1, dtype=bool)
        for array in arrays:
            ordered = array[order]
            same &= ordered[1:] == ordered[:-1]
        if same.any():
            raise ValueError(
                f"{self.spec.source}: table {self.table.name!r}: the composite primary key "
                f"({', '.join(key)}) repeats in {int(same.sum())} generated rows."
            )

    # --- column makers (internal form: codes for categories, floats, datetime64) ----------
    def _make_id(self, column: ColumnSpec, block: _Block, rng: np.random.Generator) -> np.ndarray:
        return self.ids_at(column, np.arange(block.start, block.start + block.n, dtype=np.int64))

    def ids_at(self, column: ColumnSpec, index: np.ndarray) -> np.ndarray:
        """The ids of rows ``index`` of this table: a function of the row number alone, so
        a self-reference can name rows before they are made."""
        o = column.options
        if o["format"] == "sequence":
            return index + int(o["start"])
        key = self.seed ^ _stream_key(self.table.name, column.name)
        ids = random_string_ids(index, int(o["length"]), key)
        return np.char.add(str(o["prefix"]), ids) if o.get("prefix") else ids

    def _make_sequence(
        self, column: ColumnSpec, block: _Block, rng: np.random.Generator
    ) -> np.ndarray:
        """start, start+1, ... within each parent: a block's rows come grouped by parent."""
        parent = np.asarray(block.values[str(column.options["per"])])
        position = np.arange(block.n, dtype=np.int64)
        first = np.ones(block.n, dtype=bool)
        first[1:] = parent[1:] != parent[:-1]
        run_start = np.maximum.accumulate(np.where(first, position, 0)) if block.n else position
        return position - run_start + int(column.options["start"])

    def _make_categorical(
        self, column: ColumnSpec, block: _Block, rng: np.random.Generator
    ) -> np.ndarray:
        codes = self._categorical(column, block, rng)
        o = column.options
        if "when" in o:
            other = self.categories[column.name].index(o["otherwise"])
            codes = np.where(self._condition(o["when"], block), codes, other).astype(np.int32)
        return codes

    def _categorical(
        self, column: ColumnSpec, block: _Block, rng: np.random.Generator
    ) -> np.ndarray:
        o = column.options
        values = self.categories[column.name]
        if column.name in self.quotas:
            quota = self.quotas[column.name]
            if isinstance(quota, Quota):
                return quota.labels(block.n, rng)
            return quota.labels(self._quota_codes(str(o["given"]), block), rng)
        if "map" in o:
            source, source_values = self._decoded(str(o["map"]["from"]), block)
            default = o["map"].get("default")
            mapped = [_lookup(o["map"]["values"], v, default) for v in source_values]
            table = np.asarray(
                [values.index(v) if v in values else -1 for v in [*mapped, default]],
                dtype=np.int32,
            )
            return table[source]
        if "bins" in o:
            b = o["bins"]
            x = block.get(str(b["from"])).astype(float)
            edges = np.asarray(b["edges"], dtype=float)
            band = np.searchsorted(edges, x, side="right") - 1
            label_codes = np.asarray([values.index(v) for v in b["labels"]], dtype=np.int32)
            missing = values.index(b["missing"]) if b.get("missing") in values else -1
            inside = (band >= 0) & (band < len(b["labels"])) & ~np.isnan(x)
            return np.where(inside, label_codes[band.clip(0, len(b["labels"]) - 1)], missing)
        if "values" in o:
            # plain shares that are not exact (`when:` or `blend:`): drawn at random
            codes = _draw(o["values"], values, rng.random(block.n))
        else:
            codes = self._conditional(column, block, rng)
        if "blend" in o:
            blend = o["blend"]
            other = _draw(blend["values"], values, rng.random(block.n))
            codes = np.where(rng.random(block.n) < float(blend["share"]), other, codes)
        return codes

    def _conditional(
        self, column: ColumnSpec, block: _Block, rng: np.random.Generator
    ) -> np.ndarray:
        """Shares given another column, drawn at random."""
        o = column.options
        values = self.categories[column.name]
        given, given_values = self._decoded(str(o["given"]), block)
        u = rng.random(block.n)
        codes = np.full(block.n, -1, dtype=np.int32)
        for code, value in enumerate(given_values):
            rows = given == code
            if not rows.any():
                continue
            shares = _lookup(o["values_by"], value, None) or o.get("default")
            if shares is None:
                raise ValueError(
                    f"{self.spec.source}: table {self.table.name!r}, column {column.name!r}: "
                    f"values_by has no entry for {o['given']}={value!r}; add one or `default:`."
                )
            codes[rows] = _draw(shares, values, u[rows])
        return codes

    def _make_boolean(
        self, column: ColumnSpec, block: _Block, rng: np.random.Generator
    ) -> np.ndarray:
        o = column.options
        key = self._propensity(o.get("propensity") or [], block) + gumbel(rng, block.n)
        quota = self.quotas[column.name]
        if isinstance(quota, Quota):
            trues = int(quota.take(block.n, rng)[1])
            result = np.zeros(block.n, dtype=bool)
            result[np.argsort(-key, kind="stable")[:trues]] = True
            return result
        month = self._quota_codes(str(o["rate_by_month"]["month_of"]), block)
        return quota.choose(month, key, rng)

    def _make_integer(
        self, column: ColumnSpec, block: _Block, rng: np.random.Generator
    ) -> np.ndarray:
        return self._numeric(column.options, block, rng, integer=True)

    def _make_float(
        self, column: ColumnSpec, block: _Block, rng: np.random.Generator
    ) -> np.ndarray:
        return self._numeric(column.options, block, rng, integer=False)

    def _numeric(
        self, o: Mapping[str, Any], block: _Block, rng: np.random.Generator, integer: bool
    ) -> np.ndarray:
        n = block.n
        params = dict(o["distribution"])
        x = np.empty(n)
        if "params_by" in o:
            given, given_values = self._decoded(str(o["params_by"]["given"]), block)
            groups = [(given == code, value) for code, value in enumerate(given_values)]
            groups.append((given < 0, None))
        else:
            groups = [(np.ones(n, dtype=bool), None)]
        for rows, value in groups:
            count = int(rows.sum())
            if not count:
                continue
            local = dict(params)
            if value is not None or "params_by" in o:
                local.update(_lookup(o["params_by"]["values"], value, {}) or {})
            x[rows] = _sample(local, rng, count)
        if "offset" in o:
            x = x + float(o["offset"])
        if "replace" in o:
            r = o["replace"]
            replace = rng.random(n) < float(r["share"])
            keys = list(r["values"])
            picked = np.asarray(keys, dtype=float)[_draw(r["values"], keys, rng.random(n))]
            x = np.where(replace, picked, x)
        if "clip" in o:
            x = np.clip(x, float(o["clip"][0]), float(o["clip"][1]))
        rounding = o.get("round", "round" if integer else "none")
        if rounding != "none":
            x = {"round": np.round, "floor": np.floor, "ceil": np.ceil}[rounding](x)
        if "digits" in o:
            x = np.round(x, int(o["digits"]))
        null_share = o.get("null_share", 0)
        if isinstance(null_share, Mapping):
            given, given_values = self._decoded(str(null_share["given"]), block)
            default = float(null_share.get("default", 0.0))
            shares = np.asarray(
                [float(_lookup(null_share["values"], v, default)) for v in given_values] + [default]
            )
            p_null = shares[given]
        else:
            p_null = np.full(n, float(null_share))
        x[rng.random(n) < p_null] = np.nan
        return x

    def _make_date(self, column: ColumnSpec, block: _Block, rng: np.random.Generator) -> np.ndarray:
        o = column.options
        if "from" not in o:
            dates = self.plan.dates[column.name]
            month = self.quotas[column.name].labels(block.n, rng)
            # Day within the month, weighted by the growth curve: one sorted key per day.
            within = np.zeros(dates.days)
            for m in range(len(dates.months)):
                days = np.flatnonzero(dates.month_of_day == m)
                w = np.cumsum(dates.weights[days])
                within[days] = m + w / w[-1]
            day = np.searchsorted(within, month + rng.random(block.n), side="left")
            day = np.minimum(day, dates.days - 1)
            values = dates.start + day.astype("timedelta64[D]")
            # Month codes travel with the values so rate_by_month can group by them.
            block.values[f"{column.name}#month"] = month
        else:
            values = block.get(str(o["from"])).astype("datetime64[D]")
            for key, sign in (("plus_days", 1), ("minus_days", -1)):
                if key in o:
                    days = np.nan_to_num(self._numeric(o[key], block, rng, integer=True))
                    values = values + (sign * days.astype(np.int64)).astype("timedelta64[D]")
            if "when" in o:
                values = np.where(self._condition(o["when"], block), values, np.datetime64("NaT"))
        if column.type == "timestamp":
            seconds = rng.integers(0, 86_400, block.n).astype("timedelta64[s]")
            return values.astype("datetime64[s]") + seconds
        return values

    _make_timestamp = _make_date

    def _make_reference(
        self, column: ColumnSpec, block: _Block, rng: np.random.Generator
    ) -> np.ndarray:
        """Parent row numbers (internal form; -1 is NULL), mapped to keys on output."""
        o = column.options
        if column.is_self_reference:
            # A hierarchy: the first `roots` rows have no parent; every other row points at
            # a uniformly drawn *earlier* row, so there is no cycle, at any block size.
            index = np.arange(block.start, block.start + block.n, dtype=np.int64)
            earlier = np.floor(rng.random(block.n) * index).astype(np.int64)
            earlier = np.minimum(earlier, np.maximum(index - 1, 0))
            return np.where(index < int(o["roots"]), -1, earlier)
        parent_name = column.parent_table
        parent = self.tables[parent_name]
        size = parent["__rows__"].size
        if size == 0:
            raise ValueError(
                f"{self.spec.source}: table {self.table.name!r}, column {column.name!r} refers "
                f"to {parent_name!r}, which has no rows; give it rows or drop the reference."
            )
        pop = o.get("popularity", {"name": "uniform"})
        if pop["name"] == "uniform":

            def draw(n: int) -> np.ndarray:
                return rng.integers(0, size, n)

        else:
            if column.name not in self.popularity:
                # Popular parents are spread over the ids (not the first ones), fixed by seed.
                order = np.random.default_rng(
                    np.random.SeedSequence(self.seed, spawn_key=(_stream_key(column.qualified),))
                ).permutation(size)
                weights = 1.0 / np.arange(1, size + 1) ** float(pop.get("exponent", 1.0))
                cumulative = np.empty(size)
                cumulative[order] = weights
                self.popularity[column.name] = np.cumsum(cumulative) / cumulative.sum()

            def draw(n: int) -> np.ndarray:
                cdf = self.popularity[column.name]
                return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), size - 1)

        values = draw(block.n)
        if "distinct_per" in o:
            group = np.asarray(block.get(str(o["distinct_per"])))
            values = self._distinct(column, values, group, draw, size, rng)
        if o.get("null_share"):
            values = np.where(rng.random(block.n) < float(o["null_share"]), -1, values)
        return values

    def _distinct(
        self,
        column: ColumnSpec,
        values: np.ndarray,
        group: np.ndarray,
        draw: Any,
        size: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Values that never repeat within one ``group`` (a link table's pairs).

        Repeats are redrawn with the column's own popularity, which keeps it and settles
        most repeats in a round or two; parents still holding one after
        :data:`DISTINCT_REDRAWS` rounds (k close to the number of choices) draw their rows
        without replacement, one parent at a time.
        """
        values = values.copy()
        for _ in range(DISTINCT_REDRAWS):
            repeated = _repeated(group, values)
            if not repeated.any():
                return values
            values[repeated] = draw(int(repeated.sum()))
        left = _repeated(group, values)
        if left.any():
            cdf = self.popularity.get(column.name)
            p = None if cdf is None else np.diff(cdf, prepend=0.0)
            for parent in np.unique(group[left]):
                rows = np.flatnonzero(group == parent)
                values[rows] = rng.choice(size, rows.size, replace=False, p=p)
        return values

    def _children(self, name: str, block: _Block, number: int) -> np.ndarray:
        """Children per parent row: exact counts, given to the rows ranked by ``rank_by``."""
        child = self.spec.tables[name.removeprefix("__children_of_")]
        rng = self.rng(name, number)
        quota: Quota = self.quotas[name]
        counts = np.repeat(np.arange(quota.remaining.size), quota.take(block.n, rng))
        key = self._propensity(child.rows.rank_by, block) + gumbel(rng, block.n)
        codes = np.empty(block.n, dtype=np.int64)
        codes[np.argsort(key, kind="stable")] = counts  # counts ascending, key ascending
        return codes

    # --- helpers --------------------------------------------------------------------------
    def _quota_codes(self, name: str, block: _Block) -> np.ndarray:
        """Codes of an exact column of this block, as rows of its quota (months for dates)."""
        if self.table.columns[name].type in ("date", "timestamp"):
            return block.values[f"{name}#month"].astype(np.int64)
        return block.values[name].astype(np.int64)

    def _decoded(self, name: str, block: _Block) -> tuple[np.ndarray, list[Any]]:
        """Codes of a column and the values they stand for (booleans as codes 0/1)."""
        array = block.get(name)
        if "." in name:
            parent, column = name.split(".", 1)
            spec = self.spec.tables[parent].columns[column]
            values = category_values(spec)
        else:
            spec = self.table.columns[name]
            values = self.categories.get(name, [])
        if spec.type == "boolean":
            return array.astype(np.int32), [False, True]
        if spec.type in ("categorical",):
            return array, values
        raise ValueError(
            f"{self.spec.source}: table {self.table.name!r}: {name!r} is a {spec.type} column; "
            "only categorical and boolean columns can be used as `given:` or `map.from`."
        )

    def _condition(self, cond: Mapping[str, Any], block: _Block) -> np.ndarray:
        name = str(cond["column"])
        spec = self._spec_of(name)
        if spec.type in ("categorical", "boolean"):
            codes, values = self._decoded(name, block)
            if "is_null" in cond:
                null = (codes < 0) | np.isin(codes, [i for i, v in enumerate(values) if v is None])
                return null == bool(cond["is_null"])
            wanted = cond.get("in", cond.get("not_in", [cond.get("equals")]))
            hits = np.isin(codes, [i for i, v in enumerate(values) if _member(v, wanted)])
            return ~hits if "not_in" in cond else hits
        x = block.get(name)
        if "is_null" in cond:
            if spec.type == "reference":
                null = x < 0
            else:
                null = np.isnat(x) if x.dtype.kind == "M" else np.isnan(x.astype(float))
            return null == bool(cond["is_null"])
        if "between" in cond:
            low, high = cond["between"]
            if x.dtype.kind == "M":
                low, high = np.datetime64(str(low)), np.datetime64(str(high))
            return (x >= low) & (x <= high)
        wanted = cond.get("in", cond.get("not_in", [cond.get("equals")]))
        hits = np.isin(x, wanted)
        return ~hits if "not_in" in cond else hits

    def reference_keys(self, column: ColumnSpec, rows: np.ndarray) -> list[Any]:
        """The loaded values of a reference: the parent's key column(s) at ``rows``."""
        null = rows < 0
        safe = np.where(null, 0, rows)
        if column.is_self_reference:
            own = self.table.columns[str(self.table.primary_key)]
            keys = [self.ids_at(own, safe)]
        else:
            keys = [self.key_values(column.parent_table, c, safe) for c in column.parent_columns]
        return [_with_nulls(k, null) for k in keys]

    def key_values(self, table: str, column: str, rows: np.ndarray) -> np.ndarray:
        """Loaded values of key column ``table.column`` at ``rows`` (a reference in a
        composite key is followed to the id it stands for)."""
        spec = self.spec.tables[table].columns[column]
        values = self.tables[table][column][rows]
        if spec.type == "reference":
            return self.key_values(spec.parent_table, spec.parent_columns[0], values)
        return values

    def _spec_of(self, name: str) -> ColumnSpec:
        if "." in name:
            parent, column = name.split(".", 1)
            return self.spec.tables[parent].columns[column]
        return self.table.columns[name]

    def _propensity(self, terms: Any, block: _Block) -> np.ndarray:
        score = np.zeros(block.n)
        for term in terms:
            weight = float(term["weight"])
            if any(k in term for k in ("equals", "in", "not_in", "is_null", "between")):
                score += weight * self._condition(term, block)
            else:
                x = block.get(str(term["column"])).astype(float)
                if "distance_from" in term:
                    x = np.abs(x - float(term["distance_from"]))
                score += weight * np.nan_to_num(x)
        return score


def _repeated(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows whose (group, value) pair appeared on an earlier row (first ones are kept)."""
    if values.size < 2:
        return np.zeros(values.size, dtype=bool)
    order = np.lexsort((np.arange(values.size), values, group))
    same = (group[order][1:] == group[order][:-1]) & (values[order][1:] == values[order][:-1])
    repeated = np.zeros(values.size, dtype=bool)
    repeated[order[1:][same]] = True
    return repeated


def _with_nulls(values: np.ndarray, null: np.ndarray) -> Any:
    """``values`` with NULL where ``null``: nullable Int64 for numbers, None for strings.

    Without NULLs the array is returned as it is, so references that cannot be NULL keep
    the plain dtype they always had.
    """
    if not null.any():
        return values
    if values.dtype.kind in "iu":
        return pd.arrays.IntegerArray(values.astype(np.int64), null.copy())
    out = values.astype(object)
    out[null] = None
    return out


def _member(value: Any, wanted: Any) -> bool:
    return any(value == w or (value is not None and str(value) == str(w)) for w in wanted)


def _lookup(mapping: Mapping[Any, Any], value: Any, default: Any) -> Any:
    if value in mapping:
        return mapping[value]
    for key, item in mapping.items():
        if str(key) == str(value):
            return item
    return default


def _draw(shares: Mapping[Any, float], values: list[Any], u: np.ndarray) -> np.ndarray:
    """Codes into ``values`` drawn with ``shares`` (inverse CDF of uniform ``u``)."""
    keys = list(shares)
    p = np.asarray([float(shares[k]) for k in keys])
    local = np.minimum(np.searchsorted(np.cumsum(p / p.sum()), u, side="right"), len(keys) - 1)
    return np.asarray([values.index(k) for k in keys], dtype=np.int32)[local]


def _sample(params: Mapping[str, Any], rng: np.random.Generator, n: int) -> np.ndarray:
    name = params["name"]
    if name == "normal":
        return rng.normal(params["mean"], params["sd"], n)
    if name == "lognormal":
        return rng.lognormal(params["meanlog"], params["sdlog"], n)
    if name == "gamma":
        return rng.gamma(params["shape"], params["scale"], n)
    if name == "exponential":
        return rng.exponential(params["scale"], n)
    if name == "uniform":
        return rng.uniform(params["low"], params["high"], n)
    if name == "poisson":
        return rng.poisson(params["mean"], n).astype(float)
    return np.full(n, float(params["value"]))


# --- output ---------------------------------------------------------------------------------


class _Output:
    """Turns internal blocks into DataFrames with the loaded columns and fixed dtypes."""

    def __init__(self, maker: _TableMaker) -> None:
        self.maker = maker
        self.table = maker.table
        self.dtypes: dict[str, pd.CategoricalDtype] = {}
        self.parts: dict[str, list[tuple[str, np.ndarray]]] = {}
        for column in self.table.columns.values():
            if column.hidden or column.type not in ("categorical",):
                continue
            values = maker.categories[column.name]
            split = column.options.get("split")
            if not split:
                # Internal codes index `values` (which may hold None); -1 and None -> NULL.
                dtype = _categorical_dtype(values)
                self.dtypes[column.name] = dtype
                known = [v for v in values if v is not None]
                codes = [-1 if v is None else known.index(v) for v in values]
                self.parts[column.name] = [(column.name, np.asarray([*codes, -1], dtype=np.int32))]
                continue
            pieces = []
            for position, name in enumerate(split["into"]):
                parts = [
                    None if v is None else str(v).split(split["separator"])[position]
                    for v in values
                ]
                parts = [p if p != "" else None for p in parts]
                categories = [p for p in dict.fromkeys(parts) if p is not None]
                codes = np.asarray(
                    [-1 if p is None else categories.index(p) for p in parts] + [-1], dtype=np.int32
                )
                self.dtypes[name] = _categorical_dtype(categories)
                pieces.append((name, codes))
            self.parts[column.name] = pieces

    def frame(self, block: _Block) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for column in self.table.columns.values():
            if column.hidden:
                continue
            value = block.values[column.name]
            if column.name in self.parts:
                for name, codes in self.parts[column.name]:
                    data[name] = pd.Categorical.from_codes(codes[value], dtype=self.dtypes[name])
            elif column.type == "reference":
                for name, values in zip(
                    column.output_columns, self.maker.reference_keys(column, value), strict=True
                ):
                    data[name] = values
            elif column.type == "integer":
                data[column.name] = (
                    pd.array(value, dtype="Int64")
                    if np.isnan(value).any()
                    else value.astype(np.int64)
                )
            else:
                data[column.name] = value
        return pd.DataFrame(data, columns=self.table.output_columns)


def _categorical_dtype(values: list[Any]) -> pd.CategoricalDtype:
    categories = [v for v in values if v is not None]
    if categories and all(isinstance(v, bool) for v in categories):
        return pd.CategoricalDtype(categories)
    if categories and all(isinstance(v, int) and not isinstance(v, bool) for v in categories):
        return pd.CategoricalDtype(pd.Index(categories, dtype="int64"))
    return pd.CategoricalDtype(pd.Index([str(v) for v in categories], dtype=object))


# --- public API -----------------------------------------------------------------------------


def generate(
    spec: DataSpec,
    *,
    seed: int = 42,
    rows: Mapping[str, int] | None = None,
    per_parent_mean: Mapping[str, float] | None = None,
    batch_rows: int = 100_000,
    tables: list[str] | None = None,
) -> Iterator[tuple[str, pd.DataFrame]]:
    """Yield ``(table, DataFrame)`` batches of at most ``batch_rows`` rows, table by table.

    Tables come in load order (parents before children). ``rows``/``per_parent_mean``
    resize tables (see :func:`airflow_synth.datagen.plan.make_plan`); ``tables`` limits the
    output to some tables (the tables they refer to are still made, not yielded). The rows
    depend only on the spec, the sizes and ``seed``; never on ``batch_rows``.
    Categorical columns are pandas ``category``, integers ``int64`` (``Int64`` with NULLs),
    dates ``datetime64[D]``, timestamps ``datetime64[s]``; hidden columns are left out.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    plan = make_plan(spec, rows, per_parent_mean)
    yield from _generate(plan, seed, batch_rows, tables)


def _generate(
    plan: Plan, seed: int, batch_rows: int, only: list[str] | None
) -> Iterator[tuple[str, pd.DataFrame]]:
    spec = plan.spec
    wanted = set(only) if only is not None else set(spec.tables)
    for name in wanted:
        spec.table(name)
    referenced = {p for t in spec.tables.values() for p in _parents(t)}
    memory: dict[str, dict[str, np.ndarray]] = {}
    for name in spec.load_order():
        needed = name in wanted or name in referenced
        if not needed:
            continue
        maker = _TableMaker(spec, plan.tables[name], seed, memory)
        output = _Output(maker)
        kept: list[dict[str, np.ndarray]] = []
        pending: list[pd.DataFrame] = []
        pending_rows = 0
        for block in maker.blocks():
            if name in referenced:
                kept.append(block.values)
            if name not in wanted:
                continue
            pending.append(output.frame(block))
            pending_rows += block.n
            while pending_rows >= batch_rows:
                merged = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
                yield name, merged.iloc[:batch_rows].reset_index(drop=True)
                pending = [merged.iloc[batch_rows:]]
                pending_rows -= batch_rows
        if name in wanted and (pending_rows or plan.tables[name].rows == 0):
            frames = [f for f in pending if len(f)] or [output.frame(_empty_block(maker))]
            merged = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            yield name, merged.reset_index(drop=True)
        if name in referenced:
            memory[name] = _stack(kept, maker)


def _parents(table: TableSpec) -> list[str]:
    parents = [table.rows.per] if table.rows.per else []
    parents += [
        c.parent_table
        for c in table.columns.values()
        if c.type == "reference" and not c.is_self_reference
    ]
    return parents


def _empty_block(maker: _TableMaker) -> _Block:
    block = _Block(maker.table, 0, 0)
    for column in maker.columns:
        kind = column.type
        if kind in ("categorical", "reference", "sequence"):
            block.values[column.name] = np.zeros(0, dtype=np.int64)
        elif kind == "boolean":
            block.values[column.name] = np.zeros(0, dtype=bool)
        elif kind == "id":
            block.values[column.name] = np.zeros(0, dtype=np.int64)
        elif kind == "date":
            block.values[column.name] = np.zeros(0, dtype="datetime64[D]")
        elif kind == "timestamp":
            block.values[column.name] = np.zeros(0, dtype="datetime64[s]")
        else:
            block.values[column.name] = np.zeros(0)
    return block


def _stack(blocks: list[dict[str, np.ndarray]], maker: _TableMaker) -> dict[str, np.ndarray]:
    if blocks:
        names = blocks[0].keys()
        out = {name: np.concatenate([b[name] for b in blocks]) for name in names}
    else:
        out = dict(_empty_block(maker).values)
    pk = maker.table.primary_key
    out["__ids__"] = out[pk] if pk else np.zeros(0)
    out["__rows__"] = np.arange(out["__ids__"].shape[0]) if pk else np.zeros(0)
    if pk is None:
        rows = next(iter(out.values())).shape[0] if out else 0
        out["__rows__"] = np.arange(rows)
    return out


def generate_tables(
    spec: DataSpec,
    *,
    seed: int = 42,
    rows: Mapping[str, int] | None = None,
    per_parent_mean: Mapping[str, float] | None = None,
) -> dict[str, pd.DataFrame]:
    """All tables in memory (small sizes, tests, notebooks): ``{table: DataFrame}``."""
    frames: dict[str, list[pd.DataFrame]] = {}
    for name, frame in generate(
        spec, seed=seed, rows=rows, per_parent_mean=per_parent_mean, batch_rows=1 << 62
    ):
        frames.setdefault(name, []).append(frame)
    return {name: pd.concat(parts, ignore_index=True) for name, parts in frames.items()}
