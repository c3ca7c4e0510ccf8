"""How faithful is the synthetic table? SDV's quality report and diagnostic, as plain JSON.

The body returned by :func:`fidelity_report` is what gets published as ``quality.json``
and what the fidelity gate reads, so its keys are stable and every number is JSON-safe
(NaN becomes ``null``). Five choices differ from calling ``sdv.evaluation.evaluate_quality``:

* **Every column pair is scored.** sdmetrics 0.32 averages *Column Pair Trends* only over
  pairs whose real |correlation| > 0.5 or Cramér's V > 0.3, so a synthesizer that destroys
  weak relationships still scores well, and a table without a strong pair gets NaN.
  ``evaluate_quality`` cannot change that, so the (non-deprecated, unified)
  :class:`sdmetrics.reports.QualityReport` is used directly with both thresholds at 0.
* **Ids and PII are not scored.** SDV generates them fresh, so comparing them measures
  nothing; they are dropped before scoring and named in ``columns_not_scored``.
* **Bounded cost.** Above ``max_rows`` both tables are uniformly subsampled (seeded, so
  the same inputs give the same scores) and ``rows_evaluated`` says so. The diagnostic is
  cheap (about 1.5 s per million rows) and its boundary check is only honest against the
  real extremes, so it uses up to ``max_diagnostic_rows`` rows instead.
* **An empty column scores 0.** SDV skips a column whose synthetic values are all missing
  (its metric is NaN) and averages without it, which would reward the failure.
* **The real side is the training data**, not the holdout: fidelity asks "did the model
  learn what it was shown"; the holdout belongs to the privacy measures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import pandas as pd
from sdmetrics.reports import DiagnosticReport, QualityReport
from sdv.metadata import Metadata

from airflow_synth.core.redact import scrub_message

#: sdtypes the quality report scores; everything else (ids, emails, names, text...) is
#: generated fresh by SDV and so is neither scored nor plotted.
SCORED_SDTYPES = ("numerical", "datetime", "categorical", "boolean", "ordinal")
#: how many of the worst columns the summary and ``worst_columns`` name
WORST_COLUMNS = 5
DEFAULT_MAX_ROWS = 50_000
DEFAULT_MAX_DIAGNOSTIC_ROWS = 1_000_000


def fidelity_report(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    metadata: Metadata,
    table: str,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    max_diagnostic_rows: int = DEFAULT_MAX_DIAGNOSTIC_ROWS,
) -> dict[str, Any]:
    """Score ``synthetic`` against the real training rows; return the ``quality.json`` body.

    Keys: ``score``, ``properties``, ``columns`` (worst first), ``worst_columns``, ``pairs``
    (worst first), ``columns_not_scored``, ``columns_empty_in_synthetic``, ``diagnostic``,
    ``rows_evaluated``, ``errors``, ``seconds``, ``sdmetrics_version``. Scores are in
    [0, 1]; ``null`` means "could not be computed" (e.g. no scoreable column), which a gate
    must treat as a failure.
    """
    started = time.monotonic()
    table_meta = table_metadata(metadata, table)
    all_columns = list(table_meta["columns"])
    real = _select(real, all_columns, "real")
    synthetic = _select(synthetic, all_columns, "synthetic")
    scored = scored_columns(table_meta)
    not_scored = [c for c in all_columns if c not in scored]

    real_q = subsample(real, max_rows, seed)
    synth_q = subsample(synthetic, max_rows, seed)
    quality = QualityReport()
    quality.real_correlation_threshold = 0
    quality.real_association_threshold = 0
    quality.num_rows_subsample = None  # already bounded above, and seeded (theirs is not)
    scored_meta = {"columns": {c: table_meta["columns"][c] for c in scored}}
    shapes = pd.DataFrame(columns=["Column", "Metric", "Score"])
    pair_details = pd.DataFrame(columns=["Column 1", "Column 2", "Metric", "Score"])
    properties: dict[str, float | None] = {"column_shapes": None, "column_pair_trends": None}
    overall = None
    if scored:
        quality.generate(
            {table: real_q[scored]},
            {table: synth_q[scored]},
            {"tables": {table: scored_meta}},
            verbose=False,
        )
        shapes = quality.get_details("Column Shapes", table)
        pair_details = quality.get_details("Column Pair Trends", table)
        by_name = dict(quality.get_properties()[["Property", "Score"]].to_numpy())
        properties = {
            "column_shapes": _num(by_name.get("Column Shapes")),
            "column_pair_trends": _num(by_name.get("Column Pair Trends")),
        }
        overall = _num(quality.get_score())

    columns = _rows(shapes, {"column": "Column", "metric": "Metric", "score": "Score"})
    # SDV cannot score a column the synthesizer left empty (NaN) and then averages without
    # it, so an all-null column would *raise* the score. It is the worst outcome: score 0.
    empty = [c for c in scored if real_q[c].notna().any() and synth_q[c].isna().all()]
    if empty:
        for row in columns:
            if row["column"] in empty:
                row["score"] = 0.0
        known = [r["score"] for r in columns if r["score"] is not None]
        properties["column_shapes"] = _num(sum(known) / len(known)) if known else None
        parts = [v for v in properties.values() if v is not None]
        overall = _num(sum(parts) / len(parts)) if parts else None
    columns.sort(key=_worst_first)
    pairs = _rows(
        pair_details,
        {
            "column_1": "Column 1",
            "column_2": "Column 2",
            "metric": "Metric",
            "score": "Score",
            "real_correlation": "Real Correlation",
            "synthetic_correlation": "Synthetic Correlation",
        },
    )
    pairs.sort(key=_worst_first)
    errors = _errors(shapes, "column_shapes") + _errors(pair_details, "column_pair_trends")

    real_d = subsample(real, max_diagnostic_rows, seed)
    synth_d = subsample(synthetic, max_diagnostic_rows, seed)
    diagnostic = DiagnosticReport()
    diagnostic.generate(
        {table: real_d}, {table: synth_d}, {"tables": {table: table_meta}}, verbose=False
    )
    diag_props = dict(diagnostic.get_properties()[["Property", "Score"]].to_numpy())
    validity = diagnostic.get_details("Data Validity", table)
    errors += _errors(validity, "data_validity")

    return {
        "score": overall,
        "properties": properties,
        "columns": columns,
        "worst_columns": [c["column"] for c in columns if c["score"] is not None][:WORST_COLUMNS],
        "pairs": pairs,
        "columns_not_scored": not_scored,
        "columns_empty_in_synthetic": empty,
        "diagnostic": {
            "score": _num(diagnostic.get_score()),
            "data_validity": _num(diag_props.get("Data Validity")),
            "data_structure": _num(diag_props.get("Data Structure")),
            "columns": _rows(validity, {"column": "Column", "metric": "Metric", "score": "Score"}),
            "rows_evaluated": {"real": len(real_d), "synthetic": len(synth_d)},
        },
        "rows_evaluated": {
            "real": len(real_q),
            "synthetic": len(synth_q),
            "real_total": len(real),
            "synthetic_total": len(synthetic),
            "subsampled": len(real_q) < len(real) or len(synth_q) < len(synthetic),
        },
        "errors": errors,
        "seconds": round(time.monotonic() - started, 3),
        "sdmetrics_version": _version("sdmetrics"),
    }


def table_metadata(metadata: Metadata | Mapping[str, Any], table: str) -> dict[str, Any]:
    """The single-table dict (``{"columns": ..., "primary_key": ...}``) of ``table``."""
    data = metadata.to_dict() if isinstance(metadata, Metadata) else dict(metadata)
    tables = data.get("tables", {})
    if table not in tables:
        raise ValueError(f"table {table!r} is not in the metadata (it has {sorted(tables)})")
    return tables[table]


def scored_columns(table_meta: Mapping[str, Any]) -> list[str]:
    """Columns the quality report compares: known sdtypes, neither id nor PII."""
    return [
        name
        for name, spec in table_meta["columns"].items()
        if spec.get("sdtype") in SCORED_SDTYPES and not spec.get("pii")
    ]


def column_kinds(metadata: Metadata | Mapping[str, Any], table: str) -> dict[str, str]:
    """Column -> kind for :func:`airflow_synth.core.assess.report_html.render_report`.

    Kinds are ``numerical``, ``categorical``, ``datetime``, ``boolean``, ``id`` and ``pii``;
    ``ordinal`` is drawn as ``categorical``; every sdtype SDV fills with fresh fake values
    (email, name, unknown...) counts as ``pii``.
    """
    kinds = {}
    for name, spec in table_metadata(metadata, table)["columns"].items():
        sdtype = spec.get("sdtype")
        if spec.get("pii"):
            kinds[name] = "pii"
        elif sdtype == "id":
            kinds[name] = "id"
        elif sdtype == "ordinal":
            kinds[name] = "categorical"
        elif sdtype in SCORED_SDTYPES:
            kinds[name] = sdtype
        else:
            kinds[name] = "pii"
    return kinds


def subsample(frame: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows, drawn uniformly without replacement (seeded)."""
    if max_rows is None or len(frame) <= max_rows:
        return frame.reset_index(drop=True)
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    return frame.sample(n=max_rows, random_state=seed).reset_index(drop=True)


def summary_lines(
    quality: Mapping[str, Any],
    privacy: Mapping[str, Any] | None = None,
    filters: Mapping[str, Any] | None = None,
    gates: Sequence[Mapping[str, Any]] | None = None,
) -> list[str]:
    """The compact task-log summary: scores, worst columns, filter drops, gate verdicts.

    ``filters`` defaults to the privacy report's ``filtered`` counts.
    """
    if filters is None and privacy:
        filters = privacy.get("filtered")
    props = quality.get("properties") or {}
    diag = quality.get("diagnostic") or {}
    rows = quality.get("rows_evaluated") or {}
    lines = [
        f"Quality {_fmt(quality.get('score'))} (column shapes "
        f"{_fmt(props.get('column_shapes'))}, column pair trends "
        f"{_fmt(props.get('column_pair_trends'))}); diagnostic {_fmt(diag.get('score'))} "
        f"(validity {_fmt(diag.get('data_validity'))}, structure "
        f"{_fmt(diag.get('data_structure'))}); rows evaluated real {rows.get('real', '?')}, "
        f"synthetic {rows.get('synthetic', '?')}"
        + (" (subsampled)" if rows.get("subsampled") else "")
    ]
    scores = {c["column"]: c.get("score") for c in quality.get("columns") or []}
    worst = quality.get("worst_columns") or []
    if worst:
        named = ", ".join(f"{name} {_fmt(scores.get(name))}" for name in worst)
        lines.append(f"Worst columns: {named}")
    if quality.get("columns_empty_in_synthetic"):
        lines.append(
            "Empty in the synthetic table (scored 0): "
            + ", ".join(map(str, quality["columns_empty_in_synthetic"]))
        )
    if quality.get("columns_not_scored"):
        lines.append(
            "Not scored (generated fresh): " + ", ".join(map(str, quality["columns_not_scored"]))
        )
    if privacy:
        nndr = privacy.get("nndr")
        nndr_median = nndr.get("median") if isinstance(nndr, Mapping) else nndr
        lines.append(
            f"Privacy: exact-match rate {_fmt(privacy.get('exact_match_rate'))}, DCR share "
            f"{_fmt(privacy.get('dcr_share'))}, NNDR median {_fmt(nndr_median)}"
        )
    for name, dropped in filter_counts(filters).items():
        lines.append(f"Filter {name}: dropped {dropped} rows" + _replaced(filters, name))
    for gate in gates or []:
        lines.append(gate_line(gate))
    return lines


def gate_line(gate: Mapping[str, Any]) -> str:
    """``PASS quality_score 0.8123 >= 0.7`` / ``FAIL dcr_share 0.7100 <= 0.6`` (one gate)."""
    relation = ">=" if gate.get("kind") == "min" else "<="
    verdict = "PASS" if gate.get("passed") else "FAIL"
    return (
        f"{verdict} {gate.get('metric')} {_fmt(gate.get('value'))} {relation} "
        f"{_fmt(gate.get('threshold'), digits=None)}"
    )


def _replaced(filters: Mapping[str, Any] | None, name: str) -> str:
    """``, replaced 480 (470 from the same stratum, ...)`` where the counts say so."""
    entry = (filters or {}).get(name)
    if not isinstance(entry, Mapping) or "replaced" not in entry:
        return ""
    text = (
        f", replaced {entry['replaced']} ({entry.get('replaced_same_stratum', 0)} from the "
        f"same stratum, {entry.get('replaced_coarser_stratum', 0)} from a coarser one, "
        f"{entry.get('replaced_any_row', 0)} by any row)"
    )
    if entry.get("not_replaced"):
        text += f", {entry['not_replaced']} not replaced"
    return text


def filter_counts(filters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Rows dropped per filter, from ``{name: n}`` or ``{name: {"dropped": n, ...}}``."""
    counts: dict[str, Any] = {}
    for name, value in (filters or {}).items():
        if isinstance(value, Mapping):
            for key in ("dropped", "rows_dropped", "removed", "count"):
                if key in value:
                    counts[str(name)] = value[key]
                    break
        elif isinstance(value, int | float) and not isinstance(value, bool):
            counts[str(name)] = value
    return counts


def _select(frame: pd.DataFrame, columns: list[str], side: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the {side} table lacks metadata columns {missing}")
    return frame[columns]


def _rows(details: pd.DataFrame, keys: Mapping[str, str]) -> list[dict[str, Any]]:
    out = []
    for record in details.to_dict("records"):
        row = {}
        for key, source in keys.items():
            value = record.get(source)
            row[key] = value if isinstance(value, str) else _num(value)
        out.append(row)
    return out


def _errors(details: pd.DataFrame, prop: str) -> list[dict[str, Any]]:
    if "Error" not in details.columns:
        return []
    failed = details[details["Error"].notna()]
    names = [c for c in ("Column", "Column 1", "Column 2") if c in failed.columns]
    return [
        {
            "property": prop,
            "columns": [r[c] for c in names],
            # sdmetrics' messages may quote values: keep only names (quality.json is public)
            "error": scrub_message(str(r["Error"]), [r[c] for c in names]),
        }
        for r in failed.to_dict("records")
    ]


def _worst_first(row: Mapping[str, Any]) -> tuple[bool, float, str]:
    """Sort key: lowest score first, uncomputable (null) scores last, then by name."""
    score = row.get("score")
    name = "/".join(str(row.get(k, "")) for k in ("column", "column_1", "column_2"))
    return (score is None, score if score is not None else 0.0, name)


def _num(value: Any, digits: int = 6) -> float | None:
    """A JSON-safe float: NaN, inf, None and non-numbers become ``None``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return round(number, digits) if math.isfinite(number) else None


def _fmt(value: Any, digits: int | None = 4) -> str:
    number = _num(value, 12)
    if number is None:
        return "n/a"
    return f"{number:g}" if digits is None else f"{number:.{digits}f}"


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:  # pragma: no cover - sdmetrics comes with SDV
        return None


__all__ = [
    "column_kinds",
    "fidelity_report",
    "filter_counts",
    "gate_line",
    "scored_columns",
    "subsample",
    "summary_lines",
    "table_metadata",
]
