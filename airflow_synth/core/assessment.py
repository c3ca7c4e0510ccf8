"""Judge a synthetic table before it is published: reports, filters and gates together.

:class:`SyntheticAssessor` is set up once per run with the real training rows, the
holdout and the SDV metadata. During sampling its :meth:`~SyntheticAssessor.row_filter`
removes risky rows (counted per filter); afterwards :meth:`~SyntheticAssessor.assess`
computes the fidelity and privacy reports of the final table, evaluates the gates and
writes ``quality.json``, ``privacy.json`` and ``report.html``. Raising on a failed gate is
left to the caller (after the reports are written and logged), so the log always shows why.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from airflow_synth.core.checks import CheckSettings, GateVerdict, evaluate_gates
from airflow_synth.core.dependence import dependence_preservation
from airflow_synth.core.fidelity import column_kinds, fidelity_report, summary_lines
from airflow_synth.core.privacy import PrivacyEvaluator, PrivacySettings
from airflow_synth.core.publish import json_bytes
from airflow_synth.core.report_html import render_report

log = logging.getLogger(__name__)

QUALITY_FILE = "quality.json"
PRIVACY_FILE = "privacy.json"
REPORT_FILE = "report.html"
#: Privacy is measured on every synthetic row up to this many (a uniform sample beyond).
PRIVACY_MAX_ROWS = 200_000
_MEASURED_KINDS = ("numerical", "categorical", "datetime", "boolean")


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
            "dcr_share": privacy.get("dcr_share"),
            "nndr_median": (privacy.get("nndr") or {}).get("median"),
        }

    def summary_lines(self) -> list[str]:
        return summary_lines(
            self.quality, self.privacy, self.filters, [g.to_dict() for g in self.gates]
        )


def pii_leak_report(
    fresh_leaks: Mapping[str, int] | None, roles: Sequence[Mapping[str, Any]] | None
) -> dict[str, Any]:
    """``{"values": total, "columns": {...}}``; ``values`` is None when not counted although
    the table has columns generated fresh (which fails the gate: fail closed)."""
    fresh = [r["name"] for r in roles or () if r.get("role") != "modelled"]
    if fresh_leaks is None:
        return {"values": None if fresh else 0, "columns": {}, "fresh_columns": fresh}
    columns = {str(k): int(v) for k, v in fresh_leaks.items()}
    return {"values": sum(columns.values()), "columns": columns, "fresh_columns": fresh}


def pii_leak_verdict(leak: Mapping[str, Any]) -> GateVerdict:
    """The ``pii_leak`` gate: no published key/PII value may equal a real one. Never waived."""
    value = leak.get("values")
    number = None if value is None else float(value)
    return GateVerdict("pii_leak", number, 0.0, "max", number is not None and number <= 0)


class SyntheticAssessor:
    """Filters and reports for one run, fitted on its train/holdout split."""

    def __init__(
        self,
        train: pd.DataFrame,
        holdout: pd.DataFrame,
        metadata: Any,
        table: str,
        checks: CheckSettings,
        *,
        seed: int = 0,
    ) -> None:
        self.train, self.metadata, self.table = train, metadata, table
        self.checks, self.seed = checks, seed
        self.kinds = column_kinds(metadata, table)
        self.dropped: Counter[str] = Counter()
        measured = {c: k for c, k in self.kinds.items() if k in _MEASURED_KINDS}
        excluded = [c for c in train.columns if c not in measured]
        self.privacy: PrivacyEvaluator | None = None
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
        elif checks.similarity_filter or checks.outlier_filter:
            log.warning("No holdout rows: privacy filters and DCR are switched off")

    @property
    def filtering(self) -> bool:
        return self.privacy is not None and (
            self.checks.similarity_filter or self.checks.outlier_filter
        )

    def row_filter(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Drop the rows the enabled filters catch from one sampled batch (counted)."""
        assert self.privacy is not None
        result = self.privacy.filter(batch)
        self.dropped.update(result.dropped)
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
    ) -> Assessment:
        """Reports + gates for the final table; writes the three report files to ``out_dir``.

        ``fresh_leaks`` counts, per column generated fresh (keys, PII), the published values
        equal to a real value of it: the ``pii_leak`` gate (must be 0, cannot be waived).
        ``roles`` (each column's role, kind and reason) go into quality.json and the report.
        """
        started = time.monotonic()
        quality = fidelity_report(self.train, synthetic, self.metadata, self.table, seed=self.seed)
        quality["dependence"] = dependence_preservation(
            self.train, synthetic, self.kinds, seed=self.seed
        )
        privacy = None
        if self.privacy is not None:
            measured = synthetic
            if len(synthetic) > PRIVACY_MAX_ROWS:
                measured = synthetic.sample(n=PRIVACY_MAX_ROWS, random_state=self.seed)
            privacy = self.privacy.report(measured)
        filters = {name: int(self.dropped.get(name, 0)) for name in ("similarity", "outlier")}
        if privacy is not None:
            privacy["filtered"] = filters
        leak = pii_leak_report(fresh_leaks, roles)
        quality["pii_leak"] = leak
        if roles is not None:
            quality["columns_roles"] = [dict(r) for r in roles]
        if privacy is not None:
            privacy["pii_leak"] = leak
        gates = [*evaluate_gates(self.checks, quality, privacy), pii_leak_verdict(leak)]
        assessment = Assessment(quality, privacy, filters, gates)
        gate_dicts = [g.to_dict() for g in gates]
        out_dir = Path(out_dir)
        files = {QUALITY_FILE: out_dir / QUALITY_FILE, PRIVACY_FILE: out_dir / PRIVACY_FILE}
        files[QUALITY_FILE].write_bytes(json_bytes({**quality, "gates": gate_dicts}))
        files[PRIVACY_FILE].write_bytes(
            json_bytes({**(privacy or {"measured": False, "pii_leak": leak}), "gates": gate_dicts})
        )
        html = render_report(
            quality=quality,
            privacy=privacy,
            settings={**settings, "checks": self.checks.to_dict()},
            real=self.train,
            synthetic=synthetic,
            kinds=self.kinds,
            title=title,
            gates=gate_dicts,
            filters=filters,
            seed=self.seed,
            roles=roles,
        )
        files[REPORT_FILE] = out_dir / REPORT_FILE
        files[REPORT_FILE].write_text(html, encoding="utf-8")
        assessment.files = files
        assessment.seconds = time.monotonic() - started
        return assessment
