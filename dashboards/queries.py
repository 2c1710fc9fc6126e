"""Every query of every dashboard, Grafana's variables and macros replaced by concrete values, for tests that run them
against a live Prometheus or a migrated database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from dashboards.build import build
from dashboards.panels import POSTGRES, PROMETHEUS, Target

# What a live test substitutes for Grafana's own variables before sending an expression to Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


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
