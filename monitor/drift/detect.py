"""Drift detection for one window of requests against the champion's reference: data, concept, feature drift.

``detect_drift`` reads and writes nothing (no database, no file): the job hands it the reference, the current
window (requests, with feedback where it arrived), the champion and its hold-out scores, and gets a
``DriftResult``. It is not pure computation alone: it runs the model on the sides it has to prepare
(``monitor.drift.prepare``) and, when both sides have enough rows, one Evidently Report
(``monitor.drift.evidently``, imported here only then: Evidently takes about 7 s to import). The kinds themselves
(``monitor.drift.kinds``), their statistics (``monitor.drift.stats``) and the report's summary table
(``monitor.drift.summary``) are pure.

The reference should be labelled questions of the champion's training period that the model did not train on (e.g.
its random hold-out): the model's scores, predictions and vocabulary are optimistic on its own training questions,
which would show up as prediction drift, a label-free "drop" and unknown words on every window.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from monitor.drift.kinds import concept_kind, data_kind, estimate_label_free, feature_kind
from monitor.drift.prepare import Prepared, model_key_of, prepare
from monitor.drift.summary import summary_table
from monitor.drift.types import MIN_TEXT_ROWS, Baseline, DriftInput, DriftResult, TextDrift, Thresholds

if TYPE_CHECKING:
    from tagwatch.model import TagModel

__all__ = ["detect_drift", "prepare"]


def detect_drift(
    reference: DriftInput | Prepared,
    current: DriftInput | Prepared,
    model: TagModel,
    baseline: Baseline,
    thresholds: Thresholds,
    *,
    seed: int = 0,
    report: bool = True,
) -> DriftResult:
    """Measure data, concept and feature drift of ``current`` against ``reference`` for ``model``.

    ``reference``: labelled questions of the champion's training period it did not train on (``Prepared`` once
    per champion saves re-scoring it every window); ``baseline``: the champion's hold-out scores. ``report`` adds
    the concept/feature summary table to the Evidently snapshot kept in the result (for report.write_report).
    """
    started = time.perf_counter()
    th = thresholds
    ref = reference if isinstance(reference, Prepared) else prepare(reference, model, th, role="reference", seed=seed)
    cur = (
        current
        if isinstance(current, Prepared)
        else prepare(current, model, th, role="current", seed=seed, champion=ref.champion)
    )
    for side in (ref, cur):
        if side.model_key != model_key_of(model):
            raise ValueError(f"the {side.role} was prepared for another model: prepare it again for this one")
        if (side.max_rows, side.text_chars) != (th.max_rows, th.text_chars):
            raise ValueError(f"the {side.role} was prepared with other thresholds (max_rows, text_chars)")
    if ref.n == 0:
        raise ValueError("the reference is empty")
    if len(ref.labelled) == 0:
        raise ValueError("the reference has no true tags: concept and feature drift are measured against them")
    sizes = {
        "reference": ref.n,
        "current": cur.n,
        "feedback": len(cur.labelled),
        "reference_labelled": len(ref.labelled),
    }
    label_free = estimate_label_free(ref, cur, baseline, th)
    concept, emerging = concept_kind(ref, cur, baseline, th, seed)
    feature = feature_kind(ref, cur, th, seed)
    text: TextDrift | None = None
    if len(cur.uniform) >= MIN_TEXT_ROWS and len(ref.uniform) >= MIN_TEXT_ROWS:
        from monitor.drift.evidently import run_report

        summary = summary_table(model.version, sizes, concept, feature, label_free, emerging) if report else None
        text = run_report(ref, cur, th, summary)
    data = data_kind(ref, cur, th, label_free, text)
    return DriftResult(
        data=data,
        concept=concept,
        feature=feature,
        label_free=label_free,
        characteristic_words=text.words if text is not None else {"reference": [], "current": []},
        emerging_tags=[(t, c) for t, c, _ in emerging],
        sizes=sizes,
        thresholds=th,
        model_version=model.version,
        duration_seconds=time.perf_counter() - started,
        snapshot=text.snapshot if text is not None else None,
    )
