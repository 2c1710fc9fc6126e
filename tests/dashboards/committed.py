"""The committed dashboards (dashboards/json) and the provisioned data sources, as the tests read them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from dashboards.build import JSON_DIR

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "dashboards" / "provisioning"

UIDS = {
    "service.json": "tagwatch-service",
    "model-drift.json": "tagwatch-model-drift",
    "retraining.json": "tagwatch-retraining",
}


def load(name: str) -> dict[str, Any]:
    board: dict[str, Any] = json.loads((JSON_DIR / name).read_text(encoding="utf-8"))
    return board


def boards() -> Iterator[tuple[str, dict[str, Any]]]:
    for name in UIDS:
        yield name, load(name)


def data_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Panels that query something (rows only lay out the others)."""
    return [p for p in board["panels"] if p["type"] != "row"]


def provisioned_datasources() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yml").read_text(encoding="utf-8"))
    return {ds["uid"]: ds for ds in config["datasources"]}
