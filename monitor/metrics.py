"""Every Prometheus metric the monitor exports, defined in one place, on a registry of its own (the retrain
metrics are the runner's: retrain/metrics.py, on this registry when the runner is embedded)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.drift.types import KINDS
from tagwatch.observability import process_registry


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or process_registry()
        r = self.registry
        self.drift_score = Gauge(
            "tagwatch_drift_score",
            "Drift score of the latest window, by kind (data, concept, feature).",
            ["kind"],
            registry=r,
        )
        self.drift_threshold = Gauge(
            "tagwatch_drift_threshold", "Threshold the drift score is compared with, by kind.", ["kind"], registry=r
        )
        self.drift_detected = Gauge(
            "tagwatch_drift_detected",
            "1 when the latest window detected drift of this kind, else 0.",
            ["kind"],
            registry=r,
        )
        self.drift_confirmed = Gauge(
            "tagwatch_drift_confirmed",
            "1 when the policy confirmed drift of this kind (N consecutive windows), else 0.",
            ["kind"],
            registry=r,
        )
        # The three micro-F1s count the model's tags only (true tags outside them left out), as the model card does.
        self.feedback_micro_f1 = Gauge(
            "tagwatch_feedback_micro_f1",
            "Micro-F1 over the model's tags of the served model on the latest window's feedback.",
            registry=r,
        )
        self.baseline_micro_f1 = Gauge(
            "tagwatch_baseline_micro_f1",
            "Micro-F1 over the model's tags of the served model on its own random hold-out.",
            registry=r,
        )
        self.estimated_micro_f1 = Gauge(
            "tagwatch_estimated_micro_f1",
            "Label-free estimate of micro-F1 over the model's tags on the latest window, from the calibrated scores.",
            registry=r,
        )
        self.emerging_tag_share = Gauge(
            "tagwatch_emerging_tag_share",
            "Share of the latest window's labelled questions carrying a tag the model cannot predict that is "
            "new or far more frequent than in the reference.",
            registry=r,
        )
        self.window_questions = Gauge(
            "tagwatch_monitor_window_questions",
            "Questions in the latest window, by part (all, labelled).",
            ["part"],
            registry=r,
        )
        self.runs = Counter(
            "tagwatch_monitor_runs_total", "Monitor runs, by status (ok, skipped, failed).", ["status"], registry=r
        )
        self.run_duration = Histogram(
            "tagwatch_monitor_run_duration_seconds",
            "Duration of a monitor run (detection, report, decision; not the retrain).",
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
            registry=r,
        )
        self.interval = Gauge(
            "tagwatch_monitor_interval_seconds",
            "Seconds between scheduled monitor runs (alerts call the monitor stale after two of them).",
            registry=r,
        )
        self.last_success = Gauge(
            "tagwatch_monitor_last_success_timestamp_seconds",
            "When a monitor run last finished successfully (Unix time).",
            registry=r,
        )
        self.champion_info = Gauge(
            "tagwatch_monitor_champion_info",
            "The champion the monitor measured against: 1 for its version.",
            ["version"],
            registry=r,
        )
        for kind in KINDS:
            for g in (self.drift_detected, self.drift_confirmed):
                g.labels(kind).set(0)
        for status in ("ok", "skipped", "failed"):
            self.runs.labels(status)

    def show_window(
        self,
        kinds: Mapping[str, tuple[float | None, float | None, bool]],
        *,
        feedback_micro_f1: float | None,
        baseline_micro_f1: float | None,
        estimated_micro_f1: float | None,
        emerging_tag_share: float | None,
        window: Mapping[str, int] | None,
    ) -> None:
        """The gauges of one measured window: per kind (score, threshold, detected), the accuracy figures and the
        window's sizes. A None keeps the gauge's previous value (not measured on this window). The live monitor and
        the exporter (the same values read back from drift_runs) both set them here."""
        for kind, (score, threshold, detected) in kinds.items():
            if score is not None:
                self.drift_score.labels(kind).set(score)
            if threshold is not None:
                self.drift_threshold.labels(kind).set(threshold)
            self.drift_detected.labels(kind).set(1 if detected else 0)
        for gauge, value in (
            (self.feedback_micro_f1, feedback_micro_f1),
            (self.baseline_micro_f1, baseline_micro_f1),
            (self.estimated_micro_f1, estimated_micro_f1),
            (self.emerging_tag_share, emerging_tag_share),
        ):
            if value is not None:
                gauge.set(value)
        for part, n in (window or {}).items():
            self.window_questions.labels(part).set(n)
