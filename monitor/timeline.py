"""The reports index's picture: each drift kind's score against its threshold over time, as an inline SVG.

A pure function of the runs the index lists and the champion's moves (no plotting library in the monitor's loop: a
string of SVG elements, written in a few milliseconds for the index's 500 runs). One small chart per kind, sharing the
time axis: the score (a line through the runs, broken where a run has no score), its threshold (dashed, per run, so a
changed setting shows), each run as a dot (red: drift detected, hollow grey: too little data). Vertical marks: a
retrain a run filed (orange, dashed) and a champion move (green, labelled with the new version).

Everything written as text comes from stored runs and moves (versions, verdicts, triggers): it is escaped, and only
numbers become coordinates.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from monitor.drift.types import KINDS

if TYPE_CHECKING:
    from monitor.report import RunEntry
    from tagwatch.history import AliasMoveRecord

WIDTH = 1000
PANEL_HEIGHT = 130
PANEL_GAP = 34
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 40, 34

SCORE_COLOUR = "#1f77b4"
THRESHOLD_COLOUR = "#555555"
DETECTED_COLOUR = "#d62728"
LITTLE_COLOUR = "#999999"
RETRAIN_COLOUR = "#ff7f0e"
PROMOTION_COLOUR = "#2ca02c"


@dataclass(frozen=True)
class _Point:
    at: datetime
    score: float | None
    threshold: float | None
    detected: bool
    enough_data: bool


def timeline_svg(
    runs: Sequence[RunEntry], moves: Sequence[AliasMoveRecord] = (), *, kinds: Sequence[str] = KINDS
) -> str:
    """An ``<svg>`` element: per kind, the runs' scores and thresholds over time, retrains and champion moves marked.

    Runs need not be sorted; a score or threshold that is missing, not a number, NaN or infinite leaves a gap. Moves
    other than the champion's, and moves outside the runs' time span, are left out. No runs: a one-line picture
    saying so.
    """
    ordered = sorted(runs, key=lambda r: r.started_at)
    height = TOP + len(kinds) * (PANEL_HEIGHT + PANEL_GAP) - PANEL_GAP + BOTTOM
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" font-family="system-ui, sans-serif" font-size="12">'
        "<title>Drift scores against their thresholds over time</title>"
    )
    if not ordered:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" viewBox="0 0 {WIDTH} 40" '
            f'width="{WIDTH}" height="40" font-family="system-ui, sans-serif" font-size="12">'
            '<text x="8" y="24">No drift run measured a window yet: nothing to draw.</text></svg>'
        )
    first, last = ordered[0].started_at, ordered[-1].started_at
    span = (last - first).total_seconds()
    plot_width = WIDTH - LEFT - RIGHT

    def x_of(at: datetime) -> float:
        if span <= 0:
            return LEFT + plot_width / 2
        return LEFT + (at - first).total_seconds() / span * plot_width

    # smaller dots when many runs share the width (the index lists up to 500)
    radius = 3.0 if len(ordered) <= 150 else (2.0 if len(ordered) <= 400 else 1.5)
    parts = [head, _legend()]
    bottom_of_last = TOP + len(kinds) * (PANEL_HEIGHT + PANEL_GAP) - PANEL_GAP
    for index, kind in enumerate(kinds):
        top = TOP + index * (PANEL_HEIGHT + PANEL_GAP)
        points = [_point(run, kind) for run in ordered]
        parts.append(_panel(kind, points, top, x_of, radius))
    # Marks over all panels.
    for run in ordered:
        if run.retrain:
            x = x_of(run.started_at)
            parts.append(
                f'<line class="retrain" x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{bottom_of_last}" '
                f'stroke="{RETRAIN_COLOUR}" stroke-width="2" stroke-dasharray="6 3">'
                f"<title>{_e(_when(run.started_at))}: retrain {_e(run.retrain)}</title></line>"
            )
    for move in sorted((m for m in moves if m.alias == "champion"), key=lambda m: m.moved_at):
        if not first <= move.moved_at <= last:
            continue
        x = x_of(move.moved_at)
        label = f"champion {move.from_version or '-'} → {move.to_version or '-'}"
        parts.append(
            f'<g class="promotion"><line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{bottom_of_last}" '
            f'stroke="{PROMOTION_COLOUR}" stroke-width="2"/>'
            f'<text x="{x + 3:.1f}" y="{TOP + 6}" fill="{PROMOTION_COLOUR}">v{_e(move.to_version or "-")}</text>'
            f"<title>{_e(_when(move.moved_at))}: {_e(label)} ({_e(move.trigger)})</title></g>"
        )
    parts.append(_time_axis(first, last, bottom_of_last, x_of))
    parts.append("</svg>")
    return "".join(parts)


def _point(run: RunEntry, kind: str) -> _Point:
    verdict = run.result.get("kinds", {}).get(kind) or {}
    return _Point(
        at=run.started_at,
        score=_number(verdict.get("score")),
        threshold=_number(verdict.get("threshold")),
        detected=bool(verdict.get("detected")),
        enough_data=bool(verdict.get("enough_data", True)),
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _panel(kind: str, points: list[_Point], top: int, x_of: Any, radius: float) -> str:
    values = [v for p in points for v in (p.score, p.threshold) if v is not None]
    low = min([0.0, *values])
    high = max(values, default=1.0)
    if high - low < 1e-9:  # all zero: any scale
        high = low + 1.0
    high += (high - low) * 0.08

    def y_of(value: float) -> float:
        return top + PANEL_HEIGHT - (value - low) / (high - low) * PANEL_HEIGHT

    right = WIDTH - RIGHT
    parts = [
        f'<g class="kind" data-kind="{_e(kind)}">',
        f'<rect x="{LEFT}" y="{top}" width="{right - LEFT}" height="{PANEL_HEIGHT}" fill="#fafafa" stroke="#ccc"/>',
        f'<text x="{LEFT}" y="{top - 5}" font-weight="bold">{_e(kind)} drift: score and threshold</text>',
    ]
    for value in (low, (low + high) / 2, high):
        y = y_of(value)
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#444">{_e(f"{value:.2f}")}</text>'
            f'<line x1="{LEFT - 3}" y1="{y:.1f}" x2="{LEFT}" y2="{y:.1f}" stroke="#444"/>'
        )
    for segment in _segments([(p.at, p.threshold) for p in points]):
        coords = _coords(segment, x_of, y_of, step=True)
        parts.append(
            f'<polyline class="threshold" points="{coords}" fill="none" stroke="{THRESHOLD_COLOUR}" '
            'stroke-width="1.5" stroke-dasharray="5 4"/>'
        )
    for segment in _segments([(p.at, p.score) for p in points]):
        coords = _coords(segment, x_of, y_of, step=False)
        parts.append(
            f'<polyline class="score" points="{coords}" fill="none" stroke="{SCORE_COLOUR}" stroke-width="2"/>'
        )
    for p in points:
        if p.score is None:
            continue
        if p.detected:
            style, verdict = f'fill="{DETECTED_COLOUR}" stroke="{DETECTED_COLOUR}"', "DRIFT"
        elif not p.enough_data:
            style, verdict = f'fill="white" stroke="{LITTLE_COLOUR}"', "little data"
        else:
            style, verdict = f'fill="{SCORE_COLOUR}" stroke="{SCORE_COLOUR}"', "ok"
        threshold = f"{p.threshold:.3f}" if p.threshold is not None else "-"
        title = f"{_when(p.at)}: {kind} {p.score:.3f} / {threshold} ({verdict})"
        parts.append(
            f'<circle class="run" cx="{x_of(p.at):.1f}" cy="{y_of(p.score):.1f}" r="{radius:g}" {style}>'
            f"<title>{_e(title)}</title></circle>"
        )
    parts.append("</g>")
    return "".join(parts)


def _segments(values: list[tuple[datetime, float | None]]) -> list[list[tuple[datetime, float]]]:
    """Runs of consecutive present values (a missing one breaks the line)."""
    segments: list[list[tuple[datetime, float]]] = [[]]
    for at, value in values:
        if value is None:
            if segments[-1]:
                segments.append([])
        else:
            segments[-1].append((at, value))
    return [s for s in segments if s]


def _coords(segment: list[tuple[datetime, float]], x_of: Any, y_of: Any, *, step: bool) -> str:
    out: list[str] = []
    previous: float | None = None
    for at, value in segment:
        x, y = x_of(at), y_of(value)
        if step and previous is not None and previous != y:
            out.append(f"{x:.1f},{previous:.1f}")  # a threshold holds until the run that saw a new one
        out.append(f"{x:.1f},{y:.1f}")
        previous = y
    if len(out) == 1:  # one run: a short line, so a lone threshold or score is still visible
        x, y = out[0].split(",")
        out = [f"{float(x) - 8:.1f},{y}", f"{float(x) + 8:.1f},{y}"]
    return " ".join(out)


def _time_axis(first: datetime, last: datetime, y: int, x_of: Any) -> str:
    span = (last - first).total_seconds()
    fmt = "%Y-%m-%d" if span > 3 * 86_400 else "%m-%d %H:%M"
    ticks = [first] if span <= 0 else [datetime.fromtimestamp(first.timestamp() + span * i / 5, UTC) for i in range(6)]
    parts = []
    for i, at in enumerate(ticks):
        x = x_of(at)
        anchor = "start" if i == 0 and len(ticks) > 1 else ("end" if i == len(ticks) - 1 and i > 0 else "middle")
        parts.append(
            f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#444"/>'
            f'<text x="{x:.1f}" y="{y + 17}" text-anchor="{anchor}" fill="#444">'
            f"{_e(at.astimezone(UTC).strftime(fmt))}</text>"
        )
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{y + 31}" text-anchor="end" fill="#444">time (UTC)</text>')
    return "".join(parts)


def _legend() -> str:
    items = [
        (f'<line x1="0" y1="0" x2="18" y2="0" stroke="{SCORE_COLOUR}" stroke-width="2"/>', "score"),
        (
            f'<line x1="0" y1="0" x2="18" y2="0" stroke="{THRESHOLD_COLOUR}" stroke-width="1.5" '
            'stroke-dasharray="5 4"/>',
            "threshold",
        ),
        (f'<circle cx="9" cy="0" r="3" fill="{DETECTED_COLOUR}"/>', "drift detected"),
        (f'<circle cx="9" cy="0" r="3" fill="white" stroke="{LITTLE_COLOUR}"/>', "little data"),
        (
            f'<line x1="9" y1="-7" x2="9" y2="7" stroke="{RETRAIN_COLOUR}" stroke-width="2" stroke-dasharray="4 2"/>',
            "retrain filed",
        ),
        (f'<line x1="9" y1="-7" x2="9" y2="7" stroke="{PROMOTION_COLOUR}" stroke-width="2"/>', "champion moved"),
    ]
    parts = ['<g class="legend">']
    x = LEFT
    for symbol, label in items:
        parts.append(f'<g transform="translate({x},12)">{symbol}<text x="24" y="4">{label}</text></g>')
        x += 34 + 7 * len(label)
    parts.append("</g>")
    return "".join(parts)


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
