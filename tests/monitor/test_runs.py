from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from monitor import runs
from monitor.runs import RUNNING, RunOutcome
from tagwatch.db import DriftRun, LoggedRequest
from tagwatch.retrain_queue import PROMOTED, SKIPPED, RetrainRequest

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Engine:
    from tagwatch.db import make_engine, upgrade_database

    upgrade_database(database_url)
    return make_engine(database_url)


def _run(**values: Any) -> DriftRun:
    base: dict[str, Any] = {
        "started_at": AT,
        "status": "ok",
        "model_version": "3",
        "data_detected": True,
        "concept_detected": False,
        "feature_detected": False,
        "retrain_triggered": False,
        "retrain": None,
        "summary": {"kinds": {"data": {"enough_data": True}, "concept": {"enough_data": False}}},
    }
    return DriftRun(**{**base, **values})


def test_a_stored_run_is_a_window_when_it_ended_well_or_failed_after_filing_a_retrain() -> None:
    assert runs.is_window(_run(status="ok"))
    # A run that found the previous window again measured nothing: no window for the policy.
    assert not runs.is_window(_run(status="ok", summary=None))
    assert runs.is_window(_run(status="failed", retrain_triggered=True))
    assert not runs.is_window(_run(status="failed"))
    assert not runs.is_window(_run(status="skipped"))
    assert not runs.is_window(_run(status=RUNNING))


def test_the_verdict_reads_detection_and_the_filed_request() -> None:
    plain = runs.verdict(_run())
    assert plain.detected == {"data": True, "concept": False, "feature": False}
    assert plain.enough_data == {"data": True, "concept": False, "feature": False}
    assert (plain.retrain_started, plain.retrain_result, plain.model_version) == (False, None, "3")

    filed = _run(retrain_triggered=True, retrain={"result": "pending", "trigger": "drift: data"})
    promoted = RetrainRequest(status=PROMOTED, reason="drift: data")
    v = runs.verdict(filed, promoted)
    assert (v.retrain_started, v.retrain_result, v.retrain_trigger) == (True, PROMOTED, "drift: data")
    # A request skipped (the champion moved before it ran) is not a retrain that started.
    assert not runs.verdict(filed, RetrainRequest(status=SKIPPED, reason="drift: data")).retrain_started
    # Without the request (a retrain an older tagwatch ran inline), the row's own retrain entry is read.
    assert runs.verdict(filed).retrain_result == "pending"


def test_row_values_before_detection_and_store_round_trip(engine: Engine) -> None:
    outcome = RunOutcome(id=None, status=RUNNING, started_at=AT, model_version=None)
    values = runs.row_values(outcome, None)
    assert values["finished_at"] is None  # still running
    assert values["summary"] is None
    assert values["confirmed"] == {"data": False, "concept": False, "feature": False}
    assert (values["n_current"], values["data_detected"], values["data_score"]) == (0, False, None)

    runs.store(engine, outcome)
    assert outcome.id is not None
    outcome.status, outcome.reasons = "skipped", ["window too small"]
    runs.store(engine, outcome)
    (stored,) = runs.load_history(engine)
    assert (stored.id, stored.status, stored.reasons) == (outcome.id, "skipped", ["window too small"])
    assert stored.finished_at is not None


def test_mark_interrupted_fails_rows_left_running_once(engine: Engine) -> None:
    for i, status in enumerate((RUNNING, "ok")):
        runs.store(
            engine,
            RunOutcome(id=None, status=status, started_at=AT + timedelta(minutes=i), model_version="3"),
        )
    asked: list[int] = []
    runs.mark_interrupted(engine, lambda: asked.append(1) or "3")
    stale, ok = runs.load_history(engine)
    assert (stale.status, stale.error) == ("failed", runs.INTERRUPTED_ERROR)
    assert ok.status == "ok"
    assert asked == []  # no inline retrain was interrupted: the champion is not read
    runs.mark_interrupted(engine, lambda: "3")
    assert [r.status for r in runs.load_history(engine)] == ["failed", "ok"]


def _logged(at: datetime, labelled: bool = True) -> LoggedRequest:
    return LoggedRequest(
        id="r",
        created_at=at,
        title="t",
        body="b",
        body_format="html",
        predicted=(),
        model_version="3",
        latency_seconds=0.001,
        feedback_tags=("python",) if labelled else None,
        feedback_received_at=at if labelled else None,
    )


def test_same_window_compares_champion_ends_counts_and_labels() -> None:
    window = [_logged(AT), _logged(AT + timedelta(seconds=1), labelled=False), _logged(AT + timedelta(seconds=2))]
    seen = _run(window_since=AT, window_until=AT + timedelta(seconds=2), n_current=3, n_labelled=2)
    assert runs.same_window(seen, window, model_version="3")
    assert not runs.same_window(seen, window, model_version="4")  # the champion moved: measure again
    assert not runs.same_window(seen, [*window[1:], _logged(AT + timedelta(seconds=3))], model_version="3")
    assert not runs.same_window(seen, [*window, _logged(AT + timedelta(seconds=2))], model_version="3")
    assert not runs.same_window(seen, [window[0], window[2], window[2]], model_version="3")  # a label came
    assert not runs.same_window(seen, [], model_version="3")
    assert not runs.same_window(_run(window_until=None), window, model_version="3")
    naive = _run(
        window_since=AT.replace(tzinfo=None),
        window_until=(AT + timedelta(seconds=2)).replace(tzinfo=None),
        n_current=3,
        n_labelled=2,
    )
    assert runs.same_window(naive, window, model_version="3")


def test_latest_window_is_the_latest_run_that_ended_well(engine: Engine) -> None:
    assert runs.latest_window(engine) is None
    for minutes, status in ((0, "ok"), (1, "ok"), (2, "failed"), (3, "skipped"), (4, RUNNING)):
        runs.store(
            engine, RunOutcome(id=None, status=status, started_at=AT + timedelta(minutes=minutes), model_version="3")
        )
    latest = runs.latest_window(engine)
    assert latest is not None
    assert latest.started_at == AT + timedelta(minutes=1)
