"""Hostile-input benchmark, part 1: the time of the text preparation (``model_texts``) on the hostile corpus and on the
bundled questions, new and legacy (bench/legacy_text.py, in a child process so that a body it would spend minutes on
can be given up), and whether both give the same model text."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.bodies import Body
from tagwatch.data import Question
from tagwatch.text import TextInput, detect_format, model_texts

ROOT = Path(__file__).resolve().parent.parent
REPEAT = 5  # timed runs per body; the best is recorded (other jobs share these 2 cores)
TARGET_MS = 20.0
LEGACY_TIMEOUT = 60.0  # seconds one legacy run may take before it is given up (and reported as more)
FORMATS = (None, "html", "markdown", "text")  # None: detected, as through the API


def best_ms(fn: Callable[[Any], object], arg: Any, repeat: int = REPEAT) -> float:
    """The best time of ``fn(arg)`` over ``repeat`` runs, in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(arg)
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def time_new(bodies: list[Body]) -> None:
    # Two passes a few seconds apart: on shared cores a body's REPEAT runs can all fall into one slow spell.
    for _ in range(2):
        for b in bodies:
            b.detected = detect_format(b.body)
            for fmt in FORMATS:
                best = best_ms(model_texts, TextInput(b.title, b.body, fmt))
                b.new_ms[fmt or "detected"] = min(best, b.new_ms.get(fmt or "detected", best))


# The legacy implementation runs in a child, so that a body it would spend minutes on can be given up.
_LEGACY_CHILD = """
import json, sys, time
from bench.legacy_text import TextInput, model_texts
item = TextInput(**json.load(sys.stdin))
start = time.perf_counter()
model_texts(item)
print(time.perf_counter() - start)
"""


def time_legacy(bodies: list[Body]) -> None:
    for b in bodies:
        payload = json.dumps({"title": b.title, "body": b.body})
        try:
            run = subprocess.run(
                [sys.executable, "-c", _LEGACY_CHILD],
                input=payload,
                capture_output=True,
                text=True,
                timeout=LEGACY_TIMEOUT,
                cwd=ROOT,
            )
        except subprocess.TimeoutExpired:
            b.legacy_s, b.legacy_error = LEGACY_TIMEOUT, f"gave up after {LEGACY_TIMEOUT:.0f} s"
            continue
        if run.returncode == 0:
            b.legacy_s = float(run.stdout)
        else:
            b.legacy_error = run.stderr.strip().splitlines()[-1][:120]
        print(f"legacy {b.family} / {b.name}: {b.legacy_s} {b.legacy_error or ''}", flush=True)


def bench_bundled(questions: list[Question], *, legacy: bool) -> dict[str, Any]:
    """Time ``model_texts`` on every bundled question; with ``legacy``, compare with the legacy output too."""
    new_ms = sorted(best_ms(model_texts, q) for q in questions)
    out: dict[str, Any] = {"questions": len(questions), "new_ms": summary(new_ms)}
    if legacy:
        from bench import legacy_text

        old_ms, different, different_detected = [], 0, 0
        for q in questions:
            start = time.perf_counter()
            old = legacy_text.model_texts(q)
            old_ms.append((time.perf_counter() - start) * 1e3)
            different += old != model_texts(q)
            detected = TextInput(q.title, q.body)
            different_detected += legacy_text.model_texts(detected) != model_texts(detected)
        out |= {
            "legacy_ms": summary(sorted(old_ms)),
            "different_model_texts": different,
            "different_model_texts_format_detected": different_detected,
        }
    return out


def summary(sorted_ms: list[float]) -> dict[str, float]:
    n = len(sorted_ms)
    return {"p50": sorted_ms[n // 2], "p99": sorted_ms[min(n - 1, int(n * 0.99))], "max": sorted_ms[-1]}
