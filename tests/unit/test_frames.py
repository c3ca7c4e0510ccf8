"""Arrow <-> pandas without losing types (airflow_synth.core.frames).

Two traps are pinned here: SDV needs ``datetime64[ns]`` (other units sample as 1970), and
SDV's output (floats for ints, timestamps for dates...) must be cast back to the exact Arrow
schema of the extract.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_synth.core.frames import (
    conform_to_schema,
    frame_rows,
    read_training_frame,
    to_training_frame,
)

pytestmark = pytest.mark.unit

NS = np.dtype("datetime64[ns]")


@pytest.fixture
def source() -> pa.Table:
    """Every Arrow type the extract produces, each with a null where the DB allows one."""
    return pa.table(
        {
            "name": pa.array(["ana", None, "bö", ""], pa.string()),
            # 2**53: the largest int64 that survives pandas' float64 for nullable ints
            "age": pa.array([31, None, -5, 2**53], pa.int64()),
            "score": pa.array([1.5, None, -0.0, 1e-300], pa.float64()),
            "active": pa.array([True, None, False, True], pa.bool_()),
            "signup": pa.array(
                [date(2024, 2, 29), None, date(1969, 12, 31), date(2000, 1, 1)], pa.date32()
            ),
            "seen": pa.array(
                [
                    datetime(2024, 1, 1, 12, 30, 0, 123456),
                    None,
                    datetime(1950, 6, 1),
                    datetime(2038, 1, 19, 3, 14, 8),
                ],
                pa.timestamp("us"),
            ),
            "seen_utc": pa.array(
                [
                    datetime(2024, 1, 1, 12, 0, tzinfo=UTC),
                    None,
                    datetime(2000, 1, 1, 23, 59, 59, 999999, tzinfo=UTC),
                    datetime(1999, 12, 31, 22, 0, tzinfo=timezone(timedelta(hours=-5))),
                ],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


# --------------------------------------------------------------------------------------------
# to_training_frame
# --------------------------------------------------------------------------------------------
def test_every_temporal_column_becomes_datetime64_ns(source: pa.Table) -> None:
    frame = to_training_frame(source)
    # the SDV trap: Arrow hands back [us] and dates as objects; SDV needs [ns]
    assert source.to_pandas()["seen"].dtype != NS
    assert {c: frame[c].dtype for c in ("signup", "seen", "seen_utc")} == {
        "signup": NS,
        "seen": NS,
        "seen_utc": NS,
    }
    assert frame["name"].dtype == object
    assert frame["score"].dtype == np.float64


def test_training_frame_values(source: pa.Table) -> None:
    frame = to_training_frame(source)
    assert frame["signup"].tolist()[0] == pd.Timestamp("2024-02-29")
    assert frame["signup"].tolist()[2] == pd.Timestamp("1969-12-31")
    assert frame["seen"][0] == pd.Timestamp("2024-01-01 12:30:00.123456")
    # tz-aware values become naive UTC wall time (not the local wall time)
    assert frame["seen_utc"][0] == pd.Timestamp("2024-01-01 12:00:00")
    assert frame["seen_utc"][3] == pd.Timestamp("2000-01-01 03:00:00")
    assert frame["seen_utc"].dt.tz is None
    for column in ("signup", "seen", "seen_utc"):
        assert pd.isna(frame[column][1])
    assert frame["active"].tolist() == [True, None, False, True]
    assert pd.isna(frame["age"][1])


def test_non_utc_arrow_timezone_is_converted_to_utc() -> None:
    berlin = pa.array(
        [datetime(2024, 7, 1, 10, 0, tzinfo=UTC)], pa.timestamp("ms", tz="Europe/Berlin")
    )
    frame = to_training_frame(pa.table({"t": berlin}))
    assert frame["t"].dtype == NS
    assert frame["t"][0] == pd.Timestamp("2024-07-01 10:00:00")


def test_all_null_temporal_column(source: pa.Table) -> None:
    table = pa.table({"d": pa.array([None, None], pa.date32())})
    frame = to_training_frame(table)
    assert frame["d"].dtype == NS
    assert frame["d"].isna().all()
    assert conform_to_schema(frame, table.schema).equals(table)


def test_read_training_frame_returns_the_parquet_schema(tmp_path: Path, source: pa.Table) -> None:
    path = tmp_path / "real.parquet"
    pq.write_table(source, path)
    frame, schema = read_training_frame(path)
    assert schema == source.schema
    assert frame["seen"].dtype == NS
    assert len(frame) == source.num_rows


# --------------------------------------------------------------------------------------------
# round trip
# --------------------------------------------------------------------------------------------
def test_round_trip_gives_back_the_original_schema_and_values(source: pa.Table) -> None:
    back = conform_to_schema(to_training_frame(source), source.schema)
    assert back.schema == source.schema
    assert str(back.schema.field("seen_utc").type) == "timestamp[us, tz=UTC]"
    assert back.equals(source)


def test_round_trip_through_parquet(tmp_path: Path, source: pa.Table) -> None:
    path = tmp_path / "real.parquet"
    pq.write_table(source, path)
    frame, schema = read_training_frame(path)
    out = tmp_path / "out.parquet"
    pq.write_table(conform_to_schema(frame, schema), out)
    assert pq.read_table(out).equals(source)


# --------------------------------------------------------------------------------------------
# conform_to_schema on what SDV really returns
# --------------------------------------------------------------------------------------------
def test_conform_casts_sdv_style_output_back(source: pa.Table) -> None:
    sampled = pd.DataFrame(
        {
            "extra": [1, 2, 3],  # not in the schema: dropped
            "seen_utc": pd.to_datetime(["2024-01-01 12:00:00", None, "2020-01-01 00:00:01"]),
            "name": [7, None, "x"],
            "age": [30.4, 30.6, np.nan],
            "score": [1, 2, None],
            "active": [True, np.nan, False],
            "signup": pd.to_datetime(["2024-01-01 23:59:00", None, "2020-02-02 00:00:00"]),
            "seen": ["2024-01-01 00:00:01", None, "2020-01-01 00:00:00"],
        },
        index=[10, 11, 12],  # SDV batches do not start at 0
    )
    table = conform_to_schema(sampled, source.schema)
    assert table.schema == source.schema
    assert table.column_names == source.column_names
    assert table.to_pydict() == {
        "name": ["7", None, "x"],
        "age": [30, 31, None],
        "score": [1.0, 2.0, None],
        "active": [True, None, False],
        "signup": [date(2024, 1, 1), None, date(2020, 2, 2)],
        "seen": [datetime(2024, 1, 1, 0, 0, 1), None, datetime(2020, 1, 1)],
        "seen_utc": [
            datetime(2024, 1, 1, 12, tzinfo=UTC),
            None,
            datetime(2020, 1, 1, 0, 0, 1, tzinfo=UTC),
        ],
    }


def test_conform_to_narrower_integer_types() -> None:
    schema = pa.schema([("small", pa.int16()), ("mid", pa.int32())])
    frame = pd.DataFrame({"small": [1.2, -3.7], "mid": [100000.49, None]})
    table = conform_to_schema(frame, schema)
    assert table.schema == schema
    assert table.to_pydict() == {"small": [1, -4], "mid": [100000, None]}


def test_conform_booleans_without_nulls_and_float32() -> None:
    schema = pa.schema([("b", pa.bool_()), ("f", pa.float32())])
    frame = pd.DataFrame({"b": np.array([True, False]), "f": [0.5, "1.25"]})
    table = conform_to_schema(frame, schema)
    assert table.schema == schema
    assert table.to_pydict() == {"b": [True, False], "f": [0.5, 1.25]}


def test_conform_unparseable_values_become_null() -> None:
    schema = pa.schema([("n", pa.int64()), ("t", pa.timestamp("us"))])
    frame = pd.DataFrame({"n": ["12", "twelve"], "t": ["2024-01-01", "not a date"]})
    table = conform_to_schema(frame, schema)
    assert table.to_pydict() == {"n": [12, None], "t": [datetime(2024, 1, 1), None]}


def test_conform_names_missing_columns(source: pa.Table) -> None:
    frame = to_training_frame(source).drop(columns=["age", "seen"])
    with pytest.raises(ValueError, match=r"lacks columns \['age', 'seen'\]"):
        conform_to_schema(frame, source.schema)


def test_conform_empty_frame_keeps_schema(source: pa.Table) -> None:
    empty = to_training_frame(source).iloc[0:0]
    table = conform_to_schema(empty, source.schema)
    assert table.num_rows == 0
    assert table.schema == source.schema


# --------------------------------------------------------------------------------------------
# frame_rows
# --------------------------------------------------------------------------------------------
def test_frame_rows_normalises_missing_values() -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan, 1.0], "b": ["x", None, "x"]})
    other = pd.DataFrame({"a": [None, 1.0], "b": [np.nan, "x"]}, dtype=object)
    rows = frame_rows(frame)
    assert rows == {(1.0, "x"), (None, None)}
    assert rows == frame_rows(other)
    assert frame_rows(pd.DataFrame({"a": [2.0], "b": ["x"]})).isdisjoint(rows)


def test_dates_pandas_cannot_hold_fail_with_a_fix_naming_the_column() -> None:
    from airflow_synth.core.errors import DataError

    table = pa.table({"valid_to": pa.array([date(2020, 1, 1), date(9999, 12, 31)])})
    with pytest.raises(DataError, match=r"'valid_to'.*NULLIF\(valid_to, '9999-12-31'\)"):
        to_training_frame(table)


def test_out_of_range_dates_are_refused_without_quoting_the_value() -> None:
    import pyarrow as pa

    from airflow_synth.core.errors import DataError
    from airflow_synth.core.frames import to_training_frame

    table = pa.table({"shipped": pa.array([date(2021, 5, 1), date(9876, 5, 4)])})
    with pytest.raises(DataError, match="'shipped' holds dates outside 1677-2262") as error:
        to_training_frame(table)
    assert "9876" not in str(error.value) and error.value.__cause__ is None


def test_category_columns_come_back_as_plain_values(tmp_path: Path) -> None:
    """A user's DataFrame with ``category`` columns (dictionary-encoded Parquet) trains as
    plain values: SDV mis-scores and mis-samples pandas categoricals."""
    frame = pd.DataFrame({"lang": pd.Categorical(["en", "de", None, "en"]), "n": [1, 2, 3, 4]})
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    out, schema = read_training_frame(path)
    assert out["lang"].dtype == object
    assert out["lang"].tolist() == ["en", "de", None, "en"]
    assert pa.types.is_dictionary(schema.field("lang").type)  # the source schema is kept
