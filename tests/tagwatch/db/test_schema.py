"""The request-log schema on real SQLite and PostgreSQL: rows round trip, UTC datetimes, keys, column types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from tagwatch.db import (
    Feedback,
    count_rows,
    fetch_requests,
    get_request,
    make_engine,
    new_request_id,
    request_exists,
    upgrade_database,
)
from tests.tagwatch.db.support import T0, logged_request


def test_rows_round_trip(database_url: str) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        paris = timezone(timedelta(hours=1))
        created = datetime(2025, 3, 1, 13, 30, 15, 123456, tzinfo=paris)
        with Session(engine) as session:
            req = logged_request(0, at=created)
            session.add(req)
            session.flush()
            session.add(Feedback(request_id=req.id, tags=["python", "dictionary"], received_at=T0, key_name="replay"))
            session.commit()
            request_id = req.id
        with Session(engine) as session:
            got = get_request(session, request_id=request_id)
            assert got is not None
            # Same instant, always handed back in UTC, on SQLite too.
            assert got.created_at == created
            assert got.created_at.tzinfo == UTC
            assert got.title == "How do I merge two dicts? #0"
            assert got.body == "<p>I have <code>a = {1: 2}</code> and ünïcödé</p>"
            assert got.body_format == "html"
            assert got.predicted == [{"tag": "python", "score": 0.91}, {"tag": "dictionary", "score": 0.4}]
            assert got.model_version == "3"
            assert got.latency_seconds == pytest.approx(0.0042)
            (fb,) = got.feedback
            assert fb.tags == ["python", "dictionary"]
            assert fb.received_at == T0
            assert fb.key_name == "replay"
            assert len(fb.id) == 32  # uuid4 hex by default
            assert get_request(session, request_id="0" * 32) is None
        assert request_exists(engine, request_id=request_id)
        assert not request_exists(engine, request_id="0" * 32)
        counts = count_rows(engine)
        assert (counts["prediction_requests"], counts["feedback"]) == (1, 1)
    finally:
        engine.dispose()


def test_naive_datetimes_are_refused(database_url: str) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            session.add(logged_request(0, at=datetime(2025, 3, 1, 12, 0)))
            with pytest.raises(StatementError, match="naive"):
                session.commit()
        with pytest.raises(ValueError, match="naive"):
            fetch_requests(engine, since=datetime(2025, 3, 1))
    finally:
        engine.dispose()


def test_feedback_needs_its_request(database_url: str) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            session.add(Feedback(request_id=new_request_id(), tags=["python"], received_at=T0))
            with pytest.raises(IntegrityError):
                session.commit()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_column_types(postgres_url: str) -> None:
    upgrade_database(postgres_url)
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            result = conn.execute(
                text(
                    "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                    "WHERE table_name IN ('prediction_requests', 'feedback')"
                )
            )
            types = {str(name): str(data_type) for name, data_type in result}
        assert types["prediction_requests.predicted"] == "jsonb"
        assert types["feedback.tags"] == "jsonb"
        assert types["prediction_requests.created_at"] == "timestamp with time zone"
        assert types["feedback.received_at"] == "timestamp with time zone"
        assert types["feedback.id"] == types["feedback.key_name"] == "character varying"
    finally:
        engine.dispose()
