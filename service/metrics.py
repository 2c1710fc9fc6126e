"""Every Prometheus metric the service exports, defined in one place, on a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tagwatch.observability import process_registry

OTHER_TAG = "other"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


class ServiceMetrics:
    """The service's metrics. One instance per app; tests build their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or process_registry()
        r = self.registry
        self.http_requests = Counter(
            "tagwatch_http_requests_total",
            "HTTP requests answered, by route template, method and status class (2xx, 4xx, 5xx).",
            ["route", "method", "status_class"],
            registry=r,
        )
        self.http_duration = Histogram(
            "tagwatch_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter("tagwatch_predictions_total", "Questions the model predicted tags for.", registry=r)
        self.predicted_tags = Counter(
            "tagwatch_predicted_tags_total",
            "Tags suggested, by tag (the most frequent tags of the model by name, the rest as 'other').",
            ["tag"],
            registry=r,
        )
        self.prediction_score = Histogram(
            "tagwatch_prediction_score",
            "Calibrated score of each suggested tag.",
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.top_score = Histogram(
            "tagwatch_prediction_top_score",
            "Highest calibrated score per question (a falling top score is an early sign of drift).",
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.feedback = Counter(
            "tagwatch_feedback_total",
            "Feedback records accepted (true tags of a logged request).",
            registry=r,
        )
        self.auth_failures = Counter(
            "tagwatch_auth_failures_total",
            "Requests refused for their API key, by route template and reason: missing (no Authorization header), "
            "malformed (not 'Bearer <token>'), invalid (a token that is no configured key).",
            ["route", "reason"],
            registry=r,
        )
        self.model_info = Gauge(
            "tagwatch_model_info",
            "The model being served: 1 for the loaded version.",
            ["version", "name"],
            registry=r,
        )
        self.model_loaded_timestamp = Gauge(
            "tagwatch_model_loaded_timestamp_seconds",
            "When the served model was loaded (Unix time).",
            registry=r,
        )
        self.model_reloads = Counter(
            "tagwatch_model_reloads_total",
            "Model (re)loads after the champion alias moved, by result (success, failure).",
            ["result"],
            registry=r,
        )
        self.log_queue_depth = Gauge(
            "tagwatch_request_log_queue_depth", "Rows waiting in the request-log queue.", registry=r
        )
        self.log_queue_capacity = Gauge(
            "tagwatch_request_log_queue_capacity", "Capacity of the request-log queue.", registry=r
        )
        self.log_rows_written = Counter(
            "tagwatch_request_log_rows_written_total",
            "Rows written to the request-log database, by table.",
            ["table"],
            registry=r,
        )
        self.log_queue_bytes = Gauge(
            "tagwatch_request_log_queue_bytes",
            "Estimated memory of the rows the request log holds: the queue, the batch being written or retried, "
            "held feedback.",
            registry=r,
        )
        self.log_queue_capacity_bytes = Gauge(
            "tagwatch_request_log_queue_capacity_bytes",
            "Bound of tagwatch_request_log_queue_bytes: rows that do not fit go to the spill file.",
            registry=r,
        )
        self.log_rows_spilled = Counter(
            "tagwatch_request_log_rows_spilled_total",
            "Rows written to the local spill file instead of the database: the queue was full (rows or bytes), "
            "the database was failing (write-ahead), or the service stopped before writing them.",
            registry=r,
        )
        self.log_spill_pending = Gauge(
            "tagwatch_request_log_spill_pending_rows",
            "Rows in spill files, waiting to be written to the database.",
            registry=r,
        )
        self.log_spill_bytes = Gauge(
            "tagwatch_request_log_spill_bytes",
            "Bytes of spill files in the spill directory (this process's and leftovers of earlier ones).",
            registry=r,
        )
        self.log_spill_capacity_bytes = Gauge(
            "tagwatch_request_log_spill_capacity_bytes",
            "Cap of tagwatch_request_log_spill_bytes: rows that do not fit are dropped.",
            registry=r,
        )
        self.log_rows_dropped = Counter(
            "tagwatch_request_log_rows_dropped_total",
            "Rows lost: neither written to the database nor spilled, because the spill directory reached its "
            "cap (spill_full) or failed (spill_error).",
            ["reason"],
            registry=r,
        )
        for reason in ("spill_full", "spill_error"):
            self.log_rows_dropped.labels(reason=reason)  # exported at 0 from the start, for increase()
        self.log_write_failures = Counter(
            "tagwatch_request_log_write_failures_total",
            "Batch writes to the request-log database that failed (retried later).",
            registry=r,
        )
        self.log_last_write = Gauge(
            "tagwatch_request_log_last_write_timestamp_seconds",
            "When the request log last wrote a batch successfully (Unix time).",
            registry=r,
        )
