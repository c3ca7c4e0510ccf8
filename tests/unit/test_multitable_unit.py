"""Multi-table checks, metadata, and a tiny HMA run through synthesize -> publish."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_synth.core.assess.checks import CheckSettings
from airflow_synth.core.assess.set_quality import cardinality_report, check_integrity
from airflow_synth.core.engine.hma import build_multitable_metadata
from airflow_synth.core.errors import QualityGateError
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.core.publish.store import FileObjectStore
from airflow_synth.core.relations import TableSet, TableShape, build_table_set
from airflow_synth.core.steps import run_multitable_publish, run_multitable_synthesize

pytestmark = pytest.mark.unit


def make_set(frames: dict[str, pd.DataFrame], rels: list[str], keys: dict[str, str]) -> TableSet:
    shapes = {
        name: TableShape(name, tuple(frame.columns), (keys[name],) if name in keys else ())
        for name, frame in frames.items()
    }
    return build_table_set(shapes, declared=rels)


RELS = ["sessions.user_id -> users.id"]
KEYS = {"users": "id", "sessions": "sid"}


def hand_made() -> dict[str, pd.DataFrame]:
    users = pd.DataFrame({"id": ["a", "b", "c", "d"], "age": [30, 40, 50, 60]})
    sessions = pd.DataFrame(
        {"sid": [1, 2, 3, 4, 5, 6], "user_id": ["a", "a", "a", "b", "d", "d"], "x": range(6)}
    )
    return {"users": users, "sessions": sessions}


# -- check_integrity -----------------------------------------------------------------------


def test_integrity_of_a_clean_set_is_one() -> None:
    frames = hand_made()
    report = check_integrity(frames, make_set(frames, RELS, KEYS))
    assert report["score"] == 1.0
    assert report["passed"] is True
    assert report["primary_keys"]["users"] == {
        "column": "id",
        "rows": 4,
        "nulls": 0,
        "duplicates": 0,
    }
    assert report["relationships"] == [
        {
            "relationship": "sessions.user_id -> users.id",
            "rows": 6,
            "orphans": 0,
            "nulls": 0,
            "integrity": 1.0,
        }
    ]


def test_a_planted_orphan_lowers_the_score_and_fails() -> None:
    frames = hand_made()
    table_set = make_set(frames, RELS, KEYS)
    frames["sessions"].loc[5, "user_id"] = "zz"  # points nowhere
    frames["sessions"].loc[4, "user_id"] = None
    report = check_integrity(frames, table_set)
    assert report["passed"] is False
    assert report["score"] == pytest.approx(4 / 6, abs=1e-6)
    rel = report["relationships"][0]
    assert (rel["orphans"], rel["nulls"]) == (1, 1)


@pytest.mark.parametrize(
    ("ids", "nulls", "duplicates"), [(["a", "b", "b", "d"], 0, 1), (["a", None, "c", "d"], 1, 0)]
)
def test_bad_primary_keys_fail_integrity(ids: list, nulls: int, duplicates: int) -> None:
    frames = hand_made()
    table_set = make_set(frames, RELS, KEYS)
    frames["users"]["id"] = ids
    frames["sessions"]["user_id"] = "a"  # keep the FKs valid: the keys alone must fail it
    report = check_integrity(frames, table_set)
    assert report["passed"] is False
    assert report["score"] == 1.0
    assert report["primary_keys"]["users"]["nulls"] == nulls
    assert report["primary_keys"]["users"]["duplicates"] == duplicates


def test_cardinality_report_numbers() -> None:
    real = hand_made()  # children per user: a 3, b 1, c 0, d 2
    synthetic = {
        "users": pd.DataFrame({"id": ["p", "q"], "age": [1, 2]}),
        "sessions": pd.DataFrame({"sid": [1, 2, 3, 4], "user_id": ["p"] * 4, "x": range(4)}),
    }
    report = cardinality_report(real, synthetic, make_set(real, RELS, KEYS))
    assert report == [
        {
            "relationship": "sessions.user_id -> users.id",
            "real": {"parents": 4, "mean": 1.5, "median": 1.5, "p90": 2.7, "zero_share": 0.25},
            "synthetic": {"parents": 2, "mean": 2.0, "median": 2.0, "p90": 3.6, "zero_share": 0.5},
        }
    ]


# -- metadata ------------------------------------------------------------------------------


def test_metadata_uses_declared_relationships_only() -> None:
    rng = np.random.default_rng(0)
    users = pd.DataFrame({"user_id": [f"u{i}" for i in range(30)], "age": rng.integers(18, 70, 30)})
    orders = pd.DataFrame(
        {
            "order_id": np.arange(90),
            "user_id": np.resize(users["user_id"].to_numpy(), 90),
            "amount": rng.random(90),
        }
    )
    promos = pd.DataFrame(  # named like a FK to users, deliberately NOT declared
        {"promo_id": np.arange(20), "user_id": np.resize(users["user_id"].to_numpy(), 20)}
    )
    frames = {"users": users, "orders": orders, "promos": promos}
    table_set = make_set(
        frames,
        ["orders.user_id -> users.user_id"],
        {"users": "user_id", "orders": "order_id", "promos": "promo_id"},
    )
    metadata = build_multitable_metadata(frames, table_set).to_dict()
    assert [
        (r["parent_table_name"], r["child_table_name"], r["child_foreign_key"])
        for r in metadata["relationships"]
    ] == [("users", "orders", "user_id")]
    tables = metadata["tables"]
    assert tables["users"]["primary_key"] == "user_id"
    assert tables["orders"]["primary_key"] == "order_id"
    assert tables["promos"]["primary_key"] == "promo_id"
    assert tables["orders"]["columns"]["user_id"]["sdtype"] == "id"
    assert tables["orders"]["columns"]["order_id"]["sdtype"] == "id"
    assert tables["orders"]["columns"]["amount"]["sdtype"] == "numerical"


def test_metadata_sets_a_numeric_key_to_id_and_drops_a_guessed_primary_key() -> None:
    users = pd.DataFrame({"id": np.arange(40), "code": [f"x{i}" for i in range(40)]})
    sessions = pd.DataFrame({"user_id": np.resize(np.arange(40), 100), "v": np.arange(100) % 7})
    frames = {"users": users, "sessions": sessions}
    table_set = make_set(frames, ["sessions.user_id -> users.id"], {"users": "id"})
    metadata = build_multitable_metadata(frames, table_set).to_dict()["tables"]
    assert metadata["users"]["primary_key"] == "id"
    assert metadata["users"]["columns"]["id"]["sdtype"] == "id"
    assert metadata["sessions"]["columns"]["user_id"]["sdtype"] == "id"
    assert metadata["sessions"].get("primary_key") is None


# -- a tiny HMA run ------------------------------------------------------------------------


def tiny_users_sessions(n_users: int = 60, seed: int = 1) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    users = pd.DataFrame(
        {
            "id": [f"user{i:03d}" for i in range(n_users)],
            "age": rng.integers(18, 70, n_users),
            "plan": rng.choice(["free", "pro", "team"], n_users, p=[0.6, 0.3, 0.1]),
        }
    )
    counts = rng.integers(0, 6, n_users)
    sessions = pd.DataFrame(
        {
            "sid": np.arange(counts.sum(), dtype="int64"),
            "user_id": np.repeat(users["id"].to_numpy(), counts),
            "device": rng.choice(["web", "ios", "android"], counts.sum()),
            "secs": rng.gamma(2.0, 50.0, counts.sum()).round(1),
        }
    )
    return {"users": users, "sessions": sessions}


def extracted_for(tmp_path: Path, frames: dict[str, pd.DataFrame]) -> dict:
    """What run_multitable_extract returns, for hand-made tables."""
    real = tmp_path / "staging" / "real"
    real.mkdir(parents=True)
    tables = {}
    for name, frame in frames.items():
        path = real / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        tables[name] = {"staging_uri": path.resolve().as_uri(), "rows": len(frame)}
    return {
        "staging_dir": str(real.parent),
        "schema": "public",
        "tables": tables,
        "table_set": make_set(frames, RELS, KEYS).to_dict(),
    }


RELAXED = CheckSettings(
    holdout_share=0.2,
    min_quality=0.0,
    min_dependence=None,  # 48 users: not measurable, so waived (unmeasured fails closed)
    max_exact_match_rate=1.0,
    max_dcr_share=1.0,
)


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict, Path]:
    tmp = tmp_path_factory.mktemp("hma")
    frames = tiny_users_sessions()
    store_root = tmp / "store"
    result = run_multitable_synthesize(
        extracted_for(tmp, frames),
        tmp / "run",
        dataset="tiny_set",
        seed=5,
        max_parents=None,
        engine="hma",  # these tests are about the HMA path
        checks=RELAXED,
        save_model=True,
        layout=DatasetLayout("synthetic", "tiny_set", "run1"),
    )
    return tmp, frames, result, store_root


def test_hma_output_is_referentially_intact(synthesized) -> None:
    _, frames, result, _ = synthesized
    users = pd.read_parquet(result["table_files"]["users"])
    sessions = pd.read_parquet(result["table_files"]["sessions"])
    assert set(sessions["user_id"]) <= set(users["id"])  # every FK hits a synthetic parent
    assert sessions["user_id"].notna().all()
    assert users["id"].is_unique and sessions["sid"].is_unique
    assert not set(users["id"]) & set(frames["users"]["id"])  # keys are generated, not copied
    assert list(users.columns) == list(frames["users"].columns)
    assert list(sessions.columns) == list(frames["sessions"].columns)
    assert result["integrity"] == {"score": 1.0, "passed": True}
    # scale 1: as many parents as were trained on (48 of 60 after the 20% holdout)
    assert result["subset"]["tables"]["users"]["training_rows"] == 48
    assert result["rows"]["users"] == 48
    assert result["rows"] == {"users": len(users), "sessions": len(sessions)}
    assert set(sessions["device"]) <= {"web", "ios", "android"}


def test_hma_gates_are_listed_per_table(synthesized) -> None:
    _, _, result, _ = synthesized
    metrics = [g["metric"] for g in result["gates"]]
    assert metrics[0] == "referential_integrity"
    assert "quality_score" in metrics
    for table in ("users", "sessions"):
        assert f"{table}.dependence_preservation" in metrics
    assert "users.dcr_share" in metrics and "users.exact_match_rate" in metrics
    assert f"{'users'}.quality_score" not in metrics  # the set-level score is the gate
    assert all(g["passed"] for g in result["gates"])
    quality = json.loads(Path(result["quality_uri"].removeprefix("file://")).read_text())
    assert quality["integrity"]["score"] == 1.0
    assert 0 < quality["score"] <= 1
    assert [c["relationship"] for c in quality["cardinality"]] == ["sessions.user_id -> users.id"]
    assert quality["cardinality"][0]["real"]["parents"] == 48


def test_hma_model_is_saved_for_the_publish_step_and_nowhere_else(synthesized) -> None:
    tmp, _, result, store_root = synthesized
    model = Path(result["model_files"]["model.pkl"].removeprefix("file://"))
    assert model.stat().st_size > 0 and model.is_relative_to(tmp / "run")
    info = json.loads(Path(result["model_files"]["model.json"].removeprefix("file://")).read_text())
    assert info["synthesizer"]["tables"] == ["users", "sessions"]
    assert info["run"] == "run1" and info["dataset"] == "tiny_set"
    assert "model_uri" not in result  # the publish step decides where it goes
    assert not store_root.exists()  # nothing reached a bucket


def test_publish_writes_every_table_then_one_manifest(synthesized) -> None:
    tmp, _, result, _ = synthesized
    written: list[str] = []

    class Recording(FileObjectStore):
        def put_bytes(self, data: bytes, key: str) -> None:
            written.append(key)
            super().put_bytes(data, key)

    store = Recording(tmp / "published")
    layout = DatasetLayout("synthetic", "tiny_set", "run1")
    published = run_multitable_publish(
        store, layout, synthesis=result, source={"conn_id": "userbookings_db"}, timings={"fit": 1}
    )
    attempt = layout.for_attempt(published["attempt"])
    assert written.index(layout.manifest_key) == len(written) - 2  # then only latest.json
    assert written[-1] == layout.latest_key
    before = written[: written.index(layout.manifest_key)]
    assert before[-3:] == [attempt.model_key, attempt.model_info_key, attempt.attempt_manifest_key]
    assert attempt.key("tables/users.parquet") in before
    manifest = json.loads(store.get_bytes(layout.manifest_key))
    assert manifest["synthesis"]["model_uri"] == attempt.uri(attempt.model_key)
    assert manifest["kind"] == "multi_table"
    assert manifest["load_order"] == ["users", "sessions"]
    assert list(manifest["tables"]) == ["users", "sessions"]
    assert manifest["tables"]["sessions"]["rows"] == result["rows"]["sessions"]
    assert manifest["tables"]["users"]["primary_key"] == ["id"]
    assert manifest["rows"] == sum(result["rows"].values())
    assert manifest["relationships"] == [
        {
            "parent": "users",
            "parent_key": ["id"],
            "child": "sessions",
            "child_key": ["user_id"],
            "source": "declared",
        }
    ]
    assert manifest["synthesis"]["integrity"]["passed"] is True
    names = {entry["name"] for entry in manifest["files"]}
    assert {"tables/users.parquet", "tables/sessions.parquet", "quality.json"} <= names
    assert "reports/users/report.html" in names
    assert published["tables"]["users"] == attempt.uri(attempt.key("tables/users.parquet"))
    synthetic_users = pd.read_parquet(tmp / "published" / attempt.key("tables/users.parquet"))
    assert len(synthetic_users) == result["rows"]["users"]


def test_a_failing_gate_publishes_nothing_and_saves_no_model(tmp_path: Path) -> None:
    frames = tiny_users_sessions(seed=2)
    store_root = tmp_path / "store"
    strict = CheckSettings(
        holdout_share=0.2,
        min_quality=0.999,
        min_dependence=None,
        max_exact_match_rate=None,
        max_dcr_share=None,
    )
    with pytest.raises(QualityGateError, match="quality_score") as exc:
        run_multitable_synthesize(
            extracted_for(tmp_path, frames),
            tmp_path / "run",
            dataset="tiny_set",
            seed=5,
            max_parents=None,
            checks=strict,
            save_model=True,
            layout=DatasetLayout("synthetic", "tiny_set", "run2"),
        )
    assert "nothing was published" in str(exc.value)
    assert not store_root.exists() or not any(p.is_file() for p in store_root.rglob("*"))
    assert not list(tmp_path.rglob("model.pkl"))  # not even saved for a publish step


def test_fixed_combination_groups_find_near_functional_columns_only() -> None:
    """action fixes action_type/action_detail (an event log); device_type is independent."""
    from sdv.metadata import Metadata

    from airflow_synth.core.engine.combinations import fixed_combination_groups

    rng = np.random.default_rng(0)
    actions = np.array([f"a{i}" for i in range(30)])
    action = rng.choice(actions, 3_000)
    index = np.char.lstrip(action.astype(str), "a").astype(int)
    frame = pd.DataFrame(
        {
            "action": action,
            "action_type": np.array(["view", "click", "submit", None], dtype=object)[index % 4],
            "action_detail": np.array([f"d{i % 7}" for i in range(30)])[index],
            "device_type": rng.choice(["mac", "win", "iphone", "android"], 3_000),
            "secs": rng.exponential(100, 3_000),
        }
    )
    metadata = Metadata.detect_from_dataframes({"events": frame})
    for column in ("action", "action_type", "action_detail", "device_type"):
        metadata.update_column(column, table_name="events", sdtype="categorical")
    assert fixed_combination_groups(frame, metadata, "events") == [
        ["action", "action_type", "action_detail"]
    ]
    shuffled = frame.assign(action_type=rng.permutation(frame["action_type"].to_numpy()))
    assert fixed_combination_groups(shuffled, metadata, "events") == [["action", "action_detail"]]


def test_similarity_filter_runs_on_leaf_tables_whose_real_rows_do_not_repeat() -> None:
    from types import SimpleNamespace

    from airflow_synth.core.steps.fit import _filter_copies

    shapes = {
        "users": TableShape("users", ("id", "x"), ("id",)),
        "events": TableShape("events", ("user_id", "y")),
    }
    table_set = build_table_set(shapes, declared=["events.user_id -> users.id"])
    checks = CheckSettings()

    def assessor(filtering: bool, repeats: float) -> SimpleNamespace:
        return SimpleNamespace(
            filtering=filtering, copies_are_evidence=repeats <= 0.01, real_repeat_rate=repeats
        )

    assert _filter_copies(assessor(True, 0.0), table_set, "events", checks)
    assert not _filter_copies(assessor(True, 0.0), table_set, "users", checks)  # a parent
    # rows repeat: the filter runs for near copies; exact copies are kept by the assessor's
    # shared rule (SyntheticAssessor.copies_are_evidence, tested in test_privacy)
    assert _filter_copies(assessor(True, 0.3), table_set, "events", checks)
    assert not _filter_copies(assessor(False, 0.0), table_set, "events", checks)  # switched off


def test_a_near_unique_column_is_no_category_to_fix_combinations_with() -> None:
    """On a 300-row subset a 286-value clerk id 'determined' an order status (nearly every
    pair is unique when nearly every value is): such a column is not a category."""
    from sdv.metadata import Metadata

    from airflow_synth.core.engine.combinations import fixed_combination_groups

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "clerk": [f"c{i}" for i in [*range(286), *rng.choice(286, 14)]],
            "status": rng.choice(["open", "shipped", "returned"], 300),
        }
    )
    metadata = Metadata.detect_from_dataframes({"orders": frame})
    for column in frame.columns:
        metadata.update_column(column, table_name="orders", sdtype="categorical")
    assert fixed_combination_groups(frame, metadata, "orders") == []


def test_the_combination_switch_is_per_table_and_per_column() -> None:
    from sdv.metadata import Metadata

    from airflow_synth.core.engine.combinations import fixed_combination_groups, switch_for

    assert switch_for(True, "orders") == (True, ())
    assert switch_for({"orders": False}, "orders") == (False, ())
    assert switch_for({"orders": False}, "users") == (True, ())  # not named: on
    assert switch_for({"orders": ["clerk"]}, "orders") == (True, ("clerk",))
    rng = np.random.default_rng(2)
    code = rng.integers(0, 6, 2_000)
    frame = pd.DataFrame(
        {
            "plan": np.array([f"p{i}" for i in range(6)])[code],
            "tier": np.array(["basic", "basic", "pro", "pro", "max", "max"])[code],
            "region": np.array(["eu", "us", "eu", "us", "eu", "us"])[code],
        }
    )
    metadata = Metadata.detect_from_dataframes({"t": frame})
    for column in frame.columns:
        metadata.update_column(column, table_name="t", sdtype="categorical")
    assert fixed_combination_groups(frame, metadata, "t") == [["plan", "tier", "region"]]
    assert fixed_combination_groups(frame, metadata, "t", ["region"]) == [["plan", "tier"]]
