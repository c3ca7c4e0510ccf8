"""Fail closed: deliberately bad synthesizers are caught, and a gate failure publishes nothing.

A memorising synthesizer must be caught by every privacy gate (and, with the filters on,
by the filters themselves); one that shuffles columns independently must be caught by the
quality gates. GaussianCopula on the same data passes them all.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fake_synthesizers import customers

from airflow_synth.core.assess.checks import (
    CheckSettings,
    GateVerdict,
    enforce_gates,
    evaluate_gates,
    holdout_shortfall,
    wilson_interval,
)
from airflow_synth.core.assess.privacy import PrivacyEvaluator
from airflow_synth.core.engine.holdout import split_holdout
from airflow_synth.core.engine.synthesizers import SynthesizerSpec, resolve_synthesizer
from airflow_synth.core.errors import DataError, QualityGateError, SynthesizerConfigError
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.core.publish.store import FileObjectStore
from airflow_synth.core.steps import run_synthesize
from airflow_synth.demo.generate import generate_users

pytestmark = pytest.mark.unit

OFF = {
    "min_quality": None,
    "min_dependence": None,
    "max_exact_match_rate": None,
    "max_dcr_share": None,
}
NO_FILTERS = {"similarity_filter": False, "outlier_filter": False}


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    """A real-looking feature table with strong relationships (booked <-> destination...)."""
    users = generate_users(1_200, seed=5)
    frame = users[
        [
            "id",
            "gender",
            "age",
            "signup_method",
            "language",
            "date_account_created",
            "country_destination",
        ]
    ].copy()
    frame["booked"] = frame["country_destination"] != "NDF"
    frame["date_account_created"] = pd.to_datetime(frame["date_account_created"])
    path = tmp_path_factory.mktemp("staged") / "real.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def fake(name: str) -> SynthesizerSpec:
    return SynthesizerSpec(name=name.lower(), class_path=f"fake_synthesizers.{name}")


def synthesize(staged: Path, tmp_path: Path, spec: SynthesizerSpec, checks: dict):
    store = FileObjectStore(tmp_path / "bucket")
    layout = DatasetLayout("synthetic", "users", "run1")
    out = tmp_path / "out"
    out.mkdir()
    result = run_synthesize(
        staged,
        out,
        dataset="users",
        spec=spec,
        seed=3,
        save_model=True,
        layout=layout,
        checks=CheckSettings.from_mapping(checks),
    )
    return result, store


@pytest.fixture(scope="module")
def customers_staged(tmp_path_factory) -> Path:
    """A table whose relationships a Gaussian copula can keep (age -> income -> plan)."""
    path = tmp_path_factory.mktemp("customers") / "real.parquet"
    frame = customers(1_200, 11)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def test_gaussian_copula_passes_every_default_gate(customers_staged, tmp_path) -> None:
    # (On the users table GaussianCopula keeps 0.09-0.27 of the strong relationships,
    # depending on the split, around the 0.25 gate: that table tells nothing here.)
    result, store = synthesize(
        customers_staged, tmp_path, resolve_synthesizer("gaussian_copula"), {}
    )
    assert [g["metric"] for g in result["gates"]] == [
        "quality_score",
        "dependence_preservation",
        "exact_match_rate",
        "near_copy_rate",
        "dcr_share",
        "filtered_share",
        "rules_held",
        "pii_leak",
    ]
    assert all(g["passed"] and not g["waived"] for g in result["gates"])
    assert result["holdout_rows"] == 240 and result["training_rows"] == 960
    # rows the filters removed were replaced: the requested count (as extracted) is reached
    assert result["rows"] == 1_200 and set(result["filters"]) == {"similarity", "outlier"}
    assert Path(result["model_files"]["model.pkl"].removeprefix("file://")).is_file()  # saved


def test_memoriser_is_refused_with_its_reports_when_the_filters_drop_everything(
    customers_staged, tmp_path
) -> None:
    """The filters remove every copy; sampling stops (it would never end) and the run is
    refused by the gates, reports written, instead of an error that explains nothing."""
    with pytest.raises(QualityGateError, match="FAIL filtered_share = 1.0000") as failure:
        synthesize(customers_staged, tmp_path, fake("Memoriser"), {})
    assert "FAIL exact_match_rate = 1.0000" in str(failure.value)
    assert "privacy.json" in failure.value.reports
    assert not list(tmp_path.rglob("model.pkl"))  # no model saved


@pytest.mark.parametrize("gate", ["max_exact_match_rate", "max_dcr_share"])
def test_every_privacy_gate_alone_catches_the_memoriser(staged, tmp_path, gate) -> None:
    checks = {**OFF, **NO_FILTERS, gate: CheckSettings().__getattribute__(gate)}
    metric = gate.removeprefix("max_")
    with pytest.raises(QualityGateError, match=rf"FAIL {metric} = (1\.0000|0\.9)") as failure:
        synthesize(staged, tmp_path, fake("Memoriser"), checks)
    assert "nothing was published" in str(failure.value)
    assert not list(tmp_path.rglob("model.pkl"))  # no model saved, so none published


def test_the_quality_gate_catches_independently_shuffled_columns(staged, tmp_path) -> None:
    with pytest.raises(QualityGateError, match="FAIL dependence_preservation") as failure:
        synthesize(staged, tmp_path, fake("Shuffler"), {})
    # SDV's own quality score does not see it: that is why dependence preservation exists
    assert "quality_score" not in str(failure.value)


def test_pii_columns_are_generated_fresh(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 400
    frame = pd.DataFrame(
        {
            "email": [f"person{i}@example.org" for i in range(n)],
            "phone_number": [f"+1-555-{i:04d}" for i in range(n)],
            "customer_code": [f"CUST-{i:05d}" for i in rng.permutation(n)],
            "plan": rng.choice(["free", "basic", "premium"], n),
            "spend": rng.gamma(2.0, 30.0, n).round(2),
        }
    )
    path = tmp_path / "real.parquet"
    pq.write_table(pa.Table.from_pandas(frame), path)
    out = tmp_path / "out"
    out.mkdir()
    result = run_synthesize(
        path,
        out,
        dataset="customers",
        spec=resolve_synthesizer("gaussian_copula"),
        seed=1,
        checks=CheckSettings.from_mapping({"min_dependence": None}),
    )
    synthetic = pq.read_table(result["synthetic_uri"].removeprefix("file://")).to_pandas()
    for column in ("email", "phone_number", "customer_code"):
        assert synthetic[column].notna().all()
        assert not set(synthetic[column]) & set(frame[column]), f"real {column} replayed"
    assert set(synthetic["plan"]) <= {"free", "basic", "premium"}  # categories are learned


# --- the pieces -------------------------------------------------------------------------------
def test_settings_validate_names_and_values() -> None:
    settings = CheckSettings.from_mapping(
        {
            "holdout_share": "0.3",
            "outlier_filter": "false",
            "min_quality": "",
            "max_dcr_share": 0.55,
        }
    )
    assert (settings.holdout_share, settings.outlier_filter) == (0.3, False)
    assert settings.min_quality is None and settings.max_dcr_share == 0.55
    with pytest.raises(SynthesizerConfigError, match="Did you mean 'max_dcr_share'"):
        CheckSettings.from_mapping({"max_dcr": 0.5})
    with pytest.raises(SynthesizerConfigError, match="holdout_share"):
        CheckSettings.from_mapping({"holdout_share": 1.0})
    with pytest.raises(SynthesizerConfigError, match="true or false"):
        CheckSettings.from_mapping({"similarity_filter": "maybe"})


def test_holdout_split_is_seeded_and_disjoint() -> None:
    frame = pd.DataFrame({"x": range(100)})
    train, holdout = split_holdout(frame, 0.2, seed=4)
    again, _ = split_holdout(frame, 0.2, seed=4)
    assert len(holdout) == 20 and len(train) == 80
    assert not set(train.x) & set(holdout.x)
    assert train.x.tolist() == again.x.tolist()
    assert split_holdout(frame, 0.2, seed=5)[0].x.tolist() != train.x.tolist()
    assert len(split_holdout(frame, 0, seed=4)[1]) == 0


def test_holdout_split_keeps_duplicated_rows_on_one_side() -> None:
    """Issue 9: split by row, 3% duplicated rows landed on both sides, the near-copy
    cut-off became 0 and none of 500 near copies was dropped."""
    base = customers(2_000, 2)
    duplicated = pd.concat([base, base.sample(60, random_state=1)], ignore_index=True)
    duplicated.insert(0, "id", range(len(duplicated)))  # fresh ids: not a measured column
    measured = [c for c in duplicated.columns if c != "id"]
    train, holdout = split_holdout(duplicated, 0.2, seed=3, columns=measured)
    assert len(holdout) == pytest.approx(0.2 * len(duplicated), abs=2)
    keys = set(map(tuple, train[measured].astype(str).to_numpy()))
    assert not any(tuple(r) in keys for r in holdout[measured].astype(str).to_numpy())
    # with the id among the columns, each row is its own group: duplicates may split
    train_all, holdout_all = split_holdout(duplicated, 0.2, seed=3)
    keys = set(map(tuple, train_all[measured].astype(str).to_numpy()))
    assert any(tuple(r) in keys for r in holdout_all[measured].astype(str).to_numpy())

    kinds = {
        "age": "numerical",
        "income": "numerical",
        "plan": "categorical",
        "country": "categorical",
        "spend": "numerical",
        "active": "boolean",
        "signup": "datetime",
    }
    evaluator = PrivacyEvaluator(train[measured], holdout[measured], kinds)
    near = train[measured].sample(500, random_state=2).assign(income=lambda f: f.income + 0.01)
    assert evaluator.similarity_threshold > 0
    assert evaluator.filter(near).dropped["similarity"] == 500


def dcr_gate(share: float, n: int, low: float) -> GateVerdict:
    quality = {"score": 0.9, "dependence": {"score": 0.8}}
    privacy = {
        "exact_match_rate": 0.0,
        "near_copy_rate": 0.0,
        "dcr_share": share,
        "dcr_share_ci95": [low, min(1.0, 2 * share - low)],
        "rows": {"synthetic": n},
    }
    gates = evaluate_gates(CheckSettings(), quality, privacy)
    return next(v for v in gates if v.metric == "dcr_share")


def test_the_dcr_gate_judges_the_value_an_interval_never_excuses_a_miss() -> None:
    """Issue 9: 22 near copies (share 1.0, lower bound 0.589) and 1,000 rows with 35%
    near copies (0.630, lower bound 0.586) passed because only the lower bound counted."""
    for share, n, low in ((1.0, 22, 0.589), (0.63, 1_000, 0.586), (0.625, 40, 0.47)):
        gate = dcr_gate(share, n, low)
        assert not gate.passed and gate.interval == (low, min(1.0, 2 * share - low))
    assert dcr_gate(0.55, 40, 0.4).passed and dcr_gate(0.6, 1_000, 0.57).passed
    assert wilson_interval(0.625, 5_000)[0] > 0.6  # the interval is still reported


def test_unmeasurable_scores_fail_closed_with_the_reason_unless_waived() -> None:
    quality = {
        "score": 0.9,
        "dependence": {"score": None, "reason": "fewer than 300 rows on a side"},
    }
    verdicts = {v.metric: v for v in evaluate_gates(CheckSettings(), quality, None)}
    assert {m: v.passed for m, v in verdicts.items()} == {
        "quality_score": True,
        "dependence_preservation": False,
        "exact_match_rate": False,
        "near_copy_rate": False,
        "dcr_share": False,
        "filtered_share": True,
    }
    text = verdicts["dependence_preservation"].describe()
    assert "could not be measured: fewer than 300 rows" in text
    assert "checks={'min_dependence': None}" in text
    assert "no held-out rows" in verdicts["dcr_share"].describe()

    waived = CheckSettings.from_mapping({"min_dependence": None, "max_dcr_share": None})
    verdicts = {v.metric: v for v in evaluate_gates(waived, quality, None)}
    for metric in ("dependence_preservation", "dcr_share"):
        assert verdicts[metric].passed and verdicts[metric].waived
        assert verdicts[metric].describe().startswith(f"WAIVED {metric}")
    assert not verdicts["exact_match_rate"].passed  # only what was waived


def test_a_table_too_small_to_hold_out_says_so() -> None:
    frame = pd.DataFrame({"x": [1.0]})
    train, holdout = split_holdout(frame, 0.2, seed=1)
    assert len(train) == 1 and holdout.empty
    why = holdout_shortfall(1, 0.2)
    assert "only 1 real row(s)" in why and "10 rows" in why
    assert "holdout_share is 0" in holdout_shortfall(500, 0.0)


def test_the_pii_leak_gate_cannot_be_waived_and_fails_when_unchecked() -> None:
    off = CheckSettings.from_mapping(OFF)
    quality = {"score": None, "dependence": {"score": None}}

    def gate(leak: dict) -> GateVerdict:
        return next(
            v for v in evaluate_gates(off, quality, None, pii_leak=leak) if v.metric == "pii_leak"
        )

    assert gate({"values": 0, "columns": {"email": 0}}).passed
    assert not gate({"values": 3, "columns": {"email": 3}}).passed
    unchecked = gate({"values": None, "reason": "columns generated fresh but not checked"})
    assert not unchecked.passed and not unchecked.waived
    assert "not checked" in unchecked.describe()


def test_gate_failure_message_names_metric_value_and_threshold() -> None:
    verdicts = [GateVerdict("quality_score", 0.61, 0.7, "min", False)]
    with pytest.raises(QualityGateError, match=r"FAIL quality_score = 0\.6100 \(must be >= 0\.7\)"):
        enforce_gates(verdicts, where="Dataset 'users'")


def test_exact_match_gate_allows_the_rate_at_which_real_rows_repeat() -> None:
    """On coarse tables unseen real rows equal training rows often; the gate allows that much."""
    settings = CheckSettings()
    quality = {"score": 0.9, "dependence": {"score": 0.5}}

    def verdict(rate: float, repeats: float | None, train: int = 1000) -> GateVerdict:
        privacy = {
            "exact_match_rate": rate,
            "near_copy_rate": 0.0,
            "dcr_share": 0.5,
            "rows": {"synthetic": 1000, "train": train},
        }
        if repeats is not None:
            privacy["exact_match_rate_real_repeats"] = repeats
        gates = evaluate_gates(settings, quality, privacy)
        return next(g for g in gates if g.metric == "exact_match_rate")

    assert not verdict(0.05, None).passed  # no yardstick: the plain 1% applies
    # real rows repeat at 16%: allowed that plus the noise of two rates of 1,000 rows each
    noise = 3.0902 * math.sqrt(0.16 * 0.84 * (1 / 1000 + 1 / 1000))
    assert verdict(0.16, 0.16).passed
    assert verdict(0.16, 0.16).threshold == pytest.approx(0.16 + noise, abs=1e-4)
    assert not verdict(0.3, 0.16).passed  # far more copies than real rows produce
    assert verdict(0.005, 0.001).threshold == 0.01  # never stricter than the setting


@pytest.mark.parametrize("train", [8, 80, 200])
def test_without_real_repeats_the_exact_match_limit_is_the_setting(train: int) -> None:
    """Issue 9: the limit was the 95% upper bound of 0 of 2 / 20 / 50 held-out rows:
    65.8% / 16.1% / 7.1%, so a 100-row table passed with 15% exact copies."""
    privacy = {
        "exact_match_rate": 0.15,
        "exact_match_rate_real_repeats": 0.0,
        "exact_match_rate_holdout_to_train": 0.0,
        "near_copy_rate": 0.0,
        "dcr_share": 0.5,
        "rows": {"synthetic": 100, "train": train, "holdout": train // 4},
    }
    quality = {"score": 0.9, "dependence": {"score": 0.5}}
    gate = next(
        g
        for g in evaluate_gates(CheckSettings(), quality, privacy)
        if g.metric == "exact_match_rate"
    )
    assert gate.threshold == 0.01 and not gate.passed


def test_a_100_row_table_with_15pct_exact_copies_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "real.parquet"
    pq.write_table(pa.Table.from_pandas(customers(100, 4), preserve_index=False), path)
    checks = {"min_dependence": None, **NO_FILTERS}
    with pytest.raises(
        QualityGateError, match=r"FAIL exact_match_rate = 0\.1\d+ \(must be <= 0\.01\)"
    ):
        synthesize(
            path,
            tmp_path,
            SynthesizerSpec(
                name="memoriser", class_path="fake_synthesizers.Memoriser", params={"rate": 0.15}
            ),
            checks,
        )


def test_a_one_row_table_is_refused_before_training_saying_nothing_could_be_held_out(
    tmp_path: Path,
) -> None:
    """Not a failed gate with "n/a" and advice to train more epochs after the model was
    fitted: the row count, the minimum and the settings, before any training."""
    path = tmp_path / "real.parquet"
    pq.write_table(pa.Table.from_pandas(customers(1, 1), preserve_index=False), path)
    faithful = SynthesizerSpec(name="faithful", class_path="fake_synthesizers.Faithful")
    with pytest.raises(DataError) as refused:
        synthesize(path, tmp_path, faithful, {"min_dependence": None})
    message = str(refused.value)
    assert message.startswith("Table 'users' is too small to train and hold out")
    assert (
        "table 'users': 1 real row; the privacy gates (exact_match_rate, near_copy_rate, "
        "dcr_share) compare with rows the model never saw" in message
    )
    assert "at holdout_share=0.2 at least 10 rows are needed to hold any out" in message
    assert "dependence" not in message  # waived: not a reason
    assert (
        "checks={'max_exact_match_rate': None, 'max_near_copy_rate': None, "
        "'max_dcr_share': None}" in message
    )
    assert "Nothing was trained." in message and "epochs" not in message
    assert not list(tmp_path.rglob("*.json"))  # no report: nothing ran


@pytest.mark.parametrize(
    ("rows", "share", "refused"),
    [(9, 0.2, True), (10, 0.2, False), (10, 0.05, True), (11, 0.05, False), (25, 0.02, True)],
)
def test_the_holdout_minimum_follows_holdout_share(
    tmp_path: Path, rows: int, share: float, refused: bool
) -> None:
    """10 rows at 20% (2 held out); at 5% 11 rows, at 2% 26 (the holdout's size is
    rounded half to even: 0.5 rows is none)."""
    path = tmp_path / "real.parquet"
    pq.write_table(pa.Table.from_pandas(customers(rows, 1), preserve_index=False), path)
    faithful = SynthesizerSpec(name="faithful", class_path="fake_synthesizers.Faithful")
    checks = {"min_dependence": None, "min_quality": None, "holdout_share": share}
    if refused:
        with pytest.raises(DataError, match=f"{rows} real rows; the privacy gates"):
            synthesize(path, tmp_path, faithful, checks)
    else:
        with contextlib.suppress(QualityGateError):  # trained and judged: a tiny table may
            synthesize(path, tmp_path, faithful, checks)  # fail a gate, but it got that far
