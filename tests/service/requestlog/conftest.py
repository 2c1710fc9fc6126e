"""Fixtures of the request-log tests: a migrated engine, writers with fast timings, databases to take down."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from service.metrics import ServiceMetrics
from service.requestlog import RequestLogWriter
from tagwatch.db import make_engine, upgrade_database
from tests.service.proxy import TcpProxy
from tests.service.requestlog.support import MiB, Outage


@pytest.fixture
def make_writer(tmp_path: Path) -> Iterator[Callable[..., RequestLogWriter]]:
    """Writers with fast test timings; every writer is stopped at the end of the test."""
    writers: list[RequestLogWriter] = []

    def factory(engine: Engine, **kwargs: object) -> RequestLogWriter:
        options: dict[str, object] = {
            "queue_size": 1000,
            "queue_bytes": 64 * MiB,
            "batch_size": 100,
            "flush_interval": 0.02,
            "spill_dir": tmp_path / "spill",
            "spill_max_bytes": 1024 * MiB,
            "metrics": ServiceMetrics(),
            "max_backoff": 0.2,
        }
        options.update(kwargs)
        writer = RequestLogWriter(engine, **options)  # type: ignore[arg-type]
        writers.append(writer)
        return writer

    yield factory
    for w in writers:
        w.stop(5.0)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    if request.param == "postgres":
        direct: str = request.getfixturevalue("postgres_url")
        upgrade_database(direct)
        target = make_url(direct)
        proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432))
        proxy.start()
        via_proxy = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        check = make_engine(direct)
        yield Outage(via_proxy, check, proxy.kill, proxy.start, {"connect_timeout": 2.0}, proxy.freeze, proxy.thaw)
        proxy.kill()
        check.dispose()
        return
    url = f"sqlite:///{tmp_path / 'outage.db'}"
    upgrade_database(url)
    holder: list[sqlite3.Connection] = []

    def down() -> None:  # another process holding the write lock: writes fail with "database is locked"
        conn = sqlite3.connect(tmp_path / "outage.db", isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN EXCLUSIVE")
        holder.append(conn)

    def up() -> None:
        conn = holder.pop()
        conn.execute("ROLLBACK")
        conn.close()

    check = make_engine(url)
    yield Outage(url, check, down, up, {"busy_timeout": 0.05}, down, up)
    while holder:
        up()
    check.dispose()
