"""Documentation generated from the code: the README's command-line synopsis (from the typer app) and the settings
section of ``.env.example`` (from ``Settings`` and the comments above its fields in tagwatch/settings.py).

    python -m commands.docs synopsis   # print the synopsis
    python -m commands.docs env        # print the settings section of .env.example
    python -m commands.docs write      # rewrite both between their markers (README.md, .env.example)
    python -m commands.docs check      # exit 1 when a generated block differs from what the files hold

tests/commands/test_docs.py fails when a file drifts from what this module generates.
"""

from __future__ import annotations

import ast
import io
import sys
import textwrap
import tokenize
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tagwatch.settings import REPO_ROOT, Settings

README = REPO_ROOT / "README.md"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
SETTINGS_SOURCE = REPO_ROOT / "tagwatch" / "settings.py"
ENV_PREFIX = "TAGWATCH_"
WIDTH = 120

SYNOPSIS_START, SYNOPSIS_END = "<!-- synopsis:start -->", "<!-- synopsis:end -->"
ENV_START = "# --- generated: every TAGWATCH_* setting (python -m commands.docs write) ---"
ENV_END = "# --- end of generated settings ---"

# The value shown after an option that takes one, when the option declares no metavar of its own.
METAVARS = {
    "data": "PATH",
    "since": "DATE",
    "until": "DATE",
    "host": "H",
    "port": "P",
    "interval": "S",
    "url": "URL",
    "rate": "N",
    "concurrency": "C",
    "limit": "N",
    "feedback_share": "F",
    "feedback_delay": "S",
    "max_seconds": "S",
    "seed": "N",
    "key": "KEY",
    "version": "V",
    "alias": "A",
    "window": "N",
    "max_train": "N",
    "output": "FILE",
    "keep": "N",
}


# The meaning of the settings that have no comment of their own in tagwatch/settings.py (a comment block above a
# field, or at the end of its line, wins). A new setting needs one or the other: tests/commands/test_docs.py checks.
MEANINGS = {
    "predict_keys": "API keys for /predict and /predict/batch (name=secret,...); unset: prediction is open.",
    "model_name": "Name of the registered model in the MLflow registry.",
    "data_path": "The questions `tagwatch train` and `init` read without --data (default: the bundled sample).",
    "monitor_db_password": "Password of the monitor's role (<prefix>_monitor); unset: not created.",
    "grafana_db_password": "Password of Grafana's read-only role (<prefix>_grafana); unset: not created.",
    "top_n_tags": "The model predicts the N most frequent tags of its training data.",
    "max_tags": "At most this many tags per prediction.",
    "seed": "Random seed of sampling, splits and training.",
    "max_title_chars": "Longest title accepted (characters).",
    "max_body_chars": "Longest body accepted (characters);",
    "max_batch_size": "Most questions in one /predict/batch request.",
    "max_feedback_tags": "Most tags in one feedback record.",
    "db_max_overflow": "Connections a replica may open beyond the pool under load.",
    "log_queue_size": "Rows the request-log writer holds in memory before spilling to disk.",
    "log_flush_interval_seconds": "Seconds between two writes of the request log.",
    "log_batch_size": "Rows written to the request log in one batch.",
    "log_enabled": "Log every prediction request (the monitor's input); false: no request log.",
    "prune_interval_seconds": "Seconds between two `tagwatch prune` runs of the monitor's scheduler.",
    "monitor_interval_seconds": "Seconds between two drift checks of `tagwatch monitor`.",
    "monitor_host": "Address of the monitor's /metrics.",
    "monitor_port": "Port of the monitor's /metrics.",
    "window_seconds": "Only requests of the last this many seconds belong to the window (unset: no time limit).",
    "drift_f1_drop": "Concept drift: micro-F1 on feedback lower than the reference's by at least this much.",
    "drift_emerging_share": "Concept drift: share of feedback tags the model does not know at which tags emerge.",
    "drift_importance_drop": "Drop of the top features' importance that counts as drift.",
    "drift_min_current": "Fewest requests in a window for data drift to be judged.",
    "drift_min_feedback": "Fewest feedback records in a window for concept drift to be judged.",
    "drift_confirmations": "Drift must be seen in this many consecutive windows before a retrain is filed.",
    "retrain_cooldown_windows": "Windows after a retrain during which no new one is filed.",
    "retrain_cooldown_seconds": "Seconds after a retrain during which no new one is filed.",
    "retrain_max_followups": "Follow-up retrains after a drift-triggered promotion (0: none).",
    "auto_retrain": "File a retrain request when drift is confirmed (false: only report it).",
    "retrain_poll_seconds": "Seconds between two looks for pending retrain requests.",
    "retrain_worker_port": "Port of the retrain worker's /metrics (0: none).",
    "retrain_window": "A retrain trains on at most this many of the newest labelled requests.",
    "retrain_min_labelled": "Fewest labelled requests (with feedback) for a retrain to run.",
    "retrain_holdout_fraction": "Share of the retrain data held out to compare challenger and champion.",
    "retrain_max_holdout": "At most this many questions in that hold-out (unset: no cap).",
    "retrain_reference_ratio": "Questions of the champion's reference added to the retrain data, per new one.",
    "promotion_min_improvement": "A challenger is promoted only when it beats the champion's micro-F1 by this much.",
    "promotion_max_tag_regression": "... and loses at most this much F1 on any frequent tag.",
    "promotion_guard_max_tag_drop": "Most F1 a frequent tag may lose on the trusted guard set (unset: not checked).",
    "feedback_suspect_contradiction": "See TAGWATCH_FEEDBACK_CONFIDENT_SCORE.",
}


def _is_heading(comment: str) -> bool:
    """A section title in the class body ("Model", "Request log writer"): not a field's meaning."""
    return len(comment.split()) <= 5 and not comment.endswith((".", ")", ":", "..."))


# --- the synopsis ------------------------------------------------------------------------------------------------
def _option_text(param: Any) -> str:
    """``[--opt VALUE]``, ``[--flag]``, ``[--on/--off]`` or ``ARG`` (click parameters, duck-typed: typer bundles its
    own click)."""
    if param.param_type_name == "argument":
        text = (param.metavar or param.name or "ARG").upper()
        return str(text if param.required else f"[{text}]")
    flag = "/".join([param.opts[0], *param.secondary_opts[:1]])
    if not param.is_flag:
        flag = f"{param.opts[0]} {param.metavar or METAVARS.get(param.name or '', (param.name or 'VALUE').upper())}"
    return flag if param.required else f"[{flag}]"


def _wrap(head: str, parts: list[str]) -> list[str]:
    """``head part part ...`` in lines of at most WIDTH characters, continued under the first part."""
    lines, line = [], head
    indent = " " * (len(head) + 1)
    for part in parts:
        if len(line) + 1 + len(part) > WIDTH and line.strip() != head.strip():
            lines.append(line)
            line = indent + part
        else:
            line = f"{line} {part}"
    lines.append(line)
    return lines


def synopsis() -> str:
    """Every command of ``tagwatch`` with every option, in the app's help order."""
    import typer

    from commands.cli import app

    group: Any = typer.main.get_command(app)
    lines: list[str] = []
    for name, command in group.commands.items():
        if command.hidden:
            continue
        parts = [_option_text(p) for p in command.params if not getattr(p, "hidden", False) and p.name not in ("help",)]
        lines.extend(_wrap(f"tagwatch {name}", parts))
    return "\n".join(lines) + "\n"


def synopsis_block() -> str:
    """What stands between the README's synopsis markers."""
    return f"{SYNOPSIS_START}\n```text\n{synopsis()}```\n{SYNOPSIS_END}"


# --- the settings --------------------------------------------------------------------------------------------------
def field_comments(source: str | None = None) -> dict[str, str]:
    """The comment block right above each field of ``Settings`` (and a comment at the end of its line), by field.

    A comment block belongs to the field right below it; a field without one (the next of a group) gets "".
    """
    text = SETTINGS_SOURCE.read_text() if source is None else source
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    lines = text.splitlines()
    tree = ast.parse(text)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    result: dict[str, str] = {}
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        block: list[str] = []
        number = node.lineno - 1  # 1-based line above the field
        while number in comments and lines[number - 1].lstrip().startswith("#"):
            block.insert(0, comments[number])
            number -= 1
        while block and _is_heading(block[0]):
            block.pop(0)
        end = node.end_lineno or node.lineno
        if end in comments and not lines[end - 1].lstrip().startswith("#"):
            block.append(comments[end])
        result[node.target.id] = " ".join(block)
    return result


def _default_text(name: str) -> str:
    field = Settings.model_fields[name]
    if field.default_factory is not None:
        if name == "home":
            return "~/.tagwatch"
        value: Any = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if value is None or value == () or (isinstance(value, Path) and value == Path()):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Path):
        try:
            return str(value.relative_to(REPO_ROOT))
        except ValueError:
            return str(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return str(value)


def _constraints(name: str) -> str:
    field = Settings.model_fields[name]
    words: list[str] = []
    annotation = field.annotation
    if typing.get_origin(annotation) is typing.Literal:
        words.append("one of " + ", ".join(str(a) for a in typing.get_args(annotation)))
    for item in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(item, attr, None) is not None:
                words.append(f"{sign} {getattr(item, attr)}")
        if getattr(item, "pattern", None) is not None:
            words.append(f"matches {item.pattern}")
    return "; ".join(words)


def env_section(existing: set[str] | None = None) -> str:
    """The generated part of .env.example: every setting, commented out, with its meaning, default and bounds.

    ``existing``: variables the hand-written part of .env.example sets (marked "set above" here).
    """
    existing = existing or set()
    comments = field_comments()
    out = [
        ENV_START,
        "# Every setting the tagwatch processes read from TAGWATCH_* environment variables, with its default. The",
        "# compose stack passes only the variables its services list (docker-compose.yml, `environment:`): to change",
        "# another one there, add it to the `x-tagwatch-env` block; outside compose, export it (or use a .env loader).",
    ]
    for name in Settings.model_fields:
        variable = ENV_PREFIX + name.upper()
        meaning = " ".join(text for text in (MEANINGS.get(name), comments.get(name)) if text)
        bounds = _constraints(name)
        default = _default_text(name)
        notes = [meaning] if meaning else []
        if bounds:
            notes.append(f"({bounds})")
        if variable in existing:
            notes.append("Set above for the compose stack.")
        out.append("")
        out.extend(textwrap.wrap(" ".join(notes), WIDTH - 2, initial_indent="# ", subsequent_indent="# "))
        out.append(f"#{variable}={default}")
    out.append(ENV_END)
    return "\n".join(out)


def _assigned(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            names.add(line.partition("=")[0])
    return names


# --- files -----------------------------------------------------------------------------------------------------------
def replace_between(text: str, start: str, end: str, block: str, *, where: str) -> str:
    """``text`` with the part from the line ``start`` to the line ``end`` (both included) replaced by ``block``."""
    head, sep, rest = text.partition(start)
    if not sep:
        raise ValueError(f"{where}: no {start!r} marker")
    _, sep, tail = rest.partition(end)
    if not sep:
        raise ValueError(f"{where}: no {end!r} marker after {start!r}")
    return head + block + tail


def readme_text(current: str | None = None) -> str:
    text = README.read_text() if current is None else current
    return replace_between(text, SYNOPSIS_START, SYNOPSIS_END, synopsis_block(), where="README.md")


def env_example_text(current: str | None = None) -> str:
    text = ENV_EXAMPLE.read_text() if current is None else current
    head = text.partition(ENV_START)[0]
    if ENV_START in text:
        return replace_between(text, ENV_START, ENV_END, env_section(_assigned(head)), where=".env.example")
    # First run: append the section.
    return text.rstrip("\n") + "\n\n" + env_section(_assigned(text)) + "\n"


TARGETS: dict[Path, Callable[[], str]] = {README: readme_text, ENV_EXAMPLE: env_example_text}


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "synopsis":
        sys.stdout.write(synopsis())
    elif command == "env":
        sys.stdout.write(env_section() + "\n")
    elif command == "write":
        for path, generate in TARGETS.items():
            text = generate()
            if text != path.read_text():
                path.write_text(text)
                print(f"updated {path.relative_to(REPO_ROOT)}")
    elif command == "check":
        stale = [path.name for path, generate in TARGETS.items() if generate() != path.read_text()]
        if stale:
            print(f"out of date: {', '.join(stale)} (run: python -m commands.docs write)", file=sys.stderr)
            return 1
    else:
        print("usage: python -m commands.docs synopsis|env|write|check", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
