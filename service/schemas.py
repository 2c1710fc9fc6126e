"""HTTP schemas with explicit limits: bad input is a clear 422, never a 500.

The limits are settings (``TAGWATCH_MAX_*``, one source of truth): ``request_models(Limits.from_settings(s))``
builds the request models of one app, so the OpenAPI document shows the limits that app enforces.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from tagwatch.settings import Settings

# Stack Overflow tags: at most 35 characters of letters, digits and + # - . (.net, c++, node.js); the loaders
# (tagwatch.data) accept the same.
TAG_PATTERN = r"^[\w#+.\-]{1,35}$"
REQUEST_ID_PATTERN = r"^[0-9a-f]{32}$"


@dataclass(frozen=True, slots=True)
class Limits:
    """The request limits of one app; their defaults live in ``Settings`` (``max_title_chars``, ...) alone."""

    title_chars: int
    body_chars: int
    batch_size: int
    batch_chars: int
    feedback_tags: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            title_chars=settings.max_title_chars,
            body_chars=settings.max_body_chars,
            batch_size=settings.max_batch_size,
            batch_chars=settings.max_batch_chars,
            feedback_tags=settings.max_feedback_tags,
        )


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; no real question contains one.
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


def _no_surrogates(value: str) -> str:
    # JSON can carry a lone surrogate ("\ud800"), UTF-8 (and so the request log) cannot.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogate \\ud800-\\udfff)") from None
    return value


def _normalized(value: object) -> object:
    # Before the pattern check: "Python " is the tag python.
    return value.strip().lower() if isinstance(value, str) else value


Tag = Annotated[str, BeforeValidator(_normalized), StringConstraints(pattern=TAG_PATTERN)]
RequestId = Annotated[str, BeforeValidator(_normalized), StringConstraints(pattern=REQUEST_ID_PATTERN)]


class Strict(BaseModel):
    """Unknown fields are refused with one error per object, not one per field: a megabyte of ``{"k1":0,"k2":0,…}``
    would otherwise cost 100,000 error objects (half a second of CPU) for one request."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"additionalProperties": False})

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            # More keys than fields means an unknown one among the first len(fields) + 1: no need to read them all.
            unknown = [k for k in itertools.islice(data, len(cls.model_fields) + 5) if k not in cls.model_fields]
            if unknown:
                names = ", ".join(repr(str(k)[:40]) for k in unknown[:5])
                raise ValueError(
                    f"unknown fields ({len(data) - sum(k in data for k in cls.model_fields):,} in all, e.g. {names}): "
                    f"the fields are {', '.join(cls.model_fields)}"
                )
        return data


class QuestionFields(Strict):
    """What every question has; the limits are added per app by ``request_models``."""

    title: str
    body: str = ""


class RequestModels(NamedTuple):
    Question: type[QuestionFields]
    BatchRequest: type[Strict]
    FeedbackRequest: type[Strict]


def request_models(limits: Limits) -> RequestModels:
    """The request models of one app, with its limits in their validation and JSON schema."""
    title_type = Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.title_chars),
        AfterValidator(_no_nul),
        AfterValidator(_no_surrogates),
    ]
    body_type = Annotated[
        str,
        StringConstraints(max_length=limits.body_chars),
        AfterValidator(_no_nul),
        AfterValidator(_no_surrogates),
    ]

    class Question(QuestionFields):
        title: title_type
        body: body_type = ""

    class BatchRequest(Strict):
        questions: list[Question] = Field(
            min_length=1,
            max_length=limits.batch_size,
            description=f"At most {limits.batch_size} questions of at most {limits.batch_chars:,} title and body "
            "characters together.",
        )

        @model_validator(mode="after")
        def _bounded_total(self) -> Any:
            total = sum(len(q.title) + len(q.body) for q in self.questions)
            if total > limits.batch_chars:
                raise ValueError(
                    f"the batch holds {total:,} title and body characters, at most {limits.batch_chars:,} allowed "
                    "(TAGWATCH_MAX_BATCH_CHARS): send fewer questions per batch"
                )
            return self

    class FeedbackRequest(Strict):
        request_id: RequestId
        tags: list[Tag] = Field(min_length=1, max_length=limits.feedback_tags)

    return RequestModels(Question, BatchRequest, FeedbackRequest)


class TagScore(BaseModel):
    tag: str
    score: float


class Prediction(BaseModel):
    request_id: str
    tags: list[TagScore]
    model_version: str


class BatchPrediction(BaseModel):
    request_id: str
    tags: list[TagScore]


class BatchResponse(BaseModel):
    model_version: str
    predictions: list[BatchPrediction]


class FeedbackResponse(BaseModel):
    request_id: str
    tags: list[str]
    status: str


class ModelResponse(BaseModel):
    name: str
    version: str
    loaded_at: str
    n_tags: int
    data_window: dict[str, object]
    metrics: dict[str, object]
    params: dict[str, object]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="'ready', or 'not ready' (then the answer is a 503 problem).")
    model_version: str | None
    database: str = Field(description="'ok' or 'unreachable' (the request log then spills to disk).")
