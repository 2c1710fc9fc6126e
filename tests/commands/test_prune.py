"""``tagwatch prune``'s wiring (commands.prune): every part with the settings' bounds, on a real request log (SQLite
and PostgreSQL) and a real registry; a failing part fails the run without stopping the others; a dry run changes
nothing; a second run finds nothing left."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import commands.prune
from commands.prune import PARTS, SPILL_NOTE, PruneResult, run_prune, summary_lines
from tagwatch.db import DriftRun, make_engine, upgrade_database
from tagwatch.db.partitions import RequestPrune
from tagwatch.reports import INDEX_NAME, report_filename
from tagwatch.settings import Settings

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """The request-log retention calls (tagwatch.db.partitions' contract), recorded instead of run."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def ensure(engine: Engine, *, now: datetime, ahead: int) -> commands.prune.PartitionsEnsured:
        seen.append(("ensure_partitions", {"now": now, "ahead": ahead}))
        return commands.prune.PartitionsEnsured(ahead=ahead, created=("prediction_requests_2027_03",))

    def prune(engine: Engine, *, older_than: datetime, dry_run: bool) -> RequestPrune:
        seen.append(("prune_requests", {"older_than": older_than, "dry_run": dry_run}))
        return RequestPrune("sqlite", older_than, dry_run, partitions_dropped=(), rows_deleted=0, seconds=0.0)

    monkeypatch.setattr(commands.prune, "_ensure_partitions", ensure)
    monkeypatch.setattr(commands.prune, "_prune_requests", prune)
    return seen


@pytest.fixture
def lifecycle(settings: Settings) -> Settings:
    return Settings(
        **{
            **settings.model_dump(),
            "retention_days": 30,
            "partitions_ahead": 2,
            "report_retention_days": 7,
            "keep_model_versions": 1,
            "spill_max_bytes": 1000,
        }
    )


def _more_versions(registry: Any, n: int) -> None:
    model = registry.load_model("1")
    for _ in range(n):
        registry.register(
            copy.copy(model),
            params=model.params,
            metrics=registry.version_info("1").metrics,
            data_window={"n_questions": 1},
            reference=registry.load_reference("1"),
        )


def _old_and_new_reports(engine: Engine, reports_dir: Path) -> list[str]:
    reports_dir.mkdir(parents=True, exist_ok=True)
    names = []
    with Session(engine) as session:
        for age in (10, 1):
            at = NOW - timedelta(days=age)
            names.append(report_filename(at))
            (reports_dir / names[-1]).write_text("report")
            session.add(
                DriftRun(
                    started_at=at,
                    status="ok",
                    model_version="1",
                    report_path=names[-1],
                    summary={"kinds": {}, "sizes": {}},
                    reasons=[],
                )
            )
        session.commit()
    return names


def test_every_part_runs_with_the_settings_bounds(
    lifecycle: Settings,
    engine: Engine,
    registry_with_champion: Any,
    calls: list[tuple[str, dict[str, Any]]],
) -> None:
    registry = registry_with_champion
    _more_versions(registry, 2)  # 1 champion, 2 the oldest non-aliased, 3 the newest
    names = _old_and_new_reports(engine, lifecycle.reports_dir)
    lifecycle.spill_dir.mkdir(parents=True)
    (lifecycle.spill_dir / "spill-00000000000000000001-1-abcd1234.jsonl").write_bytes(b"x" * 850)
    (lifecycle.spill_dir / "rejected-1.jsonl").write_bytes(b"y" * 100)  # not a spill file

    dry = run_prune(lifecycle, engine=engine, registry=registry, now=NOW, dry_run=True)
    assert dry.ok, dry.errors
    assert calls == [("prune_requests", {"older_than": NOW - timedelta(days=30), "dry_run": True})]
    assert dry.skipped == {"partitions": "dry run: no partition is created"}
    assert dry.reports is not None
    assert dry.reports.deleted == (names[0],)
    assert dry.model_versions is not None
    assert dry.model_versions.deleted == ("2",)
    # Nothing changed.
    assert (lifecycle.reports_dir / names[0]).is_file()
    assert set(registry.version_sources()) == {"1", "2", "3"}

    calls.clear()
    done = run_prune(lifecycle, engine=engine, registry=registry, now=NOW)
    assert done.ok, done.errors
    assert calls == [
        ("ensure_partitions", {"now": NOW, "ahead": 2}),
        ("prune_requests", {"older_than": NOW - timedelta(days=30), "dry_run": False}),
    ]
    assert done.partitions is not None
    assert done.partitions.created == ("prediction_requests_2027_03",)
    assert done.reports is not None
    assert (done.reports.deleted, done.reports.runs_unlinked) == ((names[0],), 1)
    assert not (lifecycle.reports_dir / names[0]).exists()
    with Session(engine) as session:
        assert list(session.scalars(select(DriftRun.report_path).order_by(DriftRun.started_at))) == [None, names[1]]
    index = (lifecycle.reports_dir / INDEX_NAME).read_text(encoding="utf-8")  # rewritten: no dead link
    assert names[0] not in index
    assert "<td>expired</td>" in index
    assert done.model_versions is not None
    assert done.model_versions.deleted == ("2",)
    assert set(registry.version_sources()) == {"1", "3"}
    assert registry.champion_version() == "1"
    assert done.spill is not None
    assert (done.spill.files, done.spill.bytes, done.spill.limit_bytes) == (1, 850, 1000)
    assert done.spill.nearly_full  # 85 % > TAGWATCH_SPILL_WARN_RATIO (0.8)
    assert (lifecycle.spill_dir / "spill-00000000000000000001-1-abcd1234.jsonl").is_file()  # never deleted

    document = json.loads(json.dumps(done.to_dict()))
    assert document["ok"] is True
    assert set(document["parts"]) == set(PARTS)
    assert {p["status"] for p in document["parts"].values()} == {"ok"}
    assert document["parts"]["model_versions"]["result"]["deleted"] == ["2"]
    assert document["parts"]["spill"]["result"]["note"] == SPILL_NOTE
    lines = summary_lines(done)
    assert len(lines) == len(PARTS)
    assert any(line.startswith("spill: 1 file(s)") and "NEARLY FULL" in line for line in lines)

    again = run_prune(lifecycle, engine=engine, registry=registry, now=NOW)  # a CronJob starting it twice
    assert again.ok
    assert again.reports is not None
    assert (again.reports.deleted, again.reports.runs_unlinked) == ((), 0)
    assert again.model_versions is not None
    assert again.model_versions.deleted == ()


def test_a_failing_part_fails_the_run_and_the_others_still_run(
    lifecycle: Settings,
    sqlite_url: str,
    registry_with_champion: Any,
    calls: list[tuple[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("permission denied for table prediction_requests")

    monkeypatch.setattr(commands.prune, "_prune_requests", broken)
    upgrade_database(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        result = run_prune(lifecycle, engine=engine, registry=registry_with_champion, now=NOW)
    finally:
        engine.dispose()
    assert not result.ok
    assert result.errors == {"requests": "RuntimeError: permission denied for table prediction_requests"}
    assert result.requests is None
    assert result.reports is not None
    assert result.model_versions is not None
    assert result.spill is not None
    parts = result.to_dict()["parts"]
    assert parts["requests"] == {
        "status": "failed",
        "result": None,
        "reason": "RuntimeError: permission denied for table prediction_requests",
    }
    assert "requests: FAILED: RuntimeError: permission denied" in "\n".join(summary_lines(result))


def test_model_versions_are_skipped_while_a_retrain_holds_the_promotion_lock(
    lifecycle: Settings,
    sqlite_url: str,
    registry_with_champion: Any,
    calls: list[tuple[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tagwatch.registry.pruning
    from tagwatch.locks import promotion_lock

    monkeypatch.setattr(tagwatch.registry.pruning, "LOCK_WAIT_SECONDS", 0.0)
    upgrade_database(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        with promotion_lock(engine, lifecycle.model_name):
            result = run_prune(lifecycle, engine=engine, registry=registry_with_champion, now=NOW)
    finally:
        engine.dispose()
    assert result.ok  # not a failure: the next run does it
    assert "promotion lock" in result.skipped["model_versions"]
    assert result.to_dict()["parts"]["model_versions"]["status"] == "skipped"


def test_an_empty_result_is_a_valid_document() -> None:
    result = PruneResult(started_at=NOW, dry_run=True)
    assert result.ok
    assert all(part["result"] is None for part in result.to_dict()["parts"].values())


def test_the_request_log_part_is_tagwatch_db_partitions(
    lifecycle: Settings, engine: Engine, registry_with_champion: Any, small_training_set: list[Any]
) -> None:
    """No stand-in: old requests (and their feedback) go, recent ones stay; a dry run and a second run delete
    nothing."""
    from tagwatch.db import count_rows
    from tests.support import log_questions

    now = datetime.now(UTC)
    log_questions(engine, small_training_set[:20], now=now - timedelta(days=200))  # months older than 30 days
    log_questions(engine, small_training_set[20:30], now=now)
    assert count_rows(engine)["prediction_requests"] == 30

    dry = run_prune(lifecycle, engine=engine, registry=registry_with_champion, now=now, dry_run=True)
    assert dry.ok, dry.errors
    assert dry.requests is not None
    assert dry.requests.dry_run
    assert count_rows(engine)["prediction_requests"] == 30

    done = run_prune(lifecycle, engine=engine, registry=registry_with_champion, now=now)
    assert done.ok, done.errors
    assert done.requests is not None
    assert done.requests.cutoff == now - timedelta(days=30)
    assert count_rows(engine)["prediction_requests"] == 10
    assert count_rows(engine)["feedback"] == 10
    if engine.url.get_backend_name() == "postgresql":
        assert done.partitions is not None
        assert done.requests.partitions_dropped
    else:
        assert done.requests.rows_deleted == 40  # 20 requests and their 20 feedback rows

    again = run_prune(lifecycle, engine=engine, registry=registry_with_champion, now=now)
    assert again.ok, again.errors
    assert again.requests is not None
    assert (again.requests.partitions_dropped, again.requests.rows_deleted or 0) == ((), 0)
    assert count_rows(engine)["prediction_requests"] == 10
