"""The "Synthetic datasets" page's logic: which datasets a bucket holds, their runs, as rows.

Plain functions over a two-operation store (folder listing and object read), no Airflow:
the plugin (:mod:`airflow_synth.ui.report_view`) gives them an S3-backed store and the
user's DAG permission as a callback, and serves the HTML rendered here.

What is read, per the layout (:mod:`airflow_synth.core.publish.layout`): the top-level
folders of the bucket are datasets (``_models`` and other ``_``-folders are not);
``<dataset>/latest.json`` names the newest publication; each ``<dataset>/<run>/manifest.json``
is a published run and each ``<dataset>/_failed/<run>/failed.json`` a run a gate refused.
Manifests hold names, counts and scores only, never a cell value, and only those reach the
page; everything from a manifest is HTML-escaped, since a dataset name, a run id or a reason
is text someone else wrote.

Who sees what: a run is shown only when ``allowed(dag_id)`` is true for the DAG recorded in
its manifest (``source.airflow.dag_id``; ``airflow.dag_id`` in ``failed.json``). A manifest
written before the DAG was recorded has ``dag_id`` None: the callback decides (the plugin
then asks for access to *all* DAGs).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from airflow_synth.core.engine.reuse import decision_text
from airflow_synth.core.publish.layout import FAILED_DIR, LATEST_FILE, MANIFEST_FILE

FAILED_INDEX = "failed.json"
#: Most runs a history page reads (one GET each); the newest by run folder name are kept.
MAX_HISTORY_RUNS = 200
#: A segment the page may put in a key or URL: no separators, no leading dot/underscore.
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*\Z")

Allowed = Callable[[str | None], bool]


class CatalogStore(Protocol):
    """The two reads the page needs (S3 in the plugin; a dict or a folder in tests)."""

    def list_folders(self, prefix: str) -> list[str]:
        """Names of the immediate sub-folders of ``prefix`` (no trailing slash)."""
        ...

    def get_bytes(self, key: str) -> bytes | None:
        """The object's body, or None when it does not exist."""
        ...


def is_segment(value: str) -> bool:
    """True for a dataset or run name that can be used in a key as it is (no ``/``, no
    ``..``, no leading ``_``): the routes refuse anything else before touching the store."""
    return bool(_SEGMENT.match(value)) and ".." not in value


@dataclass(frozen=True)
class Gate:
    """One gate's verdict, as the page shows it (metric and outcome; no cell values)."""

    metric: str
    outcome: str  # "pass", "fail" or "waived"


@dataclass(frozen=True)
class RunRow:
    """One run of a dataset: published (its manifest) or refused by a gate (failed.json)."""

    dataset: str
    run: str
    status: str  # "published" or "failed"
    at: datetime | None
    rows: int | None = None
    quality: float | None = None
    dependence: float | None = None
    exact_match: float | None = None
    near_copy: float | None = None
    dcr_share: float | None = None
    gates: tuple[Gate, ...] = ()
    model_decision: str | None = None
    model_reason: str | None = None
    dag_id: str | None = None
    has_report: bool = False
    synthesizer: str | None = None
    latest: bool = False


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset on the index page: its latest run and how many runs it has."""

    dataset: str
    latest: RunRow | None
    failed_runs: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


def _json(store: CatalogStore, key: str) -> dict[str, Any] | None:
    raw = store.get_bytes(key)
    if raw is None:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _gates(raw: Any) -> tuple[Gate, ...]:
    gates = []
    for gate in raw if isinstance(raw, list) else []:
        if not isinstance(gate, Mapping) or not gate.get("metric"):
            continue
        outcome = "waived" if gate.get("waived") else ("pass" if gate.get("passed") else "fail")
        gates.append(Gate(str(gate["metric"]), outcome))
    return tuple(gates)


def report_key(manifest: Mapping[str, Any], bucket: str) -> str | None:
    """Key of the run's ``report.html`` (a set's first table report if it has no overall
    one), as the manifest lists it; None when it names none in ``bucket``."""
    reports = manifest.get("reports") or {}
    uri = reports.get("report.html") or next(
        (u for name, u in sorted(reports.items()) if name.endswith("/report.html")), None
    )
    prefix = f"s3://{bucket}/"
    if not isinstance(uri, str) or not uri.startswith(prefix) or not uri.endswith(".html"):
        return None
    return uri.removeprefix(prefix)


def run_from_manifest(manifest: Mapping[str, Any], *, latest: bool = False) -> RunRow:
    """The row of a published run: rows, headline scores, gates, model decision, DAG."""
    synthesis = manifest.get("synthesis") or {}
    scores = synthesis.get("scores") or {}
    reuse = synthesis.get("model_reuse") or manifest.get("model_reuse") or {}
    producer = (manifest.get("source") or {}).get("airflow") or {}
    synthesizer = synthesis.get("synthesizer")
    if isinstance(synthesizer, Mapping):
        synthesizer = synthesizer.get("name")
    return RunRow(
        dataset=str(manifest.get("dataset", "")),
        run=str(manifest.get("run", "")),
        status="published",
        at=_time(manifest.get("published_at")),
        rows=manifest.get("rows") if isinstance(manifest.get("rows"), int) else None,
        quality=_number(scores.get("quality_score")),
        dependence=_number(scores.get("dependence_preservation")),
        exact_match=_number(scores.get("exact_match_rate")),
        near_copy=_number(scores.get("near_copy_rate")),
        dcr_share=_number(scores.get("dcr_share")),
        gates=_gates(synthesis.get("gates")),
        model_decision=str(reuse["decision"]) if reuse.get("decision") else None,
        model_reason=decision_text(reuse),
        dag_id=producer.get("dag_id"),
        has_report=bool(manifest.get("reports") or {}),
        synthesizer=str(synthesizer) if synthesizer else None,
        latest=latest,
    )


def run_from_failed(index: Mapping[str, Any]) -> RunRow:
    """The row of a run a gate refused: which gates failed, when, by which DAG."""
    failed = {str(m) for m in index.get("failed_gates") or []}
    return RunRow(
        dataset=str(index.get("dataset", "")),
        run=str(index.get("run", "")),
        status="failed",
        at=_time(index.get("failed_at")),
        gates=tuple(Gate(m, "fail") for m in sorted(failed)),
        dag_id=((index.get("airflow") or {}).get("dag_id")),
        has_report=bool(index.get("report_uri")),
    )


def dataset_names(store: CatalogStore) -> list[str]:
    """The bucket's datasets: its top-level folders, less ``_models`` and other ``_`` ones."""
    return sorted(name for name in store.list_folders("") if is_segment(name))


def latest_manifest(store: CatalogStore, dataset: str) -> dict[str, Any] | None:
    """The manifest ``latest.json`` points at (the run's, which a rerun updates)."""
    pointer = _json(store, f"{dataset}/{LATEST_FILE}")
    if not pointer or not is_segment(str(pointer.get("run", ""))):
        return None
    return _json(store, f"{dataset}/{pointer['run']}/{MANIFEST_FILE}")


def run_manifest(store: CatalogStore, dataset: str, run: str) -> dict[str, Any] | None:
    """A published run's manifest (None: no such run, or not published)."""
    if not (is_segment(dataset) and is_segment(run)):
        return None
    return _json(store, f"{dataset}/{run}/{MANIFEST_FILE}")


def failed_index(store: CatalogStore, dataset: str, run: str) -> dict[str, Any] | None:
    """A refused run's ``failed.json`` (None: no such quarantine)."""
    if not (is_segment(dataset) and is_segment(run)):
        return None
    return _json(store, f"{dataset}/{FAILED_DIR}/{run}/{FAILED_INDEX}")


def _sorted(rows: Iterable[RunRow]) -> list[RunRow]:
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(rows, key=lambda r: (r.at or oldest, r.run), reverse=True)


def run_history(store: CatalogStore, dataset: str, allowed: Allowed) -> list[RunRow]:
    """Every run of ``dataset`` the user may see, published and refused, newest first."""
    if not is_segment(dataset):
        return []
    latest = latest_manifest(store, dataset)
    latest_run = latest.get("run") if latest else None
    rows = []
    runs = [r for r in store.list_folders(f"{dataset}/") if is_segment(r)]
    for run in sorted(runs)[-MAX_HISTORY_RUNS:]:
        manifest = run_manifest(store, dataset, run)
        if manifest is not None:
            rows.append(run_from_manifest(manifest, latest=run == latest_run))
    failed = [r for r in store.list_folders(f"{dataset}/{FAILED_DIR}/") if is_segment(r)]
    for run in sorted(failed)[-MAX_HISTORY_RUNS:]:
        index = failed_index(store, dataset, run)
        if index is not None:
            rows.append(run_from_failed(index))
    return _sorted(row for row in rows if allowed(row.dag_id))


def catalog(store: CatalogStore, allowed: Allowed) -> list[DatasetEntry]:
    """The index page: every dataset whose latest run the user may see (a dataset with no
    publication yet shows its newest refused run, if any)."""
    entries = []
    for dataset in dataset_names(store):
        manifest = latest_manifest(store, dataset)
        failed_runs = [r for r in store.list_folders(f"{dataset}/{FAILED_DIR}/") if is_segment(r)]
        if manifest is not None:
            row = run_from_manifest(manifest, latest=True)
        else:
            refused = [failed_index(store, dataset, r) for r in failed_runs[-5:]]
            rows = _sorted(run_from_failed(i) for i in refused if i is not None)
            if not rows:
                continue  # not a dataset (or only unpublished attempts)
            row = rows[0]
        if allowed(row.dag_id):
            entries.append(DatasetEntry(dataset, row, failed_runs=len(failed_runs)))
    return entries


# -- HTML -----------------------------------------------------------------------------------
PAGE_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.2rem;color:#1f2937}
h1{font-size:1.3rem}h2{font-size:1.1rem}
table{border-collapse:collapse;font-size:.85rem}
th,td{border:1px solid #d1d5db;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f4f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.nowrap{white-space:nowrap}td.gates{max-width:22rem}
.pass{color:#047857}.fail{color:#b91c1c;font-weight:600}.waived{color:#6b7280}
.failed td{background:#fef2f2}.muted{color:#6b7280}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _q(value: str) -> str:
    return quote(value, safe="")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def age_text(at: datetime | None, now: datetime) -> str:
    """How long ago, in the largest whole unit (``3 h``, ``2 d``)."""
    if at is None:
        return "–"
    seconds = max(0, int((now - at).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _gates_html(gates: Iterable[Gate]) -> str:
    """Failed gates one per line (they matter), then the passed and waived ones, grouped."""
    by_outcome: dict[str, list[str]] = {"fail": [], "pass": [], "waived": []}
    for gate in gates:
        by_outcome.setdefault(gate.outcome, []).append(gate.metric)
    lines = [f'<span class="fail">FAIL {_e(metric)}</span>' for metric in by_outcome["fail"]]
    for outcome in ("pass", "waived"):
        if by_outcome[outcome]:
            names = ", ".join(_e(metric) for metric in by_outcome[outcome])
            lines.append(f'<span class="{outcome}">{outcome}: {names}</span>')
    return "<br>".join(lines) or '<span class="muted">–</span>'


def _model_html(row: RunRow) -> str:
    if not row.model_decision:
        return '<span class="muted">–</span>'
    # the line names the decision itself ("reused from run X (...)", "retrained: ...")
    return _e(row.model_reason or row.model_decision)


def _links_html(row: RunRow, base: str) -> str:
    ds, run = _q(row.dataset), _q(row.run)
    if row.status == "failed":
        folder = f"{base}/datasets/{ds}/failed/{run}"
        report = f'<a href="{folder}/report">report</a> · ' if row.has_report else ""
        return f'{report}<a href="{folder}/failed.json">failed.json</a>'
    folder = f"{base}/datasets/{ds}/runs/{run}"
    report = f'<a href="{folder}/report">report</a> · ' if row.has_report else ""
    return f'{report}<a href="{folder}/manifest.json">manifest</a>'


RUN_COLUMNS = (
    "run",
    "status",
    "age",
    "rows",
    "quality",
    "dependence",
    "privacy (exact match / near copy / DCR share)",
    "gates",
    "model",
    "DAG",
    "links",
)


def _run_cells(row: RunRow, now: datetime, base: str) -> list[str]:
    privacy = " / ".join(_fmt(v) for v in (row.exact_match, row.near_copy, row.dcr_share))
    status = row.status + (" (latest)" if row.latest else "")
    return [
        _e(row.run),
        f'<span class="{"fail" if row.status == "failed" else "pass"}">{_e(status)}</span>',
        f'<span title="{_e(row.at.isoformat() if row.at else "")}">{age_text(row.at, now)}</span>',
        "–" if row.rows is None else f"{row.rows:,}",
        _fmt(row.quality),
        _fmt(row.dependence),
        privacy if row.status == "published" else "–",
        _gates_html(row.gates),
        _model_html(row),
        _e(row.dag_id or "–"),
        _links_html(row, base),
    ]


_NUMERIC = {"rows", "quality", "dependence"}
_CELL_CLASS = {"age": "nowrap", "run": "nowrap", "gates": "gates"}


def _table(header: Iterable[str], rows: Iterable[tuple[list[str], str]]) -> str:
    head = list(header)
    out = ["<table><thead><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for cells, css in rows:
        out.append(f'<tr class="{css}">' if css else "<tr>")
        for name, cell in zip(head, cells, strict=True):
            css = "num nowrap" if name in _NUMERIC else _CELL_CLASS.get(name, "")
            out.append(f'<td class="{css}">{cell}</td>' if css else f"<td>{cell}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{PAGE_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def render_index(entries: Iterable[DatasetEntry], now: datetime, base: str, bucket: str) -> str:
    """The index page: one row per dataset (its latest run) with a link to its history."""
    header = ("dataset", *RUN_COLUMNS[2:], "runs")
    rows = []
    for entry in entries:
        row = entry.latest
        if row is None:
            continue
        history = f'<a href="{base}/datasets/{_q(entry.dataset)}">history</a>'
        if entry.failed_runs:
            history += f' <span class="muted">({entry.failed_runs} refused)</span>'
        cells = [
            f'<a href="{base}/datasets/{_q(entry.dataset)}">{_e(entry.dataset)}</a>',
            *_run_cells(row, now, base)[2:],
            history,
        ]
        rows.append((cells, "failed" if row.status == "failed" else ""))
    body = (
        f"<h1>Synthetic datasets</h1><p class=muted>Bucket <code>{_e(bucket)}</code>; "
        f"the latest run of each dataset whose DAG you may read. Scores: quality and "
        f"dependence (higher is better), privacy rates (lower is better).</p>"
    )
    body += _table(header, rows) if rows else "<p>No datasets you may read are published.</p>"
    return _page("Synthetic datasets", body)


def render_history(dataset: str, rows: Iterable[RunRow], now: datetime, base: str) -> str:
    """A dataset's page: every run the user may see, newest first, refused ones included."""
    table_rows = [
        (_run_cells(row, now, base), "failed" if row.status == "failed" else "") for row in rows
    ]
    body = (
        f'<p><a href="{base}/datasets">← Synthetic datasets</a></p>'
        f"<h1>{_e(dataset)}: runs</h1>"
        + (_table(RUN_COLUMNS, table_rows) if table_rows else "<p>No runs you may read.</p>")
    )
    return _page(f"{dataset}: runs", body)
