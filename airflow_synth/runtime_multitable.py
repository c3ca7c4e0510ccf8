"""Old import path of the multi-table steps, which now live in :mod:`airflow_synth.runtime`.

A table set and a single table go through the same Airflow-facing shells; this module only
keeps ``from airflow_synth.runtime_multitable import ...`` working.
"""

from __future__ import annotations

from airflow_synth.runtime import (
    MULTITABLE_SYNTHESIS_FIELDS,
    as_list,
    execute_multitable_extract,
    execute_multitable_publish,
    execute_multitable_synthesize,
    execute_target_load,
)

__all__ = [
    "MULTITABLE_SYNTHESIS_FIELDS",
    "as_list",
    "execute_multitable_extract",
    "execute_multitable_publish",
    "execute_multitable_synthesize",
    "execute_target_load",
]
