"""The summary table at the top of a run's Evidently report: the verdicts of the kinds Evidently does not compute
(concept, feature), the label-free estimate and the emerging tags. Pure: it formats results into strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.drift.types import KindResult


@dataclass(frozen=True)
class SummaryTable:
    """The fields of the report's ``RunSummary`` metric (``monitor.drift.evidently``)."""

    title: str
    header: list[str]
    rows: list[list[str]]
    detected: int  # how many of the table's kinds detected drift


def summary_table(
    model_version: str | None,
    sizes: dict[str, int],
    concept: KindResult,
    feature: KindResult,
    label_free: dict[str, Any],
    emerging: list[tuple[str, int, int]],
) -> SummaryTable:
    """The table of the kinds Evidently does not compute, for the top of the report."""

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    rows = [
        [
            r.kind,
            fmt(r.score),
            fmt(r.threshold),
            "DRIFT" if r.detected else "ok",
            "yes" if r.enough_data else "no",
            str(r.sample_size),
            "; ".join(r.reasons) or "-",
        ]
        for r in (concept, feature)
    ]
    current = label_free.get("current") or {}
    rows.append(
        [
            "label-free expected micro-F1",
            fmt(current.get("micro_f1")),
            fmt(label_free["expected_reference_micro_f1"]),
            "DROP" if label_free["detected"] else "ok",
            "-",
            str(sizes["current"]),
            f"drop {fmt(label_free['drop'])} (max {fmt(label_free['threshold'])})",
        ]
    )
    if emerging:
        rows.append(
            [
                "emerging tags",
                "-",
                "-",
                "-",
                "-",
                str(sizes["feedback"]),
                ", ".join(f"{t} ({c})" for t, c, _ in emerging[:15]),
            ]
        )
    title = (
        f"tagwatch drift run: model {model_version or '?'}, {sizes['current']} current / "
        f"{sizes['reference']} reference questions, {sizes['feedback']} with feedback"
    )
    return SummaryTable(
        title=title,
        header=["kind", "score", "threshold", "verdict", "enough data", "sample", "reasons"],
        rows=rows,
        detected=int(concept.detected) + int(feature.detected),
    )
