"""Privacy filters without bias, without misfires, at a cost linear in rows (issue 10).

* A filter that removes rows of one kind more often than others must not shift that kind's
  share: each removed row is replaced by a row of its stratum (a rare group keeps its 3%).
* The outlier filter drops at most ``outlier_max_share`` of a batch, the farthest rows: on
  a table whose columns determine each other (holdout rows sit right next to training
  rows, so the holdout cut-off collapses) it used to drop most rows and fail the run.
* ``privacy.json`` (``filtered``), the task log and the report say how many rows each
  filter removed and how they were replaced.
* The fast path (cached DCRs, witnesses, pattern searches) gives the verdicts exact DCRs
  give, checked against brute force.
"""

from __future__ import annotations

import json
from pathlib import Path

import fake_synthesizers as fakes
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import pairwise_distances

from airflow_synth.core.assess.checks import CheckSettings
from airflow_synth.core.assess.privacy import PrivacyEvaluator, PrivacySettings
from airflow_synth.core.engine.replacement import Strata, match
from airflow_synth.core.engine.synthesizers import SynthesizerSpec, resolve_synthesizer
from airflow_synth.core.steps import run_synthesize

pytestmark = pytest.mark.unit


def stage(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "real.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def run(path: Path, out: Path, spec: SynthesizerSpec, **checks: object) -> dict:
    out.mkdir(parents=True)
    return run_synthesize(
        path,
        out,
        dataset="t",
        spec=spec,
        seed=5,
        checks=CheckSettings.from_mapping(checks),
        enforce_gates_=False,
    )


@pytest.fixture(scope="module")
def prone_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """20,000 rows from a model that pushes half of its rare-group rows far out."""
    folder = tmp_path_factory.mktemp("prone")
    path = stage(folder, fakes.strata(6_000, 1))
    spec = SynthesizerSpec(
        name="outlierprone",
        class_path="fake_synthesizers.OutlierProne",
        params={"source": "strata", "rate": 0.5},
    )
    result = run(path, folder / "out", spec)
    return result, folder / "out"


# -- (a) no bias -------------------------------------------------------------------------------


def test_a_group_the_outlier_filter_hits_keeps_its_share(prone_run) -> None:
    """The rare group is 3% of what the model produces and every row the outlier filter
    removes belongs to it (1.5% of rows are far out). Plain re-sampling published it at
    about 1.5% (every far row dropped) or 2.0% (a capped filter); replacing each removed
    row by one of its stratum keeps it at 3%."""
    result, out = prone_run
    synthetic = pd.read_parquet(out / "synthetic.parquet")
    assert len(synthetic) == result["rows"] == 6_000
    dropped = result["filters"]["outlier"]
    assert dropped >= 40  # the filter did remove rows, all of the rare group
    share = (synthetic["group"] == "rare").mean()
    assert share == pytest.approx(0.03, abs=0.0075)  # 4 standard errors at 6,000 rows
    assert (synthetic["x"] > 5).sum() < 0.5 * (synthetic["group"] == "rare").sum()


def test_strata_keep_the_columns_with_fewest_values_longest() -> None:
    train = pd.DataFrame(
        {
            "booked": [True, False] * 50,
            "country": [f"c{i % 12}" for i in range(100)],
            "age": [None if i % 3 == 0 else float(i) for i in range(100)],
            "spend": [None if i % 3 == 0 else 1.0 for i in range(100)],  # NULL like age
            "id_like": [f"u{i}" for i in range(100)],  # 100 values: not a stratum column
        }
    )
    kinds = {
        "booked": "boolean",
        "country": "categorical",
        "age": "numerical",
        "spend": "numerical",
        "id_like": "categorical",
    }
    strata = Strata.fit(train, kinds)
    assert strata.names() == ["booked", "age", "country"]  # spend repeats age's NULLs
    keys = strata.keys(train)
    assert keys.shape == (100, 4)
    assert len(np.unique(keys[:, 0])) > len(np.unique(keys[:, 1])) > len(np.unique(keys[:, 2]))
    assert len(np.unique(keys[:, 2])) == 2 and len(np.unique(keys[:, 3])) == 1  # booked; any


def test_replacements_match_the_finest_stratum_first() -> None:
    deficit = np.array([[1, 10, 0], [2, 10, 0], [3, 30, 0]], dtype=np.uint64)
    pool = np.array([[9, 30, 0], [2, 10, 0], [8, 10, 0], [7, 40, 0]], dtype=np.uint64)
    same, coarser, anything = match(deficit, pool, [0, 1, 2])
    assert same.tolist() == [[1, 1]]  # row 1's whole stratum is in the pool
    assert sorted(coarser.tolist()) == [[0, 2], [2, 0]]  # rows 0 and 2 on the coarser level
    assert anything.size == 0


# -- (b) no misfire on columns that determine each other ---------------------------------------


@pytest.mark.parametrize("rows", [5_000])
def test_columns_that_determine_each_other_do_not_gut_the_table(tmp_path, rows) -> None:
    """Sequence number, timestamp and ratio are functions of each other: held-out rows sit
    between training rows and the holdout cut-off collapses. The outlier filter dropped
    most rows (40,532 of 50,000) and the run failed; now it takes at most 1% per batch."""
    path = stage(tmp_path, fakes.chained(rows, 3))
    result = run(path, tmp_path / "out", resolve_synthesizer("gaussian_copula"))
    assert result["rows"] == rows
    assert result["filters"]["outlier"] <= 0.011 * rows + 5  # the cap, and the small pools
    failed = {g["metric"] for g in result["gates"] if not g["passed"]}
    assert "filtered_share" not in failed
    privacy = json.loads((tmp_path / "out" / "privacy.json").read_text())
    assert privacy["thresholds"]["outlier_max_share"] == pytest.approx(0.01)
    assert privacy["filtered_share"] < 0.05


def test_the_outlier_filter_drops_at_most_its_share_the_farthest_rows() -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(0, 1, 2_000), "y": rng.normal(0, 1, 2_000)})
    holdout = pd.DataFrame({"x": rng.normal(0, 1, 500), "y": rng.normal(0, 1, 500)})
    kinds = {"x": "numerical", "y": "numerical"}
    synthetic = pd.DataFrame({"x": rng.normal(0, 1, 3_000), "y": rng.normal(0, 1, 3_000)})
    synthetic.loc[:99, "x"] += np.linspace(5, 15, 100)  # 100 rows far out, graded
    ev = PrivacyEvaluator(train, holdout, kinds, settings=PrivacySettings(similarity_filter=False))
    result = ev.filter(synthetic)
    assert result.dropped["outlier"] == 30  # 1% of 3,000, not 100
    enc = ev.encoder
    dcr = pairwise_distances(enc.dense(enc.encode(synthetic)), enc.dense(enc.encode(train)))
    farthest = np.argsort(-dcr.min(axis=1))[:30]
    assert set(np.flatnonzero(result.reasons == "outlier")) == set(farthest.tolist())
    wide = PrivacySettings(similarity_filter=False, outlier_max_share=1.0)
    everything = PrivacyEvaluator(train, holdout, kinds, settings=wide).filter(synthetic)
    assert everything.dropped["outlier"] >= 100  # the cap is the setting


# -- (c) the counts are reported ---------------------------------------------------------------


def test_the_reports_say_how_many_rows_each_filter_replaced(prone_run) -> None:
    result, out = prone_run
    privacy = json.loads((out / "privacy.json").read_text())
    outlier = privacy["filtered"]["outlier"]
    assert outlier["dropped"] == result["filters"]["outlier"]
    parts = ("replaced_same_stratum", "replaced_coarser_stratum", "replaced_any_row")
    assert outlier["replaced"] == sum(outlier[k] for k in parts) > 0
    assert outlier["replaced_same_stratum"] > 0.5 * outlier["replaced"]
    # every removed row of the output was replaced; removed extra rows need no replacement
    assert outlier["replaced"] + outlier["not_replaced"] <= outlier["dropped"]
    assert outlier["not_replaced"] == 0
    assert privacy["replacement"]["strata_columns"] == ["group", "flag", "channel"]
    assert privacy["replacement"]["extra_rows_sampled"] >= outlier["replaced"]
    html = (out / "report.html").read_text()
    assert f"{outlier['replaced']} replaced" in html and "from its stratum" in html


def test_the_task_log_says_how_rows_were_replaced() -> None:
    from airflow_synth.core.assess.fidelity import summary_lines

    filtered = {
        "outlier": {
            "dropped": 12,
            "replaced": 10,
            "replaced_same_stratum": 8,
            "replaced_coarser_stratum": 2,
            "replaced_any_row": 0,
            "not_replaced": 0,
        }
    }
    lines = summary_lines({"score": 0.8}, {"filtered": filtered})
    assert (
        "Filter outlier: dropped 12 rows, replaced 10 (8 from the same stratum, 2 from a "
        "coarser one, 0 by any row)" in lines
    )


# -- the fast path is exact --------------------------------------------------------------------


def mixed(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Numbers with NULLs, categories (some combinations rare), a flag."""
    city = rng.choice(["a", "b", "c", "d", "e"], n, p=[0.4, 0.3, 0.2, 0.07, 0.03])
    plan = rng.choice(["free", "pro", "team"], n, p=[0.7, 0.25, 0.05])
    x = rng.normal(0, 1, n) + (plan == "pro")
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "y": rng.gamma(2, 1, n),
            "city": city,
            "plan": plan,
            "flag": rng.random(n) < 0.3,
        }
    )


KINDS = {
    "x": "numerical",
    "y": "numerical",
    "city": "categorical",
    "plan": "categorical",
    "flag": "boolean",
}


@pytest.mark.parametrize("n", [800, 4_000])
def test_the_fast_filter_gives_the_verdicts_of_exact_distances(n) -> None:
    """Nothing measured before: near copies answered by the pattern tree, outliers by
    witnesses and pattern searches; they must equal the verdicts on exact DCRs."""
    rng = np.random.default_rng(n)
    train, holdout = mixed(rng, 3_000), mixed(rng, 800)
    synthetic = mixed(rng, n)
    synthetic.loc[: n // 20, "x"] += 3.0  # some far rows
    synthetic.loc[n // 20 : n // 10, "city"] = "zz"  # unseen categories: other patterns
    synthetic.loc[n // 10 : n // 10 + 20] = train.iloc[:21].to_numpy()  # exact copies
    near = train.iloc[30:50].assign(y=lambda f: f["y"] + 1e-5)
    synthetic = pd.concat([synthetic, near], ignore_index=True)
    ev = PrivacyEvaluator(train, holdout, KINDS)
    fast = ev.filter(synthetic)
    enc = ev.encoder
    truth = pairwise_distances(enc.dense(enc.encode(synthetic)), enc.dense(enc.encode(train)))
    dcr = truth.min(axis=1)
    np.testing.assert_allclose(
        ev._radius.exact_dcr(enc.encode(synthetic)), dcr, atol=2e-5
    )  # the pattern search alone
    # the verdicts exact DCRs give, with the cut the filter placed
    exact = ev.encoder.encode(synthetic).hashes
    copy = np.isin(exact, ev.encoder.encode(train).hashes)
    similar = copy | (dcr < ev.similarity_threshold)
    beyond = np.flatnonzero(~similar & (dcr > ev.last_outlier_cut))
    beyond = beyond[np.argsort(-dcr[beyond], kind="stable")][: ev.outlier_limit(len(synthetic))]
    assert set(np.flatnonzero(fast.reasons == "similarity")) == set(np.flatnonzero(similar))
    assert set(np.flatnonzero(fast.reasons == "outlier")) == set(beyond.tolist())
    assert fast.dropped["similarity"] >= 40  # copies and near copies
    assert 0 < fast.dropped["outlier"] <= ev.outlier_limit(len(synthetic))


def test_witnesses_are_real_distances_and_settle_most_rows() -> None:
    rng = np.random.default_rng(3)
    train, holdout, synthetic = mixed(rng, 3_000), mixed(rng, 800), mixed(rng, 3_000)
    ev = PrivacyEvaluator(train, holdout, KINDS)
    rows = ev.encoder.encode(synthetic)
    enc = ev.encoder
    dcr = pairwise_distances(enc.dense(rows), enc.dense(enc.encode(train))).min(axis=1)
    radius = float(np.quantile(dcr, 0.99))
    bound = ev._radius.witnesses(rows, radius)
    assert (bound >= dcr - 1e-5).all()  # an upper bound: a training row at that distance
    assert (bound <= radius).mean() > 0.9  # most rows need no exact search
    near = ev._radius.nearer_than(rows, 0.05)
    assert (near == (dcr < 0.05)).all()
