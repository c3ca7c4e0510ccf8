"""Moving tables between Arrow (staging, publishing) and pandas (SDV) without losing types.

Two traps live here. SDV 2.0 silently samples ``datetime64[s|ms|us]`` columns as
1970-01-01, while Arrow and Parquet hand back ``[us]``/``[ms]``: every date and timestamp
is therefore converted to ``datetime64[ns]`` before training. And SDV returns floats for
integer columns, datetimes for dates, and so on: the synthetic table is cast back to the
exact Arrow schema of the extract, so consumers see the source's column types. Durations
(PostgreSQL intervals) and times of day are learned as seconds (since midnight) and written
back as Arrow durations and times. The extract's per-column type decisions (Parquet field
metadata, :mod:`airflow_synth.core.extract.pg_types`) are kept in the frame's ``attrs``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from airflow_synth.core.errors import DataError
from airflow_synth.core.extract.pg_types import ATTRS_KEY, schema_types

_MICROS = 1_000_000
_DAY_MICROS = 86_400 * _MICROS


def read_training_frame(path: str | Path) -> tuple[pd.DataFrame, pa.Schema]:
    """Read staged Parquet as a DataFrame SDV trains correctly on, plus the source schema."""
    table = pq.read_table(path)
    return to_training_frame(table), table.schema


def to_training_frame(table: pa.Table) -> pd.DataFrame:
    """Convert an Arrow table to pandas with every temporal column as ``datetime64[ns]``,
    durations and times of day as float seconds."""
    types = schema_types(table.schema)
    frame = _with_seconds(table).to_pandas()
    for name in frame.columns:
        # Dictionary-encoded Parquet (a pandas ``category`` column written by a user's
        # DataFrame) comes back as ``category``: SDV then scores and samples it wrongly
        # (column shape 0.03 for a language column). Plain values behave like the source.
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype(frame[name].cat.categories.dtype).astype(object)
            frame[name] = frame[name].where(frame[name].notna(), None)
    for field in table.schema:
        if pa.types.is_date(field.type) or pa.types.is_timestamp(field.type):
            try:
                values = pd.to_datetime(frame[field.name])
            except (pd.errors.OutOfBoundsDatetime, OverflowError):
                # pandas quotes the offending value: a real cell, so it is not repeated here
                raise DataError(
                    f"Column {field.name!r} holds dates outside 1677-2262, which "
                    "pandas and SDV cannot represent. Map such sentinels to NULL in the SQL, "
                    f"e.g. NULLIF({field.name}, '9999-12-31'), or clip them."
                ) from None
            if getattr(values.dt, "tz", None) is not None:
                values = values.dt.tz_convert("UTC").dt.tz_localize(None)
            frame[field.name] = values.astype("datetime64[ns]")
    if types:
        frame.attrs[ATTRS_KEY] = types
    return frame


def _with_seconds(table: pa.Table) -> pa.Table:
    """``table`` with every duration and time-of-day column as float64 seconds."""
    for i, field in enumerate(table.schema):
        if pa.types.is_duration(field.type):
            micros = table.column(i).cast(pa.duration("us")).cast(pa.int64())
        elif pa.types.is_time(field.type):
            micros = table.column(i).cast(pa.time64("us")).cast(pa.int64())
        else:
            continue
        seconds = pc.divide(micros.cast(pa.float64()), float(_MICROS))
        table = table.set_column(i, pa.field(field.name, pa.float64()), seconds)
    return table


def _micros(series: pd.Series) -> pd.Series:
    """Seconds (or timedeltas) as whole microseconds, nullable."""
    if pd.api.types.is_timedelta64_dtype(series.dtype):
        seconds = series.dt.total_seconds()
    else:
        seconds = pd.to_numeric(series, errors="coerce").astype(float)
    return (seconds * _MICROS).round().astype("Int64")


def _column_to_arrow(series: pd.Series, target: pa.DataType) -> pa.Array:
    if pa.types.is_integer(target):
        numbers = pd.to_numeric(series, errors="coerce").round()
        return pa.array(numbers.astype("Int64"), type=pa.int64()).cast(target, safe=False)
    if pa.types.is_floating(target):
        return pa.array(pd.to_numeric(series, errors="coerce"), type=target)
    if pa.types.is_boolean(target):
        mask = series.isna()
        values = series.where(mask, series.astype(bool)).astype(object).where(~mask, None)
        return pa.array(values, type=target)
    if pa.types.is_date(target):
        stamps = pd.to_datetime(series, errors="coerce")
        return pa.array(stamps.dt.date.where(stamps.notna(), None), type=target)
    if pa.types.is_duration(target):
        micros = pa.array(_micros(series), type=pa.int64())
        return micros.cast(pa.duration("us")).cast(target, safe=False)
    if pa.types.is_time(target):  # within the day (a model may step a hair outside it)
        micros = _micros(series).clip(0, _DAY_MICROS - 1)
        return pa.array(micros, type=pa.int64()).cast(pa.time64("us")).cast(target, safe=False)
    if pa.types.is_timestamp(target):
        stamps = pd.to_datetime(series, errors="coerce").astype("datetime64[ns]")
        if target.tz is not None:
            stamps = stamps.dt.tz_localize("UTC")
        return pa.array(stamps, type=pa.timestamp("ns", tz=target.tz)).cast(target, safe=False)
    values = series.astype(object).where(series.notna(), None)
    values = values.map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return pa.array(values, type=target)


def conform_to_schema(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """Cast a sampled DataFrame to ``schema`` (same columns, order and types as the source)."""
    missing = [f.name for f in schema if f.name not in frame.columns]
    if missing:
        raise ValueError(f"sampled data lacks columns {missing}")
    arrays = [_column_to_arrow(frame[f.name].reset_index(drop=True), f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def frame_rows(frame: pd.DataFrame) -> set[tuple]:
    """Rows as hashable tuples (NaN/None normalised), for exact-copy checks."""
    normalised = frame.astype(object).where(frame.notna(), None)
    return set(map(tuple, normalised.itertuples(index=False, name=None)))


__all__ = ["conform_to_schema", "frame_rows", "read_training_frame", "to_training_frame"]
