"""A suite of deliberately bad synthesizers: each must be refused, a faithful one must pass.

The fakes (:mod:`fake_synthesizers`) have SDV's API and do no training, so the 50,000-row
cases cost only the checks. "Refused" means :class:`QualityGateError` from the synthesize
step, with the reports written and no model saved (and so nothing for the load step to
publish). Each case also names the gate that must catch it, so a gate that silently stops
working turns a test red even when another gate happens to fail too.

Where a gate cannot catch an attack at a size, the test says so instead of hiding it: 5%
near copies of a 100-row table are 5 rows, and one in about 100 unseen real rows sits that
close to a training row anyway, so the near-copy limit there is 8% (privacy alone lets it
through; the default gates refuse it because relationships cannot be measured on 100 rows).

Below the rows the default gates need (375: 300 training rows for
``dependence_preservation`` at a 20% holdout) every synthesizer is refused before it is
trained (:mod:`airflow_synth.core.assess.limits`), with the minimum and how to waive.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import fake_synthesizers as fakes
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import airflow_synth.core.steps.fit as engine_fits
from airflow_synth.core.assess.checks import CheckSettings
from airflow_synth.core.engine.synthesizers import SynthesizerSpec
from airflow_synth.core.errors import DataError, QualityGateError
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.core.publish.store import FileObjectStore
from airflow_synth.core.relations import TableShape, build_table_set
from airflow_synth.core.steps import run_multitable_synthesize, run_synthesize

pytestmark = pytest.mark.unit

SIZES = [100, 299, 1_000, 50_000]
#: The fewest rows the default gates can be measured on (dependence: 300 training rows).
DEFAULT_MIN_ROWS = 375
#: name -> (fake class, params, the gate that must refuse it at each size with defaults)
BAD = {
    "copier": ("Memoriser", {}, "exact_match_rate"),
    "near_copier_5pct": ("NearCopier", {"rate": 0.05}, "near_copy_rate"),
    "near_copier_35pct": ("NearCopier", {"rate": 0.35}, "near_copy_rate"),
    "near_copier_100pct": ("NearCopier", {"rate": 1.0}, "near_copy_rate"),
    "shuffler": ("Shuffler", {}, "dependence_preservation"),
    "constant": ("Constant", {}, "quality_score"),
}
PRIVACY_ATTACKS = ["copier", "near_copier_5pct", "near_copier_35pct", "near_copier_100pct"]
PRIVACY_GATES = {"exact_match_rate", "near_copy_rate", "dcr_share", "filtered_share"}


@pytest.fixture(scope="module")
def real_tables(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Path]:
    """Staged "real" tables, written once: customers at every size, coarse at two."""
    folder = tmp_path_factory.mktemp("real")
    paths = {}
    for source, sizes in (("customers", SIZES), ("coarse", [1_000, 5_000])):
        for n in sizes:
            frame = fakes.SOURCES[source](n, 11)
            path = folder / f"{source}-{n}.parquet"
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
            paths[(source, n)] = path
    return paths


def spec(cls: str, **params: object) -> SynthesizerSpec:
    return SynthesizerSpec(name=cls.lower(), class_path=f"fake_synthesizers.{cls}", params=params)


def synthesize(path: Path, tmp_path: Path, synthesizer: SynthesizerSpec, checks: dict):
    store = FileObjectStore(tmp_path / "bucket")
    out = tmp_path / "out"
    out.mkdir(parents=True)
    result = run_synthesize(
        path,
        out,
        dataset="customers",
        spec=synthesizer,
        seed=3,
        save_model=True,
        layout=DatasetLayout("synthetic", "customers", "run1"),
        checks=CheckSettings.from_mapping(checks),
    )
    return result, store


def failed_gates(error: QualityGateError) -> set[str]:
    return set(re.findall(r"^\s+FAIL (\S+) =", str(error), flags=re.MULTILINE))


def refuse(path: Path, tmp_path: Path, synthesizer: SynthesizerSpec, checks: dict) -> set[str]:
    """Run, expect a refusal with reports and no model; return the failed gates."""
    with pytest.raises(QualityGateError, match="nothing was published") as failure:
        synthesize(path, tmp_path, synthesizer, checks)
    assert not list(tmp_path.rglob("model.pkl"))  # no model saved, so none published
    assert {"quality.json", "privacy.json", "report.html"} <= set(failure.value.reports)
    return failed_gates(failure.value)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", list(BAD))
def test_every_bad_synthesizer_is_refused_with_the_default_gates(
    real_tables, tmp_path: Path, name: str, size: int
) -> None:
    cls, params, gate = BAD[name]
    if size < DEFAULT_MIN_ROWS:  # too small for the default gates: refused before training
        with pytest.raises(DataError, match="dependence_preservation needs 300 training rows"):
            synthesize(real_tables[("customers", size)], tmp_path, spec(cls, **params), {})
        assert not list(tmp_path.rglob("model.pkl")) and not list(tmp_path.rglob("*.json"))
        return
    failed = refuse(real_tables[("customers", size)], tmp_path, spec(cls, **params), {})
    assert gate in failed, failed


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", PRIVACY_ATTACKS)
def test_the_privacy_gates_alone_refuse_every_copier(
    real_tables, tmp_path: Path, name: str, size: int
) -> None:
    """With the fidelity gates waived, the privacy gates (on the raw sample) still refuse."""
    cls, params, gate = BAD[name]
    if name == "near_copier_5pct" and size == 100:
        params = {"rate": 0.12}  # the smallest rate a 100-row table can tell from chance
    checks = {"min_quality": None, "min_dependence": None}
    failed = refuse(real_tables[("customers", size)], tmp_path, spec(cls, **params), checks)
    assert gate in failed and failed <= PRIVACY_GATES, failed


@pytest.mark.parametrize(("source", "size"), [("coarse", 1_000), ("coarse", 5_000)])
def test_a_faithful_model_of_a_coarse_table_passes(
    real_tables, tmp_path: Path, source: str, size: int
) -> None:
    """Most real rows of a coarse table equal another real row; a model drawing from the
    true distribution matches training rows as often, and that is not memorisation."""
    result, store = synthesize(
        real_tables[(source, size)], tmp_path, spec("Faithful", source=source), {}
    )
    gates = {g["metric"]: g for g in result["gates"]}
    assert all(g["passed"] for g in gates.values()), gates
    assert result["rows"] == size
    # the exact copies stayed: they are what real rows do (the old filter dropped them all)
    assert result["scores"]["exact_match_rate"] > 0.5
    assert gates["exact_match_rate"]["threshold"] > 0.5
    assert sum(result["filters"].values()) < 0.05 * size
    assert Path(result["model_files"]["model.pkl"].removeprefix("file://")).is_file()


def test_a_copier_of_a_coarse_table_is_refused(real_tables, tmp_path: Path) -> None:
    """Copies hide among real repeats on a coarse table, but not from the holdout: it is
    split by distinct row, so every copy is closer to training than to unseen rows."""
    failed = refuse(real_tables[("coarse", 1_000)], tmp_path, spec("Memoriser"), {})
    assert "dcr_share" in failed


@pytest.mark.parametrize("size", [1_000, 50_000])
def test_a_faithful_model_of_the_customer_table_passes(real_tables, tmp_path, size) -> None:
    """The control: the gates that refuse the fakes above are not simply over-strict."""
    result, _ = synthesize(real_tables[("customers", size)], tmp_path, spec("Faithful"), {})
    assert all(g["passed"] for g in result["gates"]), result["gates"]


def test_an_unmeasurable_dependence_fails_closed_and_says_how_to_waive(real_tables, tmp_path):
    """A shuffler at 299 rows was published: relationships are not measured below 300 rows
    and the gate counted "not measured" as a pass. Nothing else catches it here. The table
    is now refused before training; the gate still fails closed where only the sample is
    too small (200 rows asked of 1,000)."""
    path = real_tables[("customers", 299)]
    with pytest.raises(DataError) as refused:
        synthesize(path, tmp_path / "default", spec("Shuffler"), {})
    message = str(refused.value)
    assert "table 'customers': 299 real rows; dependence_preservation needs 300" in message
    assert "at least 375 rows" in message and "checks={'min_dependence': None}" in message

    with pytest.raises(QualityGateError) as failure:
        run_synthesize(
            real_tables[("customers", 1_000)],
            tmp_path / "small-sample",
            dataset="customers",
            spec=spec("Shuffler"),
            num_rows=200,
            seed=3,
            checks=CheckSettings(),
        )
    assert failed_gates(failure.value) == {"dependence_preservation"}
    message = str(failure.value)
    assert "could not be measured: fewer than 300 rows" in message
    assert "checks={'min_dependence': None}" in message

    result, _ = synthesize(path, tmp_path / "waived", spec("Shuffler"), {"min_dependence": None})
    gate = next(g for g in result["gates"] if g["metric"] == "dependence_preservation")
    assert gate["waived"] and gate["passed"] and gate["value"] is None


def test_privacy_is_judged_on_the_raw_sample_and_reported_for_both(real_tables, tmp_path):
    """A model that copies 45% of its rows: the similarity filter removes the copies, so
    the published rows look clean; the raw sample does not, and the run is refused."""
    path = real_tables[("customers", 1_000)]
    with pytest.raises(QualityGateError) as failure:
        synthesize(path, tmp_path, spec("Memoriser", rate=0.45), {"min_dependence": None})
    assert "exact_match_rate" in failed_gates(failure.value)
    privacy = json.loads(failure.value.reports["privacy.json"].read_text())
    assert privacy["measured_on"] == "raw sample, before the filters"
    assert privacy["exact_match_rate"] == pytest.approx(0.45, abs=0.03)
    assert privacy["published"]["exact_match_rate"] == 0.0  # what the filters let through
    assert privacy["rows"]["sampled"] > privacy["published"]["rows"]["synthetic"]
    assert privacy["filtered"]["similarity"]["dropped"] > 0
    assert privacy["filtered"]["similarity"]["replaced"] > 0  # each by a row of its stratum
    assert not list(tmp_path.rglob("model.pkl"))  # the model was not saved


# -- multi-table: a fake HMA --------------------------------------------------------------


def staged_set(tmp_path: Path, n_users: int = 400) -> tuple[dict, dict[str, pd.DataFrame]]:
    frames = fakes.users_sessions(n_users, 7)
    real = tmp_path / "staging" / "real"
    real.mkdir(parents=True)
    tables = {}
    for name, frame in frames.items():
        path = real / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        tables[name] = {"staging_uri": path.resolve().as_uri(), "rows": len(frame)}
    shapes = {
        "users": TableShape("users", tuple(frames["users"].columns), ("id",)),
        "sessions": TableShape("sessions", tuple(frames["sessions"].columns), ("sid",)),
    }
    table_set = build_table_set(shapes, declared=["sessions.user_id -> users.id"])
    extracted = {
        "staging_dir": str(real.parent),
        "tables": tables,
        "table_set": table_set.to_dict(),
    }
    return extracted, frames


def run_fake_hma(monkeypatch, tmp_path: Path, mode: str, checks: dict) -> dict:
    monkeypatch.setattr(
        engine_fits,
        "fit_hma",
        lambda train, metadata, seed, **_: (fakes.FakeHMA(dict(train), mode, seed or 0), 0.0),
    )
    monkeypatch.setattr(engine_fits, "sample_hma", lambda fake, scale, seed: (fake.sample(), 0.0))
    extracted, _ = staged_set(tmp_path)
    return run_multitable_synthesize(
        extracted,
        tmp_path / "run",
        dataset="shop",
        seed=5,
        max_parents=None,
        engine="hma",  # the fake stands in for HMA
        checks=CheckSettings.from_mapping(checks),
        save_model=True,
        layout=DatasetLayout("synthetic", "shop", "run1"),
    )


#: the fidelity gates waived, so a refusal below can only come from the gate under test
MULTI = {"min_quality": None, "min_dependence": None}


def test_multitable_faithful_fake_passes(monkeypatch, tmp_path: Path) -> None:
    result = run_fake_hma(monkeypatch, tmp_path, "faithful", MULTI)
    assert all(g["passed"] for g in result["gates"]), result["gates"]
    metrics = {g["metric"] for g in result["gates"]}
    assert {"referential_integrity", "sessions.exact_match_rate", "users.dcr_share"} <= metrics


def test_multitable_child_model_that_breaks_foreign_keys_is_refused(monkeypatch, tmp_path):
    with pytest.raises(QualityGateError) as failure:
        run_fake_hma(monkeypatch, tmp_path, "break_fk", MULTI)
    assert failed_gates(failure.value) == {"referential_integrity"}
    assert not list(tmp_path.rglob("model.pkl"))  # no model saved


def test_multitable_child_model_that_copies_rows_is_refused(monkeypatch, tmp_path):
    with pytest.raises(QualityGateError) as failure:
        run_fake_hma(monkeypatch, tmp_path, "copy_children", MULTI)
    failed = failed_gates(failure.value)
    assert failed and failed <= {f"sessions.{gate}" for gate in PRIVACY_GATES}, failed
    assert "sessions.exact_match_rate" in failed
    assert not list(tmp_path.rglob("model.pkl"))  # no model saved


def run_per_table(monkeypatch, tmp_path: Path, corrupt=None) -> dict:
    """The per-table engine on the fake users/sessions; ``corrupt`` edits its sample."""
    from airflow_synth.core.engine.set_engine import SetSynthesizer

    if corrupt is not None:
        sample = SetSynthesizer.sample

        def broken(self, *args, **kwargs):
            return corrupt(sample(self, *args, **kwargs))

        monkeypatch.setattr(SetSynthesizer, "sample", broken)
    extracted, _ = staged_set(tmp_path)
    return run_multitable_synthesize(
        extracted,
        tmp_path / "run",
        dataset="shop",
        seed=5,
        engine="per_table",
        checks=CheckSettings.from_mapping(MULTI),
        save_model=True,
        layout=DatasetLayout("synthetic", "shop", "run1"),
    )


def test_per_table_engine_passes_its_gates_on_the_fake_set(monkeypatch, tmp_path) -> None:
    result = run_per_table(monkeypatch, tmp_path)
    assert all(g["passed"] for g in result["gates"]), result["gates"]
    assert result["synthesizer"]["name"] == "per_table"


def test_per_table_engine_that_breaks_foreign_keys_is_refused(monkeypatch, tmp_path) -> None:
    def orphan_some(tables):
        sessions = tables["sessions"].copy()
        sessions.loc[sessions.index[::10], "user_id"] = -1  # no such user
        return {**tables, "sessions": sessions}

    with pytest.raises(QualityGateError) as failure:
        run_per_table(monkeypatch, tmp_path, orphan_some)
    assert failed_gates(failure.value) == {"referential_integrity"}
    assert not list(tmp_path.rglob("model.pkl"))  # no model saved


def test_per_table_engine_that_repeats_keys_is_refused(monkeypatch, tmp_path) -> None:
    def repeat_keys(tables):
        users = tables["users"].copy()
        users.loc[users.index[1], "id"] = users.loc[users.index[0], "id"]
        return {**tables, "users": users}

    with pytest.raises(QualityGateError) as failure:
        run_per_table(monkeypatch, tmp_path, repeat_keys)
    assert "referential_integrity" in failed_gates(failure.value)


def test_an_empty_child_table_is_published_empty_not_refused(tmp_path) -> None:
    extracted, frames = staged_set(tmp_path)
    path = Path(extracted["tables"]["sessions"]["staging_uri"].removeprefix("file://"))
    frames["sessions"].iloc[:0].to_parquet(path, index=False)
    extracted["tables"]["sessions"]["rows"] = 0
    result = run_multitable_synthesize(
        extracted,
        tmp_path / "run",
        dataset="shop",
        seed=5,
        checks=CheckSettings.from_mapping(MULTI),
        save_model=True,
        layout=DatasetLayout("synthetic", "shop", "run1"),
    )
    assert result["rows"] == {"users": len(frames["users"]), "sessions": 0}
    assert all(g["passed"] for g in result["gates"]), result["gates"]
    assert pq.read_table(result["table_files"]["sessions"]).num_rows == 0
