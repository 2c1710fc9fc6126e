"""The API process stays small: it never imports the monitor, the retrain job, Evidently, the CLI, the MLflow client
or the training stack (scikit-learn, pandas), also not while it loads a real champion from a real registry and
answers a prediction."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tagwatch.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]

# Top-level packages (and a few subpackages) the API process must not hold in sys.modules.
FORBIDDEN = (
    "monitor",
    "retrain",
    "commands",
    "evidently",
    "mlflow",  # the champion is read from the registry's tables (tagwatch.registry.resolver)
    "sklearn",  # training only: serving cuts texts with tagwatch.model.analyzers
    "pandas",
    "scipy.stats",
    "scipy.optimize",
)

APP_PROCESS = """
import json, sys
from fastapi.testclient import TestClient
from service.app import create_app
from tagwatch.settings import Settings

with TestClient(create_app(Settings())) as client:
    ready = client.get("/ready")
    answer = client.post("/predict", json={"title": "How to group a pandas DataFrame by column", "body": "df.groupby"})
print(json.dumps({
    "ready": ready.status_code,
    "status": answer.status_code,
    "version": answer.json().get("model_version"),
    "tags": [t["tag"] for t in answer.json().get("tags", [])],
    "modules": sorted(sys.modules),
}))
"""


def _forbidden(modules: list[str]) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f"{f}.") for f in FORBIDDEN))


def test_the_app_serves_a_real_champion_without_heavy_modules(settings: Settings, registry_with_champion: Any) -> None:
    env = {
        **os.environ,
        "TAGWATCH_HOME": str(settings.home),
        "TAGWATCH_REGISTRY_URL": settings.tracking_url,
        "TAGWATCH_DATABASE_URL": settings.db_url,
        "TAGWATCH_MODEL_NAME": settings.model_name,
        "PYTHONPATH": str(REPO_ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", APP_PROCESS], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ready"] == 200
    assert result["status"] == 200
    assert result["version"] == registry_with_champion.champion_version()
    assert "python" in result["tags"] or "pandas" in result["tags"]
    assert "tagwatch.registry.resolver" in result["modules"]
    assert "tagwatch.model" in result["modules"]
    assert _forbidden(result["modules"]) == []


def test_the_forbidden_list_catches_submodules() -> None:
    assert _forbidden(["monitor.job", "monitoring", "sklearn", "scipy.sparse", "scipy.stats._stats_py"]) == [
        "monitor.job",
        "scipy.stats._stats_py",
        "sklearn",
    ]
