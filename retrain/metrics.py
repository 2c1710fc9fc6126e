"""Every Prometheus metric the retrain runner exports, defined in one place.

On a registry of its own in ``tagwatch retrain-worker``; on the monitor's registry when the runner is embedded in
``tagwatch monitor`` (one /metrics endpoint per process). The names are those the alerts and the retraining
dashboard query, whichever process exports them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tagwatch.observability import process_registry

# tagwatch_retrains_total's results; a skipped request (its champion moved) is no retrain and is not counted.
RESULTS = ("promoted", "rejected", "held", "failed")


class RetrainMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or process_registry()
        r = self.registry
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
        for result in RESULTS:
            self.retrains.labels(result)
