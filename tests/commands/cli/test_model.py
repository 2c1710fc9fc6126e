"""`tagwatch train` and `tagwatch evaluate`: windows, refusals, JSON and the table with its two micro-F1s."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from commands.cli.model import F1_LEGEND, metrics_table
from tagwatch.data import Question
from tagwatch.model import TagModel
from tagwatch.settings import Settings
from tests.commands.cli.support import TINY_DATA, invoke


def test_train_refuses_a_window_of_fewer_than_200_questions(cli_home: Settings) -> None:
    result = invoke("train", "--data", str(TINY_DATA))
    assert result.exit_code == 2
    assert "Only 7 questions in that window; at least 200 are needed." in result.output
    assert not (cli_home.home / "registry.db").exists()


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_train_refuses_a_date_it_cannot_read(cli_home: Settings, option: str) -> None:
    result = invoke("train", "--data", str(TINY_DATA), option, "31.01.2018")
    assert result.exit_code == 2
    assert "'31.01.2018' is not a date like 2018-01-31" in result.output


def test_train_passes_its_window_and_prints_json_or_a_table(
    cli_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import retrain.job

    seen: dict[str, Any] = {}
    metrics = {
        "holdout_random": {"micro_f1": 0.66, "micro_f1_all_tags": 0.41, "n_questions": 3, "per_tag_f1": {"c#": 1.0}},
        "holdout_time": {"micro_f1": 0.63, "n_questions": 2},
    }

    def fake_train(settings: Settings, questions: list[Question], **kwargs: Any) -> retrain.job.TrainingRun:
        seen["ids"] = [q.id for q in questions]
        seen.update(kwargs)
        return retrain.job.TrainingRun("3", True, metrics, {"n_questions": len(questions)}, 12.345)

    monkeypatch.setattr(retrain.job, "train_and_register", fake_train)
    # Too few questions are refused before training: lower the bar by giving the window enough copies.
    monkeypatch.setattr(
        retrain.job, "select_window", lambda qs, since, until: [q for q in qs if _in(q, since, until)] * 100
    )

    as_json = invoke("train", "--data", str(TINY_DATA), "--since", "2009-05-01", "--until", "2010-01-01", "--json")
    assert as_json.exit_code == 0, as_json.output
    assert set(seen["ids"]) == {"9", "100"}
    assert seen["make_champion"] is None
    out = json.loads(as_json.stdout)
    assert out == {
        "version": "3",
        "champion": True,
        "data_window": {"n_questions": 200},
        "seconds": 12.3,
        "metrics": metrics,
    }

    table = invoke("train", "--data", str(TINY_DATA), "--no-champion")
    assert table.exit_code == 0, table.output
    assert "━" not in table.output  # no progress rows: stderr is not a terminal
    assert seen["make_champion"] is False
    assert "Registered tagwatch version 3 (champion) in 12 s; window {'n_questions': 700}" in table.output
    assert "per_tag_f1" not in table.output
    assert table.output.rstrip().endswith(F1_LEGEND)


def _in(q: Question, since: Any, until: Any) -> bool:
    if since is None and until is None:
        return True
    return q.created_at is not None and since <= q.created_at < until


def test_the_metrics_table_names_both_micro_f1s_and_marks_what_a_version_lacks() -> None:
    table = metrics_table(
        {"holdout_random": {"micro_f1": 0.66, "n_questions": 7451}, "holdout_time": {"micro_f1_all_tags": 0.4}}
    ).splitlines()
    assert table[0].split() == ["metric", "holdout_random", "holdout_time"]
    assert table[1].split() == ["micro_f1", "0.6600", "-"]
    assert table[2].split() == ["micro_f1_all_tags", "-", "0.4000"]
    assert table[-3].split() == ["n_questions", "7451", "-"]
    assert table[-2].startswith("micro_f1: over the model's tags")
    assert table[-1].startswith("micro_f1_all_tags: over every true tag")


def _champion(settings: Settings, model: TagModel, reference: list[Question], holdout_ids: dict[str, list[str]]) -> str:
    """Register a copy of ``model`` with these hold-out ids and make it champion; its version."""
    from tagwatch.registry import Registry

    registry = Registry.from_settings(settings)
    version = registry.register(
        copy.copy(model),
        params=model.params,
        metrics={"holdout_random": {"micro_f1": 0.5}},
        data_window={"n_questions": len(reference)},
        reference=reference[:50],
        holdout_ids=holdout_ids,
    )
    registry.promote(version)
    return version


def test_evaluate_without_a_champion(cli_home: Settings) -> None:
    result = invoke("evaluate", "--data", str(TINY_DATA))
    assert result.exit_code == 1
    assert "No champion in the registry: run `tagwatch train` first." in result.output


def test_evaluate_scores_the_champion_again_on_its_hold_outs(
    cli_home: Settings, small_model: TagModel, small_training_set: list[Question]
) -> None:
    from retrain.compare import holdout_scores
    from retrain.job import load_data

    # One id the data no longer has: said, and left out.
    holdout_ids = {"random": ["9", "100", "59", "gone"], "time": ["50", "1000"]}
    version = _champion(cli_home, small_model, small_training_set, holdout_ids)

    as_json = invoke("evaluate", "--data", str(TINY_DATA), "--json")
    assert as_json.exit_code == 0, as_json.output
    # stderr is not a terminal here: no progress rows (tests/tagwatch/test_progress.py; on a terminal: below).
    assert "evaluating hold-outs" not in as_json.output
    assert "━" not in as_json.output
    assert "hold-out random: 1 of 4 questions are not in the data" in as_json.output
    out = json.loads(as_json.stdout)
    assert out["version"] == version
    random_holdout, time_holdout = out["metrics"]["holdout_random"], out["metrics"]["holdout_time"]
    assert (random_holdout["n_questions"], time_holdout["n_questions"]) == (3, 2)
    # The two micro-F1s: over the model's tags, and over every true tag (what the demo's windows show).
    by_id = {q.id: q for q in load_data(TINY_DATA)}
    questions = [by_id[i] for i in ("9", "100", "59")]
    predicted = [[t for t, _ in row] for row in small_model.predict(questions)]
    all_tags = holdout_scores(predicted, [q.tags for q in questions]).micro_f1
    assert random_holdout["micro_f1_all_tags"] == pytest.approx(all_tags)
    assert random_holdout["micro_f1_all_tags"] <= random_holdout["micro_f1"]
    # Seven questions are too few for the anchors' protocol: said, and left out.
    assert "anchors' protocol skipped: 7 questions in the data, at least 200 are needed" in as_json.output
    assert "anchors_protocol" not in out["metrics"]

    table = invoke("evaluate", "--version", version, "--data", str(TINY_DATA), "--no-anchors")
    assert table.exit_code == 0, table.output
    assert f"tagwatch version {version}" in table.output
    assert "micro_f1_all_tags" in table.output
    assert F1_LEGEND in table.output
    assert "anchors_protocol" not in table.output


def test_evaluate_shows_progress_on_a_terminal_and_keeps_stdout_clean(
    cli_home: Settings, small_model: TagModel, small_training_set: list[Question]
) -> None:
    """The real command in a pseudo-terminal (stderr) with stdout piped, as `tagwatch evaluate --json > out.json`."""
    import os
    import pty
    import subprocess
    import sys
    import threading

    version = _champion(
        cli_home, small_model, small_training_set, {"random": ["9", "100", "59"], "time": ["50", "1000"]}
    )
    root = Path(__file__).resolve().parents[3]
    controller, terminal = pty.openpty()
    shown = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the command exited and closed the terminal
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "commands.cli", "evaluate", "--data", str(TINY_DATA), "--json"],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root), "COLUMNS": "120", "TERM": "xterm"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=120,
        )
    finally:
        os.close(terminal)
        reader.join(timeout=10)
        os.close(controller)
    text = shown.decode("utf-8", "replace")
    assert done.returncode == 0, text
    assert "evaluating hold-outs" in text
    assert "2/2" in text
    assert "━" in text
    # stdout is the JSON document alone.
    assert json.loads(done.stdout)["version"] == version


def test_evaluate_runs_the_anchors_protocol_with_the_versions_parameters(
    cli_home: Settings, small_model: TagModel, small_training_set: list[Question], tmp_path: Path
) -> None:
    from tagwatch.data.writer import write_questions_csv

    data = tmp_path / "questions.csv"
    write_questions_csv(small_training_set[:400], data)
    _champion(cli_home, small_model, small_training_set, {"random": [q.id for q in small_training_set[:30]]})
    result = invoke("evaluate", "--data", str(data), "--json")
    assert result.exit_code == 0, result.output
    anchors = json.loads(result.stdout)["metrics"]["anchors_protocol"]
    # A model of its own, with the version's parameters, on a random 80 % of the 400; scored on the other 20 %.
    assert anchors["n_questions"] == 80
    assert anchors["n_train"] == 320
    assert anchors["split_seed"] == 0
    assert set(anchors["per_tag_f1"]) <= {t for q in small_training_set[:400] for t in q.tags}
    assert len(anchors["per_tag_f1"]) <= small_model.params["top_n"]
    assert 0.2 < anchors["micro_f1"] <= 1.0
    table = invoke("evaluate", "--data", str(data))
    assert "anchors_protocol" in table.output
    assert "a model trained with this version's parameters on a random 80 %" in table.output
