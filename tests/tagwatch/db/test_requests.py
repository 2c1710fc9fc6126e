"""Reading logged requests on real SQLite and PostgreSQL: windows, limits, the latest feedback, request ids."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tagwatch.data import Question
from tagwatch.db import (
    Feedback,
    LoggedRequest,
    count_rows,
    feedback_sources,
    fetch_requests,
    get_request,
    make_engine,
    new_request_id,
    upgrade_database,
)
from tests.tagwatch.db.support import T0, logged_request


def test_fetch_requests_window_limit_and_feedback(database_url: str) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            reqs = [logged_request(i) for i in range(10)]
            session.add_all(reqs)
            session.flush()
            for i in (2, 5, 7):
                at = T0 + timedelta(hours=1)
                session.add(Feedback(request_id=reqs[i].id, tags=[f"tag{i}"], received_at=at))
            session.commit()
            ids = [r.id for r in reqs]

        everything = fetch_requests(engine)
        assert [r.id for r in everything] == ids  # oldest first
        assert everything[2].feedback_tags == ("tag2",)
        assert everything[3].feedback_tags is None
        assert everything[0].predicted == (("python", 0.91), ("dictionary", 0.4))
        assert everything[0].created_at == T0

        window = fetch_requests(engine, since=T0 + timedelta(minutes=3), until=T0 + timedelta(minutes=8))
        assert [r.id for r in window] == ids[3:8]  # since inclusive, until exclusive

        latest = fetch_requests(engine, limit=3)
        assert [r.id for r in latest] == ids[7:]  # the most recent three, still oldest first

        labelled = fetch_requests(engine, with_feedback=True)
        assert [r.id for r in labelled] == [ids[2], ids[5], ids[7]]
        assert [r.feedback_tags for r in labelled] == [("tag2",), ("tag5",), ("tag7",)]
        last = fetch_requests(engine, with_feedback=True, since=T0 + timedelta(minutes=6), limit=1)
        assert [r.id for r in last] == [ids[7]]
        with pytest.raises(ValueError, match="limit"):
            fetch_requests(engine, limit=-1)
    finally:
        engine.dispose()


def test_feedback_is_append_only_and_the_latest_record_counts(database_url: str) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            reqs = [logged_request(i) for i in range(3)]
            session.add_all(reqs)
            session.flush()
            a, b, c = (r.id for r in reqs)
            session.add_all(
                [
                    # a: three records; the newest received counts, whatever the order they were stored in.
                    Feedback(id="1" * 32, request_id=a, tags=["first"], received_at=T0, key_name="replay"),
                    Feedback(id="3" * 32, request_id=a, tags=["newest"], received_at=T0 + timedelta(hours=2)),
                    Feedback(id="2" * 32, request_id=a, tags=["middle"], received_at=T0 + timedelta(hours=1)),
                    # b: two records received at the same instant (only a replay makes that): the greater id counts.
                    Feedback(id="4" * 32, request_id=b, tags=["tie-low"], received_at=T0, key_name="old"),
                    Feedback(id="5" * 32, request_id=b, tags=["tie-high"], received_at=T0, key_name="new"),
                ]
            )
            session.commit()
        assert count_rows(engine)["feedback"] == 5
        by_id = {r.id: r for r in fetch_requests(engine)}
        assert (by_id[a].feedback_tags, by_id[a].feedback_key) == (("newest",), None)
        assert by_id[a].feedback_received_at == T0 + timedelta(hours=2)
        assert (by_id[b].feedback_tags, by_id[b].feedback_key) == (("tie-high",), "new")
        assert (by_id[c].feedback_tags, by_id[c].feedback_key) == (None, None)
        labelled = fetch_requests(engine, with_feedback=True)
        assert [r.id for r in labelled] == [a, b]  # one row per request, however many records
        with Session(engine) as session:
            stored = get_request(session, request_id=a)
            assert stored is not None
            assert [f.tags for f in stored.feedback] == [
                ["first"],
                ["middle"],
                ["newest"],
            ]
            # The id is the key: the same record twice is refused (the writer skips it: ON CONFLICT DO NOTHING).
            session.add(Feedback(id="1" * 32, request_id=a, tags=["again"], received_at=T0))
            with pytest.raises(IntegrityError):
                session.commit()
        indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("feedback")}
        assert not indexes["ix_feedback_request_id"]["unique"]
        # The id and the partition key (its request's created_at), which a replayed record carries the same.
        assert inspect(engine).get_pk_constraint("feedback")["constrained_columns"] == ["id", "request_created_at"]
    finally:
        engine.dispose()


def test_new_request_ids_are_uuid4_hex() -> None:
    ids = {new_request_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def _logged(request_id: str, *, tags: tuple[str, ...] | None, key: str | None = None) -> LoggedRequest:
    return LoggedRequest(
        id=request_id,
        created_at=T0,
        title="How do I merge two dicts?",
        body="<p>a | b</p>",
        body_format=None,
        predicted=(("python", 0.9),),
        model_version="3",
        latency_seconds=0.004,
        feedback_tags=tags,
        feedback_received_at=T0 if tags is not None else None,
        feedback_key=key,
    )


def test_a_logged_request_as_a_question() -> None:
    labelled = _logged("a" * 32, tags=("python", "dictionary"), key="labeller")
    assert labelled.as_question() == Question(
        id="r:" + "a" * 32,
        created_at=T0,
        title="How do I merge two dicts?",
        body="<p>a | b</p>",
        body_format="none",  # not said by the client: the cleaner's "none"
        tags=("python", "dictionary"),
    )
    assert _logged("b" * 32, tags=None).as_question().tags == ()


def test_feedback_sources_count_labelled_requests_per_key() -> None:
    rows = [
        _logged("1" * 32, tags=("python",), key="labeller"),
        _logged("2" * 32, tags=("java",), key="labeller"),
        _logged("3" * 32, tags=("go",), key=None),
        _logged("4" * 32, tags=("rust",), key="replay"),
    ]
    assert feedback_sources(rows) == {"labeller": 2, "(open)": 1, "replay": 1}
    assert feedback_sources([]) == {}
