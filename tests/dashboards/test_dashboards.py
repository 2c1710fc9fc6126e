"""The Grafana dashboards: the committed JSON is the generator's, well formed, queries only the provisioned data
sources, and shows every metric the service and the monitor export."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards import build
from monitor.metrics import MonitorMetrics
from service.metrics import ServiceMetrics
from tests.support import require_tool

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "dashboards" / "provisioning"
RECORDING_RULES = ROOT / "prometheus" / "recording.rules.yml"

UIDS = {
    "service.json": "tagwatch-service",
    "model-drift.json": "tagwatch-model-drift",
    "retraining.json": "tagwatch-retraining",
}

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


def load(name: str) -> dict[str, Any]:
    board: dict[str, Any] = json.loads((build.JSON_DIR / name).read_text(encoding="utf-8"))
    return board


def boards() -> Iterator[tuple[str, dict[str, Any]]]:
    for name in UIDS:
        yield name, load(name)


def data_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Panels that query something (rows only lay out the others)."""
    return [p for p in board["panels"] if p["type"] != "row"]


def datasource_refs(node: Any) -> Iterator[dict[str, Any]]:
    """Every ``datasource`` reference anywhere in a dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item)


def provisioned_datasources() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yml").read_text(encoding="utf-8"))
    return {ds["uid"]: ds for ds in config["datasources"]}


def recording_rules() -> dict[str, str]:
    """Recording rule name -> expression: from prometheus/recording.rules.yml, or the shared design without it."""
    if not RECORDING_RULES.is_file():
        return DESIGN_RULES
    config = yaml.safe_load(RECORDING_RULES.read_text(encoding="utf-8"))
    return {rule["record"]: rule["expr"] for group in config["groups"] for rule in group["rules"] if "record" in rule}


def names_in(expr: str) -> set[str]:
    """Identifiers of an expression (metric names among them; a superset is fine for membership checks)."""
    return set(METRIC_NAME.findall(re.sub(r'"[^"]*"', '""', expr)))


def exported_metrics() -> dict[str, tuple[str, ...]]:
    """Every metric family the code exports -> the series names Prometheus stores for it."""
    out: dict[str, tuple[str, ...]] = {}
    for registry in (ServiceMetrics().registry, MonitorMetrics().registry):
        for family in registry.collect():
            out[family.name] = tuple(family.name + suffix for suffix in SUFFIXES[family.type])
    return out


# ------------------------------------------------------------------------------------------------- generation


def test_committed_json_is_what_the_generator_writes() -> None:
    assert build.stale_files() == [], "dashboards/json is out of date: run `.venv/bin/python -m dashboards.build`"
    assert build.main(["--check"]) == 0


def test_check_mode_notices_changed_missing_and_unknown_files(tmp_path: Path) -> None:
    assert build.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(UIDS)
    assert build.main(["--check", "--out", str(tmp_path)]) == 0

    (tmp_path / "service.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "retraining.json").unlink()
    (tmp_path / "old.json").write_text("{}\n", encoding="utf-8")
    assert build.stale_files(tmp_path) == ["old.json", "retraining.json", "service.json"]
    assert build.main(["--check", "--out", str(tmp_path)]) == 1


def test_output_is_deterministic() -> None:
    first = {name: build.render(board) for name, board in build.build().items()}
    second = {name: build.render(board) for name, board in build.build().items()}
    assert first == second
    for text in first.values():
        assert text.endswith("}\n")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


# ----------------------------------------------------------------------------------------------------- shape


@pytest.mark.parametrize(("name", "uid"), UIDS.items())
def test_dashboard_settings(name: str, uid: str) -> None:
    board = load(name)
    assert board["uid"] == uid
    assert board["tags"] == ["tagwatch"]
    assert 36 <= board["schemaVersion"] <= 41
    assert board["time"] == {"from": "now-6h", "to": "now"}
    assert board["refresh"] == "30s"
    urls = {link["url"] for link in board["links"]}
    others = {f"http://localhost:3000/d/{other}" for other in UIDS.values() if other != uid}
    assert urls == others | {"http://localhost:8080/reports/"}


@pytest.mark.parametrize("name", UIDS)
def test_panel_ids_are_unique(name: str) -> None:
    ids = [panel["id"] for panel in load(name)["panels"]]
    assert len(ids) == len(set(ids))
    assert all(isinstance(i, int) and i > 0 for i in ids)


@pytest.mark.parametrize("name", UIDS)
def test_panels_have_grid_positions_that_do_not_overlap(name: str) -> None:
    placed: list[tuple[str, dict[str, int]]] = []
    for panel in load(name)["panels"]:
        pos = panel["gridPos"]
        assert set(pos) == {"h", "w", "x", "y"}, panel["title"]
        assert min(pos["w"], pos["h"]) > 0, panel["title"]
        assert min(pos["x"], pos["y"]) >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for title, other in placed:
            apart = (
                pos["x"] + pos["w"] <= other["x"]
                or other["x"] + other["w"] <= pos["x"]
                or pos["y"] + pos["h"] <= other["y"]
                or other["y"] + other["h"] <= pos["y"]
            )
            assert apart, f"{panel['title']!r} overlaps {title!r}"
        placed.append((panel["title"], pos))


@pytest.mark.parametrize("name", UIDS)
def test_every_panel_has_a_query(name: str) -> None:
    for panel in data_panels(load(name)):
        queries = [t.get("expr") or t.get("rawSql") for t in panel.get("targets", [])]
        assert any(q and q.strip() for q in queries), f"{panel['title']!r} has no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_every_datasource_is_provisioned() -> None:
    provisioned = provisioned_datasources()
    used = set()
    for name, board in boards():
        for panel in data_panels(board):
            assert panel["datasource"]["uid"] in provisioned, (name, panel["title"])
            for target in panel["targets"]:
                assert "datasource" in target, (name, panel["title"])
        for ref in datasource_refs(board):
            assert isinstance(ref, dict), f"{name}: datasource {ref!r} is not a reference by uid"
            assert ref["uid"] in provisioned, f"{name}: datasource uid {ref['uid']!r} is not provisioned"
            assert ref["type"] == provisioned[ref["uid"]]["type"], (name, ref)
            used.add(ref["uid"])
    assert used == {"tagwatch-prometheus", "tagwatch-postgres"}


def test_retrain_annotations() -> None:
    for uid in ("tagwatch-retraining", "tagwatch-model-drift"):
        board = load(next(name for name, u in UIDS.items() if u == uid))
        exprs = {a["name"]: a["expr"] for a in board["annotations"]["list"] if "expr" in a}
        assert exprs == {
            "Promotions": 'increase(tagwatch_retrains_total{result="promoted"}[2m]) > 0',
            "Rejections": 'increase(tagwatch_retrains_total{result="rejected"}[2m]) > 0',
        }


# FROM and JOIN clauses of a query: the tables (and subqueries) it reads.
_READS = re.compile(r"\b(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z0-9_.]*|\()", re.IGNORECASE)


@pytest.mark.parametrize("name", UIDS)
def test_champion_moves_annotation(name: str) -> None:
    board = load(name)
    [annotation] = [a for a in board["annotations"]["list"] if a["name"] == "Champion moves"]
    assert annotation["datasource"] == {"type": "grafana-postgresql-datasource", "uid": "tagwatch-postgres"}
    assert (annotation["enable"], annotation["hide"]) == (True, False)
    target = annotation["target"]
    assert target["datasource"] == annotation["datasource"]
    assert (target["format"], target["rawQuery"], target["refId"]) == ("table", True, "Anno")
    query = target["rawSql"]
    # Grafana's annotation columns, the dashboard's time range, the champion's moves only, from alias_moves only.
    for column in ("AS time", "AS text", "AS tags"):
        assert column in query
    assert "$__timeFilter(m.moved_at)" in query
    assert "m.alias = 'champion'" in query
    assert {found.lower() for found in _READS.findall(query)} == {"alias_moves"}
    assert not re.search(r"\b(INSERT|UPDATE|DELETE|DROP|ALTER|CREATE|GRANT|COPY)\b", query, re.IGNORECASE)


def test_report_columns_link_to_the_reports() -> None:
    tables = [p for _, board in boards() for p in data_panels(board) if p["datasource"]["uid"] == "tagwatch-postgres"]
    assert {p["title"] for p in tables} == {"Latest drift runs", "Retrains"}
    for panel in tables:
        assert '"Report"' in panel["targets"][0]["rawSql"]
        links = [
            link
            for o in panel["fieldConfig"]["overrides"]
            if o["matcher"] == {"id": "byName", "options": "Report"}
            for prop in o["properties"]
            if prop["id"] == "links"
            for link in prop["value"]
        ]
        assert [link["url"] for link in links] == ["http://localhost:8080/reports/${__value.raw}"]


# ----------------------------------------------------------------------------------------------------- queries


def test_dashboard_queries_are_concrete_promql() -> None:
    queries = build.dashboard_queries()
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
    assert build.substitute_sql("WHERE a = 1 AND $__timeFilter( m.moved_at )", since=since, until=until) == (
        "WHERE a = 1 AND m.moved_at BETWEEN '2026-11-25T06:00:00Z' AND '2026-11-25T12:30:05Z'"
    )
    queries = build.sql_queries(since=since, until=until)
    assert {title for _, title, _ in queries} == {"Latest drift runs", "Retrains", "annotation: Champion moves"}
    assert {uid for uid, title, _ in queries if title == "annotation: Champion moves"} == set(UIDS.values())
    for uid, title, query in queries:
        assert "$" not in query, (uid, title)
    with pytest.raises(ValueError, match="naive"):
        build.sql_queries(since=datetime(2026, 1, 1), until=until)


def test_substitute_replaces_grafana_variables() -> None:
    assert build.substitute("rate(x[$__rate_interval]) + increase(y[$__range]) + z[$__interval]") == (
        "rate(x[1m]) + increase(y[1h]) + z[1m]"
    )


def test_every_exported_metric_is_on_a_dashboard() -> None:
    rules = recording_rules()
    seen: set[str] = set()
    for _, _, expr in build.dashboard_queries():
        seen |= names_in(expr)
    # Through recording rules (transitively: a rule may use another).
    expanded: set[str] = set()
    while pending := (seen & rules.keys()) - expanded:
        for record in pending:
            seen |= names_in(rules[record])
        expanded |= pending
    missing = sorted(family for family, series in exported_metrics().items() if not seen & set(series))
    assert missing == [], f"metrics on no dashboard: {missing}"


def test_recording_rules_the_dashboards_use_exist() -> None:
    rules = recording_rules()
    used = {name for _, _, expr in build.dashboard_queries() for name in names_in(expr) if name.startswith("tagwatch:")}
    assert used, "the dashboards should use the recording rules"
    assert used <= rules.keys(), f"undefined recording rules: {sorted(used - rules.keys())} ({RECORDING_RULES})"


def test_promql_parses(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    exprs = sorted({expr for _, _, expr in build.dashboard_queries()})
    rules = [{"record": f"dashboard_query_{i}", "expr": expr} for i, expr in enumerate(exprs)]
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


# -------------------------------------------------------------------------------------------------- provisioning


def test_datasource_provisioning() -> None:
    config = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yml").read_text(encoding="utf-8"))
    assert config["apiVersion"] == 1
    ds = provisioned_datasources()
    prometheus, postgres = ds["tagwatch-prometheus"], ds["tagwatch-postgres"]
    assert (prometheus["type"], prometheus["url"], prometheus["isDefault"]) == (
        "prometheus",
        "http://prometheus:9090",
        True,
    )
    assert [d["uid"] for d in config["datasources"] if d.get("isDefault")] == ["tagwatch-prometheus"]
    assert postgres["type"] == "grafana-postgresql-datasource"
    assert postgres["url"] == "postgres:5432"
    # The read-only role of tagwatch.roles (SELECT on the tables the dashboards read), not the owner.
    assert postgres["user"] == "tagwatch_grafana"
    assert postgres["secureJsonData"] == {"password": "${TAGWATCH_GRAFANA_DB_PASSWORD}"}
    assert postgres["jsonData"]["database"] == "tagwatch"
    assert postgres["jsonData"]["sslmode"] == "disable"
    # The dashboards refer to them by uid and type.
    assert (build.PROMETHEUS["uid"], build.PROMETHEUS["type"]) == ("tagwatch-prometheus", prometheus["type"])
    assert (build.POSTGRES["uid"], build.POSTGRES["type"]) == ("tagwatch-postgres", postgres["type"])


def test_dashboard_provisioning() -> None:
    config = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text(encoding="utf-8"))
    assert config["apiVersion"] == 1
    [provider] = config["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "tagwatch"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


# ------------------------------------------------------------------------------------------------------- SQL


@pytest.mark.postgres
def test_sql_queries_run_on_the_migrated_schema(postgres_url: str) -> None:
    from sqlalchemy.orm import Session

    from retrain.promote import Comparison, HoldoutScores, RetrainOutcome
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
            f"{k}_{f}": False if f == "detected" else None
            for k in build.KINDS
            for f in ("score", "threshold", "detected")
        }
        base: dict[str, Any] = {
            "started_at": t0 + timedelta(minutes=minutes),
            "status": "ok",
            "model_version": "3",
            "confirmed": dict.fromkeys(build.KINDS, False),
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
        for _, title, query in build.sql_queries(since=t0 - timedelta(hours=1), until=t0 + timedelta(hours=1)):
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
