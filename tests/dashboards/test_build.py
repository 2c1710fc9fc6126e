"""dashboards.build: the committed JSON is the generator's, and ``--check`` notices any difference."""

from __future__ import annotations

import json
from pathlib import Path

from dashboards import build
from tests.dashboards.committed import UIDS


def test_committed_json_is_what_the_generator_writes() -> None:
    assert build.stale_files() == [], "dashboards/json is out of date: run `.venv/bin/python -m dashboards.build`"
    assert build.main(["--check"]) == 0


def test_check_mode_notices_changed_missing_and_unknown_files(tmp_path: Path) -> None:
    assert build.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(UIDS)
    assert build.main(["--check", "--out", str(tmp_path)]) == 0

    (tmp_path / "service.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "retraining.json").unlink()
    (tmp_path / "old.json").write_text("{}\n", encoding="utf-8")
    assert build.stale_files(tmp_path) == ["old.json", "retraining.json", "service.json"]
    assert build.main(["--check", "--out", str(tmp_path)]) == 1


def test_output_is_deterministic() -> None:
    first = {name: build.render(board) for name, board in build.build().items()}
    second = {name: build.render(board) for name, board in build.build().items()}
    assert first == second
    for text in first.values():
        assert text.endswith("}\n")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
