"""The three kinds of drift and the label-free estimate, each a pure function of the two prepared sides.

What each kind measures and what decides it (every number is also in ``details``):

* data: Evidently's text drift, a domain classifier (TF-IDF + linear model) telling reference from current
  text, scored by ROC AUC (0.5: indistinguishable). The AUC alone decides: ``score`` is the AUC, compared with
  ``Thresholds.text_auc``. Descriptor drift (length, code share, share of words unknown to the model),
  prediction drift (predicted-tag distribution) and the label-free estimate add reasons only: they follow from
  the same shift and are noisier, and one deciding number keeps ``detected == score > threshold``. The AUC and
  the descriptor distances come from the Evidently report (``monitor.drift.evidently``), handed in as a
  ``TextDrift``: this module runs no Evidently.
* concept (questions with feedback only): the text->tag relation can break in independent ways, each with its own
  threshold: micro-F1 below the champion's hold-out micro-F1; true-tag (label) drift, the share of tags whose
  question rate changed significantly; the share of questions carrying an emerging tag (one the model cannot
  predict, far more frequent than in the reference). ``score`` is the severity ``max(value / threshold)`` of
  these signals, so its ``threshold`` is 1.0.
* feature: whether what predicts a tag changed. Per tag, a quick model fitted on the labelled window (class
  centroid difference) is compared with the champion's weights on the champion's top features (cosine), against
  the same comparison on an equally large reference sample; and the share of the champion's important features
  whose presence rate changed significantly. Severity as for concept.

The label-free estimate (``label_free``) is CBPE-like, for multi-label: with calibrated scores, a predicted tag
is right with probability equal to its score and a tag not predicted is a miss with probability equal to its
score, so expected precision, recall and micro-F1 follow from the scores alone, before feedback arrives.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from monitor.drift.prepare import Prepared
from monitor.drift.stats import (
    centroid_difference,
    cosine,
    emerging_tags,
    js_distance,
    label_free_estimate,
    micro_f1_standard_error,
    observed_scores,
    sample_indices,
    shifted_rates,
)
from monitor.drift.types import OTHER, Baseline, KindResult, Signal, TextDrift, Thresholds


def _reasons(signals: list[Signal]) -> list[str]:
    out = []
    for s in signals:
        if s.value is None or not s.exceeded:
            continue
        text = f"{s.label}: {s.value:.3f} > {s.threshold:.3f}"
        if s.detected:
            out.append(text)
        elif s.deciding:
            out.append(f"{text}, on only {s.sample_size} questions (not enough data)")
        elif s.enough_data:
            out.append(f"also: {text}")
    return out


def _severity_kind(
    kind: str, signals: list[Signal], sample_size: int, details: dict[str, Any], reasons: list[str]
) -> KindResult:
    """score = max(value / threshold) over the deciding signals with enough data (else over all computed)."""
    deciding = [s for s in signals if s.deciding and s.value is not None]
    enough = [s for s in deciding if s.enough_data]
    pool = enough or deciding
    score = max((float(s.value) / s.threshold for s in pool if s.value is not None), default=None)
    details = {
        **details,
        "signals": {s.name: s.to_dict() for s in signals},
        "score_definition": "max(value / threshold) over the deciding signals",
    }
    return KindResult(
        kind=kind,
        score=score,
        threshold=1.0,
        detected=any(s.detected for s in signals),
        sample_size=sample_size,
        enough_data=bool(enough),
        reasons=_reasons(signals) + reasons,
        details=details,
    )


def data_kind(
    ref: Prepared, cur: Prepared, th: Thresholds, label_free: dict[str, Any], text: TextDrift | None
) -> KindResult:
    """Data drift: the text AUC of ``text`` decides (None: the window was too small for the report)."""
    enough = cur.n >= th.min_current and ref.n >= th.min_reference
    signals: list[Signal] = []
    details: dict[str, Any] = {"score_definition": "ROC AUC of the domain classifier telling the sides' text apart"}
    ref_pred, cur_pred = ref.predicted[ref.uniform], cur.predicted[cur.uniform]
    if ref_pred.any() and cur_pred.any():
        signals.append(
            Signal(
                "prediction_js",
                js_distance(ref_pred.sum(axis=0), cur_pred.sum(axis=0)),
                th.prediction_js,
                len(cur.uniform),
                enough,
                False,
                "predicted-tag distribution drift (JS)",
            )
        )
    if label_free["drop"] is not None:
        signals.append(
            Signal(
                "expected_f1_drop",
                label_free["drop"],
                th.expected_f1_drop,
                cur.n,
                enough,
                False,
                "label-free expected micro-F1 drop",
            )
        )
    if text is not None:
        for name, value in text.descriptors.items():
            signals.append(
                Signal(
                    f"{name}_drift",
                    value,
                    th.descriptor_wasserstein,
                    len(cur.uniform),
                    enough,
                    False,
                    f"{name.replace('_', ' ')} drift (normed Wasserstein)",
                )
            )
        details["descriptor_means"] = text.descriptor_means
        details["prediction_top_tag_js"] = text.prediction_top_js
        details["rows_used"] = text.rows_used
    auc = text.auc if text is not None else None
    detected = bool(enough and auc is not None and auc > th.text_auc)
    reasons = []
    if auc is not None and auc > th.text_auc:
        reasons.append(
            f"text drift: domain classifier ROC AUC {auc:.3f} > {th.text_auc:.3f}"
            + ("" if enough else " (not enough data)")
        )
    if not enough:
        reasons.append(
            f"not enough data: {cur.n} current / {ref.n} reference questions "
            f"(minimum {th.min_current} / {th.min_reference})"
        )
    details["signals"] = {s.name: s.to_dict() for s in signals}
    return KindResult(
        kind="data",
        score=auc,
        threshold=th.text_auc,
        detected=detected,
        sample_size=cur.n,
        enough_data=enough,
        reasons=reasons + _reasons(signals),
        details=details,
    )


def estimate_label_free(ref: Prepared, cur: Prepared, baseline: Baseline, th: Thresholds) -> dict[str, Any]:
    """The label-free estimate of the window's micro-F1 against the expected one (a reason, never deciding)."""
    reference = label_free_estimate(ref.scores[ref.uniform], ref.predicted[ref.uniform])
    expected = baseline.expected_micro_f1 if baseline.expected_micro_f1 is not None else reference["micro_f1"]
    current = label_free_estimate(cur.scores[cur.uniform], cur.predicted[cur.uniform]) if cur.n else None
    drop = expected - current["micro_f1"] if current is not None else None
    out: dict[str, Any] = {
        "reference": reference,
        "expected_reference_micro_f1": expected,
        "compared_with": "baseline hold-out" if baseline.expected_micro_f1 is not None else "reference",
        "current": current,
        "drop": drop,
        "threshold": th.expected_f1_drop,
        "detected": bool(cur.n >= th.min_current and drop is not None and drop > th.expected_f1_drop),
    }
    if len(cur.rows_labelled):
        # The estimate next to what the feedback says, on the same questions.
        p = cur.rows_labelled
        out["feedback_estimate"] = label_free_estimate(cur.scores[p], cur.predicted[p])
        out["feedback_observed"] = observed_scores(cur.rows_true, cur.predicted[p])
    return out


def _tag_presence(side: Prepared) -> tuple[np.ndarray, int]:
    # Questions carrying each model tag, plus one item for "any tag outside the model's vocabulary".
    known = set(side.model_tags)
    outside = sum(1 for t in side.true_tags if any(x not in known for x in t))
    return np.append(side.true.sum(axis=0), outside), len(side.true_tags)


def concept_kind(
    ref: Prepared, cur: Prepared, baseline: Baseline, th: Thresholds, seed: int
) -> tuple[KindResult, list[tuple[str, int, int]]]:
    """Concept drift on the questions with feedback, and the emerging tags (tag, count, reference count)."""
    n_fb = len(cur.labelled)
    enough = n_fb >= th.min_feedback
    known = set(ref.model_tags)
    details: dict[str, Any] = {"baseline": {"micro_f1": baseline.micro_f1, "samples_jaccard": baseline.samples_jaccard}}
    signals: list[Signal] = []
    reasons: list[str] = []
    emerging: list[tuple[str, int, int]] = []
    if n_fb:
        # micro-F1 on the labelled questions the model scored (all of them, up to max_rows)
        n_scored = len(cur.rows_labelled)
        observed = observed_scores(cur.rows_true, cur.predicted[cur.rows_labelled])
        details["observed"] = observed
        details["jaccard_drop"] = baseline.samples_jaccard - observed["samples_jaccard"]
        # The drop must be large (f1_drop) and beyond the window's own noise: a hundred questions move micro-F1
        # by +-0.03 (bootstrap standard error, the hold-out's added when its size is known).
        se = micro_f1_standard_error(cur.rows_true, cur.predicted[cur.rows_labelled], seed=seed)
        if baseline.n_questions:
            se = math.sqrt(se**2 * (1 + n_scored / baseline.n_questions))
        details["f1_standard_error"] = se
        signals.append(
            Signal(
                "f1_drop",
                baseline.micro_f1 - observed["micro_f1"],
                max(th.f1_drop, th.shift_z * se),
                n_scored,
                n_scored >= th.min_feedback,
                True,
                "micro-F1 drop below the hold-out",
            )
        )
        counts_ref, n_ref = _tag_presence(ref)
        counts_cur, _ = _tag_presence(cur)
        shift_share, details["label_shifts"] = shifted_rates(
            "tag", [*ref.model_tags, OTHER], counts_ref, n_ref, counts_cur, n_fb, z=th.shift_z
        )
        signals.append(
            Signal(
                "label_shift_share",
                shift_share,
                th.label_shift_share,
                n_fb,
                enough,
                True,
                "true-tag drift (share of tags whose rate changed significantly)",
            )
        )
        emerging = emerging_tags(
            cur.true_tags, ref.true_tags, known, p_value=th.emerging_p_value, min_count=th.emerging_min_count
        )
        names = {t for t, _, _ in emerging}
        share = sum(1 for t in cur.true_tags if names.intersection(t)) / n_fb
        signals.append(
            Signal(
                "emerging_share",
                share,
                th.emerging_share,
                n_fb,
                enough,
                True,
                "share of feedback questions with an emerging tag",
            )
        )
        details["emerging_tags"] = [{"tag": t, "count": c, "reference_count": r} for t, c, r in emerging]
        details["unknown_tag_share"] = {
            "current": _unknown_share(cur.true_tags, known),
            "reference": _unknown_share(ref.true_tags, known),
        }
        if emerging:
            reasons.append("emerging tags: " + ", ".join(f"{t} ({c})" for t, c, _ in emerging[:10]))
    if not enough:
        reasons.append(f"not enough data: {n_fb} questions with feedback (minimum {th.min_feedback})")
    return _severity_kind("concept", signals, n_fb, details, reasons), emerging


def _unknown_share(true_tags: list[tuple[str, ...]], known: set[str]) -> float | None:
    # Share of tag occurrences the model cannot predict.
    total = sum(len(t) for t in true_tags)
    return sum(1 for t in true_tags for x in t if x not in known) / total if total else None


def feature_kind(ref: Prepared, cur: Prepared, th: Thresholds, seed: int) -> KindResult:
    """Feature drift: the champion's important features changed rate, or stopped predicting their tags."""
    champion = ref.champion
    signals: list[Signal] = []
    reasons: list[str] = []
    n_fb = len(cur.labelled)
    details: dict[str, Any] = {"n_feedback": n_fb, "important_features": int(champion.columns.size)}
    enough_values = cur.n >= th.min_current and ref.n >= th.min_reference
    if champion.columns.size and len(cur.uniform) and len(ref.uniform):
        n_ref, n_cur = len(ref.uniform), len(cur.uniform)
        present_ref = np.asarray((ref.x[ref.uniform] > 0).sum(axis=0)).ravel()
        present_cur = np.asarray((cur.x[cur.uniform] > 0).sum(axis=0)).ravel()
        shift_share, details["feature_shifts"] = shifted_rates(
            "feature", champion.names, present_ref, n_ref, present_cur, n_cur, z=th.shift_z
        )
        signals.append(
            Signal(
                "feature_shift_share",
                shift_share,
                th.feature_shift_share,
                n_cur,
                enough_values,
                True,
                "share of the champion's important features whose rate changed significantly",
            )
        )
    enough_importance = n_fb >= th.min_feature_feedback
    n_match = min(len(cur.rows_labelled), len(ref.rows_labelled))
    if n_match:
        # The reference side is cut to the current's size: the quick model's noise depends on it.
        pick = ref.rows_labelled[sample_indices(len(ref.rows_labelled), n_match, seed + 5)]
        x_ref, y_ref = ref.x[pick], ref.rows_true[np.searchsorted(ref.rows_labelled, pick)]
        x_cur, y_cur = cur.x[cur.rows_labelled], cur.rows_true
        per_tag: list[dict[str, Any]] = []
        for j, tag in enumerate(ref.model_tags):
            cols, weights = champion.per_tag[tag]
            positives = (int(y_cur[:, j].sum()), int(y_ref[:, j].sum()))
            if not cols.size or min(positives) < th.min_tag_positives:
                continue
            agree_cur = cosine(centroid_difference(x_cur, y_cur[:, j])[cols], weights)
            agree_ref = cosine(centroid_difference(x_ref, y_ref[:, j])[cols], weights)
            per_tag.append(
                {
                    "tag": tag,
                    "agreement_current": agree_cur,
                    "agreement_reference": agree_ref,
                    "drop": agree_ref - agree_cur,
                    "positives": positives[0],
                }
            )
        per_tag.sort(key=lambda r: -float(r["drop"]))
        details["tags_compared"] = len(per_tag)
        details["importance_by_tag"] = per_tag[:10]
        top = float(per_tag[0]["drop"]) if per_tag else None
        signals.append(
            Signal(
                "importance_drop",
                top,
                th.importance_drop,
                n_fb,
                enough_importance and bool(per_tag),
                True,
                "largest per-tag drop of agreement with the champion's top features",
            )
        )
        changed = [str(r["tag"]) for r in per_tag if float(r["drop"]) > th.importance_drop]
        if changed:
            reasons.append("tags whose predictive features changed: " + ", ".join(changed[:10]))
    if not enough_importance:
        reasons.append(
            f"feature importance not compared: {n_fb} questions with feedback (minimum {th.min_feature_feedback})"
        )
    if not enough_values:
        reasons.append(f"feature values not compared: {cur.n} current questions (minimum {th.min_current})")
    return _severity_kind("feature", signals, cur.n, details, reasons)
