"""Dependence preservation: strong relationships kept scores 1, destroyed scores 0."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_synth.core.assess.dependence import MIN_ROWS, cramers_v, dependence_preservation

pytestmark = pytest.mark.unit

KINDS = {"plan": "categorical", "price": "numerical", "churned": "boolean", "noise": "numerical"}


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 3_000
    plan = rng.choice(["free", "basic", "premium"], n, p=[0.5, 0.3, 0.2])
    price = np.select([plan == "free", plan == "basic"], [0.0, 9.0], 29.0) + rng.normal(0, 1, n)
    churned = rng.random(n) < np.where(plan == "free", 0.6, 0.1)
    return pd.DataFrame({"plan": plan, "price": price, "churned": churned, "noise": rng.random(n)})


def test_a_faithful_copy_keeps_every_strong_pair(real: pd.DataFrame) -> None:
    result = dependence_preservation(real, real.sample(frac=1, random_state=1), KINDS)
    assert result["score"] == pytest.approx(1.0)
    pairs = {(p["column_1"], p["column_2"]) for p in result["pairs"]}
    assert ("plan", "price") in pairs and ("plan", "churned") in pairs
    assert not any("noise" in pair for pair in pairs)  # no relationship: not measured


def test_independently_shuffled_columns_lose_them(real: pd.DataFrame) -> None:
    rng = np.random.default_rng(2)
    shuffled = real.apply(lambda c: rng.permutation(c.to_numpy()))
    result = dependence_preservation(real, shuffled, KINDS)
    assert result["score"] < 0.1
    assert result["pairs"][0]["synthetic_strength"] < 0.05


def test_a_half_kept_relationship_scores_in_between(real: pd.DataFrame) -> None:
    rng = np.random.default_rng(3)
    partly = real.copy()
    scramble = rng.random(len(partly)) < 0.5
    partly.loc[scramble, "plan"] = rng.permutation(partly.loc[scramble, "plan"].to_numpy())
    score = dependence_preservation(real, partly, KINDS)["score"]
    assert 0.2 < score < 0.9


def test_no_strong_pair_or_too_few_rows_gives_no_score(real: pd.DataFrame) -> None:
    only_noise = {"noise": "numerical", "churned": "boolean"}
    assert dependence_preservation(real, real, only_noise)["score"] is None
    small = dependence_preservation(real, real.head(MIN_ROWS - 1), KINDS)
    assert small["score"] is None and "fewer than" in small["reason"]


def test_cramers_v_is_one_for_identical_and_near_zero_for_independent() -> None:
    rng = np.random.default_rng(4)
    a = rng.integers(0, 5, 5_000)
    assert cramers_v(a, a) == pytest.approx(1.0)
    assert cramers_v(a, rng.integers(0, 5, 5_000)) < 0.03
    assert cramers_v(a, np.zeros_like(a)) == 0.0
