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
from tagwatch.model import TagModel
from tagwatch.settings import Settings
from tests.support import InMemorySource

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]


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
        feedback_keys="replay=cmVwbGF5LWtleS1mb3Itc2NoZW1hdGhlc2lz",
        predict_keys="frontend=ZnJvbnRlbmQta2V5LWZvci1zY2hlbWF0aGVzaXM",
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
