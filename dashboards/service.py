"""The ``tagwatch-service`` dashboard: traffic, errors, latency, replicas, the served model, the request log's
health."""

from __future__ import annotations

from typing import Any

from dashboards.annotations import champion_annotation
from dashboards.board import SERVICE_UID, dashboard
from dashboards.panels import Layout, colors, prom, stat, table, threshold_line, timeseries

API_JOB = 'job="tagwatch-api"'
API_UP = f"up{{{API_JOB}}}"


def service_dashboard() -> dict[str, Any]:
    lay = Layout()
    lay.row("Traffic")
    lay.line(
        timeseries(
            "Requests/s by route and status",
            prom("sum by (route, status_class) (tagwatch:http_requests:rate5m)", "{{route}} {{status_class}}"),
            description="HTTP requests answered per second (5m rate), all replicas.",
            unit="reqps",
            stacked=True,
        ),
        timeseries(
            "5xx ratio",
            prom("tagwatch:http_request_errors:ratio_rate5m", "{{job}}"),
            description="Share of requests answered with a 5xx status (5m rate). The dashed line is at 5%.",
            unit="percentunit",
            threshold=0.05,
        ),
        timeseries(
            "Refused API keys (per 5m)",
            prom(
                "sum by (route, reason) (increase(tagwatch_auth_failures_total[5m]))",
                "{{route}} {{reason}}",
            ),
            description="Requests refused for their API key, all replicas: missing or malformed Authorization "
            "header (401), a token that is no configured key (403). A steady stream of 'invalid' is a client with "
            "a rotated-out key, or someone guessing.",
            unit="short",
            bars=True,
        ),
    )
    lay.line(
        timeseries(
            "Prediction latency p50 / p95 / p99",
            prom("tagwatch:http_request_duration_seconds:p50_rate5m", "p50"),
            prom("tagwatch:http_request_duration_seconds:p95_rate5m", "p95"),
            prom("tagwatch:http_request_duration_seconds:p99_rate5m", "p99"),
            description="Latency quantiles of the /predict routes over 5 minutes, all replicas.",
            unit="s",
        ),
        timeseries(
            "Latency p95 by route",
            prom(
                "histogram_quantile(0.95,"
                " sum by (route, le) (rate(tagwatch_http_request_duration_seconds_bucket[5m])))",
                "{{route}}",
            ),
            description="95th percentile of the answer time of every route over 5 minutes, all replicas.",
            unit="s",
        ),
    )
    lay.line(
        timeseries(
            "Predictions/s",
            prom("sum(tagwatch:predictions:rate5m)", "all replicas"),
            prom("sum by (instance) (rate(tagwatch_predictions_total[5m]))", "{{instance}}"),
            description="Questions the model suggested tags for, per second (5m rate).",
            unit="ops",
        ),
        timeseries(
            "Feedback/s",
            prom("sum(rate(tagwatch_feedback_total[5m]))", "all replicas"),
            prom("sum by (instance) (rate(tagwatch_feedback_total[5m]))", "{{instance}}"),
            description="Feedback records (the true tags of logged requests) accepted per second (5m rate).",
            unit="ops",
        ),
        stat(
            "Replicas up",
            prom(f"sum({API_UP})", "up", instant=True),
            prom(f"count({API_UP})", "discovered", instant=True),
            description="API replicas Prometheus scrapes successfully, and those its DNS discovery found.",
            text_mode="value_and_name",
            thresholds=[(None, "red"), (1, "green")],
            no_value="0",
        ),
        widths=(9, 9, 6),
    )
    lay.row("Served model")
    lay.line(
        table(
            "Model version served per replica",
            prom("tagwatch_model_info == 1", instant=True, fmt="table"),
            description="The registry version each replica serves now (tagwatch_model_info).",
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True, "Value": True, "__name__": True, "job": True},
                        "indexByName": {"instance": 0, "version": 1, "name": 2},
                        "renameByName": {"instance": "Replica", "name": "Model", "version": "Version"},
                    },
                }
            ],
        ),
        stat(
            "Model loaded",
            prom("tagwatch_model_loaded_timestamp_seconds * 1000", "{{instance}}", instant=True),
            description="When each replica loaded the model it serves.",
            unit="dateTimeFromNow",
            text_mode="value_and_name",
        ),
        stat(
            "Model reloads in range by result",
            prom("sum by (result) (increase(tagwatch_model_reloads_total[$__range]))", "{{result}}", instant=True),
            description="Model (re)loads after the champion alias moved, over the dashboard's time range.",
            text_mode="value_and_name",
            no_value="none",
            overrides=colors(success="green", failure="red"),
        ),
        height=6,
        widths=(10, 7, 7),
    )
    lay.row("Resources")
    lay.line(
        timeseries(
            "Memory (RSS) per replica",
            prom(f"process_resident_memory_bytes{{{API_JOB}}}", "{{instance}}"),
            description="Resident memory of each API replica's process (process_resident_memory_bytes): the model, "
            "the request log's queue and the requests in flight. A steady climb without more traffic is a leak; "
            "compare with the container's memory limit.",
            unit="bytes",
        ),
        timeseries(
            "CPU per replica",
            prom(f"rate(process_cpu_seconds_total{{{API_JOB}}}[$__rate_interval])", "{{instance}}"),
            description="CPU each API replica's process uses, in cores (user + system seconds per second). One "
            "uvicorn worker uses at most one core for predictions (the model runs under the GIL).",
            unit="short",
        ),
        timeseries(
            "Python GC collections/s per replica",
            prom(
                f"sum by (instance) (rate(python_gc_collections_total{{{API_JOB}}}[$__rate_interval]))",
                "{{instance}}",
            ),
            description="Garbage collections per second of each API replica (all generations).",
            unit="ops",
        ),
    )
    lay.row("Request log")
    lay.line(
        timeseries(
            "Queue depth vs capacity",
            prom("tagwatch_request_log_queue_depth", "depth {{instance}}"),
            prom("tagwatch_request_log_queue_capacity", "capacity {{instance}}"),
            description="Rows waiting in each replica's request-log queue, and the queue's capacity (dashed): a full "
            "queue spills rows to disk.",
            unit="short",
            overrides=[threshold_line("capacity .*", regex=True)],
        ),
        timeseries(
            "Rows written/s by table",
            prom("sum by (table) (rate(tagwatch_request_log_rows_written_total[5m]))", "{{table}}"),
            description="Rows the request log wrote to the database per second (5m rate), all replicas.",
            unit="rowsps",
        ),
        timeseries(
            "Seconds since last write",
            prom("time() - (tagwatch_request_log_last_write_timestamp_seconds > 0)", "{{instance}}"),
            description="Since each replica's request log last wrote a batch (it grows without traffic too).",
            unit="s",
        ),
    )
    lay.line(
        timeseries(
            "Spilled rows (per 5m)",
            prom("sum by (instance) (increase(tagwatch_request_log_rows_spilled_total[5m]))", "{{instance}}"),
            description="Rows written to the local spill file instead of the database (queue full, or stopping while "
            "the database was down).",
            unit="short",
            bars=True,
        ),
        timeseries(
            "Spill pending",
            prom("sum by (instance) (tagwatch_request_log_spill_pending_rows)", "{{instance}}"),
            description="Rows in spill files, still waiting to be written to the database.",
            unit="short",
        ),
        timeseries(
            "Write failures (per 5m)",
            prom("sum by (instance) (increase(tagwatch_request_log_write_failures_total[5m]))", "{{instance}}"),
            description="Batch writes to the database that failed (they are retried).",
            unit="short",
            bars=True,
        ),
    )
    lay.line(
        timeseries(
            "Memory held vs bound",
            prom("tagwatch_request_log_queue_bytes", "held {{instance}}"),
            prom("tagwatch_request_log_queue_capacity_bytes", "bound {{instance}}"),
            description="Estimated memory of the rows each replica's request log holds (queue, the batch being "
            "written or retried), and its bound (dashed): rows that do not fit go to the spill file.",
            unit="bytes",
            overrides=[threshold_line("bound .*", regex=True)],
        ),
        timeseries(
            "Spill on disk vs cap",
            prom("tagwatch_request_log_spill_bytes", "on disk {{instance}}"),
            prom("tagwatch_request_log_spill_capacity_bytes", "cap {{instance}}"),
            description="Bytes of spill files in each replica's spill directory, and the cap (dashed): at the cap, "
            "rows are dropped. Spill files grow while the database is down and shrink as they are replayed.",
            unit="bytes",
            overrides=[threshold_line("cap .*", regex=True)],
        ),
        timeseries(
            "Rows dropped (per 5m)",
            prom(
                "sum by (instance, reason) (increase(tagwatch_request_log_rows_dropped_total[5m]))",
                "{{instance}} {{reason}}",
            ),
            description="Rows lost: neither written to the database nor spilled, because the spill directory was "
            "at its cap (spill_full) or failed (spill_error). Anything above 0 is data the monitor will never see.",
            unit="short",
            bars=True,
            threshold=1,
        ),
    )
    description = (
        "The prediction service: traffic, errors, latency, replicas, the served model, memory and CPU per replica, "
        "and the request log."
    )
    return dashboard(SERVICE_UID, description, lay, [champion_annotation()])
