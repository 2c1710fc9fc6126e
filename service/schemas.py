"""HTTP schemas with explicit limits: bad input is a clear 422, never a 500.

The limits are settings (``TAGWATCH_MAX_*``, one source of truth): ``request_models(Limits.from_settings(s))``
builds the request models of one app, so the OpenAPI document shows the limits that app enforces.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator
from pydantic.json_schema import JsonDict

from tagwatch.settings import Settings

# Stack Overflow tags: at most 35 characters of letters, digits and + # - . (.net, c++, node.js); the loaders
# (tagwatch.data) accept the same.
TAG_PATTERN = r"^[\w#+.\-]{1,35}$"
REQUEST_ID_PATTERN = r"^[0-9a-f]{32}$"

# The examples of the OpenAPI document (/docs): valid requests under the default limits, as clients send them.
EXAMPLE_QUESTION: JsonDict = {
    "title": "How to group a pandas DataFrame by one column and sum the others",
    "body": "<p>I have a DataFrame with a <code>city</code> column and want one row per city.</p>"
    "<pre><code>df.groupby('city').sum()</code></pre>",
}
EXAMPLE_QUESTION_2: JsonDict = {"title": "Why does git rebase rewrite the commit hashes?", "body": ""}
EXAMPLE_REQUEST_ID = "3f2b8c1e9a4d4e0b8f6a2c7d5e1b9a04"


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


TITLE_DESCRIPTION = "The question's title (plain text; surrounding whitespace is stripped, it must not be empty)."
BODY_DESCRIPTION = "The question's body: HTML as Stack Overflow stores it, Markdown or plain text (may be empty)."


class QuestionFields(Strict):
    """What every question has; the limits are added per app by ``request_models``."""

    title: str = Field(description=TITLE_DESCRIPTION)
    body: str = Field("", description=BODY_DESCRIPTION)


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
        """One question to suggest tags for."""

        model_config = ConfigDict(json_schema_extra={"additionalProperties": False, "examples": [EXAMPLE_QUESTION]})

        title: title_type = Field(description=f"{TITLE_DESCRIPTION} At most {limits.title_chars:,} characters.")
        body: body_type = Field("", description=f"{BODY_DESCRIPTION} At most {limits.body_chars:,} characters.")

    class BatchRequest(Strict):
        """Several questions, answered in order."""

        model_config = ConfigDict(
            json_schema_extra={
                "additionalProperties": False,
                "examples": [{"questions": [EXAMPLE_QUESTION, EXAMPLE_QUESTION_2]}],
            }
        )

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
        """The true tags of a question that was predicted, by the id its prediction answered with."""

        model_config = ConfigDict(
            json_schema_extra={
                "additionalProperties": False,
                "examples": [{"request_id": EXAMPLE_REQUEST_ID, "tags": ["python", "pandas"]}],
            }
        )

        request_id: RequestId = Field(
            description="The `request_id` of a prediction (`/predict`, or one question of `/predict/batch`)."
        )
        tags: list[Tag] = Field(
            min_length=1,
            max_length=limits.feedback_tags,
            description=f"The question's true tags: 1 to {limits.feedback_tags}, Stack Overflow tags of at most 35 "
            "letters, digits and `#+.-` (compared lower-case, repeats counted once).",
        )

    return RequestModels(Question, BatchRequest, FeedbackRequest)


PREDICTION_ID = "The id of this prediction in the request log: send it back with the true tags to `/feedback`."
PREDICTED_TAGS = "The suggested tags, best first (at most TAGWATCH_MAX_TAGS; possibly none)."


class TagScore(BaseModel):
    """One suggested tag."""

    tag: str = Field(description="A Stack Overflow tag the model knows.", examples=["pandas"])
    score: float = Field(description="How confident the model is in the tag for this question (higher: more).")


class Prediction(BaseModel):
    """The tags suggested for one question."""

    request_id: str = Field(description=PREDICTION_ID, examples=[EXAMPLE_REQUEST_ID])
    tags: list[TagScore] = Field(description=PREDICTED_TAGS)
    model_version: str = Field(description="The registry version of the model that answered.", examples=["3"])


class BatchPrediction(BaseModel):
    """The tags suggested for one question of a batch."""

    request_id: str = Field(description=PREDICTION_ID, examples=[EXAMPLE_REQUEST_ID])
    tags: list[TagScore] = Field(description=PREDICTED_TAGS)


class BatchResponse(BaseModel):
    """The tags suggested for each question of a batch, in request order."""

    model_version: str = Field(description="The registry version of the model that answered the whole batch.")
    predictions: list[BatchPrediction] = Field(description="One per question, in the order they were sent.")


class FeedbackResponse(BaseModel):
    """Feedback stored (written to the request log within the flush interval)."""

    request_id: str = Field(description="The prediction the feedback is about.", examples=[EXAMPLE_REQUEST_ID])
    tags: list[str] = Field(description="The true tags recorded, normalised (lower-case, repeats removed).")
    status: str = Field(description="'recorded'.", examples=["recorded"])


class ModelResponse(BaseModel):
    """The model being served, as the registry describes it."""

    name: str = Field(description="The registered model's name (TAGWATCH_MODEL_NAME).", examples=["tagwatch"])
    version: str = Field(description="The registry version being served (the champion when it was loaded).")
    loaded_at: str = Field(description="When this replica loaded it (ISO 8601, UTC).")
    n_tags: int = Field(description="How many tags the model can suggest.")
    data_window: dict[str, object] = Field(
        description="The training data: first and last creation dates (`since`, `until`), `n_questions`, "
        "`n_undated`, `n_train`."
    )
    metrics: dict[str, object] = Field(description="Its scores on its hold-outs when it was registered, by hold-out.")
    params: dict[str, object] = Field(description="Its training parameters.")


class Health(BaseModel):
    """The process answers."""

    status: str = Field(description="Always 'ok'.", examples=["ok"])


class Readiness(BaseModel):
    """Ready for traffic: a model is loaded."""

    status: str = Field(description="'ready', or 'not ready' (then the answer is a 503 problem).")
    model_version: str | None = Field(description="The version being served (null while none is loaded).")
    database: str = Field(description="'ok' or 'unreachable' (the request log then spills to disk).")
