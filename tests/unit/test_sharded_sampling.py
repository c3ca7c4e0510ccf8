"""Train once, sample in shards, assess the union (``airflow_synth.core.steps.sharded``).

The ready-made DAGs run the three parts as separate tasks on whatever workers Celery or
Kubernetes picks; these tests run them as separate "tasks" here (each part loads what the
previous one saved, nothing shared in memory) and pin what users rely on: the same seed
and shard count give the same rows wherever the shards run, shards never issue the same
key, and the union is judged as one table.
"""

from __future__ import annotations

import json
from pathlib import Path

import fake_synthesizers as fakes
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_synth.core.assess.assessment import SamplingState
from airflow_synth.core.assess.checks import CheckSettings
from airflow_synth.core.assess.privacy import MeasurementSample, RowMeasurements
from airflow_synth.core.engine.fresh import FreshValues, shard_of_values
from airflow_synth.core.engine.shards import MAX_SHARDS, Shard, plan_shards, shard_count
from airflow_synth.core.engine.synthesizers import resolve_synthesizer
from airflow_synth.core.errors import SynthesizerConfigError
from airflow_synth.core.profile.roles import ColumnRole
from airflow_synth.core.steps import (
    ShardSample,
    TableFit,
    finish_shards,
    run_synthesize,
    sample_shard,
    train_table,
)
from airflow_synth.core.steps.finish import _Run

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

NO_QUALITY_GATES = CheckSettings.from_mapping({"min_quality": None, "min_dependence": None})


def _staged(tmp_path: Path, rows: int = 600) -> Path:
    """A customer table with a primary key and an e-mail column (both issued fresh)."""
    frame = fakes.customers(rows, 3)
    frame.insert(0, "customer_id", np.arange(1000, 1000 + rows, dtype="int64"))
    frame["email"] = [f"person{i}@example.org" for i in range(rows)]
    path = tmp_path / "real.parquet"
    frame.to_parquet(path, index=False)
    return path


def _parts(result: dict) -> pd.DataFrame:
    paths = [Path(uri.removeprefix("file://")) for uri in result["part_uris"]]
    return pd.concat([pq.read_table(p).to_pandas() for p in paths], ignore_index=True)


# -- the plan -------------------------------------------------------------------------------


def test_the_plan_cuts_rows_into_near_equal_shards_with_distinct_seeds() -> None:
    plan = plan_shards(10, seed=5, shards=3)
    assert [s.rows for s in plan] == [4, 3, 3]
    assert [s.index for s in plan] == [0, 1, 2] and {s.count for s in plan} == {3}
    assert len({s.seed for s in plan}) == 3
    assert plan == plan_shards(10, seed=5, shards=3)  # every worker derives the same plan
    assert [s.seed for s in plan] != [s.seed for s in plan_shards(10, seed=6, shards=3)]


def test_by_default_no_shard_has_more_than_the_limit() -> None:
    assert shard_count(2_500_000) == 3  # one per million rows
    assert shard_count(1_000_000) == 1
    assert shard_count(10, max_rows=4) == 3
    assert shard_count(2, shards=5) == 2  # never more shards than rows
    assert plan_shards(7, seed=1) == [Shard(0, 1, 7, 1)]  # one shard: the run's own seed


@pytest.mark.parametrize("shards", [0, -1, MAX_SHARDS + 1])
def test_an_impossible_shard_count_is_refused_with_the_way_out(shards: int) -> None:
    with pytest.raises(SynthesizerConfigError, match="shards"):
        shard_count(10**9, shards=shards)


def test_a_shard_travels_through_xcom_and_a_wrong_one_is_named() -> None:
    shard = Shard(1, 4, 250, 99)
    assert Shard.from_dict(json.loads(json.dumps(shard.to_dict()))) == shard
    with pytest.raises(SynthesizerConfigError, match="train task's 'shards' XCom"):
        Shard.from_dict({"index": 1})


# -- fresh values in shards -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "real"),
    [
        ("integer", pd.Series(np.arange(100_000, 100_500), dtype="int64")),
        ("email", pd.Series([f"user{i}@shop.test" for i in range(500)])),
        ("uuid", pd.Series([f"00000000-0000-4000-8000-{i:012d}" for i in range(500)])),
    ],
)
def test_shards_never_issue_the_same_key(kind: str, real: pd.Series) -> None:
    role = ColumnRole("id", "key", kind, "primary key")
    issued = [
        set(FreshValues(role, real, seed=7, shard=(index, 4, 100 + index)).draw(2_000))
        for index in range(4)
    ]
    for index, values in enumerate(issued):
        assert len(values) == 2_000  # unique within the shard
        assert not values & set(real)  # and never a real value
        for other in issued[index + 1 :]:
            assert not values & other
    if kind != "integer":
        owners = shard_of_values(np.array(sorted(issued[2]), dtype=object), 4)
        assert set(owners.tolist()) == {2}


def test_repeated_identifiers_come_from_one_pool_shared_by_every_shard() -> None:
    """A user id on many rows: every shard draws from the same fresh ids, so the union keeps
    the real rows-per-id shape instead of multiplying the ids by the shard count."""
    real = pd.Series(np.repeat(np.arange(500_000, 500_050), 20), dtype="int64")
    role = ColumnRole("user_id", "pii", "identifier", "repeats")
    drawn = [
        set(FreshValues(role, real, seed=3, shard=(index, 3, 50 + index)).draw(1_000))
        for index in range(3)
    ]
    assert len(set().union(*drawn)) <= 50
    assert drawn[0] & drawn[1]


# -- the privacy sample merges --------------------------------------------------------------


def test_merged_measurement_samples_keep_the_smallest_keys_of_all() -> None:
    import dataclasses

    from airflow_synth.core.assess.privacy import _Measured  # noqa: PLC2701

    def measured(values: np.ndarray) -> RowMeasurements:
        return _Measured(*(values.astype(float) for _ in dataclasses.fields(_Measured)))

    first, second = MeasurementSample(50, seed=1), MeasurementSample(50, seed=2)
    first.add(measured(np.arange(100)))
    second.add(measured(np.arange(1000, 1100)))
    union_keys = np.sort(np.concatenate([first.arrays()["keys"], second.arrays()["keys"]]))
    first.merge(second.arrays())
    assert first.seen == 200
    assert np.array_equal(np.sort(first.arrays()["keys"]), union_keys[:50])
    dcr = first.rows.dcr
    assert ((dcr < 100) | (dcr >= 1000)).all() and len(dcr) == 50


# -- train, sample, assess as separate tasks ------------------------------------------------


def _as_separate_tasks(tmp_path: Path, real: Path, shards: int, seed: int = 11) -> dict:
    """train -> every shard -> assess, each loading what the one before saved."""
    train_dir, assess_dir = tmp_path / "train", tmp_path / "assess"
    fit = train_table(
        real,
        dataset="customers",
        spec=resolve_synthesizer("gaussian_copula"),
        seed=seed,
        checks=NO_QUALITY_GATES,
        shards=shards,
    )
    staged_fit = fit.save(train_dir / "fit.pkl")
    plan = json.loads(json.dumps(fit.plan()))  # through XCom
    del fit
    shard_results = []
    for shard in plan:  # each in a "task" of its own: a fresh load of the staged fit
        out = tmp_path / f"shard{shard['index']}"
        sample = sample_shard(TableFit.load(staged_fit), real, Shard.from_dict(shard), out)
        shard_results.append(json.loads(json.dumps(sample.to_dict())))
    return finish_shards(
        TableFit.load(staged_fit),
        real,
        [ShardSample.from_dict(r) for r in reversed(shard_results)],  # any order
        assess_dir,
        _Run("customers", seed, 1.0, NO_QUALITY_GATES, None, None, True, None),
    )


def test_shards_run_as_separate_tasks_equal_shards_run_in_one_process(tmp_path: Path) -> None:
    real = _staged(tmp_path)
    mapped = _as_separate_tasks(tmp_path / "mapped", real, shards=3)
    in_process = run_synthesize(
        real,
        tmp_path / "one",
        dataset="customers",
        spec=resolve_synthesizer("gaussian_copula"),
        seed=11,
        checks=NO_QUALITY_GATES,
        shards=3,
    )
    assert len(mapped["part_uris"]) == 3 and mapped["synthetic_uri"] is None
    pd.testing.assert_frame_equal(_parts(mapped), _parts(in_process))
    assert mapped["rows"] == in_process["rows"] == 600
    for score in ("quality_score", "exact_match_rate", "dcr_share", "nndr_median"):
        assert mapped["scores"][score] == in_process["scores"][score], score
    assert [s["rows"] for s in mapped["shards"]] == [200, 200, 200]


def test_same_seed_and_shard_count_give_the_same_rows(tmp_path: Path) -> None:
    real = _staged(tmp_path)
    first = _as_separate_tasks(tmp_path / "a", real, shards=2)
    again = _as_separate_tasks(tmp_path / "b", real, shards=2)
    other_seed = _as_separate_tasks(tmp_path / "c", real, shards=2, seed=12)
    pd.testing.assert_frame_equal(_parts(first), _parts(again))
    assert not _parts(first).equals(_parts(other_seed))


def test_the_union_of_shards_is_one_table_with_fresh_unique_keys(tmp_path: Path) -> None:
    real = _staged(tmp_path)
    result = _as_separate_tasks(tmp_path, real, shards=4)
    union, original = _parts(result), pd.read_parquet(real)
    assert len(union) == 600 and list(union.columns) == list(original.columns)
    assert union["customer_id"].is_unique and union["email"].is_unique
    assert not set(union["customer_id"]) & set(original["customer_id"])
    assert not set(union["email"]) & set(original["email"])
    assert result["scores"]["pii_leak"] == 0
    privacy = json.loads(
        Path(result["report_uris"]["privacy.json"].removeprefix("file://")).read_text()
    )
    assert privacy["rows"]["sampled"] >= 600  # every shard's raw rows were judged together
    assert privacy["measured_on"] == "raw sample, before the filters"


def test_assess_refuses_a_missing_shard(tmp_path: Path) -> None:
    real = _staged(tmp_path, rows=300)
    fit = train_table(
        real,
        dataset="customers",
        spec=resolve_synthesizer("gaussian_copula"),
        seed=2,
        checks=NO_QUALITY_GATES,
        shards=2,
    )
    only = sample_shard(fit, real, fit.shards[0], tmp_path / "s0")
    run = _Run("customers", 2, 1.0, NO_QUALITY_GATES, None, None, True, None)
    with pytest.raises(ValueError, match="not the shards planned"):
        finish_shards(fit, real, [only], tmp_path / "assess", run)


def test_a_sampling_state_keeps_numbers_only(tmp_path: Path) -> None:
    real = _staged(tmp_path, rows=300)
    fit = train_table(
        real,
        dataset="customers",
        spec=resolve_synthesizer("gaussian_copula"),
        seed=2,
        checks=NO_QUALITY_GATES,
        shards=2,
    )
    sample = sample_shard(fit, real, fit.shards[1], tmp_path / "s1")
    path = sample.state.save(tmp_path / "state.npz")
    loaded = SamplingState.load(path)
    assert loaded.sampled_rows == sample.state.sampled_rows >= 150
    with np.load(path, allow_pickle=False) as data:  # no pickled objects, no text but meta
        kinds = {data[name].dtype.kind for name in data.files if name != "meta"}
    assert kinds <= {"f", "i", "u", "b"}


def test_a_sharded_table_is_published_as_parts_of_one_table(tmp_path: Path) -> None:
    """The manifest lists the parts (rows each) under the table's folder, which any Parquet
    reader reads whole; ``rows`` is the union's."""
    from airflow_synth.core.publish.layout import DatasetLayout
    from airflow_synth.core.publish.store import FileObjectStore
    from airflow_synth.core.steps import run_load

    real = _staged(tmp_path, rows=300)
    result = run_synthesize(
        real,
        tmp_path / "out",
        dataset="customers",
        spec=resolve_synthesizer("gaussian_copula"),
        seed=4,
        checks=NO_QUALITY_GATES,
        shards=3,
    )
    store = FileObjectStore(tmp_path / "bucket")
    layout = DatasetLayout("synthetic", "customers", "run1")
    published = run_load(
        store,
        layout,
        synthetic_path=[Path(u.removeprefix("file://")) for u in result["part_uris"]],
        metadata_path=Path(result["metadata_uri"].removeprefix("file://")),
        source={},
        synthesis=result,
        timings={},
    )
    manifest = json.loads(store.get_bytes(layout.manifest_key))
    table = manifest["tables"]["customers"]
    assert manifest["rows"] == table["rows"] == 300
    assert [p["rows"] for p in table["parts"]] == [100, 100, 100]
    attempt = layout.for_attempt(published["attempt"])
    assert table["uri"] == layout.uri(attempt.key("data")) + "/"
    assert [p["uri"].rsplit("/", 2)[-2:] for p in table["parts"]][0] == [
        "data",
        "part-00000.parquet",
    ]
    assert len(manifest["synthesis"]["shards"]) == 3
    folder = tmp_path / "bucket" / attempt.key("data")  # only this attempt's parts
    assert len(pd.read_parquet(folder)) == 300
