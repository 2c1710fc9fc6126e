"""Drift-detection benchmark, recorded in bench/results/drift.md.

1. Speed: one full drift run (all kinds + the HTML report) on 10k x 10k real questions, stable and shifted;
   target <= 15 s and >= 3x faster than a plain Evidently ``DataDriftPreset`` run (+ HTML) on the same data
   (text and descriptor columns).
2. False alarms: every signal's distribution on i.i.d. windows (300, 500, 1,000 questions with feedback) against
   a 5,000-question reference, which is what the default thresholds are set from.
3. Detection: how often each kind fires on shifted windows (topic shift, new tag, swapped tags) of those sizes.

Run: ``.venv/bin/python -m bench.drift [--quick]``. Trains its own model on a seeded sample (no registry).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.drift_report import SIGNALS, markdown
from monitor.drift.detect import detect_drift, prepare
from monitor.drift.prepare import Prepared
from monitor.drift.types import Baseline, DriftInput, DriftResult, Thresholds
from monitor.report import write_report
from tagwatch.data import Question
from tagwatch.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TRAIN_SIZE = 12_000
BIG = 10_000
REFERENCE_SIZE = 5_000  # retrain.job.REFERENCE_SAMPLE_SIZE
SEED = 42
NEW_TAG = "brand-new-framework"
# The thresholds measured here: the settings' defaults (unless TAGWATCH_DRIFT_* variables are set).
THRESHOLDS = Thresholds.from_settings(Settings())


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


REPEAT = 3  # timed runs per measurement; the median is recorded (single runs on 2 shared cores vary by +-30 %)


def _median_timed(fn: Callable[[], Any], runs: list[float] | None = None) -> tuple[Any, float]:
    """``fn`` run REPEAT times: its last result and the median of the times (all times appended to ``runs``)."""
    out, times = None, []
    for _ in range(REPEAT):
        out, seconds = _timed(fn)
        times.append(seconds)
    if runs is not None:
        runs.extend(times)
    return out, float(np.median(times))


def _labelled(questions: list[Question]) -> DriftInput:
    return DriftInput(questions, [q.tags for q in questions])


def _preset_seconds(reference: Prepared, current: Prepared, html: Path) -> float:
    """A plain DataDriftPreset on the same columns our Evidently report gets, all rows, plus its HTML."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    def frame(side: Prepared) -> pd.DataFrame:
        top = [side.model_tags[int(np.argmax(np.where(side.predicted[p], side.scores[p], -1)))] for p in side.uniform]
        return pd.DataFrame({**side.described, "predicted_tag": top})

    definition = DataDefinition(
        text_columns=["text"],
        numerical_columns=["length", "code_share", "oov_share"],
        categorical_columns=["predicted_tag"],
    )
    ref, cur = frame(reference), frame(current)
    start = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition)
    )
    snapshot.save_html(str(html))
    return time.perf_counter() - start


def _run_and_report(
    reference: DriftInput | Prepared, current: DriftInput, model: Any, baseline: Baseline, path: Path
) -> DriftResult:
    result = detect_drift(reference, current, model, baseline, THRESHOLDS)
    write_report(result, path)
    return result


def bench_speed(
    model: Any, baseline: Baseline, scenarios: dict[str, tuple[list[Question], list[Question]]], workdir: Path
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    th = THRESHOLDS
    for name, (ref_q, cur_q) in scenarios.items():
        print(f"speed: {name} ({len(ref_q)} x {len(cur_q)}) ...", flush=True)
        row: dict[str, Any] = {"reference": len(ref_q), "current": len(cur_q)}
        reference, current = _labelled(ref_q), _labelled(cur_q)
        runs: dict[str, list[float]] = {k: [] for k in ("cold", "warm", "logged_scores", "preset")}
        _, row["cold_seconds"] = _median_timed(
            partial(_run_and_report, reference, current, model, baseline, workdir / f"{name}-cold.html"), runs["cold"]
        )
        prepared, row["prepare_reference_seconds"] = _timed(partial(prepare, reference, model, th))
        result, row["warm_seconds"] = _median_timed(
            partial(_run_and_report, prepared, current, model, baseline, workdir / f"{name}-warm.html"), runs["warm"]
        )
        scores = model.predict_scores(cur_q)
        logged = DriftInput(cur_q, [q.tags for q in cur_q], model.decide(scores), scores)
        _, row["logged_scores_seconds"] = _median_timed(
            partial(_run_and_report, prepared, logged, model, baseline, workdir / f"{name}-logged.html"),
            runs["logged_scores"],
        )
        full = prepare(_labelled(ref_q), model, replace_rows(th, len(ref_q)))
        full_cur = prepare(_labelled(cur_q), model, replace_rows(th, len(cur_q)), role="current")
        preset = [_preset_seconds(full, full_cur, workdir / f"{name}-preset.html") for _ in range(REPEAT)]
        runs["preset"] = preset
        row["preset_seconds"] = float(np.median(preset))
        row["runs"] = {k: [round(v, 2) for v in times] for k, times in runs.items()}
        row["speedup_cold"] = row["preset_seconds"] / row["cold_seconds"]
        row["speedup_warm"] = row["preset_seconds"] / row["warm_seconds"]
        row["report_mb"] = (workdir / f"{name}-warm.html").stat().st_size / 1e6
        row["verdicts"] = {k: bool(r.detected) for k, r in result.kinds.items()}
        row["text_auc"] = result.data.score
        out[name] = row
        print(
            f"  cold {row['cold_seconds']:.1f} s, warm {row['warm_seconds']:.1f} s, "
            f"logged scores {row['logged_scores_seconds']:.1f} s, preset {row['preset_seconds']:.1f} s "
            f"({row['speedup_cold']:.1f}x / {row['speedup_warm']:.1f}x)",
            flush=True,
        )
    return out


def replace_rows(th: Thresholds, rows: int) -> Thresholds:
    return replace(th, max_rows=max(rows, th.max_rows))


def _signal_values(result: DriftResult) -> dict[str, float | None]:
    values: dict[str, float | None] = {"text_auc": result.data.score}
    for kind in result.kinds.values():
        for name, s in kind.details.get("signals", {}).items():
            values[name] = s["value"]
    return values


def bench_false_alarms(
    model: Any, baseline: Baseline, reference: Prepared, pool: list[Question], sizes: list[int], seeds: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in sizes:
        print(f"false alarms: {seeds} i.i.d. windows of {n} ...", flush=True)
        values: dict[str, list[float]] = {}
        alarms = dict.fromkeys(SIGNALS, 0)
        for seed in range(seeds):
            window = random.Random(1000 + seed).sample(pool, n)
            result = detect_drift(reference, _labelled(window), model, baseline, THRESHOLDS, report=False)
            for kind, r in result.kinds.items():
                alarms[kind] += int(r.detected)
            for name, v in _signal_values(result).items():
                if v is not None:
                    values.setdefault(name, []).append(float(v))
        out[str(n)] = {
            "windows": seeds,
            "alarms": alarms,
            "signals": {
                k: {"mean": statistics.fmean(v), "sd": statistics.pstdev(v), "max": max(v), "min": min(v)}
                for k, v in values.items()
            },
        }
    return out


def bench_detection(
    model: Any,
    baseline: Baseline,
    reference: Prepared,
    pool: list[Question],
    recent: list[Question],
    sizes: list[int],
    seeds: int,
) -> dict[str, Any]:
    counts = reference.true.sum(axis=0)
    a, b = (model.tags[j] for j in np.argsort(-counts)[:2])
    swap = {a: b, b: a}
    scenarios: dict[str, Callable[[list[Question], list[Question]], DriftInput]] = {
        "topic shift (2022+ questions)": lambda iid, rec: _labelled(rec),
        "new tag on 20% of feedback": lambda iid, rec: DriftInput(
            iid, [(*q.tags, NEW_TAG) if i % 5 == 0 else q.tags for i, q in enumerate(iid)]
        ),
        f"swapped tags {a} <-> {b}": lambda iid, rec: DriftInput(
            iid, [tuple(swap.get(t, t) for t in q.tags) for q in iid]
        ),
    }
    out: dict[str, Any] = {}
    for name, make in scenarios.items():
        out[name] = {}
        for n in sizes:
            print(f"detection: {name}, windows of {n} ...", flush=True)
            hits = dict.fromkeys(SIGNALS, 0)
            scores: dict[str, list[float]] = {k: [] for k in SIGNALS}
            for seed in range(seeds):
                rng = random.Random(2000 + seed)
                result = detect_drift(
                    reference,
                    make(rng.sample(pool, n), rng.sample(recent, n)),
                    model,
                    baseline,
                    THRESHOLDS,
                    report=False,
                )
                for kind, r in result.kinds.items():
                    hits[kind] += int(r.detected)
                    if r.score is not None:
                        scores[kind].append(r.score)
            out[name][str(n)] = {
                "windows": seeds,
                "detected": hits,
                "mean_score": {k: statistics.fmean(v) if v else None for k, v in scores.items()},
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer windows (a smoke run, not for the record)")
    args = parser.parse_args()
    from retrain.evaluate import evaluate
    from retrain.train import train_model
    from tagwatch.data import load_questions
    from tagwatch.settings import BUNDLED_DATA

    load = os.getloadavg()[0]
    questions, _ = load_questions(BUNDLED_DATA)
    shuffled = list(questions)
    random.Random(SEED).shuffle(shuffled)
    train, held = shuffled[:TRAIN_SIZE], shuffled[TRAIN_SIZE:]
    print(f"training a model on {len(train)} questions ...", flush=True)
    model, train_seconds = _timed(lambda: train_model(train, top_n=100, max_tags=5, seed=SEED))
    reference_q, baseline_q, pool = held[:REFERENCE_SIZE], held[REFERENCE_SIZE:8_000], held[8_000:]
    baseline = Baseline.from_metrics(evaluate(model, baseline_q))
    _, import_seconds = _timed(lambda: __import__("evidently"))
    dated = sorted((q for q in held if q.created_at is not None), key=lambda q: q.created_at or datetime.min)
    speed_scenarios = {
        "stable (random 10k vs random 10k)": (held[:BIG], held[BIG : 2 * BIG]),
        "shifted (oldest 10k vs newest 10k)": (dated[:BIG], dated[-BIG:]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        speed = bench_speed(model, baseline, speed_scenarios, Path(tmp))
    reference = prepare(_labelled(reference_q), model, THRESHOLDS)
    seeds = 4 if args.quick else 20
    # 100: the minimum feedback of the concept kind (the data kind needs 300 and stays silent there)
    false_alarms = bench_false_alarms(model, baseline, reference, pool, [100, 300, 500, 1_000], seeds)
    recent = [q for q in pool if q.created_at is not None and q.created_at.year >= 2022]
    detection = bench_detection(model, baseline, reference, pool, recent, [300, 500, 1_000], 2 if args.quick else 5)
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "load": f"{load:.1f}",
        "load_end": f"{os.getloadavg()[0]:.1f}",
        "import_seconds": import_seconds,
        "model": f"train_model on {len(train)} random questions, top {len(model.tags)} tags "
        f"(trained in {train_seconds:.0f} s), hold-out micro-F1 {baseline.micro_f1:.3f}",
        "quick": args.quick,
        "repeat": REPEAT,
        "reference_size": REFERENCE_SIZE,
    }
    md = markdown(meta, speed, false_alarms, detection, asdict(THRESHOLDS))
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "drift.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
