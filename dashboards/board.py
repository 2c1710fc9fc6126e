"""What every dashboard shares: its uid, title and file, links to the other two and to the drift reports, and the
dashboard frame around its panels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dashboards.panels import REPORTS_URL, Layout

GRAFANA_URL = "http://localhost:3000"

SERVICE_UID = "tagwatch-service"
DRIFT_UID = "tagwatch-model-drift"
RETRAINING_UID = "tagwatch-retraining"
TITLES = {
    SERVICE_UID: "tagwatch: service",
    DRIFT_UID: "tagwatch: model & drift",
    RETRAINING_UID: "tagwatch: retraining",
}
FILES = {SERVICE_UID: "service.json", DRIFT_UID: "model-drift.json", RETRAINING_UID: "retraining.json"}


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
