"""The ``tagwatch-model-drift`` dashboard: drift scores against their thresholds, detected and confirmed drift, F1,
score distributions, the monitor's runs, and a table of the latest drift runs (PostgreSQL) linked to their reports."""

from __future__ import annotations

from typing import Any

from dashboards.annotations import champion_annotation, retrain_annotations
from dashboards.board import DRIFT_UID, dashboard
from dashboards.panels import (
    RETRAIN_CELLS,
    Layout,
    colored_text,
    colors,
    heatmap,
    override,
    prom,
    report_link,
    sql,
    stat,
    state_timeline,
    table,
    threshold_line,
    timeseries,
    value_text,
)
from monitor.drift.types import KINDS

MONITOR_UP = 'up{job="tagwatch-monitor"}'

KIND_HELP = {
    "data": "Data drift: ROC AUC of a classifier telling the window's text from the reference's (0.5: no drift).",
    "concept": "Concept drift (questions with feedback): the worst of F1 drop, true-tag drift and emerging tags, "
    "each relative to its own threshold (so the threshold is 1).",
    "feature": "Feature drift (questions with feedback): how much what predicts each tag changed, relative to its "
    "thresholds (so the threshold is 1).",
}
DRIFT_CELLS = {"drift": ("drift", "red"), "no": ("no", "green")}


def drift_runs_sql() -> str:
    per_kind = "".join(
        f"""
          d.{kind}_score AS "{kind.capitalize()} score",
          CASE WHEN d.{kind}_detected THEN 'drift' ELSE 'no' END AS "{kind.capitalize()} drift","""
        for kind in KINDS
    )
    return f"""
        SELECT
          d.started_at AS "Started",
          d.status AS "Status",
          d.model_version AS "Model",
          d.n_current AS "Questions",
          d.n_labelled AS "Labelled",{per_kind}
          (SELECT string_agg(c.key, ', ' ORDER BY c.key) FROM jsonb_each(d.confirmed) AS c
            WHERE c.value = 'true'::jsonb) AS "Confirmed",
          CASE WHEN d.retrain_triggered THEN coalesce(d.retrain ->> 'result', 'started') ELSE 'no' END AS "Retrain",
          coalesce((SELECT string_agg(r, '; ') FROM jsonb_array_elements_text(d.reasons) AS r), d.error)
            AS "Reasons",
          d.report_path AS "Report"
        FROM drift_runs AS d
        ORDER BY d.started_at DESC
        LIMIT 50
        """


def model_drift_dashboard() -> dict[str, Any]:
    lay = Layout()
    lay.row("Drift")
    lay.line(
        *(
            timeseries(
                f"{kind.capitalize()} drift: score vs threshold",
                prom(f'tagwatch_drift_score{{kind="{kind}"}}', "score"),
                prom(f'tagwatch_drift_threshold{{kind="{kind}"}}', "threshold"),
                description=f"{KIND_HELP[kind]} Drift is detected when the score is above the threshold (dashed).",
                unit="short",
                overrides=[threshold_line()],
            )
            for kind in KINDS
        )
    )
    lay.line(
        state_timeline(
            "Drift detected (latest window) and confirmed (policy)",
            prom("max by (kind) (tagwatch_drift_detected)", "{{kind}} detected"),
            prom("max by (kind) (tagwatch_drift_confirmed)", "{{kind}} confirmed"),
            description="Detected: the latest window's score is above the threshold. Confirmed: the policy saw it in "
            "enough consecutive windows (this can start a retrain).",
            mappings=[value_text({"0": ("no", "green"), "1": ("drift", "red")})],
        ),
        height=7,
    )
    lay.row("Model quality")
    lay.line(
        timeseries(
            "Micro-F1: feedback vs baseline vs label-free estimate",
            prom("tagwatch_feedback_micro_f1", "on feedback"),
            prom("tagwatch_baseline_micro_f1", "baseline (hold-out)"),
            prom("tagwatch_estimated_micro_f1", "label-free estimate"),
            description="Micro-F1 of the served model on the latest window's feedback, on its own random hold-out "
            "(dashed), and as estimated from the calibrated scores without labels.",
            unit="percentunit",
            max_=1,
            overrides=[threshold_line("baseline (hold-out)")],
        ),
        timeseries(
            "Emerging-tag share",
            prom("tagwatch_emerging_tag_share", "emerging-tag share"),
            description="Share of the latest window's labelled questions carrying a tag the model cannot predict that "
            "is new or far more frequent than in the reference.",
            unit="percentunit",
        ),
    )
    lay.line(
        timeseries(
            "Predicted-tag mix (share over 1h)",
            prom("avg by (tag) (tagwatch:predicted_tags:share_rate1h)", "{{tag}}"),
            description="Share of each suggested tag among all suggestions over the last hour ('other': the tags "
            "outside the model's most frequent ones).",
            unit="percentunit",
            max_=1,
            stacked=True,
        ),
        timeseries(
            "Top score and suggested-tag score",
            prom(
                "histogram_quantile(0.5, sum by (le) (rate(tagwatch_prediction_top_score_bucket[1h])))",
                "median top score",
            ),
            prom(
                "histogram_quantile(0.1, sum by (le) (rate(tagwatch_prediction_top_score_bucket[1h])))", "p10 top score"
            ),
            prom(
                "sum(rate(tagwatch_prediction_score_sum[1h])) / sum(rate(tagwatch_prediction_score_count[1h]))",
                "mean suggested-tag score",
            ),
            description="Calibrated scores over the last hour. A falling top score is an early sign of drift.",
            unit="percentunit",
            max_=1,
        ),
        height=9,
    )
    lay.line(
        heatmap(
            "Suggested-tag score distribution",
            "tagwatch_prediction_score",
            description="Calibrated score of every suggested tag: suggestions per second in each score bucket.",
        ),
        heatmap(
            "Top score distribution",
            "tagwatch_prediction_top_score",
            description="Highest calibrated score per question: questions per second in each score bucket.",
        ),
    )
    lay.row("Monitor")
    lay.line(
        stat(
            "Since last successful run",
            prom("time() - (tagwatch_monitor_last_success_timestamp_seconds > 0)", "since success", instant=True),
            prom("2 * tagwatch_monitor_interval_seconds", "stale after", instant=True),
            description="Since a monitor run last finished successfully; the monitor is stale after two scheduled "
            "intervals.",
            unit="s",
            text_mode="value_and_name",
            no_value="never",
        ),
        stat(
            "Monitor up",
            prom(MONITOR_UP, "monitor", instant=True),
            description="Whether Prometheus scrapes the monitor.",
            thresholds=[(None, "red"), (1, "green")],
            mappings=[value_text({"0": ("down", "red"), "1": ("up", "green")})],
            no_value="down",
        ),
        timeseries(
            "Window sizes",
            prom("tagwatch_monitor_window_questions", "{{part}}"),
            description="Questions in the latest window the monitor looked at: all, and those with feedback.",
            unit="short",
        ),
        height=6,
        widths=(6, 4, 14),
    )
    lay.line(
        timeseries(
            "Monitor runs by status (per hour)",
            prom("sum by (status) (increase(tagwatch_monitor_runs_total[1h]))", "{{status}}"),
            description="Monitor runs over the last hour: ok, skipped (window too small), failed.",
            unit="short",
            overrides=colors(ok="green", skipped="yellow", failed="red"),
        ),
        timeseries(
            "Monitor run duration",
            prom(
                "sum(rate(tagwatch_monitor_run_duration_seconds_sum[1h]))"
                " / sum(rate(tagwatch_monitor_run_duration_seconds_count[1h]))",
                "average",
            ),
            prom(
                "histogram_quantile(0.95, sum by (le) (rate(tagwatch_monitor_run_duration_seconds_bucket[1h])))", "p95"
            ),
            description="Duration of a monitor run (detection, report, decision; not the retrain), over 1h.",
            unit="s",
        ),
    )
    lay.row("Drift runs")
    lay.line(
        table(
            "Latest drift runs",
            sql(drift_runs_sql()),
            description="The 50 latest monitor runs in the request-log database (drift_runs). Click a report to open "
            "it.",
            decimals=4,
            overrides=[
                report_link(),
                colored_text(".* drift", DRIFT_CELLS, regex=True),
                colored_text("Retrain", RETRAIN_CELLS),
                override("Reasons", ("custom.width", 320)),
            ],
        ),
        height=11,
    )
    description = (
        "Drift of the served model: scores against thresholds, detected and confirmed drift, F1, score distributions, "
        "the monitor's runs and their reports."
    )
    return dashboard(DRIFT_UID, description, lay, [*retrain_annotations(), champion_annotation()])
