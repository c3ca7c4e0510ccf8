"""Fidelity report (airflow_synth.core.assess.fidelity) and the HTML report (core.report_html).

One real table of 2,000 customers with known relationships (income follows age, risk
follows income, segment follows age, active follows tenure), scored against a
GaussianCopula copy, a copy with every column shuffled on its own (marginals kept, every
relationship destroyed) and a copy with one column collapsed to a constant.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sdv.single_table import GaussianCopulaSynthesizer

from airflow_synth.core.assess.fidelity import column_kinds, fidelity_report, summary_lines
from airflow_synth.core.assess.report_html import (
    OTHER_RARE,
    category_shares,
    histogram,
    render_report,
)
from airflow_synth.core.contract import parse_contract
from airflow_synth.core.engine.metadata import build_metadata

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

TABLE = "customers"
N = 2000
SCRIPT = "<script>alert(1)</script>"
RARE = "Atlantis"
SCORED = ["age", "income", "tenure_days", "risk", "signup", "segment", "region", "active"]
TOP_KEYS = {
    "score",
    "properties",
    "columns",
    "worst_columns",
    "pairs",
    "columns_not_scored",
    "diagnostic",
    "rows_evaluated",
    "seconds",
}


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    age = rng.integers(18, 80, N)
    income = (age * 900 + rng.normal(0, 6000, N)).round(2)
    tenure = rng.integers(0, 2000, N)
    regions = np.array(["north", "south", "east", "west", SCRIPT])
    region = regions[rng.choice(5, N, p=[0.4, 0.3, 0.15, 0.1, 0.05])]
    region[rng.choice(N, 3, replace=False)] = RARE  # held by 3 real rows: must stay hidden
    return pd.DataFrame(
        {
            "customer_id": [f"cust-{i:05d}" for i in range(N)],
            "email": [f"person{i}@example.org" for i in range(N)],
            "age": age,
            "income": income,
            "tenure_days": tenure,
            "risk": (1 - income / income.max() + rng.normal(0, 0.05, N)).round(4),
            "signup": pd.Timestamp("2020-01-01") + pd.to_timedelta(2000 - tenure, unit="D"),
            "segment": np.where(age < 30, "young", np.where(age < 55, "middle", "senior")),
            "region": region,
            "active": tenure + rng.normal(0, 300, N) > 800,
        }
    ).astype({"signup": "datetime64[ns]"})


@pytest.fixture(scope="module")
def metadata(real: pd.DataFrame) -> Any:
    contract = parse_contract(
        {
            "columns": [
                {"name": "customer_id", "type": "string", "sdtype": "id"},
                {"name": "email", "type": "string", "sdtype": "email", "pii": True},
                {"name": "age", "type": "integer"},
                {"name": "income", "type": "float"},
                {"name": "tenure_days", "type": "integer"},
                {"name": "risk", "type": "float"},
                {"name": "signup", "type": "timestamp"},
                {"name": "segment", "type": "string", "sdtype": "categorical"},
                {"name": "region", "type": "string", "sdtype": "categorical"},
                {"name": "active", "type": "boolean", "sdtype": "boolean"},
            ],
            "primary_key": "customer_id",
        }
    )
    # keys and PII never reach build_metadata (they are generated fresh); a metadata that
    # names them (as multi-table metadata names keys) must still leave them unscored
    metadata = build_metadata(real.drop(columns=["customer_id", "email"]), TABLE, contract)
    metadata.add_column("customer_id", table_name=TABLE, sdtype="id")
    metadata.set_primary_key("customer_id", table_name=TABLE)
    metadata.add_column("email", table_name=TABLE, sdtype="email", pii=True)
    return metadata


@pytest.fixture(scope="module")
def good(real: pd.DataFrame, metadata: Any) -> pd.DataFrame:
    synthesizer = GaussianCopulaSynthesizer(metadata)
    synthesizer.fit({TABLE: real})
    return synthesizer.sample(N)[TABLE]


@pytest.fixture(scope="module")
def shuffled(good: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({c: rng.permutation(good[c].to_numpy()) for c in good.columns})


@pytest.fixture(scope="module")
def collapsed(good: pd.DataFrame, real: pd.DataFrame) -> pd.DataFrame:
    return good.assign(income=float(real["income"].median()))


@pytest.fixture(scope="module")
def reports(
    real: pd.DataFrame,
    metadata: Any,
    good: pd.DataFrame,
    shuffled: pd.DataFrame,
    collapsed: pd.DataFrame,
) -> dict[str, dict[str, Any]]:
    frames = {"good": good, "shuffled": shuffled, "collapsed": collapsed}
    return {name: fidelity_report(real, f, metadata, TABLE) for name, f in frames.items()}


def by_column(report: dict[str, Any]) -> dict[str, float]:
    return {c["column"]: c["score"] for c in report["columns"]}


# --------------------------------------------------------------------------------------------
# fidelity_report
# --------------------------------------------------------------------------------------------
def test_report_has_stable_json_safe_keys(reports: dict[str, dict[str, Any]]) -> None:
    for report in reports.values():
        assert set(report) >= TOP_KEYS
        json.dumps(report, allow_nan=False)  # raises on NaN/inf
        assert 0 <= report["score"] <= 1
        assert set(report["properties"]) == {"column_shapes", "column_pair_trends"}
        assert {"score", "data_validity", "data_structure", "columns"} <= set(report["diagnostic"])
        assert report["rows_evaluated"]["real"] == report["rows_evaluated"]["synthetic"] == N
        assert report["seconds"] > 0
    good = reports["good"]
    assert good["diagnostic"]["data_validity"] == 1.0
    assert good["diagnostic"]["data_structure"] == 1.0
    assert {c["column"] for c in good["columns"]} == set(SCORED)


def test_every_pair_is_scored_and_averaged(reports: dict[str, dict[str, Any]]) -> None:
    good = reports["good"]
    assert good["columns_not_scored"] == ["customer_id", "email"]
    pairs = {frozenset((p["column_1"], p["column_2"])) for p in good["pairs"]}
    assert len(good["pairs"]) == len(SCORED) * (len(SCORED) - 1) // 2 == 28
    assert pairs == {frozenset(p) for p in itertools.combinations(SCORED, 2)}
    scores = [p["score"] for p in good["pairs"]]
    assert all(s is not None for s in scores)
    # sdmetrics' defaults would average only the few strongly correlated pairs
    assert good["properties"]["column_pair_trends"] == pytest.approx(np.mean(scores), abs=1e-5)
    assert scores == sorted(scores)  # worst first
    numeric = next(p for p in good["pairs"] if {p["column_1"], p["column_2"]} == {"age", "income"})
    assert numeric["metric"] == "CorrelationSimilarity"
    assert numeric["real_correlation"] > 0.6


def test_good_copy_beats_independently_shuffled_columns(
    reports: dict[str, dict[str, Any]],
) -> None:
    good, shuffled = reports["good"], reports["shuffled"]
    # same marginals, so only the pair trends can tell them apart
    assert shuffled["properties"]["column_shapes"] == pytest.approx(
        good["properties"]["column_shapes"], abs=1e-6
    )
    assert (
        good["properties"]["column_pair_trends"]
        > shuffled["properties"]["column_pair_trends"] + 0.05
    )
    assert good["score"] > shuffled["score"]


def test_collapsed_column_is_named_worst(reports: dict[str, dict[str, Any]]) -> None:
    good, collapsed = reports["good"], reports["collapsed"]
    assert collapsed["worst_columns"][0] == "income"
    assert collapsed["columns"][0]["column"] == "income"
    # a constant at the median: the CDFs differ by 0.5 there, so KS complement <= 0.5
    assert by_column(collapsed)["income"] <= 0.5 < 0.8 < by_column(good)["income"]
    assert len(collapsed["worst_columns"]) == 5
    column_scores = [c["score"] for c in collapsed["columns"]]
    assert column_scores == sorted(column_scores)
    assert good["score"] > collapsed["score"] + 0.03


def test_a_column_left_empty_scores_zero(
    real: pd.DataFrame, metadata: Any, good: pd.DataFrame, reports: dict[str, dict[str, Any]]
) -> None:
    # SDV's metric is NaN for it and its average would skip it, raising the score
    report = fidelity_report(real, good.assign(region=None), metadata, TABLE)
    assert report["columns_empty_in_synthetic"] == ["region"]
    assert report["columns"][0] == {"column": "region", "metric": "TVComplement", "score": 0.0}
    assert report["properties"]["column_shapes"] < reports["good"]["properties"]["column_shapes"]
    assert report["score"] < reports["good"]["score"]
    assert "Empty in the synthetic table (scored 0): region" in summary_lines(
        report, None, None, None
    )
    json.dumps(report, allow_nan=False)


def test_one_scored_column_gives_null_pair_trends(real: pd.DataFrame, metadata: Any) -> None:
    frame = real[["customer_id", "age"]]
    small = build_metadata(frame[["age"]], TABLE)
    small.add_column("customer_id", table_name=TABLE, sdtype="id")
    report = fidelity_report(frame, frame.sample(frac=1, random_state=0), small, TABLE)
    json.dumps(report, allow_nan=False)
    assert report["pairs"] == []
    assert report["properties"]["column_pair_trends"] is None
    assert report["score"] == pytest.approx(report["properties"]["column_shapes"])


def test_large_tables_are_subsampled_with_a_seed(
    real: pd.DataFrame, metadata: Any, good: pd.DataFrame
) -> None:
    first = fidelity_report(real, good, metadata, TABLE, max_rows=500, seed=3)
    again = fidelity_report(real, good, metadata, TABLE, max_rows=500, seed=3)
    other = fidelity_report(real, good, metadata, TABLE, max_rows=500, seed=4)
    assert first["rows_evaluated"] == {
        "real": 500,
        "synthetic": 500,
        "real_total": N,
        "synthetic_total": N,
        "subsampled": True,
    }
    assert first["score"] == again["score"]
    assert first["score"] != other["score"]


def test_column_kinds_follow_the_metadata(metadata: Any) -> None:
    assert column_kinds(metadata, TABLE) == {
        "customer_id": "id",
        "email": "pii",
        "age": "numerical",
        "income": "numerical",
        "tenure_days": "numerical",
        "risk": "numerical",
        "signup": "datetime",
        "segment": "categorical",
        "region": "categorical",
        "active": "boolean",
    }
    with pytest.raises(ValueError, match="not in the metadata"):
        column_kinds(metadata, "nope")


PRIVACY = {"exact_match_rate": 0.0, "dcr_share": 0.64, "nndr": {"median": 0.81}}
FILTERS = {"similarity": {"dropped": 12}, "outlier": 3}
GATES = [
    {"metric": "quality_score", "value": 0.93, "threshold": 0.7, "kind": "min", "passed": True},
    {"metric": "dcr_share", "value": 0.64, "threshold": 0.6, "kind": "max", "passed": False},
    {
        "metric": "dependence_preservation",
        "value": None,
        "threshold": None,
        "kind": "min",
        "passed": True,
        "waived": True,
        "reason": "fewer than 300 rows",
    },
]


def test_summary_lines_name_worst_columns_filters_and_gates(
    reports: dict[str, dict[str, Any]],
) -> None:
    lines = summary_lines(reports["collapsed"], PRIVACY, FILTERS, GATES)
    text = "\n".join(lines)
    assert lines[0].startswith(f"Quality {reports['collapsed']['score']:.4f}")
    assert "Worst columns: income 0." in text
    assert "DCR share 0.6400" in text and "NNDR median 0.8100" in text
    assert "Filter similarity: dropped 12 rows" in text
    assert "Filter outlier: dropped 3 rows" in text
    assert "PASS quality_score 0.9300 >= 0.7" in lines
    assert "FAIL dcr_share 0.6400 <= 0.6" in lines
    assert summary_lines(reports["good"], None, None, None)[-1].startswith("Not scored")
    # the privacy report's own filter counts are used when no filters are given
    from_privacy = summary_lines(reports["good"], {**PRIVACY, "filtered": {"outlier": 4}}, None)
    assert "Filter outlier: dropped 4 rows" in from_privacy


# --------------------------------------------------------------------------------------------
# render_report
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def page(
    reports: dict[str, dict[str, Any]], real: pd.DataFrame, good: pd.DataFrame, metadata: Any
) -> str:
    return render_report(
        quality=reports["good"],
        privacy=PRIVACY,
        settings={
            "dataset": "customers_features",
            "run": "manual__2026-11-21",
            "synthesizer": "gaussian_copula",
            "parameters": {"default_distribution": "beta"},
            "seed": 42,
            "rows": N,
        },
        real=real,
        synthetic=good,
        kinds=column_kinds(metadata, TABLE),
        title="customers <synthetic>",
        gates=GATES,
        filters=FILTERS,
    )


def test_page_is_one_self_contained_document(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    assert page.count("<svg") == len(SCORED)  # one plot per compared column
    assert page.count("</svg>") == len(SCORED)
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "url(" not in page and "@import" not in page
    assert "Content-Security-Policy" in page
    assert len(page.encode("utf-8")) < 2_000_000
    for section in ("verdict", "fidelity", "distributions", "correlations", "privacy", "settings"):
        assert f'id="{section}"' in page


def test_page_escapes_user_values(page: str) -> None:
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the category, as a bar label
    assert "customers &lt;synthetic&gt;" in page


def test_page_shows_no_real_identifiers_or_rare_categories(page: str, real: pd.DataFrame) -> None:
    assert RARE not in page
    assert OTHER_RARE in page
    assert "cust-" not in page
    assert not any(value in page for value in real["customer_id"])
    assert "@example.org" not in page
    assert "Not compared: customer_id, email (id / PII columns" in page


def test_page_states_verdict_privacy_and_settings(page: str) -> None:
    assert "FAIL: 1 of 2 gates missed" in page  # a waived gate is not counted as checked
    assert "Waived by the settings of this run (not checked): dependence_preservation" in page
    assert '<td class="none">WAIVED</td><td>dependence_preservation</td>' in page
    assert "fewer than 300 rows" in page and "&lt;= n/a" not in page
    assert "DCR share" in page and "0.640" in page
    assert "exact-match rate" in page and "NNDR (median)" in page
    assert "similarity filter" in page and "12 rows" in page
    assert "default_distribution" in page and "gaussian_copula" in page
    assert "Pearson r" in page and "Cramér" in page


def test_histogram_never_reaches_the_real_extremes(real: pd.DataFrame, good: pd.DataFrame) -> None:
    agg = histogram(real["income"], good["income"], "numerical")
    assert real["income"].min() < agg["edges"][0] < agg["edges"][-1] < real["income"].max()
    assert sum(agg["real"]) == pytest.approx(1.0)
    assert sum(agg["synthetic"]) == pytest.approx(1.0)  # edge bins hold the tails
    ages = histogram(real["age"], good["age"], "numerical")
    assert ages["step"] >= 1 and all(e % 1 == 0.5 for e in ages["edges"])
    dates = histogram(real["signup"], good["signup"], "datetime")
    assert dates["date_only"] and sum(dates["real"]) == pytest.approx(1.0)


def test_category_shares_pool_rare_values() -> None:
    real = pd.Series(["a"] * 10 + ["b"] * 5 + ["c"] * 4 + [None] * 2)
    synthetic = pd.Series(["a"] * 5 + ["c"] * 3 + ["z"] * 2)
    rows = {label: (r, s) for label, r, s in category_shares(real, synthetic)}
    assert set(rows) == {"a", "b", OTHER_RARE, "(missing)"}
    assert rows[OTHER_RARE] == pytest.approx((4 / 21, 5 / 10))  # c and the unseen z
    assert sum(r for r, _ in rows.values()) == pytest.approx(1.0)
    top = category_shares(real, synthetic, top=1)
    assert [label for label, _, _ in top] == ["a", "other", OTHER_RARE, "(missing)"]


def test_render_rejects_unknown_kinds(real: pd.DataFrame, good: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown column kinds"):
        render_report(
            quality={},
            privacy=None,
            settings={},
            real=real,
            synthetic=good,
            kinds={"age": "number"},
            title="t",
        )
