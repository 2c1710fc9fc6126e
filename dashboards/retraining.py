"""The ``tagwatch-retraining`` dashboard: the champion, retrains by result, their duration, promotions and rejections
as annotations, and a table of retrains (PostgreSQL)."""

from __future__ import annotations

from typing import Any

from dashboards.annotations import champion_annotation, retrain_annotations
from dashboards.board import RETRAINING_UID, dashboard
from dashboards.panels import (
    RETRAIN_CELLS,
    Layout,
    colored_text,
    colors,
    override,
    prom,
    report_link,
    sql,
    stat,
    table,
    threshold_line,
    timeseries,
)

RETRAINS_SQL = """
    SELECT
      d.started_at AS "Run started",
      d.retrain ->> 'trigger' AS "Trigger",
      d.retrain ->> 'result' AS "Result",
      d.retrain ->> 'parent_version' AS "Parent",
      d.retrain ->> 'challenger_version' AS "Challenger",
      d.retrain ->> 'champion_version' AS "Champion after",
      (d.retrain -> 'comparison' ->> 'champion_micro_f1')::double precision AS "Champion F1",
      (d.retrain -> 'comparison' ->> 'challenger_micro_f1')::double precision AS "Challenger F1",
      (d.retrain -> 'comparison' ->> 'n_holdout')::integer AS "Hold-out",
      (d.retrain ->> 'seconds')::double precision AS "Seconds",
      coalesce(
        (SELECT string_agg(r, '; ') FROM jsonb_array_elements_text(d.retrain -> 'comparison' -> 'reasons') AS r),
        d.retrain ->> 'error'
      ) AS "Why",
      d.report_path AS "Report"
    FROM drift_runs AS d
    WHERE d.retrain_triggered
    ORDER BY d.started_at DESC
    LIMIT 50
    """


def retraining_dashboard() -> dict[str, Any]:
    lay = Layout()
    lay.row("Champion")
    lay.line(
        stat(
            "Champion (monitor)",
            prom("tagwatch_monitor_champion_info == 1", "{{version}}", instant=True),
            description="The registry version the monitor measures drift against: the champion.",
            text_mode="name",
            no_value="none",
        ),
        stat(
            "Served versions",
            prom("count by (version) (tagwatch_model_info == 1)", "version {{version}}", instant=True),
            description="Replicas serving each version: after a promotion every replica reloads the champion.",
            text_mode="value_and_name",
        ),
        stat(
            "Retrains in range by result",
            prom("sum by (result) (increase(tagwatch_retrains_total[$__range]))", "{{result}}", instant=True),
            description="Retrains over the dashboard's time range: promoted, rejected (the champion stays), failed.",
            text_mode="value_and_name",
            overrides=colors(promoted="green", rejected="orange", failed="red"),
        ),
        stat(
            "Time since last retrain",
            prom("time() - (tagwatch_retrain_last_timestamp_seconds > 0)", "since last retrain", instant=True),
            description="Since the latest retrain finished, whatever its result (as the running monitor knows it).",
            unit="s",
            no_value="never",
        ),
        height=5,
        widths=(5, 6, 6, 7),
    )
    lay.line(
        stat(
            "Retrain duration in range",
            prom(
                "sum(increase(tagwatch_retrain_duration_seconds_sum[$__range]))"
                " / sum(increase(tagwatch_retrain_duration_seconds_count[$__range]))",
                "average",
                instant=True,
            ),
            *(
                prom(
                    f"histogram_quantile({q},"
                    " sum by (le) (increase(tagwatch_retrain_duration_seconds_bucket[$__range])))",
                    f"p{round(q * 100)}",
                    instant=True,
                )
                for q in (0.5, 0.95)
            ),
            description="Training the challenger and comparing it with the champion, over the dashboard's time range "
            "(quantiles are interpolated within the histogram's buckets).",
            unit="s",
            text_mode="value_and_name",
            no_value="no retrain",
        ),
        timeseries(
            "Champion micro-F1: feedback vs baseline",
            prom("tagwatch_feedback_micro_f1", "on feedback"),
            prom("tagwatch_baseline_micro_f1", "baseline (hold-out)"),
            prom("tagwatch_estimated_micro_f1", "label-free estimate"),
            description="F1 of the served model on feedback against its own baseline (dashed); the annotations mark "
            "promotions (green) and rejections (orange).",
            unit="percentunit",
            max_=1,
            overrides=[threshold_line("baseline (hold-out)")],
        ),
        widths=(8, 16),
    )
    lay.row("Retrains")
    lay.line(
        table(
            "Retrains",
            sql(RETRAINS_SQL),
            description="Monitor runs that started a retrain (drift_runs.retrain_triggered), newest first: the "
            "challenger, its parent, the hold-out comparison and why it was promoted or not.",
            decimals=4,
            overrides=[report_link(), colored_text("Result", RETRAIN_CELLS), override("Why", ("custom.width", 360))],
        ),
        height=11,
    )
    description = (
        "Retraining: the champion, retrains by result and duration, promotions and rejections, and the history of "
        "retrains with their comparisons."
    )
    return dashboard(RETRAINING_UID, description, lay, [*retrain_annotations(), champion_annotation()])
