"""Settings: read from TAGWATCH_* variables, defaults under the home, bounds, placeholder secrets refused in
production, errors that never repeat what they refuse. (API key syntax: tests/service/test_auth.py; the compose
stack's secrets: tests/deploy/test_hardening.py.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from tagwatch.settings import REPO_ROOT, ApiKey, Settings, get_settings, parse_api_keys, placeholder_reason

REAL = "Xq7-real-password-4eV"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.upper().startswith("TAGWATCH_")]:
        monkeypatch.delenv(name)


def _refusal(**values: Any) -> str:
    with pytest.raises(ValidationError) as info:
        Settings(**values)
    return str(info.value)


def test_defaults_live_under_the_home(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert s.db_url == f"sqlite:///{tmp_path / 'tagwatch.db'}"
    assert s.tracking_url == f"sqlite:///{tmp_path / 'registry.db'}"
    assert (s.artifacts_dir, s.spill_dir, s.reports_dir) == (
        tmp_path / "artifacts",
        tmp_path / "spill",
        tmp_path / "reports",
    )
    assert Settings(home=Path("~/tw")).home == Path.home() / "tw"
    assert Settings().home == Path.home() / ".tagwatch"
    given = Settings(home=tmp_path, database_url="postgresql+psycopg://u@db/log", registry_url="sqlite:///r.db")
    assert (given.db_url, given.tracking_url) == ("postgresql+psycopg://u@db/log", "sqlite:///r.db")


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TAGWATCH_HOME", str(tmp_path))
    monkeypatch.setenv("TAGWATCH_TOP_N_TAGS", "50")
    monkeypatch.setenv("TAGWATCH_AUTO_RETRAIN", "false")
    monkeypatch.setenv("TAGWATCH_WINDOW_SECONDS", "3600")
    monkeypatch.setenv("TAGWATCH_PROMOTION_GUARD_MAX_TAG_DROP", "0.2")
    monkeypatch.setenv("tagwatch_seed", "7")  # names are case-insensitive
    monkeypatch.setenv("TAGWATCH_NOT_A_SETTING", "1")  # ignored: other tools share the prefix (TAGWATCH_API_KEY)
    s = Settings()
    assert s.home == tmp_path
    assert (s.top_n_tags, s.auto_retrain, s.window_seconds, s.promotion_guard_max_tag_drop, s.seed) == (
        50,
        False,
        3600.0,
        0.2,
        7,
    )
    assert s.promotion_guard_tolerance == 0.1  # unset: the default
    assert Settings(top_n_tags=60).top_n_tags == 60  # an argument beats the environment


def test_get_settings_reads_once_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    try:
        monkeypatch.setenv("TAGWATCH_MODEL_NAME", "first")
        first = get_settings()
        monkeypatch.setenv("TAGWATCH_MODEL_NAME", "second")
        assert get_settings() is first
        get_settings.cache_clear()
        assert get_settings().model_name == "second"
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"top_n_tags": 1}, "top_n_tags"),
        ({"max_tags": 21}, "max_tags"),
        ({"monitor_port": 70_000}, "monitor_port"),
        ({"retrain_holdout_fraction": 1.0}, "retrain_holdout_fraction"),
        ({"drift_text_auc": 0.4}, "drift_text_auc"),
        ({"max_request_bytes": 100}, "max_request_bytes"),
        ({"db_role_prefix": "Tag-Watch"}, "db_role_prefix"),
        ({"environment": "staging"}, "environment"),
        ({"retrain_runner": "cron"}, "retrain_runner"),
    ],
)
def test_values_out_of_bounds_are_refused(values: dict[str, Any], field: str) -> None:
    assert re.search(rf"^{field}\n", _refusal(**values), re.MULTILINE)


def test_errors_never_repeat_what_they_refuse() -> None:
    message = _refusal(monitor_port="s3cret-token-value", database_url=["not", "a", "url"])
    assert "s3cret-token-value" not in message
    assert "input_value" not in message
    assert "monitor_port" in message
    assert "database_url" in message


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (None, "is empty"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("change-me-postgres-password", "is the placeholder 'change-me-postgres-password'"),
        ("CHANGEME", "is the placeholder 'CHANGEME'"),
        ("changeit", "is the placeholder 'changeit'"),
        (" Postgres ", "is the placeholder ' Postgres '"),
        ("tagwatch", "is the placeholder 'tagwatch'"),
        ("password1", None),
        ("change", None),
        (REAL, None),
    ],
)
def test_placeholder_reason(secret: str | None, reason: str | None) -> None:
    assert placeholder_reason(secret) == reason


def _pg(user: str, password: str | None) -> str:
    auth = user if password is None else f"{user}:{password}"
    return f"postgresql+psycopg://{auth}@postgres:5432/tagwatch"


@pytest.mark.parametrize(
    ("url_field", "user", "prefix", "variable"),
    [
        ("database_url", "tagwatch", "tagwatch", "POSTGRES_PASSWORD"),
        ("database_url", "tagwatch_api", "tagwatch", "TAGWATCH_API_DB_PASSWORD"),
        ("registry_url", "tagwatch_monitor", "tagwatch", "TAGWATCH_MONITOR_DB_PASSWORD"),
        ("database_url", "acme_grafana", "acme", "TAGWATCH_GRAFANA_DB_PASSWORD"),
        # Another deployment's role name is not this one's: the superuser's variable is named.
        ("database_url", "tagwatch_api", "acme", "POSTGRES_PASSWORD"),
    ],
)
def test_production_refuses_placeholder_database_passwords(
    url_field: str, user: str, prefix: str, variable: str
) -> None:
    values: dict[str, Any] = {"environment": "production", "db_role_prefix": prefix}
    message = _refusal(**values, **{url_field: _pg(user, "change-me-postgres-password")})
    named = "TAGWATCH_DATABASE_URL" if url_field == "database_url" else "TAGWATCH_REGISTRY_URL"
    assert f"the database password in {named} is the placeholder" in message
    assert f"set {variable} in .env to a real secret" in message
    assert "is empty" in _refusal(**values, **{url_field: _pg(user, None)})
    # A real password passes; locally anything does.
    real: dict[str, Any] = {**values, url_field: _pg(user, REAL)}
    assert Settings(**real)
    local: dict[str, Any] = {url_field: _pg(user, "change-me-postgres-password")}
    assert Settings(**local)


def test_production_refuses_placeholder_role_passwords_and_accepts_sqlite() -> None:
    assert Settings(environment="production").db_url.startswith("sqlite:")  # SQLite has no password to check
    for kind in ("api", "monitor", "grafana"):
        message = _refusal(environment="production", **{f"{kind}_db_password": "change-me-role"})
        assert f"TAGWATCH_{kind.upper()}_DB_PASSWORD is the placeholder 'change-me-role'" in message
        assert "is empty" in _refusal(environment="production", **{f"{kind}_db_password": ""})
        real: dict[str, Any] = {"environment": "production", f"{kind}_db_password": REAL}
        accepted = Settings(**real)
        assert getattr(accepted, f"{kind}_db_password") == SecretStr(REAL)
        assert REAL not in repr(accepted)
    assert Settings(api_db_password="change-me-role").api_db_password == SecretStr("change-me-role")


def test_api_key_lists_from_text_mappings_and_dumps() -> None:
    assert parse_api_keys(None, "TAGWATCH_FEEDBACK_KEYS") == ()
    assert parse_api_keys("  ", "TAGWATCH_FEEDBACK_KEYS") == ()
    keys = parse_api_keys("replay=abc.def-1, ops = xyz/2==", "TAGWATCH_FEEDBACK_KEYS")
    assert [(k.name, k.secret.get_secret_value()) for k in keys] == [("replay", "abc.def-1"), ("ops", "xyz/2==")]
    assert parse_api_keys({"replay": "abc.def-1", "ops": "xyz/2=="}, "V") == keys
    assert parse_api_keys(list(keys), "V") == keys
    assert parse_api_keys([k.model_dump() for k in keys], "V") == keys
    settings = Settings(feedback_keys={"replay": "abc.def-1"}, predict_keys="web=token-1")
    assert settings.feedback_keys == (ApiKey(name="replay", secret=SecretStr("abc.def-1")),)
    assert [k.name for k in settings.predict_keys] == ["web"]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (42, "expected name=secret pairs separated by commas, got a int"),
        ([42], "expected name=secret pairs, got a int"),
        ([{"name": "a"}], "expected name=secret pairs, got a dict"),
    ],
)
def test_api_key_lists_of_another_shape_are_refused(value: Any, fragment: str) -> None:
    with pytest.raises(ValueError, match=f"TAGWATCH_PREDICT_KEYS: {fragment}"):
        parse_api_keys(value, "TAGWATCH_PREDICT_KEYS")
    assert f"TAGWATCH_PREDICT_KEYS: {fragment}" in _refusal(predict_keys=value)


def test_every_setting_is_in_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    missing = [
        f"TAGWATCH_{name.upper()}" for name in Settings.model_fields if f"`TAGWATCH_{name.upper()}`" not in readme
    ]
    assert missing == [], "add them to the README's Settings table"
