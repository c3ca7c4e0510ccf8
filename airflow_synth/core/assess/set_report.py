"""The set-level HTML page: do the tables still fit together?

The per-table reports say whether each table is faithful on its own; this page, published
beside them, says whether the *set* is: the joins (integrity), the shape of one-to-many
(children per parent, real vs synthetic, with the distance between them), the links
between a parent's attributes and its number of children, and the ``child >= parent``
rules across joins. It is drawn from the JSON-safe results of :mod:`.relationships`,
:mod:`.links` and :mod:`.orderings`, never from frames, so it cannot show a real cell
value: only counts, shares, scores and names (every name HTML-escaped). It shares the
single-table page's frame, styles and plot helpers (:mod:`airflow_synth.core.assess.report_html`),
so both look alike and both forbid the browser to fetch or run anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from airflow_synth.core.assess.report_html import (
    REAL_COLOR,
    SYNTH_COLOR,
    _bars_svg,
    _e,
    _flatten,
    _grade,
    _kv_table,
    _pct,
    _score_cell,
    html_page,
)


def render_set_report(
    *,
    title: str,
    integrity: Mapping[str, Any],
    children: Mapping[str, Any],
    links: Mapping[str, Any] | None = None,
    orderings: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    table_reports: Mapping[str, str] | None = None,
) -> str:
    """The set report as one HTML string (write it with UTF-8 as ``report.html``).

    ``integrity`` is :func:`~airflow_synth.core.assess.relationships.check_integrity`'s
    result, ``children`` :func:`~airflow_synth.core.assess.relationships.children_per_parent`'s,
    ``links`` :func:`~airflow_synth.core.assess.links.parent_child_count_links`'s and
    ``orderings`` :func:`~airflow_synth.core.profile.orderings.cross_table_hold_rates`'s
    (either None: not measured). ``table_reports`` maps a table to the relative address of
    its own report, linked from the page.
    """
    sections = [
        _header(title, settings or {}, table_reports),
        _integrity(integrity),
        _children(children),
        _links(links),
        _orderings(orderings),
        f'<section id="settings"><h2>Settings</h2>{_kv_table(_flatten(settings or {}))}</section>',
        "<footer>Made by airflow-synth. This page is self-contained (nothing is loaded from "
        "the network) and shows only counts, shares, scores and names: no real row and no "
        "key value.</footer>",
    ]
    return html_page(title, sections)


def _header(
    title: str, settings: Mapping[str, Any], table_reports: Mapping[str, str] | None
) -> str:
    facts = [(k, settings.get(k)) for k in ("dataset", "run", "synthesizer", "seed")]
    items = "".join(
        f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in facts if v is not None
    )
    reports = ""
    if table_reports:
        anchors = ", ".join(
            f'<a href="{_e(quote(str(href), safe="/._-"))}">{_e(name)}</a>'
            for name, href in table_reports.items()
        )
        reports = f"<p>Reports of each table: {anchors}.</p>"
    return f'<header><h1>{_e(title)}</h1><dl class="facts">{items}</dl>{reports}</header>'


def _verdict(passed: bool) -> str:
    return '<td class="pass">PASS</td>' if passed else '<td class="fail">FAIL</td>'


def _integrity(integrity: Mapping[str, Any]) -> str:
    passed = bool(integrity.get("passed"))
    badge = (
        '<p class="badge pass">PASS: every key is unique and every join finds its parent</p>'
        if passed
        else '<p class="badge fail">FAIL: the tables do not join cleanly</p>'
    )
    keys = "".join(
        f"<tr><td>{_e(name)}</td><td>{_e(_key_names(k))}"
        f'</td><td class="num">{_e(k.get("rows"))}</td><td class="num">{_e(k.get("nulls"))}</td>'
        f'<td class="num">{_e(k.get("duplicates"))}</td>'
        f"{_verdict(k.get('nulls') == 0 and k.get('duplicates') == 0)}</tr>"
        for name, k in (integrity.get("primary_keys") or {}).items()
    )
    rels = "".join(
        f'<tr><td>{_e(r.get("relationship"))}</td><td class="num">{_e(r.get("rows"))}</td>'
        f'<td class="num">{_e(r.get("orphans"))}</td><td class="num">{_e(r.get("nulls"))}</td>'
        f'<td class="num">{_e(r.get("allowed_nulls", 0))}</td>'
        f"<td>{'yes' if r.get('nullable') else 'no'}</td>{_score_cell(r.get('integrity'))}"
        f"{_verdict(r.get('passed', r.get('integrity') == 1.0))}</tr>"
        for r in integrity.get("relationships") or []
    )
    return (
        '<section id="integrity"><h2>Integrity</h2>'
        f"{badge}<p>Share of child rows that join a parent (or are a NULL the real data "
        f"also has): <b>{_e(_pct(integrity.get('score')))}</b>. A NULL foreign key is allowed "
        "only on relationships whose real rows have NULLs; a partly NULL composite key never."
        "</p><h3>Primary keys</h3><table><thead><tr><th>table</th><th>key</th><th>rows</th>"
        "<th>NULL</th><th>duplicates</th><th>verdict</th></tr></thead>"
        f"<tbody>{keys}</tbody></table><h3>Relationships</h3><table><thead><tr>"
        "<th>relationship</th><th>rows</th><th>orphans</th><th>NULL</th><th>allowed NULL</th>"
        "<th>nullable</th><th>integrity</th><th>verdict</th></tr></thead>"
        f"<tbody>{rels}</tbody></table></section>"
    )


def _key_names(key: Mapping[str, Any]) -> str:
    return ", ".join(map(str, key.get("columns") or [key.get("column")]))


_STATS = (("mean", "mean"), ("median", "median"), ("p90", "90th percentile"))


def _children(children: Mapping[str, Any]) -> str:
    cards = []
    for rel in children.get("relationships") or []:
        name = str(rel.get("relationship"))
        rows = [
            (str(b.get("label")), float(b.get("real") or 0), float(b.get("synthetic") or 0))
            for b in rel.get("buckets") or []
        ]
        distance = rel.get("distance")
        similarity = None if distance is None else 1 - float(distance)
        real, synth = rel.get("real") or {}, rel.get("synthetic") or {}
        stats = "".join(
            f'<tr><th>{_e(label)}</th><td class="num">{_e(real.get(key))}</td>'
            f'<td class="num">{_e(synth.get(key))}</td></tr>'
            for key, label in _STATS
        )
        stats += (
            f'<tr><th>parents without children</th><td class="num">'
            f'{_e(_pct(real.get("zero_share")))}</td><td class="num">'
            f"{_e(_pct(synth.get('zero_share')))}</td></tr>"
            f'<tr><th>parents</th><td class="num">{_e(real.get("parents"))}</td>'
            f'<td class="num">{_e(synth.get("parents"))}</td></tr>'
        )
        unlinked = rel.get("unlinked_children") or {}
        cards.append(
            f'<figure class="card"><figcaption><b>{_e(name)}</b> <span class="score '
            f'{_grade(similarity)}">distance {_e(_fmt(distance))}</span></figcaption>'
            f"{_bars_svg(rows, name)}<table><thead><tr><th></th><th>real</th><th>synthetic"
            f"</th></tr></thead><tbody>{stats}</tbody></table><small>child rows joining no "
            f"parent: real {_e(unlinked.get('real', 0))}, synthetic "
            f"{_e(unlinked.get('synthetic', 0))}</small></figure>"
        )
    body = "".join(cards) or "<p>The set has no relationship.</p>"
    return (
        '<section id="children"><h2>Children per parent</h2>'
        f'<p class="legend"><i style="background:{REAL_COLOR}"></i>real '
        f'<i style="background:{SYNTH_COLOR}"></i>synthetic. Share of parents with each '
        "number of children (zero included); counts above the real 99th percentile share "
        "the last bucket. The distance is the total variation distance between the two "
        "histograms: 0 = the same shape, 1 = nothing in common. Mean, median and p90 can "
        f'all agree while the shape does not.</p><div class="grid">{body}</div></section>'
    )


def _links(links: Mapping[str, Any] | None) -> str:
    if links is None:
        return ""
    rows = "".join(
        f"<tr><td>{_e(x.get('relationship'))}</td><td>{_e(x.get('column'))}</td>"
        f"<td>{_e(_MEASURES.get(x.get('measure'), x.get('measure') or 'not measured'))}</td>"
        f'<td class="num">{_e(_fmt(x.get("real")))}</td>'
        f'<td class="num">{_e(_fmt(x.get("synthetic")))}</td>'
        + (_score_cell(x.get("preserved")) if x.get("strong") else '<td class="na">weak</td>')
        + "</tr>"
        for x in links.get("links") or []
    )
    score = links.get("score")
    summary = (
        f"Links kept: <b>{_e(_fmt(score))}</b> (mean over links whose real strength is at "
        f"least {_e(links.get('min_strength'))})."
        if score is not None
        else _e(links.get("reason") or "No strong link to keep.")
    )
    table = (
        "<table><thead><tr><th>relationship</th><th>parent column</th><th>measure</th>"
        "<th>real</th><th>synthetic</th><th>preserved</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        if rows
        else "<p>No parent column was measured.</p>"
    )
    return (
        '<section id="links"><h2>Parent attributes and the number of children</h2><p>How '
        "strongly each parent column goes with its number of children (Spearman's rank "
        "correlation for numbers and dates, the correlation ratio for categories), real vs "
        "synthetic; preserved = 1 when the link is reproduced, 0 when it is gone (as if "
        f"the children were dealt out at random). {summary}</p>{table}</section>"
    )


_MEASURES = {"spearman": "Spearman ρ", "correlation_ratio": "correlation ratio η"}


def _orderings(orderings: Mapping[str, Any] | None) -> str:
    if orderings is None:
        return ""
    rules = orderings.get("rules") or []
    if not rules:
        return (
            '<section id="orderings"><h2>Rules across tables</h2><p>No ordering between a '
            "child column and its parent's column holds on every joined training row with "
            "enough support.</p></section>"
        )
    rows = "".join(
        f"<tr><td>{_e(r.get('id'))}</td><td>{_e(r.get('relationship'))}</td>"
        f'<td class="num">{_e(r.get("support"))}</td><td class="num">{_e(r.get("rows"))}</td>'
        f'<td class="num">{_e(r.get("violations"))}</td>{_score_cell(r.get("hold"))}</tr>'
        for r in rules
    )
    return (
        '<section id="orderings"><h2>Rules across tables</h2><p>Orderings that hold on every '
        "joined training row (a child's date on or after its parent's), and the share of "
        f"joined synthetic rows that keep them. Lowest: <b>{_e(_pct(orderings.get('held')))}"
        "</b>.</p><table><thead><tr><th>rule</th><th>relationship</th><th>real support</th>"
        "<th>synthetic rows</th><th>broken</th><th>held</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _fmt(value: Any) -> str:
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return "n/a"


__all__ = ["render_set_report"]
