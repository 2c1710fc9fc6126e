"""The reports index's picture (monitor.timeline): points, threshold lines, marks, the edge cases, escaping."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.report import RunEntry, write_index
from monitor.timeline import DETECTED_COLOUR, LITTLE_COLOUR, SCORE_COLOUR, timeline_svg
from tagwatch.history import AliasMoveRecord

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOSTILE = "</svg></script><img src=x onerror=alert(9)>\"'&<!--"


def run(
    i: int,
    scores: dict[str, Any] | None = None,
    *,
    threshold: Any = 0.5,
    detected: bool = False,
    enough_data: bool = True,
    retrain: str | None = None,
) -> RunEntry:
    kinds = {
        kind: {"score": score, "threshold": threshold, "detected": detected, "enough_data": enough_data}
        for kind, score in (scores or {"data": 0.1 * i, "concept": 0.2, "feature": 0.3}).items()
    }
    return RunEntry(
        started_at=T0 + timedelta(hours=i), result={"kinds": kinds}, report=None, decision=None, retrain=retrain
    )


def move(at: datetime, to: str, *, alias: str = "champion", trigger: str = "drift: data") -> AliasMoveRecord:
    return AliasMoveRecord(1, at, "tagwatch", alias, "1", to, trigger, "monitor")


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML: every value escaped
    assert root.tag == f"{SVG}svg"
    return root


def panel(root: ET.Element, kind: str) -> ET.Element:
    (found,) = [g for g in root.iter(f"{SVG}g") if g.get("data-kind") == kind]
    return found


def circles(element: ET.Element) -> list[ET.Element]:
    """The runs' dots (not the legend's)."""
    return [c for c in element.iter(f"{SVG}circle") if c.get("class") == "run"]


def polyline_points(element: ET.Element, cls: str) -> list[list[tuple[float, float]]]:
    return [
        [(float(x), float(y)) for x, y in (pair.split(",") for pair in (p.get("points") or "").split())]
        for p in element.iter(f"{SVG}polyline")
        if p.get("class") == cls
    ]


def test_one_point_per_run_and_kind_in_time_order() -> None:
    runs = [run(i) for i in range(10)]
    root = parse(timeline_svg(list(reversed(runs))))  # order of the input does not matter
    for kind in ("data", "concept", "feature"):
        dots = circles(panel(root, kind))
        assert len(dots) == 10
        xs = [float(c.get("cx") or 0) for c in dots]
        assert xs == sorted(xs)
        assert len(set(xs)) == 10
        assert all(c.get("fill") == SCORE_COLOUR for c in dots)
    # a rising score goes up the picture (SVG's y grows downwards)
    ys = [float(c.get("cy") or 0) for c in circles(panel(root, "data"))]
    assert ys == sorted(ys, reverse=True)
    (line,) = polyline_points(panel(root, "data"), "score")
    assert len(line) == 10
    # each dot carries its numbers as a tooltip
    assert circles(panel(root, "data"))[3].findtext(f"{SVG}title") == "2026-11-01 03:00:00 UTC: data 0.300 / 0.500 (ok)"


def test_threshold_line_and_scores_on_either_side() -> None:
    runs = [run(0, {"data": 0.2}), run(1, {"data": 0.8}, detected=True)]
    root = parse(timeline_svg(runs, kinds=("data",)))
    (threshold,) = polyline_points(root, "threshold")
    assert len({y for _, y in threshold}) == 1  # one threshold: a flat line
    level = threshold[0][1]
    below, above = circles(root)
    assert float(below.get("cy") or 0) > level > float(above.get("cy") or 0)
    assert above.get("fill") == DETECTED_COLOUR
    assert below.get("fill") == SCORE_COLOUR


def test_a_changed_threshold_is_a_step() -> None:
    runs = [run(0, {"data": 0.1}, threshold=0.5), run(1, {"data": 0.1}, threshold=0.5)]
    runs += [run(2, {"data": 0.1}, threshold=0.7), run(3, {"data": 0.1}, threshold=0.7)]
    (threshold,) = polyline_points(parse(timeline_svg(runs, kinds=("data",))), "threshold")
    assert len(threshold) == 5  # the old level runs to the new run's time, then steps up
    assert threshold[2][0] == threshold[3][0]
    assert threshold[2][1] > threshold[3][1]


def test_little_data_is_a_hollow_dot() -> None:
    root = parse(timeline_svg([run(0, {"data": 0.4}, enough_data=False)], kinds=("data",)))
    (dot,) = circles(root)
    assert dot.get("fill") == "white"
    assert dot.get("stroke") == LITTLE_COLOUR


@pytest.mark.parametrize("missing", [None, float("nan"), float("inf"), "0.5", True])
def test_a_missing_score_leaves_a_gap(missing: Any) -> None:
    runs = [run(0, {"data": 0.1}), run(1, {"data": 0.2}), run(2, {"data": missing}), run(3, {"data": 0.3})]
    root = parse(timeline_svg(runs, kinds=("data",)))
    assert len(circles(root)) == 3
    assert [len(s) for s in polyline_points(root, "score")] == [2, 2]  # the lone last run: a short stroke
    assert "nan" not in timeline_svg(runs).lower()
    assert "inf" not in timeline_svg(runs).lower()


def test_a_kind_absent_from_every_run_is_an_empty_panel() -> None:
    root = parse(timeline_svg([run(0, {"data": 0.1}), run(1, {"data": 0.2})]))
    assert circles(panel(root, "concept")) == []
    assert polyline_points(panel(root, "concept"), "score") == []


def test_retrains_and_champion_moves_are_marked() -> None:
    runs = [run(i) for i in range(10)]
    runs[4] = run(4, retrain="promoted v2")
    runs[7] = run(7, retrain="rejected v3")
    moves = [
        move(T0 + timedelta(hours=4, minutes=30), "2"),
        move(T0 + timedelta(hours=5), "2", alias="previous"),  # not the champion: left out
        move(T0 - timedelta(days=1), "1"),  # before the first run: left out
    ]
    root = parse(timeline_svg(runs, moves))
    retrains = [e for e in root.iter(f"{SVG}line") if e.get("class") == "retrain"]
    assert [e.findtext(f"{SVG}title") for e in retrains] == [
        "2026-11-01 04:00:00 UTC: retrain promoted v2",
        "2026-11-01 07:00:00 UTC: retrain rejected v3",
    ]
    (promotion,) = [g for g in root.iter(f"{SVG}g") if g.get("class") == "promotion"]
    assert promotion.findtext(f"{SVG}text") == "v2"
    x = float(promotion.find(f"{SVG}line").get("x1") or 0)  # type: ignore[union-attr]
    run4, run5 = (float(c.get("cx") or 0) for c in circles(panel(root, "data"))[4:6])
    assert run4 < x < run5
    assert float(retrains[0].get("x1") or 0) == run4


def test_no_runs() -> None:
    root = parse(timeline_svg([]))
    assert "No drift run" in "".join(root.itertext())
    assert circles(root) == []


def test_one_run_is_drawn_in_the_middle() -> None:
    root = parse(timeline_svg([run(0)], [move(T0, "2")]))
    width = float(root.get("width") or 0)
    for kind in ("data", "concept", "feature"):
        (dot,) = circles(panel(root, kind))
        assert abs(float(dot.get("cx") or 0) - (64 + (width - 64 - 24) / 2)) < 0.1
        (threshold,) = polyline_points(panel(root, kind), "threshold")
        assert len(threshold) == 2  # a short stroke, so a lone threshold is seen
    assert len([g for g in root.iter(f"{SVG}g") if g.get("class") == "promotion"]) == 1


def test_every_text_is_escaped() -> None:
    runs = [run(0, retrain=HOSTILE), run(1)]
    moves = [move(T0 + timedelta(minutes=5), HOSTILE, trigger=HOSTILE)]
    svg = timeline_svg(runs, moves, kinds=(HOSTILE,))
    root = parse(svg)
    allowed = {"svg", "g", "title", "text", "line", "polyline", "circle", "rect"}
    assert {e.tag.removeprefix(SVG) for e in root.iter()} <= allowed
    for element in root.iter():
        assert not any(name.startswith("on") for name in element.attrib)
    texts = "".join(root.itertext())
    assert f"retrain {HOSTILE}" in texts
    assert f"v{HOSTILE}" in texts
    assert f"({HOSTILE})" in texts
    assert f"{HOSTILE} drift" in texts
    assert "<img" not in svg
    assert "<!--" not in svg


def test_thousand_runs_quickly(tmp_path: Path) -> None:
    runs = [
        run(i, {"data": 0.5 + (i % 7) / 10, "concept": 0.1, "feature": 0.2}, retrain="x" * (i % 50 == 0))
        for i in range(1000)
    ]
    moves = [move(T0 + timedelta(hours=i), str(i)) for i in range(0, 1000, 100)]
    started = time.perf_counter()
    write_index(runs, tmp_path, moves=moves, retention_days=14, grafana_url="http://localhost:3000")
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, elapsed  # ~0.05 s here (see notes); generous for slow CI machines
    assert len(circles(parse(timeline_svg(runs)))) == 3000
