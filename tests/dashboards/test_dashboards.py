"""The committed dashboards: well formed, linked, queries only the provisioned data sources, annotated."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.dashboards.committed import UIDS, boards, data_panels, load, provisioned_datasources


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
