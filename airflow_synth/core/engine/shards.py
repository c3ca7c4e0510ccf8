"""Split a table's sampling into shards that workers can run side by side.

A big synthetic table is sampled in ``N`` shards, each with its own seed derived from the
run's seed and the shard's number, so that shards draw different rows, the same seed and
shard count give the same rows wherever each shard runs, and a shard that is retried
produces exactly what it produced the first time. With one shard the run's seed is used as
it is, so a single-shard run samples what an unsharded run did.

The shards of a table are planned once, by the task that trained the model, and travel in
XCom as small dicts (Airflow's dynamic task mapping expands over them). No Airflow import.
"""

from __future__ import annotations

import math
import secrets
import zlib
from dataclasses import asdict, dataclass
from typing import Any

from airflow_synth.core.errors import SynthesizerConfigError

#: Default most rows of one shard: a worker samples and screens 1M rows in a few minutes
#: with bounded memory, and a 10M-row table spreads over ten tasks.
DEFAULT_MAX_SHARD_ROWS = 1_000_000
#: Most shards a table is cut into (each is a task of its own).
MAX_SHARDS = 256


@dataclass(frozen=True)
class Shard:
    """One shard of a table's sample: its number, how many shards there are, its rows and
    its seed. ``to_dict``/``from_dict`` carry it through XCom."""

    index: int
    count: int
    rows: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Shard:
        if isinstance(data, Shard):
            return data
        try:
            return cls(int(data["index"]), int(data["count"]), int(data["rows"]), int(data["seed"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SynthesizerConfigError(
                f"Not a shard of a sampling plan: {data!r} (expected the train task's "
                "'shards' XCom: index, count, rows and seed)."
            ) from exc

    @property
    def label(self) -> str:
        """``shard 2/4`` (1-based), for logs."""
        return f"shard {self.index + 1}/{self.count}"

    @property
    def part_name(self) -> str:
        """The shard's part file, e.g. ``part-00002.parquet``."""
        return f"part-{self.index:05d}.parquet"


def shard_seed(seed: int, index: int, count: int) -> int:
    """The seed of shard ``index`` of ``count``: the run's seed for a single shard, else a
    seed derived from both (distinct per shard, the same on every worker and retry)."""
    if count == 1:
        return int(seed)
    return zlib.crc32(f"airflow-synth shard {int(seed)}/{index}/{count}".encode()) % (2**31)


def shard_count(
    rows: int, shards: int | None = None, max_rows: int = DEFAULT_MAX_SHARD_ROWS
) -> int:
    """How many shards sample ``rows`` rows: ``shards`` when given, else enough that none
    has more than ``max_rows`` rows. Never more shards than rows (at least one)."""
    if shards is not None and shards < 1:
        raise SynthesizerConfigError(
            f"shards must be at least 1, got {shards}. Leave it empty for one shard per "
            f"{DEFAULT_MAX_SHARD_ROWS:,} rows."
        )
    wanted = shards if shards is not None else math.ceil(rows / max_rows)
    if wanted > MAX_SHARDS:
        raise SynthesizerConfigError(
            f"{wanted} shards asked for {rows:,} rows; at most {MAX_SHARDS} are allowed "
            "(each is a task). Ask for fewer shards."
        )
    return max(1, min(wanted, max(rows, 1)))


def plan_shards(
    rows: int,
    *,
    seed: int | None,
    shards: int | None = None,
    max_rows: int = DEFAULT_MAX_SHARD_ROWS,
) -> list[Shard]:
    """The shards that sample ``rows`` rows: sizes differ by one at most, seeds derived
    from ``seed`` (a run without a seed gets a random one here, recorded in the plan so
    every shard and retry agrees)."""
    base = secrets.randbits(31) if seed is None else int(seed)
    count = shard_count(rows, shards, max_rows)
    size, extra = divmod(rows, count)
    return [
        Shard(index, count, size + (1 if index < extra else 0), shard_seed(base, index, count))
        for index in range(count)
    ]
