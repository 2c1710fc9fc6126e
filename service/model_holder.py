"""The served model, swapped atomically when the registry's champion alias moves.

A request reads ``holder.current`` once and uses that object to the end, so a reload never shows it a half-loaded
model; the new model is loaded completely (in a worker thread) before the reference is replaced.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from service.metrics import ServiceMetrics
from tagwatch.model import TagModel

log = logging.getLogger(__name__)


class VersionFacts(Protocol):
    """What the service shows of a version (``tagwatch.registry.ModelVersionInfo`` has it)."""

    @property
    def data_window(self) -> Mapping[str, Any]: ...

    @property
    def metrics(self) -> Mapping[str, Any]: ...

    @property
    def params(self) -> Mapping[str, Any]: ...


class ModelSource(Protocol):
    """Where models come from: ``tagwatch.registry.ChampionResolver`` (the service's default: reads the registry's
    tables without importing MLflow) and ``tagwatch.registry.Registry`` satisfy it."""

    def champion_version(self) -> str | None: ...

    def load_model(self, version: str) -> TagModel: ...

    def version_info(self, version: str) -> VersionFacts: ...


@dataclass(frozen=True)
class LoadedModel:
    model: TagModel
    version: str
    loaded_at: datetime
    data_window: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    # Tags named in metric labels; the others are counted as "other".
    label_tags: frozenset[str] = frozenset()


class ModelHolder:
    def __init__(self, source: ModelSource, *, metrics: ServiceMetrics, model_name: str, label_tags: int) -> None:
        self._source = source
        self._metrics = metrics
        self._model_name = model_name
        self._label_tags = label_tags
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()  # one reload at a time; readers never take it

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def check_and_reload(self) -> bool:
        """Load the champion if it is not the one being served. True when a new model was swapped in."""
        with self._lock:
            try:
                version = self._source.champion_version()
            except Exception:
                # The registry briefly unreachable: keep serving what we have, try again next interval.
                log.warning("could not read the champion alias", exc_info=True)
                return False
            current = self._current
            if version is None or (current is not None and current.version == version):
                return False
            try:
                loaded = self._load(version)
            except Exception:
                self._metrics.model_reloads.labels(result="failure").inc()
                log.exception(
                    "loading model version %s failed; still serving %s",
                    version,
                    current.version if current else "nothing",
                )
                return False
            self._current = loaded  # the swap: one reference assignment
            _release_free_heap()
            if current is not None:
                self._metrics.model_info.remove(current.version, self._model_name)
            self._metrics.model_info.labels(version=loaded.version, name=self._model_name).set(1)
            self._metrics.model_loaded_timestamp.set(time.time())
            self._metrics.model_reloads.labels(result="success").inc()
            log.info(
                "serving model %s version %s (was %s)",
                self._model_name,
                version,
                current.version if current else "none",
            )
            return True

    def _load(self, version: str) -> LoadedModel:
        model = self._source.load_model(version)
        info = self._source.version_info(version)
        # The vocabulary is ordered by training frequency: the first tags are the ones worth a label of their own.
        label_tags = frozenset(model.tags[: self._label_tags])
        # Warm up: the first call of a freshly loaded model pays for lazy set-up; pay it here, not in a request.
        model.predict_scores([_WarmUp()])
        return LoadedModel(
            model=model,
            version=version,
            loaded_at=datetime.now(UTC),
            data_window=dict(getattr(info, "data_window", {}) or {}),
            metrics=dict(getattr(info, "metrics", {}) or {}),
            params=dict(getattr(info, "params", {}) or {}),
            label_tags=label_tags,
        )


def _release_free_heap() -> None:
    """Hand the heap pages freed by a load back to the system (glibc only; elsewhere nothing happens).

    Loading a model allocates twice what it keeps (the JSON vocabularies, the weights transposed and split); glibc
    keeps the freed pages, ~70 MB of resident memory per replica that nothing uses again until the next reload.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class _WarmUp:
    title = "warm up"
    body = "warm up"
    body_format: str | None = "text"
