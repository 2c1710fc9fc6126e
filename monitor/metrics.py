"""Every Prometheus metric the monitor exports, defined in one place, on a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

KINDS = ("data", "concept", "feature")


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
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
        self.feedback_micro_f1 = Gauge(
            "tagwatch_feedback_micro_f1", "Micro-F1 of the served model on the latest window's feedback.", registry=r
        )
        self.baseline_micro_f1 = Gauge(
            "tagwatch_baseline_micro_f1", "Micro-F1 of the served model on its own random hold-out.", registry=r
        )
        self.estimated_micro_f1 = Gauge(
            "tagwatch_estimated_micro_f1",
            "Label-free estimate of micro-F1 on the latest window, from the calibrated scores.",
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
        self.retrains = Counter(
            "tagwatch_retrains_total",
            "Retrains, by result (promoted, rejected, held: feedback suspected of poisoning, failed).",
            ["result"],
            registry=r,
        )
        self.retrain_duration = Histogram(
            "tagwatch_retrain_duration_seconds",
            "Duration of a retrain: training the challenger and comparing it with the champion.",
            buckets=(5, 10, 20, 30, 60, 120, 300, 600, 1200),
            registry=r,
        )
        self.last_retrain = Gauge(
            "tagwatch_retrain_last_timestamp_seconds", "When the latest retrain finished (Unix time).", registry=r
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
        for result in ("promoted", "rejected", "held", "failed"):
            self.retrains.labels(result)
