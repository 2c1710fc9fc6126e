"""The files of a registered version: the run's artifact layout, the reference sample, and reading a version's facts.

Artifacts sit in a local directory (a ``file://`` artifact location) and are read in place, so every process that
loads models must see that directory at the same path. Everything here works from a version's record alone (its
source, run id, tags), so the MLflow client and the read-only resolver share it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlparse

from tagwatch.data import LoadReport, Question, describe_report, iter_questions, write_questions_csv
from tagwatch.registry.codecs import nest_metrics
from tagwatch.registry.entities import ModelVersionInfo, RegistryError

if TYPE_CHECKING:
    from tagwatch.model import TagModel

# Run artifact layout.
MODEL_DIR = "model"
META_DIR = "tagwatch"
VOCABULARY_FILE = "vocabulary.json"
PARAMS_FILE = "params.json"
DATA_WINDOW_FILE = "data_window.json"
PER_TAG_FILE = "per_tag_metrics.json"
HOLDOUT_FILE = "holdout_ids.json"
LINEAGE_FILE = "lineage.json"
REFERENCE_FILE = "reference.csv.gz"
# What ``register`` writes for every version (``check_artifacts`` insists on these; the rest is optional).
REQUIRED_META_FILES = (REFERENCE_FILE, VOCABULARY_FILE, PARAMS_FILE, DATA_WINDOW_FILE, LINEAGE_FILE, HOLDOUT_FILE)
# The trusted guard set: labelled questions from trusted data (never feedback) that no version trained on. A
# challenger is checked against the champion on it (retrain.promote); versions inherit it from their parent.
GUARD_FILE = "guard.csv.gz"

# Model-version tags (the facts a registry UI shows without opening the run).
TAG_PREFIX = "tagwatch."


class StoredVersion(Protocol):
    """A registered version as the store keeps it: MLflow's ``ModelVersion`` and ``VersionRecord`` both are one."""

    @property
    def version(self) -> Any: ...  # str in MLflow's entity; a number string either way

    @property
    def source(self) -> Any: ...

    @property
    def run_id(self) -> Any: ...

    @property
    def creation_timestamp(self) -> Any: ...  # milliseconds since the epoch

    @property
    def tags(self) -> Any: ...  # dict[str, str] | None

    @property
    def aliases(self) -> Any: ...  # list[str] | None


@dataclass(frozen=True)
class VersionRecord:
    """A registered version read straight from the registry's tables (``tagwatch.registry.resolver``)."""

    version: str
    source: str
    run_id: str
    creation_timestamp: int
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)


def write_reference(questions: Sequence[Question], path: Path) -> None:
    """Write the reference sample in the bundled data format and check it reads back unchanged.

    The reader normalizes and rejects what the loaders would (e.g. an empty tag list, a malformed id), so a
    sample that does not survive the round trip is refused here rather than coming back different later.
    """
    write_questions_csv(questions, path)
    report = LoadReport(source="reference sample")
    back = list(iter_questions(path, fmt="bundled", report=report))
    if report.rows_rejected:
        raise ValueError(f"reference sample: questions the bundled CSV format rejects: {describe_report(report)}")
    for original, read in zip(questions, back, strict=True):
        if original != read:
            raise ValueError(f"reference sample: question {original.id} reads back as {read!r}")


def read_reference(path: Path) -> list[Question]:
    """The questions of a reference sample file, in file order; a rejected row is an error, not a skip."""
    report = LoadReport(source=str(path))
    questions = list(iter_questions(path, fmt="bundled", report=report))
    if report.rows_rejected:
        raise RegistryError(f"reference sample damaged: {describe_report(report)}")
    return questions


def check_holdout_ids(holdout_ids: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, ids in holdout_ids.items():
        if not isinstance(name, str) or isinstance(ids, str):
            raise ValueError(f"holdout_ids must map a name to a list of question ids, got {name!r}: {ids!r}")
        bad = [i for i in ids if not isinstance(i, str)]
        if bad:
            raise ValueError(f"holdout {name!r}: question ids must be strings, got {bad[:3]!r}")
        out[name] = list(ids)
    return out


def load_model_from(
    source: str | None, *, model_name: str, version: str, loader: Callable[[Path], TagModel] | None = None
) -> TagModel:
    """The model of a version whose artifacts are at ``source``, read in place, with ``model.version`` set."""
    directory = local_path(source)
    if not directory.is_dir():
        raise RegistryError(
            f"{model_name} version {version}: model directory {directory} is missing "
            "(is the artifact store mounted at the same path here?)"
        )
    if loader is None:
        from tagwatch.model import TagModel

        loader = TagModel.load
    model = loader(directory)
    model.version = version
    return model


def local_path(uri: str | None) -> Path:
    """The local directory of an artifact location (``file://...`` or an absolute path)."""
    if uri is None:
        raise RegistryError("no artifact location: the version was not registered with a source")
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    raise RegistryError(
        f"artifact location {uri!r} is not a local directory; this registry reads artifacts in place and "
        "supports file:// locations only"
    )


def meta_dir(model_name: str, mv: StoredVersion) -> Path:
    """The directory of a version's tagwatch files: next to its model directory (no run lookup needed)."""
    model_dir = local_path(str(mv.source))
    if model_dir.name != MODEL_DIR:
        raise RegistryError(f"{model_name} version {mv.version} was not registered by tagwatch")
    return model_dir.parent / META_DIR


def meta_file(model_name: str, mv: StoredVersion, name: str) -> Path:
    path = meta_dir(model_name, mv) / name
    if not path.is_file():
        raise RegistryError(
            f"{model_name} version {mv.version}: artifact {path} is missing (not "
            f"registered by tagwatch, or the artifact store is not mounted at this path)"
        )
    return path


def read_json(model_name: str, mv: StoredVersion, name: str) -> Any:
    return json.loads(meta_file(model_name, mv, name).read_text(encoding="utf-8"))


def version_info(model_name: str, mv: StoredVersion, run_metrics: Mapping[str, float]) -> ModelVersionInfo:
    """The facts of a version: its record, its run's metrics (flat, as MLflow keeps them) and its files."""
    mv_tags = dict(mv.tags or {})
    per_tag_path = meta_dir(model_name, mv) / PER_TAG_FILE
    return ModelVersionInfo(
        version=str(mv.version),
        created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
        run_id=str(mv.run_id),
        source=str(mv.source),
        params=read_json(model_name, mv, PARAMS_FILE),
        metrics=nest_metrics(run_metrics),
        data_window=json.loads(mv_tags.get(f"{TAG_PREFIX}data_window", "{}")),
        tags=read_json(model_name, mv, VOCABULARY_FILE),
        lineage=json.loads(mv_tags.get(f"{TAG_PREFIX}lineage", "{}")),
        aliases=sorted(mv.aliases or []),
        per_tag=json.loads(per_tag_path.read_text(encoding="utf-8")) if per_tag_path.is_file() else {},
    )
