"""The dataset the monitor hands Evidently: the prediction column of each question."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np


def test_the_prediction_column_names_the_top_suggested_tag_other_or_no_tag() -> None:
    from monitor.drift.evidently import _frame
    from monitor.drift.types import NO_TAG, OTHER

    side: Any = SimpleNamespace(
        model_tags=("python", "java", "rust"),
        uniform=np.array([0, 1, 2, 3]),
        scores=np.array([[0.9, 0.2, 0.1], [0.1, 0.8, 0.3], [0.03, 0.02, 0.01], [0.2, 0.1, 0.7]]),
        # The third question got no suggestion (its best score under the minimum top score).
        predicted=np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0], [0, 0, 1]], dtype=bool),
        described={"text": ["a", "b", "c", "d"]},
    )
    frame = _frame(side, keep={"python", "java"})
    assert frame["predicted_tag"].tolist() == ["python", "java", NO_TAG, OTHER]
    assert frame["text"].tolist() == ["a", "b", "c", "d"]
