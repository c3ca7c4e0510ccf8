"""Deliberately bad (and one faithful) "synthesizers" with SDV's API, to prove the gates.

Each fake has SDV's small API (``__init__(metadata, **params)``, ``fit({table: frame})``,
``_set_random_state``, ``sample(num_rows) -> {table: frame}``, ``save``) and does no
training, so a 50,000-row run costs only the checks.

* ``Memoriser`` / ``Copier``: replays training rows verbatim.
* ``NearCopier`` (``rate``): that share of rows are training rows with tiny noise on the
  numbers and timestamps; the rest are drawn fresh from the true generator (``source``),
  so only the copying can give it away.
* ``Shuffler``: training values with every column permuted on its own (perfect columns,
  no relationship left).
* ``Constant``: every row the same (each column's most common value).
* ``Faithful`` (``source``): fresh rows from the true generating distribution; must pass.

The generators (:func:`customers`, :func:`coarse`) are the "real" tables: every fake that
draws from them draws from the distribution the real rows came from, not from the rows.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd


def customers(n: int, seed: int) -> pd.DataFrame:
    """A real-looking customer table: numbers, categories, a timestamp and a flag, with
    strong relationships (age -> income -> plan -> spend/active) and no repeated rows."""
    rng = np.random.default_rng(seed)
    age = rng.normal(41, 12, n).clip(18, 85).round().astype("int64")
    income = (18_000 + 950 * age + rng.lognormal(9.3, 0.45, n)).round(2)
    rank = pd.Series(income).rank(pct=True).to_numpy() + rng.normal(0, 0.12, n)
    plan = np.where(rank < 0.45, "free", np.where(rank < 0.8, "basic", "pro"))
    spend = np.where(
        plan == "free", 0.0, rng.gamma(2.0, np.where(plan == "pro", 60.0, 20.0), n)
    ).round(2)
    active = rng.random(n) < np.where(plan == "free", 0.35, 0.85)
    start = pd.Timestamp("2022-01-01").value // 10**9
    signup = pd.to_datetime(start + rng.integers(0, 3 * 365 * 86_400, n), unit="s")
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "plan": plan,
            "country": rng.choice(["de", "fr", "it", "es", "nl", "pl"], n),
            "spend": spend,
            "active": active,
            "signup": signup,
        }
    )


def coarse(n: int, seed: int) -> pd.DataFrame:
    """A coarse table (a few low-cardinality columns, as an event log): most real rows
    equal another real row, and the columns depend on each other."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["free", "team", "enterprise"], n, p=[0.6, 0.3, 0.1])
    base = np.select([plan == "free", plan == "team"], [1, 3], 5)
    seats = (base + rng.integers(0, 2, n)).astype("int64")
    active = rng.random(n) < np.where(plan == "free", 0.2, 0.9)
    region = rng.choice(["eu", "us", "apac"], n, p=[0.5, 0.35, 0.15])
    return pd.DataFrame({"plan": plan, "seats": seats, "active": active, "region": region})


def strata(n: int, seed: int) -> pd.DataFrame:
    """A table with a rare group (3% of rows) and two numbers, a flag and a channel."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "group": np.where(rng.random(n) < 0.03, "rare", "common"),
            "channel": rng.choice(["web", "app", "shop"], n),
            "x": rng.normal(0, 1, n).round(4),
            "y": rng.normal(0, 1, n).round(4),
            "flag": rng.random(n) < 0.5,
        }
    )


def chained(n: int, seed: int) -> pd.DataFrame:
    """Columns that determine each other: a sequence number (not named like a key, so it
    is modelled), a timestamp and a ratio that are exact functions of it, plus a channel
    and a flag. Held-out rows sit between training rows, very close to them."""
    rng = np.random.default_rng(seed)
    seq = np.arange(1, n + 1)
    return pd.DataFrame(
        {
            "seq": seq,
            "event_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(seq * 60, "s"),
            "progress": seq / n,
            "channel": rng.choice(["web", "app"], n),
            "member": rng.random(n) < 0.3,
        }
    )


SOURCES = {"customers": customers, "coarse": coarse, "strata": strata, "chained": chained}


class _Fake:
    """SDV's synthesizer API, no training: ``fit`` only remembers the training rows."""

    def __init__(self, metadata: Any, **params: Any) -> None:
        self.metadata = metadata
        self.params = params
        self.rng = np.random.default_rng(0)

    def add_constraints(self, constraints: list[Any]) -> None:
        """SDV's constraint hook; a fake honours none (it learns nothing)."""

    def fit(self, data: dict[str, pd.DataFrame]) -> None:
        ((self.table, self.frame),) = data.items()

    def _set_random_state(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def _rows(self, n: int) -> pd.DataFrame:
        raise NotImplementedError

    def sample(self, num_rows: int) -> dict[str, pd.DataFrame]:
        return {self.table: self._rows(num_rows)[list(self.frame.columns)]}

    def save(self, path: str) -> None:
        with open(path, "wb") as fh:
            pickle.dump({"kind": type(self).__name__}, fh)

    def _replay(self, n: int) -> pd.DataFrame:
        picks = self.rng.integers(0, len(self.frame), n)
        return self.frame.iloc[picks].reset_index(drop=True)

    def _fresh(self, n: int) -> pd.DataFrame:
        """Rows of the true distribution, in the columns the model was fitted on: the
        pipeline may add companion ``<column>__state`` columns (point mass / NULL / value)
        before fitting; a fresh row's value is its own, so its state is ``value``."""
        source = SOURCES[self.params.get("source", "customers")]
        fresh = source(n, int(self.rng.integers(10**9)))
        for column in self.frame.columns:
            if column not in fresh:
                fresh[column] = "value" if column.endswith("__state") else None
        return fresh[list(self.frame.columns)]


class Memoriser(_Fake):
    """Returns training rows verbatim (``rate`` < 1: that share, the rest drawn fresh)."""

    def _rows(self, n: int) -> pd.DataFrame:
        rate = float(self.params.get("rate", 1.0))
        if rate >= 1:
            return self._replay(n)
        copies = round(n * rate)
        fresh = self._fresh(n - copies)[list(self.frame.columns)]
        rows = pd.concat([self._replay(copies), fresh], ignore_index=True)
        return rows.iloc[self.rng.permutation(len(rows))].reset_index(drop=True)


Copier = Memoriser


class NearCopier(_Fake):
    """``rate`` of the rows are training rows with tiny noise, the rest drawn fresh."""

    def _rows(self, n: int) -> pd.DataFrame:
        copies = round(n * float(self.params.get("rate", 1.0)))
        near = self._replay(copies)
        for column in near.columns:
            values = near[column]
            if pd.api.types.is_float_dtype(values):
                span = float(self.frame[column].std() or 1.0)
                near[column] = values + self.rng.normal(0, 1e-4 * span, copies)
            elif pd.api.types.is_datetime64_any_dtype(values):
                near[column] = values + pd.to_timedelta(self.rng.integers(1, 60, copies), "s")
        fresh = self._fresh(n - copies)[list(self.frame.columns)]
        rows = pd.concat([near, fresh], ignore_index=True)
        return rows.iloc[self.rng.permutation(len(rows))].reset_index(drop=True)


class Shuffler(_Fake):
    """Returns training values with each column permuted on its own."""

    def _rows(self, n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                c: self.frame[c].to_numpy()[self.rng.integers(0, len(self.frame), n)]
                for c in self.frame
            }
        )


class Constant(_Fake):
    """Every row the same: each column's most common training value."""

    def _rows(self, n: int) -> pd.DataFrame:
        row = {c: self.frame[c].mode(dropna=True).iloc[0] for c in self.frame}
        return pd.DataFrame({c: [v] * n for c, v in row.items()})


class OutlierProne(_Fake):
    """Fresh rows of ``source`` (``strata``), except that ``rate`` of the rows of the rare
    group are pushed far from every real row (``x`` + 8): the outlier filter takes its rows
    from that group only, as it took booked users on the demo."""

    def _rows(self, n: int) -> pd.DataFrame:
        rows = self._fresh(n)
        far = (rows["group"] == "rare").to_numpy() & (
            self.rng.random(n) < float(self.params.get("rate", 0.5))
        )
        rows.loc[far, "x"] = rows.loc[far, "x"] + 8.0
        return rows


class Faithful(_Fake):
    """Fresh rows from the true generating distribution (``source``): what a perfect
    model would produce. It must pass every gate."""

    def _rows(self, n: int) -> pd.DataFrame:
        return self._fresh(n)


# -- multi-table: a fake HMA (patched over fit_hma / sample_hma) ----------------------------


def users_sessions(n_users: int, seed: int) -> dict[str, pd.DataFrame]:
    """A parent table (users) and a child table (sessions, 0-5 per user)."""
    rng = np.random.default_rng(seed)
    users = customers(n_users, seed)[["age", "income", "plan", "country"]]
    users.insert(0, "id", [f"user{seed}-{i:06d}" for i in range(n_users)])
    counts = rng.integers(0, 6, n_users)
    n = int(counts.sum())
    plan = np.repeat(users["plan"].to_numpy(), counts)
    sessions = pd.DataFrame(
        {
            "sid": np.arange(n, dtype="int64") + seed * 10**7,
            "user_id": np.repeat(users["id"].to_numpy(), counts),
            "device": rng.choice(["web", "ios", "android"], n),
            "secs": (rng.gamma(2.0, np.where(plan == "pro", 90.0, 40.0))).round(3),
        }
    )
    return {"users": users, "sessions": sessions}


class FakeHMA:
    """HMA's API as the multi-table step uses it, no training.

    ``mode``: ``faithful`` (a fresh set from :func:`users_sessions`), ``break_fk`` (the
    same, but a tenth of the sessions point at users that do not exist), ``copy_children``
    (fresh users, but every session a training session re-pointed at a synthetic user).
    """

    def __init__(self, train: dict[str, pd.DataFrame], mode: str, seed: int) -> None:
        self.train, self.mode, self.seed = train, mode, seed

    def sample(self) -> dict[str, pd.DataFrame]:
        n_users = len(self.train["users"])
        tables = users_sessions(n_users, 1_000 + self.seed)
        users, sessions = tables["users"], tables["sessions"]
        rng = np.random.default_rng(self.seed)
        if self.mode == "break_fk":
            broken = rng.random(len(sessions)) < 0.1
            sessions.loc[broken, "user_id"] = "no-such-user"
        elif self.mode == "copy_children":
            sessions = self.train["sessions"].copy()
            sessions["user_id"] = rng.choice(users["id"].to_numpy(), len(sessions))
        columns = {name: list(frame.columns) for name, frame in self.train.items()}
        return {"users": users[columns["users"]], "sessions": sessions[columns["sessions"]]}

    def save(self, path: str) -> None:
        with open(path, "wb") as fh:
            pickle.dump({"kind": "FakeHMA", "mode": self.mode}, fh)
