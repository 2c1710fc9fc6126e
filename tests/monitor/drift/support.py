"""Helpers of the drift tests: the thresholds of the default settings, windows, one run without the report."""

from __future__ import annotations

import random

from monitor.drift.detect import detect_drift
from monitor.drift.prepare import Prepared
from monitor.drift.types import Baseline, DriftInput, DriftResult, Thresholds
from tagwatch.data import Question
from tagwatch.model import TagModel
from tagwatch.settings import Settings

THRESHOLDS = Thresholds.from_settings(Settings())
WINDOW = 400
NEW_TAG = "tagwatch-brand-new-framework"


def labelled(questions: list[Question]) -> DriftInput:
    return DriftInput(questions, [q.tags for q in questions])


def window(pool: list[Question], seed: int, n: int = WINDOW) -> list[Question]:
    return random.Random(seed).sample(pool, n)


def run(
    reference: Prepared,
    current: DriftInput,
    model: TagModel,
    baseline: Baseline,
    thresholds: Thresholds = THRESHOLDS,
) -> DriftResult:
    return detect_drift(reference, current, model, baseline, thresholds, report=False)
