"""The rows the request log stores, validated where they are made, and their spill-file encoding (one JSON object
a line)."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict

from tagwatch.text import BODY_FORMATS

_MAX_ID_CHARS = 64


class ScoredTag(TypedDict):
    """One suggested tag of a prediction, as logged."""

    tag: str
    score: float


def _check_text(name: str, value: object, *, allow_empty: bool = True, max_chars: int | None = None) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise ValueError(f"{name} must not be empty")
    if max_chars is not None and len(value) > max_chars:
        raise ValueError(f"{name} has {len(value)} characters, at most {max_chars} allowed")
    # PostgreSQL text cannot hold NUL, and UTF-8 cannot hold lone surrogates: refuse here, with a clear
    # message, instead of failing a whole batch in the writer thread.
    if "\x00" in value:
        raise ValueError(f"{name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name} is not valid Unicode text: {exc.reason}") from None
    return value


def _check_time(name: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}={value.isoformat()} is naive: give a timezone-aware (UTC) datetime")
    return value


@dataclass(frozen=True, slots=True)
class PredictionRow:
    """One answered prediction to log. Validated on construction: a bad row fails here, in the caller."""

    id: str
    created_at: datetime
    title: str
    body: str
    predicted: list[ScoredTag]  # highest score first
    model_version: str | None
    latency_seconds: float
    body_format: str | None = None

    def __post_init__(self) -> None:
        _check_text("id", self.id, allow_empty=False, max_chars=_MAX_ID_CHARS)
        _check_time("created_at", self.created_at)
        _check_text("title", self.title)
        _check_text("body", self.body)
        if self.body_format is not None and self.body_format not in BODY_FORMATS:
            raise ValueError(f"body_format must be one of {BODY_FORMATS} or None, got {self.body_format!r}")
        if self.model_version is not None:
            _check_text("model_version", self.model_version, max_chars=_MAX_ID_CHARS)
        if isinstance(self.latency_seconds, bool) or not isinstance(self.latency_seconds, numbers.Real):
            raise TypeError(f"latency_seconds must be a number, got {type(self.latency_seconds).__name__}")
        if not math.isfinite(self.latency_seconds) or self.latency_seconds < 0:
            raise ValueError(f"latency_seconds must be finite and >= 0, got {self.latency_seconds}")
        if not isinstance(self.predicted, list | tuple):
            raise TypeError(
                f"predicted must be a list of {{'tag', 'score'}} dicts, got {type(self.predicted).__name__}"
            )
        clean: list[ScoredTag] = []
        for i, item in enumerate(self.predicted):
            if not isinstance(item, dict) or set(item) != {"tag", "score"}:
                raise ValueError(f"predicted[{i}] must be a dict with exactly the keys 'tag' and 'score': {item!r}")
            tag = _check_text(f"predicted[{i}].tag", item["tag"], allow_empty=False)
            score = item["score"]
            # numbers.Real: numpy scalars (float32 too) are fine, stored as plain floats.
            if isinstance(score, bool) or not isinstance(score, numbers.Real) or not math.isfinite(score):
                raise ValueError(f"predicted[{i}].score must be a finite number, got {score!r}")
            clean.append({"tag": str(tag), "score": float(score)})
        # A copy: the caller may reuse its list; the row is what gets written.
        object.__setattr__(self, "predicted", clean)
        object.__setattr__(self, "latency_seconds", float(self.latency_seconds))


def _new_feedback_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    """One feedback submission: the true tags of a logged request, and the name of the API key that sent them
    (None while feedback is open). Records are append-only: a later submission for the same request is another
    record (its own ``id``, uuid4 hex by default), and readers take the latest."""

    request_id: str
    tags: Sequence[str]
    received_at: datetime
    key_name: str | None = None
    id: str = dataclasses.field(default_factory=_new_feedback_id)

    def __post_init__(self) -> None:
        _check_text("id", self.id, allow_empty=False, max_chars=_MAX_ID_CHARS)
        _check_text("request_id", self.request_id, allow_empty=False, max_chars=_MAX_ID_CHARS)
        _check_time("received_at", self.received_at)
        if self.key_name is not None:
            _check_text("key_name", self.key_name, allow_empty=False, max_chars=_MAX_ID_CHARS)
        if isinstance(self.tags, str) or not isinstance(self.tags, Sequence):
            raise TypeError(f"tags must be a list of str, got {type(self.tags).__name__}")
        for i, tag in enumerate(self.tags):
            _check_text(f"tags[{i}]", tag, allow_empty=False)
        object.__setattr__(self, "tags", tuple(self.tags))


# Spill files written before feedback records had ids: such a line gets an id derived from its content, the same
# every time it is read, so a file replayed twice is still stored once.
_LEGACY_FEEDBACK_NAMESPACE = uuid.UUID("5d0c5f0e-7a7b-4d34-9f5e-3c1f0b6f2a91")


def legacy_feedback_id(request_id: str, tags: Sequence[str], received_at: datetime) -> str:
    """The id of a feedback line spilled without one: uuid5 of its request, instant (UTC) and tags, as hex."""
    when = received_at.astimezone(UTC).isoformat() if received_at.utcoffset() is not None else received_at.isoformat()
    content = json.dumps([request_id, when, list(tags)], ensure_ascii=False, separators=(",", ":"))
    return uuid.uuid5(_LEGACY_FEEDBACK_NAMESPACE, content).hex


Row = PredictionRow | FeedbackRow


def encode_row(row: Row) -> dict[str, object]:
    """A row as a JSON object (the spill file format)."""
    if isinstance(row, PredictionRow):
        return {
            "kind": "prediction",
            "id": row.id,
            "created_at": row.created_at.isoformat(),
            "title": row.title,
            "body": row.body,
            "body_format": row.body_format,
            "predicted": row.predicted,
            "model_version": row.model_version,
            "latency_seconds": row.latency_seconds,
        }
    return {
        "kind": "feedback",
        "id": row.id,
        "request_id": row.request_id,
        "tags": list(row.tags),
        "received_at": row.received_at.isoformat(),
        "key_name": row.key_name,
    }


def decode_row(obj: object) -> Row:
    """The inverse of ``encode_row``; raises ValueError (or TypeError/KeyError) on anything else."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("kind")
    if kind == "prediction":
        return PredictionRow(
            id=obj["id"],
            created_at=datetime.fromisoformat(obj["created_at"]),
            title=obj["title"],
            body=obj["body"],
            body_format=obj.get("body_format"),
            predicted=obj["predicted"],
            model_version=obj["model_version"],
            latency_seconds=obj["latency_seconds"],
        )
    if kind == "feedback":
        received_at = datetime.fromisoformat(obj["received_at"])
        feedback_id = obj.get("id")
        if feedback_id is None:  # spilled before feedback records had ids
            feedback_id = legacy_feedback_id(obj["request_id"], obj["tags"], received_at)
        return FeedbackRow(
            id=feedback_id,
            request_id=obj["request_id"],
            tags=obj["tags"],
            received_at=received_at,
            key_name=obj.get("key_name"),
        )
    raise ValueError(f"unknown row kind {kind!r}")


def row_line(row: Row) -> bytes:
    """A row as one spill-file line (``encode_row`` as compact JSON, newline-terminated)."""
    return json.dumps(encode_row(row), ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


_PREDICTION_PREFIX = b'{"kind":"prediction","id":"'


def prediction_id(line: bytes) -> str | None:
    """The request id of a spilled prediction line, without parsing the whole (possibly long) line."""
    if line.startswith(_PREDICTION_PREFIX):
        end = line.find(b'"', len(_PREDICTION_PREFIX))
        if end > 0:
            return line[len(_PREDICTION_PREFIX) : end].decode("utf-8", errors="replace")
    try:
        obj = json.loads(line)
    except ValueError:
        return None  # reported when the file is replayed
    if isinstance(obj, dict) and obj.get("kind") == "prediction" and isinstance(obj.get("id"), str):
        return str(obj["id"])
    return None


# Memory of a row besides its strings: the dataclass, its datetime, the queue item and slot (tracemalloc: ~300 B),
# and per suggested tag its {"tag", "score"} dict (~200 B).
_ROW_OVERHEAD = 320
_TAG_OVERHEAD = 200


def row_bytes(row: Row) -> int:
    """Estimated memory a row holds, in O(1) per string: ``sys.getsizeof`` of a str is its real size (1, 2 or 4
    bytes per character, by its widest character, plus a header)."""
    if isinstance(row, PredictionRow):
        return (
            _ROW_OVERHEAD
            + sys.getsizeof(row.id)
            + sys.getsizeof(row.title)
            + sys.getsizeof(row.body)
            + _TAG_OVERHEAD * len(row.predicted)
            + sum(sys.getsizeof(p["tag"]) for p in row.predicted)
        )
    return (
        _ROW_OVERHEAD
        + sys.getsizeof(row.id)
        + sys.getsizeof(row.request_id)
        + (sys.getsizeof(row.key_name) if row.key_name is not None else 0)
        + sum(sys.getsizeof(t) + 8 for t in row.tags)
    )
