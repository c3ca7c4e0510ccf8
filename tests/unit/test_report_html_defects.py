"""report.html defects a user found (issue 14), each pinned by a test that was red before.

* a category literally named "other" was listed twice (once as itself, once as the pool);
* a histogram's y axis went to 102.9% (the largest share plus 10%);
* the "real r / synth r" columns showed "–" for every pair SDV scores by contingency;
* the exact-match line said "the target is 0" while the gate compares with the real rows'
  repeat rate plus noise;
* a foreign key was listed as "generated fresh";
* escaping was tested for the title and one category only.

The frame is small (600 rows) and the synthetic side is a second draw of the same generator
(no model is fitted), so the whole file runs in a few seconds.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_synth.core.assess.dependence import dependence_preservation
from airflow_synth.core.assess.fidelity import column_kinds, fidelity_report
from airflow_synth.core.assess.report_html import (
    OTHER,
    category_shares,
    cramers_v_matrices,
    render_report,
    share_axis,
)
from airflow_synth.core.assess.set_report import render_set_report

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

N = 600
TABLE = "bookings"
#: every character that means something in HTML, an entity that must not be decoded
#: twice, and the closing tag of the plots the text sits in
EVIL = '<script>alert("x")</script>\'&amp;</svg>'


def bookings(seed: int, names: dict[str, str] | None = None, value: str = "") -> pd.DataFrame:
    """A demo-like table: a key, a foreign key, an e-mail, numbers (one 95% zeros, one
    constant), a destination with a real category called "other", a boolean."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, N)
    destination = rng.choice(
        ["NDF", "US", "other", "FR", "IT"], N, p=[0.55, 0.25, 0.1, 0.06, 0.04]
    ).astype(object)
    frame = pd.DataFrame(
        {
            "booking_id": np.arange(N) + 1000,
            "user_id": rng.integers(1, 200, N),
            "email": [f"u{i}@example.org" for i in range(N)],
            "age": age,
            "income": (age * 900 + rng.normal(0, 6000, N)).round(2),
            "secs": np.where(rng.random(N) < 0.95, 0.0, rng.exponential(50, N)).round(1),
            "const": 1.0,
            "destination": [f"{d}{value}" for d in destination],
            "booked": destination != "NDF",
        }
    )
    return frame.rename(columns=names or {})


SDTYPES = {
    "booking_id": {"sdtype": "id"},
    "user_id": {"sdtype": "id"},
    "email": {"sdtype": "email", "pii": True},
    "age": {"sdtype": "numerical"},
    "income": {"sdtype": "numerical"},
    "secs": {"sdtype": "numerical"},
    "const": {"sdtype": "numerical"},
    "destination": {"sdtype": "categorical"},
    "booked": {"sdtype": "boolean"},
}
ROLES = [
    {"name": "booking_id", "role": "key", "kind": "integer", "reason": "primary key"},
    {
        "name": "user_id",
        "role": "foreign_key",
        "kind": "integer",
        "reason": "foreign key to users.user_id",
        "references": "users.user_id",
    },
    {"name": "email", "role": "pii", "kind": "email", "reason": "detected by name"},
] + [
    {"name": c, "role": "modelled", "kind": "auto", "reason": "detected"}
    for c in ("age", "income", "secs", "const", "destination", "booked")
]
PRIVACY = {
    "exact_match_rate": 0.031,
    "exact_match_rate_real_repeats": 0.028,
    "exact_match_rate_holdout": 0.029,
    "rows": {"train": 480, "holdout": 120, "synthetic": 600},
    "dcr_share": 0.51,
    "nndr": {"median": 0.8},
}
EXACT_GATE = {
    "metric": "exact_match_rate",
    "value": 0.031,
    "threshold": 0.0397,
    "kind": "max",
    "passed": True,
    "reason": "real rows repeat at 0.0280; limit = that + noise at this size",
}


def build(
    names: dict[str, str] | None = None, value: str = ""
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], dict[str, str]]:
    real, synthetic = bookings(1, names, value), bookings(2, names, value)
    rename = names or {}
    metadata = {
        "tables": {
            TABLE: {
                "primary_key": rename.get("booking_id", "booking_id"),
                "columns": {rename.get(c, c): spec for c, spec in SDTYPES.items()},
            }
        }
    }
    kinds = column_kinds(metadata, TABLE)
    quality = fidelity_report(real, synthetic, metadata, TABLE)
    quality["dependence"] = dependence_preservation(real, synthetic, kinds)
    return real, synthetic, quality, kinds


@pytest.fixture(scope="module")
def plain() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], dict[str, str]]:
    return build()


@pytest.fixture(scope="module")
def page(plain: tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], dict[str, str]]) -> str:
    real, synthetic, quality, kinds = plain
    return render_report(
        quality=quality,
        privacy=PRIVACY,
        settings={"dataset": "bookings", "run": "r1", "synthesizer": "gaussian_copula"},
        real=real,
        synthetic=synthetic,
        kinds=kinds,
        title="bookings",
        gates=[EXACT_GATE],
        roles=ROLES,
    )


def text_of(html: str) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, spaces collapsed."""
    parser = _Collector()
    parser.feed(html)
    return " ".join(" ".join(parser.text).split())


def card(page: str, column: str) -> str:
    """One column's plot card (figure element) of the distributions section."""
    match = re.search(
        rf'<figure class="card"><figcaption><b>{re.escape(column)}</b>.*?</figure>', page, re.S
    )
    assert match, column
    return match.group(0)


# --------------------------------------------------------------------------------------------
# 1. "other" listed twice
# --------------------------------------------------------------------------------------------
def test_a_category_called_other_is_listed_once_and_never_merged_with_the_pool() -> None:
    # the Airbnb destinations: "other" is a real destination, not a pool
    real = pd.Series(["NDF"] * 50 + ["US"] * 30 + ["other"] * 10 + ["FR"] * 6 + ["XX"] * 2)
    synthetic = pd.Series(["NDF"] * 52 + ["US"] * 28 + ["other"] * 12 + ["FR"] * 8)
    rows = category_shares(real, synthetic)
    labels = [label for label, _, _ in rows]
    assert labels.count(OTHER) == 1, labels  # was listed twice: as itself and as the pool
    assert len(labels) == len(set(labels))
    shares = {label: (r, s) for label, r, s in rows}
    assert shares[OTHER] == pytest.approx((10 / 98, 12 / 100))
    assert sum(r for r, _ in shares.values()) == pytest.approx(1.0)

    # more categories than are named: the pool gets its own label, the real "other" keeps
    # its own share (they were one key, so the pool's rows were added to the category's)
    top = category_shares(real, synthetic, top=2)
    top_shares = {label: (r, s) for label, r, s in top}
    assert [label for label, _, _ in top] == ["NDF", "US", "other (pooled)", "other (rare)"]
    assert top_shares["other (pooled)"] == pytest.approx(((10 + 6) / 98, (12 + 8) / 100))
    top3 = dict((label, r) for label, r, _ in category_shares(real, synthetic, top=3))
    assert top3[OTHER] == pytest.approx(10 / 98) and top3["other (pooled)"] == pytest.approx(6 / 98)

    # Cramér's V keeps the real category "other" apart from the unnamed values
    frame = pd.DataFrame({"a": real, "b": real.map({"other": "o"}).fillna("rest")})
    r_v, _ = cramers_v_matrices(frame, frame, {"a": "categorical", "b": "categorical"})
    assert r_v.loc["a", "b"] == pytest.approx(1.0)


def test_the_plot_names_the_real_other_once(page: str) -> None:
    bars = card(page, "destination")
    assert len(re.findall(r">other</text>", bars)) == 1
    assert len(re.findall(r"<title>other: ", bars)) == 1


# --------------------------------------------------------------------------------------------
# 2. the y axis past 100%
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("largest", "top", "step"),
    [(0.935, 1.0, 0.25), (1.0, 1.0, 0.25), (0.063, 0.08, 0.02), (0.5, 0.6, 0.2), (0.2, 0.2, 0.05)],
)
def test_share_axis_is_nice_and_never_past_100_percent(
    largest: float, top: float, step: float
) -> None:
    assert share_axis(largest) == pytest.approx((top, step))


def test_histogram_ticks_stop_at_100_percent(page: str) -> None:
    # secs: 95% of the rows are 0, in one bin: the axis went to 104.5% (95% x 1.1)
    for column in ("secs", "const", "age", "income"):
        ticks = [
            float(t) for t in re.findall(r'text-anchor="end">([\d.]+)%</text>', card(page, column))
        ]
        assert ticks, column
        assert max(ticks) <= 100, (column, ticks)
        step = ticks[0]
        assert ticks == pytest.approx([step * (k + 1) for k in range(len(ticks))])
        assert step / 10 ** np.floor(np.log10(step)) in (1, 2, 2.5, 5), (column, ticks)
    assert re.findall(r'text-anchor="end">([\d.]+)%</text>', card(page, "secs"))[-1] == "100"
    # a constant column: one bin, named once by its value (its edges read "≤ 1" and "≤ 1")
    constant = card(page, "const")
    assert "≤" not in constant and "≥" not in constant
    assert '"middle">1</text>' in constant


# --------------------------------------------------------------------------------------------
# 3. "–" in the real r / synth r columns
# --------------------------------------------------------------------------------------------
def test_weakest_pairs_show_their_association_and_why_one_is_undefined(page: str) -> None:
    table = page[page.index("<h3>Weakest column pairs</h3>") :]
    table = table[: table.index("</table>")]
    rows = re.findall(
        r"<tr><td>(.*?) × (.*?)</td><td>(\w+)</td>.*?</td>(<td.*?</td>)(<td.*?</td>)</tr>", table
    )
    assert len(rows) == 10
    contingency = 0
    for first, second, metric, *cells in rows:
        undefined = "const" in (first, second)
        for cell in cells:
            value = re.search(r">([^<]*)</td>$", cell).group(1)
            if undefined:  # a constant column: no association, and the cell says why
                assert value == "–"
                assert 'title="undefined: const holds a single value in the' in cell
            else:
                symbol = "r" if metric == "CorrelationSimilarity" else "V"
                assert re.fullmatch(rf"{symbol} -?\d\.\d\d", value), (first, second, cell)
        contingency += metric == "ContingencySimilarity"
    assert contingency >= 5  # the pairs SDV gives no correlation for
    assert "Cramér's V of the contingency table" in text_of(page)


# --------------------------------------------------------------------------------------------
# 4. the exact-match line
# --------------------------------------------------------------------------------------------
def test_exact_match_line_says_what_the_gate_compares(
    page: str, plain: tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], dict[str, str]]
) -> None:
    text = text_of(page)
    assert "target is 0" not in text
    line = text[text.index("exact-match rate") :][:900]
    assert "3.10%" in line  # the measured rate
    assert "Baseline: 2.80% of the real training rows equal another training row" in line
    assert "The gate compares 3.10% with the limit 3.97%" in line
    assert "real rows repeat at 0.0280; limit = that + noise at this size" in line
    assert line.split("limit = that + noise at this size")[1].startswith("): met.")
    assert "2.90% equal a held-out real row" in line

    # no repeats in the real rows: the limit is the setting, and the text says so
    real, synthetic, quality, kinds = plain
    unique = render_report(
        quality=quality,
        privacy={**PRIVACY, "exact_match_rate": 0.02, "exact_match_rate_real_repeats": 0.0},
        settings={},
        real=real,
        synthetic=synthetic,
        kinds=kinds,
        title="t",
        gates=[{**EXACT_GATE, "value": 0.02, "threshold": 0.01, "passed": False, "reason": None}],
    )
    line = text_of(unique)[text_of(unique).index("exact-match rate") :][:900]
    assert "any copy here is a sign of memorising" in line
    assert (
        "The gate compares 2.00% with the limit 1.00% (the setting max_exact_match_rate): missed."
        in line
    )


# --------------------------------------------------------------------------------------------
# 5. roles as they are
# --------------------------------------------------------------------------------------------
def test_columns_are_listed_with_their_real_roles(page: str) -> None:
    text = text_of(page)
    expected = (
        "booking_id (key, fresh values), user_id (foreign key, its synthetic parent's key), "
        "email (PII, generated fresh)"
    )
    assert f"Not compared: {expected}." in text
    assert f"Not scored: {expected}." in text
    assert "foreign key to users.user_id: its synthetic parent's key" in text
    assert not re.search(r"generated fresh[^.]*user_id", text)


def test_a_sequence_and_a_key_of_a_numeric_kind_are_named_and_never_plotted(
    plain: tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], dict[str, str]],
) -> None:
    real, synthetic, quality, kinds = plain
    roles = [
        *ROLES[:3],
        {"name": "age", "role": "sequence", "kind": "sequence", "reason": "numbered 1..n"},
        {"name": "income", "role": "key", "kind": "integer", "reason": "declared"},
    ]
    html = render_report(
        quality=quality,
        privacy=None,
        settings={},
        real=real,
        synthetic=synthetic,
        kinds=kinds,
        title="t",
        roles=roles,
    )
    text = text_of(html)
    assert "sequence: numbered 1..n within its parent" in text
    assert "income (key, fresh values)" in text  # a key's values are never plotted
    assert "<figcaption><b>income</b>" not in html and "<figcaption><b>age</b>" in html


def test_without_roles_the_page_does_not_call_a_key_generated_fresh(
    plain: tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], dict[str, str]],
) -> None:
    real, synthetic, quality, kinds = plain
    html = render_report(
        quality=quality,
        privacy=None,
        settings={},
        real=real,
        synthetic=synthetic,
        kinds=kinds,
        title="t",
    )
    text = text_of(html)
    assert "Not compared: booking_id, user_id, email (id / PII columns: a key gets fresh" in text
    assert "a foreign key its synthetic parent's key" in text


# --------------------------------------------------------------------------------------------
# model reuse in the header
# --------------------------------------------------------------------------------------------
def test_header_says_whether_the_model_was_reused(
    plain: tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], dict[str, str]],
) -> None:
    real, synthetic, quality, kinds = plain

    def header(**kwargs: Any) -> str:
        html = render_report(
            quality=quality,
            privacy=None,
            real=real,
            synthetic=synthetic,
            kinds=kinds,
            title="t",
            **kwargs,
        )
        return text_of(html[: html.index("</header>")])

    reused = {
        "decision": "reused",
        "reason": "reused model of run scheduled__2026-12-04 (age 22.0 h, drift 0.031 <= 0.1)",
        "model_run": "scheduled__2026-12-04",
        "model_age_hours": 22.0,
        "drift": 0.031,
        "max_drift": 0.1,
        "max_model_age_hours": 168.0,
    }
    assert (
        "Model: reused from run scheduled__2026-12-04 (age 22.0 h, drift 0.031 <= 0.1)"
        in header(settings={}, model_reuse=reused)
    )
    retrained = {
        **reused,
        "decision": "retrained",
        "reason": "retrained: drift 0.240 > 0.1 on column age",
        "model_run": None,
    }
    # from the settings (the manifest's synthesis summary) when not passed on its own
    assert "Model: retrained: drift 0.240 > 0.1 on column age" in header(
        settings={"model_reuse": retrained}
    )
    assert "Model:" not in header(settings={})


# --------------------------------------------------------------------------------------------
# 6. escaping, everywhere
# --------------------------------------------------------------------------------------------
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "header", "h1", "h2", "h3", "h4",
    "dl", "dt", "dd", "div", "p", "b", "i", "small", "span", "code", "section", "table",
    "thead", "tbody", "tr", "th", "td", "details", "summary", "figure", "figcaption", "footer",
    "svg", "g", "rect", "line", "path", "text", "a",
}  # fmt: skip


class _Collector(HTMLParser):
    """Tags, attributes and text (entities decoded) of a page, as a browser would parse it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.in_element: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        if tag != "meta":  # the only void element the pages write without "/>"
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.stack:
            self.in_element.setdefault(self.stack[-1], []).append(data)


def assert_escaped(html: str, evil: str = EVIL) -> _Collector:
    """No raw markup from user text: the page parses into the tags the report makes, and
    each user text comes back whole from the text and attributes of those tags."""
    assert evil not in html
    assert "<script" not in html.lower()
    parser = _Collector()
    parser.feed(html)
    parser.close()
    assert set(parser.tags) <= ALLOWED_TAGS, set(parser.tags) - ALLOWED_TAGS
    assert "script" not in parser.tags
    assert not [a for _, a, _ in parser.attrs if a.startswith("on")]
    assert html.count("<svg") == html.count("</svg>") == parser.tags.count("svg")
    return parser


def test_every_user_text_is_escaped_in_the_table_report() -> None:
    names = {c: f"{c}{EVIL}" for c in SDTYPES}
    real, synthetic, quality, kinds = build(names, value=EVIL)
    roles = [{**r, "name": names[r["name"]], "reason": f"{r['reason']}{EVIL}"} for r in ROLES]
    roles[1]["references"] = f"users{EVIL}.id"
    quality["rules"] = {
        "held": 1.0,
        "rules": [
            {"id": f"r{EVIL}", "description": f"d{EVIL}", "type": f"t{EVIL}", "source": EVIL}
        ],
    }
    quality["pii_leak"] = {"values": 0, "columns": {names["email"]: 0}}
    privacy = {**PRIVACY, f"figure{EVIL}": 1, "filtered": {f"f{EVIL}": {"dropped": 2}}}
    gates = [
        {**EXACT_GATE, "reason": f"because{EVIL}"},
        {
            "metric": f"m{EVIL}",
            "value": 1.0,
            "threshold": 0.5,
            "kind": "min",
            "passed": True,
            "reason": EVIL,
        },
    ]  # noqa: E501
    html = render_report(
        quality=quality,
        privacy=privacy,
        settings={
            "dataset": f"data{EVIL}",
            "run": f"run{EVIL}",
            "synthesizer": {"name": f"syn{EVIL}", "params": {f"p{EVIL}": EVIL}},
            f"setting{EVIL}": EVIL,
        },
        real=real,
        synthetic=synthetic,
        kinds=kinds,
        title=f"title{EVIL}",
        gates=gates,
        roles=roles,
        model_reuse={"decision": "reused", "reason": f"why{EVIL}", "model_run": f"run{EVIL}"},
    )
    parser = assert_escaped(html)
    text = " ".join(parser.text)
    for expected in (
        f"title{EVIL}", f"data{EVIL}", f"run{EVIL}", f"syn{EVIL}", f"p{EVIL}",
        f"setting{EVIL}", f"m{EVIL}", f"because{EVIL}", f"d{EVIL}", f"r{EVIL}",
        f"figure{EVIL}", f"f{EVIL} filter", f"why{EVIL}", f"users{EVIL}.id",
    ):  # fmt: skip
        assert expected in text, expected
    captions = parser.in_element.get("b", [])
    labels = [v for tag, k, v in parser.attrs if tag == "svg" and k == "aria-label"]
    titles = parser.in_element.get("title", [])
    cell_titles = [v for tag, k, v in parser.attrs if tag == "td" and k == "title"]
    for column in ("age", "income", "secs", "const", "destination", "booked"):
        name = names[column]
        assert name in captions, column  # the plot's caption
        assert f"{name}: real vs synthetic" in labels, column  # the plot's label
        if kinds[name] != "categorical":  # the Pearson matrix's cells (one categorical: no V)
            assert any(t.startswith(name) for t in cell_titles), column
    for fresh in ("booking_id", "user_id", "email"):
        assert names[fresh] in text  # roles table, "not compared" lists
    for category in ("NDF", "US", "other", "FR", "IT"):  # bar labels and their hover text
        assert any(t.startswith(f"{category}{EVIL}: real ") for t in titles), category
    # the bar label shows the start of the long category, escaped and whole
    assert any(t.startswith("NDF<script>") for t in parser.in_element.get("text", []))
    # the pair tables (weakest pairs, strong relationships) name both columns
    assert f"{names['age']} × {names['income']}" in text


def test_every_user_text_is_escaped_in_the_set_report() -> None:
    rel = f"orders{EVIL}.user_id → users{EVIL}.id"
    html = render_set_report(
        title=f"set{EVIL}",
        integrity={
            "passed": True,
            "score": 1.0,
            "primary_keys": {
                f"users{EVIL}": {"column": f"id{EVIL}", "rows": 3, "nulls": 0, "duplicates": 0}
            },
            "relationships": [
                {"relationship": rel, "rows": 5, "orphans": 0, "nulls": 0, "integrity": 1.0}
            ],
        },
        children={
            "relationships": [
                {
                    "relationship": rel,
                    "buckets": [{"label": f"b{EVIL}", "real": 0.5, "synthetic": 0.5}],
                    "distance": 0.1,
                    "real": {"mean": 1, "median": 1, "p90": 2, "zero_share": 0.1, "parents": 3},
                    "synthetic": {
                        "mean": 1,
                        "median": 1,
                        "p90": 2,
                        "zero_share": 0.1,
                        "parents": 3,
                    },
                }
            ]
        },
        links={
            "score": 0.9,
            "min_strength": 0.1,
            "links": [
                {
                    "relationship": rel,
                    "column": f"c{EVIL}",
                    "measure": f"m{EVIL}",
                    "real": 0.5,
                    "synthetic": 0.4,
                    "strong": True,
                    "preserved": 0.8,
                }
            ],  # noqa: E501
        },
        orderings={
            "held": 1.0,
            "rules": [
                {
                    "id": f"o{EVIL}",
                    "relationship": rel,
                    "support": 3,
                    "rows": 3,
                    "violations": 0,
                    "hold": 1.0,
                }
            ],
        },  # noqa: E501
        settings={"dataset": f"data{EVIL}", "run": f"run{EVIL}", f"k{EVIL}": EVIL},
        table_reports={f"users{EVIL}": f"reports/users{EVIL}/report.html"},
    )
    parser = assert_escaped(html)
    text = " ".join(parser.text)
    for expected in (
        f"set{EVIL}",
        rel,
        f"users{EVIL}",
        f"id{EVIL}",
        f"b{EVIL}",
        f"c{EVIL}",
        f"m{EVIL}",
        f"o{EVIL}",
        f"data{EVIL}",
        f"k{EVIL}",
    ):  # noqa: E501
        assert expected in text, expected
    assert f"{rel}: real vs synthetic" in [
        v for t, k, v in parser.attrs if t == "svg" and k == "aria-label"
    ]
    hrefs = [v for t, k, v in parser.attrs if t == "a" and k == "href"]
    assert hrefs and all("<" not in h and '"' not in h and "'" not in h for h in hrefs)
