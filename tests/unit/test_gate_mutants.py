"""Tests that pin down decisions which mutation testing (``make mutants``) showed loose.

Each test says which decision it fixes: a mutant of that line (a flipped comparison, an
``and`` for an ``or``, a changed constant, a dropped argument) must turn one of these red.
They call the decision functions directly with hand-made numbers, so they run in
milliseconds for each of the hundreds of mutants.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_synth.core.assess.checks import (
    CheckSettings,
    GateVerdict,
    enforce_gates,
    evaluate_gates,
    exact_match_limit,
    near_copy_limit,
    verdict,
    wilson_interval,
)
from airflow_synth.core.assess.privacy import (
    PrivacyEvaluator,
    PrivacySettings,
    _closer,
    _dcr_shares,
    normalise_share,
)
from airflow_synth.core.assess.set_quality import check_integrity
from airflow_synth.core.errors import PublishError, QualityGateError
from airflow_synth.core.publish import store as publish_module
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.core.publish.store import FileObjectStore, publish_dataset
from airflow_synth.core.relations import TableSet, TableShape, build_table_set

pytestmark = pytest.mark.unit


# --- wilson_interval ---------------------------------------------------------------------------
def test_wilson_interval_brackets_the_share_and_narrows_with_more_trials() -> None:
    low, high = wilson_interval(0.3, 100)
    assert low == pytest.approx(0.2189, abs=1e-4) and high == pytest.approx(0.3958, abs=1e-4)
    wide = wilson_interval(0.3, 10)
    assert wide[0] < low and wide[1] > high
    assert wilson_interval(0.5, 0) == (0.0, 1.0)
    assert wilson_interval(0.0, 5)[0] == 0.0 and wilson_interval(1.0, 5)[1] == 1.0


def test_wilson_interval_of_a_single_trial_is_an_interval_not_everything() -> None:
    """``n <= 0`` -> (0, 1); one trial already says something (not ``n <= 1``)."""
    low, high = wilson_interval(1.0, 1)
    assert low == pytest.approx(0.2065, abs=1e-3) and high == 1.0


# --- one gate's verdict -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "threshold", "kind", "passed"),
    [
        (0.7, 0.7, "min", True),  # on the limit passes: >=, not >
        (0.69, 0.7, "min", False),
        (0.9, 0.7, "min", True),  # a "min" gate is not judged as a "max" one
        (0.6, 0.6, "max", True),  # <=, not <
        (0.61, 0.6, "max", False),
        (0.1, 0.6, "max", True),
        ("0.65", 0.6, "max", False),  # rendered text is read as a number
        (0, 0.0, "max", True),  # a zero value is a value, not "not measured"
    ],
)
def test_the_value_decides_against_the_threshold(value, threshold, kind, passed) -> None:
    got = verdict("m", value, threshold, kind, missing="gone", note="set", interval=(0.1, 0.2))
    assert got == GateVerdict(
        "m", float(value), float(threshold), kind, passed, (0.1, 0.2), False, "set"
    )


@pytest.mark.parametrize("value", [None, float("nan")])
def test_a_missing_value_fails_closed_and_says_why(value) -> None:
    got = verdict("m", value, 0.5, "min", missing="too few rows", note="n", interval=(0.0, 1.0))
    assert got == GateVerdict("m", None, 0.5, "min", False, (0.0, 1.0), False, "too few rows")


@pytest.mark.parametrize(("value", "reason"), [(None, "why"), (0.99, "how")])
def test_a_gate_without_threshold_is_waived_and_says_so(value, reason) -> None:
    got = verdict("m", value, None, "max", missing="why", note="how", interval=(0.1, 0.2))
    assert got == GateVerdict("m", value, None, "max", True, (0.1, 0.2), True, reason)


# --- every gate, from the run's measurements -----------------------------------------------------
QUALITY = {"score": 0.8, "dependence": {"score": 0.5}}
PRIVACY = {
    "exact_match_rate": 0.004,
    "exact_match_rate_real_repeats": 0.0,
    "near_copy_rate": 0.02,
    "near_copy_rate_expected": 1 / 81,
    "dcr_share": 0.55,
    "dcr_share_ci95": [0.5, 0.6],
    "rows": {"train": 800, "synthetic": 300},
    "filtered_share": 0.1,
}


def test_every_gate_reads_its_own_measurement_threshold_and_direction() -> None:
    gates = evaluate_gates(DEFAULTS, QUALITY, PRIVACY, pii_leak={"values": 0})
    assert gates == [
        GateVerdict("quality_score", 0.8, 0.7, "min", True),
        GateVerdict("dependence_preservation", 0.5, 0.25, "min", True),
        GateVerdict("exact_match_rate", 0.004, 0.01, "max", True),
        GateVerdict(
            "near_copy_rate",
            0.02,
            0.093333,
            "max",
            True,
            reason="unseen real rows score 0.0123; limit = that + noise at 300 rows",
        ),
        GateVerdict("dcr_share", 0.55, 0.6, "max", True, interval=(0.5, 0.6)),
        GateVerdict("filtered_share", 0.1, 0.5, "max", True),
        GateVerdict("pii_leak", 0.0, 0.0, "max", True),
    ]


@pytest.mark.parametrize(
    ("override", "metric"),
    [
        ({"score": 0.69}, "quality_score"),
        ({"dependence": {"score": 0.24}}, "dependence_preservation"),
    ],
)
def test_each_quality_gate_fails_alone(override: dict, metric: str) -> None:
    gates = evaluate_gates(DEFAULTS, {**QUALITY, **override}, PRIVACY)
    assert [g.metric for g in gates if not g.passed] == [metric]


@pytest.mark.parametrize(
    ("override", "metric"),
    [
        ({"exact_match_rate": 0.011}, "exact_match_rate"),
        ({"near_copy_rate": 0.094}, "near_copy_rate"),
        ({"dcr_share": 0.61, "dcr_share_ci95": [0.55, 0.66]}, "dcr_share"),
        ({"filtered_share": 0.51}, "filtered_share"),
    ],
)
def test_each_privacy_gate_fails_alone(override: dict, metric: str) -> None:
    gates = evaluate_gates(DEFAULTS, QUALITY, {**PRIVACY, **override})
    assert [g.metric for g in gates if not g.passed] == [metric]


def test_a_pii_leak_fails_and_is_left_out_only_when_not_asked_for() -> None:
    gates = evaluate_gates(DEFAULTS, QUALITY, PRIVACY, pii_leak={"values": 3})
    assert [g.metric for g in gates if not g.passed] == ["pii_leak"]
    unchecked = evaluate_gates(DEFAULTS, QUALITY, PRIVACY, pii_leak={"values": None})
    (leak,) = [g for g in unchecked if g.metric == "pii_leak"]
    assert not leak.passed and leak.reason
    assert "pii_leak" not in [g.metric for g in evaluate_gates(DEFAULTS, QUALITY, PRIVACY)]


def test_the_rules_gate_needs_every_discovered_rule_to_hold() -> None:
    """``rules_held`` is a "min" gate (1.0 = every rule held), failing closed when no rule
    could be checked, and absent when no rules were discovered."""
    gates = evaluate_gates(DEFAULTS, {**QUALITY, "rules": {"held": 1.0}}, PRIVACY)
    assert gates[-1] == GateVerdict("rules_held", 1.0, 1.0, "min", True)
    gates = evaluate_gates(DEFAULTS, {**QUALITY, "rules": {"held": 0.9}}, PRIVACY)
    assert [g.metric for g in gates if not g.passed] == ["rules_held"]
    relaxed = CheckSettings(min_rules_held=0.5)
    gates = evaluate_gates(relaxed, {**QUALITY, "rules": {"held": 0.9}}, PRIVACY)
    assert gates[-1] == GateVerdict("rules_held", 0.9, 0.5, "min", True)
    gates = evaluate_gates(DEFAULTS, {**QUALITY, "rules": {"held": None}}, PRIVACY)
    assert gates[-1] == GateVerdict(
        "rules_held",
        None,
        1.0,
        "min",
        False,
        reason="no rule could be checked on the published rows",
    )
    assert "rules_held" not in [g.metric for g in evaluate_gates(DEFAULTS, QUALITY, PRIVACY)]


def test_a_data_derived_exact_match_limit_is_explained_on_the_gate() -> None:
    privacy = {**PRIVACY, "exact_match_rate_real_repeats": 0.2, "exact_match_rate": 0.25}
    (exact,) = [
        g for g in evaluate_gates(DEFAULTS, QUALITY, privacy) if g.metric == "exact_match_rate"
    ]
    limit, why = exact_match_limit(DEFAULTS, privacy)
    assert (exact.threshold, exact.reason, exact.passed) == (limit, why, True)
    assert why is not None


@pytest.mark.parametrize("values", [1, "1", 0.5])
def test_a_single_real_value_in_a_fresh_column_fails_the_pii_leak_gate(values) -> None:
    """The pii_leak limit is 0, not 1: one published real value is already a leak."""
    (leak,) = [
        g
        for g in evaluate_gates(DEFAULTS, QUALITY, PRIVACY, pii_leak={"values": values})
        if g.metric == "pii_leak"
    ]
    assert (leak.passed, leak.threshold, leak.kind, leak.waived) == (False, 0.0, "max", False)


def test_an_unchecked_pii_leak_keeps_the_callers_reason() -> None:
    pii = {"values": None, "reason": "the fresh columns could not be read"}
    (leak,) = [
        g
        for g in evaluate_gates(DEFAULTS, QUALITY, PRIVACY, pii_leak=pii)
        if g.metric == "pii_leak"
    ]
    assert (leak.passed, leak.reason) == (False, "the fresh columns could not be read")
    checked = {"values": 0, "reason": "ignored once checked"}
    (leak,) = [
        g
        for g in evaluate_gates(DEFAULTS, QUALITY, PRIVACY, pii_leak=checked)
        if g.metric == "pii_leak"
    ]
    assert (leak.passed, leak.reason) == (True, None)


def test_unmeasured_privacy_fails_every_privacy_gate_with_its_reason() -> None:
    reason = "every held-out row equals a training row"
    gates = evaluate_gates(DEFAULTS, QUALITY, {"measured": False, "reason": reason})
    failed = {g.metric: g for g in gates if not g.passed}
    assert set(failed) == {"exact_match_rate", "near_copy_rate", "dcr_share"}
    assert {g.reason for g in failed.values()} == {reason}
    assert [g.threshold for g in failed.values()] == [0.01, 0.01, 0.6]
    assert {g.kind for g in failed.values()} == {"max"}
    default = evaluate_gates(DEFAULTS, QUALITY, None)
    assert {g.reason for g in default if not g.passed} == {
        "privacy was not measured (no held-out rows)"
    }


def test_missing_quality_scores_fail_with_their_own_reasons() -> None:
    gates = evaluate_gates(DEFAULTS, {"reason": "no report"}, PRIVACY)
    failed = {g.metric: g.reason for g in gates if not g.passed}
    assert failed == {
        "quality_score": "no report",
        "dependence_preservation": "dependence preservation was not computed",
    }
    gates = evaluate_gates(
        DEFAULTS, {"score": 0.9, "dependence": {"reason": "fewer than 300 rows"}}, PRIVACY
    )
    assert {g.metric: g.reason for g in gates if not g.passed} == {
        "dependence_preservation": "fewer than 300 rows"
    }
    gates = evaluate_gates(DEFAULTS, {"dependence": {"score": 0.9}}, PRIVACY)
    assert {g.metric: g.reason for g in gates if not g.passed} == {
        "quality_score": "SDV's quality report gave no score"
    }


def test_an_unmeasured_near_copy_rate_gives_the_privacy_reports_reason() -> None:
    privacy = {**PRIVACY, "near_copy_rate": None, "near_copy_reason": "no unseen row"}
    (near,) = [
        g for g in evaluate_gates(DEFAULTS, QUALITY, privacy) if g.metric == "near_copy_rate"
    ]
    assert (near.passed, near.reason) == (False, "no unseen row")
    privacy = {**PRIVACY, "near_copy_rate": None}
    (near,) = [
        g for g in evaluate_gates(DEFAULTS, QUALITY, privacy) if g.metric == "near_copy_rate"
    ]
    assert near.reason == "no held-out row to compare with"


def test_no_filter_count_means_nothing_was_filtered() -> None:
    privacy = {k: v for k, v in PRIVACY.items() if k != "filtered_share"}
    (filtered,) = [
        g for g in evaluate_gates(DEFAULTS, QUALITY, privacy) if g.metric == "filtered_share"
    ]
    assert (filtered.value, filtered.passed) == (0.0, True)


def test_waived_gates_pass_as_waived() -> None:
    settings = CheckSettings(min_quality=None, max_dcr_share=None)
    gates = {g.metric: g for g in evaluate_gates(settings, {}, {**PRIVACY, "dcr_share": 0.99})}
    assert gates["quality_score"].waived and gates["quality_score"].passed
    assert gates["dcr_share"].waived and gates["dcr_share"].passed


# --- the data-derived limits ------------------------------------------------------------------
DEFAULTS = CheckSettings()  # max_exact_match_rate = max_near_copy_rate = 0.01


def test_near_copy_limit_comes_from_the_data_when_noise_exceeds_the_setting() -> None:
    """At 100-1,000 sampled rows against 80 reference rows (expected 1/81) the 99.9%
    beta-binomial quantile is above 1%: that, not the setting, is the limit, and it says why.
    A model that is not copying would otherwise fail about one run in ten."""
    expected = {"near_copy_rate_expected": 1 / 81}
    limit, why = near_copy_limit(DEFAULTS, {**expected, "rows": {"synthetic": 300}})
    assert limit == 0.093333 and why is not None and "300 rows" in why
    assert near_copy_limit(DEFAULTS, {**expected, "rows": {"synthetic": 100}})[0] == 0.11
    assert near_copy_limit(DEFAULTS, {**expected, "rows": {"synthetic": 1}})[0] == 1.0


def test_a_data_limit_equal_to_the_setting_keeps_the_setting() -> None:
    """``noise <= limit``: at 100 rows the noise is exactly 0.11; a setting of 0.11 stands,
    with no data-derived reason."""
    privacy = {"near_copy_rate_expected": 1 / 81, "rows": {"synthetic": 100}}
    assert near_copy_limit(CheckSettings(max_near_copy_rate=0.11), privacy) == (0.11, None)


def test_near_copy_limit_reference_size_follows_the_expected_rate() -> None:
    """``reference = max(1, round(1 / expected) - 1)``: 1/11 -> 10 rows, 1/2 -> 1 row."""
    one_in_eleven = {"near_copy_rate_expected": 1 / 11, "rows": {"synthetic": 50}}
    assert near_copy_limit(DEFAULTS, one_in_eleven)[0] == 0.54  # 9 rows: 0.58, 12: 0.48
    halves = {"near_copy_rate_expected": 0.5, "rows": {"synthetic": 50}}
    assert near_copy_limit(DEFAULTS, halves)[0] == 1.0  # 2 rows would give 0.98


@pytest.mark.parametrize(
    "privacy",
    [
        {"near_copy_rate_expected": 1 / 81},  # no sampled rows counted
        {"near_copy_rate_expected": 1 / 81, "rows": {"synthetic": 0}},
        {"near_copy_rate_expected": float("nan"), "rows": {"synthetic": 100}},
        {"near_copy_rate_expected": 0.0, "rows": {"synthetic": 100}},
        {"rows": {"synthetic": 100}},
    ],
)
def test_near_copy_limit_without_a_measurable_baseline_is_the_setting(privacy: dict) -> None:
    assert near_copy_limit(DEFAULTS, privacy) == (0.01, None)


def test_near_copy_limit_waived_is_none() -> None:
    assert near_copy_limit(CheckSettings(max_near_copy_rate=None), {"rows": {}}) == (None, None)


def test_exact_match_limit_follows_how_often_real_rows_repeat() -> None:
    """repeat rate + one-sided 99.9% margin, rounded to 6 places, with the reason."""
    privacy = {"exact_match_rate_real_repeats": 0.2, "rows": {"train": 800, "synthetic": 1000}}
    limit, why = exact_match_limit(DEFAULTS, privacy)
    assert limit == 0.258633  # 0.25863303...: six places, not seven
    assert why is not None and "0.2000" in why


def test_exact_match_limit_margin_uses_one_over_n_and_one_for_an_unknown_size() -> None:
    """``_inverse(n)`` is 1/n, and 1 (not 2) when a side's size is unknown."""
    privacy = {"exact_match_rate_real_repeats": 0.001, "rows": {"synthetic": 1_000_000}}
    assert exact_match_limit(DEFAULTS, privacy)[0] == 0.098673  # 0.0986729...: six places
    privacy = {"exact_match_rate_real_repeats": 0.3}  # neither size: no division by zero
    assert exact_match_limit(DEFAULTS, privacy)[0] == 1.0


def test_exact_match_limit_never_exceeds_one_and_ties_keep_the_setting() -> None:
    privacy = {"exact_match_rate_real_repeats": 0.95, "rows": {"train": 10, "synthetic": 10}}
    assert exact_match_limit(DEFAULTS, privacy) == (
        1.0,
        "real rows repeat at 0.9500; limit = that + noise at this size",
    )
    # the data limit (capped at 1.0) equals the setting: the setting stands, no reason
    assert exact_match_limit(CheckSettings(max_exact_match_rate=1.0), privacy) == (1.0, None)


@pytest.mark.parametrize("baseline", [None, float("nan"), 0.0])
def test_exact_match_limit_without_real_repeats_is_the_setting(baseline) -> None:
    """A NaN repeat rate must not become a 100% limit (NaN compares false everywhere)."""
    privacy = {"exact_match_rate_real_repeats": baseline, "rows": {"train": 10, "synthetic": 10}}
    assert exact_match_limit(DEFAULTS, privacy) == (0.01, None)


# --- the refusal -------------------------------------------------------------------------------
def _gate(metric: str, passed: bool, *, waived: bool = False) -> GateVerdict:
    return GateVerdict(metric, 0.5, None if waived else 0.4, "max", passed, waived=waived)


def test_a_refusal_names_the_waived_gates_and_carries_the_reports(tmp_path: Path) -> None:
    reports = {"quality.json": tmp_path / "quality.json"}
    verdicts = [_gate("dcr_share", False), _gate("min_quality", True, waived=True)]
    with pytest.raises(QualityGateError) as caught:
        enforce_gates(verdicts, "Dataset 'd'", reports)
    message = str(caught.value)
    assert "\nWaived (not checked): min_quality.\nSee the report" in message
    assert caught.value.reports == reports


def test_a_refusal_without_waived_gates_says_nothing_about_waivers() -> None:
    with pytest.raises(QualityGateError) as caught:
        enforce_gates([_gate("dcr_share", False)], "Dataset 'd'")
    message = str(caught.value)
    failed_line = _gate("dcr_share", False).describe()
    assert f"{failed_line}\nSee the report" in message
    assert "Waived" not in message


def test_passing_gates_raise_nothing() -> None:
    enforce_gates([_gate("dcr_share", True), _gate("x", True, waived=True)], "Dataset 'd'")


# --- privacy shares ----------------------------------------------------------------------------
@pytest.mark.parametrize("expected", [0.0, 1.0])
def test_normalise_share_leaves_a_share_without_a_baseline_alone(expected: float) -> None:
    """``expected <= 0 or expected >= 1``: no division by a zero odds (each bound pinned)."""
    assert normalise_share(0.3, expected) == 0.3


def test_normalise_share_maps_the_baseline_to_even_odds() -> None:
    assert normalise_share(0.8, 0.8) == pytest.approx(0.5)
    assert normalise_share(0.9, 0.8) == pytest.approx(0.6923, abs=1e-4)
    assert normalise_share(0.5, 0.5) == pytest.approx(0.5)
    assert normalise_share(1.0, 0.8) == 1.0 and normalise_share(0.0, 0.8) == 0.0


def test_the_dcr_share_keys_are_the_same_whether_or_not_it_was_measured() -> None:
    """The gate reads ``dcr_share`` and ``dcr_share_ci95``: an empty sample must report them
    (as None, so the gate fails closed), under the same names as a measured one."""
    unmeasured = _dcr_shares(None, 0.8, 0)
    measured = _dcr_shares(0.9, 0.8, 100)
    assert unmeasured == {
        "dcr_share": None,
        "dcr_share_ci95": None,
        "dcr_share_full_train": None,
        "dcr_share_full_train_expected": 0.8,
    }
    assert measured.keys() == unmeasured.keys()
    assert measured["dcr_share"] == pytest.approx(normalise_share(0.9, 0.8))
    low, high = wilson_interval(0.9, 100)
    assert measured["dcr_share_ci95"] == pytest.approx(
        [normalise_share(low, 0.8), normalise_share(high, 0.8)]
    )
    assert (measured["dcr_share_full_train"], measured["dcr_share_full_train_expected"]) == (
        0.9,
        0.8,
    )


def test_a_tie_counts_half_for_training_and_half_for_the_holdout() -> None:
    """``_closer``'s default ``tie`` is 0.5: a row as close to both sides is no evidence."""
    closer = _closer(np.array([1.0, 0.5, 2.0]), np.array([1.0, 1.0, 1.0]))
    assert closer.tolist() == [0.5, 1.0, 0.0]


# --- the privacy filters ----------------------------------------------------------------------
KINDS = {"x": "numerical", "y": "numerical"}


@pytest.fixture(scope="module")
def real() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(0, 1, 400), "y": rng.normal(0, 1, 400)})
    holdout = pd.DataFrame({"x": rng.normal(0, 1, 200), "y": rng.normal(0, 1, 200)})
    return train, holdout


def _mixed(train: pd.DataFrame, holdout: pd.DataFrame, evaluator: PrivacyEvaluator) -> pd.DataFrame:
    """3 exact copies, 2 near copies, 1 far outlier, 5 ordinary rows; index 100-110."""
    near = train.iloc[3:5] + evaluator.similarity_threshold / 10
    far = pd.DataFrame({"x": [50.0], "y": [50.0]})
    dcr = evaluator.holdout_dcr  # unseen real rows, neither close nor far: kept
    typical = (dcr > 2 * evaluator.similarity_threshold) & (dcr < evaluator.outlier_threshold / 2)
    ordinary = holdout.loc[typical].head(5)
    frame = pd.concat([train.head(3), near, far, ordinary])
    return frame.set_index(pd.Index(range(100, 111)))


@pytest.mark.parametrize(
    ("settings", "drop_exact", "dropped"),
    [
        (PrivacySettings(), True, {"similarity": 5, "outlier": 1}),
        (PrivacySettings(), False, {"similarity": 2, "outlier": 1}),  # copies judged by the gate
        (PrivacySettings(similarity_filter=False), True, {"similarity": 0, "outlier": 1}),
        (PrivacySettings(outlier_filter=False), True, {"similarity": 5, "outlier": 0}),
    ],
)
def test_each_filter_drops_its_own_rows(real, settings, drop_exact, dropped) -> None:
    train, holdout = real
    evaluator = PrivacyEvaluator(train, holdout, KINDS, settings=settings)
    evaluator.drop_exact_copies = drop_exact
    synthetic = _mixed(train, holdout, evaluator)
    result = evaluator.filter(synthetic)
    assert result.dropped == dropped
    kept = len(synthetic) - sum(dropped.values())
    assert list(result.kept.columns) == ["x", "y"]  # no old index column: reset, dropped
    assert result.kept.index.tolist() == list(range(kept))
    filtered, report = evaluator.evaluate(synthetic)
    assert filtered.dropped == dropped
    assert filtered.kept.index.tolist() == list(range(kept))
    assert list(filtered.kept.columns) == ["x", "y"]
    assert report["filtered"] == {"rows_before": 11, **dropped}
    assert report["rows"]["synthetic"] == kept
    # the report describes the rows kept (what is published), measured once
    alone = evaluator.report(filtered.kept)
    for key in ("exact_match_rate", "near_copy_rate", "dcr_share", "dcr"):
        assert report[key] == alone[key], key
    assert 0 <= report["seconds"] < 60


# --- check_integrity ---------------------------------------------------------------------------
def _set(frames: dict[str, pd.DataFrame], rels: list[str], keys: dict[str, str]) -> TableSet:
    shapes = {
        name: TableShape(name, tuple(frame.columns), (keys[name],) if name in keys else ())
        for name, frame in frames.items()
    }
    return build_table_set(shapes, declared=rels)


def test_orphans_alone_fail_integrity() -> None:
    """``orphans == 0 and nulls == 0``: orphans without NULLs must fail too (not ``or``)."""
    frames = {
        "users": pd.DataFrame({"id": [1, 2]}),
        "sessions": pd.DataFrame({"sid": [1, 2, 3, 4], "user_id": [1, 2, 9, 9]}),
    }
    report = check_integrity(
        frames, _set(frames, ["sessions.user_id -> users.id"], {"users": "id", "sessions": "sid"})
    )
    assert report["passed"] is False
    assert report["relationships"][0]["orphans"] == 2 and report["relationships"][0]["nulls"] == 0


def test_the_score_counts_orphans_and_nulls_against_every_relationship() -> None:
    """Per relationship ``rows - orphans - nulls`` over rows; the set's score sums them all
    (``+=``, not ``=``: the first relationship must count too)."""
    frames = {
        "users": pd.DataFrame({"id": [1, 2, 3]}),
        "shops": pd.DataFrame({"id": ["a", "b"]}),
        "orders": pd.DataFrame(
            {
                "oid": range(10),
                "user_id": [1, 1, 2, 3, 9, 9, None, 1, 2, 3],  # 2 orphans, 1 NULL
                "shop_id": ["a"] * 10,  # all fine
            }
        ),
    }
    table_set = _set(
        frames,
        ["orders.user_id -> users.id", "orders.shop_id -> shops.id"],
        {"users": "id", "shops": "id", "orders": "oid"},
    )
    report = check_integrity(frames, table_set)
    by_rel = {r["relationship"]: r for r in report["relationships"]}
    users_rel = next(r for name, r in by_rel.items() if "user_id" in name)
    shops_rel = next(r for name, r in by_rel.items() if "shop_id" in name)
    assert (users_rel["orphans"], users_rel["nulls"]) == (2, 1)
    assert users_rel["integrity"] == pytest.approx(0.7)
    assert shops_rel["integrity"] == 1.0
    assert report["score"] == pytest.approx(17 / 20)
    assert report["passed"] is False


def test_a_table_without_a_key_does_not_stop_the_key_checks_of_the_next() -> None:
    """``continue`` past a keyless table, not ``break``: later keys are still checked."""
    frames = {
        "audit": pd.DataFrame({"event": ["x", "y"]}),  # no primary key, related to nothing
        "users": pd.DataFrame({"id": [1, 1, 2]}),  # a duplicate key
    }
    table_set = _set(frames, [], {"users": "id"})
    assert table_set.order.index("audit") < table_set.order.index("users"), table_set.order
    report = check_integrity(frames, table_set)
    assert report["primary_keys"]["users"]["duplicates"] == 1
    assert report["passed"] is False


# --- publish_dataset ---------------------------------------------------------------------------
class _RecordingStore(FileObjectStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.deleted: list[str] = []

    def delete_keys(self, keys) -> None:  # type: ignore[no-untyped-def]
        keys = list(keys)
        self.deleted.extend(keys)
        super().delete_keys(keys)


@pytest.fixture
def layout() -> DatasetLayout:
    return DatasetLayout("synthetic", "users", "run_1")


@pytest.fixture
def local_files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, data in {"data.parquet": b"PAR1xyzPAR1", "metadata.json": b"{}"}.items():
        (tmp_path / name).write_bytes(data)
        out[name] = tmp_path / name
    return out


def test_a_republish_deletes_nothing_an_earlier_attempt_wrote(
    tmp_path: Path, layout: DatasetLayout, local_files: dict[str, Path]
) -> None:
    """A rerun writes a new attempt: no delete at all (within the grace), so a reader of
    the earlier manifest never sees a file vanish."""
    store = _RecordingStore(tmp_path / "store")
    publish_dataset(store, layout, local_files, {"rows": 1})
    store.deleted.clear()
    publish_dataset(store, layout, local_files, {"rows": 1})
    assert store.deleted == []


def test_the_published_record_and_the_load_timing(
    tmp_path: Path,
    layout: DatasetLayout,
    local_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """rows default 0; ``seconds`` since this call; ``load`` since ``load_started``, 3 places."""
    monkeypatch.setattr(publish_module.time, "monotonic", lambda: 1000.0)
    store = FileObjectStore(tmp_path / "store")
    result = publish_dataset(store, layout, local_files, {}, load_started=0.12345678)
    assert result.rows == 0
    assert result.seconds == 0.0
    manifest = json.loads(store.get_bytes(layout.manifest_key) or b"{}")
    assert manifest["timings_seconds"]["load"] == 999.877
    result = publish_dataset(store, layout, local_files, {"rows": 7})
    assert result.rows == 7
    assert json.loads(store.get_bytes(layout.manifest_key) or b"{}")["timings_seconds"] == {
        "load": 0.0
    }


def test_a_missing_local_file_is_named(tmp_path: Path, layout: DatasetLayout) -> None:
    missing = tmp_path / "nowhere" / "data.parquet"
    store = FileObjectStore(tmp_path / "store")
    with pytest.raises(PublishError) as caught:
        publish_dataset(store, layout, {"data.parquet": missing}, {"rows": 1})
    assert str(missing) in str(caught.value)
