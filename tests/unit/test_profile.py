"""Column profiles (core/profile/kinds.py) and the codec that makes a model honour them.

Reproduces issue 10's findings on a table of its own: integer codes 1-19 without 12 (code
12 appeared on 11% of synthetic rows, and the rate each code fixes broke on 79% of rows),
a spend that is 0 on 81% of rows (0% synthetic), a count > 0 on 32% of rows (100%).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_synth.core.assess.checks import CheckSettings
from airflow_synth.core.contract import parse_contract
from airflow_synth.core.engine.profile_codec import ProfileCodec
from airflow_synth.core.engine.synthesizers import resolve_synthesizer
from airflow_synth.core.errors import ContractError
from airflow_synth.core.profile.kinds import profile_columns
from airflow_synth.core.steps import run_synthesize

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

CODES = np.array([c for c in range(1, 20) if c != 12])
RATE = {int(c): round(0.5 + c * 0.25, 2) for c in CODES}


def plans(n: int = 6_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    code = rng.choice(CODES, n)
    return pd.DataFrame(
        {
            "plan_code": code,
            "rate": [RATE[int(c)] for c in code],
            "visits": np.where(rng.random(n) < 0.68, 0, rng.poisson(3, n) + 1),
            "minutes": np.where(rng.random(n) < 0.6, 0, rng.gamma(2, 60, n).round() + 1),
            "spend": np.where(rng.random(n) < 0.808, 0.0, rng.gamma(2, 40, n).round(2)),
            "discount": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(0, 30, n).round(1)),
            "age": rng.integers(18, 80, n),
            "joined": pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 700, n), "D"),
            "active": rng.random(n) < 0.4,
        }
    )


def by_name(frame: pd.DataFrame, **kwargs) -> dict:
    return {p.name: p for p in profile_columns(frame, **kwargs)}


def test_kinds_point_masses_and_null_shares() -> None:
    profiles = by_name(plans())
    kinds = {name: p.kind for name, p in profiles.items()}
    assert kinds == {
        "plan_code": "categorical",  # 18 integer codes
        "rate": "categorical",  # 18 rates, one per code
        "visits": "categorical",  # a small count: few values, each on many rows
        "minutes": "discrete",
        "spend": "continuous",
        "discount": "continuous",
        "age": "discrete",
        "joined": "datetime",
        "active": "boolean",
    }
    assert [m.value for m in profiles["spend"].point_masses] == [0.0]
    assert profiles["spend"].point_masses[0].share == pytest.approx(0.808, abs=0.02)
    assert [m.value for m in profiles["minutes"].point_masses] == [0]
    assert profiles["discount"].null_share == pytest.approx(0.2, abs=0.02)
    assert profiles["age"].point_masses == ()  # 62 values, none held by 5% of rows
    json.dumps([p.to_dict() for p in profiles.values()])


def test_declared_kinds_win_and_unknown_kinds_are_refused() -> None:
    contract = parse_contract(
        {"columns": [{"name": "age", "type": "integer", "kind": "categorical"}]}
    )
    assert by_name(plans(), declared=contract.kinds)["age"].kind == "categorical"
    with pytest.raises(ContractError, match="kind 'fuzzy'"):
        parse_contract({"columns": [{"name": "age", "type": "integer", "kind": "fuzzy"}]})
    with pytest.raises(ContractError, match="only modelled columns have a kind"):
        parse_contract(
            {"columns": [{"name": "a", "type": "string", "role": "pii", "kind": "categorical"}]}
        )


def test_the_codec_round_trips_masses_and_nulls() -> None:
    frame = plans(2_000)
    codec = ProfileCodec(profile_columns(frame), frame, seed=1)
    encoded = codec.encode(frame)
    assert {"spend__state", "minutes__state", "discount__state"} <= set(encoded.columns)
    assert encoded["discount"].notna().all()  # the model sees a smooth column
    decoded = codec.decode(encoded)
    pd.testing.assert_frame_equal(decoded[frame.columns].reset_index(drop=True), frame)


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    tmp = tmp_path_factory.mktemp("profile")
    real = plans()
    pq.write_table(pa.Table.from_pandas(real, preserve_index=False), tmp / "real.parquet")
    (tmp / "out").mkdir()
    result = run_synthesize(
        tmp / "real.parquet",
        tmp / "out",
        dataset="plans",
        spec=resolve_synthesizer("gaussian_copula"),
        seed=3,
        checks=CheckSettings(),
    )
    synthetic = pq.read_table(tmp / "out" / "synthetic.parquet").to_pandas()
    return real, synthetic, result


def test_codes_stay_codes_and_the_rule_they_fix_holds(synthesized) -> None:
    real, synthetic, _ = synthesized
    assert set(synthetic["plan_code"]) <= set(CODES)  # code 12 never appears
    assert (synthetic["rate"] == synthetic["plan_code"].map(RATE)).all()


def test_point_masses_and_nulls_keep_their_share(synthesized) -> None:
    real, synthetic, _ = synthesized
    for share in (
        lambda f: (f["spend"] == 0).mean(),
        lambda f: (f["visits"] > 0).mean(),
        lambda f: (f["minutes"] == 0).mean(),
        lambda f: f["discount"].isna().mean(),
    ):
        assert abs(share(synthetic) - share(real)) <= 0.02


def test_whole_numbers_stay_whole_and_in_range(synthesized) -> None:
    real, synthetic, _ = synthesized
    for column in ("minutes", "age"):
        values = synthetic[column]
        assert (values == values.round()).all()
        assert values.between(real[column].min(), real[column].max()).all()


def test_the_profile_is_published_and_the_default_gates_pass(synthesized) -> None:
    _, _, result = synthesized
    metadata = json.loads(Path(result["metadata_uri"][7:]).read_text())
    profile = {p["name"]: p for p in metadata["columns_profile"]}
    assert profile["plan_code"]["kind"] == "categorical"
    assert profile["spend"]["point_masses"][0]["value"] == 0.0
    assert all(g["passed"] for g in result["gates"]), result["gates"]


def test_a_long_tailed_count_is_learned_on_a_log_scale_without_spikes() -> None:
    """Session durations (lognormal seconds, whole numbers): a copula on the raw values put
    6.3% of synthetic rows at exactly 0 (no real value holds over 0.4%), and clipping at the
    range piled draws onto the bounds; both became exact copies of training rows."""
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {
            "secs": np.round(rng.lognormal(3.0, 2.5, 4_000)).astype("int64"),
            "device": rng.choice(["mac", "win", "phone"], 4_000),
        }
    )
    codec = ProfileCodec(profile_columns(frame), frame, seed=2)
    assert codec.logged == {"secs"}
    encoded = codec.encode(frame)
    assert encoded["secs"].max() < 20  # log(1 + x)
    pd.testing.assert_frame_equal(codec.decode(encoded)[frame.columns], frame)
    metadata = Metadata.detect_from_dataframes({"t": encoded})
    model = GaussianCopulaSynthesizer(metadata)
    model.fit({"t": encoded})
    sampled = model.sample(4_000)
    synthetic = codec.decode(sampled["t"] if isinstance(sampled, dict) else sampled)
    real_top = frame["secs"].value_counts(normalize=True).iloc[0]
    # on the raw scale the copula doubled the most common value (15% vs 7.7% real)
    assert synthetic["secs"].value_counts(normalize=True).iloc[0] < 1.5 * real_top
    # a draw below the real range lands in the real lower tail, not on the bound
    low = frame["secs"].min()
    below = codec.decode(encoded.assign(secs=-3.0))["secs"]
    assert (below >= low).all() and (below == low).mean() < 0.9


def test_redrawing_an_integer_column_beyond_its_range_warns_nothing() -> None:
    """A sampled integer column with draws beyond the real range is redrawn from the real
    tail without pandas' "incompatible dtype" FutureWarning, whose message printed the
    drawn values into the task log (and which a future pandas raises)."""
    import warnings

    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"age": rng.integers(18, 90, 2_000).astype("int64")})
    codec = ProfileCodec(profile_columns(frame), frame, seed=3, states=False)
    sampled = pd.Series(np.r_[rng.integers(18, 90, 50), [5, 7, 120, 140]].astype("int64"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        redrawn = codec._into_range("age", sampled, 18, 89)
    assert redrawn.between(18, 89).all() and len(redrawn) == len(sampled)
