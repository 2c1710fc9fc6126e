"""A version's files: the reference sample's format, and what is missing when artifacts go away."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tagwatch.data import Question
from tagwatch.registry import (
    Registry,
    RegistryError,
    VersionNotFoundError,
    read_reference,
    write_reference,
)
from tests.tagwatch.registry.support import (
    make_questions,
    register_tiny,
)

if TYPE_CHECKING:
    pass


def test_reference_file_is_in_the_bundled_format(tmp_path: Path) -> None:
    path = tmp_path / "reference.csv.gz"
    questions = make_questions(3)
    write_reference(questions, path)
    import pandas as pd

    frame = pd.read_csv(path, dtype={"id": str}, keep_default_na=False)
    assert list(frame.columns) == [
        "id",
        "created_at",
        "title",
        "body",
        "tags",
        "score",
        "source",
        "body_format",
    ]
    assert frame.loc[0, "created_at"] == "2018-04-01T12:00:00Z"
    assert frame.loc[2, "tags"] == "c# .net linq"
    assert read_reference(path) == questions


@pytest.mark.parametrize(
    ("question", "message"),
    [
        (Question("1", datetime(2020, 1, 1), "t", "b", "text", ("x",)), "timezone-aware"),
        (Question("1", None, "t", "b", "text", ("two words",)), "reads back as"),
        (Question("1", None, "t", "b", "text", ("Python",)), "reads back as"),
        (Question("1", None, "t", "b", "text", ()), "no tags"),
        (Question("not-an-id", None, "t", "b", "text", ("x",)), "bad id"),
    ],
)
def test_a_reference_that_would_not_read_back_unchanged_is_refused(
    tmp_path: Path, question: Question, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        write_reference([*make_questions(2), question], tmp_path / "reference.csv.gz")


def test_check_artifacts_names_what_is_missing(registry: Registry) -> None:
    _, version = register_tiny(registry)
    registry.check_artifacts(version)  # all there
    with pytest.raises(VersionNotFoundError):
        registry.check_artifacts("42")
    source = Path(registry.version_info(version).source.removeprefix("file://"))
    (source.parent / "tagwatch" / "lineage.json").unlink()
    with pytest.raises(RegistryError, match=r"artifacts missing: .*lineage\.json") as missing_meta:
        registry.check_artifacts(version)
    assert "model directory" not in str(missing_meta.value)
    for item in source.iterdir():
        item.unlink()
    with pytest.raises(RegistryError, match=r"the model files in .* \(the directory is empty\)"):
        registry.check_artifacts(version)
    source.rmdir()
    with pytest.raises(RegistryError, match=r"model directory .*, .*lineage\.json"):
        registry.check_artifacts(version)
