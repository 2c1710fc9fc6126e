"""The README's synopsis and .env.example's settings are generated from the code (commands/docs.py) and kept so."""

from __future__ import annotations

import re

import pytest
import typer

from commands import docs
from commands.cli import app
from tagwatch.settings import Settings

FIX = "run `python -m commands.docs write` and commit the result"


def test_readme_synopsis_is_the_generated_one() -> None:
    text = docs.README.read_text()
    assert text.count(docs.SYNOPSIS_START) == 1
    assert text.count(docs.SYNOPSIS_END) == 1
    assert docs.readme_text(text) == text, f"README.md's synopsis drifted from the CLI: {FIX}"


def test_env_example_settings_are_the_generated_ones() -> None:
    text = docs.ENV_EXAMPLE.read_text()
    assert text.count(docs.ENV_START) == 1
    assert text.count(docs.ENV_END) == 1
    assert docs.env_example_text(text) == text, f".env.example's settings drifted from tagwatch/settings.py: {FIX}"


def test_synopsis_names_every_option_of_every_command() -> None:
    synopsis = docs.synopsis()
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name, command in commands.items():
        assert re.search(rf"^tagwatch {re.escape(name)}\b", synopsis, re.M), name
        for param in command.params:
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("--") and opt != "--help":
                    assert opt in synopsis, f"{name} {opt}"
    # The flags the hand-written synopsis missed (issue 12).
    for expected in (
        "tagwatch evaluate [--version V] [--data PATH]",
        "[--window N] [--max-train N]",
        "tagwatch alert-sink [--host H] [--port P] [--keep N]",
        "tagwatch monitor [--interval S] [--host H]",
        "[--seed N]",
    ):
        assert expected in synopsis
    assert all(len(line) <= docs.WIDTH for line in synopsis.splitlines())


def test_env_example_lists_every_setting_with_a_meaning_and_its_default() -> None:
    section = docs.env_section()
    for name, field in Settings.model_fields.items():
        variable = f"TAGWATCH_{name.upper()}"
        match = re.search(rf"((?:^# .*\n)+)^#{variable}=(.*)$", section, re.M)
        assert match, f"{variable} is not in the generated .env.example section"
        assert match.group(1).strip("# \n"), f"{variable} has no meaning"
        if isinstance(field.default, int | float) and not isinstance(field.default, bool):
            assert match.group(2) == repr(field.default)
    assert "#TAGWATCH_HOME=~/.tagwatch" in section
    assert "#TAGWATCH_AUTO_MIGRATE=true" in section
    assert "#TAGWATCH_DATA_PATH=data/stackoverflow/questions.csv.gz" in section
    # The variables .env.example sets for compose are said to be set there.
    assert "Set above for the compose stack." in docs.env_example_text()


def test_every_setting_has_a_comment_or_a_meaning_and_no_meaning_is_stale() -> None:
    comments = docs.field_comments()
    assert set(comments) == set(Settings.model_fields)
    assert set(docs.MEANINGS) <= set(Settings.model_fields), "MEANINGS names a setting that no longer exists"
    undocumented = [n for n in Settings.model_fields if not comments[n] and n not in docs.MEANINGS]
    assert undocumented == [], "comment these in tagwatch/settings.py or add them to commands.docs.MEANINGS"


def test_field_comments_take_the_block_above_and_the_end_of_line_and_skip_headings() -> None:
    source = (
        "class Settings:\n    # Section\n    # What a is.\n    a: int = 1\n    b: int = 2  # a note\n\n    c: int = 3\n"
    )
    assert docs.field_comments(source) == {"a": "What a is.", "b": "a note", "c": ""}


def test_check_and_unknown_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert docs.main(["check"]) == 0
    assert docs.main(["nonsense"]) == 2
    assert docs.main(["synopsis"]) == 0
    assert capsys.readouterr().out.startswith("tagwatch train ")


def test_missing_markers_are_an_error() -> None:
    with pytest.raises(ValueError, match="no '<!-- synopsis:start -->' marker"):
        docs.readme_text("# no markers\n")
