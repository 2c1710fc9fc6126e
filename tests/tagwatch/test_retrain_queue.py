"""The retrain requests table and its queue functions, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tagwatch.db import DriftRun, make_engine, upgrade_database
from tagwatch.retrain_queue import (
    FAILED,
    INTERRUPTED,
    INTERRUPTED_ERROR,
    PENDING,
    PROMOTED,
    RUNNING,
    SKIPPED,
    RetrainRequest,
    claim_next,
    drift_run_view,
    file_request,
    finish,
    load_request,
    mark_stale_running,
    pending_or_running,
    requests_of_runs,
)

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
MODEL = "tagwatch"


def _drift_run(engine: Engine, *, status: str = "ok") -> int:
    with Session(engine) as session:
        run = DriftRun(started_at=NOW, status=status, n_current=0, n_labelled=0, confirmed={}, reasons=[])
        session.add(run)
        session.commit()
        return run.id


def _file(engine: Engine, *, drift_run_id: int | None = None, model_name: str = MODEL) -> RetrainRequest:
    return file_request(
        engine,
        model_name=model_name,
        reason="drift: data",
        requested_by="monitor",
        parent_version="1",
        data_until=NOW,
        drift_run_id=drift_run_id,
        now=NOW,
    )


def _retrain_json(engine: Engine, run_id: int) -> dict[str, object] | None:
    with Session(engine) as session:
        run = session.get(DriftRun, run_id)
        assert run is not None
        return run.retrain


def test_a_request_goes_from_pending_to_running_to_its_result_and_its_drift_run_follows(engine: Engine) -> None:
    run_id = _drift_run(engine)
    filed = _file(engine, drift_run_id=run_id)
    assert (filed.status, filed.reason, filed.requested_by, filed.parent_version) == (
        PENDING,
        "drift: data",
        "monitor",
        "1",
    )
    assert filed.data_until == NOW
    assert _retrain_json(engine, run_id) == {
        "result": PENDING,
        "request_id": filed.id,
        "trigger": "drift: data",
        "parent_version": "1",
        "requested_at": NOW.isoformat(),
    }
    open_request = pending_or_running(engine, model_name=MODEL)
    assert open_request is not None
    assert open_request.id == filed.id
    assert pending_or_running(engine, model_name="other") is None

    claimed = claim_next(engine, model_name=MODEL, runner="host-a:12")
    assert claimed is not None
    assert (claimed.id, claimed.status, claimed.claimed_by) == (filed.id, RUNNING, "host-a:12")
    assert claimed.claimed_at is not None
    running = _retrain_json(engine, run_id)
    assert running is not None
    assert (running["result"], running["host"], running["pid"]) == (RUNNING, "host-a", 12)
    assert claim_next(engine, model_name=MODEL) is None  # nothing else pending

    outcome = {"result": PROMOTED, "challenger_version": "2", "champion_version": "2", "trigger": "drift: data"}
    done = finish(engine, filed.id, status=PROMOTED, outcome=outcome)
    assert (done.status, done.outcome, done.error) == (PROMOTED, outcome, None)
    assert done.finished_at is not None
    mirrored = _retrain_json(engine, run_id)
    assert mirrored is not None
    assert (mirrored["result"], mirrored["challenger_version"], mirrored["request_id"]) == (PROMOTED, "2", filed.id)
    assert pending_or_running(engine, model_name=MODEL) is None
    assert {run: r.id for run, r in requests_of_runs(engine, [run_id, run_id + 1]).items()} == {run_id: filed.id}
    assert requests_of_runs(engine, []) == {}
    with pytest.raises(ValueError, match="a request ends"):
        finish(engine, filed.id, status=RUNNING)


def test_a_request_is_claimable_only_once_its_drift_run_ended(engine: Engine) -> None:
    run_id = _drift_run(engine, status="running")
    request = _file(engine, drift_run_id=run_id)
    assert claim_next(engine, model_name=MODEL) is None
    with Session(engine) as session:
        run = session.get(DriftRun, run_id)
        assert run is not None
        run.status = "ok"
        session.commit()
    claimed = claim_next(engine, model_name=MODEL)
    assert claimed is not None
    assert claimed.id == request.id


def test_requests_are_claimed_oldest_first_and_by_id(engine: Engine) -> None:
    first, second, manual = _file(engine), _file(engine), _file(engine)
    claimed = claim_next(engine, model_name=MODEL, request_id=manual.id)
    assert claimed is not None
    assert claimed.id == manual.id
    ordered = [claim_next(engine, model_name=MODEL), claim_next(engine, model_name=MODEL)]
    assert [r.id for r in ordered if r is not None] == [first.id, second.id]


def test_stale_running_requests_are_marked_failed_once(engine: Engine) -> None:
    run_id = _drift_run(engine)
    request = _file(engine, drift_run_id=run_id)
    assert claim_next(engine, model_name=MODEL, runner="gone:1") is not None
    reads: list[int] = []

    def champion() -> str:
        reads.append(1)
        return "1"

    (stale,) = mark_stale_running(engine, model_name=MODEL, champion_version=champion)
    assert (stale.id, stale.status, stale.error) == (request.id, FAILED, INTERRUPTED_ERROR)
    mirrored = _retrain_json(engine, run_id)
    assert mirrored is not None
    assert mirrored["result"] == INTERRUPTED
    assert mirrored["error"] == INTERRUPTED_ERROR
    assert mirrored["champion_version_when_noticed"] == "1"
    assert mirrored["pid"] == 1
    # Once: it is failed now, neither stale again nor claimable.
    assert mark_stale_running(engine, model_name=MODEL, champion_version=champion) == []
    assert claim_next(engine, model_name=MODEL) is None
    assert reads == [1]


def test_a_skipped_request_says_why(engine: Engine) -> None:
    request = _file(engine)
    claimed = claim_next(engine, model_name=MODEL)
    assert claimed is not None
    done = finish(engine, request.id, status=SKIPPED, error="the champion moved")
    assert (done.status, done.error) == (SKIPPED, "the champion moved")
    assert drift_run_view(done)["result"] == SKIPPED
    assert drift_run_view(done)["error"] == "the champion moved"


@pytest.mark.postgres
def test_two_runners_claiming_at_once_skip_each_others_rows(postgres_url: str) -> None:
    """SELECT ... FOR UPDATE SKIP LOCKED: a row one runner is claiming (its transaction open) is not the other's."""
    upgrade_database(postgres_url)
    a, b = make_engine(postgres_url), make_engine(postgres_url)
    first, second = _file(a), _file(a)
    with Session(a) as holding:
        locked = holding.scalars(
            select(RetrainRequest).where(RetrainRequest.id == first.id).with_for_update()
        ).one()  # runner A's claim, not committed yet
        claimed = claim_next(b, model_name=MODEL, runner="b:2")
        assert claimed is not None
        assert claimed.id == second.id  # not blocked on, nor given, the row A holds
        assert claim_next(b, model_name=MODEL, runner="b:2") is None
        assert locked.status == PENDING
        holding.rollback()
    again = claim_next(a, model_name=MODEL, runner="a:1")
    assert again is not None
    assert again.id == first.id
    assert load_request(a, second.id) is not None
    a.dispose()
    b.dispose()


def test_a_manual_request_has_no_drift_run(engine: Engine) -> None:
    request = _file(engine)
    assert request.drift_run_id is None
    assert drift_run_view(request)["request_id"] == request.id
    loaded = load_request(engine, request.id)
    assert loaded is not None
    assert (loaded.requested_at, loaded.data_until) == (NOW, NOW)
    assert load_request(engine, request.id + 1) is None
