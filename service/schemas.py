"""HTTP schemas with explicit limits: bad input is a clear 422, never a 500."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

MAX_TITLE_CHARS = 300
MAX_BODY_CHARS = 60_000  # the longest real body in the bundled data is ~38k characters
MAX_BATCH = 256
MAX_FEEDBACK_TAGS = 10
# Stack Overflow tags: at most 35 characters of letters, digits and + # - . (.net, c++, node.js); the loaders
# (tagwatch.data) accept the same.
TAG_PATTERN = r"^[\w#+.\-]{1,35}$"
REQUEST_ID_PATTERN = r"^[0-9a-f]{32}$"


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; no real question contains one.
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE_CHARS),
    AfterValidator(_no_nul),
]
Body = Annotated[str, StringConstraints(max_length=MAX_BODY_CHARS), AfterValidator(_no_nul)]


def _normalized(value: object) -> object:
    # Before the pattern check: "Python " is the tag python.
    return value.strip().lower() if isinstance(value, str) else value


Tag = Annotated[str, BeforeValidator(_normalized), StringConstraints(pattern=TAG_PATTERN)]
RequestId = Annotated[str, BeforeValidator(_normalized), StringConstraints(pattern=REQUEST_ID_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Question(_Strict):
    title: Title
    body: Body = ""


class TagScore(BaseModel):
    tag: str
    score: float


class Prediction(BaseModel):
    request_id: str
    tags: list[TagScore]
    model_version: str


class BatchRequest(_Strict):
    questions: list[Question] = Field(min_length=1, max_length=MAX_BATCH)


class BatchPrediction(BaseModel):
    request_id: str
    tags: list[TagScore]


class BatchResponse(BaseModel):
    model_version: str
    predictions: list[BatchPrediction]


class FeedbackRequest(_Strict):
    request_id: RequestId
    tags: list[Tag] = Field(min_length=1, max_length=MAX_FEEDBACK_TAGS)


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


class Problem(BaseModel):
    detail: str
