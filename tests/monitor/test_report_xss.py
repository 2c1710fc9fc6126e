"""Hostile question text sent to the API reaches the drift report and the index as text, never as markup.

End to end: questions posted to the real service land in the request log, the monitor job writes the Evidently
report (their texts are its characteristic examples) and the index; the written pages are parsed as a browser's
tokenizer would split them and compared with the pages of a run on benign text.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from monitor.drift.detect import detect_drift
from monitor.drift.types import Baseline, DriftInput, Thresholds
from monitor.job import Monitor
from monitor.report import RunEntry, safe_data_script, write_index, write_report
from service.app import create_app
from tagwatch.data import Question
from tagwatch.db import make_engine
from tagwatch.history import AliasMoveRecord
from tagwatch.model import TagModel
from tagwatch.settings import Settings
from tests.support import InMemorySource, unseen_questions

# Every title carries all of these (titles are HTML-unescaped on the way: the second one arrives as markup).
TITLE_PAYLOADS = (
    "</script><img src=x onerror=alert(1)>",
    "&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;",
    "<!-- ]]> \u2028 \"double\" 'single' a <div> & b",
)
# An HTML body whose text (after the body's own markup is removed) is markup again.
BODY_PAYLOAD = "<p>&lt;/SCRIPT &gt;&lt;img src=x onerror=alert(3)&gt; &lt;!-- ]]&gt;</p>"
# What the report's data must hold, decoded, for the test to prove the payloads got there: each as text
# preparation decodes it today (entities read as characters), or as sent.
ARRIVED = (
    ("</script><img src=x onerror=alert(1)>",),
    ("</script><script>alert(2)</script>", TITLE_PAYLOADS[1]),
    ("<!-- ]]>",),
    ("\"double\" 'single' a <div> & b",),
    ("</SCRIPT ><img src=x onerror=alert(3)>", "&lt;/SCRIPT &gt;&lt;img src=x onerror=alert(3)&gt;"),
)
WINDOW = 200
INDEX_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "p", "b", "i", "table", "thead", "tbody", "tr"}
INDEX_TAGS |= {"th", "td", "a", "figure"}
# The timeline (monitor.timeline): inline SVG, no script, no link, no foreignObject.
INDEX_TAGS |= {"svg", "g", "title", "text", "line", "polyline", "circle", "rect"}
GRAFANA_LINK = "http://localhost:3000/d/tagwatch-model-drift"


@dataclass
class ParsedPage:
    """A page as an HTML tokenizer sees it: its elements (tag, attributes) in order and its script bodies."""

    elements: list[tuple[str, list[tuple[str, str | None]]]] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)


class _Collector(HTMLParser):
    def __init__(self, page: ParsedPage) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.page.elements.append((tag, attrs))
        if tag == "script":
            self.in_script = True
            self.page.scripts.append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.page.elements.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.in_script = False

    def handle_data(self, data: str) -> None:
        if self.in_script:
            self.page.scripts[-1] += data


def parse(text: str) -> ParsedPage:
    page = ParsedPage()
    collector = _Collector(page)
    collector.feed(text)
    collector.close()
    return page


def assert_no_injected_markup(page: ParsedPage) -> None:
    for tag, attrs in page.elements:
        assert tag != "img", attrs
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name, value)
            assert "alert" not in (value or ""), (tag, name, value)


def evidently_library() -> str:
    from evidently.legacy.utils.dashboard import STATIC_PATH

    return (Path(STATIC_PATH) / "index.js").read_text(encoding="utf-8")


def assert_scripts_are_closed_only_by_their_end_tag(page: ParsedPage, library: str) -> None:
    """No script body can end early or switch the tokenizer into its comment states.

    A browser ends a script at the first ``</script`` and treats ``<!--`` in it specially; a body without either is
    split the same by every tokenizer. Apart from Evidently's library (byte for byte the installed file, so nothing
    of the payload), no script body holds a ``</`` at all.
    """
    for body in page.scripts:
        assert "</script" not in body.lower()
        assert "<!--" not in body
        assert "\u2028" not in body
        assert "\u2029" not in body
        if body != library:
            assert "</" not in body, body[:200]


def embedded_data(page: ParsedPage) -> tuple[Any, Any]:
    """The two JSON values of the Evidently report's data script, decoded."""
    (body,) = [s for s in page.scripts if re.match(r"\s*var metric_[0-9a-f]+ = ", s)]
    decoder = json.JSONDecoder()
    start = re.match(r"\s*var metric_[0-9a-f]+ = ", body)
    assert start is not None
    dashboard, at = decoder.raw_decode(body, start.end())
    graphs_start = re.compile(r"\s*;\s*var additional_graphs_metric_[0-9a-f]+ = ").match(body, at)
    assert graphs_start is not None
    graphs, at = decoder.raw_decode(body, graphs_start.end())
    assert body[at:].strip() == ";"
    return dashboard, graphs


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


# --- end to end: API -> request log -> monitor -> pages ----------------------------------------------------


def _hostile(q: Question) -> dict[str, str]:
    return {"title": (" ".join(TITLE_PAYLOADS) + " " + q.title)[:300], "body": BODY_PAYLOAD + q.body}


def _benign(q: Question) -> dict[str, str]:
    return {"title": q.title, "body": q.body}


@pytest.fixture
def pages(
    settings: Settings,
    small_model: TagModel,
    registry_with_champion: Any,
    bundled_questions: list[Question],
    small_training_set: list[Question],
) -> tuple[str, str, str]:
    """(report of a hostile window, report of a benign window, index): both windows of recent questions (drift)."""
    recent = [
        q
        for q in unseen_questions(bundled_questions, small_training_set, seed=11)
        if q.created_at is not None and q.created_at.year >= 2022
    ][: 2 * WINDOW]
    assert len(recent) == 2 * WINDOW
    source = InMemorySource()
    source.add("1", small_model)
    monitor_settings = Settings(**{**settings.model_dump(), "window_size": WINDOW, "min_window": WINDOW})
    engine = make_engine(settings.db_url)
    monitor = Monitor(monitor_settings, engine=engine, registry=registry_with_champion, retrain_enabled=False)
    reports = []
    try:
        with TestClient(create_app(settings, source=source)) as client:
            for make, questions in ((_hostile, recent[:WINDOW]), (_benign, recent[WINDOW:])):
                response = client.post("/predict/batch", json={"questions": [make(q) for q in questions]})
                assert response.status_code == 200, response.text
                client.app.state.tagwatch.writer.flush()  # type: ignore[attr-defined]
                outcome = monitor.run_once()  # the newest WINDOW requests: the batch just sent
                assert outcome.status == "ok", outcome.error
                assert outcome.report_path is not None
                reports.append((monitor_settings.reports_dir / outcome.report_path).read_text(encoding="utf-8"))
    finally:
        engine.dispose()
    index = (monitor_settings.reports_dir / "index.html").read_text(encoding="utf-8")
    return reports[0], reports[1], index


def test_hostile_text_reaches_the_pages_only_as_text(pages: tuple[str, str, str]) -> None:
    hostile_text, benign_text, index_text = pages
    hostile, benign = parse(hostile_text), parse(benign_text)
    library = evidently_library()
    # The same elements as the report of benign text, in the same order (the rest is drawn by the page's script).
    assert [tag for tag, _ in hostile.elements] == [tag for tag, _ in benign.elements]
    assert len(hostile.scripts) == len(benign.scripts) == 4
    assert library in hostile.scripts
    for page in (hostile, benign):
        assert_no_injected_markup(page)
        assert_scripts_are_closed_only_by_their_end_tag(page, library)
    # The payloads are in the page, escaped inside the data script ...
    for escaped in (
        r"\u003c/script\u003e\u003cimg src=x onerror=alert(1)\u003e",
        r"\u003c/script\u003e\u003cscript\u003ealert(2)\u003c/script\u003e",
        r"\u003c!-- ]]\u003e",
        r"\u003c/SCRIPT \u003e\u003cimg src=x onerror=alert(3)\u003e",
    ):
        assert escaped in hostile_text
    outside_library = hostile_text.replace(library, "")
    for raw in ("onerror=alert(1)>", "<script>alert(2)", "<!--", "]]>", "<img", "\u2028"):
        assert raw not in outside_library
    # ... and decode to exactly the text that was sent: the report shows "<div> & b" as written.
    dashboard, _ = embedded_data(hostile)
    examples = [s for s in strings(dashboard) if TITLE_PAYLOADS[0] in s]
    assert len(examples) >= 5  # the characteristic examples of the current window
    for forms in ARRIVED:
        assert any(text in s for s in examples for text in forms), forms
    benign_dashboard, _ = embedded_data(benign)
    assert not any("onerror" in s for s in strings(benign_dashboard))

    index = parse(index_text)
    assert index.scripts == []
    assert_no_injected_markup(index)
    assert {tag for tag, _ in index.elements} <= INDEX_TAGS
    links = [dict(attrs).get("href") for tag, attrs in index.elements if tag == "a"]
    assert links.count(GRAFANA_LINK) == 1  # the settings' default Grafana
    assert len(links) == 3  # and one link per run
    assert sum(1 for tag, _ in index.elements if tag == "svg") == 1
    assert sum(1 for tag, attrs in index.elements if tag == "circle" and ("class", "run") in attrs) >= 2


# --- the pages' own escaping, every field ------------------------------------------------------------------

HOSTILE = "</script><img src=x onerror=alert(9)>\"'&<!--"


def test_index_escapes_every_value(tmp_path: Path) -> None:
    result = {
        "model_version": HOSTILE,
        "sizes": {"current": HOSTILE, "feedback": HOSTILE},
        "kinds": {
            kind: {"score": HOSTILE, "threshold": 0.5, "detected": i == 0, "enough_data": i != 1, "reasons": [HOSTILE]}
            for i, kind in enumerate(("data", "concept", "feature"))
        },
    }
    entries = [
        RunEntry(
            started_at=datetime(2024, 1, 1, 2 - hour, tzinfo=UTC),  # newest first, as the table lists them
            result=result,
            report=report,
            decision=HOSTILE,
            retrain=HOSTILE,  # a timeline mark's tooltip
        )
        for hour, report in enumerate(("javascript:fetch(document.cookie)", HOSTILE, None))
    ]
    # a champion move inside the runs' span: its versions and trigger are the timeline's label and tooltip
    moves = [
        AliasMoveRecord(
            1, datetime(2024, 1, 1, 1, 30, tzinfo=UTC), HOSTILE, "champion", HOSTILE, HOSTILE, HOSTILE, HOSTILE
        )
    ]
    text = write_index(entries, tmp_path, moves=moves).read_text(encoding="utf-8")
    page = parse(text)
    assert page.scripts == []
    assert {tag for tag, _ in page.elements} <= INDEX_TAGS
    links = []
    for tag, attrs in page.elements:
        if tag == "a":
            assert [name for name, _ in attrs] == ["href"]
            links.append(dict(attrs)["href"] or "")
        else:
            assert_no_injected_markup(ParsedPage(elements=[(tag, attrs)]))
    # relative paths, never a scheme, the hostile name percent-encoded
    assert links == ["javascript%3Afetch%28document.cookie%29", quote(HOSTILE)]
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(9)&gt;&quot;&#x27;&amp;&lt;!--" in text
    # the SVG alone: well-formed XML whose texts are the hostile values as text
    svg = ET.fromstring(text[text.index("<svg") : text.index("</svg>") + len("</svg>")])
    texts = "".join(svg.itertext())
    assert f"retrain {HOSTILE}" in texts
    assert f"v{HOSTILE}" in texts
    assert f"champion {HOSTILE} → {HOSTILE} ({HOSTILE})" in texts


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "//evil.example"])
def test_index_links_grafana_only_over_http(tmp_path: Path, url: str) -> None:
    text = write_index([], tmp_path, grafana_url=url).read_text(encoding="utf-8")
    assert [tag for tag, _ in parse(text).elements if tag == "a"] == []
    assert "alert" not in text
    assert "evil" not in text


def test_grafana_url_setting_refuses_other_schemes() -> None:
    with pytest.raises(ValueError, match="grafana_url"):
        Settings(grafana_url="javascript:alert(1)")
    assert Settings(grafana_url="").grafana_url == ""
    assert Settings().grafana_url == "http://localhost:3000"


def test_plain_page_escapes_every_value(
    small_model: TagModel, bundled_questions: list[Question], tmp_path: Path
) -> None:
    reference = bundled_questions[:300]
    current = [replace(q, title=HOSTILE + q.title) for q in bundled_questions[300:305]]
    tiny = detect_drift(
        DriftInput(reference, [q.tags for q in reference]),
        DriftInput(current, [q.tags for q in current]),
        small_model,
        Baseline(micro_f1=0.5, samples_jaccard=0.4),
        Thresholds.from_settings(Settings()),
    )
    assert tiny.snapshot is None
    reasons = [*tiny.concept.reasons, HOSTILE]
    hostile = replace(tiny, model_version=HOSTILE, concept=replace(tiny.concept, reasons=reasons))
    text = write_report(hostile, tmp_path / "tiny.html").read_text(encoding="utf-8")
    page = parse(text)
    assert page.scripts == []
    assert_no_injected_markup(page)
    assert text.count("&lt;/script&gt;&lt;img src=x onerror=alert(9)&gt;") >= 2  # title, heading, reasons


# --- the data script, in isolation ---------------------------------------------------------------------------

# The layout of Evidently's page (evidently.legacy.utils.dashboard.file_html_template), shortened.
_TEMPLATE = (
    "<!DOCTYPE html><html><head><style>a {{}}</style>\n    <script>\n    var metric_ab12 = {data};\n"
    "    var additional_graphs_metric_ab12 = {graphs};\n</script>\n</head><body>"
    "<script>var global = globalThis</script><script>window.drawDashboard(metric_ab12)</script></body></html>"
)


def test_safe_data_script_reencodes_the_same_values() -> None:
    data = {"rows": [[HOSTILE, "a <div> & b", "\u2028", 1.5, None, float("nan")]], "</script>": True}
    graphs = {"g": {"text": "<b>x</b>"}}
    page = _TEMPLATE.format(data=json.dumps(data), graphs=json.dumps(graphs))
    safe = safe_data_script(page)
    parsed = parse(safe)
    assert len(parsed.scripts) == 3
    assert "<" not in parsed.scripts[0]
    decoded, decoded_graphs = embedded_data(parsed)
    assert decoded_graphs == graphs
    assert decoded["rows"][0][:5] == data["rows"][0][:5]  # type: ignore[index]
    assert decoded["</script>"] is True
    # everything around the data script is left as it was
    assert safe.endswith(page[page.index("</script>\n</head>") :])
    # benign data (no < > &) comes out byte for byte
    plain = _TEMPLATE.format(data=json.dumps({"a": [1, "b"]}), graphs="{}")
    assert safe_data_script(plain) == plain


@pytest.mark.parametrize(
    "page",
    [
        "<html><body>no script</body></html>",
        "<script>var x = 1;</script>" + _TEMPLATE.format(data="{}", graphs="{}"),
        _TEMPLATE.format(data="{}", graphs="{}").replace("additional_graphs_metric_ab12", "other"),
        _TEMPLATE.format(data='{"a": "</script><img>"', graphs="{}"),
    ],
)
def test_safe_data_script_refuses_other_layouts(page: str) -> None:
    with pytest.raises(ValueError, match="Evidently report"):
        safe_data_script(page)
