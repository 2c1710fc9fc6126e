"""Generate the Grafana dashboards of the stack as JSON, from plain dicts.

    python -m dashboards.build          # (re)write dashboards/json/*.json
    python -m dashboards.build --check  # exit 1 if the committed JSON is not what this would write

Three dashboards, linked to each other and to the drift reports:

- ``tagwatch-service``: traffic, errors, latency, replicas, the served model, the request log's health;
- ``tagwatch-model-drift``: drift scores against their thresholds, detected and confirmed drift, F1, score
  distributions, the monitor's runs, and a table of the latest drift runs (PostgreSQL) linked to their reports;
- ``tagwatch-retraining``: the champion, retrains by result, their duration, promotions and rejections as
  annotations, and a table of retrains (PostgreSQL).

All three carry the champion's moves (promotions, rollbacks: ``alias_moves`` in PostgreSQL) as annotations.

Panels query Prometheus (the recording rules of ``prometheus/recording.rules.yml`` where they fit) and the request-log
database, each by the datasource uid that ``provisioning/datasources/datasources.yml`` gives it.
``dashboard_queries()`` and ``sql_queries()`` list every query, Grafana's variables and macros replaced by concrete
values, for tests that run them against a live Prometheus or a migrated database.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

Panel = dict[str, Any]
Target = dict[str, Any]

JSON_DIR = Path(__file__).resolve().parent / "json"

PROMETHEUS = {"type": "prometheus", "uid": "tagwatch-prometheus"}
POSTGRES = {"type": "grafana-postgresql-datasource", "uid": "tagwatch-postgres"}

GRAFANA_URL = "http://localhost:3000"
REPORTS_URL = "http://localhost:8080/reports/"

SERVICE_UID = "tagwatch-service"
DRIFT_UID = "tagwatch-model-drift"
RETRAINING_UID = "tagwatch-retraining"
TITLES = {
    SERVICE_UID: "tagwatch: service",
    DRIFT_UID: "tagwatch: model & drift",
    RETRAINING_UID: "tagwatch: retraining",
}
FILES = {SERVICE_UID: "service.json", DRIFT_UID: "model-drift.json", RETRAINING_UID: "retraining.json"}

KINDS = ("data", "concept", "feature")  # as in monitor.metrics.KINDS
GRID_WIDTH = 24

# What a live test substitutes for Grafana's own variables before sending an expression to Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}

API_UP = 'up{job="tagwatch-api"}'
MONITOR_UP = 'up{job="tagwatch-monitor"}'


# ------------------------------------------------------------------------------------------------------ queries


def prom(expr: str, legend: str = "__auto", *, instant: bool = False, fmt: str = "time_series") -> Target:
    """A Prometheus target (the panel sets its refId)."""
    return {
        "datasource": PROMETHEUS,
        "editorMode": "code",
        "expr": expr,
        "format": fmt,
        "instant": instant,
        "legendFormat": legend,
        "range": not instant,
    }


def sql(query: str) -> Target:
    """A PostgreSQL target returning a table."""
    return {
        "datasource": POSTGRES,
        "editorMode": "code",
        "format": "table",
        "rawQuery": True,
        "rawSql": textwrap.dedent(query).strip(),
    }


# ------------------------------------------------------------------------------------------------------- panels


def _panel(
    kind: str,
    title: str,
    targets: Sequence[Target],
    *,
    description: str,
    defaults: dict[str, Any],
    options: dict[str, Any],
    overrides: Sequence[dict[str, Any]] = (),
    transformations: Sequence[dict[str, Any]] = (),
) -> Panel:
    datasources = {t["datasource"]["uid"] for t in targets}
    if len(datasources) != 1:
        raise ValueError(f"panel {title!r}: one datasource per panel, got {sorted(datasources)}")
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": targets[0]["datasource"],
        "targets": [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": {k: v for k, v in defaults.items() if v is not None}, "overrides": list(overrides)},
        "options": options,
        "transformations": list(transformations),
    }


def _thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for value, color in steps]}


def timeseries(
    title: str,
    *targets: Target,
    description: str,
    unit: str,
    max_: float | None = None,
    stacked: bool = False,
    bars: bool = False,
    threshold: float | None = None,
    overrides: Sequence[dict[str, Any]] = (),
) -> Panel:
    """A time series from 0 (to ``max_``); ``threshold`` draws a red dashed line at that value."""
    custom = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else 35 if stacked else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": True,
        "stacking": {"group": "A", "mode": "normal" if stacked else "none"},
        "thresholdsStyle": {"mode": "off" if threshold is None else "dashed"},
    }
    steps = [(None, "green")] + ([] if threshold is None else [(threshold, "red")])
    defaults = {
        "color": {"mode": "palette-classic"},
        "custom": custom,
        "max": max_,
        "min": 0,
        "thresholds": _thresholds(*steps),
        "unit": unit,
    }
    options = {
        "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return _panel(
        "timeseries", title, targets, description=description, defaults=defaults, options=options, overrides=overrides
    )


def stat(
    title: str,
    *targets: Target,
    description: str,
    unit: str = "short",
    text_mode: str = "auto",
    thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),),
    mappings: Sequence[dict[str, Any]] = (),
    no_value: str | None = None,
    overrides: Sequence[dict[str, Any]] = (),
) -> Panel:
    """The last value of every series; ``text_mode="name"`` shows the legend (e.g. a version label) instead."""
    defaults = {
        "color": {"mode": "thresholds"},
        "mappings": list(mappings),
        "noValue": no_value,
        "thresholds": _thresholds(*thresholds),
        "unit": unit,
    }
    options = {
        "colorMode": "value",
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "textMode": text_mode,
    }
    return _panel(
        "stat", title, targets, description=description, defaults=defaults, options=options, overrides=overrides
    )


def table(
    title: str,
    *targets: Target,
    description: str,
    decimals: int | None = None,
    overrides: Sequence[dict[str, Any]] = (),
    transformations: Sequence[dict[str, Any]] = (),
) -> Panel:
    return _panel(
        "table",
        title,
        targets,
        description=description,
        defaults={"custom": {"align": "auto", "filterable": False}, "decimals": decimals},
        options={"cellHeight": "sm", "showHeader": True},
        overrides=overrides,
        transformations=transformations,
    )


def heatmap(title: str, histogram: str, *, description: str) -> Panel:
    """The distribution over time of a Prometheus histogram: observations per second in each bucket (Grafana's
    heatmap format turns the cumulative buckets into per-bucket counts)."""
    target = prom(f"sum by (le) (rate({histogram}_bucket[$__rate_interval]))", "{{le}}", fmt="heatmap")
    options = {
        "calculate": False,
        "cellGap": 1,
        "color": {"exponent": 0.5, "mode": "scheme", "scale": "exponential", "scheme": "Oranges", "steps": 64},
        "legend": {"show": True},
        "rowsFrame": {"layout": "auto"},
        "tooltip": {"mode": "single", "yHistogram": True},
        "yAxis": {"axisPlacement": "left", "unit": "none"},
    }
    defaults = {"custom": {"scaleDistribution": {"type": "linear"}}}
    return _panel("heatmap", title, [target], description=description, defaults=defaults, options=options)


def state_timeline(title: str, *targets: Target, description: str, mappings: Sequence[dict[str, Any]]) -> Panel:
    """0/1 series as coloured bands (green below 1, red from 1), labelled through ``mappings``."""
    defaults = {
        "color": {"mode": "thresholds"},
        "custom": {"fillOpacity": 80, "lineWidth": 0},
        "mappings": list(mappings),
        "thresholds": _thresholds((None, "green"), (1, "red")),
    }
    options = {
        "alignValue": "left",
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
        "mergeValues": True,
        "rowHeight": 0.9,
        "showValue": "auto",
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return _panel("state-timeline", title, targets, description=description, defaults=defaults, options=options)


def value_text(mapping: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """A value mapping: raw value -> (text shown, colour)."""
    options = {
        raw: {"color": color, "index": i, "text": text} for i, (raw, (text, color)) in enumerate(mapping.items())
    }
    return {"type": "value", "options": options}


def override(name: str, *properties: tuple[str, Any], regex: bool = False) -> dict[str, Any]:
    """Field properties for the series or column ``name`` (a regular expression matching the whole name if
    ``regex``)."""
    return {
        "matcher": {"id": "byRegexp" if regex else "byName", "options": name},
        "properties": [{"id": prop, "value": value} for prop, value in properties],
    }


def threshold_line(name: str = "threshold", *, regex: bool = False) -> dict[str, Any]:
    """Draw the series ``name`` as a red dashed line without fill: a threshold next to the value it bounds."""
    red = {"fixedColor": "red", "mode": "fixed"}
    dash = {"dash": [10, 10], "fill": "dash"}
    return override(name, ("color", red), ("custom.lineStyle", dash), ("custom.fillOpacity", 0), regex=regex)


def colors(**by_name: str) -> list[dict[str, Any]]:
    """A fixed colour per series name."""
    return [override(name, ("color", {"fixedColor": color, "mode": "fixed"})) for name, color in by_name.items()]


def colored_text(column: str, mapping: dict[str, tuple[str, str]], *, regex: bool = False) -> dict[str, Any]:
    """Table cells of ``column`` shown through ``mapping`` in their colour."""
    cells = {"type": "color-text"}
    return override(column, ("mappings", [value_text(mapping)]), ("custom.cellOptions", cells), regex=regex)


def report_link(column: str = "Report") -> dict[str, Any]:
    """Table cells of ``column`` (a report file name) link to the report the service serves."""
    link = {"targetBlank": True, "title": "Open the drift report", "url": REPORTS_URL + "${__value.raw}"}
    return override(column, ("links", [link]))


class Layout:
    """Places panels in lines across the 24 grid columns, top to bottom, and numbers them."""

    def __init__(self) -> None:
        self.panels: list[Panel] = []
        self._y = 0

    def row(self, title: str) -> None:
        self.panels.append(
            {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": self._at(0, 24, 1)}
        )
        self._y += 1

    def line(self, *panels: Panel, height: int = 8, widths: Sequence[int] | None = None) -> None:
        """One line of panels, the full width shared equally unless ``widths`` says otherwise."""
        widths = widths or [GRID_WIDTH // len(panels)] * len(panels)
        if len(widths) != len(panels) or sum(widths) > GRID_WIDTH:
            raise ValueError(f"widths {widths} do not fit {len(panels)} panels in {GRID_WIDTH} columns")
        x = 0
        for width, panel in zip(widths, panels, strict=True):
            panel["gridPos"] = self._at(x, width, height)
            self.panels.append(panel)
            x += width
        self._y += height

    def _at(self, x: int, w: int, h: int) -> dict[str, int]:
        return {"h": h, "w": w, "x": x, "y": self._y}

    def done(self) -> list[Panel]:
        for number, panel in enumerate(self.panels, start=1):
            panel["id"] = number
        return self.panels


# -------------------------------------------------------------------------------------------------- dashboards


def links(uid: str) -> list[dict[str, Any]]:
    """Links to the other two dashboards (keeping the time range) and to the drift reports."""
    link = {"asDropdown": False, "includeVars": False, "tags": [], "tooltip": "", "type": "link"}
    boards = [
        {
            **link,
            "icon": "dashboard",
            "keepTime": True,
            "targetBlank": False,
            "title": title,
            "url": f"{GRAFANA_URL}/d/{other}",
        }
        for other, title in TITLES.items()
        if other != uid
    ]
    reports = {"icon": "doc", "keepTime": False, "targetBlank": True, "title": "Drift reports", "url": REPORTS_URL}
    return [*boards, {**link, **reports}]


def retrain_annotations() -> list[dict[str, Any]]:
    """Promotions and rejections of challengers as annotations, from the retrain counter. ``increase`` rather than
    ``changes``: a monitor restart resets the counter, which ``changes`` would show as an event."""
    events = (
        ("promoted", "green", "Promotions", "Challenger promoted", "A retrain promoted its challenger."),
        ("rejected", "orange", "Rejections", "Challenger rejected", "A retrain kept the champion."),
    )
    return [
        {
            "datasource": PROMETHEUS,
            "enable": True,
            "expr": f'increase(tagwatch_retrains_total{{result="{result}"}}[2m]) > 0',
            "hide": False,
            "iconColor": color,
            "name": name,
            "step": "60s",
            "tagKeys": "result",
            "textFormat": text,
            "titleFormat": title,
            "useValueForTime": False,
        }
        for result, color, name, title, text in events
    ]


# Every move of the champion alias (tagwatch.history): promotions by the monitor or the CLI, rollbacks, with the
# trigger and who. Grafana shows ``text`` as the tooltip and ``tags`` (comma-separated) as tags.
CHAMPION_MOVES_SQL = """
    SELECT
      m.moved_at AS time,
      'champion ' || coalesce(m.from_version, '-') || ' → ' || coalesce(m.to_version, '-')
        || ' (' || m.trigger || ', ' || m.actor || ')' AS text,
      'champion,' || m.model_name AS tags
    FROM alias_moves AS m
    WHERE m.alias = 'champion' AND $__timeFilter(m.moved_at)
    ORDER BY m.moved_at
    """


def champion_annotation() -> dict[str, Any]:
    """The champion's moves (alias_moves, PostgreSQL) as annotations: which version served from when, and why."""
    return {
        "datasource": POSTGRES,
        "enable": True,
        "hide": False,
        "iconColor": "purple",
        "name": "Champion moves",
        "target": {**sql(CHAMPION_MOVES_SQL), "refId": "Anno"},
    }


def dashboard(uid: str, description: str, layout: Layout, annotations: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": TITLES[uid],
        "description": description,
        "tags": ["tagwatch"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "timezone": "browser",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "refresh": "30s",
        "links": links(uid),
        "annotations": {"list": list(annotations)},
        "templating": {"list": []},
        "panels": layout.done(),
    }


# The service ----------------------------------------------------------------------------------------------------


def service_dashboard() -> dict[str, Any]:
    lay = Layout()
    lay.row("Traffic")
    lay.line(
        timeseries(
            "Requests/s by route and status",
            prom("sum by (route, status_class) (tagwatch:http_requests:rate5m)", "{{route}} {{status_class}}"),
            description="HTTP requests answered per second (5m rate), all replicas.",
            unit="reqps",
            stacked=True,
        ),
        timeseries(
            "5xx ratio",
            prom("tagwatch:http_request_errors:ratio_rate5m", "{{job}}"),
            description="Share of requests answered with a 5xx status (5m rate). The dashed line is at 5%.",
            unit="percentunit",
            threshold=0.05,
        ),
        timeseries(
            "Refused API keys (per 5m)",
            prom(
                "sum by (route, reason) (increase(tagwatch_auth_failures_total[5m]))",
                "{{route}} {{reason}}",
            ),
            description="Requests refused for their API key, all replicas: missing or malformed Authorization "
            "header (401), a token that is no configured key (403). A steady stream of 'invalid' is a client with "
            "a rotated-out key, or someone guessing.",
            unit="short",
            bars=True,
        ),
    )
    lay.line(
        timeseries(
            "Prediction latency p50 / p95 / p99",
            prom("tagwatch:http_request_duration_seconds:p50_rate5m", "p50"),
            prom("tagwatch:http_request_duration_seconds:p95_rate5m", "p95"),
            prom("tagwatch:http_request_duration_seconds:p99_rate5m", "p99"),
            description="Latency quantiles of the /predict routes over 5 minutes, all replicas.",
            unit="s",
        ),
        timeseries(
            "Latency p95 by route",
            prom(
                "histogram_quantile(0.95,"
                " sum by (route, le) (rate(tagwatch_http_request_duration_seconds_bucket[5m])))",
                "{{route}}",
            ),
            description="95th percentile of the answer time of every route over 5 minutes, all replicas.",
            unit="s",
        ),
    )
    lay.line(
        timeseries(
            "Predictions/s",
            prom("sum(tagwatch:predictions:rate5m)", "all replicas"),
            prom("sum by (instance) (rate(tagwatch_predictions_total[5m]))", "{{instance}}"),
            description="Questions the model suggested tags for, per second (5m rate).",
            unit="ops",
        ),
        timeseries(
            "Feedback/s",
            prom("sum(rate(tagwatch_feedback_total[5m]))", "all replicas"),
            prom("sum by (instance) (rate(tagwatch_feedback_total[5m]))", "{{instance}}"),
            description="Feedback records (the true tags of logged requests) accepted per second (5m rate).",
            unit="ops",
        ),
        stat(
            "Replicas up",
            prom(f"sum({API_UP})", "up", instant=True),
            prom(f"count({API_UP})", "discovered", instant=True),
            description="API replicas Prometheus scrapes successfully, and those its DNS discovery found.",
            text_mode="value_and_name",
            thresholds=[(None, "red"), (1, "green")],
            no_value="0",
        ),
        widths=(9, 9, 6),
    )
    lay.row("Served model")
    lay.line(
        table(
            "Model version served per replica",
            prom("tagwatch_model_info == 1", instant=True, fmt="table"),
            description="The registry version each replica serves now (tagwatch_model_info).",
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True, "Value": True, "__name__": True, "job": True},
                        "indexByName": {"instance": 0, "version": 1, "name": 2},
                        "renameByName": {"instance": "Replica", "name": "Model", "version": "Version"},
                    },
                }
            ],
        ),
        stat(
            "Model loaded",
            prom("tagwatch_model_loaded_timestamp_seconds * 1000", "{{instance}}", instant=True),
            description="When each replica loaded the model it serves.",
            unit="dateTimeFromNow",
            text_mode="value_and_name",
        ),
        stat(
            "Model reloads in range by result",
            prom("sum by (result) (increase(tagwatch_model_reloads_total[$__range]))", "{{result}}", instant=True),
            description="Model (re)loads after the champion alias moved, over the dashboard's time range.",
            text_mode="value_and_name",
            no_value="none",
            overrides=colors(success="green", failure="red"),
        ),
        height=6,
        widths=(10, 7, 7),
    )
    lay.row("Request log")
    lay.line(
        timeseries(
            "Queue depth vs capacity",
            prom("tagwatch_request_log_queue_depth", "depth {{instance}}"),
            prom("tagwatch_request_log_queue_capacity", "capacity {{instance}}"),
            description="Rows waiting in each replica's request-log queue, and the queue's capacity (dashed): a full "
            "queue spills rows to disk.",
            unit="short",
            overrides=[threshold_line("capacity .*", regex=True)],
        ),
        timeseries(
            "Rows written/s by table",
            prom("sum by (table) (rate(tagwatch_request_log_rows_written_total[5m]))", "{{table}}"),
            description="Rows the request log wrote to the database per second (5m rate), all replicas.",
            unit="rowsps",
        ),
        timeseries(
            "Seconds since last write",
            prom("time() - (tagwatch_request_log_last_write_timestamp_seconds > 0)", "{{instance}}"),
            description="Since each replica's request log last wrote a batch (it grows without traffic too).",
            unit="s",
        ),
    )
    lay.line(
        timeseries(
            "Spilled rows (per 5m)",
            prom("sum by (instance) (increase(tagwatch_request_log_rows_spilled_total[5m]))", "{{instance}}"),
            description="Rows written to the local spill file instead of the database (queue full, or stopping while "
            "the database was down).",
            unit="short",
            bars=True,
        ),
        timeseries(
            "Spill pending",
            prom("sum by (instance) (tagwatch_request_log_spill_pending_rows)", "{{instance}}"),
            description="Rows in spill files, still waiting to be written to the database.",
            unit="short",
        ),
        timeseries(
            "Write failures (per 5m)",
            prom("sum by (instance) (increase(tagwatch_request_log_write_failures_total[5m]))", "{{instance}}"),
            description="Batch writes to the database that failed (they are retried).",
            unit="short",
            bars=True,
        ),
    )
    lay.line(
        timeseries(
            "Memory held vs bound",
            prom("tagwatch_request_log_queue_bytes", "held {{instance}}"),
            prom("tagwatch_request_log_queue_capacity_bytes", "bound {{instance}}"),
            description="Estimated memory of the rows each replica's request log holds (queue, the batch being "
            "written or retried), and its bound (dashed): rows that do not fit go to the spill file.",
            unit="bytes",
            overrides=[threshold_line("bound .*", regex=True)],
        ),
        timeseries(
            "Spill on disk vs cap",
            prom("tagwatch_request_log_spill_bytes", "on disk {{instance}}"),
            prom("tagwatch_request_log_spill_capacity_bytes", "cap {{instance}}"),
            description="Bytes of spill files in each replica's spill directory, and the cap (dashed): at the cap, "
            "rows are dropped. Spill files grow while the database is down and shrink as they are replayed.",
            unit="bytes",
            overrides=[threshold_line("cap .*", regex=True)],
        ),
        timeseries(
            "Rows dropped (per 5m)",
            prom(
                "sum by (instance, reason) (increase(tagwatch_request_log_rows_dropped_total[5m]))",
                "{{instance}} {{reason}}",
            ),
            description="Rows lost: neither written to the database nor spilled, because the spill directory was "
            "at its cap (spill_full) or failed (spill_error). Anything above 0 is data the monitor will never see.",
            unit="short",
            bars=True,
            threshold=1,
        ),
    )
    description = "The prediction service: traffic, errors, latency, replicas, the served model and the request log."
    return dashboard(SERVICE_UID, description, lay, [champion_annotation()])


# Model & drift --------------------------------------------------------------------------------------------------

KIND_HELP = {
    "data": "Data drift: ROC AUC of a classifier telling the window's text from the reference's (0.5: no drift).",
    "concept": "Concept drift (questions with feedback): the worst of F1 drop, true-tag drift and emerging tags, "
    "each relative to its own threshold (so the threshold is 1).",
    "feature": "Feature drift (questions with feedback): how much what predicts each tag changed, relative to its "
    "thresholds (so the threshold is 1).",
}
DRIFT_CELLS = {"drift": ("drift", "red"), "no": ("no", "green")}
RETRAIN_CELLS = {"promoted": ("promoted", "green"), "rejected": ("rejected", "orange"), "failed": ("failed", "red")}


def drift_runs_sql() -> str:
    per_kind = "".join(
        f"""
          d.{kind}_score AS "{kind.capitalize()} score",
          CASE WHEN d.{kind}_detected THEN 'drift' ELSE 'no' END AS "{kind.capitalize()} drift","""
        for kind in KINDS
    )
    return f"""
        SELECT
          d.started_at AS "Started",
          d.status AS "Status",
          d.model_version AS "Model",
          d.n_current AS "Questions",
          d.n_labelled AS "Labelled",{per_kind}
          (SELECT string_agg(c.key, ', ' ORDER BY c.key) FROM jsonb_each(d.confirmed) AS c
            WHERE c.value = 'true'::jsonb) AS "Confirmed",
          CASE WHEN d.retrain_triggered THEN coalesce(d.retrain ->> 'result', 'started') ELSE 'no' END AS "Retrain",
          coalesce((SELECT string_agg(r, '; ') FROM jsonb_array_elements_text(d.reasons) AS r), d.error)
            AS "Reasons",
          d.report_path AS "Report"
        FROM drift_runs AS d
        ORDER BY d.started_at DESC
        LIMIT 50
        """


def model_drift_dashboard() -> dict[str, Any]:
    lay = Layout()
    lay.row("Drift")
    lay.line(
        *(
            timeseries(
                f"{kind.capitalize()} drift: score vs threshold",
                prom(f'tagwatch_drift_score{{kind="{kind}"}}', "score"),
                prom(f'tagwatch_drift_threshold{{kind="{kind}"}}', "threshold"),
                description=f"{KIND_HELP[kind]} Drift is detected when the score is above the threshold (dashed).",
                unit="short",
                overrides=[threshold_line()],
            )
            for kind in KINDS
        )
    )
    lay.line(
        state_timeline(
            "Drift detected (latest window) and confirmed (policy)",
            prom("max by (kind) (tagwatch_drift_detected)", "{{kind}} detected"),
            prom("max by (kind) (tagwatch_drift_confirmed)", "{{kind}} confirmed"),
            description="Detected: the latest window's score is above the threshold. Confirmed: the policy saw it in "
            "enough consecutive windows (this can start a retrain).",
            mappings=[value_text({"0": ("no", "green"), "1": ("drift", "red")})],
        ),
        height=7,
    )
    lay.row("Model quality")
    lay.line(
        timeseries(
            "Micro-F1: feedback vs baseline vs label-free estimate",
            prom("tagwatch_feedback_micro_f1", "on feedback"),
            prom("tagwatch_baseline_micro_f1", "baseline (hold-out)"),
            prom("tagwatch_estimated_micro_f1", "label-free estimate"),
            description="Micro-F1 of the served model on the latest window's feedback, on its own random hold-out "
            "(dashed), and as estimated from the calibrated scores without labels.",
            unit="percentunit",
            max_=1,
            overrides=[threshold_line("baseline (hold-out)")],
        ),
        timeseries(
            "Emerging-tag share",
            prom("tagwatch_emerging_tag_share", "emerging-tag share"),
            description="Share of the latest window's labelled questions carrying a tag the model cannot predict that "
            "is new or far more frequent than in the reference.",
            unit="percentunit",
        ),
    )
    lay.line(
        timeseries(
            "Predicted-tag mix (share over 1h)",
            prom("avg by (tag) (tagwatch:predicted_tags:share_rate1h)", "{{tag}}"),
            description="Share of each suggested tag among all suggestions over the last hour ('other': the tags "
            "outside the model's most frequent ones).",
            unit="percentunit",
            max_=1,
            stacked=True,
        ),
        timeseries(
            "Top score and suggested-tag score",
            prom(
                "histogram_quantile(0.5, sum by (le) (rate(tagwatch_prediction_top_score_bucket[1h])))",
                "median top score",
            ),
            prom(
                "histogram_quantile(0.1, sum by (le) (rate(tagwatch_prediction_top_score_bucket[1h])))", "p10 top score"
            ),
            prom(
                "sum(rate(tagwatch_prediction_score_sum[1h])) / sum(rate(tagwatch_prediction_score_count[1h]))",
                "mean suggested-tag score",
            ),
            description="Calibrated scores over the last hour. A falling top score is an early sign of drift.",
            unit="percentunit",
            max_=1,
        ),
        height=9,
    )
    lay.line(
        heatmap(
            "Suggested-tag score distribution",
            "tagwatch_prediction_score",
            description="Calibrated score of every suggested tag: suggestions per second in each score bucket.",
        ),
        heatmap(
            "Top score distribution",
            "tagwatch_prediction_top_score",
            description="Highest calibrated score per question: questions per second in each score bucket.",
        ),
    )
    lay.row("Monitor")
    lay.line(
        stat(
            "Since last successful run",
            prom("time() - (tagwatch_monitor_last_success_timestamp_seconds > 0)", "since success", instant=True),
            prom("2 * tagwatch_monitor_interval_seconds", "stale after", instant=True),
            description="Since a monitor run last finished successfully; the monitor is stale after two scheduled "
            "intervals.",
            unit="s",
            text_mode="value_and_name",
            no_value="never",
        ),
        stat(
            "Monitor up",
            prom(MONITOR_UP, "monitor", instant=True),
            description="Whether Prometheus scrapes the monitor.",
            thresholds=[(None, "red"), (1, "green")],
            mappings=[value_text({"0": ("down", "red"), "1": ("up", "green")})],
            no_value="down",
        ),
        timeseries(
            "Window sizes",
            prom("tagwatch_monitor_window_questions", "{{part}}"),
            description="Questions in the latest window the monitor looked at: all, and those with feedback.",
            unit="short",
        ),
        height=6,
        widths=(6, 4, 14),
    )
    lay.line(
        timeseries(
            "Monitor runs by status (per hour)",
            prom("sum by (status) (increase(tagwatch_monitor_runs_total[1h]))", "{{status}}"),
            description="Monitor runs over the last hour: ok, skipped (window too small), failed.",
            unit="short",
            overrides=colors(ok="green", skipped="yellow", failed="red"),
        ),
        timeseries(
            "Monitor run duration",
            prom(
                "sum(rate(tagwatch_monitor_run_duration_seconds_sum[1h]))"
                " / sum(rate(tagwatch_monitor_run_duration_seconds_count[1h]))",
                "average",
            ),
            prom(
                "histogram_quantile(0.95, sum by (le) (rate(tagwatch_monitor_run_duration_seconds_bucket[1h])))", "p95"
            ),
            description="Duration of a monitor run (detection, report, decision; not the retrain), over 1h.",
            unit="s",
        ),
    )
    lay.row("Drift runs")
    lay.line(
        table(
            "Latest drift runs",
            sql(drift_runs_sql()),
            description="The 50 latest monitor runs in the request-log database (drift_runs). Click a report to open "
            "it.",
            decimals=4,
            overrides=[
                report_link(),
                colored_text(".* drift", DRIFT_CELLS, regex=True),
                colored_text("Retrain", RETRAIN_CELLS),
                override("Reasons", ("custom.width", 320)),
            ],
        ),
        height=11,
    )
    description = (
        "Drift of the served model: scores against thresholds, detected and confirmed drift, F1, score distributions, "
        "the monitor's runs and their reports."
    )
    return dashboard(DRIFT_UID, description, lay, [*retrain_annotations(), champion_annotation()])


# Retraining -----------------------------------------------------------------------------------------------------

RETRAINS_SQL = """
    SELECT
      d.started_at AS "Run started",
      d.retrain ->> 'trigger' AS "Trigger",
      d.retrain ->> 'result' AS "Result",
      d.retrain ->> 'parent_version' AS "Parent",
      d.retrain ->> 'challenger_version' AS "Challenger",
      d.retrain ->> 'champion_version' AS "Champion after",
      (d.retrain -> 'comparison' ->> 'champion_micro_f1')::double precision AS "Champion F1",
      (d.retrain -> 'comparison' ->> 'challenger_micro_f1')::double precision AS "Challenger F1",
      (d.retrain -> 'comparison' ->> 'n_holdout')::integer AS "Hold-out",
      (d.retrain ->> 'seconds')::double precision AS "Seconds",
      coalesce(
        (SELECT string_agg(r, '; ') FROM jsonb_array_elements_text(d.retrain -> 'comparison' -> 'reasons') AS r),
        d.retrain ->> 'error'
      ) AS "Why",
      d.report_path AS "Report"
    FROM drift_runs AS d
    WHERE d.retrain_triggered
    ORDER BY d.started_at DESC
    LIMIT 50
    """


def retraining_dashboard() -> dict[str, Any]:
    lay = Layout()
    lay.row("Champion")
    lay.line(
        stat(
            "Champion (monitor)",
            prom("tagwatch_monitor_champion_info == 1", "{{version}}", instant=True),
            description="The registry version the monitor measures drift against: the champion.",
            text_mode="name",
            no_value="none",
        ),
        stat(
            "Served versions",
            prom("count by (version) (tagwatch_model_info == 1)", "version {{version}}", instant=True),
            description="Replicas serving each version: after a promotion every replica reloads the champion.",
            text_mode="value_and_name",
        ),
        stat(
            "Retrains in range by result",
            prom("sum by (result) (increase(tagwatch_retrains_total[$__range]))", "{{result}}", instant=True),
            description="Retrains over the dashboard's time range: promoted, rejected (the champion stays), failed.",
            text_mode="value_and_name",
            overrides=colors(promoted="green", rejected="orange", failed="red"),
        ),
        stat(
            "Time since last retrain",
            prom("time() - (tagwatch_retrain_last_timestamp_seconds > 0)", "since last retrain", instant=True),
            description="Since the latest retrain finished, whatever its result (as the running monitor knows it).",
            unit="s",
            no_value="never",
        ),
        height=5,
        widths=(5, 6, 6, 7),
    )
    lay.line(
        stat(
            "Retrain duration in range",
            prom(
                "sum(increase(tagwatch_retrain_duration_seconds_sum[$__range]))"
                " / sum(increase(tagwatch_retrain_duration_seconds_count[$__range]))",
                "average",
                instant=True,
            ),
            *(
                prom(
                    f"histogram_quantile({q},"
                    " sum by (le) (increase(tagwatch_retrain_duration_seconds_bucket[$__range])))",
                    f"p{round(q * 100)}",
                    instant=True,
                )
                for q in (0.5, 0.95)
            ),
            description="Training the challenger and comparing it with the champion, over the dashboard's time range "
            "(quantiles are interpolated within the histogram's buckets).",
            unit="s",
            text_mode="value_and_name",
            no_value="no retrain",
        ),
        timeseries(
            "Champion micro-F1: feedback vs baseline",
            prom("tagwatch_feedback_micro_f1", "on feedback"),
            prom("tagwatch_baseline_micro_f1", "baseline (hold-out)"),
            prom("tagwatch_estimated_micro_f1", "label-free estimate"),
            description="F1 of the served model on feedback against its own baseline (dashed); the annotations mark "
            "promotions (green) and rejections (orange).",
            unit="percentunit",
            max_=1,
            overrides=[threshold_line("baseline (hold-out)")],
        ),
        widths=(8, 16),
    )
    lay.row("Retrains")
    lay.line(
        table(
            "Retrains",
            sql(RETRAINS_SQL),
            description="Monitor runs that started a retrain (drift_runs.retrain_triggered), newest first: the "
            "challenger, its parent, the hold-out comparison and why it was promoted or not.",
            decimals=4,
            overrides=[report_link(), colored_text("Result", RETRAIN_CELLS), override("Why", ("custom.width", 360))],
        ),
        height=11,
    )
    description = (
        "Retraining: the champion, retrains by result and duration, promotions and rejections, and the history of "
        "retrains with their comparisons."
    )
    return dashboard(RETRAINING_UID, description, lay, [*retrain_annotations(), champion_annotation()])


# ------------------------------------------------------------------------------------------------------- output


def build() -> dict[str, dict[str, Any]]:
    """Every dashboard, by file name."""
    boards = (service_dashboard(), model_drift_dashboard(), retraining_dashboard())
    return {FILES[board["uid"]]: board for board in boards}


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


def _targets(board: dict[str, Any]) -> Iterator[tuple[str, Target]]:
    """(panel title, target) of every query of ``board``; annotations are titled ``annotation: <name>`` (a Prometheus
    annotation is its own target, an SQL one has a ``target``)."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target
    for annotation in board["annotations"]["list"]:
        yield f"annotation: {annotation['name']}", annotation.get("target", annotation)


def substitute(expr: str) -> str:
    """``expr`` with Grafana's variables replaced by concrete values (longest names first)."""
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    return expr


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL) of every Prometheus query of every dashboard, annotations included,
    with Grafana's variables replaced by concrete values."""
    return [
        (board["uid"], title, substitute(target["expr"]))
        for board in build().values()
        for title, target in _targets(board)
        if target["datasource"]["uid"] == PROMETHEUS["uid"]
    ]


# Grafana's PostgreSQL macro for the dashboard's time range: ``$__timeFilter(column)``.
_TIME_FILTER = re.compile(r"\$__timeFilter\(([^()]+)\)")


def substitute_sql(query: str, *, since: datetime, until: datetime) -> str:
    """``query`` with ``$__timeFilter(column)`` expanded as Grafana does for the range [since, until]."""

    def expand(found: re.Match[str]) -> str:
        return f"{found.group(1).strip()} BETWEEN '{_utc(since)}' AND '{_utc(until)}'"

    return _TIME_FILTER.sub(expand, query)


def _utc(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError(f"{at.isoformat()} is naive: give a timezone-aware datetime")
    return f"{at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def sql_queries(*, since: datetime | None = None, until: datetime | None = None) -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, SQL) of every PostgreSQL query of every dashboard, annotations included, with
    ``$__timeFilter`` expanded for [since, until] (default: the dashboards' default range, the last 6 hours)."""
    until = until or datetime.now(UTC)
    since = since or until - timedelta(hours=6)
    return [
        (board["uid"], title, substitute_sql(target["rawSql"], since=since, until=until))
        for board in build().values()
        for title, target in _targets(board)
        if target["datasource"]["uid"] == POSTGRES["uid"]
    ]


def stale_files(out_dir: Path = JSON_DIR) -> list[str]:
    """JSON files of ``out_dir`` that differ from what ``write`` would write: changed, missing, or produced by no
    dashboard."""
    wanted = {name: render(board) for name, board in build().items()}
    changed = [
        name
        for name, text in wanted.items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text(encoding="utf-8") != text
    ]
    unknown = [p.name for p in out_dir.glob("*.json") if p.name not in wanted]
    return sorted(changed + unknown)


def write(out_dir: Path = JSON_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, board in build().items():
        path = out_dir / name
        path.write_text(render(board), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.build", description="Generate the Grafana dashboards.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the JSON files differ from the generator's")
    parser.add_argument("--out", type=Path, default=JSON_DIR, help="output directory (default: dashboards/json)")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.out)
        if stale:
            print(f"out of date in {args.out}: {', '.join(stale)}; run `python -m dashboards.build`", file=sys.stderr)
            return 1
        print(f"{args.out}: up to date")
        return 0
    for path in write(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
