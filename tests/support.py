"""Test helpers that are not fixtures."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NoReturn

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tagwatch.data import Question
from tagwatch.model import TagModel

SMALL_MODEL_TAGS = 40


def log_questions(engine: Engine, questions: Sequence[Question], *, now: datetime, feedback: bool = True) -> None:
    """Log ``questions`` as requests answered one second apart up to ``now``, each with its real tags as feedback
    (unless ``feedback`` is False)."""
    from tagwatch.db import Feedback, PredictionRequest, new_request_id

    with Session(engine) as session:
        for i, q in enumerate(questions):
            rid = new_request_id()
            at = now - timedelta(seconds=len(questions) - i)
            session.add(
                PredictionRequest(
                    id=rid,
                    created_at=at,
                    title=q.title,
                    body=q.body,
                    body_format=q.body_format,
                    predicted=[],
                    model_version="1",
                    latency_seconds=0.001,
                )
            )
            if feedback:
                session.add(Feedback(request_id=rid, tags=list(q.tags), received_at=at))
        session.commit()


def unseen_questions(questions: Sequence[Question], training: Sequence[Question], *, seed: int) -> list[Question]:
    """The ``questions`` a model trained on ``training`` never saw, in a seeded random order."""
    seen = {q.id for q in training}
    out = [q for q in questions if q.id not in seen]
    random.Random(seed).shuffle(out)
    return out


class InMemorySource:
    """A model source for service tests that need no registry: versions kept in a dict, one champion pointer."""

    def __init__(self) -> None:
        self.models: dict[str, TagModel] = {}
        self.champion: str | None = None
        self.fail_loading: set[str] = set()

    def add(self, version: str, model: TagModel, *, champion: bool = True) -> None:
        self.models[version] = model
        if champion:
            self.champion = version

    def champion_version(self) -> str | None:
        return self.champion

    def load_model(self, version: str) -> TagModel:
        if version in self.fail_loading:
            raise RuntimeError(f"cannot load version {version}")
        return self.models[version]

    def version_info(self, version: str) -> object:
        from types import SimpleNamespace

        return SimpleNamespace(
            data_window={"n_questions": 1},
            metrics={"holdout_random.micro_f1": 0.5},
            params={"top_n": SMALL_MODEL_TAGS},
        )


def unavailable(message: str) -> NoReturn:
    """Something a test needs is missing: a failure under CI=true (CI provides everything), else a skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (required under CI=true)")
    pytest.skip(message)


def require_tool(name: str) -> str:
    """The path of an external program a test needs (see ``unavailable`` when it is missing)."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (make test installs it: see the Makefile's 'tools' target)")
    return path
