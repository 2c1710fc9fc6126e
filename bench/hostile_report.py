"""Hostile-input benchmark: the Markdown report (bench/results/hostile.md) of a run's result."""

from __future__ import annotations

from typing import Any

from bench.bodies import Body
from bench.hostile_http import HTTP_CLIENTS, HTTP_NORMAL, HTTP_TARGET_P99_RISE_MS
from bench.hostile_text import REPEAT, TARGET_MS


def _ms(x: float) -> str:
    return f"{x:.1f} ms"


def _legacy(b: Body) -> str:
    if b.legacy_error:
        return b.legacy_error
    if b.legacy_s is None:
        return "not run"
    return f"{b.legacy_s * 1e3:.0f} ms" if b.legacy_s < 1 else f"{b.legacy_s:.1f} s"


def markdown(r: dict[str, Any], bodies: list[Body]) -> str:
    worst = max(b.worst_ms for b in bodies)
    load = r["load_average_1_5_15"]
    lines = [
        "# Hostile-input benchmark",
        "",
        f"Run {r['when']} on {r['machine']} by `make bench` (`python -m bench.hostile`), {r['seconds']:.0f} s. "
        f"Load average (1, 5, 15 min) before {_load(load['before'])}, after the text part "
        f"{_load(load['after_text'])}, after HTTP {_load(load['after_http'])}, at the end {_load(load['after'])}: "
        + (
            "other jobs were running on this machine, so the times are upper bounds."
            if max(load["before"]) > 1.5 or max(load["after"]) > 1.5
            else "the machine was otherwise idle."
        ),
        "",
        f"## Text preparation: `model_texts`, {r['body_chars']:,}-character bodies, "
        f"{r['title_chars']}-character titles",
        "",
        f"New: best of 2 x {REPEAT} runs per body and format (detected as through the API, and forced `html`, "
        f"`markdown`, `text`). Legacy: the old regexes, once, format detected (as the API sees the body). Per family "
        f"the slowest body of each, timed by both. Target: every body <= {TARGET_MS:.0f} ms.",
        "",
        "| family | bodies | slowest body, new | new, worst format | legacy, API path | slowest body, legacy | "
        "legacy, API path | new, API path |",
        "| --- | ---: | --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for family in dict.fromkeys(b.family for b in bodies):
        group = [b for b in bodies if b.family == family]
        new = max(group, key=lambda b: b.worst_ms)
        old = max(group, key=lambda b: b.legacy_s or 0)
        lines.append(
            f"| {_cell(family)} | {len(group)} | {_cell(new.name)} | {_ms(new.worst_ms)} | {_legacy(new)} | "
            f"{_cell(old.name)} | {_legacy(old)} | {_ms(old.new_ms['detected'])} |"
        )
    met = worst <= TARGET_MS
    lines += [
        "",
        f"Slowest hostile body, any format: **{_ms(worst)}** (target <= {TARGET_MS:.0f} ms: "
        f"{'met' if met else 'NOT met'}).",
    ]
    errors = [b for b in bodies if b.legacy_error]
    if errors:
        lines += ["", "Legacy failures: " + "; ".join(f"{_cell(b.name)}: {b.legacy_error}" for b in errors) + "."]
    bundled = r["bundled"]
    lines += [
        "",
        f"## The {bundled['questions']:,} bundled questions",
        "",
        "| implementation | p50 | p99 | max |",
        "| --- | ---: | ---: | ---: |",
        _row("new", bundled["new_ms"]),
    ]
    if "legacy_ms" in bundled:
        lines += [
            _row("legacy", bundled["legacy_ms"]),
            "",
            f"Model texts different from the legacy implementation's: **{bundled['different_model_texts']}** with "
            f"the stored body format, **{bundled['different_model_texts_format_detected']}** with the format "
            "detected (target: 0 and 0).",
        ]
    http = r["http"]
    cost = http["predict_ms_in_process"]
    lines += [
        "",
        f"## HTTP: uvicorn, 1 worker, request log off; {HTTP_NORMAL} real questions sent one at a time, alone and "
        f"while {HTTP_CLIENTS} clients send a load in a loop",
        "",
        "Loads: *benign*, the 8 longest real bodies each repeated to the maximum size (legitimate requests as big as "
        "allowed); *hostile*: " + "; ".join(_cell(n) for n in http["hostile_bodies"]) + ".",
        "",
        f"Model work per request in-process (`TagModel.predict` of one question, best of {REPEAT}; the event loop is "
        f"held that long): real questions p50 {_ms(cost['normal']['p50'])}, max {_ms(cost['normal']['max'])}; benign "
        f"max-size max {_ms(cost['benign_max_size']['max'])}; hostile max {_ms(cost['hostile']['max'])}.",
        "",
        "| text preparation | normal requests | n | p50 | p99 | max | load requests answered | load p50 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode in ("new", "legacy"):
        for phase, p in http.get(mode, {}).items():
            extra = f"{p['load_requests']} {p['load_statuses']} | {_ms(p['load_ms']['p50'])}" if "load_ms" in p else "|"
            lines.append(
                f"| {mode} | {phase.replace('_', ' ')} | {p['requests']} | {_ms(p['p50'])} | {_ms(p['p99'])} | "
                f"{_ms(p['max'])} | {extra} |"
            )
    new = http["new"]
    hostile_p99, benign_p99 = new["under_hostile_load"]["p99"], new["under_benign_max_size_load"]["p99"]
    met = hostile_p99 <= benign_p99 + HTTP_TARGET_P99_RISE_MS
    lines += [
        "",
        f"Normal p99 under hostile load {_ms(hostile_p99)}, under benign max-size load {_ms(benign_p99)}, alone "
        f"{_ms(new['alone']['p99'])}. Target: hostile bodies delay a normal request no more than legitimate bodies "
        f"of the same size do (p99 within {HTTP_TARGET_P99_RISE_MS:.0f} ms of the benign load's): "
        f"{'met' if met else 'NOT met'}.",
        "",
    ]
    return "\n".join(lines)


def _row(name: str, s: dict[str, float]) -> str:
    return f"| {name} | {_ms(s['p50'])} | {_ms(s['p99'])} | {_ms(s['max'])} |"


def _load(values: Any) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _cell(s: str) -> str:
    """A shape's name as Markdown table text (its tags shown, not rendered)."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|").replace("`", "\\`")
