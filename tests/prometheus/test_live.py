"""The monitoring stack live: the real service and monitor on loopback, a real Prometheus scraping them with the
repository's rules, a real Alertmanager with the repository's routing delivering to a local webhook (the alert sink).

What changes from the committed configuration, and only that: targets are loopback ports, scrape and evaluation run
every second, every alert's ``for:`` is 1 s and Alertmanager's group timings are 1 s (so the test takes a minute, not
an hour), and every webhook receiver points at the test's sink.

A drift condition (a window of 2022+ questions against a champion of all years) must reach the webhook as
``TagwatchDataDriftConfirmed`` firing, and a stable window afterwards must resolve it. Then every PromQL expression of
every rule and every dashboard is evaluated against this Prometheus: none may fail, and none may name a series that
does not exist.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from commands.polling import ServiceThread, free_port, http_ok, wait_for
from tagwatch.data import Question
from tagwatch.settings import Settings
from tests.support import require_tool

ROOT = Path(__file__).resolve().parents[2]
FAST = "1s"

pytestmark = pytest.mark.slow


class Program:
    """A real program in the background, its output kept for failure messages."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def wait_ready(self, url: str) -> None:
        """Until GET ``url`` answers 200; fails with the program's output if it exits or takes over 60 s."""

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.proc.args[0]} exited ({self.proc.returncode}):\n{self.output()}")
            return http_ok(url)

        try:
            wait_for(ready, timeout=60, what=url)
        except RuntimeError as exc:
            raise AssertionError(f"{exc}\n{self.output()}") from exc

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


# --- test copies of the committed configuration ----------------------------------------------------------------------
def prometheus_config(tmp: Path, *, api: str, monitor: str, alertmanager: str, prometheus: str) -> Path:
    config = yaml.safe_load((ROOT / "prometheus.yml").read_text())
    config["global"].update(scrape_interval=FAST, evaluation_interval=FAST, scrape_timeout=FAST)
    targets = {"tagwatch-api": api, "tagwatch-monitor": monitor, "alertmanager": alertmanager, "prometheus": prometheus}
    # No retrain worker here: the runner is embedded in the monitor, its metrics on the monitor's endpoint.
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] != "tagwatch-retrain"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(targets), f"scrape jobs changed: {sorted(jobs)}"
    for name, job in jobs.items():
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [targets[name]]}]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager]}]}]
    (tmp / "prometheus").mkdir()
    for rule_file in config["rule_files"]:
        rules = yaml.safe_load((ROOT / rule_file).read_text())
        for group in rules["groups"]:
            group["interval"] = FAST
            for rule in group["rules"]:
                if "alert" in rule and "for" in rule:
                    rule["for"] = FAST
        (tmp / rule_file).write_text(yaml.safe_dump(rules, sort_keys=False))
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def alertmanager_config(tmp: Path, *, webhook: str) -> Path:
    config = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())

    def fast(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route or route is config["route"]:
                route[key] = FAST
        for child in route.get("routes", []):
            fast(child)

    fast(config["route"])
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --- the stack ---------------------------------------------------------------------------------------------------
class Stack:
    def __init__(self, prometheus: str, sink: Any, service_url: str) -> None:
        self.prometheus = prometheus
        self.sink = sink
        self.service_url = service_url

    def query(self, expr: str) -> dict[str, Any]:
        response = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        body: dict[str, Any] = response.json()
        assert response.status_code == 200, f"{expr!r}: {response.status_code} {body.get('error')}"
        assert body["status"] == "success", f"{expr!r}: {body}"
        return body["data"]  # type: ignore[no-any-return]

    def alerts(self, name: str, status: str) -> list[dict[str, Any]]:
        """Alerts named ``name`` with ``status`` (firing/resolved) delivered to the webhook so far."""
        return [
            alert
            for kept in self.sink.notifications()
            for alert in kept["notification"].get("alerts", [])
            if alert["labels"].get("alertname") == name and alert["status"] == status
        ]

    def send(self, questions: list[Question], seed: int) -> None:
        from commands.replay import replay

        summary = asyncio.run(replay(questions, url=self.service_url, concurrency=8, feedback_share=1.0, seed=seed))
        assert summary.answered == len(questions), summary
        assert summary.feedback_ok == len(questions), summary


@pytest.fixture
def stack(
    tmp_path: Path, settings: Settings, registry_with_champion: Any, small_training_set: list[Question]
) -> Iterator[Stack]:
    for tool in ("prometheus", "prometheus-alertmanager"):
        require_tool(tool)
    from commands.alertsink import AlertSink
    from commands.scheduler import serve_metrics, start_scheduler
    from monitor.job import Monitor
    from tagwatch.db import make_engine, upgrade_database

    live = Settings(
        **{
            **settings.model_dump(),
            "window_size": 300,
            "min_window": 200,
            "reload_interval_seconds": 0.5,
            "log_flush_interval_seconds": 0.1,
            "auto_retrain": False,  # the drift must stay confirmed until the stable window resolves it
            # One window confirms: the 300 drifted requests may all land between two runs, and a run that finds the
            # same window again does not measure it again (monitor.job), so it would never be confirmed twice.
            "drift_confirmations": 1,
        }
    )
    upgrade_database(live.db_url)
    engine = make_engine(live.db_url)
    cleanup: list[Callable[[], Any]] = [engine.dispose]
    try:
        sink = AlertSink("127.0.0.1", 0, echo=lambda line: None).start()
        cleanup.append(sink.stop)
        service = ServiceThread(live).__enter__()
        cleanup.append(lambda: service.__exit__(None, None, None))
        monitor = Monitor(live, engine=engine, registry=registry_with_champion, retrain_enabled=False)
        metrics_server = serve_metrics(monitor, host="127.0.0.1", port=0)
        cleanup.append(metrics_server.shutdown)
        scheduler = start_scheduler(monitor, interval_seconds=2, background=True)
        scheduler.start()
        cleanup.append(lambda: scheduler.shutdown(wait=True))

        am_port, prom_port = free_port(), free_port()
        am = Program(
            [
                "prometheus-alertmanager",
                f"--config.file={alertmanager_config(tmp_path, webhook=f'{sink.url}/alerts')}",
                f"--storage.path={tmp_path / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            tmp_path / "alertmanager.log",
        )
        cleanup.append(am.stop)
        config = prometheus_config(
            tmp_path,
            api=f"127.0.0.1:{service.port}",
            monitor=f"127.0.0.1:{metrics_server.server_port}",
            alertmanager=f"127.0.0.1:{am_port}",
            prometheus=f"127.0.0.1:{prom_port}",
        )
        prom = Program(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            tmp_path / "prometheus.log",
        )
        cleanup.append(prom.stop)
        prometheus = f"http://127.0.0.1:{prom_port}"
        prom.wait_ready(f"{prometheus}/-/ready")
        am.wait_ready(f"http://127.0.0.1:{am_port}/-/ready")
        yield Stack(prometheus, sink, service.url)
    finally:
        for step in reversed(cleanup):
            step()


def _expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every rule and every dashboard query."""
    from dashboards.queries import dashboard_queries

    found = []
    for rule_file in sorted((ROOT / "prometheus").glob("*.rules.yml")):
        for group in yaml.safe_load(rule_file.read_text())["groups"]:
            for rule in group["rules"]:
                found.append((f"{rule_file.name}: {rule.get('alert') or rule.get('record')}", rule["expr"]))
    found += [(f"dashboard {uid}: {title}", expr) for uid, title, expr in dashboard_queries()]
    return found


SELECTOR = re.compile(r"\b((?:tagwatch_|tagwatch:|up\b)[A-Za-z0-9_:]*)")


def test_drift_alert_fires_resolves_and_every_query_has_data(
    stack: Stack, bundled_questions: list[Question], small_training_set: list[Question]
) -> None:
    # Drift: the newest questions, against a champion trained on a sample of all years.
    drifted = [q for q in bundled_questions if q.created_at is not None and q.created_at.year >= 2023][:300]
    stack.send(drifted, seed=1)
    firing = wait_for(
        lambda: stack.alerts("TagwatchDataDriftConfirmed", "firing"),
        timeout=180,
        what="TagwatchDataDriftConfirmed firing",
        interval=0.5,
    )
    alert = firing[0]
    assert alert["labels"]["kind"] == "data"
    assert alert["labels"]["severity"] == "ticket"
    assert alert["annotations"]["report"].endswith("/reports/latest")
    assert "tagwatch-model-drift" in alert["annotations"]["dashboard"]
    assert not stack.alerts("TagwatchDataDriftConfirmed", "resolved")

    # While the drift is confirmed (all metrics have samples by now): every expression evaluates, and names only
    # series that exist; queries that are not filters (no comparison) return data.
    stack.send(small_training_set[1000:1100], seed=2)  # fresh traffic for the rate windows
    problems = []
    for where, expr in _expressions():
        data = stack.query(expr)
        names = set(SELECTOR.findall(expr))
        missing = [n for n in sorted(names) if not stack.query(f"count({{__name__={json.dumps(n)}}})")["result"]]
        if missing:
            problems.append(f"{where}: no series named {missing}")
        elif not data["result"] and not re.search(r"[<>]|==|!=\s*\d|\bunless\b|\babsent", expr):
            problems.append(f"{where}: no data for {expr!r}")
    assert not problems, "\n".join(problems)

    # Stable traffic: the newest window is the champion's own distribution again; the alert resolves.
    stack.send(small_training_set[1100:1400], seed=3)
    wait_for(
        lambda: stack.alerts("TagwatchDataDriftConfirmed", "resolved"),
        timeout=180,
        what="TagwatchDataDriftConfirmed resolved",
        interval=0.5,
    )
    assert stack.query('tagwatch_drift_confirmed{kind="data"}')["result"][0]["value"][1] == "0"
