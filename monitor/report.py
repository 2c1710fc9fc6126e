"""Drift reports: one self-contained HTML file per run (the Evidently snapshot) and an index page of runs, which
starts with the champion's history (its moves from ``alias_moves``).

The service serves ``reports_dir`` at ``/reports/`` while the monitor writes into it, so every file is written to a
temporary name first and moved into place (a reader never sees half a page).

Both pages carry text users sent (question titles and bodies are the report's characteristic examples) and are served
from the API's origin, so nothing of it may become markup: the index escapes every value (the history's triggers and
actors too), and the Evidently page's embedded data is re-serialised by ``render_snapshot`` so that no string can end
its ``<script>``.
"""

from __future__ import annotations

import html
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from monitor.drift.types import KINDS, DriftResult
from monitor.timeline import timeline_svg
from tagwatch.reports import INDEX_NAME

if TYPE_CHECKING:
    from tagwatch.history import AliasMoveRecord

# The Grafana dashboard of drift scores (dashboards/model_drift.py; fixed uid, so links stay stable).
DRIFT_DASHBOARD_UID = "tagwatch-model-drift"


@dataclass(frozen=True)
class RunEntry:
    """One line of the index: when the run started, what it found, where its report is."""

    started_at: datetime
    result: dict[str, Any]  # DriftResult.to_dict()
    report: str | None  # file name relative to the reports directory; None when no report was written
    decision: str | None = None  # what the policy made of it, e.g. "retrain" / "no action: cool-down"
    expired: bool = False  # its report was written and has been deleted since (report_retention_days)
    retrain: str | None = None  # the retrain the run filed, in a short phrase ("promoted v3"); None: none filed

    @classmethod
    def from_result(
        cls, result: DriftResult, *, started_at: datetime, report: Path | str | None, decision: str | None = None
    ) -> RunEntry:
        name = Path(report).name if report is not None else None
        return cls(started_at=started_at, result=result.to_dict(), report=name, decision=decision)


def _write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        # mkstemp creates the file 0600; a report is meant to be served.
        tmp.chmod(0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_report(result: DriftResult, path: Path) -> Path:
    """Save the run's Evidently snapshot as one self-contained HTML file at ``path``.

    The snapshot is the Report that produced the data-drift numbers (with the other kinds' summary on top); a window
    too small for Evidently gets a plain page with the same summary instead.
    """
    if path.suffix != ".html":
        raise ValueError(f"a report path must end in .html: {path}")
    if result.snapshot is not None:
        page = render_snapshot(result.snapshot)
        return _write_atomic(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    page = _page(f"Drift run: model {result.model_version or '?'}", _summary_html(result.to_dict()))
    return _write_atomic(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))


# Evidently (0.7) puts all of a report's data, as JSON from json.dumps, in one inline script in the head, before any
# other script:
#   <script>
#       var metric_<hex> = {dashboard JSON};
#       var additional_graphs_metric_<hex> = {graphs JSON};
#   </script>
# json.dumps leaves "<" as is, so a text containing "</script>" ended the script early and the rest was parsed as HTML.
_DATA_OPEN = re.compile(r"<script>\s*var (metric_[0-9a-f]+) = ")


def render_snapshot(snapshot: Any) -> str:
    """Evidently's self-contained HTML page of ``snapshot``, with its embedded data safe inside ``<script>``.

    The two JSON values are decoded from Evidently's page (a JSON parser finds where each ends, whatever the strings
    hold) and written again with ``<``, ``>`` and ``&`` as ``\\u003c``, ``\\u003e``, ``\\u0026``: the same values, and
    a script body without a single ``<``, so no text can end it or open a comment in it. The rest of the page is
    Evidently's template and its library, which carry no data. Anything but the expected layout raises.
    """
    return safe_data_script(snapshot.get_html_str(as_iframe=False))


def safe_data_script(page: str) -> str:
    """``page`` (an Evidently report page) with its data script re-serialised (see ``render_snapshot``)."""
    opened = _DATA_OPEN.match(page, max(page.find("<script"), 0))
    if opened is None:
        raise ValueError("not an Evidently report page: its first script is not the data script")
    name = opened.group(1)
    dashboard, at = _decode(page, opened.end())
    at = _expect(page, at, rf"\s*;\s*var additional_graphs_{name} = ")
    graphs, at = _decode(page, at)
    end = _expect(page, at, r"\s*;\s*</script>")
    script = (
        f"<script>\n    var {name} = {_script_json(dashboard)};\n"
        f"    var additional_graphs_{name} = {_script_json(graphs)};\n</script>"
    )
    return page[: opened.start()] + script + page[end:]


def _decode(page: str, at: int) -> tuple[Any, int]:
    try:
        return json.JSONDecoder().raw_decode(page, at)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the Evidently report's data script holds no JSON value at {at}: {exc}") from None


def _expect(page: str, at: int, pattern: str) -> int:
    found = re.compile(pattern).match(page, at)
    if found is None:
        # (the position only: what follows may be a user's text, and the message is stored with the run)
        raise ValueError(f"unexpected layout of the Evidently report's data script at character {at}")
    return found.end()


def _script_json(value: Any) -> str:
    # ensure_ascii: U+2028/U+2029 (line ends in older JavaScript) and all non-ASCII become \u escapes too.
    text = json.dumps(value, ensure_ascii=True)
    # Outside strings JSON has no < > &; inside, their \u escapes are the same characters (str.replace: a tenth of
    # the time of str.translate).
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def write_index(
    runs: Sequence[RunEntry],
    reports_dir: Path,
    *,
    moves: Sequence[AliasMoveRecord] | None = None,
    retention_days: float | None = None,
    grafana_url: str | None = None,
) -> Path:
    """Write ``reports_dir/index.html``: one row per run (newest first) with per-kind scores, verdicts and a link
    (or "expired" for a run whose report was deleted).

    ``moves`` (``tagwatch.history.list_moves``): the page starts with a "Model history" section listing the champion
    moves among them, newest first (when, from -> to, trigger, who); other aliases' moves are left out. None: no
    such section. ``retention_days``: how long reports are kept, said on the page. Above the table, the picture of
    ``monitor.timeline`` (scores against thresholds over time, retrains and champion moves marked) and, with
    ``grafana_url`` (an http(s) URL), a link to the Grafana dashboard of model drift.
    """
    rows = []
    for run in sorted(runs, key=lambda r: r.started_at, reverse=True):
        kinds = run.result.get("kinds", {})
        cells = [
            f"<td>{_e(run.started_at.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S UTC'))}</td>",
            f"<td>{_e(run.result.get('model_version') or '?')}</td>",
            f"<td class=num>{_e(run.result.get('sizes', {}).get('current', '-'))}</td>",
            f"<td class=num>{_e(run.result.get('sizes', {}).get('feedback', '-'))}</td>",
        ]
        for kind in KINDS:
            cells.append(_kind_cell(kinds.get(kind)))
        cells.append(f"<td>{_e(run.decision or '')}</td>")
        # quoted: a stored name is a relative path, never a "javascript:" URL
        link = f'<a href="{_e(quote(run.report))}">report</a>' if run.report else ("expired" if run.expired else "-")
        cells.append(f"<td>{link}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    header = "".join(
        f"<th>{_e(h)}</th>" for h in ["started", "model", "questions", "feedback", *KINDS, "decision", "report"]
    )
    body = (
        _timeline_html(runs, moves or (), grafana_url)
        + (_history_html(moves) if moves is not None else "")
        + f"<p>{len(runs)} drift runs. A kind cell shows score / threshold; <b>DRIFT</b> when detected, "
        "<i>(little data)</i> when the window was below its minimum size. The concept score weighs, among others, "
        "the drop of the feedback's micro-F1 over the model's tags (true tags outside them left out) below the "
        "model's random hold-out, the micro-F1 of the model card (micro_f1, not micro_f1_all_tags).</p>"
        + (
            f"<p>Reports are kept {_e(f'{retention_days:g}')} days (TAGWATCH_REPORT_RETENTION_DAYS); an older run's "
            "report reads <i>expired</i>.</p>"
            if retention_days is not None
            else ""
        )
        + f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    page = _page("tagwatch drift runs", body)
    return _write_atomic(reports_dir / INDEX_NAME, lambda tmp: tmp.write_text(page, encoding="utf-8"))


def _timeline_html(runs: Sequence[RunEntry], moves: Sequence[AliasMoveRecord], grafana_url: str | None) -> str:
    link = ""
    if grafana_url and urlsplit(grafana_url).scheme in ("http", "https"):
        href = f"{grafana_url.rstrip('/')}/d/{DRIFT_DASHBOARD_UID}"
        link = f' The same over any range, with F1 and alerts: <a href="{_e(href)}">Grafana, Model &amp; drift</a>.'
    return (
        "<p><b>Drift over time</b>: each kind's score (line and dots) against its threshold (dashed); dashed orange: "
        f"a run filed a retrain; green: the champion moved (new version above).{link}</p>"
        f'<figure style="margin: 0 0 1em 0">{timeline_svg(runs, moves)}</figure>'
    )


def _history_html(moves: Sequence[AliasMoveRecord]) -> str:
    """The champion moves as a table, newest first. Trigger and actor come from outside (a trigger may quote a
    lineage, an actor is an API key's name): every value is escaped, and none becomes a link or an attribute."""
    champion = sorted((m for m in moves if m.alias == "champion"), key=lambda m: (m.moved_at, m.id), reverse=True)
    if not champion:
        return "<p><b>Model history</b>: no champion move recorded yet.</p>"
    rows = "".join(
        "<tr>"
        f"<td>{_e(m.moved_at.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S UTC'))}</td>"
        f"<td>{_e(m.from_version or '-')} → {_e(m.to_version or '-')}</td>"
        f"<td>{_e(m.trigger)}</td>"
        f"<td>{_e(m.actor)}</td>"
        "</tr>"
        for m in champion
    )
    header = "".join(f"<th>{_e(h)}</th>" for h in ("when", "champion", "trigger", "who"))
    return (
        f"<p><b>Model history</b>: {len(champion)} champion move(s), newest first (the command "
        "tagwatch history lists the moves of every alias).</p>"
        f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>"
    )


def _kind_cell(kind: dict[str, Any] | None) -> str:
    if not kind:
        return "<td>-</td>"
    score = kind.get("score")
    text = f"{_fmt(score)} / {_fmt(kind.get('threshold'))}"
    if kind.get("detected"):
        return f"<td class=drift><b>DRIFT</b> {_e(text)}</td>"
    if not kind.get("enough_data"):
        return f"<td class=little>{_e(text)} <i>(little data)</i></td>"
    return f"<td class=ok>ok {_e(text)}</td>"


def _summary_html(result: dict[str, Any]) -> str:
    rows = []
    for kind in KINDS:
        k = result["kinds"][kind]
        rows.append(
            "<tr><td>" + _e(kind) + "</td>" + _kind_cell(k) + "<td>" + _e("; ".join(k["reasons"]) or "-") + "</td></tr>"
        )
    sizes = ", ".join(f"{_e(k)}: {_e(v)}" for k, v in result["sizes"].items())
    return (
        f"<p>{sizes}</p><table><thead><tr><th>kind</th><th>verdict</th><th>reasons</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table><p>The window was too small for the Evidently report.</p>"
    )


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }}
td.num {{ text-align: right; }}
td.drift {{ background: #fdd; }} td.ok {{ background: #efe; }} td.little {{ background: #eee; }}
</style></head>
<body><h1>{_e(title)}</h1>
{body}
</body></html>
"""
