"""Size and shape limits said up front and in plain words.

* A table too small to train and hold out is refused before training, with its row count,
  the minimum the enforced gates need and how to waive them
  (:mod:`airflow_synth.core.assess.limits`).
* A filter that removes too much names itself, the columns that made the rows copies or
  outliers (names only, never a value) and the settings to change (the ``filtered_share``
  gate's message, ``privacy.json``'s ``filtered``).
* Batches emptied by the privacy filters are not reported as an exhausted primary key.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import fake_synthesizers as fakes
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_synth.core.assess.checks import CheckSettings
from airflow_synth.core.assess.limits import (
    TableSize,
    check_sizes,
    min_rows_to_hold_out,
    min_rows_to_train,
)
from airflow_synth.core.assess.privacy import FilterResult
from airflow_synth.core.engine.sampling import sample_to_parquet
from airflow_synth.core.engine.synthesizers import SynthesizerSpec
from airflow_synth.core.errors import DataError, QualityGateError
from airflow_synth.core.relations import TableShape, build_table_set
from airflow_synth.core.steps import run_synthesize
from airflow_synth.core.steps.synthesize import synthesize_set

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]


def staged(tmp_path: Path, frame: pd.DataFrame, name: str = "real.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def fake(cls: str, **params: object) -> SynthesizerSpec:
    return SynthesizerSpec(name=cls.lower(), class_path=f"fake_synthesizers.{cls}", params=params)


# --------------------------------------------------------------------------------------------
# the minimum rows
# --------------------------------------------------------------------------------------------
def test_the_minimums_follow_holdout_share() -> None:
    assert [min_rows_to_hold_out(s) for s in (0.2, 0.1, 0.05, 0.01)] == [10, 10, 11, 51]
    assert min_rows_to_hold_out(0.0) is None
    assert min_rows_to_train(0.2, 300) == 375  # 375 - 75 held out = 300
    assert min_rows_to_train(0.5, 300) == 600


def test_waived_gates_need_no_rows() -> None:
    """With every gate that needs rows waived, even one row is trained (on the user's word)."""
    waived = CheckSettings.from_mapping(
        {
            "min_dependence": None,
            "max_exact_match_rate": None,
            "max_near_copy_rate": None,
            "max_dcr_share": None,
        }
    )
    check_sizes([TableSize("t", 1, 0)], waived)


def test_holdout_share_zero_with_privacy_gates_says_so() -> None:
    checks = CheckSettings.from_mapping({"holdout_share": 0, "min_dependence": None})
    with pytest.raises(DataError, match="holdout_share is 0, so no row is held out"):
        check_sizes([TableSize("t", 5_000, 0)], checks)


def test_rows_that_repeat_too_much_to_hold_out_are_named() -> None:
    with pytest.raises(DataError, match="distinct rows each repeat too often"):
        check_sizes([TableSize("t", 900, 0)], CheckSettings())


def test_a_training_bound_below_the_dependence_minimum_is_named() -> None:
    with pytest.raises(DataError, match="max_training_rows=200 allows fewer"):
        check_sizes([TableSize("t", 200, 1_000)], CheckSettings(), max_training_rows=200)


def test_a_table_of_keys_only_or_one_column_is_not_held_to_dependence() -> None:
    checks = CheckSettings.from_mapping({"holdout_share": 0.2})
    check_sizes([TableSize("keys", 3, 1, modelled=0)], checks)
    check_sizes([TableSize("one", 40, 10, modelled=1)], checks)
    with pytest.raises(DataError, match="dependence_preservation needs 300"):
        check_sizes([TableSize("two", 40, 10, modelled=2)], checks)


def test_a_small_table_is_refused_before_anything_is_fitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message of issue 13: one row, gates "n/a", advice to train more epochs, after
    the model was fitted. Now: the rows, the minimum, the waiver; no fit, no report."""
    import airflow_synth.core.engine.set_run as set_run

    fitted: list[str] = []
    monkeypatch.setattr(set_run, "fit_set_table", lambda *a, **k: fitted.append("fit"))
    path = staged(tmp_path, fakes.customers(1, 1))
    with pytest.raises(DataError) as refused:
        run_synthesize(path, tmp_path / "out", dataset="tiny", spec=fake("Faithful"), seed=1)
    message = str(refused.value)
    assert message.startswith("Table 'tiny' is too small to train and hold out")
    assert "table 'tiny': 1 real row;" in message
    assert "at holdout_share=0.2 at least 10 rows are needed to hold any out" in message
    assert "dependence_preservation needs 300 training rows: at holdout_share=0.2 at least 375" in (
        message
    )
    assert (
        "checks={'max_exact_match_rate': None, 'max_near_copy_rate': None, "
        "'max_dcr_share': None, 'min_dependence': None}" in message
    )
    assert "epochs" not in message and fitted == []
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*"))


def test_a_sets_small_tables_are_named_together(tmp_path: Path) -> None:
    """Every table of a set is held to the dependence gate (judged per table); the privacy
    minimum applies to its tables without relationships."""
    frames = {**fakes.users_sessions(150, 7), "customers": fakes.customers(8, 11)}
    real = tmp_path / "real"
    real.mkdir()
    paths = {name: staged(real, frame, f"{name}.parquet") for name, frame in frames.items()}
    shapes = {
        "users": TableShape("users", tuple(frames["users"].columns), ("id",)),
        "sessions": TableShape("sessions", tuple(frames["sessions"].columns), ("sid",)),
        "customers": TableShape("customers", tuple(frames["customers"].columns)),
    }
    table_set = build_table_set(shapes, declared=["sessions.user_id -> users.id"])
    with pytest.raises(DataError) as refused:
        synthesize_set(
            paths,
            table_set,
            tmp_path / "run",
            dataset="shop",
            specs={name: fake("Faithful") for name in frames},
            seed=4,
        )
    message = str(refused.value)
    assert message.startswith("Tables of the set are too small to train and hold out")
    assert "table 'users': 150 real rows; dependence_preservation needs 300" in message
    assert "table 'customers': 8 real rows; the privacy gates" in message
    assert "'sessions'" not in message  # 381 rows: enough


# --------------------------------------------------------------------------------------------
# a filter that removes too much says which, why and what to change
# --------------------------------------------------------------------------------------------
def gate_failure(tmp_path: Path, path: Path, spec: SynthesizerSpec, checks: dict):
    with pytest.raises(QualityGateError) as failure:
        run_synthesize(
            path,
            tmp_path / "out",
            dataset="customers",
            spec=spec,
            seed=3,
            checks=CheckSettings.from_mapping(checks),
        )
    line = next((x for x in str(failure.value).splitlines() if "FAIL filtered_share" in x), "")
    privacy = json.loads(failure.value.reports["privacy.json"].read_text())
    return str(failure.value), line, privacy


def test_copies_name_the_similarity_filter_the_columns_and_the_settings(tmp_path: Path) -> None:
    real = fakes.customers(1_000, 11)
    path = staged(tmp_path, real)
    message, line, privacy = gate_failure(
        tmp_path, path, fake("Memoriser"), {"min_dependence": None}
    )
    assert line.startswith("  FAIL filtered_share = ")
    assert "the similarity filter removed" in line and "rows that copy or nearly copy" in line
    assert "they agree with one on age, income, plan, country, spend, active, signup" in line
    for setting in ("'similarity_filter': False", "'outlier_filter': False"):
        assert setting in line
    assert "'max_filtered_share' (now 0.5)" in line and "'holdout_share' (now 0.2)" in line
    similarity = privacy["filtered"]["similarity"]
    assert similarity["compared_on"] == list(real.columns)
    values = {f"{v:.2f}" for v in real["income"]} | {str(v) for v in real["signup"]}
    assert not [v for v in values if v in message]  # names, never a value


def test_outliers_name_the_columns_that_put_them_far_from_the_real_rows(tmp_path: Path) -> None:
    """OutlierProne pushes rows of the rare group far out on ``x``: the outlier filter
    removes them, and the gate (set tight here) names x as what made them outliers."""
    path = staged(tmp_path, fakes.strata(3_000, 5))
    checks = {"min_dependence": None, "min_quality": None, "max_filtered_share": 0.001}
    spec = fake("OutlierProne", source="strata", rate=1.0)
    _, line, privacy = gate_failure(tmp_path, path, spec, checks)
    far = privacy["filtered"]["outlier"]["far_on"]
    assert far[0]["column"] == "x" and far[0]["share"] > 0.5, far  # y: natural outliers
    assert re.search(
        r"the outlier filter removed \d+ rows far from every real row, mostly on x ", line
    )
    assert "'max_filtered_share' (now 0.001)" in line


# --------------------------------------------------------------------------------------------
# the real cause of empty batches
# --------------------------------------------------------------------------------------------
class Rows:
    """A model that returns fresh rows, ids counting up (never exhausted)."""

    def __init__(self) -> None:
        self.next = 0

    def sample(self, num_rows: int) -> dict[str, pd.DataFrame]:
        ids = np.arange(self.next, self.next + num_rows)
        self.next += num_rows
        return {"t": pd.DataFrame({"id": ids, "x": ids / 2})}


SCHEMA = pa.schema([("id", pa.int64()), ("x", pa.float64())])


def remove_everything(frame: pd.DataFrame) -> FilterResult:
    reasons = np.full(len(frame), "similarity", dtype=object)
    return FilterResult(frame.iloc[0:0], {"similarity": len(frame), "outlier": 0}, reasons)


@pytest.mark.parametrize("how", ["screen", "row_filter"])
def test_batches_emptied_by_the_filters_are_not_an_exhausted_primary_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """``max_filtered_share`` high enough that sampling never stops for it: every batch is
    emptied by the filters, which used to end in "primary key 'id' ... exhausted"."""
    out = tmp_path / "s.parquet"
    filters = (
        {"screen": remove_everything}
        if how == "screen"
        else {"row_filter": lambda frame: frame.iloc[0:0]}
    )
    with caplog.at_level(logging.WARNING):
        rows, _ = sample_to_parquet(
            Rows(),
            1_000,
            SCHEMA,
            out,
            "t",
            primary_key="id",
            batch_rows=10,
            max_filtered_share=5.0,
            **filters,
        )
    assert rows == 0 and pq.read_table(out).num_rows == 0
    text = caplog.text
    assert "removed every row of 11 batches of 't' in a row" in text
    assert ("similarity filter" if how == "screen" else "privacy filter") in text
    assert "exhausted" not in text


def test_an_exhausted_primary_key_is_still_named(tmp_path: Path) -> None:
    class SameIds(Rows):
        def sample(self, num_rows: int) -> dict[str, pd.DataFrame]:
            return {"t": pd.DataFrame({"id": [1] * num_rows, "x": [0.5] * num_rows})}

    with pytest.raises(RuntimeError, match="primary key 'id'.*exhausted"):
        sample_to_parquet(
            SameIds(), 50, SCHEMA, tmp_path / "s.parquet", "t", primary_key="id", batch_rows=5
        )


def test_the_stop_warning_names_the_filters_and_settings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        sample_to_parquet(
            Rows(),
            100,
            SCHEMA,
            tmp_path / "s.parquet",
            "t",
            batch_rows=10,
            screen=remove_everything,
        )
    text = caplog.text
    assert "The privacy filters removed" in text and "(similarity filter " in text
    for setting in ("similarity_filter", "outlier_filter", "max_filtered_share", "holdout_share"):
        assert setting in text


def test_a_shards_weighed_columns_travel_in_its_sampling_state(tmp_path: Path) -> None:
    from airflow_synth.core.assess.assessment import SamplingState

    blame = {"outlier": {"rows": 12, "columns": {"x": 9.5, "y": 2.5}}}
    state = SamplingState(10, 10, {"outlier": 12}, {}, {}, blame)
    assert SamplingState.load(state.save(tmp_path / "state.npz")).blame == blame


def test_a_run_whose_gates_are_only_reported_trains_anyway_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A dry run (``enforce_gates_=False``) wants its reports: the same message, logged."""
    path = staged(tmp_path, fakes.customers(40, 1))
    with caplog.at_level(logging.WARNING, logger="airflow_synth.core.assess.limits"):
        result = run_synthesize(
            path,
            tmp_path / "out",
            dataset="tiny",
            spec=fake("Faithful"),
            seed=1,
            enforce_gates_=False,
        )
    assert result["rows"] == 40
    assert "Table 'tiny' is too small to train and hold out" in caplog.text
    assert "only reported in this run: training anyway" in caplog.text
    with pytest.raises(DataError):  # and enforced again outside that run
        run_synthesize(path, tmp_path / "again", dataset="tiny", spec=fake("Faithful"), seed=1)
