"""The stack's defences as configured: secrets refused when they are placeholders, readiness routing, body and memory
limits, time to drain on stop."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tagwatch.settings import PLACEHOLDER_SECRETS, Settings, get_settings, placeholder_reason
from tests.deploy.test_compose import NGINX, REPO, _find, _host_path, env_example, parse_nginx, services

CHECK_SECRETS = REPO / "deploy" / "check-secrets.sh"


def _run_check(env: dict[str, str], *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(CHECK_SECRETS), *names, "--", "echo", "started"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=10,
    )


@pytest.mark.parametrize("value", ["", "change-me-postgres-password", "CHANGEME", "password", "admin"])
def test_check_secrets_refuses_empty_and_placeholder_values(value: str) -> None:
    result = _run_check({"POSTGRES_PASSWORD": value}, "POSTGRES_PASSWORD")
    assert result.returncode == 78
    assert "started" not in result.stdout
    assert "POSTGRES_PASSWORD" in result.stderr


def test_check_secrets_refuses_what_tagwatch_refuses() -> None:
    # Two lists of placeholders, one in shell and one in Python: they must agree.
    for value in [*sorted(PLACEHOLDER_SECRETS), "change-me-x", "changeme-x"]:
        assert placeholder_reason(value) is not None
        assert _run_check({"S": value}, "S").returncode == 78, value


def test_check_secrets_runs_the_command_with_real_secrets() -> None:
    result = _run_check({"A": "x7-Kq2v9", "B": "another-real-one"}, "A", "B")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"
    # One placeholder among real ones is enough to refuse, and it is named.
    refused = _run_check({"A": "x7-Kq2v9", "B": "change-me-b"}, "A", "B")
    assert refused.returncode == 78
    assert "B is a placeholder" in refused.stderr


def test_third_party_containers_check_their_secrets_before_starting() -> None:
    for name, variables in {
        "postgres": ["POSTGRES_PASSWORD"],
        "grafana": ["GF_SECURITY_ADMIN_PASSWORD", "TAGWATCH_GRAFANA_DB_PASSWORD"],
    }.items():
        svc = services()[name]
        entrypoint = svc["entrypoint"]
        assert entrypoint[:2] == ["/bin/sh", "/usr/local/bin/check-secrets.sh"], name
        assert entrypoint[2 : entrypoint.index("--")] == variables, name
        assert _host_path(svc, "/usr/local/bin/check-secrets.sh") == CHECK_SECRETS
        # With .env.example as it is, each of them would refuse to start.
        env = {v: str(svc["environment"][v]) for v in variables}
        assert _run_check(env, *variables).returncode == 78
    # The image's own entrypoint and command still run after the check.
    assert services()["postgres"]["entrypoint"][-1] == "docker-entrypoint.sh"
    assert services()["postgres"]["command"] == ["postgres"]
    assert services()["grafana"]["entrypoint"][-1] == "/run.sh"


@pytest.mark.parametrize(
    ("service", "variable"),
    [
        ("init", "POSTGRES_PASSWORD"),
        ("api", "TAGWATCH_API_DB_PASSWORD"),
        ("monitor", "TAGWATCH_MONITOR_DB_PASSWORD"),
        ("retrain-worker", "TAGWATCH_MONITOR_DB_PASSWORD"),
    ],
)
def test_tagwatch_processes_refuse_the_example_password(
    monkeypatch: pytest.MonkeyPatch, service: str, variable: str
) -> None:
    from commands.cli import app

    env = services()[service]["environment"]
    assert env["TAGWATCH_ENVIRONMENT"] == "production"
    for name in ("TAGWATCH_ENVIRONMENT", "TAGWATCH_DATABASE_URL", "TAGWATCH_REGISTRY_URL"):
        monkeypatch.setenv(name, str(env[name]))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["migrate"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    # Each process names the variable of its own database user's password.
    assert f"set {variable} in .env" in result.output
    assert "TAGWATCH_DATABASE_URL" in result.output
    assert "Traceback" not in result.output


REAL_SECRET = "Zr4qW8tpXk2mN7vB-real"


def _refused_by(variable: str) -> set[str]:
    """The services that refuse to start when ``variable`` keeps its .env.example value and every other secret is
    real: third-party containers through check-secrets.sh, tagwatch's through its production settings."""
    from tests.deploy.test_compose import COMPOSE, interpolate

    example = env_example()
    env = {k: (REAL_SECRET + k.lower() if placeholder_reason(v) and k != variable else v) for k, v in example.items()}
    env = {k: ("" if k.startswith("ALERTMANAGER_") else v) for k, v in env.items()}
    rendered = interpolate(yaml.safe_load(COMPOSE.read_text()), env)["services"]
    refusing = set()
    for name, svc in rendered.items():
        environment = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        entrypoint = svc.get("entrypoint") or []
        if "/usr/local/bin/check-secrets.sh" in entrypoint:
            names = entrypoint[entrypoint.index("/usr/local/bin/check-secrets.sh") + 1 : entrypoint.index("--")]
            if _run_check(environment, *names).returncode == 78:
                refusing.add(name)
        if svc["image"].startswith("tagwatch:") and environment.get("TAGWATCH_ENVIRONMENT") == "production":
            fields = {k.removeprefix("TAGWATCH_").lower(): v for k, v in environment.items()}
            try:
                Settings(**fields)
            except ValueError:
                refusing.add(name)
    return refusing


def test_every_placeholder_of_the_env_example_stops_a_service() -> None:
    placeholders = sorted(k for k, v in env_example().items() if v.startswith("change-me"))
    assert {"POSTGRES_PASSWORD", "TAGWATCH_GRAFANA_DB_PASSWORD", "TAGWATCH_REPLAY_KEY"} <= set(placeholders)
    assert _refused_by("nothing") == set()
    refused = {variable: _refused_by(variable) for variable in placeholders}
    assert refused == {
        "GF_SECURITY_ADMIN_PASSWORD": {"grafana"},
        "POSTGRES_PASSWORD": {"postgres", "init"},
        "TAGWATCH_API_DB_PASSWORD": {"init", "api"},
        "TAGWATCH_MONITOR_DB_PASSWORD": {"init", "monitor", "retrain-worker"},
        "TAGWATCH_GRAFANA_DB_PASSWORD": {"init", "grafana"},
        "TAGWATCH_REPLAY_KEY": {"api"},
    }


def test_production_settings_accept_a_real_password_and_local_ones_anything() -> None:
    real = "postgresql+psycopg://tagwatch:Zr4-qW8_tp@postgres:5432/tagwatch"
    assert Settings(environment="production", database_url=real, registry_url=real).database_url == real
    example = "postgresql+psycopg://tagwatch:change-me-postgres-password@postgres:5432/tagwatch"
    assert Settings(environment="local", database_url=example).database_url == example
    with pytest.raises(ValueError, match="TAGWATCH_REGISTRY_URL is empty"):
        Settings(environment="production", database_url=real, registry_url="postgresql+psycopg://u@h/registry")
    # SQLite has no password to check.
    assert Settings(environment="production", home=Path("/tmp/x")).database_url is not None
    assert placeholder_reason(env_example()["GF_SECURITY_ADMIN_PASSWORD"]) is not None


def test_api_health_routes_on_readiness_and_drains_before_sigkill() -> None:
    api = services()["api"]
    assert any("/ready" in part for part in api["healthcheck"]["test"])
    grace = int(re.fullmatch(r"(\d+)s", api["stop_grace_period"]).group(1))  # type: ignore[union-attr]
    assert grace >= Settings().log_drain_seconds + 5, "the drain must finish before SIGKILL"


def test_every_long_running_service_has_a_memory_limit() -> None:
    for name, svc in services().items():
        assert re.fullmatch(r"\d+[mg]", str(svc.get("mem_limit", ""))), f"{name}: no mem_limit"


def test_nginx_body_limit_is_the_service_limit_and_it_passes_unready_replicas_by() -> None:
    (http,) = _find(parse_nginx(NGINX.read_text()), "http")
    body = http[2] or []
    (size,) = _find(body, "client_max_body_size")
    value = size[1][0]
    units = {"k": 1024, "m": 1024**2}
    limit = int(value[:-1]) * units[value[-1]] if value[-1] in units else int(value)
    assert limit == Settings().max_request_bytes
    (server,) = _find(body, "server")
    locations = {" ".join(d[1]): d[2] or [] for d in _find(server[2] or [], "location")}
    (next_upstream,) = _find(locations["/"], "proxy_next_upstream")
    assert {"error", "http_503"} <= set(next_upstream[1])
