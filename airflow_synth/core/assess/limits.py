"""How many real rows a table needs before it is trained: checked up front, said plainly.

The gates measure what they can only on enough rows: the privacy gates
(``exact_match_rate``, ``near_copy_rate``, ``dcr_share``) compare the synthetic rows with
real rows the model never saw, so some rows must be held out (``holdout_share`` of the
table, none below :data:`~airflow_synth.core.engine.holdout.MIN_ROWS_FOR_HOLDOUT` rows);
``dependence_preservation`` needs :data:`~airflow_synth.core.assess.dependence.MIN_ROWS`
training rows. A table below that used to be trained and sampled, then failed its gates
with ``n/a`` and the advice to train more epochs. :func:`check_training_sizes` says it
before any training, with the table's row count, the minimum and the way out: extract
more rows, or waive those gates deliberately.

In a run whose gates are only reported (a dry run, ``enforce_gates_=False``: inside
:func:`gates_reported_only`) the same message is logged as a warning and training goes on,
so the reports still come.

Which tables are checked: a single feature table for every gate it enforces; in a set,
every table for ``dependence_preservation`` (judged per table) and the tables without
relationships for the privacy gates (a related table without held-out rows is a lookup
table whose privacy gates are waived, see :mod:`airflow_synth.core.steps.finish`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from airflow_synth.core.engine.holdout import MIN_ROWS_FOR_HOLDOUT
from airflow_synth.core.errors import DataError
from airflow_synth.core.profile.roles import ColumnRole, modelled_columns

log = logging.getLogger(__name__)

#: Whether the gates of the run in progress are enforced (see :func:`gates_reported_only`).
_ENFORCED: ContextVar[bool] = ContextVar("airflow_synth_gates_enforced", default=True)

#: The privacy gates' settings: any of them enforced needs held-out rows.
PRIVACY_SETTINGS = ("max_exact_match_rate", "max_near_copy_rate", "max_dcr_share")
#: The training rows ``dependence_preservation`` needs (``dependence.MIN_ROWS``, repeated
#: here so that checking sizes does not import the metric's numpy/pandas code).
DEPENDENCE_MIN_ROWS = 300


@contextmanager
def gates_reported_only(active: bool = True) -> Iterator[None]:
    """Within (when ``active``): a table too small for the gates is logged, not refused
    (the gates of a dry run are reported, not enforced, and it still wants its reports)."""
    token = _ENFORCED.set(not active and _ENFORCED.get())
    try:
        yield
    finally:
        _ENFORCED.reset(token)


def min_rows_to_hold_out(share: float) -> int | None:
    """The fewest rows of which ``share`` holds out at least one (None: ``share`` is 0)."""
    if share <= 0:
        return None
    rows = MIN_ROWS_FOR_HOLDOUT
    while round(rows * share) < 1:
        rows += 1
    return rows


def min_rows_to_train(share: float, training_rows: int) -> int:
    """The fewest rows that leave ``training_rows`` outside a ``share`` holdout."""
    rows = training_rows
    while rows - round(rows * share) < training_rows:
        rows += 1
    return rows


@dataclass(frozen=True)
class TableSize:
    """One table's rows as split: what the check reads."""

    name: str
    training: int
    holdout: int
    #: whether the table's privacy gates fail closed without held-out rows
    privacy: bool = True
    #: columns the model learns (none: nothing is assessed; one: no pair to measure)
    modelled: int = 2

    @property
    def rows(self) -> int:
        return self.training + self.holdout


def shortfalls(size: TableSize, checks: Any, max_training_rows: int | None = None) -> list[str]:
    """Why ``size`` is too small for the gates ``checks`` enforce (empty: big enough)."""
    share = float(checks.holdout_share)
    found: list[str] = []
    if size.modelled == 0:  # keys and PII only: no gate measures the table
        return found
    privacy = [s for s in PRIVACY_SETTINGS if getattr(checks, s) is not None]
    if size.privacy and privacy and size.holdout == 0:
        need = min_rows_to_hold_out(share)
        gates = ", ".join(s.removeprefix("max_") for s in privacy)
        if need is None:
            found.append(
                f"holdout_share is 0, so no row is held out, and the privacy gates ({gates}) "
                "compare with held-out rows"
            )
        elif size.rows < need:
            found.append(
                f"the privacy gates ({gates}) compare with rows the model never saw: at "
                f"holdout_share={share:g} at least {need} rows are needed to hold any out"
            )
        else:
            found.append(
                f"no row could be held out for the privacy gates ({gates}): the table's "
                "distinct rows each repeat too often to hold one out whole"
            )
    dependence = checks.min_dependence is not None and size.modelled >= 2
    if dependence and size.training < DEPENDENCE_MIN_ROWS:
        if max_training_rows is not None and max_training_rows < DEPENDENCE_MIN_ROWS:
            found.append(
                f"dependence_preservation needs {DEPENDENCE_MIN_ROWS} training rows and "
                f"max_training_rows={max_training_rows} allows fewer"
            )
        else:
            need = min_rows_to_train(share, DEPENDENCE_MIN_ROWS)
            found.append(
                f"dependence_preservation needs {DEPENDENCE_MIN_ROWS} training rows: at "
                f"holdout_share={share:g} at least {need} rows"
            )
    return found


def _waivers(reasons: list[str], checks: Any) -> dict[str, None]:
    waive: dict[str, None] = {}
    if any("privacy gates" in r for r in reasons):
        waive |= {s: None for s in PRIVACY_SETTINGS if getattr(checks, s) is not None}
    if any("dependence_preservation" in r for r in reasons):
        waive["min_dependence"] = None
    return waive


def check_sizes(
    sizes: list[TableSize], checks: Any, *, max_training_rows: int | None = None
) -> None:
    """Raise :class:`DataError` naming every table too small for the gates, its rows, the
    minimum and the way out; nothing when all are big enough."""
    problems = {s.name: (s, shortfalls(s, checks, max_training_rows)) for s in sizes}
    problems = {name: found for name, found in problems.items() if found[1]}
    if not problems:
        return
    lines = []
    waive: dict[str, None] = {}
    for name, (size, reasons) in problems.items():
        rows = f"{size.rows} real row{'s' if size.rows != 1 else ''}"
        lines.append(f"  - table {name!r}: {rows}; " + "; ".join(reasons) + ".")
        waive |= _waivers(reasons, checks)
    single = len(sizes) == 1
    what = f"Table {next(iter(problems))!r} is" if single else "Tables of the set are"
    text = (
        f"{what} too small to train and hold out, so the gates could not be measured "
        "and the run would fail after training:\n"
        + "\n".join(lines)
        + "\nExtract more rows (check the SQL's WHERE clause and its parameters), or, "
        f"deliberately, waive the gates that cannot be measured: checks={waive!r}."
    )
    if not _ENFORCED.get():
        log.warning("%s The gates are only reported in this run: training anyway.", text)
        return
    raise DataError(f"{text} Nothing was trained.")


def check_training_sizes(
    prepared: Any, roles: Mapping[str, Sequence[ColumnRole]], checks: Any, *, single: bool
) -> None:
    """:func:`check_sizes` on a set prepared for the per-table engine
    (:class:`~airflow_synth.core.engine.set_run.SetPrepared`: each table's training and
    held-out rows, before any fit), ``roles`` per table; ``single``: a single feature
    table (a set of one)."""
    standalone = set(prepared.standalone)
    sizes = [
        TableSize(
            name,
            len(prepared.train_rows[name]),
            len(prepared.holdout_rows[name]),
            privacy=single or name in standalone,
            modelled=len(modelled_columns(roles[name])),
        )
        for name in prepared.engine.table_set.order
    ]
    check_sizes(sizes, checks, max_training_rows=prepared.max_training_rows)


__all__ = [
    "DEPENDENCE_MIN_ROWS",
    "PRIVACY_SETTINGS",
    "TableSize",
    "check_sizes",
    "check_training_sizes",
    "gates_reported_only",
    "min_rows_to_hold_out",
    "min_rows_to_train",
    "shortfalls",
]
