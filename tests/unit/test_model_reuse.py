"""Nightly model reuse: the fingerprint, the drift measure, the decision, the keyed holdout.

The decision is pinned branch by branch (off, no model, unstable split, settings changed,
columns changed, too old, drifted, reused), the drift measure on known distances, and the
keyed holdout on what keeps the privacy checks honest: a row stays on its side from one
run to the next, whatever rows come and go around it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_synth.core.engine.fingerprint import (
    QUANTILES,
    TOP_CATEGORIES,
    fingerprint_summary,
    fingerprint_table,
    ks_from_quantiles,
    measure_drift,
    total_variation,
)
from airflow_synth.core.engine.holdout import holdout_mask
from airflow_synth.core.engine.reuse import (
    KEYED,
    RETRAINED,
    REUSED,
    SEEDED,
    ModelRecord,
    ReusePlan,
    ReuseSettings,
    decide,
    model_key,
)
from airflow_synth.core.profile.roles import KEY, MODELLED, PII, ColumnRole

pytestmark = pytest.mark.unit

SALT = "0123456789abcdef"
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
ROLES = [
    ColumnRole("user_id", KEY, "integer", "id"),
    ColumnRole("email", PII, "email", "pii"),
    ColumnRole("nights", MODELLED, "auto", ""),
    ColumnRole("country", MODELLED, "auto", ""),
    ColumnRole("booked", MODELLED, "auto", ""),
]


def frame(rows: int = 2_000, seed: int = 0, shift: float = 0.0, us_share: float = 0.5):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": np.arange(rows, dtype="int64") + 1_000_000,
            "email": [f"person{i}@example.org" for i in range(rows)],
            "nights": rng.gamma(2.0, 2.0, rows) + shift,
            "country": np.where(rng.random(rows) < us_share, "US", rng.choice(["FR", "DE"], rows)),
            "booked": pd.to_datetime("2026-01-01")
            + pd.to_timedelta(rng.integers(0, 300, rows), "D"),
        }
    )


def staged(tmp_path: Path, data: pd.DataFrame, name: str = "t.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(pa.Table.from_pandas(data, preserve_index=False), path)
    return path


def fp(tmp_path: Path, data: pd.DataFrame, name: str = "t.parquet") -> dict:
    return fingerprint_table(staged(tmp_path, data, name), ROLES, salt=SALT)


KEY_ARGS = {
    "synthesizer": {"name": "gaussian_copula", "params": {}},
    "seed": 42,
    "contract": None,
    "holdout_share": 0.2,
    "max_training_rows": 200_000,
    "versions": {"sdv": "2.0.0", "pandas": "2.3.3", "rdt": "2.0.0", "airflow-synth": "0.1"},
}


def record(fingerprint: dict, *, hours: float = 22.0, salt: str | None = SALT) -> ModelRecord:
    return ModelRecord(
        fingerprint=fingerprint,
        model_key=model_key(**KEY_ARGS),
        trained_at=(NOW - timedelta(hours=hours)).isoformat(),
        trained_run="scheduled__2026-12-04T02:00:00+00:00",
        holdout={"method": KEYED if salt else SEEDED, "share": 0.2, "salt": salt},
    )


ON = ReuseSettings(enabled=True, max_drift=0.1, max_model_age_hours=168)


# -- fingerprint -------------------------------------------------------------------------


def test_fingerprint_holds_numbers_only_and_no_value_of_keys_or_pii(tmp_path):
    data = frame()
    print_ = fp(tmp_path, data)
    assert print_["rows"] == len(data)
    assert [c["name"] for c in print_["schema"]] == list(data.columns)
    assert print_["modelled"] == ["nights", "country", "booked"]
    columns = print_["columns"]
    assert set(columns["user_id"]) == {"kind", "null_share", "distinct"}  # no quantiles
    assert set(columns["email"]) == {"kind", "null_share", "distinct"}
    assert columns["user_id"]["distinct"] == len(data)
    assert len(columns["nights"]["quantiles"]) == QUANTILES
    nights = data["nights"]
    assert nights.min() < min(columns["nights"]["quantiles"])  # no extreme is stored
    assert max(columns["nights"]["quantiles"]) < nights.max()
    assert len(columns["booked"]["quantiles"]) == QUANTILES  # dates are numbers here
    assert set(columns["country"]["shares"].values()) and len(columns["country"]["shares"]) <= 3
    text = json.dumps(print_)
    for value in ("US", "FR", "DE", "person1@", "example.org", str(1_000_000)):
        assert value not in text, value  # labels hashed, keys and PII never profiled
    assert len(text) < 12_000  # small: a few KB for five columns


def test_category_shares_keep_the_top_ones_and_the_rest(tmp_path):
    many = pd.DataFrame({"c": [f"v{i % 50}" for i in range(5_000)]})
    roles = [ColumnRole("c", MODELLED, "auto", "")]
    column = fingerprint_table(staged(tmp_path, many), roles, salt=SALT)["columns"]["c"]
    assert len(column["shares"]) == TOP_CATEGORIES
    assert column["rest"] == pytest.approx(30 / 50)
    assert sum(column["shares"].values()) + column["rest"] == pytest.approx(1.0)


def test_fingerprint_counts_nulls(tmp_path):
    data = frame(1_000)
    data.loc[:99, "nights"] = np.nan
    assert fp(tmp_path, data)["columns"]["nights"]["null_share"] == pytest.approx(0.1)


def test_summary_has_counts_and_a_schema_hash_only(tmp_path):
    summary = fingerprint_summary(fp(tmp_path, frame()))
    assert summary["rows"] == 2_000 and summary["columns"] == 5
    assert summary["modelled_columns"] == 3 and len(summary["schema_sha256"]) == 16


# -- drift -------------------------------------------------------------------------------


def test_ks_from_quantiles_known_values():
    grid = np.linspace(0, 1, QUANTILES)
    assert ks_from_quantiles(grid, grid) == 0.0
    assert ks_from_quantiles(grid, grid + 5) == 1.0  # disjoint
    assert ks_from_quantiles(grid, grid + 0.25) == pytest.approx(0.25, abs=0.011)
    zeros = np.r_[np.zeros(60), np.linspace(1, 2, 41)]  # a point mass is not drift
    assert ks_from_quantiles(zeros, zeros) == 0.0


def test_total_variation_known_values():
    assert total_variation({"a": 0.5, "b": 0.5}, 0.0, {"a": 0.5, "b": 0.5}, 0.0) == 0.0
    assert total_variation({"a": 1.0}, 0.0, {"b": 1.0}, 0.0) == 1.0
    assert total_variation({"a": 0.6, "b": 0.4}, 0.0, {"a": 0.4, "b": 0.6}, 0.0) == pytest.approx(
        0.2
    )


def test_drift_is_small_for_a_fresh_draw_and_large_for_a_shift(tmp_path):
    before = fp(tmp_path, frame(seed=0), "a.parquet")
    again = fp(tmp_path, frame(seed=1), "b.parquet")  # same distribution, other rows
    assert measure_drift(before, before).value == 0.0
    assert measure_drift(before, again).value < 0.06
    shifted = fp(tmp_path, frame(seed=1, shift=3.0), "c.parquet")
    drift = measure_drift(before, shifted)
    assert drift.value > 0.3 and drift.where == "nights"


def test_drift_sees_category_shares_nulls_and_row_count(tmp_path):
    before = fp(tmp_path, frame(seed=0), "a.parquet")
    countries = measure_drift(before, fp(tmp_path, frame(seed=0, us_share=0.9), "b.parquet"))
    assert countries.where == "country" and countries.value > 0.3
    nulls = frame(seed=0)
    nulls.loc[:599, "email"] = None  # 30% NULLs in a PII column: counted, never profiled
    assert measure_drift(before, fp(tmp_path, nulls, "c.parquet")).where == "email"
    grown = measure_drift(before, fp(tmp_path, frame(3_000, seed=0), "d.parquet"))
    assert grown.where == "row count" and grown.value == pytest.approx(1_000 / 3_000)


# -- decision ----------------------------------------------------------------------------


def test_reused_when_everything_matches(tmp_path):
    current = fp(tmp_path, frame(seed=1), "b.parquet")
    decision = decide(ON, record(fp(tmp_path, frame())), current, model_key(**KEY_ARGS), NOW)
    assert decision.decision == REUSED and decision.reused
    assert decision.reason.startswith(
        "reused model of run scheduled__2026-12-04T02:00:00+00:00 (age 22.0 h, drift 0.0"
    )
    assert decision.reason.endswith("<= 0.1)")
    assert decision.to_dict() == {
        "decision": "reused",
        "reason": decision.reason,
        "model_run": "scheduled__2026-12-04T02:00:00+00:00",
        "model_age_hours": 22.0,
        "drift": decision.drift,
        "max_drift": 0.1,
        "max_model_age_hours": 168.0,
    }


def test_retrained_when_reuse_is_off(tmp_path):
    current = fp(tmp_path, frame())
    off = ReuseSettings(enabled=False)
    decision = decide(off, record(current), current, model_key(**KEY_ARGS), NOW)
    assert decision.decision == RETRAINED and "reuse_model is off" in decision.reason


def test_retrained_without_an_earlier_model(tmp_path):
    decision = decide(ON, None, fp(tmp_path, frame()), model_key(**KEY_ARGS), NOW)
    assert decision.reason == "retrained: no earlier model"
    assert decision.model_run is None and decision.drift is None


def test_retrained_when_the_earlier_split_was_not_keyed(tmp_path):
    current = fp(tmp_path, frame())
    decision = decide(ON, record(current, salt=None), current, model_key(**KEY_ARGS), NOW)
    assert decision.decision == RETRAINED and "stable holdout split" in decision.reason


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"synthesizer": {"name": "ctgan", "params": {"epochs": 5}}}, "synthesizer"),
        ({"seed": 7}, "seed"),
        ({"holdout_share": 0.3}, "holdout_share"),
        ({"max_training_rows": 1_000}, "max_training_rows"),
        ({"contract": {"columns": [{"name": "x"}]}}, "contract"),
        ({"versions": {**KEY_ARGS["versions"], "sdv": "2.1.0"}}, "library version"),
    ],
)
def test_retrained_when_a_setting_changed(tmp_path, change, named):
    current = fp(tmp_path, frame())
    decision = decide(ON, record(current), current, model_key(**{**KEY_ARGS, **change}), NOW)
    assert decision.decision == RETRAINED
    assert decision.reason == f"retrained: settings changed ({named})"


def test_retrained_when_columns_changed(tmp_path):
    before = fp(tmp_path, frame(), "a.parquet")
    current = fp(tmp_path, frame().drop(columns=["booked"]), "b.parquet")
    decision = decide(ON, record(before), current, model_key(**KEY_ARGS), NOW)
    assert decision.reason == "retrained: columns changed (booked)"


def test_retrained_when_the_model_is_too_old(tmp_path):
    current = fp(tmp_path, frame())
    decision = decide(ON, record(current, hours=170), current, model_key(**KEY_ARGS), NOW)
    assert decision.decision == RETRAINED
    assert decision.reason == "retrained: model older than 168 h (age 170.0 h)"
    assert decision.model_age_hours == 170.0 and decision.drift == 0.0
    young = decide(ON, record(current, hours=167.9), current, model_key(**KEY_ARGS), NOW)
    assert young.decision == REUSED


def test_retrained_when_drift_is_beyond_the_limit(tmp_path):
    before = fp(tmp_path, frame(seed=0), "a.parquet")
    shifted = fp(tmp_path, frame(seed=1, shift=3.0), "b.parquet")
    decision = decide(ON, record(before), shifted, model_key(**KEY_ARGS), NOW)
    assert decision.decision == RETRAINED
    assert decision.reason.startswith("retrained: drift 0.")
    assert decision.reason.endswith("> 0.1 on column nights")
    loose = ReuseSettings(enabled=True, max_drift=1.0)
    assert decide(loose, record(before), shifted, model_key(**KEY_ARGS), NOW).reused


def test_settings_refuse_out_of_range_values():
    with pytest.raises(ValueError, match="max_drift"):
        ReuseSettings(enabled=True, max_drift=1.5)
    with pytest.raises(ValueError, match="max_model_age_hours"):
        ReuseSettings(enabled=True, max_model_age_hours=-1)


def test_a_reusing_run_keeps_the_training_time(tmp_path):
    first = record(fp(tmp_path, frame()), hours=30)
    again = ModelRecord.from_dict(json.loads(json.dumps(first.reused_in("run-2").to_dict())))
    assert again.trained_at == first.trained_at and again.trained_run == first.trained_run
    assert again.reused_by == ["run-2"] and again.age_hours(NOW) == pytest.approx(30.0)


# -- keyed holdout -----------------------------------------------------------------------


def test_keyed_holdout_keeps_each_row_on_its_side_across_runs():
    rows = frame(4_000, seed=3)[["nights", "country"]]
    first = pd.Series(holdout_mask(rows, 0.2, 0, salt=SALT), index=rows.index)
    assert 0.15 < first.mean() < 0.25
    # the next night: 500 rows gone, 1,000 new ones, the order shuffled, another seed
    new = frame(1_000, seed=9)[["nights", "country"]].set_axis(range(10_000, 11_000))
    later = pd.concat([rows.iloc[500:], new]).sample(frac=1.0, random_state=1)
    second = pd.Series(holdout_mask(later, 0.2, 123, salt=SALT), index=later.index)
    persisting = rows.index[500:]
    # a persisting row never switches side: rows trained on never reach the holdout
    assert (second.loc[persisting] == first.loc[persisting]).all()
    assert second.loc[new.index].any()  # new rows are unseen: they may be held out


def test_keyed_holdout_depends_on_the_salt_and_keeps_equal_rows_together():
    rows = pd.DataFrame({"a": list(range(300)) * 2})  # every row twice
    one = holdout_mask(rows, 0.3, 0, salt=SALT)
    other = holdout_mask(rows, 0.3, 0, salt="fedcba9876543210")
    assert (one[:300] == one[300:]).all()  # equal rows on the same side
    assert (one != other).any()
    unsalted = holdout_mask(rows, 0.3, 0)
    assert unsalted.sum() == 180  # the seeded split is exact, unchanged


# -- the train step ----------------------------------------------------------------------


def _table(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    data = frame(rows, seed=seed, shift=shift).drop(columns=["email", "booked"])
    data["user_id"] = np.arange(rows) + seed * 100_000  # new users each draw
    return data


def test_train_step_reuses_without_fitting_and_keeps_trained_rows_out_of_the_holdout(
    tmp_path, monkeypatch
):
    from airflow_synth.core.engine.synthesizers import resolve_synthesizer
    from airflow_synth.core.steps import TableFit, sharded, train_table
    from airflow_synth.core.steps.staged import load_staged

    spec = resolve_synthesizer("gaussian_copula")
    on = ReuseSettings(enabled=True)
    first_rows = _table(1_200, seed=1)
    first = train_table(
        staged(tmp_path, first_rows, "night1.parquet"),
        dataset="bookings",
        spec=spec,
        seed=7,
        reuse=ReusePlan(on, run="night-1"),
    )
    assert first.reuse["reason"] == "retrained: no earlier model" and first.fit_seconds > 0
    assert first.record["holdout"]["method"] == KEYED and first.record["trained_run"] == "night-1"
    files = sharded.save_reusable(first, tmp_path / "out1")
    saved = load_staged(Path(files["table_model.pkl"].removeprefix("file://")))
    previous = ModelRecord.from_dict(json.loads(Path(files["fingerprint.json"][7:]).read_text()))

    def no_fit(*args, **kwargs):
        raise AssertionError("a reused model must not be fitted")

    monkeypatch.setattr(sharded, "fit_prepared_table", no_fit)
    # the next night: most users persist, 150 new ones
    second_rows = pd.concat([first_rows.iloc[100:], _table(150, seed=2)], ignore_index=True)
    second = train_table(
        staged(tmp_path, second_rows, "night2.parquet"),
        dataset="bookings",
        spec=spec,
        seed=7,
        reuse=ReusePlan(on, previous, load_model=lambda: saved, run="night-2"),
    )
    assert isinstance(second, TableFit)
    assert second.reuse["decision"] == REUSED and second.fit_seconds == 0.0
    assert second.reuse["model_run"] == "night-1"
    assert second.record["trained_run"] == "night-1" and second.record["reused_by"] == ["night-2"]
    assert second.record["trained_at"] == first.record["trained_at"]  # age from training
    # honest privacy checks: no row the model trained on is in today's holdout
    columns = list(first.train.columns)
    trained = set(map(tuple, first.train[columns].round(9).astype(str).to_numpy()))
    held = set(map(tuple, second.holdout[columns].round(9).astype(str).to_numpy()))
    assert len(second.holdout) > 100 and not trained & held
    # and a drifted source retrains (the spy would fail if it fitted: lift it)
    monkeypatch.undo()
    shifted = _table(1_200, seed=3, shift=4.0)
    third = train_table(
        staged(tmp_path, shifted, "night3.parquet"),
        dataset="bookings",
        spec=spec,
        seed=7,
        reuse=ReusePlan(on, previous, load_model=lambda: saved, run="night-3"),
    )
    assert third.reuse["decision"] == RETRAINED and "on column nights" in third.reuse["reason"]
    assert third.fit_seconds > 0 and third.record["trained_run"] == "night-3"
    assert third.record["holdout"]["salt"] == previous.holdout["salt"]  # same rows, same side


def test_an_earlier_model_that_cannot_be_loaded_means_retraining(tmp_path):
    from airflow_synth.core.engine.synthesizers import resolve_synthesizer
    from airflow_synth.core.steps import train_table

    spec = resolve_synthesizer("gaussian_copula")
    on = ReuseSettings(enabled=True)
    path = staged(tmp_path, _table(1_000, seed=1))
    first = train_table(path, dataset="bookings", spec=spec, seed=7, reuse=ReusePlan(on, run="1"))

    def broken():
        raise OSError("the download failed")

    previous = ModelRecord.from_dict(first.record)
    again = train_table(
        path,
        dataset="bookings",
        spec=spec,
        seed=7,
        reuse=ReusePlan(on, previous, load_model=broken, run="2"),
    )
    assert again.reuse["decision"] == RETRAINED
    assert again.reuse["reason"] == "retrained: the earlier model could not be loaded"
    assert again.fit_seconds > 0 and again.record["trained_run"] == "2"
