"""The spec-driven generator: exact truths at awkward sizes, determinism, FKs, validation."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_synth.datagen import (
    SpecError,
    Tolerance,
    answer_key,
    assert_truths,
    check_truths,
    generate,
    generate_tables,
    parse_spec,
)
from airflow_synth.datagen.exact import Quota, apportion, random_string_ids

pytestmark = pytest.mark.unit


def small_spec(rows: int = 1000, **extra: Any) -> dict:
    """One table with every exact kind of column, plus a child table."""
    spec = {
        "name": "t",
        "tables": {
            "people": {
                "rows": rows,
                "columns": {
                    "id": {"type": "id", "format": "random_string", "length": 8},
                    "joined": {
                        "type": "date",
                        "start": "2020-01-01",
                        "end": "2021-12-31",
                        "growth": 5,
                    },
                    "plan": {
                        "type": "categorical",
                        "values": {"free": 0.61, "pro": 0.3, "team": 0.09},
                    },
                    "seats": {
                        "type": "categorical",
                        "given": "plan",
                        "values_by": {
                            "free": {1: 1.0},
                            "pro": {1: 0.7, 2: 0.3},
                            "team": {5: 0.5, 10: 0.5},
                        },
                    },
                    "left": {
                        "type": "boolean",
                        "rate_by_month": {
                            "month_of": "joined",
                            "curve": {"2020-01": 0.3, "2021-12": 0.1},
                        },
                        "propensity": [{"column": "plan", "in": ["free"], "weight": 1.0}],
                    },
                    "vip": {"type": "boolean", "rate": 0.037},
                },
            },
            "events": {
                "rows": {
                    "per": "people",
                    "via": "person_id",
                    "counts": {"distribution": "poisson", "mean": 3, "zero_share": 0.2},
                    "rank_by": [{"column": "vip", "equals": True, "weight": 2.0}],
                },
                "columns": {
                    "person_id": {"type": "reference", "references": "people.id"},
                    "kind": {
                        "type": "categorical",
                        "given": "people.plan",
                        "values_by": {
                            "free": {"view": 1.0},
                            "pro": {"view": 0.5, "edit": 0.5},
                            "team": {"edit": 1.0},
                        },
                    },
                    "ms": {
                        "type": "float",
                        "distribution": {"name": "lognormal", "meanlog": 5, "sdlog": 1},
                        "null_share": 0.1,
                    },
                },
            },
        },
        "truths": {
            "plan_shares": {"kind": "shares", "column": "people.plan"},
            "seat_shares": {"kind": "shares", "column": "people.seats"},
            "churn": {"kind": "rate_by_month", "column": "people.left"},
            "vip_rate": {"kind": "rate", "column": "people.vip"},
            "events_per_person": {"kind": "children_per_parent", "table": "events"},
            "people_rows": {"kind": "row_count", "table": "people"},
        },
    }
    spec.update(extra)
    return spec


def observed(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    people, events = tables["people"], tables["events"]
    per_person = events["person_id"].value_counts().reindex(people["id"], fill_value=0)
    return people.assign(events_per_person=per_person.to_numpy())


def digest(frames) -> str:
    h = hashlib.sha256()
    for name, frame in frames:
        h.update(name.encode())
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


# --- apportionment ----------------------------------------------------------------------


@pytest.mark.parametrize("total", [0, 1, 7, 10, 999, 1_000_003])
def test_apportion_adds_up_and_is_within_one_of_the_exact_quota(total: int) -> None:
    shares = [0.61, 0.3, 0.09]
    counts = apportion(total, shares)
    assert counts.sum() == total
    assert np.all(np.abs(counts - total * np.asarray(shares)) < 1)


def test_quota_handed_out_in_uneven_blocks_never_drifts() -> None:
    quota = Quota(apportion(1_000_003, [0.5, 0.25, 0.125, 0.125]))
    rng = np.random.default_rng(0)
    taken = sum(quota.take(n, rng) for n in [1, 65_536, 7, 300_000, 634_459])
    assert taken.tolist() == apportion(1_000_003, [0.5, 0.25, 0.125, 0.125]).tolist()
    with pytest.raises(ValueError, match="remain"):
        quota.take(1, rng)


def test_random_string_ids_are_unique_and_look_random() -> None:
    ids = random_string_ids(np.arange(200_000), 10, key=7)
    assert len(set(ids.tolist())) == 200_000
    assert all(len(i) == 10 for i in ids[:100])
    assert not (np.sort(ids) == ids).all()


# --- exact truths ---------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [1, 7, 1_001])
@pytest.mark.parametrize("batch_rows", [1, 3, 997])
def test_every_truth_holds_to_the_row_at_awkward_sizes(rows: int, batch_rows: int) -> None:
    spec = parse_spec(small_spec(rows))
    frames: dict[str, list[pd.DataFrame]] = {}
    for name, frame in generate(spec, seed=3, batch_rows=batch_rows):
        assert len(frame) <= batch_rows
        frames.setdefault(name, []).append(frame)
    tables = {n: pd.concat(f, ignore_index=True) for n, f in frames.items()}
    report = assert_truths(observed(tables), answer_key(spec))
    assert report["people_rows"].rows["actual_count"].item() == rows


def test_a_million_rows_streamed_in_uneven_batches_keep_every_truth_exact() -> None:
    rows = 1_000_003
    spec = parse_spec(small_spec(rows))
    started = time.perf_counter()
    columns: dict[str, list] = {"plan": [], "seats": [], "left": [], "vip": [], "joined": []}
    n = 0
    for name, frame in generate(spec, seed=9, batch_rows=99_991, tables=["people"]):
        assert name == "people"
        n += len(frame)
        for column, parts in columns.items():
            parts.append(frame[column])
    seconds = time.perf_counter() - started
    people = pd.DataFrame({c: pd.concat(p, ignore_index=True) for c, p in columns.items()})
    key = answer_key(spec)
    assert n == rows
    report = assert_truths(
        people, key, only=["plan_shares", "seat_shares", "churn", "vip_rate", "people_rows"]
    )
    assert len(report["churn"].rows) == 24
    print(f"1,000,003 rows in {seconds:.2f} s ({rows / seconds:,.0f} rows/s)")
    assert seconds < 30


def test_output_is_deterministic_and_independent_of_the_batch_size() -> None:
    spec = parse_spec(small_spec(3_000))
    reference = digest(generate_tables(spec, seed=1).items())
    for batch_rows in (1_000, 7_777, 65_537):
        frames: dict[str, list[pd.DataFrame]] = {}
        for name, frame in generate(spec, seed=1, batch_rows=batch_rows):
            frames.setdefault(name, []).append(frame)
        merged = {n: pd.concat(f, ignore_index=True) for n, f in frames.items()}
        assert digest(merged.items()) == reference, batch_rows
    assert digest(generate_tables(spec, seed=2).items()) != reference


def test_blocks_larger_than_one_block_keep_children_and_fks_exact() -> None:
    spec = parse_spec(small_spec(100_000))
    tables = generate_tables(spec, seed=4)
    people, events = tables["people"], tables["events"]
    assert events["person_id"].isin(people["id"]).all()
    assert people["id"].is_unique
    assert_truths(observed(tables), answer_key(spec))
    # rank_by: VIPs get more events
    counts = observed(tables)
    assert (
        counts.loc[counts["vip"], "events_per_person"].mean()
        > 1.5 * counts["events_per_person"].mean()
    )
    # propensity: free plans churn more, with exact monthly counts all the same
    assert counts.loc[counts["plan"] == "free", "left"].mean() > counts["left"].mean()


def test_conditional_columns_keep_their_declared_combinations() -> None:
    tables = generate_tables(parse_spec(small_spec(5_000)), seed=5)
    people, events = tables["people"], tables["events"]
    assert set(people.loc[people["plan"] == "free", "seats"]) == {1}
    plan_of = people.set_index("id")["plan"]
    kinds = pd.crosstab(events["person_id"].map(plan_of), events["kind"])
    assert kinds.loc["free", "edit"] == 0 and kinds.loc["team", "view"] == 0
    assert 0.08 < events["ms"].isna().mean() < 0.12


def test_resizing_changes_the_answer_key_consistently() -> None:
    spec = parse_spec(small_spec(1_000))
    key = answer_key(spec, rows={"people": 20_000}, per_parent_mean={"events": 10})
    assert key["people_rows"].overall == 20_000
    assert 9.9 < key["events_per_person"].overall < 10.1
    tables = generate_tables(spec, seed=1, rows={"people": 20_000}, per_parent_mean={"events": 10})
    assert_truths(observed(tables), key)


# --- golden checks --------------------------------------------------------------------------


def test_a_dropped_row_or_a_flipped_flag_is_reported_with_a_readable_diff() -> None:
    spec = parse_spec(small_spec(2_000))
    frame = observed(generate_tables(spec, seed=1))
    key = answer_key(spec)
    assert check_truths(frame, key).ok
    dropped = check_truths(frame.iloc[1:], key)
    assert not dropped.ok and "FAIL people_rows" in dropped.diff()
    flipped = frame.copy()
    flipped.loc[flipped.index[flipped["left"]][0], "left"] = False
    report = check_truths(flipped, key)
    assert [r.truth.name for r in report.results if not r.ok] == ["churn"]
    assert "1 of 24 groups differ" in report.diff()
    with pytest.raises(KeyError, match="columns=\\{'events_per_person'"):
        check_truths(frame.drop(columns="events_per_person"), key)


def test_tolerance_mode_accepts_noise_and_rejects_a_shift() -> None:
    spec = parse_spec(small_spec(20_000))
    key = answer_key(spec)
    frame = observed(generate_tables(spec, seed=1)).sample(frac=0.5, random_state=1)
    tol = Tolerance(absolute=0.005, sigmas=4)
    assert check_truths(frame, key, only=["plan_shares", "vip_rate"], tolerance=tol).ok
    shifted = frame.assign(vip=True)
    assert not check_truths(shifted, key, only=["vip_rate"], tolerance=tol).ok


# --- validation -----------------------------------------------------------------------------


def broken(path: list, value: Any) -> dict:
    spec = small_spec()
    target = spec
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            broken(["tables", "events", "columns", "ms", "distribution", "name"], "lognormel"),
            r"column 'ms'.*unknown distribution 'lognormel'. Did you mean 'lognormal'",
        ),
        (
            broken(["tables", "people", "columns", "plan", "values", "pro"], 0.2),
            r"column 'plan', values: shares add up to 0.9, not 1",
        ),
        (
            broken(["tables", "events", "columns", "person_id", "references"], "persons.id"),
            r"references unknown table 'persons'",
        ),
        (
            broken(["truths", "plan_shares", "column"], "people.plans"),
            r"truth 'plan_shares': truth on unknown column 'people.plans'. Did you mean 'plan'",
        ),
        (broken(["tables", "people", "columns", "vip", "type"], "bool"), r"unknown type 'bool'"),
        (broken(["tables", "people", "columns", "vip", "rait"], 0.1), r"unknown key 'rait'"),
        (
            broken(["tables", "people", "columns", "seats", "given"], "plann"),
            r"column 'seats'.*unknown column 'plann'",
        ),
        (
            broken(["truths", "vip_rate", "kind"], "rate_by_month"),
            r"people.vip must be a boolean with `rate_by_month:`",
        ),
        (
            broken(["tables", "events", "rows", "per"], "persons"),
            r"only the parent table \(persons\)",
        ),
        (broken(["tables", "people", "rows"], KeyError), r"`rows:` is missing"),
        (
            broken(
                ["tables", "people", "columns", "left", "rate_by_month", "curve"], {"2020-13": 0.1}
            ),
            r"'2020-13' is not a month",
        ),
    ],
)
def test_invalid_specs_fail_with_a_message_naming_what_to_fix(spec: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(spec, source="bad.yaml")


def test_missing_conditional_entry_and_column_cycles_are_refused() -> None:
    spec = small_spec()
    del spec["tables"]["people"]["columns"]["seats"]["values_by"]["team"]
    with pytest.raises(SpecError, match="values_by has no entry for plan='team'"):
        answer_key(parse_spec(spec))
    cyclic = small_spec()
    cols = cyclic["tables"]["people"]["columns"]
    cols["a"] = {"type": "categorical", "given": "b", "values_by": {"x": {"x": 1.0}}}
    cols["b"] = {"type": "categorical", "given": "a", "values_by": {"x": {"x": 1.0}}}
    with pytest.raises(SpecError, match="depend on each other"):
        parse_spec(cyclic)
