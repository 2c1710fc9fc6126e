"""dashboards.queries: every query concrete, every exported metric on a dashboard, every recording rule used defined,
the PromQL parsed by promtool, the SQL run on a migrated PostgreSQL reading only the tables it should."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.model_drift import KINDS
from dashboards.queries import dashboard_queries, sql_queries, substitute, substitute_sql
from monitor.metrics import MonitorMetrics
from retrain.metrics import RetrainMetrics
from service.metrics import ServiceMetrics
from tests.dashboards.committed import ROOT, UIDS, boards, data_panels
from tests.support import require_tool

RECORDING_RULES = ROOT / "prometheus" / "recording.rules.yml"

# The recording rules of the shared design: what the dashboards are checked against while
# prometheus/recording.rules.yml does not exist (once it does, the file is the reference).
DESIGN_RULES = {
    "tagwatch:http_requests:rate5m": "sum by (job, route, status_class) (rate(tagwatch_http_requests_total[5m]))",
    "tagwatch:http_request_errors:ratio_rate5m": (
        'sum by (job) (rate(tagwatch_http_requests_total{status_class="5xx"}[5m]))'
        " / sum by (job) (rate(tagwatch_http_requests_total[5m]))"
    ),
    **{
        f"tagwatch:http_request_duration_seconds:p{q}_rate5m": (
            f"histogram_quantile(0.{q}, sum by (job, le) "
            '(rate(tagwatch_http_request_duration_seconds_bucket{route=~"/predict.*"}[5m])))'
        )
        for q in (50, 95, 99)
    },
    "tagwatch:predictions:rate5m": "sum by (job) (rate(tagwatch_predictions_total[5m]))",
    "tagwatch:predicted_tags:share_rate1h": (
        "sum by (tag) (rate(tagwatch_predicted_tags_total[1h]))"
        " / ignoring (tag) group_left sum(rate(tagwatch_predicted_tags_total[1h]))"
    ),
}

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}


def recording_rules() -> dict[str, str]:
    """Recording rule name -> expression: from prometheus/recording.rules.yml, or the shared design without it."""
    if not RECORDING_RULES.is_file():
        return DESIGN_RULES
    config = yaml.safe_load(RECORDING_RULES.read_text(encoding="utf-8"))
    return {rule["record"]: rule["expr"] for group in config["groups"] for rule in group["rules"] if "record" in rule}


def names_in(expr: str) -> set[str]:
    """Identifiers of an expression (metric names among them; a superset is fine for membership checks)."""
    return set(METRIC_NAME.findall(re.sub(r'"[^"]*"', '""', expr)))


def exported_metrics(*, ours_only: bool = True) -> dict[str, tuple[str, ...]]:
    """Every metric family the code exports -> the series names Prometheus stores for it. ``ours_only``: the
    tagwatch_* families, without the standard process_* and python_* ones every registry carries too."""
    out: dict[str, tuple[str, ...]] = {}
    for registry in (ServiceMetrics().registry, MonitorMetrics().registry, RetrainMetrics().registry):
        for family in registry.collect():
            if family.name.startswith("tagwatch_") or not ours_only:
                out[family.name] = tuple(family.name + suffix for suffix in SUFFIXES[family.type])
    return out


def test_dashboard_queries_are_concrete_promql() -> None:
    queries = dashboard_queries()
    exprs = [expr for _, _, expr in queries]
    committed = [t["expr"] for _, board in boards() for p in data_panels(board) for t in p["targets"] if "expr" in t]
    annotations = [a["expr"] for _, board in boards() for a in board["annotations"]["list"] if "expr" in a]
    assert len(queries) == len(committed) + len(annotations)
    assert {uid for uid, _, _ in queries} == set(UIDS.values())
    for uid, title, expr in queries:
        assert "$" not in expr, (uid, title, expr)
    assert any("$__rate_interval" in e for e in committed)
    assert any("$__range" in e for e in committed)
    assert "sum by (result) (increase(tagwatch_retrains_total[1h]))" in exprs


def test_sql_macros_are_expanded_as_grafana_does() -> None:
    since, until = datetime(2026, 11, 25, 6, tzinfo=UTC), datetime(2026, 11, 25, 12, 30, 5, 999, tzinfo=UTC)
    assert substitute_sql("WHERE a = 1 AND $__timeFilter( m.moved_at )", since=since, until=until) == (
        "WHERE a = 1 AND m.moved_at BETWEEN '2026-11-25T06:00:00Z' AND '2026-11-25T12:30:05Z'"
    )
    queries = sql_queries(since=since, until=until)
    assert {title for _, title, _ in queries} == {"Latest drift runs", "Retrains", "annotation: Champion moves"}
    assert {uid for uid, title, _ in queries if title == "annotation: Champion moves"} == set(UIDS.values())
    for uid, title, query in queries:
        assert "$" not in query, (uid, title)
    with pytest.raises(ValueError, match="naive"):
        sql_queries(since=datetime(2026, 1, 1), until=until)


def test_substitute_replaces_grafana_variables() -> None:
    assert substitute("rate(x[$__rate_interval]) + increase(y[$__range]) + z[$__interval]") == (
        "rate(x[1m]) + increase(y[1h]) + z[1m]"
    )


def test_every_exported_metric_is_on_a_dashboard() -> None:
    rules = recording_rules()
    seen: set[str] = set()
    for _, _, expr in dashboard_queries():
        seen |= names_in(expr)
    # Through recording rules (transitively: a rule may use another).
    expanded: set[str] = set()
    while pending := (seen & rules.keys()) - expanded:
        for record in pending:
            seen |= names_in(rules[record])
        expanded |= pending
    missing = sorted(family for family, series in exported_metrics().items() if not seen & set(series))
    assert missing == [], f"metrics on no dashboard: {missing}"


def test_the_process_series_the_dashboards_use_are_exported() -> None:
    exported = {series for names in exported_metrics(ours_only=False).values() for series in names}
    used = {
        name
        for _, _, expr in dashboard_queries()
        for name in names_in(expr)
        if name.startswith(("process_", "python_"))
    }
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total"} <= used
    assert used <= exported, sorted(used - exported)
    service = {expr for uid, _, expr in dashboard_queries() if uid == UIDS["service.json"]}
    assert any("process_resident_memory_bytes" in e for e in service)
    assert any("rate(process_cpu_seconds_total" in e for e in service)


def test_recording_rules_the_dashboards_use_exist() -> None:
    rules = recording_rules()
    used = {name for _, _, expr in dashboard_queries() for name in names_in(expr) if name.startswith("tagwatch:")}
    assert used, "the dashboards should use the recording rules"
    assert used <= rules.keys(), f"undefined recording rules: {sorted(used - rules.keys())} ({RECORDING_RULES})"


def test_promql_parses(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    exprs = sorted({expr for _, _, expr in dashboard_queries()})
    rules = [{"record": f"dashboard_query_{i}", "expr": expr} for i, expr in enumerate(exprs)]
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


@pytest.mark.postgres
def test_sql_queries_run_on_the_migrated_schema(postgres_url: str) -> None:
    from sqlalchemy.orm import Session

    from retrain.compare import Comparison, HoldoutScores
    from retrain.promote import RetrainOutcome
    from tagwatch.db import DriftRun, make_engine, upgrade_database

    upgrade_database(postgres_url)
    engine = make_engine(postgres_url)
    t0 = datetime(2026, 11, 25, 12, tzinfo=UTC)
    champion, challenger = HoldoutScores(0.41, {}, {}, 250), HoldoutScores(0.55, {}, {}, 250)
    comparison = Comparison(True, champion, challenger, ["micro-F1 0.550 > 0.410 + 0.01"]).to_dict()
    promoted = RetrainOutcome("promoted", "4", "4", "3", comparison, 12.5, trigger="concept").to_dict()
    failed = RetrainOutcome("failed", None, "3", "3", None, 1.0, error="InsufficientData: 12 labelled").to_dict()

    def run(minutes: int, **fields: Any) -> DriftRun:
        kinds = {
            f"{k}_{f}": False if f == "detected" else None for k in KINDS for f in ("score", "threshold", "detected")
        }
        base: dict[str, Any] = {
            "started_at": t0 + timedelta(minutes=minutes),
            "status": "ok",
            "model_version": "3",
            "confirmed": dict.fromkeys(KINDS, False),
            "reasons": [],
            "retrain_triggered": False,
            **kinds,
        }
        return DriftRun(**(base | fields))

    with Session(engine) as session:
        session.add_all(
            [
                run(0, status="failed", model_version=None, error="OperationalError: down"),
                run(
                    10,
                    data_score=0.91,
                    data_threshold=0.7,
                    data_detected=True,
                    confirmed={"data": True, "concept": True, "feature": False},
                    reasons=["data drift confirmed", "concept drift confirmed"],
                    retrain_triggered=True,
                    retrain=promoted,
                    report_path="drift-20261125T121000.000000Z.html",
                ),
                run(20, retrain_triggered=True, retrain=failed, report_path="drift-20261125T122000.000000Z.html"),
                run(30, reasons=["window too small: 3 < 100 requests"], status="skipped"),
            ]
        )
        session.commit()

    from tagwatch.history import record_move

    for minutes, alias, old, new, trigger, actor in (
        (-90, "champion", None, "1", "init", "cli:alice"),  # before the time range
        (5, "challenger", None, "4", "concept", "monitor"),
        (12, "previous", "2", "3", "concept", "monitor"),
        (12, "champion", "3", "4", "concept", "monitor"),
        (40, "champion", "4", "3", "rollback", "cli:bob"),
    ):
        at = t0 + timedelta(minutes=minutes)
        record_move(
            engine,
            model_name="tagwatch",
            alias=alias,
            from_version=old,
            to_version=new,
            trigger=trigger,
            actor=actor,
            at=at,
        )

    results = {}
    relations: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for _, title, query in sql_queries(since=t0 - timedelta(hours=1), until=t0 + timedelta(hours=1)):
            results[title] = [dict(row) for row in conn.exec_driver_sql(query).mappings()]
            plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {query}").scalar_one()
            relations[title] = set(_relation_names(plan))
    engine.dispose()

    assert relations == {
        "Latest drift runs": {"drift_runs"},
        "Retrains": {"drift_runs"},
        "annotation: Champion moves": {"alias_moves"},
    }
    # Grafana's read-only role may read every one of them.
    from tagwatch.roles import REQUEST_LOG_GRANTS

    readable = {table for table, grants in REQUEST_LOG_GRANTS.items() if "SELECT" in grants.get("grafana", ())}
    assert set().union(*relations.values()) <= readable
    moves = results["annotation: Champion moves"]
    assert [m["time"] for m in moves] == [t0 + timedelta(minutes=12), t0 + timedelta(minutes=40)]
    assert [m["text"] for m in moves] == [
        "champion 3 \u2192 4 (concept, monitor)",
        "champion 4 \u2192 3 (rollback, cli:bob)",
    ]
    assert {m["tags"] for m in moves} == {"champion,tagwatch"}

    runs = results["Latest drift runs"]
    assert [r["Status"] for r in runs] == ["skipped", "ok", "ok", "failed"]
    assert runs[0]["Reasons"] == "window too small: 3 < 100 requests"
    assert runs[2]["Data score"] == pytest.approx(0.91)
    assert (runs[2]["Data drift"], runs[2]["Concept drift"]) == ("drift", "no")
    assert runs[2]["Confirmed"] == "concept, data"
    assert runs[2]["Retrain"] == "promoted"
    assert runs[1]["Retrain"] == "failed"
    assert (runs[0]["Retrain"], runs[0]["Confirmed"]) == ("no", None)
    assert runs[3]["Reasons"] == "OperationalError: down"
    assert runs[2]["Report"] == "drift-20261125T121000.000000Z.html"

    retrains = results["Retrains"]
    assert [r["Result"] for r in retrains] == ["failed", "promoted"]
    newer, older = retrains
    assert newer["Why"] == "InsufficientData: 12 labelled"
    assert (newer["Champion F1"], newer["Challenger"]) == (None, None)
    assert (older["Trigger"], older["Parent"], older["Challenger"], older["Champion after"]) == (
        "concept",
        "3",
        "4",
        "4",
    )
    assert (older["Champion F1"], older["Challenger F1"], older["Hold-out"]) == (0.41, 0.55, 250)
    assert older["Seconds"] == pytest.approx(12.5)
    assert older["Why"] == "micro-F1 0.550 > 0.410 + 0.01"


def _relation_names(node: Any) -> Iterator[str]:
    """Every table an EXPLAIN (FORMAT JSON) plan reads."""
    if isinstance(node, dict):
        if "Relation Name" in node:
            yield node["Relation Name"]
        for value in node.values():
            yield from _relation_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _relation_names(item)
