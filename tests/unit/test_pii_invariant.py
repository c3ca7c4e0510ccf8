"""No real key, identifier, PII or free-text value is published: single- and multi-table.

Reproduces issue 9's finding 1 (a customer table whose name, address, phone and comment
columns were published 100% real, with 3% of rows carrying one real person's full
identity) and proves the ``pii_leak`` gate refuses a generator that would leak.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_multitable_unit import extracted_for
from test_roles import customers

from airflow_synth.core import steps
from airflow_synth.core.assess.checks import CheckSettings
from airflow_synth.core.contract import parse_contract
from airflow_synth.core.engine.fresh import FreshValues
from airflow_synth.core.engine.synthesizers import resolve_synthesizer
from airflow_synth.core.errors import QualityGateError
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.core.publish.store import FileObjectStore
from airflow_synth.core.steps import run_multitable_synthesize

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

FRESH = ("customer_id", "contact", "mail", "tel", "addr", "remarks", "client_ip", "payload")
#: the fidelity gates are not what this file is about (the pii_leak gate cannot be waived)
FIDELITY_WAIVED = {"min_quality": None, "min_dependence": None}


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return customers(n=800, seed=11)


def staged(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "real.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def synthesize(tmp_path: Path, frame: pd.DataFrame, **kwargs) -> tuple[dict, FileObjectStore]:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    store = FileObjectStore(tmp_path / "bucket")
    result = steps.run_synthesize(
        staged(tmp_path, frame),
        out,
        dataset="customers",
        spec=resolve_synthesizer("gaussian_copula"),
        seed=4,
        save_model=True,
        layout=DatasetLayout("synthetic", "customers", "run1"),
        checks=CheckSettings.from_mapping(FIDELITY_WAIVED),
        **kwargs,
    )
    return result, store


def read(uri: str) -> pd.DataFrame:
    return pq.read_table(uri.removeprefix("file://")).to_pandas()


def test_undeclared_pii_is_published_fresh_and_never_real(tmp_path: Path, real) -> None:
    result, _ = synthesize(tmp_path, real)
    synthetic = read(result["synthetic_uri"])
    assert list(synthetic.columns) == list(real.columns) and len(synthetic) == len(real)
    for column in FRESH:
        replayed = set(synthetic[column].dropna().astype(str)) & set(real[column].astype(str))
        assert not replayed, f"{len(replayed)} real {column} values published"
    identities = set(zip(real["contact"], real["addr"], real["tel"], strict=True))
    assert not identities & set(
        zip(synthetic["contact"], synthetic["addr"], synthetic["tel"], strict=True)
    )
    leak_gate = [g for g in result["gates"] if g["metric"] == "pii_leak"]
    assert leak_gate == [
        {**leak_gate[0], "value": 0.0, "threshold": 0.0, "kind": "max", "passed": True}
    ]
    # modelled columns are still learned from the real table
    assert set(synthetic["country"]) <= set(real["country"])


def test_reports_and_metadata_list_roles_and_no_real_value(tmp_path: Path, real) -> None:
    result, _ = synthesize(tmp_path, real)
    quality = json.loads(Path(result["report_uris"]["quality.json"][7:]).read_text())
    privacy = json.loads(Path(result["report_uris"]["privacy.json"][7:]).read_text())
    assert quality["pii_leak"]["values"] == privacy["pii_leak"]["values"] == 0
    roles = {r["name"]: r for r in quality["columns_roles"]}
    assert roles["mail"]["role"] == "pii" and roles["mail"]["reason"] == "detected by name"
    assert roles["amount"]["role"] == "modelled"
    metadata = Path(result["metadata_uri"][7:]).read_text()
    html = Path(result["report_uris"]["report.html"][7:]).read_text()
    assert "Columns and their roles" in html
    for column in FRESH:
        assert column not in json.loads(metadata)["tables"]["customers"]["columns"]
        if column == "customer_id":
            continue  # 4-digit numbers occur inside any float; text values are distinctive
        for value in real[column].astype(str).head(200):
            assert value not in metadata and value not in html, column


def test_a_generator_that_leaks_is_refused_and_nothing_is_saved(
    tmp_path: Path, real, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate is the safety net: break the generator and the run must stop."""

    def replay_real(self: FreshValues, n: int) -> np.ndarray:
        values = np.asarray(self.real, dtype=object)
        return values[np.arange(n) % len(values)]

    monkeypatch.setattr(FreshValues, "_fresh", replay_real)
    with pytest.raises(QualityGateError, match=r"FAIL pii_leak = \d+"):
        synthesize(tmp_path, real)
    assert not list(tmp_path.rglob("model.pkl"))  # no model saved, so none published


def test_declared_pii_is_fresh_even_when_it_looks_like_a_category(tmp_path: Path, real) -> None:
    contract = parse_contract(
        {
            "columns": [{"name": c, "type": "string"} for c in real.columns if c != "country"]
            + [{"name": "country", "type": "string", "role": "pii", "pii_kind": "identifier"}]
        },
        source="customers.contract.yaml",
    )
    result, _ = synthesize(tmp_path, real, contract=contract)
    synthetic = read(result["synthetic_uri"])
    assert not set(synthetic["country"]) & set(real["country"])


# -- multi-table -------------------------------------------------------------------------------
def users_and_sessions(n_users: int = 150, seed: int = 2) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    people = customers(n=n_users, seed=seed)
    users = pd.DataFrame(
        {
            "id": [f"user{i:04d}" for i in range(n_users)],
            "full_name": people["contact"],
            "email": people["mail"],
            "nickname_text": [f"nick_{i}" for i in range(n_users)],
            "age": rng.integers(18, 70, n_users),
            "plan": rng.choice(["free", "pro", "team"], n_users),
        }
    )
    counts = rng.integers(0, 5, n_users)
    sessions = pd.DataFrame(
        {
            "sid": np.arange(counts.sum(), dtype="int64") + 1_000,
            "user_id": np.repeat(users["id"].to_numpy(), counts),
            "device": rng.choice(["web", "ios", "android"], counts.sum()),
            "secs": rng.gamma(2.0, 50.0, counts.sum()).round(1),
        }
    )
    return {"users": users, "sessions": sessions}


def test_multitable_keys_and_pii_are_fresh_and_joins_hold(tmp_path: Path) -> None:
    frames = users_and_sessions()
    contract = parse_contract(
        {"columns": [{"name": "plan", "type": "string", "role": "pii", "pii_kind": "identifier"}]},
        source="users.contract.yaml",
    )
    result = run_multitable_synthesize(
        extracted_for(tmp_path, frames),
        tmp_path / "run",
        dataset="set",
        seed=3,
        max_parents=None,
        checks=CheckSettings(
            min_quality=None,
            min_dependence=None,
            max_exact_match_rate=None,
            max_dcr_share=None,
        ),
        contracts={"users": contract},
    )
    users = pd.read_parquet(result["table_files"]["users"])
    sessions = pd.read_parquet(result["table_files"]["sessions"])
    assert set(sessions["user_id"]) <= set(users["id"])  # joins hold after re-issuing keys
    assert users["id"].is_unique and sessions["sid"].is_unique
    for table, frame in (("users", users), ("sessions", sessions)):
        for column in {"users": ["id", "full_name", "email", "nickname_text", "plan"]}.get(
            table, ["sid", "user_id"]
        ):
            real_values = set(frames[table][column].astype(str))
            assert not set(frame[column].astype(str)) & real_values, f"{table}.{column}"
    leak_gates = {g["metric"]: g for g in result["gates"] if g["metric"].endswith("pii_leak")}
    assert set(leak_gates) == {"users.pii_leak", "sessions.pii_leak"}
    assert all(g["value"] == 0 and g["passed"] for g in leak_gates.values())
    metadata = json.loads(Path(result["metadata_uri"][7:]).read_text())
    roles = {r["name"]: r["role"] for r in metadata["columns_roles"]["users"]}
    assert roles == {
        "id": "key",
        "full_name": "pii",
        "email": "pii",
        "nickname_text": "pii",
        "age": "modelled",
        "plan": "pii",
    }


def test_multitable_contract_for_an_unknown_table_is_refused(tmp_path: Path) -> None:
    from airflow_synth.core.errors import ContractError

    with pytest.raises(ContractError, match=r"Contracts given for \['userz'\]"):
        run_multitable_synthesize(
            extracted_for(tmp_path, users_and_sessions(40)),
            tmp_path / "run",
            dataset="set",
            contracts={"userz": parse_contract({"columns": []})},
        )


def test_privacy_of_a_small_output_is_judged_on_enough_raw_rows(tmp_path: Path, real) -> None:
    """40 published rows: the gates still judge privacy on 2,000 sampled (unpublished) rows."""
    result, _ = synthesize(tmp_path, real, num_rows=40)
    privacy = json.loads(Path(result["report_uris"]["privacy.json"][7:]).read_text())
    assert read(result["synthetic_uri"]).shape[0] == 40
    assert privacy["rows"]["synthetic"] >= 2_000
