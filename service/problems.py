"""Problem details (RFC 9457): every error of the API is ``application/problem+json``, and the OpenAPI document
says so.

One body shape for all errors: ``type`` (a URI naming the kind of problem), ``title`` (the kind, in words),
``status`` (equal to the HTTP status), ``detail`` (this occurrence, in words); a 422 adds ``errors``, one entry per
invalid field. Clients branch on ``type`` or ``status``; people read ``detail``.
"""

from __future__ import annotations

import http
import itertools
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
# A 422 lists at most this many field errors: one request of a megabyte can hold 100,000 invalid fields, and the
# answer must not be ten times larger than the question.
MAX_FIELD_ERRORS = 20
# Relative references: resolved against the API's own URL (RFC 9457 §3.1.1 allows it); "about:blank" would say
# nothing more than the status code.
TYPE_BASE = "/problems/"


class FieldError(BaseModel):
    """One invalid part of a request."""

    loc: list[str | int] = Field(description="Where: e.g. ['body', 'questions', 3, 'title'].")
    msg: str = Field(description="What is wrong with it.")
    type: str = Field(description="pydantic's error type, e.g. 'string_too_long'.")


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    type: str = Field(description="A URI reference naming the kind of problem.", examples=["/problems/not-found"])
    title: str = Field(description="The kind of problem, in words (the same for every occurrence).")
    status: int = Field(ge=400, le=599, description="The HTTP status code of this response.")
    detail: str = Field(description="This occurrence, in words.")


class ValidationProblem(Problem):
    """A 422: the request was well-formed JSON (or not JSON at all) but not a valid request."""

    errors: list[FieldError] = Field(
        max_length=MAX_FIELD_ERRORS, description=f"The invalid fields, in request order (the first {MAX_FIELD_ERRORS})."
    )


def problem_type(status: int) -> str:
    """``/problems/<slug>``: e.g. 404 -> ``/problems/not-found``, 413 -> ``/problems/request-entity-too-large``."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = f"status {status}"
    return TYPE_BASE + phrase.lower().replace(" ", "-").replace("'", "")


def problem_title(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_body(status: int, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": problem_type(status), "title": problem_title(status), "status": status, "detail": detail, **extra}


def problem_response(
    status: int, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = problem_body(status, detail, **extra)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=MEDIA_TYPE)


def problem_bytes(status: int, detail: str) -> bytes:
    """The same body for code below FastAPI (raw ASGI middleware)."""
    return json.dumps(problem_body(status, detail)).encode("utf-8")


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """pydantic's errors, reduced to what a client needs (no echo of the input: it may be 60,000 characters)."""
    out = []
    for err in itertools.islice(errors, MAX_FIELD_ERRORS):
        loc = [p if isinstance(p, int) else str(p) for p in err.get("loc", ())]
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid" and len(loc) == 2 and isinstance(loc[1], int):
            # FastAPI puts the character offset where a field name would be.
            reason = (err.get("ctx") or {}).get("error", "")
            msg = f"the body is not valid JSON at character {loc[1]}" + (f": {reason}" if reason else "")
            loc = ["body"]
        out.append({"loc": loc, "msg": msg, "type": str(err.get("type", "value_error"))})
    return out


def _where(loc: list[str | int]) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def install(app: FastAPI) -> None:
    """Problem details for every error the app can answer, and an OpenAPI document that describes them."""

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        all_errors = exc.errors()
        errors = field_errors(all_errors)
        detail = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
        if len(all_errors) > len(errors):
            detail += f"; and {len(all_errors) - len(errors):,} more errors (the first {len(errors)} are listed)"
        return problem_response(422, detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else problem_title(exc.status_code)
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = "The request body could not be read as JSON."
        return problem_response(exc.status_code, detail, headers=exc.headers)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        # Logged with the traceback here; the client learns nothing of the internals.
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(500, "An internal error occurred; it was logged.")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = _problem_media_types(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each listed status answers a Problem (422: a ValidationProblem)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        model = ValidationProblem if status == 422 else Problem
        out[status] = {"model": model, "description": problem_title(status)}
    return out


def _problem_media_types(schema: dict[str, Any]) -> dict[str, Any]:
    """Error responses are sent as application/problem+json: say so in the document (FastAPI writes
    application/json for every model)."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content")
                if str(status)[0] in "45" and content and "application/json" in content:
                    response["content"] = {MEDIA_TYPE: content["application/json"]}
    return schema
