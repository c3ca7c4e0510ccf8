"""Deliberately bad "synthesizers" with SDV's API, to prove the gates catch them.

``Memoriser`` replays the training rows (fresh ids, like SDV, so only the content leaks);
``Shuffler`` returns real values with every column shuffled independently, which keeps
each column's distribution perfect and destroys every relationship.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd


class _Replay:
    def __init__(self, metadata: Any, **params: Any) -> None:
        self.metadata = metadata
        self.rng = np.random.default_rng(0)
        self.issued = 0

    def fit(self, data: dict[str, pd.DataFrame]) -> None:
        ((self.table, self.frame),) = data.items()
        columns = self.metadata.to_dict()["tables"][self.table]["columns"]
        self.fresh = [
            c for c, spec in columns.items() if spec.get("sdtype") == "id" or spec.get("pii")
        ]

    def _set_random_state(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def _rows(self, n: int) -> pd.DataFrame:
        picks = self.rng.integers(0, len(self.frame), n)
        return self.frame.iloc[picks].reset_index(drop=True)

    def sample(self, num_rows: int) -> dict[str, pd.DataFrame]:
        frame = self._rows(num_rows)
        for column in self.fresh:
            frame[column] = [f"fake-{self.issued + i}" for i in range(len(frame))]
        self.issued += len(frame)
        return {self.table: frame}

    def save(self, path: str) -> None:
        with open(path, "wb") as fh:
            pickle.dump({"kind": type(self).__name__}, fh)


class Memoriser(_Replay):
    """Returns training rows verbatim (apart from ids)."""


class Shuffler(_Replay):
    """Returns training values with each column permuted on its own."""

    def _rows(self, n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                c: self.frame[c].to_numpy()[self.rng.integers(0, len(self.frame), n)]
                for c in self.frame
            }
        )
