"""The reports index as a browser draws it: Debian's headless Chromium takes a screenshot of the written page, and
the picture must show the timeline (its colours, at its size, above the table) and not when there are no runs.

Chromium is installed by the Makefile's ``chromium`` target (a prerequisite of ``make test``); without it this test
skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import html
import math
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monitor.report import RunEntry, write_index
from monitor.timeline import DETECTED_COLOUR, PROMOTION_COLOUR, RETRAIN_COLOUR, SCORE_COLOUR
from service.app import REPORT_HEADERS
from tagwatch.history import AliasMoveRecord
from tests.support import unavailable

T0 = datetime(2026, 11, 1, tzinfo=UTC)
WINDOW = (1400, 1000)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):  # Debian, older Ubuntu, GitHub's runners
        path = shutil.which(name)
        if path is not None:
            return path
    unavailable("chromium is not installed (make test installs it: see the Makefile's 'chromium' target)")


def screenshot(page: Path, out: Path) -> np.ndarray:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",  # as root (containers, CI runners) Chromium refuses to start with its sandbox
        "--disable-gpu",
        "--hide-scrollbars",
        f"--screenshot={out}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--virtual-time-budget=5000",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2_000:]
    assert out.is_file(), done.stderr[-2_000:]
    with Image.open(out) as image:
        assert image.size == WINDOW
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def near(picture: np.ndarray, colour: str, tolerance: int = 40) -> np.ndarray:
    """A mask of the pixels within ``tolerance`` (per channel) of ``colour`` ("#rrggbb")."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    return np.all(np.abs(picture - rgb) <= tolerance, axis=-1)


def runs(n: int) -> list[RunEntry]:
    out = []
    for i in range(n):
        kinds = {}
        for j, (kind, threshold) in enumerate((("data", 0.55), ("concept", 0.1), ("feature", 0.2))):
            score = threshold * (0.6 + 0.9 * i / n) + 0.03 * math.sin(i + j)
            kinds[kind] = {"score": score, "threshold": threshold, "detected": score > threshold, "enough_data": True}
        out.append(
            RunEntry(
                started_at=T0 + timedelta(hours=6 * i),
                result={"model_version": "1", "sizes": {"current": 1000, "feedback": 200}, "kinds": kinds},
                report=None,
                retrain="promoted v2" if i == 45 else None,
            )
        )
    return out


def under_served_policy(page: Path) -> Path:
    """A copy of ``page`` under the Content-Security-Policy /reports/ is served with (service.app.REPORT_HEADERS), as
    a meta element (which cannot carry ``sandbox``: the rest of the policy is what could stop the picture)."""
    policy = REPORT_HEADERS["Content-Security-Policy"].removeprefix("sandbox allow-scripts; ")
    assert "sandbox" not in policy
    meta = f'<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">'
    copy = page.with_name("served.html")
    copy.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + meta, 1), encoding="utf-8")
    return copy


@pytest.mark.parametrize("served", [False, True], ids=["as-written", "under-csp"])
def test_the_index_shows_the_timeline(tmp_path: Path, served: bool) -> None:
    moves = [AliasMoveRecord(1, T0 + timedelta(hours=6 * 45 + 1), "tagwatch", "champion", "1", "2", "drift", "monitor")]
    index = write_index(
        runs(60), tmp_path / "with", moves=moves, retention_days=14, grafana_url="http://localhost:3000"
    )
    picture = screenshot(under_served_policy(index) if served else index, tmp_path / "with.png")

    score = near(picture, SCORE_COLOUR)
    ys, xs = np.nonzero(score)
    assert score.sum() > 2_000, score.sum()  # 180 dots and three lines
    # the three panels: spread over most of the page's width and a good part of its height, above the table
    assert xs.max() - xs.min() > 700, (xs.min(), xs.max())
    assert ys.max() - ys.min() > 300, (ys.min(), ys.max())
    assert ys.max() < 800
    for colour, least in ((DETECTED_COLOUR, 300), (RETRAIN_COLOUR, 50), (PROMOTION_COLOUR, 100)):
        assert near(picture, colour).sum() > least, colour
    # the marks are vertical lines across the panels
    promotion_rows = np.nonzero(near(picture, PROMOTION_COLOUR).any(axis=1))[0]
    assert promotion_rows.max() - promotion_rows.min() > 300

    # no runs: a line of text, none of the chart's colours
    write_index([], tmp_path / "without", moves=[], retention_days=14)
    empty = screenshot(tmp_path / "without" / "index.html", tmp_path / "without.png")
    for colour in (SCORE_COLOUR, DETECTED_COLOUR, RETRAIN_COLOUR, PROMOTION_COLOUR):
        assert near(empty, colour).sum() < 20, colour


def test_chromium_is_required_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under CI=true a missing Chromium fails the test instead of skipping it."""
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        chromium()
