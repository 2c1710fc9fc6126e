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

from monitor.detect import Baseline, DriftInput, DriftResult, Prepared, Thresholds, detect_drift, prepare
from monitor.report import write_report
from tagwatch.data import Question

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TRAIN_SIZE = 12_000
BIG = 10_000
REFERENCE_SIZE = 5_000  # retrain.job.REFERENCE_SAMPLE_SIZE
SEED = 42
NEW_TAG = "brand-new-framework"


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
    result = detect_drift(reference, current, model, baseline)
    write_report(result, path)
    return result


def bench_speed(
    model: Any, baseline: Baseline, scenarios: dict[str, tuple[list[Question], list[Question]]], workdir: Path
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    th = Thresholds()
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


SIGNALS = {
    "data": ["text_auc", "prediction_js", "length_drift", "code_share_drift", "oov_share_drift", "expected_f1_drop"],
    "concept": ["f1_drop", "label_shift_share", "emerging_share"],
    "feature": ["importance_drop", "feature_shift_share"],
}


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
            result = detect_drift(reference, _labelled(window), model, baseline, report=False)
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
                    reference, make(rng.sample(pool, n), rng.sample(recent, n)), model, baseline, report=False
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


def _markdown(
    meta: dict[str, Any], speed: dict[str, Any], false_alarms: dict[str, Any], detection: dict[str, Any]
) -> str:
    lines = [
        "# Drift detection benchmark",
        "",
        f"Measured {meta['date']} on {meta['machine']} ({meta['cores']} cores shared with other jobs: load average "
        f"{meta['load']} at the start, {meta['load_end']} at the end); model: {meta['model']}. Produced by "
        "`.venv/bin/python -m bench.drift`.",
        "",
        "## Speed: one full drift run (all kinds + HTML report), 10k x 10k questions",
        "",
        "cold: both sides scored by the model inside the run; warm: the reference prepared once per champion "
        "(as the monitor does) and the current window scored inside the run; logged scores: the window's "
        "scores come from the request log. Preset: `Report([DataDriftPreset()])` on the same columns "
        "(text, length, code share, unknown-word share, top predicted tag), all rows, plus `save_html`. "
        f"Each time is the median of {REPEAT} runs (all runs below the table).",
        "",
        "| data | cold s | warm s | logged scores s | prepare reference s | DataDriftPreset s | "
        "speed-up cold | speed-up warm | report MB | text AUC | verdicts |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in speed.items():
        verdicts = ", ".join(k for k, v in r["verdicts"].items() if v) or "none"
        lines.append(
            f"| {name} | {r['cold_seconds']:.1f} | {r['warm_seconds']:.1f} | "
            f"{r['logged_scores_seconds']:.1f} | {r['prepare_reference_seconds']:.1f} | "
            f"{r['preset_seconds']:.1f} | {r['speedup_cold']:.1f}x | {r['speedup_warm']:.1f}x | "
            f"{r['report_mb']:.1f} | {r['text_auc']:.3f} | {verdicts} |"
        )
    lines.append("")
    for name, r in speed.items():
        lines.append(f"- {name}, seconds per run: " + "; ".join(f"{k} {v}" for k, v in r["runs"].items()))
    lines += [
        "",
        f"Evidently import (once per process, not in the numbers above): {meta['import_seconds']:.1f} s.",
        "",
        "## False alarms: i.i.d. windows against the reference",
        "",
        f"Reference: {REFERENCE_SIZE} held-out questions of the training distribution; windows drawn from "
        "the same distribution with full feedback. Per signal: mean, sd and max over the windows "
        "(min for the AUC too); the threshold it is compared with.",
        "",
    ]
    th = asdict(Thresholds())
    threshold_of = {
        "text_auc": th["text_auc"],
        "prediction_js": th["prediction_js"],
        "length_drift": th["descriptor_wasserstein"],
        "code_share_drift": th["descriptor_wasserstein"],
        "oov_share_drift": th["descriptor_wasserstein"],
        "expected_f1_drop": th["expected_f1_drop"],
        "f1_drop": th["f1_drop"],
        "label_shift_share": th["label_shift_share"],
        "emerging_share": th["emerging_share"],
        "importance_drop": th["importance_drop"],
        "feature_shift_share": th["feature_shift_share"],
    }
    sizes = list(false_alarms)
    header = "| signal (kind) | threshold | " + " | ".join(f"n={n}: mean / sd / max" for n in sizes) + " |"
    lines += [header, "|---|---|" + "---|" * len(sizes)]
    for kind, names in SIGNALS.items():
        for name in names:
            cells = []
            for n in sizes:
                s = false_alarms[n]["signals"].get(name)
                cells.append("-" if s is None else f"{s['mean']:.3f} / {s['sd']:.3f} / {s['max']:.3f}")
            lines.append(f"| {name} ({kind}) | {threshold_of[name]} | " + " | ".join(cells) + " |")
    lines += ["", "Alarms (kind detected) on these windows:", ""]
    for n in sizes:
        fa = false_alarms[n]
        lines.append(f"- n={n}: " + ", ".join(f"{k} {v}/{fa['windows']}" for k, v in fa["alarms"].items()))
    lines += [
        "",
        "## Detection on shifted windows",
        "",
        "Windows detected out of those run, and the kind's mean score (data: text AUC, threshold "
        f"{th['text_auc']}; concept and feature: severity max(value / threshold), threshold 1).",
        "",
        "| scenario | window | data | concept | feature |",
        "|---|---|---|---|---|",
    ]
    for name, by_size in detection.items():
        for n, r in by_size.items():
            cells = []
            for kind in SIGNALS:
                mean = r["mean_score"][kind]
                cells.append(f"{r['detected'][kind]}/{r['windows']} ({'-' if mean is None else f'{mean:.2f}'})")
            lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    lines += ["", "## How the defaults follow", "", *_justification(false_alarms, detection, th)]
    return "\n".join(lines) + "\n"


def _justification(false_alarms: dict[str, Any], detection: dict[str, Any], th: dict[str, Any]) -> list[str]:
    def worst(name: str, sizes: list[str]) -> float:
        return max(false_alarms[n]["signals"][name]["max"] for n in sizes if name in false_alarms[n]["signals"])

    data_sizes = [n for n in false_alarms if int(n) >= th["min_current"]]
    auc_sd = max(false_alarms[n]["signals"]["text_auc"]["sd"] for n in data_sizes)
    shift = next(iter(detection.values()))
    shifted_auc = min(r["mean_score"]["data"] or 0.0 for r in shift.values())
    return [
        f"- `text_auc` {th['text_auc']}: on i.i.d. windows of {th['min_current']}+ questions the AUC never exceeded "
        f"{worst('text_auc', data_sizes):.3f} (sd up to {auc_sd:.3f}), so {th['text_auc']} sits more than "
        f"{(th['text_auc'] - 0.5) / auc_sd:.0f} sd above chance; topic-shifted windows average at least "
        f"{shifted_auc:.2f}. Evidently's own default (0.55) is only {0.55 - worst('text_auc', data_sizes):.3f} "
        "above the largest i.i.d. AUC.",
        f"- `max_rows` {th['max_rows']}: the AUC's sd at windows of 1,000 against {th['max_rows']} reference rows is "
        f"{false_alarms[data_sizes[-1]]['signals']['text_auc']['sd']:.3f}; more rows cost model time "
        "(~1 ms a question) and domain-classifier time without changing a verdict.",
        f"- `f1_drop` {th['f1_drop']} and at least {th['shift_z']} bootstrap standard errors: the observed drop on "
        f"i.i.d. windows reached {worst('f1_drop', list(false_alarms)):.3f} (at 100 questions with feedback, "
        f"sd {false_alarms[next(iter(false_alarms))]['signals']['f1_drop']['sd']:.3f}); the standard-error term "
        "raises the bar on small windows, the floor keeps tiny but significant drops on big ones from alarming.",
        f"- `label_shift_share` {th['label_shift_share']} and `feature_shift_share` {th['feature_shift_share']} "
        f"(items whose rate moved by |z| > {th['shift_z']}): i.i.d. maxima "
        f"{worst('label_shift_share', list(false_alarms)):.3f} and "
        f"{worst('feature_shift_share', data_sizes):.3f}; a z-test per item keeps the false-alarm rate flat across "
        "window sizes, where a distance (JS) would need a threshold per size.",
        f"- `emerging_share` {th['emerging_share']} with an exact rate test at p < {th['emerging_p_value']}: "
        f"i.i.d. maximum {worst('emerging_share', list(false_alarms)):.3f}.",
        f"- `importance_drop` {th['importance_drop']} (tags with >= {th['min_tag_positives']} positives a side): "
        f"i.i.d. maximum {worst('importance_drop', data_sizes):.3f}; swapping two tags turns the agreement negative "
        "(drops of 1.5 and more).",
        "- Reason-only thresholds (descriptors, prediction JS, label-free drop) sit above their i.i.d. maxima at "
        f"{th['min_current']}+ questions, so a stable window carries no stray reasons.",
    ]


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
    reference = prepare(_labelled(reference_q), model)
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
    }
    md = _markdown(meta, speed, false_alarms, detection)
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "drift.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
