"""API keys on the real app: who may post feedback (and, when configured, predict), what a refusal looks like, what
is stored, what the OpenAPI document declares, and which settings are refused (without ever echoing a secret)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from sqlalchemy import select
from typer.testing import CliRunner

from service import auth
from service.app import create_app
from tagwatch.db import Feedback, fetch_requests
from tagwatch.model import TagModel
from tagwatch.settings import ApiKey, Settings, get_settings, parse_api_keys
from tests.support import InMemorySource

# Two keys valid at once: a rotation in progress (the old one is removed once every client sends the new one).
OLD = "Zm9vYmFyLW9sZC1rZXktZm9yLXRlc3RzLTAx"
NEW = "bmV3LWtleS1mb3ItdGVzdHMtMDItd2l0aC1wYWQ="
PREDICT = "cHJlZGljdC1rZXktZm9yLXRlc3RzLTAz"
WRONG = "d3Jvbmcta2V5LWZvci10ZXN0cy0wNA"
FEEDBACK_KEYS = f"replay={OLD}, ops.rotated-2026={NEW}"
QUESTION = {"title": "How to group a pandas DataFrame by one column and sum another", "body": "<p>df.groupby</p>"}
CHALLENGE = 'Bearer realm="tagwatch"'


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def source(small_model: TagModel) -> InMemorySource:
    src = InMemorySource()
    src.add("1", small_model)
    return src


@pytest.fixture
def keyed(settings: Settings) -> Settings:
    return Settings(**{**settings.model_dump(), "feedback_keys": FEEDBACK_KEYS})


@pytest.fixture
def client(keyed: Settings, source: InMemorySource) -> Iterator[TestClient]:
    with TestClient(create_app(keyed, source=source)) as c:
        yield c


def _predict(client: TestClient, headers: dict[str, str] | None = None) -> str:
    response = client.post("/predict", json=QUESTION, headers=headers or {})
    assert response.status_code == 200, response.text
    return str(response.json()["request_id"])


def _feedback(client: TestClient, request_id: str, headers: dict[str, str] | None = None) -> Any:
    return client.post("/feedback", json={"request_id": request_id, "tags": ["python"]}, headers=headers or {})


def _metric(client: TestClient, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name}{labels} not exported")


def _stored_feedback(client: TestClient) -> list[tuple[str, str | None]]:
    state: Any = client.app.state.tagwatch  # type: ignore[attr-defined]
    assert state.writer.flush(10)
    with state.engine.connect() as conn:
        return [(str(r), k) for r, k in conn.execute(select(Feedback.request_id, Feedback.key_name))]


def _assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("/problems/")
    assert body["title"]
    assert body["detail"]
    for secret in (OLD, NEW, PREDICT, WRONG):
        assert secret not in response.text
    return body


# ------------------------------------------------------------------------------------------------------- feedback


def test_feedback_without_a_key_is_401_with_a_challenge(client: TestClient) -> None:
    request_id = _predict(client)
    body = _assert_problem(_feedback(client, request_id), 401)
    assert body["type"] == "/problems/unauthorized"
    assert "Authorization: Bearer" in body["detail"]
    assert _feedback(client, request_id).headers["www-authenticate"] == CHALLENGE
    assert _stored_feedback(client) == []
    assert _metric(client, "tagwatch_auth_failures_total", route="/feedback", reason="missing") == 2


@pytest.mark.parametrize(
    "authorization",
    [
        f"Basic {OLD}",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        f"Token {OLD}",
        f"{OLD}",
        f"Bearer {OLD} extra",
        f"Bearer {OLD},{NEW}",
        "Bearer caf\u00e9",  # sent as UTF-8 bytes, read as Latin-1 by the server
        f"Bearer\t{OLD}",
        f"BearerX {OLD}",
    ],
)
def test_malformed_authorization_is_401(client: TestClient, authorization: str) -> None:
    request_id = _predict(client)
    response = client.post(
        "/feedback",
        json={"request_id": request_id, "tags": ["python"]},
        headers={"Authorization": authorization.encode("utf-8")},
    )
    _assert_problem(response, 401)
    assert response.headers["www-authenticate"] == CHALLENGE
    assert _stored_feedback(client) == []
    assert _metric(client, "tagwatch_auth_failures_total", route="/feedback", reason="malformed") == 1


@pytest.mark.parametrize("token", [WRONG, OLD[:-1], OLD + "A", OLD.lower(), PREDICT, "x", "A" * 4_000])
def test_a_wrong_key_is_403(client: TestClient, token: str) -> None:
    request_id = _predict(client)
    body = _assert_problem(_feedback(client, request_id, bearer(token)), 403)
    assert body["type"] == "/problems/forbidden"
    assert _stored_feedback(client) == []
    assert _metric(client, "tagwatch_auth_failures_total", route="/feedback", reason="invalid") == 1


def test_both_keys_of_a_rotation_work_and_the_name_is_stored(client: TestClient) -> None:
    first, second, third = _predict(client), _predict(client), _predict(client)
    assert _feedback(client, first, bearer(OLD)).status_code == 200
    assert _feedback(client, second, bearer(NEW)).status_code == 200
    # The scheme is case-insensitive (RFC 9110), and surrounding spaces are tolerated.
    assert _feedback(client, third, {"Authorization": f"bearer   {NEW} "}).status_code == 200
    assert sorted(_stored_feedback(client)) == sorted(
        [(first, "replay"), (second, "ops.rotated-2026"), (third, "ops.rotated-2026")]
    )
    # Predictions stay open: no key needed, and a key sent anyway is ignored.
    assert _predict(client, bearer(WRONG))
    for reason in auth.FAILURE_REASONS:
        assert _metric(client, "tagwatch_auth_failures_total", route="/feedback", reason=reason) == 0


def test_a_key_is_checked_before_the_body(client: TestClient) -> None:
    # No key and an invalid body: the answer is about the key, not about the body.
    response = client.post("/feedback", json={"request_id": "not-an-id", "tags": []})
    _assert_problem(response, 401)
    # A valid key and an invalid body: the usual 422.
    assert client.post("/feedback", json={"request_id": "x", "tags": []}, headers=bearer(OLD)).status_code == 422
    # An unknown request with a valid key: 404, with a wrong key: 403 (nothing learnt about request ids).
    assert _feedback(client, "f" * 32, bearer(OLD)).status_code == 404
    assert _feedback(client, "f" * 32, bearer(WRONG)).status_code == 403


def test_key_name_stored_with_the_feedback(
    database_url: str, tmp_path: Path, source: InMemorySource, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = Settings(home=tmp_path / "home", database_url=database_url, feedback_keys=FEEDBACK_KEYS)
    with TestClient(create_app(settings, source=source)) as c:
        ids = [_predict(c) for _ in range(4)]
        assert _feedback(c, ids[0], bearer(OLD)).status_code == 200
        assert _feedback(c, ids[1], bearer(NEW)).status_code == 200
        assert _feedback(c, ids[2], bearer(WRONG)).status_code == 403
        state: Any = c.app.state.tagwatch  # type: ignore[attr-defined]
        assert state.writer.flush(10)
        # The request is in the database now: a second label for it is a second record; the latest counts.
        assert _feedback(c, ids[0], bearer(NEW)).status_code == 200
        assert state.writer.flush(10)
        logged = {r.id: r for r in fetch_requests(state.engine)}
        with state.engine.connect() as conn:
            records = sorted((str(r), k) for r, k in conn.execute(select(Feedback.request_id, Feedback.key_name)))
    assert records == sorted([(ids[0], "replay"), (ids[0], "ops.rotated-2026"), (ids[1], "ops.rotated-2026")])
    assert logged[ids[0]].feedback_key == "ops.rotated-2026"
    assert logged[ids[1]].feedback_key == "ops.rotated-2026"
    assert (logged[ids[2]].feedback_key, logged[ids[2]].feedback_tags) == (None, None)
    # The start names the keys, never their secrets, and feedback is not reported open.
    assert "replay, ops.rotated-2026" in caplog.text
    assert auth.OPEN_FEEDBACK_WARNING not in caplog.text
    assert OLD not in caplog.text
    assert NEW not in caplog.text


def test_open_feedback_is_a_warning_at_start(
    settings: Settings, source: InMemorySource, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(settings, source=source)) as c:
        request_id = _predict(c)
        assert _feedback(c, request_id).status_code == 200
        # Open: a key sent anyway is neither checked nor stored.
        assert _feedback(c, request_id, bearer(WRONG)).status_code == 200
        assert _stored_feedback(c) == [(request_id, None), (request_id, None)]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "service.auth"]
    assert [r.getMessage() for r in warnings] == [
        "feedback is open: anyone who can reach the API can post labels; set TAGWATCH_FEEDBACK_KEYS"
    ]


# -------------------------------------------------------------------------------------------------------- predict


def test_predict_closed_with_predict_keys(keyed: Settings, source: InMemorySource) -> None:
    closed = Settings(**{**keyed.model_dump(), "predict_keys": f"frontend={PREDICT}"})
    with TestClient(create_app(closed, source=source)) as c:
        batch = {"questions": [QUESTION, {"title": "Center a div"}]}
        for route, payload in (("/predict", QUESTION), ("/predict/batch", batch)):
            missing = c.post(route, json=payload)
            _assert_problem(missing, 401)
            assert missing.headers["www-authenticate"] == CHALLENGE
            _assert_problem(c.post(route, json=payload, headers={"Authorization": "Basic eDp5"}), 401)
            _assert_problem(c.post(route, json=payload, headers=bearer(WRONG)), 403)
            # The keys of one route kind are not keys of the other.
            _assert_problem(c.post(route, json=payload, headers=bearer(OLD)), 403)
            assert c.post(route, json=payload, headers=bearer(PREDICT)).status_code == 200
            assert _metric(c, "tagwatch_auth_failures_total", route=route, reason="invalid") == 2
        request_id = _predict(c, bearer(PREDICT))
        _assert_problem(_feedback(c, request_id, bearer(PREDICT)), 403)
        assert _feedback(c, request_id, bearer(NEW)).status_code == 200
        # What probes, Prometheus and people need stays open.
        for path in ("/health", "/ready", "/model", "/metrics", "/openapi.json", "/docs"):
            assert c.get(path).status_code == 200, path
        # Nothing refused reached the request log: 1 + 2 answered predictions per route, one feedback.
        rows = _stored_feedback(c)
        state: Any = c.app.state.tagwatch  # type: ignore[attr-defined]
        assert len(fetch_requests(state.engine)) == 4
    assert rows == [(request_id, "ops.rotated-2026")]


def test_predict_open_without_predict_keys(client: TestClient) -> None:
    assert client.post("/predict", json=QUESTION).status_code == 200
    assert client.post("/predict/batch", json={"questions": [QUESTION]}).status_code == 200
    assert _metric(client, "tagwatch_auth_failures_total", route="/predict", reason="missing") == 0


# -------------------------------------------------------------------------------------------------------- openapi


def _document(settings: Settings, source: InMemorySource) -> dict[str, Any]:
    with TestClient(create_app(settings, source=source)) as c:
        doc: dict[str, Any] = c.get("/openapi.json").json()
    return doc


def test_openapi_declares_the_bearer_scheme_where_a_key_is_required(
    settings: Settings, keyed: Settings, source: InMemorySource
) -> None:
    doc = _document(keyed, source)
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "TAGWATCH_FEEDBACK_KEYS" in scheme["description"]
    feedback = doc["paths"]["/feedback"]["post"]
    assert feedback["security"] == [{"bearer": []}]
    for status in ("401", "403"):
        response = feedback["responses"][status]
        assert list(response["content"]) == ["application/problem+json"]
        assert response["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    for path in ("/predict", "/predict/batch"):
        assert "security" not in doc["paths"][path]["post"]
        assert "401" not in doc["paths"][path]["post"]["responses"]
    for path in ("/health", "/ready", "/model"):
        assert "security" not in doc["paths"][path]["get"]

    closed = _document(Settings(**{**keyed.model_dump(), "predict_keys": f"frontend={PREDICT}"}), source)
    for path in ("/feedback", "/predict", "/predict/batch"):
        operation = closed["paths"][path]["post"]
        assert operation["security"] == [{"bearer": []}]
        assert {"401", "403"} <= set(operation["responses"])

    # Open routes declare nothing: the document says what this app enforces.
    open_doc = _document(settings, source)
    assert "securitySchemes" not in open_doc.get("components", {})
    for path in ("/feedback", "/predict", "/predict/batch"):
        assert "security" not in open_doc["paths"][path]["post"]
        assert "401" not in open_doc["paths"][path]["post"]["responses"]


# ------------------------------------------------------------------------------------------------------- settings


def _refusal(**values: Any) -> str:
    with pytest.raises(ValidationError) as info:
        Settings(**values)
    return str(info.value)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (f"replay{OLD}", "entry 1 has no '='"),
        (f"replay={OLD},{OLD}", "entry 2 has no '='"),
        (f"replay={OLD},,ops={NEW}", "entry 2 is empty"),
        (f"replay={OLD},", "entry 2 is empty"),
        (f"={OLD}", "the name of entry 1 is not a key name"),
        (f"has space={OLD}", "the name of entry 1 is not a key name"),
        (f"{'n' * 65}={OLD}", "the name of entry 1 is not a key name"),
        (f"na/me={OLD}", "the name of entry 1 is not a key name"),
        ("replay=", "entry 1 has an empty secret"),
        # A padded base64 secret written without a name: its characters must not come back as a key name.
        (f"replay={OLD},{NEW}", "entry 2 has an empty secret"),
        (f"replay={OLD},ops={NEW} {OLD}", "the secret of entry 2 is not a Bearer token"),
        (f"replay={OLD}\u00e9", "the secret of entry 1 is not a Bearer token"),
        (f"replay={OLD},replay={NEW}", "the key name 'replay' appears twice"),
        (f"replay={OLD},ops={OLD}", "keys 'replay' and 'ops' have the same secret"),
        (",".join(f"k{i}={OLD}{i}" for i in range(33)), "33 keys, at most 32 allowed"),
    ],
)
def test_malformed_keys_are_refused_without_echoing_a_secret(value: str, fragment: str) -> None:
    for field, variable in (("feedback_keys", "TAGWATCH_FEEDBACK_KEYS"), ("predict_keys", "TAGWATCH_PREDICT_KEYS")):
        message = _refusal(**{field: value})
        assert f"{variable}: {fragment}" in message
        for secret in (OLD, NEW):
            assert secret not in message
        assert NEW.rstrip("=") not in message
        assert "input_value" not in message


@pytest.mark.parametrize(
    ("secret", "fragment"),
    [
        ("change-me-feedback-key-please", "is a placeholder"),
        ("changeme", "is a placeholder"),
        ("password", "is a placeholder"),
        ("Short-but-ok-123", None),  # 16 characters: the minimum
        ("Short-but-ok-12", "is shorter than 16 characters"),
    ],
)
def test_production_refuses_weak_keys(secret: str, fragment: str | None) -> None:
    for field, variable in (("feedback_keys", "TAGWATCH_FEEDBACK_KEYS"), ("predict_keys", "TAGWATCH_PREDICT_KEYS")):
        values = {"environment": "production", "feedback_keys": f"replay={OLD}", field: f"weak={secret}"}
        if fragment is None:
            assert Settings(**values)
            continue
        message = _refusal(**values)
        assert f"{variable}: the secret of key 'weak' {fragment}" in message
        assert secret not in message
        # Local deployments may use what they like.
        assert Settings(**{**values, "environment": "local"})


def test_production_refuses_to_serve_feedback_open(settings: Settings, source: InMemorySource) -> None:
    production = Settings(**{**settings.model_dump(), "environment": "production"})
    with pytest.raises(auth.ProductionConfigError, match="TAGWATCH_FEEDBACK_KEYS is not set"):
        create_app(production, source=source)
    # Production with keys serves; the other processes (monitor, init) never need feedback keys.
    served = Settings(**{**production.model_dump(), "feedback_keys": f"replay={OLD}"})
    with TestClient(create_app(served, source=source)) as c:
        assert _feedback(c, _predict(c), bearer(OLD)).status_code == 200


def test_secrets_never_show(keyed: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = Settings(**{**keyed.model_dump(), "predict_keys": f"frontend={PREDICT}"})
    shown = [repr(closed), str(closed), closed.model_dump_json(), repr(closed.model_dump()), repr(closed.feedback_keys)]
    for text in shown:
        for secret in (OLD, NEW, PREDICT):
            assert secret not in text
    assert [k.name for k in closed.feedback_keys] == ["replay", "ops.rotated-2026"]
    assert [k.secret.get_secret_value() for k in closed.feedback_keys] == [OLD, NEW]
    # From the environment, as the compose stack sets it.
    monkeypatch.setenv("TAGWATCH_FEEDBACK_KEYS", f" replay = {OLD} ,ops={NEW}")
    monkeypatch.setenv("TAGWATCH_PREDICT_KEYS", "")
    from_env = Settings()
    assert from_env.feedback_keys == (
        ApiKey(name="replay", secret=OLD),  # type: ignore[arg-type]
        ApiKey(name="ops", secret=NEW),  # type: ignore[arg-type]
    )
    assert from_env.predict_keys == ()
    # A copy through model_dump (as `tagwatch demo` makes one) keeps the secrets.
    assert Settings(**from_env.model_dump()).feedback_keys == from_env.feedback_keys


def test_cli_names_the_variable_once_and_never_the_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from commands.cli import app

    monkeypatch.setenv("TAGWATCH_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    monkeypatch.setenv("TAGWATCH_FEEDBACK_KEYS", f"replay={OLD},ops={OLD}")
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["serve"])
        assert result.exit_code == 2
        assert "tagwatch: invalid setting: TAGWATCH_FEEDBACK_KEYS: keys 'replay' and 'ops' have the same secret" in (
            result.output
        )
        assert OLD not in result.output
        # Production without feedback keys: `serve` refuses with one line, before binding anything.
        monkeypatch.setenv("TAGWATCH_FEEDBACK_KEYS", "")
        monkeypatch.setenv("TAGWATCH_ENVIRONMENT", "production")
        get_settings.cache_clear()
        result = runner.invoke(app, ["serve", "--port", "1"])
        assert result.exit_code == 2
        assert "tagwatch: invalid setting: TAGWATCH_FEEDBACK_KEYS is not set" in result.output
    finally:
        get_settings.cache_clear()


# -------------------------------------------------------------------------------------------------- the key ring


def test_every_key_is_compared_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    ring = auth.KeyRing(parse_api_keys(f"a={OLD},b={NEW},c={PREDICT}", "TAGWATCH_FEEDBACK_KEYS"))
    calls: list[tuple[int, int]] = []
    real = auth.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    for token, name in ((OLD, "a"), (NEW, "b"), (PREDICT, "c"), (WRONG, None), ("x" * 10_000, None)):
        calls.clear()
        assert ring.match(token) == name
        # No early exit, and always digests of equal length: neither the match nor its position shows in time.
        assert calls == [(32, 32)] * 3
    assert ring.names == ("a", "b", "c")
    assert not auth.KeyRing(())


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, (None, "missing")),
        ("", (None, "missing")),
        ("   ", (None, "missing")),
        ("Bearer abc", ("abc", None)),
        ("BEARER abc==", ("abc==", None)),
        ("Bearer  a-b.c_d~e+f/g= ", ("a-b.c_d~e+f/g=", None)),
        ("Bearer a=b", (None, "malformed")),
        ("Bearer", (None, "malformed")),
        ("Basic abc", (None, "malformed")),
        ("Bearer abc def", (None, "malformed")),
    ],
)
def test_bearer_token(header: str | None, expected: tuple[str | None, str | None]) -> None:
    assert auth.bearer_token(header) == expected
