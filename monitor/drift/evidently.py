"""The Evidently part of a drift run: one Evidently Report with the text drift of the domain classifier (its ROC AUC
decides the data kind), descriptor drift, top-predicted-tag drift and, on top, the other kinds' summary table. Its
snapshot is the run's HTML page (``monitor.report``).

Everything that imports Evidently is in this module and only here. Evidently takes about 7 s to import: import this
module when a report runs (``monitor.drift.detect`` does, inside ``detect_drift``), never at the top of another.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.metric_types import SingleValue, SingleValueCalculation, SingleValueMetric
from evidently.legacy.calculations.data_drift import ColumnDataDriftMetrics, DriftStatsField
from evidently.legacy.options import ColorOptions
from evidently.legacy.options.base import Options
from evidently.legacy.renderers.html_widgets import header_text, table_data
from evidently.legacy.utils.data_drift_utils import get_typical_examples, get_typical_words, roc_auc_domain_classifier
from evidently.metrics import ValueDrift
from evidently.metrics.column_statistics import ValueDriftCalculation
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from monitor.drift.prepare import Prepared
from monitor.drift.summary import SummaryTable
from monitor.drift.types import NO_TAG, OTHER, TextDrift, Thresholds

# Bounded label set of the report's prediction column: the most predicted tags, the rest as "other".
REPORT_TOP_TAGS = 15
DESCRIPTORS = ("length", "code_share", "oov_share")

# Our two Evidently metrics. ``TextDomainDrift`` is Evidently's text drift (the split, pipeline and ROC AUC of
# ``ValueDrift`` with ``abs_text_content_drift``) that keeps the characteristic words and examples of that one fit;
# ``ValueDrift`` fits the classifier a second time to draw them, and does not return them. ``RunSummary`` puts the
# verdicts of the other kinds at the top of the report.


class TextDomainDrift(SingleValueMetric):
    class Config:
        type_alias = "tagwatch:metric:TextDomainDrift"

    column: str
    threshold: float


class TextDomainDriftCalculation(SingleValueCalculation[TextDomainDrift]):
    words: dict[str, list[str]]

    def calculate(self, context: Any, current_data: Any, reference_data: Any) -> SingleValue:
        if reference_data is None:
            raise ValueError("text drift needs reference data")
        ref = reference_data.column(self.metric.column).data
        cur = current_data.column(self.metric.column).data
        domain = pd.concat([pd.DataFrame({"text": ref, "target": 0}), pd.DataFrame({"text": cur, "target": 1})])
        # evidently's calculate_text_drift_score, step by step, keeping the fitted pipeline.
        x_train, x_test, y_train, y_test = train_test_split(
            domain["text"], domain["target"], test_size=0.5, random_state=42, shuffle=True
        )
        with warnings.catch_warnings():
            # Evidently's classifier stops at 50 SGD epochs (a ConvergenceWarning on larger windows) and
            # sorts filtered frames in place (SettingWithCopyWarning): both as in Evidently itself.
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", pd.errors.SettingWithCopyWarning)
            auc, proba, pipeline = roc_auc_domain_classifier(x_train, x_test, y_train, y_test)
            words_cur, words_ref = get_typical_words(pipeline)
            examples_cur, examples_ref = get_typical_examples(x_test, y_test, proba)
        self.words = {"reference": list(words_ref), "current": list(words_cur)}
        auc = float(auc)
        drift = ColumnDataDriftMetrics(
            column_name=self.metric.column,
            column_type="text",
            stattest_name="domain classifier ROC AUC (abs_text_content_drift)",
            drift_score=auc,
            drift_detected=auc > self.metric.threshold,
            stattest_threshold=self.metric.threshold,
            current=DriftStatsField(characteristic_examples=examples_cur, characteristic_words=words_cur),
            reference=DriftStatsField(characteristic_examples=examples_ref, characteristic_words=words_ref),
        )
        result = self.result(auc)
        result.widget = ValueDriftCalculation._render(self, drift, Options(), ColorOptions())
        return result

    def display_name(self) -> str:
        return f"Text drift of '{self.metric.column}' (domain classifier ROC AUC)"


class RunSummary(SingleValueMetric):
    class Config:
        type_alias = "tagwatch:metric:RunSummary"

    title: str
    header: list[str]
    rows: list[list[str]]
    detected: int


class RunSummaryCalculation(SingleValueCalculation[RunSummary]):
    def calculate(self, context: Any, current_data: Any, reference_data: Any) -> SingleValue:
        result = self.result(self.metric.detected)
        result.widget = [
            header_text(label=self.metric.title),
            table_data(title="", column_names=self.metric.header, data=self.metric.rows),
        ]
        return result

    def display_name(self) -> str:
        return "Concept and feature drift: kinds detected"


def run_report(ref: Prepared, cur: Prepared, th: Thresholds, summary: SummaryTable | None) -> TextDrift:
    """Run the Evidently Report on the two sides' uniform samples: text drift (domain classifier), descriptor drift,
    top-predicted-tag drift, and ``summary`` (the other kinds' verdicts) on top when given."""
    freq = ref.predicted[ref.uniform].sum(axis=0)
    keep = {ref.model_tags[j] for j in np.argsort(-freq)[:REPORT_TOP_TAGS] if freq[j] > 0}
    reference, current = _frame(ref, keep), _frame(cur, keep)
    definition = DataDefinition(
        text_columns=["text"],
        numerical_columns=list(DESCRIPTORS),
        categorical_columns=["predicted_tag"],
    )
    text = TextDomainDrift(column="text", threshold=th.text_auc)
    # Methods set explicitly: Evidently's defaults change with the number of rows.
    descriptors = {
        c: ValueDrift(column=c, method="wasserstein", threshold=th.descriptor_wasserstein) for c in DESCRIPTORS
    }
    prediction = ValueDrift(column="predicted_tag", method="jensenshannon", threshold=th.prediction_js)
    metrics: list[Any] = [RunSummary(**asdict(summary))] if summary is not None else []
    metrics += [text, *descriptors.values(), prediction]
    snapshot = Report(metrics).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    context = snapshot.context
    return TextDrift(
        auc=float(context.get_metric_result(text).value),
        words=dict(context.get_metric(text.metric_id).words),
        descriptors={c: float(context.get_metric_result(m).value) for c, m in descriptors.items()},
        descriptor_means={
            c: {"reference": float(reference[c].mean()), "current": float(current[c].mean())} for c in DESCRIPTORS
        },
        prediction_top_js=float(context.get_metric_result(prediction).value),
        rows_used={"reference": len(ref.uniform), "current": len(cur.uniform)},
        snapshot=snapshot,
    )


def _frame(side: Prepared, keep: set[str]) -> pd.DataFrame:
    """The side's uniform sample as Evidently's dataset: text, descriptors and the top predicted tag (bounded)."""
    top = []
    for p in side.uniform:
        row = np.where(side.predicted[p], side.scores[p], -1.0)
        j = int(np.argmax(row))
        if row[j] < 0:  # no tag suggested: none of the model's tags fits (a share that grows with new topics)
            top.append(NO_TAG)
        else:
            top.append(side.model_tags[j] if side.model_tags[j] in keep else OTHER)
    return pd.DataFrame({**side.described, "predicted_tag": top})
