"""The one place that builds SDV metadata for a feature table.

SDV detects sdtypes from the data; the contract beside the SQL file then overrides what
detection cannot know (that ``user_id`` is an id, that ``email`` is PII and must be
generated fresh). Detection also writes real extremes and full category lists into the
metadata (``range_min``, ``range_values``...): :func:`public_metadata` strips those before
anything is published, so the published metadata describes the schema, not the people.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from sdv.metadata import Metadata

from airflow_synth.core.contract import TableContract
from airflow_synth.core.errors import ContractError

log = logging.getLogger(__name__)

#: A text column with at least this many rows and this share of distinct values is an id.
IDENTIFIER_MIN_ROWS = 50
IDENTIFIER_UNIQUE_SHARE = 0.9

#: Keys of SDV column metadata that reveal real values and so never leave the worker.
PRIVATE_COLUMN_KEYS = (
    "range_min",
    "range_max",
    "range_values",
    "range_is_nullable",
    "decimal_places",
    "high_cardinality",
)


def build_metadata(
    frame: pd.DataFrame, table_name: str, contract: TableContract | None = None
) -> Metadata:
    """Detect SDV metadata for ``frame`` and apply the contract's overrides."""
    metadata = Metadata.detect_from_dataframes({table_name: frame})
    declared = set(contract.column_names) if contract is not None else set()
    for column in identifier_like_columns(frame, metadata, table_name):
        if column not in declared:
            log.info("Column %r looks like a free-text identifier: generated fresh", column)
            metadata.update_column(column, table_name=table_name, sdtype="id")
    try:
        if contract is not None:
            for column in contract.columns:
                _apply_column(metadata, table_name, frame, column)
            if contract.primary_key:
                metadata.set_primary_key(contract.primary_key, table_name=table_name)
        metadata.validate()
    except ContractError:
        raise
    except Exception as exc:  # SDV raises InvalidMetadataError with a list of problems
        where = f" (contract {contract.source})" if contract is not None else ""
        raise ContractError(f"SDV rejected the table metadata{where}: {exc}") from exc
    return metadata


def identifier_like_columns(frame: pd.DataFrame, metadata: Metadata, table: str) -> list[str]:
    """Text columns SDV calls categorical but whose values are (almost) all distinct.

    Such columns (customer codes, order numbers, free-text ids) identify people; learning
    them as categories would replay real values, so they are generated fresh instead.
    """
    columns = metadata.to_dict()["tables"][table]["columns"]
    found = []
    for name, spec in columns.items():
        if spec.get("sdtype") != "categorical" or frame[name].dtype != object:
            continue
        values = frame[name].dropna()
        if len(values) >= IDENTIFIER_MIN_ROWS and values.nunique() >= IDENTIFIER_UNIQUE_SHARE * len(
            values
        ):
            found.append(name)
    return found


def _apply_column(metadata: Metadata, table: str, frame: pd.DataFrame, column: Any) -> None:
    if column.name not in frame.columns:
        raise ContractError(f"contract column {column.name!r} is not in the extracted data")
    kwargs: dict[str, Any] = {}
    if column.pii:
        # Without a specific PII sdtype (email, name...) SDV's generic PII sdtype is
        # "unknown": it generates fresh anonymised values. ("id" rejects the pii flag.)
        sdtype = column.pii_sdtype or "unknown"
        kwargs["pii"] = True
    elif column.sdtype:
        sdtype = column.sdtype
    else:
        return
    is_text = frame[column.name].dtype == object
    if sdtype == "datetime" and column.datetime_format and is_text:
        kwargs["datetime_format"] = column.datetime_format
    metadata.update_column(column.name, table_name=table, sdtype=sdtype, **kwargs)


def public_metadata(metadata: Metadata) -> dict[str, Any]:
    """The metadata as a dict with every value-revealing key removed (safe to publish)."""
    data = metadata.to_dict()
    for table in data.get("tables", {}).values():
        for column in table.get("columns", {}).values():
            for key in PRIVATE_COLUMN_KEYS:
                column.pop(key, None)
    return data


def pii_columns(metadata: Metadata, table_name: str) -> list[str]:
    """Columns SDV will generate fresh instead of learning (PII and id sdtypes)."""
    columns = metadata.to_dict()["tables"][table_name]["columns"]
    return [name for name, spec in columns.items() if spec.get("pii")]
