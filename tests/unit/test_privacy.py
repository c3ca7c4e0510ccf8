"""Privacy measurement and filters (airflow_synth.core.assess.privacy and its two helpers).

Each property a user relies on is pinned with a table whose right answer is known: a
"synthesizer" that memorises its training rows must be caught; an independent sample from
the same distribution must look like the holdout (DCR share 0.5) and pass the filters;
impossible rows must be dropped as outliers; id columns, NULL spellings, unseen categories,
datetime units and constant columns must not fool the measurement. The fast neighbour
search is checked against brute force, path by path.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import pairwise_distances

import airflow_synth.core.assess.privacy_neighbours as neighbours
from airflow_synth.core.assess.privacy import (
    PrivacyConfigError,
    PrivacyEvaluator,
    PrivacySettings,
)
from airflow_synth.core.assess.privacy_encoding import ONE_HOT_SCALE, TableEncoder
from airflow_synth.core.assess.privacy_neighbours import NeighbourIndex, Segment
from airflow_synth.core.errors import DataError

pytestmark = pytest.mark.unit

KINDS = {
    "age": "numerical",
    "income": "numerical",
    "city": "categorical",
    "plan": "categorical",
    "active": "boolean",
    "signup": "datetime",
}
REPORT_KEYS = {
    "rows",
    "exact_match_rate",
    "exact_match_rate_holdout",
    "exact_match_rate_holdout_to_train",
    "exact_match_rate_real_repeats",
    "near_copy_rate",
    "near_copy_rate_expected",
    "near_copy_reason",
    "dcr_share",
    "dcr_share_ci95",
    "dcr_share_sample",
    "dcr_share_full_train",
    "dcr_share_full_train_expected",
    "dcr",
    "nndr",
    "thresholds",
    "filtered",
    "encoding",
    "columns_used",
    "columns_excluded",
    "seconds",
    "seconds_setup",
}


def users(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """A small mixed table with correlations, NULLs and one id column."""
    plan = rng.choice(["free", "pro", "team"], n, p=[0.6, 0.3, 0.1])
    age = np.round(rng.normal(38, 11, n).clip(18, 90))
    age[rng.random(n) < 0.1] = np.nan
    income = np.round(rng.lognormal(10 + 0.3 * (plan != "free"), 0.5), 2)
    city = rng.choice(["berlin", "paris", "rome", "oslo", "lima", None], n)
    active = pd.array(rng.random(n) < 0.7, dtype="boolean")
    active[rng.random(n) < 0.05] = pd.NA
    signup = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 730 * 86400, n), "s")
    signup = pd.Series(signup).where(rng.random(n) >= 0.05)
    return pd.DataFrame(
        {
            "id": [f"u{v}" for v in rng.integers(0, 10**12, n)],
            "age": age,
            "income": income,
            "city": city,
            "plan": plan,
            "active": active,
            "signup": signup.astype("datetime64[ns]"),
        }
    )


def split(seed: int = 1, train: int = 3000, holdout: int = 1000, synthetic: int = 3000):
    """Train, holdout and an independent "synthetic" sample from one generator."""
    rng = np.random.default_rng(seed)
    return users(rng, train), users(rng, holdout), users(rng, synthetic)


def evaluator(train, holdout, **kwargs) -> PrivacyEvaluator:
    return PrivacyEvaluator(train, holdout, KINDS, exclude=["id"], **kwargs)


def without_timing(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("seconds", "seconds_setup")}


@pytest.fixture(scope="module")
def data():
    return split()


@pytest.fixture(scope="module")
def fitted(data):
    train, holdout, _ = data
    return evaluator(train, holdout)


# -- the headline behaviours ----------------------------------------------------------------


def test_memorising_synthesizer_is_caught_and_filtered():
    train, holdout, _ = split(train=1500, holdout=1500)
    ev = evaluator(train, holdout)
    copies = train.sample(frac=1.0, random_state=3).assign(id=lambda f: f["id"] + "-new")
    result, report = ev.evaluate(copies)
    full = ev.report(copies)
    assert full["exact_match_rate"] == 1.0
    assert full["dcr_share"] >= 0.99 and full["dcr_share_sample"] >= 0.99
    assert full["nndr"]["median"] == 0.0
    assert full["dcr"]["synthetic_to_train"]["median"] == 0.0
    assert result.dropped == {"similarity": len(copies), "outlier": 0}
    assert result.kept.empty and list(result.kept.columns) == list(copies.columns)
    assert report["filtered"] == {"rows_before": 1500, "similarity": 1500, "outlier": 0}
    assert report["rows"]["synthetic"] == 0


def test_memorising_with_a_larger_training_set_scores_as_documented():
    train, holdout, _ = split(train=4000, holdout=1000)
    report = evaluator(train, holdout).report(train)
    # Only the sampled quarter of the copies is closer to the sample: 0.5 + 0.5 * 1/4.
    assert report["dcr_share_sample"] == pytest.approx(0.625, abs=0.03)
    # the normalised share sees every copy
    assert report["dcr_share"] == 1.0 and report["dcr_share_ci95"][0] > 0.99
    assert report["rows"]["train_sample"] == 1000
    # Against the whole training set every copy is closer: 1.0, where fresh rows score 0.8.
    assert report["dcr_share_full_train"] == 1.0
    assert report["dcr_share_full_train_expected"] == 0.8


def test_independent_sample_looks_like_the_holdout(data, fitted):
    _, _, synthetic = data
    result, report = fitted.evaluate(synthetic)
    full = fitted.report(synthetic)
    assert full["exact_match_rate"] == 0.0
    assert full["exact_match_rate_holdout"] == 0.0
    assert full["exact_match_rate_holdout_to_train"] == 0.0
    assert abs(full["dcr_share"] - 0.5) <= 0.05
    low, high = full["dcr_share_ci95"]
    assert low < full["dcr_share"] < high and low < 0.5 < high
    assert abs(full["dcr_share_sample"] - 0.5) <= 0.05
    assert full["dcr_share_full_train_expected"] == 0.75  # 3000 / (3000 + 1000)
    assert abs(full["dcr_share_full_train"] - 0.75) <= 0.05
    assert 0.3 < full["nndr"]["median"] < 1.0
    syn, hold = full["dcr"]["synthetic_to_train"], full["dcr"]["holdout_to_train"]
    assert syn["median"] == pytest.approx(hold["median"], rel=0.25)
    # The filters cut at the 1% and 99.5% holdout quantiles: a few percent at most.
    assert result.dropped["similarity"] <= 0.03 * len(synthetic)
    assert result.dropped["outlier"] <= 0.03 * len(synthetic)
    assert len(result.kept) == len(synthetic) - sum(result.dropped.values())
    assert report["rows"]["synthetic"] == len(result.kept)


def test_exact_matches_of_coarse_tables_are_judged_against_fresh_real_rows():
    rng = np.random.default_rng(8)

    def coarse(n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {"plan": rng.choice(["free", "pro", "team"], n), "seats": rng.integers(1, 6, n)}
        )

    train, holdout, synthetic = coarse(2000), coarse(500), coarse(2000)
    ev = PrivacyEvaluator(train, holdout, {"plan": "categorical", "seats": "numerical"})
    report = ev.report(synthetic)
    keys = {tuple(r) for r in train.itertuples(index=False)}
    real_rate = np.mean([tuple(r) in keys for r in holdout.itertuples(index=False)])
    assert report["exact_match_rate_holdout_to_train"] == pytest.approx(real_rate)
    assert report["exact_match_rate"] == report["exact_match_rate_holdout_to_train"] == 1.0
    assert report["dcr_share"] == 0.5  # every distance is 0 on both sides: all ties


def test_rows_far_outside_the_data_are_dropped_as_outliers(data, fitted):
    _, _, synthetic = data
    weird = synthetic.head(20).assign(age=10_000.0)
    weird.loc[weird.index[:5], "income"] = float("inf")
    mixed = pd.concat([synthetic, weird], ignore_index=True)
    result = fitted.filter(mixed)
    assert result.dropped["outlier"] >= 20
    assert not (result.kept["age"] == 10_000).any()
    assert result.dropped["outlier"] <= 20 + 0.03 * len(synthetic)
    kept_all = evaluator(*data[:2], settings=PrivacySettings(outlier_filter=False)).filter(mixed)
    assert kept_all.dropped["outlier"] == 0
    assert (kept_all.kept["age"] == 10_000).sum() == 20


def test_similarity_filter_can_be_turned_off():
    train, holdout, _ = split(train=800, holdout=800)
    ev = evaluator(train, holdout, settings=PrivacySettings(similarity_filter=False))
    result = ev.filter(train.head(100))
    assert result.dropped["similarity"] == 0
    assert len(result.kept) + result.dropped["outlier"] == 100


def test_near_copies_are_dropped_even_when_not_identical(data, fitted):
    train = data[0]
    nudged = train.head(50).assign(income=lambda f: f["income"] + 0.01)  # not exact copies
    report = fitted.report(nudged)
    assert report["exact_match_rate"] == 0.0
    assert report["dcr"]["synthetic_to_train"]["median"] < report["thresholds"]["similarity_dcr"]
    assert fitted.filter(nudged).dropped["similarity"] == 50


# -- what must not fool the measurement -----------------------------------------------------


def test_excluded_id_columns_do_not_influence_anything(data):
    train, holdout, synthetic = data
    with_ids = evaluator(train, holdout).report(synthetic)
    no_ids = PrivacyEvaluator(train.drop(columns="id"), holdout.drop(columns="id"), KINDS)
    other_ids = synthetic.assign(id="same-for-everyone")
    assert without_timing(no_ids.report(synthetic.drop(columns="id"))) == {
        **without_timing(with_ids),
        "columns_excluded": [],
    }
    assert without_timing(evaluator(train, holdout).report(other_ids)) == without_timing(with_ids)
    assert with_ids["columns_excluded"] == ["id"] and "id" not in with_ids["columns_used"]
    # An id-only difference is still an exact copy.
    copies = train.head(10).assign(id=[f"fresh{i}" for i in range(10)])
    assert evaluator(train, holdout).report(copies)["exact_match_rate"] == 1.0


def test_null_equals_null_whatever_its_spelling(data, fitted):
    train = data[0]
    nulls = train[["age", "city", "active", "signup"]].isna()
    rows = train[nulls.any(axis=1)].head(40)
    assert nulls.loc[rows.index].all(axis=0).sum() == 0 and nulls.loc[rows.index].any().all()
    respelled = pd.DataFrame(
        {
            "id": rows["id"],
            "age": rows["age"].astype(object).where(rows["age"].notna(), None),
            "income": rows["income"],
            "city": rows["city"].astype(object).where(rows["city"].notna(), np.nan),
            "plan": rows["plan"].astype("category"),
            "active": rows["active"].astype(object).where(rows["active"].notna(), None),
            "signup": rows["signup"].astype(object).where(rows["signup"].notna(), None),
        }
    )
    report = fitted.report(respelled)
    assert report["exact_match_rate"] == 1.0
    assert report["dcr"]["synthetic_to_train"]["median"] == 0.0
    # NaN has many bit patterns (0 * inf gives a negative one on x86): all are NULL.
    age = rows["age"].to_numpy(dtype=np.float64, copy=True)
    age[np.isnan(age)] = np.copysign(np.nan, -1.0)
    assert fitted.report(rows.assign(age=age))["exact_match_rate"] == 1.0
    # A value where the real row has NULL is a difference of at least the indicator's 1.
    filled = rows.assign(age=40.0)
    assert fitted.report(filled)["dcr"]["synthetic_to_train"]["p5"] > 0.0


def test_categories_unseen_in_training_are_other():
    train = pd.DataFrame({"colour": ["red", "blue", "green"] * 100, "n": np.arange(300.0)})
    kinds = {"colour": "categorical", "n": "numerical"}
    ev = PrivacyEvaluator(train, train.sample(100, random_state=0), kinds)
    unseen = train.head(5).assign(colour="ultraviolet")
    report = ev.report(unseen)
    assert report["exact_match_rate"] == 0.0
    # Same number, category mismatch: one-hot columns at 1/sqrt(2) make that exactly 1.
    assert report["dcr"]["synthetic_to_train"]["median"] == pytest.approx(1.0, abs=1e-6)
    enc = report["encoding"]["columns"]["colour"]
    assert enc["categories_one_hot"] == 3 and enc["dimensions"] == 5  # + other + NULL


def test_rare_categories_fold_into_other_but_still_count_for_exact_matches():
    train = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["c", "d", "e"] * 5, "x": 1.0})
    ev = PrivacyEvaluator(
        train, train.head(20), {"c": "categorical", "x": "numerical"},
        settings=PrivacySettings(max_categories=2),
    )  # fmt: skip
    enc = ev.report(train.head(1))["encoding"]["columns"]["c"]
    assert enc["categories_one_hot"] == 2 and enc["other_in_training"] is True
    assert ev.report(pd.DataFrame({"c": ["zz"], "x": [1.0]}))["exact_match_rate"] == 0.0
    assert ev.report(pd.DataFrame({"c": ["d"], "x": [1.0]}))["exact_match_rate"] == 1.0
    # "zz" and "d" both encode as other: distance 0 to the real "d" rows.
    assert ev.report(pd.DataFrame({"c": ["zz"], "x": [1.0]}))["dcr"]["synthetic_to_train"][
        "median"
    ] == pytest.approx(0.0)


def test_datetimes_in_any_unit_or_zone_compare_as_instants():
    days = pd.to_datetime(["2020-01-01", "2020-02-20", "2020-04-10"])  # a 100-day span
    train = pd.DataFrame({"t": days.astype("datetime64[ns]")})
    ev = PrivacyEvaluator(train, train, {"t": "datetime"})
    as_us = pd.DataFrame({"t": days.astype("datetime64[us]")})
    as_utc = pd.DataFrame({"t": days.tz_localize("UTC").tz_convert("Asia/Tokyo")})
    as_text = pd.DataFrame({"t": ["2020-01-01", "2020-02-20", "2020-04-10"]})
    for frame in (as_us, as_utc, as_text):
        assert ev.report(frame)["exact_match_rate"] == 1.0
    one_day_later = pd.DataFrame({"t": [pd.Timestamp("2020-01-02")]})
    report = ev.report(one_day_later)
    assert report["exact_match_rate"] == 0.0
    assert report["dcr"]["synthetic_to_train"]["median"] == pytest.approx(0.01, rel=1e-4)
    assert report["encoding"]["columns"]["t"]["unit"] == "epoch seconds"


def test_a_constant_column_costs_nothing_until_it_changes():
    rng = np.random.default_rng(5)
    train = pd.DataFrame({"x": rng.random(500), "k": 7, "flag": True})
    kinds = {"x": "numerical", "k": "numerical", "flag": "boolean"}
    ev = PrivacyEvaluator(train, train.head(100), kinds)
    same = ev.report(train.head(10))
    assert same["exact_match_rate"] == 1.0 and same["dcr"]["synthetic_to_train"]["mean"] == 0.0
    changed = ev.report(train.head(10).assign(k=8))
    assert changed["dcr"]["synthetic_to_train"]["median"] == pytest.approx(1.0, abs=1e-6)
    assert "constant" in changed["encoding"]["columns"]["k"]["scaling"]
    flipped = ev.report(train.head(10).assign(flag=False))
    assert flipped["dcr"]["synthetic_to_train"]["median"] == pytest.approx(1.0, abs=1e-6)


def test_empty_synthetic_frame(fitted, data):
    empty = data[2].head(0)
    result, report = fitted.evaluate(empty)
    assert result.kept.empty and result.dropped == {"similarity": 0, "outlier": 0}
    alone = fitted.report(empty)
    assert alone["rows"]["synthetic"] == 0
    assert alone["exact_match_rate"] is None and alone["dcr_share"] is None
    assert alone["dcr"]["synthetic_to_train"] == {"p5": None, "median": None, "mean": None}
    assert alone["dcr"]["holdout_to_train"]["median"] > 0
    json.dumps(report, allow_nan=False)


def test_ties_in_dcr_share_count_half(data):
    train, _, synthetic = data
    # Holdout == training set (same size, so the sample is all of it): every row is exactly
    # as close to the training sample as to the holdout.
    report = evaluator(train, train.copy()).report(synthetic)
    assert report["dcr_share"] == 0.5
    assert report["exact_match_rate_holdout"] == report["exact_match_rate"] == 0.0


def test_same_seed_same_report_and_the_seed_picks_the_sample():
    train, holdout, _ = split(seed=2, train=2000, holdout=500, synthetic=0)
    a = without_timing(evaluator(train, holdout, seed=7).report(train))
    b = without_timing(evaluator(train, holdout, seed=7).report(train))
    assert a == b
    shares = {evaluator(train, holdout, seed=s).report(train)["dcr_share_sample"] for s in range(4)}
    assert len(shares) > 1  # the training sample behind dcr_share depends on the seed


# -- report shape, settings, errors ---------------------------------------------------------


def test_report_is_json_safe_with_stable_keys(fitted, data):
    report = fitted.report(data[2])
    assert set(report) == REPORT_KEYS
    assert set(report["rows"]) == {"train", "holdout", "synthetic", "train_sample"}
    assert set(report["dcr"]) == {"synthetic_to_train", "holdout_to_train"}
    assert set(report["nndr"]) == {"median", "p5"}
    assert report["filtered"] is None
    text = json.dumps(report, allow_nan=False)
    # The encoding description publishes no real value: no category, no range.
    for secret in ("berlin", "lima", "free", "2021", "18.0"):
        assert secret not in json.dumps(report["encoding"])
    assert json.loads(text)["rows"]["train"] == 3000


def test_measure_then_filter_then_report_searches_once(monkeypatch, data):
    """The pipeline measures each raw batch, then filters it: the filter reuses those
    measurements, and reports on measured rows search nothing again."""
    train, holdout, synthetic = data
    ev = evaluator(train, holdout)
    calls = []
    original = ev._index.query
    monkeypatch.setattr(ev._index, "query", lambda *a, **k: calls.append(1) or original(*a, **k))
    ev.measure(synthetic)
    result = ev.filter(synthetic)
    ev.report(synthetic)
    ev.report(result.kept)  # a subset of the measured rows: still cached
    assert len(calls) == 1
    ev.report(synthetic.assign(age=synthetic["age"] + 1))
    assert len(calls) == 2


def test_batches_then_the_final_table_search_each_row_once(data):
    """The pipeline measures and filters batch by batch, then reports on all rows kept."""
    train, holdout, synthetic = data
    ev = evaluator(train, holdout)
    first, second = synthetic.iloc[:1800], synthetic.iloc[1800:]
    kept = []
    for batch in (first, second):
        ev.measure(batch)
        kept.append(ev.filter(batch).kept)
    assert ev._index.last_stats["queries"] == len(second)  # only the new rows
    final = pd.concat(kept, ignore_index=True)
    fresh = evaluator(train, holdout).report(final)
    queries_before = ev._index.last_stats
    cached = ev.report(final)
    assert ev._index.last_stats is queries_before  # no search at all
    assert without_timing(cached) == without_timing(fresh)
    # Half known, half new: only the new half is searched, results still exact.
    changed = first.head(300).assign(income=1.0)
    partial = ev.report(pd.concat([first.head(300), changed], ignore_index=True))
    distinct_new = len(changed.drop(columns="id").drop_duplicates())
    assert ev._index.last_stats["queries"] == distinct_new
    mixed = pd.concat([first.head(300), changed], ignore_index=True)
    assert without_timing(partial) == without_timing(evaluator(train, holdout).report(mixed))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"similarity_quantile": -0.1},
        {"outlier_quantile": 1.5},
        {"similarity_quantile": 0.5, "outlier_quantile": 0.4},
        {"max_categories": 0},
    ],
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(PrivacyConfigError):
        PrivacySettings(**kwargs)


def test_bad_inputs_name_what_to_fix(data):
    train, holdout, synthetic = data
    with pytest.raises(DataError, match="no kind"):
        PrivacyEvaluator(train, holdout, KINDS)  # id neither typed nor excluded
    with pytest.raises(DataError, match="exclude"):
        PrivacyEvaluator(train, holdout, {**KINDS, "id": "id"})
    with pytest.raises(DataError, match="holdout"):
        evaluator(train, holdout.head(0))
    with pytest.raises(DataError, match="income"):
        evaluator(train, holdout).report(synthetic.drop(columns="income"))


# -- the encoding and the neighbour search --------------------------------------------------


def test_encoding_matches_its_description():
    train = pd.DataFrame(
        {
            "n": [0.0, 10.0, 5.0, np.nan],
            "c": ["a", "b", "a", None],
            "b": [True, False, True, None],
        }
    )
    enc = TableEncoder(train, {"n": "numerical", "c": "categorical", "b": "boolean"})
    rows = enc.encode(pd.DataFrame({"n": [2.5, np.nan, 1e300], "c": ["b", "zz", None],
                                    "b": [False, None, True]}))  # fmt: skip
    dense = enc.dense(rows)
    s = ONE_HOT_SCALE
    expected = [
        # n scaled | n null | c: a, b, other, NULL | b: value, null
        [0.25, 0, 0, s, 0, 0, 0, 0],
        [0.5, 1, 0, 0, s, 0, 1, 1],  # NULL n -> median 5 -> 0.5; NULL bool -> median 1
        [11.0, 0, 0, 0, 0, s, 1, 0],  # clipped at 1 + RANGE_MARGIN
    ]
    assert enc.dimensions == 8
    np.testing.assert_allclose(dense, np.array(expected, dtype=np.float32), atol=1e-6)


@pytest.mark.parametrize("dense_min", [1, 16_384, 10**9])
@pytest.mark.parametrize("max_level", [0, 1, 4])
def test_neighbour_search_is_exact(monkeypatch, dense_min, max_level):
    monkeypatch.setattr(neighbours, "_DENSE_MIN_PAIRS", dense_min)
    monkeypatch.setattr(neighbours, "_PAIR_CHUNK", 4096)  # many chunks
    rng = np.random.default_rng(max_level + dense_min % 97)
    train, holdout, synthetic = split(seed=int(rng.integers(100)), train=1200, holdout=400)
    synthetic = pd.concat([synthetic.head(800), train.head(50)], ignore_index=True)
    enc = TableEncoder(train, KINDS, max_categories=4)
    ref = enc.encode(pd.concat([train, holdout], ignore_index=True))
    query = enc.encode(synthetic)
    index = NeighbourIndex(ref, [g.embedding for g in enc.groups], max_level=max_level)
    segments = [Segment(0, 1200, 2), Segment(0, 400, 1), Segment(1200, 1600, 1)]
    found = index.query(query, segments)
    truth = pairwise_distances(enc.dense(query).astype(np.float64), enc.dense(ref).astype(float))
    for seg, got in zip(segments, found, strict=True):
        want = np.sort(truth[:, seg.start : seg.stop], axis=1)[:, : seg.k]
        np.testing.assert_allclose(got.distances, want, atol=2e-5)
        picked = truth[np.arange(len(truth))[:, None], got.indices]
        np.testing.assert_allclose(picked, want, atol=2e-5)
    assert np.all(found[0].distances[-50:, 0] == 0.0)  # copies: exactly 0, not ~1e-4


@pytest.mark.parametrize("kd_dims", [0, 6])
def test_neighbour_search_is_exact_for_numbers_only(monkeypatch, kd_dims):
    """One big pattern: answered by cache-sized GEMM tiles, or by a k-d tree."""
    monkeypatch.setattr(neighbours, "_KDTREE_MAX_DIMS", kd_dims)
    monkeypatch.setattr(neighbours, "_KDTREE_MIN_ROWS", 100)
    monkeypatch.setattr(neighbours, "_TILE_ROWS", 64)  # many tiles, ragged edges
    monkeypatch.setattr(neighbours, "_TILE_COLS", 300)
    rng = np.random.default_rng(11)
    frame = pd.DataFrame(rng.normal(size=(3000, 3)) @ rng.normal(size=(3, 3)), columns=list("abc"))
    frame.loc[rng.random(3000) < 0.02, "a"] = np.nan
    enc = TableEncoder(frame.head(2000), dict.fromkeys("abc", "numerical"))
    ref, query = enc.encode(frame.head(2500)), enc.encode(frame.tail(700))  # 200 copies
    index = NeighbourIndex(ref, [g.embedding for g in enc.groups])
    segments = [Segment(0, 2000, 2), Segment(0, 500, 1), Segment(2000, 2500, 1)]
    found = index.query(query, segments)
    assert ("kdtree" in index.last_stats) == bool(kd_dims)
    truth = pairwise_distances(enc.dense(query).astype(np.float64), enc.dense(ref).astype(float))
    for seg, got in zip(segments, found, strict=True):
        want = np.sort(truth[:, seg.start : seg.stop], axis=1)[:, : seg.k]
        np.testing.assert_allclose(got.distances, want, atol=2e-5)


def test_report_statistics_match_brute_force(data, fitted):
    train, holdout, synthetic = data
    enc = fitted.encoder
    dense = {name: enc.dense(enc.encode(f)).astype(np.float64) for name, f in
             (("train", train), ("holdout", holdout), ("syn", synthetic))}  # fmt: skip
    to_train = pairwise_distances(dense["syn"], dense["train"])
    nearest2 = np.sort(to_train, axis=1)[:, :2]
    hold_dcr = pairwise_distances(dense["holdout"], dense["train"]).min(axis=1)
    report = fitted.report(synthetic)
    syn = report["dcr"]["synthetic_to_train"]
    assert syn["median"] == pytest.approx(np.median(nearest2[:, 0]), abs=1e-5)
    assert syn["mean"] == pytest.approx(nearest2[:, 0].mean(), abs=1e-5)
    assert report["dcr"]["holdout_to_train"]["p5"] == pytest.approx(
        np.percentile(hold_dcr, 5), abs=1e-5
    )
    nndr = np.where(nearest2[:, 1] > 0, nearest2[:, 0] / nearest2[:, 1], 0.0)
    assert report["nndr"]["median"] == pytest.approx(np.median(nndr), abs=1e-4)
    threshold = np.quantile(hold_dcr, 0.995)
    assert report["thresholds"]["outlier_dcr"] == pytest.approx(threshold, abs=1e-5)
    assert fitted.filter(synthetic).dropped["outlier"] == int((nearest2[:, 0] > threshold).sum())
    assert math.isfinite(report["dcr_share"])


def test_far_future_dates_in_microseconds_stay_in_the_future():
    days = pd.to_datetime(["2020-01-01", "2020-04-10"]).astype("datetime64[ns]")
    enc = TableEncoder(pd.DataFrame({"t": days}), {"t": "datetime"})
    sentinel = pd.DataFrame({"t": np.array(["9999-12-31", "2020-01-01"], dtype="datetime64[us]")})
    # Cast to [ns], 9999-12-31 would wrap to 1816 and clip to the bottom instead of the top.
    np.testing.assert_allclose(enc.encode(sentinel).cont[:, 0], [11.0, 0.0])


# -- issue 9: raw-sample measurements, the shared exact-copy rule, near copies --------------


def test_measurement_sample_is_bounded_and_uniform(data, fitted):
    from airflow_synth.core.assess.privacy import MeasurementSample

    _, _, synthetic = data
    sample = MeasurementSample(max_rows=1_000, seed=1)
    for start in range(0, 3_000, 700):  # uneven batches
        sample.add(fitted.measure(synthetic.iloc[start : start + 700]))
    assert sample.seen == 3_000 and sample.rows.dcr.size == 1_000
    whole = fitted.report(synthetic)
    kept = fitted.report_measured(sample.rows)
    assert kept["rows"]["synthetic"] == 1_000
    assert kept["dcr_share"] == pytest.approx(whole["dcr_share"], abs=0.06)
    with pytest.raises(PrivacyConfigError):
        MeasurementSample(max_rows=0)


def test_near_copies_are_counted_against_what_real_rows_score(data, fitted):
    train, _, synthetic = data
    clean = fitted.report(synthetic)
    assert clean["near_copy_rate"] <= 0.005
    assert clean["near_copy_rate_expected"] == pytest.approx(
        1 / (fitted.near_copy_reference + 1), abs=1e-6
    )
    assert fitted.near_copy_reference > 1_000  # held-out rows plus training gaps
    near = train.head(300).assign(income=lambda f: f["income"] + 0.01)
    mixed = pd.concat([synthetic.head(2_700), near], ignore_index=True)
    assert fitted.report(mixed)["near_copy_rate"] == pytest.approx(0.1, abs=0.005)
    assert fitted.report(train.head(300))["near_copy_rate"] == 0.0  # exact: the other gate


def test_one_rule_decides_whether_exact_copies_are_memorisation():
    """Single- and multi-table alike: exact copies are filtered only where real rows do
    not repeat each other more often than the exact-match limit."""
    from sdv.metadata import Metadata

    from airflow_synth.core.assess.assessment import SyntheticAssessor
    from airflow_synth.core.assess.checks import CheckSettings
    from airflow_synth.core.engine.holdout import split_holdout

    rng = np.random.default_rng(3)
    coarse = pd.DataFrame(
        {"plan": rng.choice(["free", "pro", "team"], 1_000), "seats": rng.integers(1, 4, 1_000)}
    )
    metadata = Metadata.detect_from_dataframes({"t": coarse})
    metadata.update_column("seats", table_name="t", sdtype="numerical")
    metadata.update_column("plan", table_name="t", sdtype="categorical")
    train, holdout = split_holdout(coarse, 0.2, seed=1)
    assessor = SyntheticAssessor(train, holdout, metadata, "t", CheckSettings())
    assert assessor.real_repeat_rate > 0.9 and not assessor.copies_are_evidence
    copies = train.head(200)
    assert assessor.row_filter(copies).shape[0] == 200  # a coarse table's copies stay
    strict = SyntheticAssessor(train, holdout, metadata, "t", CheckSettings(), seed=1)
    strict.privacy.drop_exact_copies = True
    assert strict.row_filter(copies).empty


def test_sample_to_parquet_shows_every_raw_batch_even_without_filters(tmp_path):
    import pyarrow as pa

    from airflow_synth.core.engine.sampling import sample_to_parquet

    class Batches:
        def sample(self, num_rows: int) -> dict:
            return {"t": pd.DataFrame({"x": np.arange(num_rows, dtype="float64")})}

    seen: list[int] = []
    schema = pa.schema([("x", pa.float64())])
    rows, _ = sample_to_parquet(
        Batches(),
        10,
        schema,
        tmp_path / "s.parquet",
        "t",
        batch_rows=4,
        observe=lambda b: seen.append(len(b)),
    )
    assert rows == 10 and seen == [4, 4, 2]
    seen.clear()
    rows, _ = sample_to_parquet(  # the filters drop everything: observed, then stopped
        Batches(),
        10,
        schema,
        tmp_path / "t.parquet",
        "t",
        batch_rows=4,
        observe=lambda b: seen.append(len(b)),
        row_filter=lambda b: b.iloc[0:0],
    )
    assert rows == 0 and seen == [4, 4]  # 8 of 10 wanted dropped: over half


def test_assess_reports_pii_leaks_and_roles_in_both_files(tmp_path):
    from sdv.metadata import Metadata

    from airflow_synth.core.assess.assessment import SyntheticAssessor
    from airflow_synth.core.assess.checks import CheckSettings
    from airflow_synth.core.engine.holdout import split_holdout

    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"x": rng.normal(size=400), "y": rng.choice(["a", "b"], 400)})
    metadata = Metadata.detect_from_dataframes({"t": frame})
    train, holdout = split_holdout(frame, 0.2, seed=1)
    roles = [
        {"name": "email", "role": "pii", "kind": "email", "reason": "detected by name"},
        {"name": "x", "role": "modelled", "kind": "auto", "reason": "learned"},
        {"name": "y", "role": "modelled", "kind": "auto", "reason": "learned"},
    ]
    off = CheckSettings.from_mapping(
        {
            "min_quality": None,
            "min_dependence": None,
            "max_exact_match_rate": None,
            "max_near_copy_rate": None,
            "max_dcr_share": None,
        }
    )
    synthetic = frame.sample(300, random_state=1).assign(x=lambda f: f["x"] + 1)

    def gate(folder: str, **kwargs) -> tuple[dict, dict]:
        assessor = SyntheticAssessor(train, holdout, metadata, "t", off)
        out = tmp_path / folder
        out.mkdir()
        result = assessor.assess(synthetic, out, {}, "t", roles=roles, **kwargs)
        verdict = next(g for g in result.gates if g.metric == "pii_leak")
        quality = json.loads((out / "quality.json").read_text())
        privacy = json.loads((out / "privacy.json").read_text())
        assert quality["pii_leak"] == privacy["pii_leak"]
        assert quality["columns_roles"] == roles
        return verdict, quality["pii_leak"]

    verdict, leak = gate("clean", fresh_leaks={"email": 0})
    assert verdict.passed and leak["values"] == 0 and not verdict.waived
    verdict, leak = gate("leaky", fresh_leaks={"email": 7})
    assert not verdict.passed and leak == {
        "values": 7,
        "columns": {"email": 7},
        "fresh_columns": ["email"],
    }
    verdict, leak = gate("unchecked")  # email is generated fresh, nobody counted: fail closed
    assert not verdict.passed and leak["values"] is None and "email" in leak["reason"]


def test_a_full_measurement_sample_measures_only_rows_that_can_enter(data, fitted):
    from airflow_synth.core.assess.privacy import MeasurementSample

    _, _, synthetic = data
    sample = MeasurementSample(max_rows=500, seed=2)
    measured = 0
    for start in range(0, 3_000, 500):
        batch = synthetic.iloc[start : start + 500]
        positions, keys = sample.select(len(batch))
        measured += positions.size
        sample.add(fitted.measure(batch.iloc[positions]), keys)
    assert sample.seen == 3_000 and sample.rows.dcr.size == 500
    # batch k (k >= 2) can only place keys below the 500th smallest of 500(k-1):
    # 500 + 500 * (1 + 1/2 + 1/3 + 1/4 + 1/5) ~ 1,642 expected, not 3,000
    assert measured < 1_900
