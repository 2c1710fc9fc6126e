"""Builders of Grafana panels and their queries, as plain dicts: Prometheus and PostgreSQL targets, time series, stats,
tables, heatmaps, state timelines, field overrides, and ``Layout`` to place panels on the grid.

Every target names its datasource by the uid that ``provisioning/datasources/datasources.yml`` gives it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

Panel = dict[str, Any]
Target = dict[str, Any]

PROMETHEUS = {"type": "prometheus", "uid": "tagwatch-prometheus"}
POSTGRES = {"type": "grafana-postgresql-datasource", "uid": "tagwatch-postgres"}

REPORTS_URL = "http://localhost:8080/reports/"

GRID_WIDTH = 24

# How a retrain ended, as the drift-runs and retrains tables colour it.
RETRAIN_CELLS = {"promoted": ("promoted", "green"), "rejected": ("rejected", "orange"), "failed": ("failed", "red")}


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
