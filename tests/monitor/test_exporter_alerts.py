"""TagwatchMonitorStale (prometheus/alerts.rules.yml, unchanged) on the series the exporter exports: drift runs made by
a CronJob and read back by `tagwatch monitor --exporter`.

First `promtool test rules` on series produced by the exporter itself (a simulated half hour of CronJob runs, the
exporter read once a minute), then a real Prometheus scraping a real exporter while runs arrive and then stop.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from commands.polling import free_port, wait_for
from monitor.exporter import RunsExporter, serve
from tagwatch.db import DriftRun, make_engine, upgrade_database
from tests.support import require_tool

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "prometheus" / "alerts.rules.yml"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # promtool's time() starts here
LABELS = 'job="tagwatch-monitor",instance="monitor:9108"'
STATUSES = ("ok", "skipped", "failed")
MINUTES = 30
STALE = "TagwatchMonitorStale"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'tagwatch.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def add_run(engine: Engine, started: datetime, status: str, took: float = 4.0) -> None:
    with Session(engine) as session:
        session.add(
            DriftRun(
                started_at=started,
                finished_at=started + timedelta(seconds=took),
                status=status,
                model_version="1",
                confirmed=dict.fromkeys(("data", "concept", "feature"), False),
                reasons=[],
                summary={"sizes": {"current": 300, "feedback": 10}} if status == "ok" else None,
            )
        )
        session.commit()


@dataclass
class Scenario:
    """One CronJob run a minute (at hh:mm:05) whose status is ``status(minute)`` (None: no run that minute), the
    exporter (re)started at the minutes in ``restarts``; the test's expectations at ``expect`` (minute -> firing)."""

    name: str
    status: Callable[[int], str | None]
    expect: dict[int, bool]
    restarts: tuple[int, ...] = (0,)


SCENARIOS = [
    Scenario("runs succeed, the exporter restarts at 12m", lambda m: "ok", {5: False, 20: False, 29: False}, (0, 12)),
    Scenario("runs fail from 6m", lambda m: "ok" if m < 6 else "failed", {7: False, 10: False, 16: True, 25: True}),
    Scenario("the CronJob stops at 6m", lambda m: "ok" if m < 6 else None, {10: False, 16: True}),
    Scenario("a fresh stack whose runs fail", lambda m: "failed", {1: False, 10: True}),
    Scenario("a fresh stack waiting for traffic", lambda m: "skipped", {10: False, 29: False}),
    # The exporter started after the last success: its counters are at 0, the timestamp still tells.
    Scenario("stale across an exporter restart", lambda m: "ok" if m < 3 else "failed", {14: True}, (0, 8)),
]


def exported_series(engine: Engine, scenario: Scenario) -> dict[str, list[float]]:
    """The exporter's values, scraped once a minute (at hh:mm:30), by series."""
    series: dict[str, list[float]] = {}
    exporter: RunsExporter | None = None
    for minute in range(MINUTES + 1):
        if (status := scenario.status(minute)) is not None:
            add_run(engine, EPOCH + timedelta(minutes=minute, seconds=5), status)
        if minute in scenario.restarts:
            exporter = RunsExporter(engine, interval_seconds=60, started_at=EPOCH + timedelta(minutes=minute))
        assert exporter is not None
        exporter.refresh(force=True)
        for family in exporter.metrics.registry.collect():
            if not family.name.startswith("tagwatch_monitor_") or family.name.endswith("_info"):
                continue
            for sample in family.samples:
                if sample.name.endswith(("_created", "_bucket", "_sum", "_count")):
                    continue
                labels = "".join(f',{k}="{v}"' for k, v in sorted(sample.labels.items()))
                series.setdefault(f"{sample.name}{{{LABELS}{labels}}}", []).append(sample.value)
    return series


def promtool_test(scenario: Scenario, series: dict[str, list[float]]) -> dict[str, Any]:
    stale = {"job": "tagwatch-monitor", "severity": "ticket", "component": "monitor"}
    # The rule's own annotations (no templates in them): promtool compares annotations too.
    rule = next(r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"] if r.get("alert") == STALE)
    return {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "15s",
        "tests": [
            {
                "name": scenario.name,
                "interval": "1m",
                "input_series": [
                    {"series": f"up{{{LABELS}}}", "values": f"1x{MINUTES}"},
                    *(
                        {"series": name, "values": " ".join(f"{v:g}" for v in values)}
                        for name, values in series.items()
                    ),
                ],
                "alert_rule_test": [
                    {
                        "eval_time": f"{minute}m",
                        "alertname": STALE,
                        "exp_alerts": [{"exp_labels": stale, "exp_annotations": rule["annotations"]}] if firing else [],
                    }
                    for minute, firing in scenario.expect.items()
                ],
            }
        ],
    }


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_monitor_stale_on_the_exporters_series(engine: Engine, tmp_path: Path, scenario: Scenario) -> None:
    promtool = require_tool("promtool")
    series = exported_series(engine, scenario)
    # The series the rule reads, shaped as a scheduled monitor's: one per status, plus the interval and timestamp.
    assert {n.split("{")[0] for n in series} >= {
        "tagwatch_monitor_last_success_timestamp_seconds",
        "tagwatch_monitor_interval_seconds",
        "tagwatch_monitor_runs_total",
    }
    assert sum("tagwatch_monitor_runs_total" in n for n in series) == len(STATUSES)
    path = tmp_path / "exporter.test.yml"
    path.write_text(yaml.safe_dump(promtool_test(scenario, series), sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{path.read_text()[:3000]}"


# --- a real Prometheus ------------------------------------------------------------------------------------------


class Runs:
    """A CronJob stand-in: an ok drift run stored every ``every`` seconds while running."""

    def __init__(self, engine: Engine, every: float) -> None:
        self.engine, self.every = engine, every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                add_run(self.engine, datetime.now(UTC) - timedelta(seconds=0.1), "ok", took=0.1)
                self._stop.wait(self.every)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def fast_rules(tmp: Path) -> Path:
    """alerts.rules.yml with every `for:` and the evaluation interval at 1 s (as tests/prometheus/test_live.py does)."""
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    path = tmp / "alerts.rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


@pytest.mark.slow
def test_a_real_prometheus_calls_the_cronjob_monitor_stale_when_runs_stop(engine: Engine, tmp_path: Path) -> None:
    prometheus_bin = require_tool("prometheus")
    interval = 3.0  # the CronJob's schedule: stale after 6 s without a success
    runs = Runs(engine, every=1.0)
    runs.start()
    exporter = RunsExporter(engine, interval_seconds=interval, refresh_seconds=0.2)
    server = serve(exporter, host="127.0.0.1", port=0)
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(fast_rules(tmp_path))],
        "scrape_configs": [
            {"job_name": "tagwatch-monitor", "static_configs": [{"targets": [f"127.0.0.1:{server.server_port}"]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("wb")
    prom = subprocess.Popen(
        [
            prometheus_bin,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def query(expr: str) -> list[dict[str, Any]]:
        try:
            body = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=5).json()
        except httpx.HTTPError:
            return []
        assert body["status"] == "success", body
        return body["data"]["result"]  # type: ignore[no-any-return]

    firing = 'ALERTS{alertname="TagwatchMonitorStale",alertstate="firing"}'
    try:
        wait_for(lambda: query('up{job="tagwatch-monitor"} == 1'), timeout=60, what="the exporter scraped")
        # Fresh while runs arrive (the absent() before the first scrape may have fired: wait until it resolved).
        wait_for(lambda: not query(firing), timeout=30, what="TagwatchMonitorStale not firing")
        for _ in range(8):  # 8 s > the 6 s staleness: it would have fired by now
            assert not query(firing), "stale while runs succeed"
            threading.Event().wait(1.0)
        runs.stop()  # the CronJob stops succeeding; the exporter is still up
        alert = wait_for(lambda: query(firing), timeout=60, what="TagwatchMonitorStale firing")
        assert alert[0]["metric"]["job"] == "tagwatch-monitor"
        assert query('up{job="tagwatch-monitor"} == 1'), "it fired because runs stopped, not because the target is down"
        runs.start()
        wait_for(lambda: not query(firing), timeout=60, what="TagwatchMonitorStale resolved")
    finally:
        runs.stop()
        prom.terminate()
        prom.wait(timeout=10)
        log.close()
        server.shutdown()
        server.server_close()
