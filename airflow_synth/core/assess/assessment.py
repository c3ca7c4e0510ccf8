"""Judge a synthetic table before it is published: reports, filters and gates together.

:class:`SyntheticAssessor` is set up once per run with the real training rows, the
holdout and the SDV metadata. During sampling its :meth:`~SyntheticAssessor.observe` sees
every *raw* batch, before any filter, and keeps a bounded uniform sample of its rows
(measured in one search at the end); :meth:`~SyntheticAssessor.screen` then judges risky
rows (counted per filter), which the sampler replaces by rows of their stratum
(:mod:`airflow_synth.core.engine.replacement`). Afterwards :meth:`~SyntheticAssessor.assess`
computes the fidelity report of the published table, the privacy report of the raw sample
(what the gates judge) and of the published rows (for reference), evaluates the gates and
writes
``quality.json``, ``privacy.json`` and ``report.html``. Raising on a failed gate is left to
the caller (after the reports are written and logged), so the log always shows why.

Why privacy is judged on the raw sample: the filters hide memorisation. A model that
copied 45% of its rows was published with exact-match 0.0 once its copies were filtered,
and the model itself (which replays those rows for anyone who samples it) was saved.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airflow_synth.core.assess.checks import (
    CheckSettings,
    GateVerdict,
    evaluate_gates,
    holdout_shortfall,
)
from airflow_synth.core.assess.dependence import dependence_preservation
from airflow_synth.core.assess.fidelity import column_kinds, fidelity_report, summary_lines
from airflow_synth.core.assess.privacy import (
    FilterResult,
    MeasurementSample,
    PrivacyEvaluator,
    PrivacySettings,
)
from airflow_synth.core.assess.report_html import render_report
from airflow_synth.core.engine.replacement import ReplacementLog, Strata
from airflow_synth.core.names import json_bytes

log = logging.getLogger(__name__)

QUALITY_FILE = "quality.json"
PRIVACY_FILE = "privacy.json"
REPORT_FILE = "report.html"
#: Privacy is measured on every sampled row up to this many (a uniform sample beyond).
PRIVACY_MAX_ROWS = 50_000
#: Rows :meth:`SyntheticAssessor.observe` chose are measured in searches of about this many.
_MEASURE_AT_ONCE = 250_000
#: Raw rows privacy is judged on at least (extra rows are sampled and not published).
PRIVACY_MIN_ROWS = 2_000
#: Shown when exact copies cannot be told from real repeats but no limit was set.
DEFAULT_COPY_LIMIT = 0.01
_MEASURED_KINDS = ("numerical", "categorical", "datetime", "boolean")
#: Removed rows per filter (per shard) whose columns are weighed (:meth:`PrivacyEvaluator.blame`)
#: to say which columns put them far from every real row.
BLAME_MAX_ROWS = 2_000
#: Columns named per filter in ``privacy.json``'s ``filtered`` and in the gate's message.
BLAME_TOP_COLUMNS = 5
#: Figures of the published rows repeated under ``privacy.json``'s ``published`` key.
_PUBLISHED_KEYS = (
    "rows",
    "exact_match_rate",
    "near_copy_rate",
    "dcr_share",
    "dcr_share_ci95",
    "nndr",
    "dcr",
)


@dataclass
class Assessment:
    """The outcome of :meth:`SyntheticAssessor.assess` (small parts go to XCom)."""

    quality: dict[str, Any]
    privacy: dict[str, Any] | None
    filters: dict[str, int]
    gates: list[GateVerdict]
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def scores(self) -> dict[str, Any]:
        """The headline numbers, for XCom, the manifest and the demo summary."""
        privacy = self.privacy or {}
        props = self.quality.get("properties") or {}
        return {
            "quality_score": self.quality.get("score"),
            "column_shapes": props.get("column_shapes"),
            "column_pair_trends": props.get("column_pair_trends"),
            "diagnostic": (self.quality.get("diagnostic") or {}).get("score"),
            "dependence_preservation": (self.quality.get("dependence") or {}).get("score"),
            "exact_match_rate": privacy.get("exact_match_rate"),
            "near_copy_rate": privacy.get("near_copy_rate"),
            "dcr_share": privacy.get("dcr_share"),
            "nndr_median": (privacy.get("nndr") or {}).get("median"),
            "pii_leak": (self.quality.get("pii_leak") or {}).get("values"),
        }

    def summary_lines(self) -> list[str]:
        """The task-log summary; gate lines say PASS, FAIL (and why) or WAIVED."""
        privacy = _privacy_for_summary(self.privacy)
        lines = summary_lines(
            self.quality, privacy, (privacy or {}).get("filtered") or self.filters
        )
        if privacy and privacy.get("published"):
            published = privacy["published"]
            lines.append(
                f"Privacy above is of the raw sample ({privacy['rows'].get('sampled', '?')} rows "
                f"sampled, gated); the published rows: exact-match "
                f"{_fmt(published.get('exact_match_rate'))}, near-copy "
                f"{_fmt(published.get('near_copy_rate'))}, DCR share "
                f"{_fmt(published.get('dcr_share'))}"
            )
        lines.extend(g.describe() for g in self.gates)
        failed = [g.metric for g in self.gates if not g.passed]
        lines.append("Gates: all passed" if not failed else f"Gates FAILED: {', '.join(failed)}")
        return lines


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


def _privacy_for_summary(privacy: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not privacy or privacy.get("measured") is False:
        return None
    return privacy


@dataclass
class SamplingState:
    """What an assessor learned while one shard was sampled, and nothing else.

    Counts, the filters' tallies, how removed rows were replaced and the raw privacy
    measurements (distances and ratios: numbers, never a value of a row). A shard task
    saves it beside its part file; the task that judges the table merges every shard's
    state into one assessor (:meth:`SyntheticAssessor.absorb`).
    """

    sampled_rows: int
    screened_rows: int
    dropped: dict[str, int]
    replacements: dict[str, Any]
    raw: dict[str, np.ndarray]
    #: per filter: rows weighed and each column's summed share of their distances
    blame: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        """Write the state to ``path`` (one ``.npz`` file, no pickles)."""
        meta = {
            "sampled_rows": self.sampled_rows,
            "screened_rows": self.screened_rows,
            "dropped": self.dropped,
            "replacements": self.replacements,
            "blame": self.blame,
        }
        with open(path, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), **self.raw)
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> SamplingState:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            raw = {name: data[name] for name in data.files if name != "meta"}
        return cls(
            int(meta["sampled_rows"]),
            int(meta["screened_rows"]),
            {str(k): int(v) for k, v in meta["dropped"].items()},
            dict(meta["replacements"]),
            raw,
            dict(meta.get("blame") or {}),
        )


class SyntheticAssessor:
    """Filters and reports for one run, fitted on its train/holdout split.

    ``holdout_reason`` says why ``holdout`` is empty when the caller knows better than
    the row count (multi-table: every row referenced by training rows).
    """

    def __init__(
        self,
        train: pd.DataFrame,
        holdout: pd.DataFrame,
        metadata: Any,
        table: str,
        checks: CheckSettings,
        *,
        seed: int = 0,
        holdout_reason: str | None = None,
    ) -> None:
        self.train, self.holdout, self.metadata, self.table = train, holdout, metadata, table
        self.checks, self.seed = checks, seed
        self.kinds = column_kinds(metadata, table)
        self.dropped: Counter[str] = Counter()
        #: per filter: removed rows weighed, and each column's summed share of their
        #: distances to the nearest training row (see :meth:`screen`)
        self.blame: dict[str, dict[str, Any]] = {}
        #: rows offered to :meth:`observe` (raw) and to :meth:`row_filter`
        self.sampled_rows = 0
        self.screened_rows = 0
        self.raw = MeasurementSample(PRIVACY_MAX_ROWS, seed)
        self._pending: list[tuple[pd.DataFrame, np.ndarray]] = []
        self._pending_rows = 0
        measured = {c: k for c, k in self.kinds.items() if k in _MEASURED_KINDS}
        #: the strata removed rows are replaced within, and how they were (see
        #: :mod:`airflow_synth.core.engine.replacement`)
        self.strata = Strata.fit(train, measured)
        self.replacements = ReplacementLog(columns=self.strata.names())
        self.measured_columns = [c for c in train.columns if c in measured]
        excluded = [c for c in train.columns if c not in measured]
        self.privacy: PrivacyEvaluator | None = None
        self.privacy_reason: str | None = None
        if len(holdout) and measured:
            self.privacy = PrivacyEvaluator(
                train,
                holdout,
                measured,
                exclude=excluded,
                settings=PrivacySettings(
                    similarity_filter=checks.similarity_filter,
                    outlier_filter=checks.outlier_filter,
                ),
                seed=seed,
            )
            self.privacy.drop_exact_copies = self.copies_are_evidence
        else:
            if not measured:
                self.privacy_reason = "no column is modelled, so there is nothing to compare"
            else:
                self.privacy_reason = holdout_reason or holdout_shortfall(
                    len(train) + len(holdout), checks.holdout_share
                )
            if checks.similarity_filter or checks.outlier_filter:
                log.warning("Privacy filters and DCR are switched off: %s", self.privacy_reason)

    # -- shards ----------------------------------------------------------------------------

    def fork(self, seed: int) -> SyntheticAssessor:
        """This assessor for one shard: the fitted parts (privacy evaluator, strata)
        shared, the sampling state its own and empty, its raw sample drawn from ``seed``.

        Shards sampled in one task or in many then judge the same rows the same way, and
        :meth:`absorb` merges what they saw.
        """
        twin = copy.copy(self)
        twin.dropped = Counter()
        twin.blame = {}
        twin.sampled_rows = twin.screened_rows = 0
        twin.raw = MeasurementSample(PRIVACY_MAX_ROWS, seed)
        twin._pending, twin._pending_rows = [], 0
        twin.replacements = ReplacementLog(columns=self.strata.names())
        return twin

    def sampling_state(self) -> SamplingState:
        """What this (shard's) assessor saw while sampling, to be merged elsewhere."""
        self.flush()
        log_ = self.replacements
        return SamplingState(
            sampled_rows=int(self.sampled_rows),
            screened_rows=int(self.screened_rows),
            dropped={str(k): int(v) for k, v in self.dropped.items()},
            replacements={
                "same": dict(log_.same),
                "coarser": dict(log_.coarser),
                "any_row": dict(log_.any_row),
                "unmatched": dict(log_.unmatched),
                "extra_rows": int(log_.extra_rows),
                "rounds": int(log_.rounds),
            },
            raw=self.raw.arrays(),
            blame=copy.deepcopy(self.blame),
        )

    def absorb(self, states: Sequence[SamplingState]) -> None:
        """Merge the shards' sampling states: counts and tallies add up, the raw privacy
        sample becomes a uniform sample of every shard's raw rows."""
        for state in states:
            self.sampled_rows += state.sampled_rows
            self.screened_rows += state.screened_rows
            self.dropped.update(state.dropped)
            log_, got = self.replacements, state.replacements
            for part in ("same", "coarser", "any_row", "unmatched"):
                mine = getattr(log_, part)
                for name, count in got.get(part, {}).items():
                    mine[name] = mine.get(name, 0) + int(count)
            log_.extra_rows += int(got.get("extra_rows", 0))
            log_.rounds += int(got.get("rounds", 0))
            for name, weighed in state.blame.items():
                self._add_blame(name, int(weighed["rows"]), weighed["columns"])
            if self.privacy is not None:
                self.raw.merge(state.raw)

    @property
    def filtering(self) -> bool:
        return self.privacy is not None and (
            self.checks.similarity_filter or self.checks.outlier_filter
        )

    @property
    def copies_are_evidence(self) -> bool:
        """Whether an exact copy of a training row counts as memorisation here.

        One rule for the single- and the multi-table path: only where real rows repeat
        each other no more often than the exact-match limit allows. In a coarse table (a
        few low-cardinality columns, an event log) most real rows equal another real row,
        so a faithful generator produces copies at that rate; dropping them all refused a
        faithful model ("filters removed 750-1000 of 1000 rows") and distorted the
        distribution. There the exact-match gate judges copies against the repeat rate,
        and the near-copy part of the similarity filter still runs.
        """
        if self.privacy is None:
            return True
        limit = self.checks.max_exact_match_rate
        limit = DEFAULT_COPY_LIMIT if limit is None else limit
        return self.privacy.real_repeat_rate <= limit

    @property
    def real_repeat_rate(self) -> float:
        """Share of training rows equal to another training row (0 when not measured)."""
        return self.privacy.real_repeat_rate if self.privacy is not None else 0.0

    def observe(self, batch: pd.DataFrame) -> None:
        """See one raw sampled batch, before any filter: its privacy is what the gates judge.

        Call it for every batch, filters on or off; at most :data:`PRIVACY_MAX_ROWS` rows'
        measurements are kept (a uniform sample of everything observed).
        """
        self.sampled_rows += len(batch)
        if self.privacy is None or not len(batch):
            return
        positions, keys = self.raw.select(len(batch))
        if positions.size:
            chosen = batch if positions.size == len(batch) else batch.iloc[positions]
            self._pending.append((chosen, keys))
            self._pending_rows += positions.size
            if self._pending_rows >= _MEASURE_AT_ONCE:
                self.flush()

    def flush(self) -> None:
        """Measure the rows :meth:`observe` chose, in one search (the exact search has a
        fixed cost per call: many small batches of replacements would pay it each time)."""
        if self.privacy is None or not self._pending:
            return
        frames = [frame for frame, _ in self._pending]
        keys = np.concatenate([k for _, k in self._pending])
        self._pending, self._pending_rows = [], 0
        rows = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        self.raw.add(self.privacy.measure(rows), keys)

    def expect(self, rows: int) -> None:
        """Announce about how many rows will be sampled, so the raw measurement samples
        them evenly and measures about :data:`PRIVACY_MAX_ROWS` rows, not a multiple."""
        self.raw.expect(rows)

    def top_up(self, sample: Callable[[int], pd.DataFrame], minimum: int = PRIVACY_MIN_ROWS) -> int:
        """Observe extra raw rows (never published) until ``minimum`` (by default
        :data:`PRIVACY_MIN_ROWS`; a shard: its share of it) were seen.

        A run that publishes 40 rows would otherwise judge privacy on 40 rows: a DCR share
        of a faithful model then lands anywhere in 0.35-0.65 and the gate is a coin toss.
        The model is cheap to sample, so the measurement gets enough rows; the extra rows
        are measured and dropped. Returns how many were drawn.
        """
        missing = minimum - self.sampled_rows
        if self.privacy is None or missing <= 0:
            return 0
        self.observe(sample(missing))
        return missing

    def screen(self, batch: pd.DataFrame) -> FilterResult:
        """The enabled filters' verdict on one sampled batch (counted per filter); the
        caller replaces the removed rows (see :mod:`airflow_synth.core.engine.replacement`) and
        records how in :attr:`replacements`."""
        assert self.privacy is not None
        self.screened_rows += len(batch)
        result = self.privacy.filter(batch)
        self.dropped.update(result.dropped)
        self._weigh_removed(batch, result)
        return result

    def _weigh_removed(self, batch: pd.DataFrame, result: FilterResult) -> None:
        """Weigh the columns of the rows the outlier filter removed (up to
        :data:`BLAME_MAX_ROWS` per shard): which columns put them far from every real row.
        Copies need no weighing: they agree with a training row on every measured column."""
        assert self.privacy is not None and result.reasons is not None
        weighed = int(self.blame.get("outlier", {}).get("rows", 0))
        removed = np.flatnonzero(result.reasons == "outlier")[: max(BLAME_MAX_ROWS - weighed, 0)]
        if removed.size:
            shares = self.privacy.blame(batch.iloc[removed])
            self._add_blame(
                "outlier", int(removed.size), {c: v * removed.size for c, v in shares.items()}
            )

    def _add_blame(self, name: str, rows: int, columns: Mapping[str, float]) -> None:
        entry = self.blame.setdefault(name, {"rows": 0, "columns": {}})
        entry["rows"] += rows
        for column, weight in columns.items():
            entry["columns"][column] = entry["columns"].get(column, 0.0) + float(weight)

    def removed_because(self, name: str) -> dict[str, Any]:
        """What made the ``name`` filter remove rows, by column name only: for
        ``similarity`` the columns the copies agree on with a training row
        (``compared_on``), for ``outlier`` the columns that put the rows far from every real
        row with their share of the distance (``far_on``, the largest first)."""
        if name == "similarity":
            return {"compared_on": list(self.measured_columns)}
        columns = (self.blame.get(name) or {}).get("columns") or {}
        total = sum(columns.values())
        if not total:
            return {}
        top = sorted(columns.items(), key=lambda item: (-item[1], item[0]))[:BLAME_TOP_COLUMNS]
        return {"far_on": [{"column": c, "share": round(w / total, 3)} for c, w in top]}

    def row_filter(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Drop the rows the enabled filters catch from one sampled batch (counted), for a
        caller that does not replace them (multi-table leaf tables): recorded as not
        replaced."""
        result = self.screen(batch)
        assert result.reasons is not None
        self.replacements.add(self.replacements.unmatched, result.reasons[~result.keep])
        return result.kept

    def assess(
        self,
        synthetic: pd.DataFrame,
        out_dir: Path,
        settings: dict[str, Any],
        title: str,
        *,
        fresh_leaks: Mapping[str, int] | None = None,
        roles: Sequence[Mapping[str, Any]] | None = None,
        rules: Any = None,
    ) -> Assessment:
        """Reports + gates; writes the three report files to ``out_dir``.

        ``synthetic`` is the published table. ``fresh_leaks`` counts, per column generated
        fresh, the published values equal to a real value of that column (the caller that
        issued them knows all real values); without it the assessor checks those columns
        itself against the real rows it holds, and a column it cannot check fails the
        ``pii_leak`` gate. ``roles`` (name, role, kind, reason per column) go into
        ``quality.json`` as ``columns_roles`` and into the report. ``rules`` (a
        :class:`~airflow_synth.core.profile.rules.RuleSet`) are measured on the training
        and the published rows (``quality.json``'s ``rules``; the ``rules_held`` gate).
        """
        started = time.monotonic()
        quality = fidelity_report(self.train, synthetic, self.metadata, self.table, seed=self.seed)
        quality["dependence"] = dependence_preservation(
            self.train, synthetic, self.kinds, seed=self.seed
        )
        if rules is not None:
            quality["rules"] = rules.report(self.train, synthetic)
        if synthetic.empty:
            quality["score"] = None
            quality["reason"] = "no synthetic row was left to publish (see filtered_share)"
        filters = {name: int(self.dropped.get(name, 0)) for name in ("similarity", "outlier")}
        privacy = self._privacy_report(synthetic, filters)
        pii_leak = self._pii_leak(synthetic, fresh_leaks, roles)
        quality["pii_leak"] = pii_leak
        quality["columns_roles"] = [dict(r) for r in roles] if roles is not None else None
        privacy["pii_leak"] = pii_leak
        gates = evaluate_gates(self.checks, quality, privacy, pii_leak=pii_leak)
        published_privacy = privacy if privacy.get("measured") is not False else None
        assessment = Assessment(quality, published_privacy, filters, gates)
        gate_dicts = [g.to_dict() for g in gates]
        out_dir = Path(out_dir)
        files = {QUALITY_FILE: out_dir / QUALITY_FILE, PRIVACY_FILE: out_dir / PRIVACY_FILE}
        files[QUALITY_FILE].write_bytes(json_bytes({**quality, "gates": gate_dicts}))
        files[PRIVACY_FILE].write_bytes(json_bytes({**privacy, "gates": gate_dicts}))
        html = render_report(
            quality=quality,
            privacy=published_privacy,
            settings={**settings, "checks": self.checks.to_dict()},
            real=self.train,
            synthetic=synthetic,
            kinds=self.kinds,
            title=title,
            gates=gate_dicts,
            filters=privacy.get("filtered") or filters,
            seed=self.seed,
            roles=[dict(r) for r in roles] if roles is not None else None,
        )
        files[REPORT_FILE] = out_dir / REPORT_FILE
        files[REPORT_FILE].write_text(html, encoding="utf-8")
        assessment.files = files
        assessment.seconds = time.monotonic() - started
        return assessment

    # -- parts of assess -------------------------------------------------------------------

    def filtered(self, filters: Mapping[str, int]) -> dict[str, Any]:
        """``privacy.json``'s ``filtered``: per filter, the rows it removed and how the
        removed rows of the output were replaced."""
        return {
            name: {
                "dropped": int(dropped),
                **self.replacements.to_dict(name),
                **(self.removed_because(name) if dropped else {}),
            }
            for name, dropped in filters.items()
        }

    def replacement(self) -> dict[str, Any]:
        """``privacy.json``'s ``replacement``: how removed rows are replaced."""
        log_ = self.replacements
        return {
            "method": "each removed row is replaced by an extra sample of its stratum "
            "(the tuple of the columns below); where none was drawn, of a coarser stratum "
            "(the columns with the most values left out first), then by any row",
            "strata_columns": list(log_.columns),
            "extra_rows_sampled": int(log_.extra_rows),
            "rounds": int(log_.rounds),
        }

    def _privacy_report(self, synthetic: pd.DataFrame, filters: dict[str, int]) -> dict[str, Any]:
        """Privacy of the raw sample (gated) with that of the published rows inside."""
        dropped = sum(filters.values())
        filtered_share = round(dropped / self.screened_rows, 6) if self.screened_rows else 0.0
        if self.privacy is None:
            return {
                "measured": False,
                "reason": self.privacy_reason,
                "filtered": self.filtered(filters),
                "filtered_share": filtered_share,
            }
        # the published rows that were measured raw: a uniform sample of them, no new search
        self.flush()
        published = self.privacy.report_measured_rows(synthetic, PRIVACY_MAX_ROWS)
        raw = self.raw.rows
        if raw is None:  # nobody showed us the raw sample: the published rows are all we have
            report = dict(published)
            report["measured_on"] = "published rows (no raw sample was observed)"
        else:
            report = self.privacy.report_measured(raw)
            report["measured_on"] = "raw sample, before the filters"
            report["rows"]["sampled"] = self.raw.seen
        report["published"] = {k: published.get(k) for k in _PUBLISHED_KEYS}
        report["filtered"] = self.filtered(filters)
        report["replacement"] = self.replacement()
        report["filtered_share"] = filtered_share
        return report

    def _pii_leak(
        self,
        synthetic: pd.DataFrame,
        fresh_leaks: Mapping[str, int] | None,
        roles: Sequence[Mapping[str, Any]] | None,
    ) -> dict[str, Any]:
        """``{"values": total or None, "columns": {column: count}, "reason": ...}``."""
        fresh = self._fresh_columns(synthetic, roles)
        counts: dict[str, int | None] = {}
        if fresh_leaks is not None:
            counts.update({str(c): int(v) for c, v in fresh_leaks.items()})
        for column in fresh:
            if column not in counts:
                counts[column] = self._count_real_values(synthetic, column)
        unchecked = [c for c, v in counts.items() if v is None]
        if unchecked:
            return {
                "values": None,
                "columns": counts,
                "fresh_columns": fresh,
                "reason": f"columns generated fresh but not checked against real values: "
                f"{', '.join(unchecked)}",
            }
        total = int(sum(v or 0 for v in counts.values()))
        return {"values": total, "columns": counts, "fresh_columns": fresh}

    def _fresh_columns(
        self, synthetic: pd.DataFrame, roles: Sequence[Mapping[str, Any]] | None
    ) -> list[str]:
        """Columns whose values are issued, not learned: from ``roles`` when given, else
        the ones SDV fills itself (id/PII sdtypes) apart from primary and foreign keys."""
        if roles is not None:
            # a per-parent sequence (line_number 1..n) is issued but is no identifier
            return [str(r["name"]) for r in roles if r.get("role") not in ("modelled", "sequence")]
        spec = self.metadata.to_dict()
        keys = set()
        table = spec.get("tables", {}).get(self.table, {})
        if table.get("primary_key"):
            keys.add(table["primary_key"])
        for rel in spec.get("relationships", []):
            if rel.get("child_table_name") == self.table:
                keys.add(rel.get("child_foreign_key"))
            if rel.get("parent_table_name") == self.table:
                keys.add(rel.get("parent_primary_key"))
        return [
            c
            for c, kind in self.kinds.items()
            if kind not in _MEASURED_KINDS and c not in keys and c in synthetic.columns
        ]

    def _count_real_values(self, synthetic: pd.DataFrame, column: str) -> int | None:
        """Published values of ``column`` equal to one of its real values (None: unknown)."""
        real = [f[column] for f in (self.train, self.holdout) if column in f.columns]
        if not real or column not in synthetic.columns:
            return None
        values = pd.concat(real, ignore_index=True).dropna()
        published = synthetic[column].dropna()
        if values.empty or published.empty:
            return 0
        return int(published.astype(str).isin(set(values.astype(str))).sum())
