"""The one place that builds SDV metadata for a feature table.

SDV detects sdtypes of the modelled columns from the data; the contract beside the SQL
file then overrides what detection cannot know (that a code is categorical). Keys and PII
never get here: they are classified first and generated fresh. Detection also writes
real extremes and full category lists into the metadata (``range_min``,
``range_values``...): :func:`public_metadata` strips those before anything is published,
so the published metadata describes the schema, not the people.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from sdv.metadata import Metadata

from airflow_synth.core.contract import TableContract
from airflow_synth.core.errors import ContractError
from airflow_synth.core.profile.roles import ColumnRole
from airflow_synth.core.redact import library_errors, scrub_message

log = logging.getLogger(__name__)

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
    frame: pd.DataFrame,
    table_name: str,
    contract: TableContract | None = None,
    sdtypes: Mapping[str, str] | None = None,
) -> Metadata:
    """Detect SDV metadata for the *modelled* columns in ``frame``; apply the contract.

    ``frame`` holds only the columns the synthesizer learns: keys and PII are classified
    beforehand (:mod:`airflow_synth.core.profile.roles`) and never reach SDV, so SDV can
    neither replay nor log them. The contract's sdtypes override detection for the
    columns present; its key and PII declarations were applied by that classification.
    ``sdtypes`` (from the column profile) are applied before the contract's.
    """
    with library_errors("detecting the table's metadata", frame.columns):
        metadata = Metadata.detect_from_dataframes({table_name: frame})
    try:
        _learn_every_column(metadata, table_name, frame)
        current = metadata.to_dict()["tables"][table_name]["columns"]
        for name, sdtype in (sdtypes or {}).items():  # the column profile's kinds
            if name in frame.columns and current[name].get("sdtype") != sdtype:
                metadata.update_column(name, table_name=table_name, sdtype=sdtype)
        if contract is not None:
            for column in contract.columns:
                if column.name in frame.columns:
                    apply_contract_column(metadata, table_name, frame, column)
        metadata.validate()
    except ContractError:
        raise
    except Exception as exc:  # SDV raises InvalidMetadataError with a list of problems
        where = f" (contract {contract.source})" if contract is not None else ""
        raise ContractError(
            f"SDV rejected the metadata of table {table_name!r}{where}: "
            f"{scrub_message(str(exc), [table_name, *frame.columns])}"
        ) from None
    return metadata


def _learn_every_column(metadata: Metadata, table: str, frame: pd.DataFrame) -> None:
    """Undo SDV's key guesses: every column here is modelled, none is an ``id``.

    Detection makes a unique column the primary key (sdtype ``id``), and SDV then issues
    made-up values for it, or *samples the real values* of a non-key ``id`` column. The
    roles (keys and PII) were decided before; what reaches SDV is meant to be learned.
    """
    if metadata.to_dict()["tables"][table].get("primary_key"):
        metadata.remove_primary_key(table)
    for name, spec in metadata.to_dict()["tables"][table]["columns"].items():
        if spec.get("sdtype") == "id" or spec.get("pii"):
            numeric = pd.api.types.is_numeric_dtype(frame[name].dtype) and not (
                pd.api.types.is_bool_dtype(frame[name].dtype)
            )
            sdtype = "numerical" if numeric else "categorical"
            metadata.update_column(name, table_name=table, sdtype=sdtype)


def apply_contract_column(metadata: Metadata, table: str, frame: pd.DataFrame, column: Any) -> None:
    """Set one modelled column's sdtype (and date format) as its contract declares."""
    if column.name not in frame.columns:
        raise ContractError(f"contract column {column.name!r} is not in the extracted data")
    kwargs: dict[str, Any] = {}
    if column.pii or column.role not in (None, "modelled") or column.sdtype in ("id", "text"):
        return  # never learned: generated fresh (see core/profile/roles.py)
    if column.sdtype:
        sdtype = column.sdtype
    else:
        return
    is_text = frame[column.name].dtype == object
    if sdtype == "datetime" and column.datetime_format and is_text:
        kwargs["datetime_format"] = column.datetime_format
    metadata.update_column(column.name, table_name=table, sdtype=sdtype, **kwargs)


def public_metadata(
    metadata: Metadata, roles: Sequence[ColumnRole] = (), profiles: Sequence[Any] = ()
) -> dict[str, Any]:
    """The metadata as a dict with every value-revealing key removed (safe to publish).

    ``roles`` (every column's role, kind and reason: no values) are added under
    ``columns_roles`` so consumers see which columns were generated fresh and why.
    """
    data = metadata.to_dict()
    if roles:
        data["columns_roles"] = [role.to_dict() for role in roles]
    if profiles:  # kinds, NULL shares, point masses (values many rows share): no extremes
        data["columns_profile"] = [profile.to_dict() for profile in profiles]
    for table in data.get("tables", {}).values():
        for column in table.get("columns", {}).values():
            for key in PRIVATE_COLUMN_KEYS:
                column.pop(key, None)
    return data
