"""Annotations the dashboards carry: the champion's moves (PostgreSQL) and retrain results (Prometheus)."""

from __future__ import annotations

from typing import Any

from dashboards.panels import POSTGRES, PROMETHEUS, sql


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
