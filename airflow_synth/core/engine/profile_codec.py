"""Make a copula model honour the column profile: codes, point masses, NULLs, whole numbers.

:class:`ProfileCodec` is a reversible transform around any synthesizer:

* **encode** (before fitting): a numeric or date column with point masses or NULLs gets a
  companion categorical column ``<name>__state`` saying, per row, ``mass0``, ``mass1``...,
  ``null`` or ``value``; rows not in ``value`` get a stand-in drawn from the column's other
  values, so the model sees a smooth column *and* learns the states jointly with every
  other column (e.g. "0 sessions" together with "never booked");
* **decode** (after sampling): the state puts the mass value or NULL back, whole-number
  columns are rounded, and numbers and dates are clipped to the real range.

Integer codes need no transform: the profile makes them ``categorical`` in the metadata, so
only real codes are ever sampled. The codec lives in the worker only (it knows the real
range and values); nothing of it is published.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airflow_synth.core.profile.kinds import ColumnProfile

STATE_SUFFIX = "__state"
VALUE, NULL = "value", "null"


class ProfileCodec:
    """Encode the training rows for the model, decode its samples back (see module doc)."""

    def __init__(
        self,
        profiles: Sequence[ColumnProfile],
        train: pd.DataFrame,
        *,
        seed: int = 0,
        states: bool = True,
    ) -> None:
        self.profiles = {p.name: p for p in profiles}
        self.rng = np.random.default_rng(seed)
        self.stateful: dict[str, ColumnProfile] = {}
        self._pools: dict[str, np.ndarray] = {}
        self.ranges: dict[str, tuple[Any, Any]] = {}
        self.quantiles: dict[str, np.ndarray] = {}
        #: long-tailed non-negative columns the model learns as log(1 + x) (copula path)
        self.logged: set[str] = set()
        for profile in profiles:
            if profile.kind not in ("discrete", "continuous", "datetime"):
                continue
            values = train[profile.name].dropna()
            if values.empty:
                continue
            self.ranges[profile.name] = (values.min(), values.max())
            if profile.kind != "datetime":  # quantiles of the real values: tails, no rows
                masses = [m.value for m in profile.point_masses]
                smooth = pd.to_numeric(values[~values.isin(masses)], errors="coerce").dropna()
                if smooth.size:
                    self.quantiles[profile.name] = np.quantile(
                        smooth.to_numpy(dtype=float), np.linspace(0, 1, 101)
                    )
            if (
                states
                and profile.name in self.quantiles
                and _long_tailed(self.quantiles[profile.name])
            ):
                self.logged.add(profile.name)
            if states and (profile.point_masses or profile.null_share > 0):
                masses = [m.value for m in profile.point_masses]
                others = values[~values.isin(masses)].to_numpy()
                if others.size:
                    self.stateful[profile.name] = profile
                    self._pools[profile.name] = others

    def state_column(self, name: str) -> str:
        return f"{name}{STATE_SUFFIX}"

    def sdtypes(self) -> dict[str, str]:
        """Sdtypes the model must use: the profile's, and categorical for each state column."""
        types = {name: p.sdtype for name, p in self.profiles.items()}
        types.update({self.state_column(name): "categorical" for name in self.stateful})
        return types

    def encode(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The training rows as the model should see them (adds the state columns)."""
        out = frame.copy()
        for name, profile in self.stateful.items():
            column = out[name]
            state = pd.Series(VALUE, index=out.index, dtype=object)
            state[column.isna()] = NULL
            for i, mass in enumerate(profile.point_masses):
                state[column == mass.value] = f"mass{i}"
            stand_in = state != VALUE
            pool = self._pools[name]
            filled = column.copy()
            filled[stand_in] = pool[self.rng.integers(0, pool.size, int(stand_in.sum()))]
            out[name] = filled.astype(column.dtype) if column.notna().all() else filled
            out[self.state_column(name)] = state
        for name in self.logged:
            out[name] = np.log1p(pd.to_numeric(out[name], errors="coerce").astype(float))
        return out

    def _into_range(self, name: str, values: pd.Series, low: Any, high: Any) -> pd.Series:
        """Values beyond the real range redrawn from the real tail on that side.

        Clipping piled every out-of-range draw onto the bound: a copula's smooth marginal
        put 6.7% of synthetic session durations at exactly 0 where no real value holds more
        than 0.4%, and those spikes turned into exact copies of training rows. The tail
        (the outer 5% of the real quantiles) keeps the shape without a spike.
        """
        grid = self.quantiles.get(name)
        slack = 1e-9 * max(1.0, abs(float(low)), abs(float(high)))  # float round trips
        below, above = values < float(low) - slack, values > float(high) + slack
        if grid is None or not (below.any() or above.any()):
            return values.clip(lower=low, upper=high)
        # a redrawn value is fractional until decode makes it whole: widen a NumPy integer
        # column first (what the assignment did implicitly, with a FutureWarning that
        # printed the drawn values into the task log)
        widen = isinstance(values.dtype, np.dtype) and values.dtype.kind in "iu"
        out = values.astype(float) if widen else values.copy()
        tail = max(2, len(grid) // 20)
        for mask, part in ((below, grid[:tail]), (above, grid[-tail:])):
            n = int(mask.sum())
            if n:
                lo, hi = float(part.min()), float(part.max())
                out[mask] = lo + (hi - lo) * self.rng.random(n)
        return out.clip(lower=low, upper=high)

    def decode(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A sample in the original columns: masses and NULLs back, whole, within range."""
        out = frame.copy()
        for name in getattr(self, "logged", ()):  # models saved before it have none
            if name in out:
                logged = pd.to_numeric(out[name], errors="coerce").astype(float)
                out[name] = np.expm1(logged.clip(upper=700))
        for name, profile in self.stateful.items():
            state_name = self.state_column(name)
            state = out.pop(state_name).astype(object) if state_name in out else None
            if state is None:
                continue
            column = out[name].astype(object)
            column[state == NULL] = None
            for i, mass in enumerate(profile.point_masses):
                column[state == f"mass{i}"] = mass.value
            out[name] = column
        for name, (low, high) in self.ranges.items():
            profile = self.profiles[name]
            if name not in out:
                continue
            if profile.kind == "datetime":
                values = pd.to_datetime(out[name], errors="coerce")
                out[name] = values.clip(lower=low, upper=high)
                continue
            values = pd.to_numeric(out[name], errors="coerce")
            masses = [m.value for m in profile.point_masses]
            keep = values.isin(masses)
            clipped = self._into_range(name, values.where(~keep), low, high)
            if profile.integer:
                clipped = clipped.round()
            decoded = clipped.where(~keep, values)
            if name in getattr(self, "logged", ()) and profile.integer and decoded.notna().all():
                decoded = decoded.astype("int64")  # log1p/expm1 went through floats
            out[name] = decoded
        return out


def _long_tailed(quantiles: np.ndarray) -> bool:
    """Non-negative with a long right tail (the 99th percentile 20x the median or more).

    A copula's smooth marginal fits such a column badly: it puts a large share of draws
    near 0 (6.3% of synthetic session durations rounded to exactly 0, where no real value
    holds over 0.4%). On log(1 + x) the same model fits the body and the tail.
    """
    low, median, high = quantiles[0], quantiles[50], quantiles[99]
    return bool(low >= 0 and median > 0 and high >= 20 * median)


class ProfiledSynthesizer:
    """A fitted synthesizer whose samples are decoded by a :class:`ProfileCodec`.

    Exposes the small API the pipeline uses (``sample``, ``save``, ``_set_random_state``),
    so sampling, filters and model saving need not know about the codec.
    """

    def __init__(self, synthesizer: Any, codec: ProfileCodec, rules: Any = None) -> None:
        self.synthesizer = synthesizer
        self.codec = codec
        #: a :class:`~airflow_synth.core.profile.rules.RuleSet` that repairs each sample
        self.rules = rules

    def _finish(self, frame: Any) -> Any:
        decoded = self.codec.decode(frame)
        return self.rules.repair(decoded) if self.rules else decoded

    def sample(self, num_rows: int, **kwargs: Any) -> Any:
        sampled = self.synthesizer.sample(num_rows=num_rows, **kwargs)
        if isinstance(sampled, Mapping):
            return {name: self._finish(frame) for name, frame in sampled.items()}
        return self._finish(sampled)

    def save(self, path: str) -> None:
        """Pickle the model with a decode-only codec (no stand-in pools of real values).

        Reload with :func:`load_model`: its samples come back decoded (masses, NULLs,
        whole numbers, ranges), in the modelled columns; keys and PII are not part of the
        model (the pipeline issues them fresh).
        """
        import cloudpickle

        with open(path, "wb") as handle:
            cloudpickle.dump(self.decode_only(), handle)

    def decode_only(self) -> ProfiledSynthesizer:
        """This model with a codec that can decode but holds no real values (for saving)."""
        codec = copy.copy(self.codec)
        codec._pools = {}  # noqa: SLF001 - real values for encoding only; never saved
        codec.rng = np.random.default_rng(0)
        return ProfiledSynthesizer(self.synthesizer, codec, self.rules)

    def _set_random_state(self, seed: int) -> None:  # SDV's per-model seeding hook
        self.synthesizer._set_random_state(seed)  # noqa: SLF001

    def reseed(self, seed: int) -> None:
        """Sample from ``seed`` on: the model's, the codec's and the rules' draws.

        A shard of a sample starts here, so it draws the same rows whether it runs in the
        task that trained the model or in another task (another worker) that loaded it.
        """
        self._set_random_state(seed)
        self.codec.rng = np.random.default_rng(seed)
        if self.rules is not None and hasattr(self.rules, "rng"):
            self.rules.rng = np.random.default_rng(seed + 1)

    def __getattr__(self, name: str) -> Any:
        if name == "synthesizer":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.synthesizer, name)


def load_model(path: str | Path) -> ProfiledSynthesizer:
    """Load a model saved by a synthesize step (``model.pkl``); ``.sample(n)`` works as SDV's."""
    import cloudpickle

    with open(path, "rb") as handle:
        model = cloudpickle.load(handle)
    if not isinstance(model, ProfiledSynthesizer):
        raise TypeError(f"{path} is not an airflow-synth model")
    return model


__all__ = ["STATE_SUFFIX", "ProfileCodec", "ProfiledSynthesizer", "load_model"]
