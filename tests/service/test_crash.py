"""The request log survives a SIGKILL of the real service during a PostgreSQL outage.

The service runs as a process of its own (uvicorn, a small model, the request log on PostgreSQL through a TCP proxy
the test controls). The durability bound under test: once a batch write has failed, every acknowledged prediction is
in the spill file (flushed to the kernel) before its response is sent, and the rows held in memory when the write
failed were spilled at once; so a SIGKILL during an outage loses no acknowledged row, and the next process replays
them all. (Rows acknowledged while the database still looked healthy wait in memory for at most one flush interval
plus the time a failing write takes to fail: only a kill inside that window can lose them.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url

from commands.polling import free_port, wait_for
from tagwatch.db import PredictionRequest, make_engine, upgrade_database
from tagwatch.model import TagModel
from tests.service.proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
FLUSH_INTERVAL = 0.5  # the default of TAGWATCH_LOG_FLUSH_INTERVAL_SECONDS
QUESTION = {
    "title": "How to group a pandas DataFrame by one column and sum another",
    "body": "<p>I have a DataFrame with columns <code>city</code> and <code>sales</code>.</p>"
    "<pre><code>df.groupby('city')['sales'].sum()</code></pre>",
}


class Service:
    """``python -m tests.service.crash_app`` on a free loopback port; its output in a log file."""

    def __init__(self, env: dict[str, str], model_dir: Path, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.service.crash_app", str(model_dir), str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited ({self.proc.returncode}):\n{self.output()}")
            try:
                return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=120, what="the service to answer", interval=0.1)

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return sum(
            s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name and not s.labels
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@contextmanager
def service(env: dict[str, str], model_dir: Path, log_path: Path) -> Iterator[Service]:
    svc = Service(env, model_dir, log_path)
    try:
        svc.wait_ready()
        yield svc
    finally:
        svc.close()


def predict(client: httpx.Client) -> str:
    response = client.post("/predict", json=QUESTION)
    response.raise_for_status()  # acknowledged: 200 with its request id
    return str(response.json()["request_id"])


@pytest.mark.postgres
def test_sigkill_during_an_outage_loses_no_acknowledged_row(
    postgres_url: str, small_model: TagModel, tmp_path: Path
) -> None:
    upgrade_database(postgres_url)
    model_dir = tmp_path / "model"
    small_model.save(model_dir)
    target = make_url(postgres_url)
    proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432))
    proxy.start()
    via_proxy = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    home = tmp_path / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TAGWATCH_")},
        "TAGWATCH_HOME": str(home),
        "TAGWATCH_DATABASE_URL": via_proxy,
        "TAGWATCH_REGISTRY_URL": f"sqlite:///{tmp_path / 'registry.db'}",  # never used: the model comes from a file
        "TAGWATCH_AUTO_MIGRATE": "false",
        "TAGWATCH_LOG_FLUSH_INTERVAL_SECONDS": str(FLUSH_INTERVAL),
    }
    check = make_engine(postgres_url)
    n_before, m_detected, m_after = 200, 100, 300
    acked: list[str] = []
    try:
        with service(env, model_dir, tmp_path / "first.log") as first:
            client = httpx.Client(base_url=first.url, timeout=10)
            acked += [predict(client) for _ in range(n_before)]

            proxy.kill()  # the outage: connections closed, new ones refused
            acked += [predict(client) for _ in range(m_detected)]
            # About a flush interval later the writer has tried, failed and spilled what it held.
            wait_for(
                lambda: (
                    first.metric("tagwatch_request_log_write_failures_total") >= 1
                    and first.metric("tagwatch_request_log_rows_spilled_total") >= m_detected
                ),
                timeout=30,
                what="the writer to notice the outage and spill",
                interval=0.05,
            )
            assert first.metric("tagwatch_request_log_queue_depth") == 0

            # Write-ahead: acknowledged rows are on disk before their response; kill right after the last one,
            # with requests of other clients still in flight.
            more: list[str] = []
            stop = threading.Event()
            lock = threading.Lock()

            def send() -> None:
                with httpx.Client(base_url=first.url, timeout=10) as c:
                    while not stop.is_set():
                        try:
                            request_id = predict(c)
                        except httpx.HTTPError:
                            return  # the process is gone: not acknowledged
                        with lock:
                            more.append(request_id)

            senders = [threading.Thread(target=send, daemon=True) for _ in range(4)]
            for t in senders:
                t.start()
            wait_for(lambda: len(more) >= m_after, timeout=60, what=f"{m_after} more predictions", interval=0.001)
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(10)
            stop.set()
            for t in senders:
                t.join(15)
            client.close()
            with lock:
                acked += more
            spilled = sorted((home / "spill").glob("spill-*.jsonl"))
            assert spilled, first.output()
            assert not check_ids(check, acked[n_before:]), "rows written during the outage?"

        proxy.start()  # the database is back; a new process replays the spill dir
        with service(env, model_dir, tmp_path / "second.log") as second:
            wait_for(
                lambda: not list((home / "spill").glob("spill-*.jsonl")),
                timeout=60,
                what="the spill files to be replayed",
                interval=0.1,
            )
            missing = set(acked) - check_ids(check, acked)
            assert not missing, f"{len(missing)} of {len(acked)} acknowledged rows lost:\n{second.output()}"
            assert second.metric("tagwatch_request_log_spill_pending_rows") == 0
            # A graceful stop is bounded by the drain setting (default 20 s) and is quick when nothing hangs.
            started = time.monotonic()
            second.proc.send_signal(signal.SIGTERM)
            # uvicorn ends a graceful shutdown by re-raising the signal it caught.
            assert second.proc.wait(30) in (0, -signal.SIGTERM)
            assert time.monotonic() - started < 10
    finally:
        proxy.kill()
        check.dispose()
    print(f"acknowledged {n_before} before, {m_detected} + {len(more)} during the outage; lost 0")


def check_ids(engine: Engine, ids: list[str]) -> set[str]:
    """The ids among ``ids`` stored in the request log."""
    found: set[str] = set()
    with engine.connect() as conn:
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            found.update(conn.execute(select(PredictionRequest.id).where(PredictionRequest.id.in_(chunk))).scalars())
    return found
