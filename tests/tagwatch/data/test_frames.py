"""Questions as a DataFrame and back."""

from __future__ import annotations

import pandas as pd
import pytest

from tagwatch.data import FRAME_COLUMNS, from_frame, to_frame
from tests.tagwatch.data.support import all_fixture_questions, utc


def test_frame_round_trip() -> None:
    questions = all_fixture_questions()
    df = to_frame(questions)
    assert list(df.columns) == list(FRAME_COLUMNS)
    assert str(df["created_at"].dtype) == "datetime64[ns, UTC]"
    assert str(df["score"].dtype) == "Int64"
    assert df.loc[df["id"] == "100", "tags"].item() == "python pandas"
    assert int(df["created_at"].isna().sum()) == sum(q.created_at is None for q in questions)
    assert from_frame(df) == questions


def test_from_frame_accepts_string_dates_and_refuses_nonsense() -> None:
    df = pd.DataFrame(
        {
            "id": ["1"],
            "created_at": ["2014-03-02T17:05:12Z"],
            "title": ["t"],
            "body": [""],
            "tags": ["Python"],
            "score": [3.0],
        }
    )
    [q] = from_frame(df)
    assert q.created_at == utc(2014, 3, 2, 17, 5, 12)
    assert q.tags == ("python",)
    assert q.score == 3
    assert q.body_format == "none"
    with pytest.raises(ValueError, match="row 0"):
        from_frame(df.assign(score=[2.5]))
    with pytest.raises(ValueError, match="lacks columns"):
        from_frame(df.drop(columns=["tags"]))
