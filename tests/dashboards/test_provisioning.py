"""Grafana's provisioning: the data sources by uid (the ones the dashboards name) and the dashboards folder."""

from __future__ import annotations

import yaml

from dashboards.panels import POSTGRES, PROMETHEUS
from tests.dashboards.committed import PROVISIONING, provisioned_datasources


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
    assert (PROMETHEUS["uid"], PROMETHEUS["type"]) == ("tagwatch-prometheus", prometheus["type"])
    assert (POSTGRES["uid"], POSTGRES["type"]) == ("tagwatch-postgres", postgres["type"])


def test_dashboard_provisioning() -> None:
    config = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text(encoding="utf-8"))
    assert config["apiVersion"] == 1
    [provider] = config["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "tagwatch"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
