"""`tagwatch monitor --exporter` as a real process, and `tagwatch drift-check` as the chart's CronJob runs it
(TAGWATCH_RETRAIN_RUNNER=off: it files the retrain, the worker runs it): the exporter's /metrics shows the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from commands.polling import free_port, http_ok, wait_for
from tagwatch.data import Question
from tagwatch.db import make_engine, upgrade_database
from tagwatch.settings import Settings
from tests.commands.cli.support import invoke
from tests.support import log_questions

ROOT = Path(__file__).resolve().parents[3]


class Exporter:
    """`tagwatch monitor --exporter` in a process of its own, on a free port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = log.open("wb")
        args = ["monitor", "--exporter", "--host", "127.0.0.1", "--port", str(self.port), "--interval", "60"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "commands.cli", *args], cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT
        )

        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the exporter exited ({self.proc.returncode}):\n{self.output()}")
            return http_ok(f"{self.url}/health")

        wait_for(up, timeout=60, what="the exporter's /health")

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(errors="replace")

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = httpx.get(f"{self.url}/metrics", timeout=10)
        assert response.status_code == 200, response.text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
        }

    def stop(self) -> int:
        """SIGTERM, as Kubernetes stops a pod; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


@pytest.fixture
def cronjob_env(cli_home: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of the chart's monitor CronJob: a drift run per schedule, the retrain left to the worker."""
    values = {
        "TAGWATCH_RETRAIN_RUNNER": "off",
        "TAGWATCH_WINDOW_SIZE": "300",
        "TAGWATCH_MIN_WINDOW": "200",
        "TAGWATCH_DRIFT_CONFIRMATIONS": "1",
        "TAGWATCH_RETRAIN_MIN_LABELLED": "100",
        "TAGWATCH_MONITOR_INTERVAL_SECONDS": "60",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return {k: v for k, v in os.environ.items()}


@pytest.mark.slow
def test_drift_check_with_the_runner_off_files_the_retrain_and_the_exporter_shows_the_run(
    cli_home: Settings,
    registry_with_champion: Any,
    bundled_questions: list[Question],
    cronjob_env: dict[str, str],
    tmp_path: Path,
) -> None:
    from tagwatch.retrain_queue import PENDING, pending_or_running

    assert registry_with_champion.champion_version() == "1"
    upgrade_database(cli_home.db_url)
    engine = make_engine(cli_home.db_url)
    try:
        exporter = Exporter(cronjob_env, tmp_path / "exporter.log")
        try:
            before = exporter.metrics()
            assert before[("tagwatch_monitor_last_success_timestamp_seconds", ())] == 0
            assert before[("tagwatch_monitor_runs_total", (("status", "ok"),))] == 0
            assert before[("tagwatch_monitor_interval_seconds", ())] == 60

            drifted = [q for q in bundled_questions if q.created_at is not None and q.created_at.year >= 2022][:300]
            log_questions(engine, drifted, now=datetime.now(UTC))
            result = invoke("drift-check")
            assert result.exit_code == 0, result.output
            data_line = next(line for line in result.stdout.splitlines() if line.startswith("  data "))
            assert data_line.endswith("CONFIRMED"), result.output

            # Filed, not run: the request waits for the retrain worker, the champion has not moved.
            request = pending_or_running(engine, model_name=cli_home.model_name)
            assert request is not None
            assert request.status == PENDING
            assert registry_with_champion.champion_version() == "1"

            def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
                seen = exporter.metrics()
                return seen if seen[("tagwatch_monitor_runs_total", (("status", "ok"),))] == 1 else None

            after = wait_for(scraped, timeout=20, what="the run counted by the exporter")  # it refreshes every 5 s
            assert after[("tagwatch_drift_confirmed", (("kind", "data"),))] == 1
            assert after[("tagwatch_drift_detected", (("kind", "data"),))] == 1
            assert after[("tagwatch_monitor_champion_info", (("version", "1"),))] == 1
            assert after[("tagwatch_monitor_window_questions", (("part", "all"),))] == 300
            assert (
                after[("tagwatch_drift_score", (("kind", "data"),))]
                > after[("tagwatch_drift_threshold", (("kind", "data"),))]
            )
            last = after[("tagwatch_monitor_last_success_timestamp_seconds", ())]
            assert abs(last - datetime.now(UTC).timestamp()) < 120
            assert after[("tagwatch_monitor_run_duration_seconds_count", ())] == 1
        finally:
            code = exporter.stop()
        assert code == 0, exporter.output()
        assert "Traceback" not in exporter.output()
    finally:
        engine.dispose()


def test_the_exporter_runs_no_drift_job_and_stops_cleanly_on_sigterm(
    cli_home: Settings, cronjob_env: dict[str, str], tmp_path: Path
) -> None:
    upgrade_database(cli_home.db_url)  # as `tagwatch init` leaves it: the exporter runs no migration
    exporter = Exporter(cronjob_env, tmp_path / "exporter.log")
    try:
        first = exporter.metrics()
        assert first[("tagwatch_monitor_last_success_timestamp_seconds", ())] == 0
        assert first[("tagwatch_drift_confirmed", (("kind", "concept"),))] == 0
        assert not (cli_home.home / "registry.db").exists()  # no registry, no model: nothing but drift_runs read
        assert not cli_home.reports_dir.exists()
    finally:
        code = exporter.stop()
    assert code == 0, exporter.output()


def test_the_exporter_needs_a_port(cli_home: Settings) -> None:
    result = invoke("monitor", "--exporter", "--port", "0")
    assert result.exit_code == 2
    assert "--port 0 serves nothing" in result.output


def test_the_exporter_on_a_busy_port_is_one_clear_line(cli_home: Settings) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("monitor", "--exporter", "--host", "127.0.0.1", "--port", str(port))
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output
