"""Categorical columns that determine each other, kept together by SDV's FixedCombinations.

Real tables are full of near-functional links: an event's ``action`` fixes its
``action_type``; a booking's destination fixes whether the user booked. Copula models learn
such links only weakly and then produce combinations that never occur (and that the outlier
filter later throws away). Detecting the groups and constraining them costs nothing at
sampling time (SDV models each group as one joint column). No Airflow import.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pandas as pd
from sdv.metadata import Metadata

log = logging.getLogger(__name__)

#: Columns with more categories than this are not considered for fixed combinations.
COMBINATION_MAX_CATEGORIES = 1_000
#: A column is a category only with at least this many rows per value on average: on a
#: 300-row subset a 286-value clerk id "determined" an order status (every pair is unique
#: when nearly every value is), and the constraint then froze unrelated columns together.
COMBINATION_MIN_ROWS_PER_CATEGORY = 5
#: A group is "near-functional" when its distinct combinations are at most this many times
#: the categories of its most varied column (e.g. 38 combinations of 37 actions).
COMBINATION_SLACK = 1.1


def fixed_combination_groups(
    frame: pd.DataFrame, metadata: Metadata, table: str, excluded: Collection[str] = ()
) -> list[list[str]]:
    """Groups of categorical columns whose values (almost) determine each other.

    An event log's ``action`` fixes its ``action_type`` and ``action_detail``; HMA's per-table
    Gaussian copula cannot learn such a near-functional link (it keeps ~17% of the demo's
    within-table dependence without it, ~97% with it). Pairs whose distinct combinations are
    at most ``COMBINATION_SLACK`` x the larger column's categories are joined into groups,
    and a group is kept when the whole group still is that tight. SDV's FixedCombinations
    then only produces combinations seen in the training rows.
    """
    columns = metadata.to_dict()["tables"][table]["columns"]
    candidates = []
    for name, spec in columns.items():
        if spec.get("sdtype") not in ("categorical", "boolean") or name in excluded:
            continue
        distinct = frame[name].nunique(dropna=False)
        enough_rows = distinct * COMBINATION_MIN_ROWS_PER_CATEGORY <= len(frame)
        if 2 <= distinct <= COMBINATION_MAX_CATEGORIES and enough_rows:
            candidates.append(name)

    def tight(group: list[str]) -> bool:
        combos = len(frame[group].drop_duplicates())
        widest = max(frame[c].nunique(dropna=False) for c in group)
        return combos <= COMBINATION_SLACK * widest

    groups: list[list[str]] = []
    for i, left in enumerate(candidates):
        for right in candidates[i + 1 :]:
            if not tight([left, right]):
                continue
            joined = [g for g in groups if left in g or right in g]
            merged = sorted({left, right}.union(*joined), key=candidates.index)
            groups = [g for g in groups if g not in joined] + [merged]
    return [g for g in groups if tight(g)]


#: The switch for one table: on, off, or on with columns never put in a group.
CombinationSwitch = bool | Sequence[str]


def switch_for(
    setting: CombinationSwitch | Mapping[str, CombinationSwitch], table: str
) -> tuple[bool, tuple[str, ...]]:
    """(on, columns left out) for ``table``: one setting for all, or ``{table: setting}``
    (tables not named: on). A list of columns keeps the detection on but never groups
    those columns (a clerk id that "determines" a status on a small sample)."""
    value = setting.get(table, True) if isinstance(setting, Mapping) else setting
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return bool(value), ()
    return True, tuple(str(column) for column in value)


def combination_constraints(
    frames: Mapping[str, pd.DataFrame],
    metadata: Metadata,
    excluded: Mapping[str, Sequence[str]] | None = None,
) -> list[Any]:
    """SDV FixedCombinations constraints for every table's near-functional column groups
    (``excluded``: per table, columns never put in a group)."""
    from sdv.cag import FixedCombinations

    constraints = []
    for table, frame in frames.items():
        left_out = set((excluded or {}).get(table, ()))
        for group in fixed_combination_groups(frame, metadata, table, left_out):
            combos = len(frame[group].drop_duplicates())
            log.info(
                "%s: keeping the real combinations of %s (%d combinations)",
                table,
                ", ".join(group),
                combos,
            )
            constraints.append(FixedCombinations(column_names=group, table_name=table))
    return constraints
