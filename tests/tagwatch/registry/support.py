"""Shared pieces of the registry tests: a tiny model, the store under test, questions, a registered version, a
journal in a list."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from tagwatch.data import Question
from tagwatch.registry import Registry


class TinyModel:
    """Shaped like TagModel where the registry touches it: tags, version, save(dir), load(dir)."""

    def __init__(self, tags: list[str], weights: np.ndarray, params: dict[str, Any]) -> None:
        self.tags = tags
        self.weights = weights
        self.params = params
        self.version: str | None = None

    def save(self, directory: Path) -> None:
        np.savez(directory / "weights.npz", weights=self.weights)
        (directory / "model.json").write_text(json.dumps({"tags": self.tags, "params": self.params}))

    @classmethod
    def load(cls, directory: Path) -> TinyModel:
        meta = json.loads((directory / "model.json").read_text())
        with np.load(directory / "weights.npz") as npz:
            weights = npz["weights"]
        return cls(meta["tags"], weights, meta["params"])


class BrokenModel(TinyModel):
    def save(self, directory: Path) -> None:
        raise OSError("disk full")


@dataclass(frozen=True)
class Store:
    backend: str
    tracking_uri: str
    artifacts_dir: Path

    def registry(self, model_name: str) -> Registry:
        return Registry(self.tracking_uri, self.artifacts_dir, model_name, model_loader=TinyModel.load)


def make_questions(n: int, *, start: datetime | None = None) -> list[Question]:
    start = start or datetime(2018, 4, 1, 12, 0, tzinfo=UTC)
    tags = [("python", "pandas"), ("javascript",), ("c#", ".net", "linq"), ("c++",)]
    return [
        Question(
            id=str(1000 + i),
            created_at=start + timedelta(minutes=7 * i),
            title=f"Question {i}, with a comma",
            body=f'<p>Body {i} "quoted"\nsecond line</p>',
            body_format="html",
            tags=tags[i % len(tags)],
            score=i - 2,
        )
        for i in range(n)
    ]


def register_tiny(registry: Registry, seed: int = 0, **overrides: Any) -> tuple[TinyModel, str]:
    rng = np.random.default_rng(seed)
    model = TinyModel(["python", "c#", "c++", ".net"], rng.normal(size=(4, 6)), {"alpha": 0.1 * (seed + 1)})
    kwargs: dict[str, Any] = {
        "params": {"alpha": model.params["alpha"], "ngram_range": (1, 2), "vectorizer": {"min_df": 2}},
        "metrics": {
            "holdout_time": {
                "micro_f1": 0.5 + seed / 100,
                "n_questions": 120,
                "per_tag_f1": {"c#": 0.7, "c++": None},
            },
            "holdout_random": {"micro_f1": 0.6},
            "train_seconds": 12.5,
        },
        "data_window": {
            "since": "2018-04-01T12:00:00+00:00",
            "until": "2018-05-01T00:00:00+00:00",
            "n_questions": 300,
        },
        "reference": make_questions(20),
        "holdout_ids": {"time": ["1", "2"], "random": ["3"]},
        "lineage": {"trigger": "manual", "parent_version": None},
    }
    kwargs.update(overrides)
    version = registry.register(model, **kwargs)
    return model, version


@dataclass(frozen=True)
class Move:
    alias: str
    from_version: str | None
    to_version: str | None
    trigger: str
    actor: str


class ListJournal:
    """A journal that keeps its records in a list (the real one, tagwatch.history.Journal, is tested there)."""

    def __init__(self, fail: bool = False) -> None:
        self.moves: list[Move] = []
        self.model_names: set[str] = set()
        self.fail = fail

    def record(
        self,
        *,
        model_name: str,
        alias: str,
        from_version: str | None,
        to_version: str | None,
        trigger: str,
        actor: str,
    ) -> None:
        if self.fail:
            raise OSError("the request-log database is down")
        self.model_names.add(model_name)
        self.moves.append(Move(alias, from_version, to_version, trigger, actor))


def journaled_registry(store: Store, model_name: str, journal: ListJournal, actor: str = "cli:tester") -> Registry:
    return Registry(
        store.tracking_uri,
        store.artifacts_dir,
        model_name,
        model_loader=TinyModel.load,
        journal=journal,
        actor=actor,
    )
