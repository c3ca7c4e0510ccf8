"""One self-contained HTML page that says whether a synthetic table is faithful and private.

The page is published next to the data and opened by people who were not at the run, often
offline or behind a proxy, so it depends on nothing: inline CSS, inline SVG plots, no
scripts, no fonts, no links to load; a Content-Security-Policy meta tag forbids the browser
to fetch anything even if a value slipped through. It is a few hundred kB at most.

What the page may show about the real data (it sits beside data meant to be shared):

* **Aggregates only.** Histogram shares, category shares, correlations, scores. No real row,
  no real id or PII value (key, foreign key and PII columns are listed as "not compared",
  each with its role).
* **Rare categories are suppressed.** A category value appears as a bar label only when at
  least ``min_count`` (default 5) real rows hold it, in the rows the page is computed from;
  rarer values are pooled into "other (rare)" (k-anonymity style), together with synthetic
  values the real rows never hold. Beyond the 15 most frequent, the rest are pooled into
  "other". Category values are user data: every one is HTML-escaped.
* **No real extremes.** Histogram axes span the real 1st to 99th percentile (a wider share
  for small tables, so that at least ``min_count`` real rows lie at or beyond each end): the
  real minimum and maximum, often one person's value, are never printed; values beyond fall
  into the open-ended edge bins, labelled "≤" and "≥".

The plots use at most ``max_rows`` rows per side, drawn uniformly with ``seed``, as the
fidelity scores do.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from airflow_synth.core.assess.fidelity import filter_counts, subsample
from airflow_synth.core.engine.reuse import decision_text

KINDS = ("numerical", "categorical", "datetime", "boolean", "id", "pii")
#: categories held by fewer real rows than this are never named on the page
MIN_CATEGORY_COUNT = 5
TOP_CATEGORIES = 15
HISTOGRAM_BINS = 30
TAIL_QUANTILE = 0.01
OTHER = "other"
OTHER_RARE = "other (rare)"
MISSING = "(missing)"
REAL_COLOR = "#4c78a8"
SYNTH_COLOR = "#f58518"
CORRELATED_KINDS = ("numerical", "datetime", "boolean")

_NONE = object()  # a missing value's key (a category could literally be "(missing)")
# the pools' keys: distinct from every category, whatever the categories are called
_OTHER_POOL, _RARE_POOL, _MISSING_POOL = object(), object(), object()


def render_report(
    *,
    quality: Mapping[str, Any],
    privacy: Mapping[str, Any] | None,
    settings: Mapping[str, Any],
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    kinds: Mapping[str, str],
    title: str,
    gates: Sequence[Mapping[str, Any]] | None = None,
    filters: Mapping[str, Any] | None = None,
    max_rows: int = 50_000,
    seed: int = 0,
    min_count: int = MIN_CATEGORY_COUNT,
    roles: Sequence[Mapping[str, Any]] | None = None,
    model_reuse: Mapping[str, Any] | None = None,
) -> str:
    """The report page as one HTML string (write it with UTF-8).

    ``quality`` is :func:`airflow_synth.core.assess.fidelity.fidelity_report`'s body, ``privacy``
    the privacy figures (``exact_match_rate``, ``dcr_share``, ``nndr: {median}``; ``None`` when
    not measured), ``kinds`` column -> kind (see
    :func:`airflow_synth.core.assess.fidelity.column_kinds`). ``settings`` is shown as a table;
    its keys ``dataset``, ``run``, ``synthesizer``, ``parameters``, ``seed`` and ``rows``
    (when present) also make the header. ``filters`` (``{name: rows dropped}``) defaults to
    the privacy report's ``filtered``. ``model_reuse`` (the manifest's
    ``synthesis.model_reuse``: ``decision`` "reused" or "retrained", ``reason``,
    ``model_run``...; defaults to ``settings["model_reuse"]``) adds a line to the header
    saying whether the model was trained for this run or reused from an earlier one.
    """
    if model_reuse is None and isinstance(settings.get("model_reuse"), Mapping):
        model_reuse = settings["model_reuse"]
    unknown = {k for k in kinds.values() if k not in KINDS}
    if unknown:
        raise ValueError(f"unknown column kinds {sorted(unknown)}; use one of {KINDS}")
    if filters is None and privacy:
        filters = privacy.get("filtered")
    real_s = subsample(real, max_rows, seed)
    synth_s = subsample(synthetic, max_rows, seed)
    body = [
        _header(title, settings, quality, real, synthetic, model_reuse),
        _verdict(gates),
        _roles(roles, quality.get("pii_leak")),
        _rules(quality.get("rules")),
        _fidelity(quality, kinds, real_s, synth_s, min_count, roles),
        _distributions(real_s, synth_s, kinds, quality, min_count, roles),
        _dependence(quality.get("dependence")),
        _correlations(real_s, synth_s, kinds, min_count),
        _privacy(privacy, filters, gates),
        _settings(settings),
        "<footer>Made by airflow-synth. This page is self-contained (nothing is loaded from "
        "the network) and shows only aggregates of the real data: no real row, no id or "
        f"PII value, no category held by fewer than {min_count} real rows, no real minimum "
        "or maximum.</footer>",
    ]
    return html_page(title, body)


def html_page(title: str, sections: Sequence[str]) -> str:
    """A whole page around ready ``sections``: one place owns the self-contained frame.

    The single-table report and the table-set report (:mod:`airflow_synth.core.assess`)
    share it, so both carry the same Content-Security-Policy (nothing may be fetched, no
    script may run) and the same styles. ``title`` is escaped here; ``sections`` are HTML
    already escaped by their makers.
    """
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        + "\n".join(sections)
        + "</main></body></html>\n"
    )


# --------------------------------------------------------------------------------------------
# aggregates (the only things computed from real rows)
# --------------------------------------------------------------------------------------------
def histogram(
    real: pd.Series,
    synthetic: pd.Series,
    kind: str,
    *,
    bins: int = HISTOGRAM_BINS,
    min_count: int = MIN_CATEGORY_COUNT,
) -> dict[str, Any]:
    """Shares per shared bin, between real percentiles (never the real min/max).

    Returns ``edges`` (floats; datetimes as ns since the epoch), ``real`` and ``synthetic``
    shares of non-missing values per bin (edge bins hold everything beyond), ``missing``
    shares per side, ``step`` (the whole-number width of each bin when every real value is
    a whole number, else 0: no bin then straddles a value) and ``date_only`` (a datetime
    column without times of day).
    """
    r_all, s_all = _as_float(real, kind), _as_float(synthetic, kind)
    r, s = r_all[~np.isnan(r_all)], s_all[~np.isnan(s_all)]
    out: dict[str, Any] = {
        "missing": {
            "real": _share(len(r_all) - len(r), len(r_all)),
            "synthetic": _share(len(s_all) - len(s), len(s_all)),
        },
        "edges": [],
        "real": [],
        "synthetic": [],
        "step": 0,
        "date_only": kind == "datetime" and bool(np.all(np.mod(r, 86_400e9) == 0)),
    }
    if len(r) == 0:
        return out
    q = min(0.25, max(TAIL_QUANTILE, min_count / len(r)))
    lo, hi = (float(v) for v in np.quantile(r, [q, 1 - q]))
    if kind == "numerical" and bool(np.all(np.mod(r, 1) == 0)):
        lo, hi = math.floor(lo), math.ceil(hi)
        step = max(1, math.ceil((hi - lo + 1) / bins))
        count = math.ceil((hi - lo + 1) / step)
        edges = lo - 0.5 + step * np.arange(count + 1, dtype=float)
        out["step"] = step
    else:
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
    out["edges"] = edges.tolist()
    out["real"] = _bin_shares(r, edges)
    out["synthetic"] = _bin_shares(s, edges)
    return out


def category_shares(
    real: pd.Series,
    synthetic: pd.Series,
    *,
    top: int = TOP_CATEGORIES,
    min_count: int = MIN_CATEGORY_COUNT,
) -> list[tuple[str, float, float]]:
    """(label, real share, synthetic share) rows, most frequent real category first.

    Only categories held by at least ``min_count`` real rows are named; the rest of the top
    ``top`` are pooled into "other", rare ones (and values the real rows lack) into
    "other (rare)"; missing values are "(missing)". A pool's label never equals a named
    category's: where the data holds a category literally called "other" (Airbnb's
    ``country_destination`` does), the pool becomes "other (pooled)", so no label is
    listed twice and no real category is merged into a pool.
    """
    return [(label, r, s) for label, r, s, _ in _category_rows(real, synthetic, top, min_count)]


def _shown_categories(keys: pd.Series, top: int, min_count: int) -> list[str]:
    """The category keys named on the page: held by >= ``min_count`` real rows, top ``top``."""
    counts = keys.value_counts(dropna=False)
    eligible = [(k, int(n)) for k, n in counts.items() if k is not _NONE and n >= min_count]
    eligible.sort(key=lambda kv: (-kv[1], str(kv[0])))
    return [k for k, _ in eligible]


def _category_rows(
    real: pd.Series, synthetic: pd.Series, top: int, min_count: int
) -> list[tuple[str, float, float, bool]]:
    """:func:`category_shares`' rows with a fourth field: True for a pool (other, rare,
    missing), which the plot sets in italics.

    Rows are keyed by the category itself or by a pool's own marker, never by the printed
    label: keying by label made a real category "other" and the pool "other" one key, so
    the row was listed twice (once as the category, once as the pool) and, with more than
    ``top`` categories, the pool's share was added to the real category's.
    """
    r_keys, s_keys = _category_keys(real), _category_keys(synthetic)
    eligible = _shown_categories(r_keys, top, min_count)
    shown = eligible[:top]
    shown_set, others = set(shown), set(eligible[top:])

    def key_of(key: Any) -> Any:
        if key is _NONE:
            return _MISSING_POOL
        if key in shown_set:
            return key
        return _OTHER_POOL if key in others else _RARE_POOL

    r_share = _label_shares(r_keys, key_of)
    s_share = _label_shares(s_keys, key_of)
    # every category named or pooled as "other" (never a rare one: that it exists is hidden)
    taken = set(eligible)
    labels = {}
    for pool, name in ((_OTHER_POOL, OTHER), (_RARE_POOL, OTHER_RARE), (_MISSING_POOL, MISSING)):
        labels[pool] = _free_label(name, taken)
        taken.add(labels[pool])
    rows = []
    for key in [*shown, _OTHER_POOL, _RARE_POOL, _MISSING_POOL]:
        rs, ss = float(r_share.get(key, 0.0)), float(s_share.get(key, 0.0))
        if key in shown_set:
            rows.append((key, rs, ss, False))
        elif rs > 0 or ss > 0:
            rows.append((labels[key], rs, ss, True))
    return rows


def _free_label(name: str, taken: set[str]) -> str:
    """``name``, or ``name (pooled)``, ``name (pooled 2)``... whichever no category holds."""
    if name not in taken:
        return name
    label, n = f"{name} (pooled)", 1
    while label in taken:
        n += 1
        label = f"{name} (pooled {n})"
    return label


def correlation_matrices(
    real: pd.DataFrame, synthetic: pd.DataFrame, kinds: Mapping[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pearson correlations of numerical, datetime and boolean columns, real and synthetic."""
    columns = [
        c for c, k in kinds.items() if k in CORRELATED_KINDS and c in real and c in synthetic
    ]
    if len(columns) < 2:
        return pd.DataFrame(), pd.DataFrame()

    def numeric(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({c: _as_float(frame[c], kinds[c]) for c in columns})

    with np.errstate(all="ignore"):
        return numeric(real).corr(), numeric(synthetic).corr()


def cramers_v_matrices(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    kinds: Mapping[str, str],
    min_count: int = MIN_CATEGORY_COUNT,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cramér's V between categorical columns (top categories, rare ones pooled)."""
    columns = [c for c, k in kinds.items() if k == "categorical" and c in real and c in synthetic]
    if len(columns) < 2:
        return pd.DataFrame(), pd.DataFrame()
    r_codes, s_codes = {}, {}
    for column in columns:
        named = _shown_categories(_category_keys(real[column]), TOP_CATEGORIES, min_count)
        named = named[:TOP_CATEGORIES]
        r_codes[column] = _codes(real[column], named)
        s_codes[column] = _codes(synthetic[column], named)
    r_m = pd.DataFrame(np.eye(len(columns)), index=columns, columns=columns)
    s_m = r_m.copy()
    for i, a in enumerate(columns):
        for b in columns[i + 1 :]:
            r_m.loc[a, b] = r_m.loc[b, a] = _cramers_v(r_codes[a], r_codes[b])
            s_m.loc[a, b] = s_m.loc[b, a] = _cramers_v(s_codes[a], s_codes[b])
    return r_m, s_m


def pair_association(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    kinds: Mapping[str, str],
    pair: Mapping[str, Any],
    min_count: int = MIN_CATEGORY_COUNT,
) -> dict[str, Any]:
    """How strongly the two columns of a quality-report ``pair`` go together, per side.

    ``{"measure": "r" | "V", "real": x | None, "synthetic": x | None, "why": {side: reason}}``:
    Pearson r for the pairs SDV scores by correlation (two numbers or dates; SDV's own r
    when it gave one), Cramér's V of the contingency table SDV compares for the others
    (numbers and dates cut into 10 equal-width bins over the real range, categories as on
    the page, rare ones pooled). SDV reports no correlation for contingency pairs, which is
    why the page used to show "–" for most pairs. ``None`` only where the measure is
    undefined, with the reason (a column holding one value on that side, no rows).
    """
    first, second = str(pair.get("column_1")), str(pair.get("column_2"))
    correlation = pair.get("metric") == "CorrelationSimilarity"
    out: dict[str, Any] = {"measure": "r" if correlation else "V", "why": {}}
    absent = [c for c in (first, second) if c not in real or c not in synthetic or c not in kinds]
    for side, frame in (("real", real), ("synthetic", synthetic)):
        given = pair.get(f"{side}_correlation") if correlation else None
        if _num(given) is not None:
            out[side] = float(given)
            continue
        if absent:
            out[side], out["why"][side] = None, f"{', '.join(absent)} not in the data"
            continue
        if correlation:
            out[side], out["why"][side] = _pearson(frame, kinds, first, second, side)
        else:
            codes = [_pair_codes(real[c], frame[c], kinds[c], min_count) for c in (first, second)]
            out[side], out["why"][side] = _association(codes, (first, second), side)
        if out["why"][side] is None:
            del out["why"][side]
    return out


def _pearson(
    frame: pd.DataFrame, kinds: Mapping[str, str], first: str, second: str, side: str
) -> tuple[float | None, str | None]:
    a, b = _as_float(frame[first], kinds[first]), _as_float(frame[second], kinds[second])
    both = ~(np.isnan(a) | np.isnan(b))
    if both.sum() < 2:
        return None, f"fewer than 2 {side} rows hold both values"
    for name, values in ((first, a[both]), (second, b[both])):
        if np.all(values == values[0]):
            return None, f"{name} holds a single value in the {side} rows"
    return float(np.corrcoef(a[both], b[both])[0, 1]), None


def _pair_codes(real: pd.Series, side: pd.Series, kind: str, min_count: int) -> np.ndarray:
    """One side's column as integer codes: SDV's 10 bins (on the real range) for numbers
    and dates, the page's named categories for the rest; missing values their own code."""
    if kind in ("numerical", "datetime"):
        reference = _as_float(real, kind)
        reference = reference[~np.isnan(reference)]
        values = _as_float(side, kind)
        edges = np.histogram_bin_edges(reference) if len(reference) else np.array([0.0, 1.0])
        codes = np.digitize(values, edges)
        codes[np.isnan(values)] = len(edges) + 1
        return codes.astype(np.int64)
    named = _shown_categories(_category_keys(real), TOP_CATEGORIES, min_count)
    return _codes(side, named[:TOP_CATEGORIES])


def _association(
    codes: Sequence[np.ndarray], names: Sequence[str], side: str
) -> tuple[float | None, str | None]:
    if len(codes[0]) == 0:
        return None, f"no {side} rows"
    for name, values in zip(names, codes, strict=True):
        if len(np.unique(values)) < 2:
            return None, f"{name} holds a single value in the {side} rows"
    value = _cramers_v(codes[0], codes[1])
    return (None, f"undefined on the {side} rows") if math.isnan(value) else (value, None)


def _as_float(series: pd.Series, kind: str) -> np.ndarray:
    if kind == "datetime":
        stamps = series
        if not pd.api.types.is_datetime64_any_dtype(series):
            stamps = pd.to_datetime(series, errors="coerce")
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        values = stamps.to_numpy(dtype="datetime64[ns]").astype("int64").astype(float)
        values[stamps.isna().to_numpy()] = np.nan
        return values
    if kind == "boolean":
        keys = _category_keys(series)
        return keys.map({"True": 1.0, "False": 0.0}).astype(float).to_numpy()
    return pd.to_numeric(series, errors="coerce").astype(float).to_numpy()


def _bin_shares(values: np.ndarray, edges: np.ndarray) -> list[float]:
    if len(values) == 0:
        return [0.0] * (len(edges) - 1)
    clipped = np.clip(values, edges[0], edges[-1])
    counts, _ = np.histogram(clipped, bins=edges)
    return (counts / len(values)).tolist()


def _category_key(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return _NONE
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return _NONE
        if float(value).is_integer():
            return str(int(value))
    return str(value)


def _category_keys(series: pd.Series) -> pd.Series:
    """Values as comparable strings (1 and 1.0 alike, True as "True"); missing as _NONE.

    Each distinct value is converted once (factorize), so 50k rows cost milliseconds.
    """
    codes, uniques = pd.factorize(series.astype(object), use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = [_category_key(u) for u in uniques]
    table[-1] = _NONE  # code -1 (missing) picks the last entry
    return pd.Series(table[codes], index=series.index, dtype=object)


def _label_shares(keys: pd.Series, label_of: Any) -> dict[Any, float]:
    """Share of rows per label (or pool), mapping each distinct key once."""
    shares: dict[Any, float] = {}
    if len(keys) == 0:
        return shares
    for key, count in keys.value_counts(dropna=False).items():
        label = label_of(key)
        shares[label] = shares.get(label, 0.0) + count / len(keys)
    return shares


def _codes(series: pd.Series, categories: list[str]) -> np.ndarray:
    """Integer codes: one per named category, one for every unnamed value, one for missing.

    ``categories`` are the named category keys (a real category "other" is one of them,
    not the pool of unnamed values).
    """
    named = {key: i for i, key in enumerate(categories)}
    unnamed, missing = len(categories), len(categories) + 1
    codes, uniques = pd.factorize(_category_keys(series))
    lookup = [missing if k is _NONE else named.get(k, unnamed) for k in uniques]
    return np.asarray(lookup, dtype=np.int64)[codes]


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0:
        return float("nan")
    na, nb = int(a.max()) + 1, int(b.max()) + 1
    table = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb).astype(float)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    k = min(table.shape)
    if k < 2:
        return float("nan")
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return math.sqrt(chi2 / (n * (k - 1)))


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------
def _header(
    title: str,
    settings: Mapping[str, Any],
    quality: Mapping[str, Any],
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    model_reuse: Mapping[str, Any] | None = None,
) -> str:
    synthesizer = settings.get("synthesizer")
    params = settings.get("parameters", settings.get("synthesizer_params"))
    if isinstance(synthesizer, Mapping):
        params = params if params is not None else synthesizer.get("params")
        synthesizer = synthesizer.get("name", json.dumps(synthesizer, default=str))
    facts = [
        ("dataset", settings.get("dataset")),
        ("run", settings.get("run", settings.get("run_id"))),
        ("synthesizer", synthesizer),
        ("parameters", _plain(params) if params not in (None, {}) else "defaults"),
        ("seed", settings.get("seed")),
        ("real rows (training)", settings.get("training_rows", len(real))),
        ("synthetic rows", settings.get("rows", len(synthetic))),
        ("columns", real.shape[1]),
    ]
    items = "".join(
        f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in facts if v is not None
    )
    rows = quality.get("rows_evaluated") or {}
    note = ""
    if rows.get("subsampled"):
        note = (
            f'<p class="note">Scores and plots use a uniform sample of {_e(rows.get("real"))} '
            f"real and {_e(rows.get('synthetic'))} synthetic rows.</p>"
        )
    model = _model_line(model_reuse)
    return f'<header><h1>{_e(title)}</h1><dl class="facts">{items}</dl>{model}{note}</header>'


def _model_line(reuse: Mapping[str, Any] | None) -> str:
    """ "Model: reused from run X (age, drift)" / "Model: retrained: <why>", or nothing.

    A nightly run may reuse the model of an earlier run when its training data has barely
    changed; a reader of the report must see that the model did not learn from this run's
    rows, and why.
    """
    text = decision_text(reuse)
    if not text:
        return ""
    return f'<p class="model"><b>Model:</b> {_e(text)}</p>'


def _verdict(gates: Sequence[Mapping[str, Any]] | None) -> str:
    if not gates:
        return (
            '<section id="verdict"><h2>Verdict</h2><p class="badge none">No gates were '
            "evaluated for this run.</p></section>"
        )
    failed = [g for g in gates if not g.get("passed")]
    waived = [g for g in gates if g.get("waived")]
    checked = len(gates) - len(waived)
    if failed:
        badge = f'<p class="badge fail">FAIL: {len(failed)} of {checked} gates missed</p>'
    else:
        badge = f'<p class="badge pass">PASS: all {checked} gates met</p>'
    if waived:
        badge += (
            f'<p class="note">Waived by the settings of this run (not checked): '
            f"{_e(', '.join(str(g.get('metric')) for g in waived))}.</p>"
        )
    rows = "".join(_gate_row(g) for g in gates)
    return (
        f'<section id="verdict"><h2>Verdict</h2>{badge}<table><thead><tr><th>verdict</th>'
        f"<th>metric</th><th>value</th><th>must be</th><th>note</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _gate_row(gate: Mapping[str, Any]) -> str:
    """One gate: PASS / FAIL / WAIVED, its value, its limit and why it could not be measured."""
    if gate.get("waived"):
        verdict, css, limit = "WAIVED", "none", "not checked"
    else:
        verdict = "PASS" if gate.get("passed") else "FAIL"
        css = verdict.lower()
        relation = ">=" if gate.get("kind") == "min" else "<="
        limit = f"{relation} {_fmt(gate.get('threshold'), None)}"
    return (
        f'<tr><td class="{css}">{verdict}</td><td>{_e(gate.get("metric"))}</td>'
        f'<td class="num">{_e(_fmt(gate.get("value")))}</td><td>{_e(limit)}</td>'
        f"<td>{_e(gate.get('reason') or '')}</td></tr>"
    )


_ROLE_LABELS = {
    "key": "key: fresh values",
    "foreign_key": "foreign key: its synthetic parent's key",
    "pii": "PII: generated fresh",
    "sequence": "sequence: numbered 1..n within its parent",
    "modelled": "learned by the synthesizer",
}
#: why a column is not compared, by role (short, for the lists under the plots)
_ROLE_SHORT = {
    "key": "key, fresh values",
    "foreign_key": "foreign key, its synthetic parent's key",
    "pii": "PII, generated fresh",
    "sequence": "sequence, numbered 1..n within its parent",
    "modelled": "learned, but not compared",
}


#: roles whose values are issued by us, never learned: never plotted
_ISSUED_ROLES = ("key", "foreign_key", "pii")
_NO_ROLES = (
    " (id / PII columns: a key gets fresh values, a foreign key its synthetic parent's key, "
    "PII is generated fresh)"
)


def _role_label(role: Mapping[str, Any]) -> str:
    """A role as the table shows it: a foreign key names the key it references."""
    name = role.get("role")
    label = _ROLE_LABELS.get(name, str(name))
    if name == "foreign_key" and role.get("references"):
        label = f"foreign key to {role['references']}: its synthetic parent's key"
    return label


def _not_compared(columns: Sequence[Any], roles: Sequence[Mapping[str, Any]] | None) -> str:
    """Columns left out of the comparison, each with its role as it is.

    Without roles, only the column's kind is known (``id``: a key or a foreign key; ``pii``):
    the text then says what each can be instead of calling a foreign key "generated fresh"
    (it takes its synthetic parent's key; nothing is generated for it).
    """
    by_name = {str(r.get("name")): r for r in roles or ()}
    named = []
    for column in columns:
        role = by_name.get(str(column))
        if role is None:
            named.append(str(column))
        else:
            why = _ROLE_SHORT.get(role.get("role"), str(role.get("role")))
            named.append(f"{column} ({why})")
    return ", ".join(named)


def _roles(roles: Sequence[Mapping[str, Any]] | None, leak: Mapping[str, Any] | None) -> str:
    """Each column's role and why, so a reader sees at once what was treated as PII."""
    if not roles:
        return ""
    leaks = (leak or {}).get("columns") or {}
    rows = "".join(
        f"<tr><td>{_e(r.get('name'))}</td><td>{_e(_role_label(r))}"
        f"</td><td>{_e(r.get('kind'))}</td><td>{_e(r.get('reason'))}</td>"
        f'<td class="num">{_e(leaks.get(r.get("name"), "") if r.get("role") != "modelled" else "")}'
        "</td></tr>"
        for r in roles
    )
    total = (leak or {}).get("values")
    summary = (
        "No published value of a fresh column equals a real value of it."
        if total == 0
        else "Fresh values were not checked against the real ones."
        if total is None
        else f"{total} published value(s) equal a real value: the run is refused."
    )
    return (
        '<section id="roles"><h2>Columns and their roles</h2><p>Keys, foreign keys and PII '
        "are never shown to the synthesizer: a key gets fresh values, a foreign key its "
        "synthetic parent's key, PII fresh values, and every published value is checked "
        f"against the real ones. {_e(summary)}</p><table><thead><tr>"
        "<th>column</th><th>role</th><th>kind</th><th>why</th><th>equal to a real value</th>"
        f"</tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _rules(rules: Mapping[str, Any] | None) -> str:
    """The rules of the real table and how often each holds, on real and synthetic rows."""
    if rules is None:
        return ""
    items = rules.get("rules") or []
    if not items:
        return (
            '<section id="rules"><h2>Rules</h2><p>No rule (functional dependency, ordering, '
            "null pattern) holds on every training row with enough support.</p></section>"
        )
    rows = "".join(
        f"<tr><td>{_e(r.get('id'))}</td><td>{_e(r.get('description'))}</td>"
        f"<td>{_e(str(r.get('type', '')).replace('_', ' '))}</td><td>{_e(r.get('source'))}</td>"
        f'<td class="num">{_e(_pct(r.get("real_hold")))}</td>'
        f'<td class="num">{_e(_pct(r.get("synthetic_hold")))}</td></tr>'
        for r in items
    )
    return (
        '<section id="rules"><h2>Rules</h2><p>Logic of the real table that holds on every '
        "training row; the synthesizer's output is repaired so it holds on every published "
        f"row too (gate <code>rules_held</code>). Lowest hold rate: "
        f"{_e(_pct(rules.get('held')))}.</p><table><thead><tr><th>rule</th><th>meaning</th>"
        "<th>type</th><th>source</th><th>real rows</th><th>synthetic rows</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _association_cells(assoc: Mapping[str, Any]) -> str:
    cells = []
    for side in ("real", "synthetic"):
        value = _num(assoc.get(side))
        if value is None:
            why = assoc["why"].get(side, "undefined")
            cells.append(f'<td class="num na" title="undefined: {_e(why)}">–</td>')
        else:
            text = f"{assoc['measure']} {value + 0.0:.2f}".replace("-0.00", "0.00")
            cells.append(f'<td class="num">{_e(text)}</td>')
    return "".join(cells)


def _fidelity(
    quality: Mapping[str, Any],
    kinds: Mapping[str, str],
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    min_count: int,
    roles: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    props = quality.get("properties") or {}
    diag = quality.get("diagnostic") or {}
    cards = [
        ("overall quality", quality.get("score"), "mean of the two properties below"),
        ("column shapes", props.get("column_shapes"), "each column's distribution"),
        ("column pair trends", props.get("column_pair_trends"), "every pair's correlation"),
        ("diagnostic: validity", diag.get("data_validity"), "ranges, categories, keys"),
        ("diagnostic: structure", diag.get("data_structure"), "same columns"),
    ]
    tiles = "".join(
        f'<div class="tile"><div class="big {_grade(v)}">{_e(_fmt(v, 2))}</div>'
        f"<div>{_e(name)}</div><small>{_e(hint)}</small></div>"
        for name, v, hint in cards
    )
    rows = "".join(
        f"<tr><td>{_e(c.get('column'))}</td><td>{_e(kinds.get(c.get('column'), ''))}</td>"
        f"<td>{_e(c.get('metric'))}</td>{_score_cell(c.get('score'))}</tr>"
        for c in quality.get("columns") or []
    )
    pairs = (quality.get("pairs") or [])[:10]
    pair_rows = "".join(
        f"<tr><td>{_e(p.get('column_1'))} × {_e(p.get('column_2'))}</td>"
        f"<td>{_e(p.get('metric'))}</td>{_score_cell(p.get('score'))}"
        + _association_cells(pair_association(real, synthetic, kinds, p, min_count))
        + "</tr>"
        for p in pairs
    )
    not_scored = quality.get("columns_not_scored") or []
    skipped = (
        f"<p>Not scored: {_e(_not_compared(not_scored, roles))}{_e(_NO_ROLES if not roles else '')}"
        ".</p>"
        if not_scored
        else ""
    )
    empty = quality.get("columns_empty_in_synthetic") or []
    if empty:
        skipped += (
            '<p class="poor">Empty in the synthetic table (scored 0): '
            f"{_e(', '.join(map(str, empty)))}</p>"
        )
    n_pairs = len(quality.get("pairs") or [])
    return (
        '<section id="fidelity"><h2>Fidelity</h2><p>SDV quality report against the real '
        "training rows (1 = indistinguishable). Column shapes compare each column's "
        "distribution (KS complement for numbers and dates, TV complement for categories); "
        f"column pair trends compare all {n_pairs} column pairs (correlation or contingency "
        f'similarity).</p><div class="tiles">{tiles}</div>{skipped}'
        '<div class="cols"><div><h3>Columns, worst first</h3><table><thead><tr><th>column</th>'
        f"<th>kind</th><th>metric</th><th>score</th></tr></thead><tbody>{rows}</tbody></table>"
        "</div><div><h3>Weakest column pairs</h3><table><thead><tr><th>pair</th><th>metric</th>"
        "<th>score</th><th>real</th><th>synth.</th></tr></thead>"
        f'<tbody>{pair_rows}</tbody></table><p class="note">real / synth.: how strongly the '
        "two columns go together on each side: <b>r</b> Pearson correlation (two numbers or "
        "dates), <b>V</b> Cramér's V of the contingency table SDV compares (numbers and dates "
        "in 10 bins). – where it is undefined (hover for why): a column holding a single "
        "value on that side.</p></div></div></section>"
    )


def _distributions(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    kinds: Mapping[str, str],
    quality: Mapping[str, Any],
    min_count: int,
    roles: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    scores = {c.get("column"): c.get("score") for c in quality.get("columns") or []}
    issued = {str(r.get("name")) for r in roles or () if r.get("role") in _ISSUED_ROLES}
    cards, fresh, absent = [], [], []
    for column, kind in kinds.items():
        if kind in ("id", "pii") or str(column) in issued:  # never plot a key's or PII's values
            fresh.append(column)
            continue
        if column not in real.columns or column not in synthetic.columns:
            absent.append(column)
            continue
        if kind in ("numerical", "datetime"):
            agg = histogram(real[column], synthetic[column], kind, min_count=min_count)
            svg = _histogram_svg(agg, kind, column)
            missing = agg["missing"]
        else:
            table = _category_rows(real[column], synthetic[column], TOP_CATEGORIES, min_count)
            svg = _bars_svg(
                [(label, r, s) for label, r, s, _ in table],
                column,
                pooled=[i for i, row in enumerate(table) if row[3]],
            )
            missing = None
        extra = ""
        if missing and (missing["real"] or missing["synthetic"]):
            extra = (
                f"<small>missing: real {_pct(missing['real'])}, synthetic "
                f"{_pct(missing['synthetic'])}</small>"
            )
        score = scores.get(column)
        cards.append(
            f'<figure class="card"><figcaption><b>{_e(column)}</b> <span class="kind">'
            f'{_e(kind)}</span> <span class="score {_grade(score)}">{_e(_fmt(score, 3))}</span>'
            f"</figcaption>{svg}{extra}</figure>"
        )
    notes = ""
    if fresh:
        notes += (
            f"<p>Not compared: {_e(_not_compared(fresh, roles))}"
            f"{_e(_NO_ROLES if not roles else '')}.</p>"
        )
    if absent:
        notes += f"<p>Missing from the data, not plotted: {_e(', '.join(map(str, absent)))}.</p>"
    return (
        '<section id="distributions"><h2>Distributions: real vs synthetic</h2>'
        f'<p class="legend"><i style="background:{REAL_COLOR}"></i>real '
        f'<i style="background:{SYNTH_COLOR}"></i>synthetic. Shares of non-missing values. '
        f"Histogram axes span the real 1st-99th percentile; edge bins hold everything beyond. "
        f"Categories held by fewer than {min_count} real rows are pooled into "
        f'"{OTHER_RARE}".</p>{notes}<div class="grid">{"".join(cards)}</div></section>'
    )


def _correlations(
    real: pd.DataFrame, synthetic: pd.DataFrame, kinds: Mapping[str, str], min_count: int
) -> str:
    parts = []
    r, s = correlation_matrices(real, synthetic, kinds)
    if not r.empty:
        parts.append(
            "<h3>Numerical, date and boolean columns (Pearson r)</h3>"
            + _matrix_trio(r, s, signed=True)
        )
    r, s = cramers_v_matrices(real, synthetic, kinds, min_count)
    if not r.empty:
        parts.append("<h3>Categorical columns (Cramér's V)</h3>" + _matrix_trio(r, s, signed=False))
    if not parts:
        parts.append("<p>Fewer than two comparable columns: no correlations to compare.</p>")
    return (
        '<section id="correlations"><h2>Pair correlations</h2><p>Real and synthetic '
        "correlation matrices and their absolute difference; a faithful copy keeps the "
        "difference pale (below 0.1).</p>" + "".join(parts) + "</section>"
    )


def _dependence(dependence: Mapping[str, Any] | None) -> str:
    """The strong real relationships and how much of each the synthetic table keeps."""
    if not dependence:
        return ""
    intro = (
        '<section id="dependence"><h2>Strong relationships</h2><p>Pairs of columns whose real '
        f"bias-corrected Cramér's V is at least {_e(dependence.get('min_strength'))}, and "
        "the share of that strength the synthetic table keeps (1 = reproduced, 0 = gone, "
        "as if the columns were shuffled independently). Dependence preservation: <b>"
        f"{_e(_fmt(dependence.get('score')))}</b>.</p>"
    )
    rows = "".join(
        f"<tr><td>{_e(p['column_1'])} × {_e(p['column_2'])}</td>"
        f"<td>{_e(_fmt(p['real_strength']))}</td><td>{_e(_fmt(p['synthetic_strength']))}</td>"
        f"<td>{_e(_fmt(p['preserved']))}</td></tr>"
        for p in dependence.get("pairs", [])
    )
    if not rows:
        return intro + "<p>The real table has no strong relationship.</p></section>"
    return (
        intro + "<table><thead><tr><th>pair</th><th>real V</th><th>synthetic V</th>"
        f"<th>preserved</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


_PRIVACY_TEXT = {
    "exact_match_rate": ("exact-match rate", ""),  # the sentence: _exact_match_text
    "near_copy_rate": ("near-copy rate", ""),  # the sentence: _near_copy_text
    "dcr_share": (
        "DCR share",
        "Share of synthetic rows closer to a training row than to a held-out real row; "
        "about 0.5 means the model did not memorise, towards 1.0 it copies what it saw.",
    ),
    "nndr": (
        "NNDR (median)",
        "Distance to the closest real row divided by the distance to the second closest; "
        "near 0 a synthetic row sits on one real person, near 1 among many.",
    ),
}
_FILTER_TEXT = {
    "similarity": "Synthetic rows dropped because they copied or nearly copied a real "
    "training row.",
    "outlier": "Synthetic rows dropped because they were outliers in the real data's space "
    "(farther from every real row than 99.5% of unseen real rows, and among the farthest 1% "
    "of their batch), which can single out real people.",
}
_REPLACED_TEXT = (
    " Each dropped row was replaced by a new sample from its stratum (its categories, "
    "booleans and NULL states; a coarser stratum where none was drawn), so the filter does "
    "not shift the shares the model produced."
)


def _gate(gates: Sequence[Mapping[str, Any]] | None, metric: str) -> Mapping[str, Any] | None:
    return next((g for g in gates or () if g.get("metric") == metric), None)


def _rate(value: Any) -> str:
    """A small rate with two decimals (1 decimal hid 0.96% <= 1%: "1.0% <= 1.0%")."""
    number = _num(value)
    return "n/a" if number is None else f"{number * 100:.2f}%"


def _limit_text(gate: Mapping[str, Any] | None, setting: str, gated: bool, fmt: Any = None) -> str:
    """What the gate compared the value with, and its verdict, in words."""
    if gate is None:
        return (
            "No gate was evaluated for this run."
            if gated
            else f"Its gate's limit is {setting}, or the data's baseline plus noise if higher."
        )
    if gate.get("waived"):
        return f"Its gate was waived by this run's settings ({setting}=None): not checked."
    fmt = fmt or _rate
    limit, value = fmt(gate.get("threshold")), gate.get("value")
    source = gate.get("reason") if value is not None else None
    how = f"({source})" if source else f"(the setting {setting})"
    if value is None:
        return (
            f"Its gate (limit {limit}) failed: it could not be measured: "
            f"{gate.get('reason') or 'no value'}."
        )
    verdict = "met" if gate.get("passed") else "missed"
    return f"The gate compares {fmt(value)} with the limit {limit} {how}: {verdict}."


def _exact_match_text(
    privacy: Mapping[str, Any], gate: Mapping[str, Any] | None, gated: bool
) -> str:
    """The exact-match rate's meaning, its baseline and what the gate really compares.

    The old sentence said "the target is 0" while the gate allows, on tables whose real
    rows repeat each other, that repeat rate plus noise (see
    :func:`airflow_synth.core.assess.checks.exact_match_limit`).
    """
    text = (
        "Share of synthetic rows (sampled, before the filters) identical to a training row "
        "on the modelled columns; a copied row may be a real person's record."
    )
    repeats = _num(privacy.get("exact_match_rate_real_repeats"))
    if repeats is not None:
        text += (
            f" Baseline: {_rate(repeats)} of the real training rows equal another training "
            "row; a model drawing from the true distribution matches training rows at "
            "about that rate, so "
            + (
                "copies at that rate plus the 99.9% noise margin of two rates at these "
                "sizes are expected (the limit is that, or max_exact_match_rate if higher)."
                if repeats > 0
                else "any copy here is a sign of memorising (the limit is max_exact_match_rate)."
            )
        )
    holdout = _num(privacy.get("exact_match_rate_holdout"))
    if holdout is not None:
        text += f" For reference, {_rate(holdout)} equal a held-out real row."
    return f"{text} {_limit_text(gate, 'max_exact_match_rate', gated)}"


def _near_copy_text(privacy: Mapping[str, Any], gate: Mapping[str, Any] | None, gated: bool) -> str:
    text = (
        "Share of synthetic rows, not exact copies, closer to a training row than any real "
        "row is to another real row."
    )
    expected = _num(privacy.get("near_copy_rate_expected"))
    if expected is not None:
        text += (
            f" Baseline: an unseen real row lands there with probability {_rate(expected)}; "
            "the limit is max_near_copy_rate, or the 99.9% quantile of what a model that "
            "does not copy scores at this size if higher."
        )
    elif privacy.get("near_copy_reason"):
        text += f" Not measured: {privacy['near_copy_reason']}."
    return f"{text} {_limit_text(gate, 'max_near_copy_rate', gated)}"


def _privacy(
    privacy: Mapping[str, Any] | None,
    filters: Mapping[str, Any] | None,
    gates: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    rows = []
    if privacy:
        for key, (name, sentence) in _PRIVACY_TEXT.items():
            value = privacy.get(key)
            if isinstance(value, Mapping):
                value = value.get("median")
            if key == "exact_match_rate":
                sentence = _exact_match_text(privacy, _gate(gates, key), bool(gates))
            elif key == "near_copy_rate":
                if key not in privacy:
                    continue
                sentence = _near_copy_text(privacy, _gate(gates, key), bool(gates))
            elif key == "dcr_share":
                limit = _limit_text(
                    _gate(gates, key), "max_dcr_share", bool(gates), lambda v: _fmt(v, 3)
                )
                sentence = f"{sentence} {limit}"
            shown = (
                _rate(value) if key in ("exact_match_rate", "near_copy_rate") else _fmt(value, 3)
            )
            rows.append((name, shown, sentence))
    for name, dropped in filter_counts(filters).items():
        sentence = _FILTER_TEXT.get(
            name, f"Synthetic rows the {name} filter dropped before publication."
        )
        shown = f"{dropped} rows"
        entry = (filters or {}).get(name)
        if isinstance(entry, Mapping) and "replaced" in entry:
            shown = (
                f"{dropped} dropped, {entry['replaced']} replaced "
                f"({entry.get('replaced_same_stratum', 0)} same stratum, "
                f"{entry.get('replaced_coarser_stratum', 0)} coarser, "
                f"{entry.get('replaced_any_row', 0)} any row)"
            )
            if entry.get("not_replaced"):
                shown += f", {entry['not_replaced']} not replaced"
            sentence += _REPLACED_TEXT
        rows.append((f"{name} filter", shown, sentence))
    if not rows:
        return (
            '<section id="privacy"><h2>Privacy</h2><p>Privacy was not measured for this run.'
            "</p></section>"
        )
    body = "".join(
        f'<tr><th>{_e(n)}</th><td class="num">{_e(v)}</td><td>{_e(s)}</td></tr>' for n, v, s in rows
    )
    extra = ""
    if privacy:
        known = set(_PRIVACY_TEXT)
        others = {k: v for k, v in _flatten(privacy).items() if k.split(".")[0] not in known}
        if others:
            extra = f"<details><summary>All privacy figures</summary>{_kv_table(others)}</details>"
    return (
        '<section id="privacy"><h2>Privacy</h2><table class="privacy"><tbody>'
        f"{body}</tbody></table>{extra}</section>"
    )


def _settings(settings: Mapping[str, Any]) -> str:
    return f'<section id="settings"><h2>Settings</h2>{_kv_table(_flatten(settings))}</section>'


# --------------------------------------------------------------------------------------------
# SVG and table drawing
# --------------------------------------------------------------------------------------------
_W, _H, _L, _R, _T, _B = 460, 170, 44, 10, 10, 34


def _histogram_svg(agg: Mapping[str, Any], kind: str, column: str) -> str:
    edges, real, synth = agg["edges"], agg["real"], agg["synthetic"]
    if not edges:
        return _svg_message(f"{column}: no real values to compare")
    n = len(real)
    top, tick = share_axis(max([*real, *synth]))
    plot_w, plot_h = _W - _L - _R, _H - _T - _B
    bw = plot_w / n
    base = _T + plot_h

    def y(share: float) -> float:
        return base - share / top * plot_h

    parts = []
    for k in range(1, round(top / tick) + 1):  # faint lines and labels at each nice tick
        at = y(k * tick)
        parts.append(
            f'<line x1="{_L}" y1="{at:.1f}" x2="{_W - _R}" y2="{at:.1f}" class="grid"/>'
            f'<text x="{_L - 4}" y="{at + 4:.1f}" class="t" text-anchor="end">'
            f"{_tick_label(k * tick)}</text>"
        )
    parts.append(f'<line x1="{_L}" y1="{base}" x2="{_W - _R}" y2="{base}" class="axis"/>')
    for i, (rs, ss) in enumerate(zip(real, synth, strict=True)):
        x = _L + i * bw
        label = _bin_label(edges, i, kind, agg["step"], agg["date_only"])
        parts.append(
            f'<rect x="{x + 0.5:.1f}" y="{y(rs):.1f}" width="{max(bw - 1, 0.5):.1f}" '
            f'height="{base - y(rs):.1f}" fill="{REAL_COLOR}" fill-opacity="0.6">'
            f"<title>{_e(label)}: real {_pct(rs)}, synthetic {_pct(ss)}</title></rect>"
        )
    step = [f"M{_L},{base}"]
    for i, ss in enumerate(synth):
        step.append(f"L{_L + i * bw:.1f},{y(ss):.1f}L{_L + (i + 1) * bw:.1f},{y(ss):.1f}")
    step.append(f"L{_W - _R},{base}")
    parts.append(f'<path d="{"".join(step)}" fill="none" stroke="{SYNTH_COLOR}" stroke-width="2"/>')
    parts.append(f'<text x="{_L - 4}" y="{base}" class="t" text-anchor="end">0</text>')
    date_only = agg["date_only"]
    if agg["step"]:
        left, right = (
            _bin_label(edges, 0, kind, agg["step"]),
            _bin_label(edges, n - 1, kind, agg["step"]),
        )
        mid = _fmt_value(round((edges[0] + edges[-1]) / 2), kind)
        if n == 1:  # one value fills the real central range: it read "≤ 1 … ≤ 1"
            left = right = ""
    else:
        left = "≤ " + _fmt_value(edges[0], kind, date_only)
        right = "≥ " + _fmt_value(edges[-1], kind, date_only)
        mid = _fmt_value((edges[0] + edges[-1]) / 2, kind, date_only)
    for x, anchor, text in (
        (_L, "start", left),
        ((_L + _W - _R) / 2, "middle", mid),
        (_W - _R, "end", right),
    ):
        if not text:
            continue
        parts.append(
            f'<text x="{x:.1f}" y="{base + 16}" class="t" text-anchor="{anchor}">{_e(text)}</text>'
        )
    return _svg(_W, _H, column, "".join(parts))


#: tick steps of a share axis (fractions of 1), smallest first: 1-2-2.5-5 per decade
_TICK_STEPS = tuple(m * 10.0**e for e in range(-4, 0) for m in (1, 2, 2.5, 5)) + (1.0,)


def share_axis(largest: float, ticks: int = 4) -> tuple[float, float]:
    """(axis maximum, tick step) of a plot of shares whose largest value is ``largest``.

    The step is the smallest "nice" one (1, 2, 2.5, 5 times a power of ten) that needs
    at most ``ticks`` ticks; the maximum is the first tick at or above ``largest``, and
    never above 100%: a share cannot exceed it (the old axis was the largest share plus
    10%, so a bin holding 93.5% of the rows drew an axis to 102.9%).
    """
    largest = min(max(float(largest), 0.0), 1.0)
    if largest == 0:
        return _TICK_STEPS[0], _TICK_STEPS[0]
    for step in _TICK_STEPS:
        count = math.ceil(largest / step - 1e-9)
        if count <= ticks:
            return min(1.0, round(count * step, 10)), step
    return 1.0, 0.25


def _tick_label(share: float) -> str:
    return f"{round(share * 100, 4):g}%"


def _bars_svg(
    rows: Sequence[tuple[str, float, float]], column: str, pooled: Collection[int] = ()
) -> str:
    """Paired horizontal bars per label; rows at the indexes in ``pooled`` (pools of
    values, not one value) get an italic label."""
    if not rows:
        return _svg_message(f"{column}: no values to compare")
    label_w, text_w, row_h, bar_h = 150, 96, 22, 8
    plot_w = _W - label_w - text_w
    top = max(max(r, s) for _, r, s in rows) or 1.0
    height = len(rows) * row_h + 6
    parts = []
    for i, (label, rs, ss) in enumerate(rows):
        y0 = 3 + i * row_h
        short = label if len(label) <= 22 else label[:21] + "…"
        cls = ' class="t pooled"' if i in pooled else ' class="t"'
        parts.append(
            f"<g><title>{_e(label)}: real {_pct(rs)}, synthetic {_pct(ss)}</title>"
            f'<text x="{label_w - 6}" y="{y0 + 13}" text-anchor="end"{cls}>{_e(short)}</text>'
            f'<rect x="{label_w}" y="{y0 + 2}" width="{rs / top * plot_w:.1f}" height="{bar_h}" '
            f'fill="{REAL_COLOR}"/><rect x="{label_w}" y="{y0 + 2 + bar_h}" '
            f'width="{ss / top * plot_w:.1f}" height="{bar_h}" fill="{SYNTH_COLOR}"/>'
            f'<text x="{label_w + plot_w + 4}" y="{y0 + 13}" class="t">{_pct(rs)} / {_pct(ss)}'
            "</text></g>"
        )
    return _svg(_W, height, column, "".join(parts))


def _svg(width: int, height: int, label: str, inner: str) -> str:
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{_e(label)}: real vs synthetic">{inner}</svg>'
    )


def _svg_message(text: str) -> str:
    return _svg(_W, 40, text, f'<text x="8" y="24" class="t">{_e(text)}</text>')


def _matrix_trio(real: pd.DataFrame, synthetic: pd.DataFrame, *, signed: bool) -> str:
    synthetic = synthetic.reindex(index=real.index, columns=real.columns)
    diff = (real - synthetic).abs()
    return (
        '<div class="mats">'
        f"<div><h4>real</h4>{_matrix_table(real, signed)}</div>"
        f"<div><h4>synthetic</h4>{_matrix_table(synthetic, signed)}</div>"
        f"<div><h4>|real − synthetic|</h4>{_matrix_table(diff, None)}</div></div>"
    )


def _matrix_table(matrix: pd.DataFrame, signed: bool | None) -> str:
    names = [str(c) for c in matrix.columns]
    head = "".join(f'<th class="v"><span>{_e(n)}</span></th>' for n in names)
    body = []
    for i, row_name in enumerate(names):
        cells = []
        for j in range(len(names)):
            value = _num(matrix.iat[i, j])
            colour = _cell_colour(value, signed)
            text = "–" if value is None else f"{value + 0.0:.2f}".replace("-0.00", "0.00")
            cells.append(
                f'<td style="background:{colour}" title="{_e(row_name)} × {_e(names[j])}">'
                f"{text}</td>"
            )
        body.append(f"<tr><th>{_e(row_name)}</th>{''.join(cells)}</tr>")
    return (
        f'<table class="mat"><thead><tr><th></th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _cell_colour(value: float | None, signed: bool | None) -> str:
    if value is None:
        return "#eeeeee"
    if signed is None:  # difference: white -> red at 0.5 and above
        t = min(abs(value) / 0.5, 1.0)
        return _mix((255, 255, 255), (214, 39, 40), t)
    if signed and value < 0:
        return _mix((255, 255, 255), (33, 102, 172), min(-value, 1.0))
    return _mix((255, 255, 255), (178, 24, 43) if signed else (84, 39, 143), min(value, 1.0))


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    r, g, bl = (round(x + (y - x) * t * 0.85) for x, y in zip(a, b, strict=True))
    return f"#{r:02x}{g:02x}{bl:02x}"


def _kv_table(values: Mapping[str, Any]) -> str:
    if not values:
        return "<p>None.</p>"
    rows = "".join(
        f"<tr><th>{_e(k)}</th><td><code>{_e(_plain(v))}</code></td></tr>" for k, v in values.items()
    )
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


# --------------------------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fmt(value: Any, digits: int | None = 4, missing: str = "n/a") -> str:
    number = _num(value)
    if number is None:
        return missing
    return f"{number:g}" if digits is None else f"{number:.{digits}f}"


def _pct(value: Any) -> str:
    number = _num(value)
    if number is None:
        return "n/a"
    return f"{number * 100:.1f}%" if number * 100 >= 0.1 or number == 0 else f"{number * 100:.2g}%"


def _grade(score: Any) -> str:
    number = _num(score)
    if number is None:
        return "na"
    return "good" if number >= 0.8 else "fair" if number >= 0.6 else "poor"


def _score_cell(score: Any) -> str:
    number = _num(score)
    width = 0 if number is None else max(0.0, min(number, 1.0)) * 100
    return (
        f'<td class="num {_grade(score)}"><span class="bar" style="width:{width:.0f}px">'
        f"</span>{_e(_fmt(score, 3))}</td>"
    )


def _fmt_value(value: float, kind: str, date_only: bool = False) -> str:
    if kind == "datetime":
        stamp = pd.Timestamp(int(value))
        return stamp.strftime("%Y-%m-%d" if date_only else "%Y-%m-%d %H:%M")
    size = abs(value)
    if size == 0:
        return "0"
    if size >= 1e9 or size < 1e-3:
        return f"{value:.3g}"
    if size >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}" if size >= 1 else f"{value:.3g}"


def _bin_label(
    edges: Sequence[float], i: int, kind: str, step: int, date_only: bool = False
) -> str:
    if step:
        first, last = _fmt_value(edges[i] + 0.5, kind), _fmt_value(edges[i + 1] - 0.5, kind)
        if len(edges) == 2:  # the only bin holds every value (the axis label names it)
            return "all values"
        if i == 0:
            return f"≤ {last}"
        if i == len(edges) - 2:
            return f"≥ {first}"
        return first if step == 1 else f"{first} to {last}"
    lo, hi = _fmt_value(edges[i], kind, date_only), _fmt_value(edges[i + 1], kind, date_only)
    if i == 0:
        return f"< {hi}"
    return f"≥ {lo}" if i == len(edges) - 2 else f"{lo} to {hi}"


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


_CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",
Roboto,sans-serif;color:#1d2330;background:#f5f6f8}main{max-width:1180px;margin:0 auto;
padding:20px 24px 40px}h1{font-size:24px;margin:0 0 10px}h2{font-size:19px;margin:0 0 10px;
border-bottom:2px solid #e2e5ea;padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}
h4{font-size:13px;margin:4px 0}header,section{background:#fff;border-radius:8px;
padding:16px 20px;margin:0 0 16px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
.facts{display:flex;flex-wrap:wrap;gap:6px 22px;margin:0}.facts dt{font-size:11px;
color:#6b7280;text-transform:uppercase;letter-spacing:.04em}.facts dd{margin:0;
font-weight:600;max-width:560px;overflow-wrap:anywhere}.note{color:#6b7280}
table{border-collapse:collapse;margin:4px 0}th,td{padding:3px 8px;border-bottom:1px solid #eceef2;
text-align:left;vertical-align:top}td.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}.badge{display:inline-block;padding:6px 14px;border-radius:6px;
font-weight:700;font-size:16px;margin:0 0 8px}.badge.pass{background:#e3f4e6;color:#1b5e20}
.badge.fail{background:#fde7e7;color:#b71c1c}.badge.none{background:#eef0f3;color:#444}
td.pass{color:#1b5e20;font-weight:700}td.fail{color:#b71c1c;font-weight:700}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}.tile{border:1px solid #e2e5ea;
border-radius:8px;padding:8px 14px;min-width:150px}.tile small{color:#6b7280}
.big{font-size:28px;font-weight:700}.good{color:#1b7a30}.fair{color:#b86200}.poor{color:#c62828}
.na{color:#888}.cols{display:flex;flex-wrap:wrap;gap:24px}.bar{display:inline-block;height:8px;
background:currentColor;opacity:.35;margin-right:6px;vertical-align:middle}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:12px}
.card{margin:0;border:1px solid #e2e5ea;border-radius:8px;padding:8px 10px}.card svg{display:block;
max-width:100%;height:auto}.card small{color:#6b7280}.kind{font-size:11px;color:#6b7280;
border:1px solid #d5d9e0;border-radius:4px;padding:0 4px}.score{float:right;font-weight:700}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin:0 4px 0 10px;
vertical-align:-1px}.legend i:first-child{margin-left:0}
svg .t{font-size:11px;fill:#374151}svg .pooled{font-style:italic;fill:#6b7280}
svg .axis{stroke:#9ca3af}svg .grid{stroke:#eceef2}
.mats{display:flex;flex-wrap:wrap;gap:16px;overflow-x:auto}
table.mat td{width:38px;text-align:center;font-size:11px;padding:3px 2px;border:1px solid #fff}
table.mat th{font-size:11px;font-weight:600;white-space:nowrap;max-width:140px;overflow:hidden;
text-overflow:ellipsis}table.mat th.v{vertical-align:bottom;padding:2px}
table.mat th.v span{writing-mode:vertical-rl;transform:rotate(180deg);max-height:110px;
overflow:hidden;text-overflow:ellipsis;display:inline-block}
table.kv th{font-weight:600;white-space:nowrap}table.kv code{overflow-wrap:anywhere}
table.privacy th{white-space:nowrap}
details{margin-top:10px}summary{cursor:pointer;font-weight:600}
footer{color:#6b7280;font-size:12px;padding:4px 4px}
"""

__all__ = [
    "category_shares",
    "correlation_matrices",
    "cramers_v_matrices",
    "histogram",
    "html_page",
    "render_report",
]
