"""The API against its own OpenAPI document: a schemathesis run on the real service (uvicorn on loopback).

Every generated request, valid or not, must get an answer that the document describes: no 5xx, a documented status,
a body that matches its schema (errors as problem details) and the documented content type.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from commands.polling import ServiceThread
from service.app import create_app
from service.schemas import Limits, request_models
from tagwatch.model import TagModel
from tagwatch.settings import Settings
from tests.support import InMemorySource

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
FEEDBACK_SECRET = "cmVwbGF5LWtleS1mb3Itc2NoZW1hdGhlc2lz"
PREDICT_SECRET = "ZnJvbnRlbmQta2V5LWZvci1zY2hlbWF0aGVzaXM"


@pytest.fixture(scope="module")
def service(small_model: TagModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    source = InMemorySource()
    source.add("1", small_model)
    home = tmp_path_factory.mktemp("openapi")
    # Small limits, so that generated requests reach them (413, the batch total) without megabytes of data.
    live = Settings(home=home, max_request_bytes=20_000, max_batch_size=8, max_batch_chars=5_000)
    with ServiceThread(live, source=source) as svc:
        yield svc


@pytest.fixture(scope="module")
def api_schema(service: ServiceThread) -> Any:
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json")


@pytest.fixture(scope="module")
def keyed_service(small_model: TagModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    """Every protectable route closed: the document declares the bearer scheme and the 401/403 problems."""
    source = InMemorySource()
    source.add("1", small_model)
    live = Settings(
        home=tmp_path_factory.mktemp("openapi-keyed"),
        max_request_bytes=20_000,
        max_batch_size=8,
        max_batch_chars=5_000,
        feedback_keys=f"replay={FEEDBACK_SECRET}",
        predict_keys=f"frontend={PREDICT_SECRET}",
    )
    with ServiceThread(live, source=source) as svc:
        yield svc


@pytest.mark.parametrize("which", ["service", "keyed_service"])
def test_every_error_is_a_documented_problem(which: str, request: pytest.FixtureRequest) -> None:
    service: ServiceThread = request.getfixturevalue(which)
    doc = httpx.get(f"{service.url}/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)
    # A document that says 422 bodies are FastAPI's {"detail": [...]} would contradict what is sent.
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_api_conforms_to_its_openapi_document(api_schema: Any) -> None:
    _conforms(api_schema, max_examples=40, min_cases=100)


def test_api_with_keys_conforms_to_its_openapi_document(keyed_service: ServiceThread) -> None:
    # Generated requests carry no key or a made-up one: every answer must be a documented 401/403 problem.
    _conforms(schemathesis.openapi.from_url(f"{keyed_service.url}/openapi.json"), max_examples=15, min_cases=40)


def _conforms(api_schema: Any, *, max_examples: int, min_cases: int) -> None:
    failures: list[str] = []
    cases = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()

        # A fixed seed and a bounded number of examples per operation: the same run every time, seconds long.
        @given(case=operation.as_strategy())
        @settings(
            max_examples=max_examples,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            nonlocal cases
            cases += 1
            case.call_and_validate(checks=CHECKS, timeout=30)

        try:
            run()
        except Exception as exc:  # every operation runs; the failures are reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:3000]}")
    assert cases >= min_cases, cases
    assert not failures, "\n\n".join(failures)


def _document(settings: Settings) -> dict[str, Any]:
    return create_app(settings, source=InMemorySource()).openapi()


def _request_schemas(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The component schema of each operation's JSON request body, by (method, path)."""
    out = {}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                out[method, path] = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return out


def test_every_operation_and_every_schema_property_is_described(settings: Settings) -> None:
    doc = _document(settings)
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)
            assert operation.get("description"), (method, path)
    undescribed = [
        f"{name}.{prop}"
        for name, schema in doc["components"]["schemas"].items()
        for prop, spec in schema.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert undescribed == []
    # The descriptions show the limits the app enforces.
    props = doc["components"]["schemas"]["Question"]["properties"]
    assert f"{settings.max_title_chars:,} characters" in props["title"]["description"]


def test_every_request_body_has_an_example_that_its_model_accepts(settings: Settings) -> None:
    doc = _document(settings)
    bodies = _request_schemas(doc)
    assert set(bodies) == {("post", "/predict"), ("post", "/predict/batch"), ("post", "/feedback")}
    api = request_models(Limits.from_settings(settings))
    models = {"/predict": api.Question, "/predict/batch": api.BatchRequest, "/feedback": api.FeedbackRequest}
    for (_, path), schema in bodies.items():
        assert schema["examples"], path
        for example in schema["examples"]:
            models[path].model_validate(example)
            assert set(example) <= set(schema["properties"])


def test_the_examples_are_answered_by_the_real_endpoints_with_valid_keys(
    settings: Settings, small_model: TagModel
) -> None:
    from fastapi.testclient import TestClient

    source = InMemorySource()
    source.add("1", small_model)
    keys = {"feedback_keys": f"replay={FEEDBACK_SECRET}", "predict_keys": f"frontend={PREDICT_SECRET}"}
    keyed = Settings(**{**settings.model_dump(), **keys})
    examples = {path: schema["examples"][0] for (_, path), schema in _request_schemas(_document(keyed)).items()}
    predict_auth = {"Authorization": f"Bearer {PREDICT_SECRET}"}
    feedback_auth = {"Authorization": f"Bearer {FEEDBACK_SECRET}"}
    with TestClient(create_app(keyed, source=source)) as client:
        single = client.post("/predict", json=examples["/predict"], headers=predict_auth)
        assert single.status_code == 200, single.text
        batch = client.post("/predict/batch", json=examples["/predict/batch"], headers=predict_auth)
        assert batch.status_code == 200, batch.text
        assert len(batch.json()["predictions"]) == len(examples["/predict/batch"]["questions"])
        # The example's id names no logged prediction: accepted as a request, then a 404 for the unknown id.
        unknown = client.post("/feedback", json=examples["/feedback"], headers=feedback_auth)
        assert unknown.status_code == 404, unknown.text
        live = {**examples["/feedback"], "request_id": single.json()["request_id"]}
        recorded = client.post("/feedback", json=live, headers=feedback_auth)
        assert recorded.status_code == 200, recorded.text
        assert recorded.json()["tags"] == examples["/feedback"]["tags"]
