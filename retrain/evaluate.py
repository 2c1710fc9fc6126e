"""Evaluation: the quality of a model on questions it never saw, and the full protocol on a data file.

Metrics are computed over the model's tag vocabulary (``model.tags``), like the anchors they are compared with:
a true tag outside the vocabulary is neither a hit nor a miss (``tag_coverage`` says how many true tags the
vocabulary covers). Questions without any true tag in the vocabulary stay in, so the at-least-one-tag rule costs
a false positive on each of them; ``no_vocabulary_tag_share`` says how many there were. ``micro_f1`` is this
micro-F1 over the model's tags; ``micro_f1_all_tags`` counts every true tag, those outside the vocabulary as misses
(``retrain.compare.holdout_scores``: the F1 of the promotion comparison, the demo's and the backtest's windows).

``python -m retrain.evaluate`` runs the protocol: split both hold-outs off, train on the rest, evaluate on both,
time prediction per question; then the anchors' protocol (``anchors_protocol``: a random 80/20 over all questions,
a second model trained on the 80 %); it prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrain.compare import holdout_scores
from tagwatch.data import Question
from tagwatch.model import TagModel
from tagwatch.scoring import (
    binarize,
    expected_micro_f1,
    macro_f1,
    micro_prf,
    per_tag_f1,
    precision_at_k,
    recall_at_k,
    samples_jaccard,
)


def evaluate(model: TagModel, questions: Sequence[Question]) -> dict[str, Any]:
    """Quality of ``model`` on ``questions``: micro/macro F1, samples Jaccard, P@1, P@3, R@3, per-tag F1, ...

    Predictions go through ``model.predict_scores`` and ``model.decide``, the path the service uses.
    """
    if not questions:
        raise ValueError("cannot evaluate on no questions")
    scores = model.predict_scores(questions)
    decided = model.decide(scores)
    y_pred = binarize([[t for t, _ in row] for row in decided], model.tags)
    y_true = binarize([q.tags for q in questions], model.tags)
    precision, recall, f1 = micro_prf(y_true, y_pred)
    all_tags = holdout_scores([[t for t, _ in row] for row in decided], [q.tags for q in questions])
    per_tag = per_tag_f1(y_true, y_pred)
    support = y_true.sum(axis=0)
    vocabulary = set(model.tags)
    n_true_tags = sum(len(q.tags) for q in questions)
    n_covered = sum(1 for q in questions for t in q.tags if t in vocabulary)
    return {
        "micro_f1": f1,
        "micro_f1_all_tags": all_tags.micro_f1,
        "micro_precision": precision,
        "micro_recall": recall,
        "macro_f1": macro_f1(y_true, y_pred),
        "samples_jaccard": samples_jaccard(y_true, y_pred),
        "precision_at_1": precision_at_k(y_true, scores, 1),
        "precision_at_3": precision_at_k(y_true, scores, 3),
        "recall_at_3": recall_at_k(y_true, scores, 3),
        "expected_micro_f1": expected_micro_f1(scores, y_pred),
        "mean_predicted_tags": float(y_pred.sum(axis=1).mean()),
        "tag_coverage": n_covered / n_true_tags if n_true_tags else 0.0,
        "no_vocabulary_tag_share": float((y_true.sum(axis=1) == 0).mean()),
        "n_questions": len(questions),
        "per_tag_f1": {t: float(v) for t, v in zip(model.tags, per_tag, strict=True)},
        "per_tag_support": {t: int(v) for t, v in zip(model.tags, support, strict=True)},
    }


def time_predictions(model: TagModel, questions: Sequence[Question], *, repeat: int = 3) -> dict[str, float]:
    """Median milliseconds per single-question call: ``transform`` alone vs ``predict`` (transform + scoring +
    decision), in process."""
    transform_ms, predict_ms = [], []
    for q in questions:
        for _ in range(repeat):
            t0 = time.perf_counter()
            model.transform([q])
            t1 = time.perf_counter()
            model.predict([q])
            t2 = time.perf_counter()
            transform_ms.append((t1 - t0) * 1e3)
            predict_ms.append((t2 - t1) * 1e3)
    transform = statistics.median(transform_ms)
    predict = statistics.median(predict_ms)
    return {"transform_ms": transform, "predict_ms": predict, "ratio": predict / transform if transform else 0.0}


# The anchors' protocol: the seed and test share of the random split their reference results were measured on.
ANCHORS_SPLIT_SEED = 0
ANCHORS_TEST_FRACTION = 0.2


def anchors_protocol(
    questions: Sequence[Question], *, top_n: int = 100, max_tags: int = 5, seed: int = 42, **params: Any
) -> dict[str, Any]:
    """Train on a random 80 % of all ``questions`` and evaluate on the other 20 % (``retrain.split.random_split``,
    seed 0): the protocol the anchors' reference results were measured on. The model's choices are made on its 80 %
    alone, as always. Returns ``evaluate``'s metrics plus the sizes and the training time."""
    from retrain.split import random_split
    from retrain.train import train_model

    train, test = random_split(questions, test_fraction=ANCHORS_TEST_FRACTION, seed=ANCHORS_SPLIT_SEED)
    t0 = time.perf_counter()
    model = train_model(train, top_n=top_n, max_tags=max_tags, seed=seed, **params)
    train_seconds = time.perf_counter() - t0
    return {
        **evaluate(model, test),
        "n_train": len(train),
        "split_seed": ANCHORS_SPLIT_SEED,
        "train_seconds": train_seconds,
    }


def training_params(params: dict[str, Any]) -> dict[str, Any]:
    """``train_model``'s keyword arguments from a model's recorded ``params`` (top_n, max_tags, seed and the
    overridable parameters; bookkeeping like the analyzer version left out)."""
    from retrain.train import DEFAULT_PARAMS

    keep = {"top_n", "max_tags", "seed", *DEFAULT_PARAMS}
    return {k: v for k, v in params.items() if k in keep}


def run_protocol(
    questions: Sequence[Question],
    *,
    top_n: int = 100,
    max_tags: int = 5,
    seed: int = 42,
    time_fraction: float = 0.2,
    random_fraction: float = 0.2,
    timing_questions: int = 300,
    anchors: bool = True,
    **params: Any,
) -> dict[str, Any]:
    """Split, train, evaluate on both hold-outs, time single predictions, then (``anchors``) the anchors' protocol
    with a second model; everything JSON-able."""
    from retrain.split import split_holdouts
    from retrain.train import train_model

    splits = split_holdouts(questions, time_fraction=time_fraction, random_fraction=random_fraction, seed=seed)
    t0 = time.perf_counter()
    model = train_model(splits.train, top_n=top_n, max_tags=max_tags, seed=seed, **params)
    train_seconds = time.perf_counter() - t0
    sample = [splits.random_holdout[i] for i in np.random.default_rng(seed).permutation(len(splits.random_holdout))]
    result = {
        "sizes": {
            "train": len(splits.train),
            "random_holdout": len(splits.random_holdout),
            "time_holdout": len(splits.time_holdout),
            "time_cutoff": splits.time_cutoff.isoformat() if splits.time_cutoff else None,
        },
        "params": model.params,
        "info": {k: v for k, v in model.info.items() if k != "tag_counts"},
        "train_seconds": train_seconds,
        "holdout_random": evaluate(model, splits.random_holdout),
        "holdout_time": evaluate(model, splits.time_holdout),
        "timing": time_predictions(model, sample[:timing_questions]),
    }
    if anchors:
        result["holdout_anchors"] = anchors_protocol(questions, top_n=top_n, max_tags=max_tags, seed=seed, **params)
    return result


METRIC_ROWS = (
    "micro_f1",
    "micro_f1_all_tags",
    "micro_precision",
    "micro_recall",
    "macro_f1",
    "samples_jaccard",
    "precision_at_1",
    "precision_at_3",
    "recall_at_3",
    "expected_micro_f1",
    "mean_predicted_tags",
    "tag_coverage",
    "no_vocabulary_tag_share",
    "n_questions",
)


HOLDOUT_COLUMNS = {
    "holdout_random": "random hold-out",
    "holdout_time": "time hold-out",
    "holdout_anchors": "anchors' protocol",
}


def markdown_table(result: dict[str, Any]) -> str:
    columns = [k for k in HOLDOUT_COLUMNS if k in result]
    rows = [
        "| metric | " + " | ".join(HOLDOUT_COLUMNS[k] for k in columns) + " |",
        "| --- |" + " ---: |" * len(columns),
    ]
    for name in METRIC_ROWS:
        cells = [result[k][name] for k in columns]
        rows.append(f"| {name} | " + " | ".join(f"{v:d}" if isinstance(v, int) else f"{v:.4f}" for v in cells) + " |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    from tagwatch.data import load_questions
    from tagwatch.settings import BUNDLED_DATA

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=BUNDLED_DATA)
    parser.add_argument("--top-n", type=int, default=100)
    parser.add_argument("--max-tags", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="training parameter override, e.g. --param C=0.2 (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="also write the full result (per-tag F1 included) here")
    parser.add_argument(
        "--no-anchors", action="store_true", help="skip the anchors' protocol (a second model on a random 80/20)"
    )
    args = parser.parse_args(argv)
    params = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--param needs NAME=VALUE, got {item!r}")
        params[name] = json.loads(value)
    questions, _ = load_questions(args.data)
    result = run_protocol(
        questions, top_n=args.top_n, max_tags=args.max_tags, seed=args.seed, anchors=not args.no_anchors, **params
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, sort_keys=True), encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("sizes", "info", "train_seconds", "timing")}, indent=1, default=str))
    print(markdown_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
