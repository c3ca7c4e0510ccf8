"""One pipeline for a table and a table set (``airflow_synth.core.steps``).

A single feature table is a table set of one: it is split, fitted, sampled and published
by the same code as each table of a set. These tests pin what that buys each side:
an unrelated table inside a set gets the single table's filtered, topped-up sampling; the
tables of a set get the single table's holdout rule; and a single table's publication is
a manifest any set reader understands.
"""

from __future__ import annotations

import json
from pathlib import Path

import fake_synthesizers as fakes
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_synth.core.assess.checks import CheckSettings
from airflow_synth.core.engine.set_run import split_per_table
from airflow_synth.core.engine.synthesizers import SynthesizerSpec, resolve_synthesizer
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.core.publish.store import FileObjectStore
from airflow_synth.core.relations import TableShape, build_table_set
from airflow_synth.core.steps import run_load
from airflow_synth.core.steps.synthesize import synthesize_set

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]


def _staged_set(tmp_path: Path) -> tuple[dict[str, Path], object, dict[str, pd.DataFrame]]:
    """users -> sessions, plus an unrelated customers table."""
    frames = {**fakes.users_sessions(150, 7), "customers": fakes.customers(400, 11)}
    real = tmp_path / "real"
    real.mkdir()
    paths = {}
    for name, frame in frames.items():
        paths[name] = real / f"{name}.parquet"
        frame.to_parquet(paths[name], index=False)
    shapes = {
        "users": TableShape("users", tuple(frames["users"].columns), ("id",)),
        "sessions": TableShape("sessions", tuple(frames["sessions"].columns), ("sid",)),
        "customers": TableShape("customers", tuple(frames["customers"].columns)),
    }
    table_set = build_table_set(shapes, declared=["sessions.user_id -> users.id"])
    return paths, table_set, frames


def test_an_unrelated_table_of_a_set_is_sampled_like_a_single_table(tmp_path: Path) -> None:
    """A model that replays 30% of its training rows: in the unrelated table every
    replayed row is filtered and replaced by a row of its stratum, so the table keeps the
    asked-for size (a leaf child table would only drop rows)."""
    paths, table_set, frames = _staged_set(tmp_path)
    copier = SynthesizerSpec("memoriser", "fake_synthesizers.Memoriser", {"rate": 0.3})
    copula = resolve_synthesizer("gaussian_copula")
    result = synthesize_set(
        paths,
        table_set,
        tmp_path / "run",
        dataset="shop",
        specs={"users": copula, "sessions": copula, "customers": copier},
        seed=4,
        checks=CheckSettings.from_mapping({"min_quality": None, "min_dependence": None}),
        enforce_gates_=False,  # the copier fails its privacy gates; the outputs are checked
    )
    customers = pq.read_table(result["table_files"]["customers"]).to_pandas()
    assert len(customers) == len(frames["customers"])  # every filtered row replaced
    privacy = json.loads(Path(result["report_files"]["reports/customers/privacy.json"]).read_text())
    similarity = privacy["filtered"]["similarity"]
    assert similarity["replaced"] > 0.2 * len(customers)  # ~30% replayed, each replaced
    assert similarity["not_replaced"] == 0
    assert privacy["exact_match_rate"] == pytest.approx(0.3, abs=0.06)  # judged on the raw sample
    assert privacy["published"]["exact_match_rate"] == 0.0
    gates = {g["metric"] for g in result["gates"]}
    assert {"customers.rules_held", "customers.exact_match_rate", "referential_integrity"} <= gates


def test_the_split_holds_out_rows_equal_on_the_given_columns_together() -> None:
    """Rows equal on the given columns (a standalone table's modelled columns, as for a
    single table) are one group: never split between training and holdout (a duplicate on
    both sides would be a held-out row at distance 0)."""
    rng = np.random.default_rng(0)
    values = rng.integers(0, 40, 2_000)  # ~50 copies of each value
    frame = pd.DataFrame({"key": np.arange(2_000), "value": values, "flag": values % 2 == 0})
    train, holdout = split_per_table({"events": frame}, 0.2, None, 7, {"events": ["value", "flag"]})
    trained = set(frame.loc[train["events"], "value"])
    held = set(frame.loc[holdout["events"], "value"])
    assert held and not trained & held
    assert abs(len(holdout["events"]) - 400) <= 100  # about the asked-for share
    assert len(train["events"]) + len(holdout["events"]) == len(frame)


def test_a_single_table_publication_lists_its_table_like_a_set(tmp_path: Path) -> None:
    """The manifest of a single table names it under ``tables`` with its URI and load order,
    so the target load and every set reader understand it (and ``columns`` stays on top)."""
    synthetic = tmp_path / "synthetic.parquet"
    fakes.customers(50, 1).to_parquet(synthetic, index=False)
    metadata = tmp_path / "metadata.json"
    metadata.write_text("{}")
    store = FileObjectStore(tmp_path / "bucket")
    layout = DatasetLayout("synthetic", "customers", "run1")
    result = run_load(
        store,
        layout,
        synthetic_path=synthetic,
        metadata_path=metadata,
        source={"sql_file": "customers.sql"},
        synthesis={"rows": 50},
        timings={"extract": 1.0},
    )
    manifest = json.loads(store.get_bytes(layout.manifest_key))
    assert manifest["kind"] == "table"
    assert manifest["load_order"] == ["customers"]
    data = layout.for_attempt(result["attempt"]).key("data.parquet")
    assert manifest["tables"]["customers"]["uri"] == layout.uri(data)
    assert manifest["tables"]["customers"]["rows"] == 50
    assert [c["name"] for c in manifest["columns"]] == list(fakes.customers(1, 1).columns)
    assert result["tables"] == {"customers": layout.uri(data)}


def test_a_big_table_is_trained_on_a_bounded_sample_and_sampled_in_full(tmp_path: Path) -> None:
    """``max_training_rows`` bounds what the model learns from, not what is published; the
    bound is recorded for the manifest."""
    from airflow_synth.core.steps import run_synthesize

    real = tmp_path / "real.parquet"
    fakes.customers(3_000, 5).to_parquet(real, index=False)
    out = tmp_path / "out"
    out.mkdir()
    result = run_synthesize(
        real,
        out,
        dataset="customers",
        spec=resolve_synthesizer("gaussian_copula"),
        num_rows=2_500,
        seed=1,
        checks=CheckSettings.from_mapping({"min_dependence": None}),
        enforce_gates_=False,
        max_training_rows=500,
    )
    assert result["training_rows"] == 500
    assert result["max_training_rows"] == 500
    # only a seeded sample big enough for the bound after the holdout was read into pandas
    # (667 rows: 500 / 0.8 with a 5% margin), and the holdout was taken from it
    assert 100 <= result["holdout_rows"] <= 167
    assert pq.read_metadata(result["synthetic_uri"].removeprefix("file://")).num_rows == 2_500


def test_a_table_without_relationships_is_read_capped_before_pandas(tmp_path: Path) -> None:
    """Memory follows max_training_rows, not the staged table's size: the rows read (and
    read again by each fit task) are a seeded sample, the same every time; the manifest
    still reports the staged count."""
    from airflow_synth.core.publish.tables import table_of_one
    from airflow_synth.core.steps.fit import prepare_per_table, row_caps, trained_per_table

    real = tmp_path / "real.parquet"
    fakes.customers(5_000, 5).to_parquet(real, index=False, row_group_size=700)
    table_set = table_of_one("customers", real)
    checks = CheckSettings.from_mapping({"min_dependence": None, "min_quality": None})
    settings = {
        "dataset": "customers",
        "seed": 3,
        "checks": checks,
        "contracts": {},
        "max_training_rows": 400,
        "fixed_combinations": True,
        "max_orphan_share": 0.05,
        "require_model": True,
    }
    specs = {"customers": resolve_synthesizer("gaussian_copula")}
    prepared = prepare_per_table({"customers": real}, table_set, specs, **settings)
    cap = row_caps(table_set, 400, checks.holdout_share)["customers"]
    first = prepared.real({"customers": real})["customers"]
    assert len(first) == cap < 5_000
    pd.testing.assert_frame_equal(first, prepared.real({"customers": real})["customers"])
    full = pd.read_parquet(real)
    assert len(first.merge(full, how="inner")) == cap  # real rows, not invented ones
    assert first.index.is_unique
    trained = trained_per_table(prepared, {"customers": first}, {}, seed=3, scale=1, fit_seconds=0)
    assert trained.split["tables"]["customers"]["real_rows"] == 5_000
    assert len(trained.train["customers"]) == 400
    assert row_caps(table_set, None, 0.2) == {}  # no bound: every row


def _extracted(tmp_path: Path) -> dict:
    """The extract step's result for users -> sessions plus an unrelated customers table."""
    paths, table_set, _ = _staged_set(tmp_path)
    return {
        "tables": {name: {"staging_uri": path.resolve().as_uri()} for name, path in paths.items()},
        "table_set": table_set.to_dict(),
    }


def test_a_sets_tables_fitted_in_separate_tasks_give_the_same_set(tmp_path: Path) -> None:
    """The ready-made chain prepares the set once, fits each table in a mapped task of its
    own (each loading the staged preparation, nothing shared in memory), and samples in one
    task: the published set equals the one fitted and sampled in one process."""
    from airflow_synth.core.steps import (
        PerTablePrepared,
        dump_staged,
        fit_multitable_table,
        load_staged,
        prepare_multitable,
        run_multitable_synthesize,
    )

    extracted = _extracted(tmp_path)
    checks = CheckSettings.from_mapping({"min_quality": None, "min_dependence": None})
    settings = {"dataset": "shop", "seed": 4, "checks": checks}
    in_process = run_multitable_synthesize(extracted, tmp_path / "one", **settings)
    staged = dump_staged(prepare_multitable(extracted, **settings), tmp_path / "prepared.pkl")
    names = load_staged(staged, PerTablePrepared).to_fit
    models = {}
    for name in reversed(names):  # each a task of its own, in any order: a fresh load
        model, _ = fit_multitable_table(load_staged(staged, PerTablePrepared), extracted, name)
        models[name] = load_staged(dump_staged(model, tmp_path / f"{name}.pkl"))
    mapped = run_multitable_synthesize(
        extracted,
        tmp_path / "mapped",
        prepared=load_staged(staged, PerTablePrepared),
        models=models,
        **settings,
    )
    assert sorted(names) == ["customers", "sessions", "users"]
    for name in names:
        pd.testing.assert_frame_equal(
            pq.read_table(mapped["table_files"][name]).to_pandas(),
            pq.read_table(in_process["table_files"][name]).to_pandas(),
        )
    assert mapped["scores"]["quality_score"] == in_process["scores"]["quality_score"]
    assert mapped["integrity"]["score"] == 1.0
