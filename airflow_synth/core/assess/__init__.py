"""The assess room: how faithful a synthetic table set is, across its tables.

Pure functions over DataFrames and a :class:`~airflow_synth.core.relations.TableSet`; no
Airflow. :mod:`.relationships` checks keys and counts children per parent,
:mod:`.links` measures how a parent's attributes drive its number of children,
:mod:`.orderings` finds and repairs ``child >= parent`` rules across a join, and
:mod:`.set_report` draws the set-level HTML page from those (aggregate) results.
"""

from airflow_synth.core.assess.links import parent_child_count_links
from airflow_synth.core.assess.orderings import (
    CrossTableOrdering,
    cross_table_hold_rates,
    discover_cross_table_orderings,
    repair_cross_table_orderings,
)
from airflow_synth.core.assess.relationships import (
    check_integrity,
    child_counts,
    children_per_parent,
    key_codes,
    nullable_relationships,
)
from airflow_synth.core.assess.set_report import render_set_report

__all__ = [
    "CrossTableOrdering",
    "check_integrity",
    "child_counts",
    "children_per_parent",
    "cross_table_hold_rates",
    "discover_cross_table_orderings",
    "key_codes",
    "nullable_relationships",
    "parent_child_count_links",
    "render_set_report",
    "repair_cross_table_orderings",
]
