"""Hostile-input benchmark, part 2: the real service (uvicorn, 1 worker, request log off) serving a small model trained
here, timed on real questions alone and while clients send benign or hostile bodies of the maximum size; the same with
the legacy text preparation patched into the service."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.bodies import Body, fill_body
from bench.hostile_text import ROOT, best_ms, summary
from tagwatch.data import Question
from tagwatch.text import TextInput

SEED = 7
HTTP_NORMAL = 300
HTTP_CLIENTS = 4
HTTP_TARGET_P99_RISE_MS = 100.0  # over the normal p99 under a benign load of the same size
LEGACY_HTTP_NORMAL = 20  # normal requests under hostile load on the legacy service (each waits seconds)
LEGACY_HTTP_BUDGET = 120.0  # ... or this many seconds, whichever comes first


class _OneModel:
    """A model source with one version (no registry): what tests/support.py's InMemorySource does."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def champion_version(self) -> str:
        return "1"

    def load_model(self, version: str) -> Any:
        return self.model

    def version_info(self, version: str) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(data_window={}, metrics={}, params={})


def serve(model_dir: Path, port: int, *, legacy: bool) -> None:
    """The child process: the real app on 127.0.0.1:``port`` (request log off, settings from the environment)."""
    import uvicorn

    import tagwatch.model.tagmodel
    from service.app import create_app
    from tagwatch.model import TagModel
    from tagwatch.settings import Settings

    if legacy:
        from bench import legacy_text

        tagwatch.model.tagmodel.model_texts = legacy_text.model_texts
    app = create_app(Settings(), source=_OneModel(TagModel.load(model_dir)))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@contextmanager
def _service(model_dir: Path, home: Path, *, legacy: bool) -> Iterator[str]:
    from commands.polling import free_port, http_ok, wait_for

    port = free_port()
    env = {**os.environ, "TAGWATCH_HOME": str(home), "TAGWATCH_LOG_ENABLED": "false"}
    command = [sys.executable, "-m", "bench.hostile", "serve", "--model", str(model_dir), "--port", str(port)]
    proc = subprocess.Popen([*command, *(["--legacy"] if legacy else [])], env=env, cwd=ROOT, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        return http_ok(f"{url}/ready")

    try:
        wait_for(ready, timeout=120, what="the service to be ready", interval=0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _normal_requests(url: str, payloads: list[dict[str, str]], *, budget: float | None = None) -> dict[str, Any]:
    import httpx

    latencies, statuses = [], []
    deadline = time.monotonic() + budget if budget else None
    with httpx.Client(timeout=600) as client:
        for payload in payloads:
            start = time.perf_counter()
            statuses.append(client.post(f"{url}/predict", json=payload).status_code)
            latencies.append((time.perf_counter() - start) * 1e3)
            if deadline and time.monotonic() > deadline:
                break
    return {"requests": len(latencies), "ok": statuses.count(200), **summary(sorted(latencies))}


def _load_clients(url: str, payloads: list[dict[str, str]], stop: threading.Event, out: list[Any]) -> None:
    """One client sending ``payloads`` in turn until ``stop``; (status, milliseconds) per answer into ``out``."""
    import httpx

    with httpx.Client(timeout=600) as client:
        for i in range(10_000):  # bounded; ``stop`` ends it long before
            if stop.is_set():
                return
            start = time.perf_counter()
            status = client.post(f"{url}/predict", json=payloads[i % len(payloads)]).status_code
            out.append((status, (time.perf_counter() - start) * 1e3))


def _under_load(
    url: str, normal: list[dict[str, str]], load: list[dict[str, str]], *, budget: float | None
) -> dict[str, Any]:
    """``normal`` sent one at a time while HTTP_CLIENTS clients send ``load`` in a loop."""
    stop, sent = threading.Event(), list[tuple[int, float]]()
    clients = [
        threading.Thread(target=_load_clients, args=(url, load[i:] + load[:i], stop, sent), daemon=True)
        for i in range(HTTP_CLIENTS)
    ]
    for c in clients:
        c.start()
    time.sleep(0.5)  # let the load queue up first
    result = _normal_requests(url, normal, budget=budget)
    stop.set()
    for c in clients:
        c.join(timeout=600)
    statuses = [status for status, _ in sent]
    return {
        **result,
        "load_requests": len(sent),
        "load_statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
        "load_ms": summary(sorted(ms for _, ms in sent)) if sent else {},
    }


def _predict_ms(model: Any, payloads: list[dict[str, str]]) -> dict[str, float]:
    """In-process cost of one /predict's model work per body (best of REPEAT): what a request holds the loop for."""
    return summary(sorted(best_ms(model.predict, [TextInput(p["title"], p["body"])]) for p in payloads))


def _benign_max_size(questions: list[Question], n: int = 8) -> list[dict[str, str]]:
    """The ``n`` longest real bodies, each repeated up to the maximum size: legitimate requests as big as allowed."""
    longest = sorted(questions, key=lambda q: -len(q.body))[:n]
    return [{"title": q.title, "body": fill_body("", q.body, "")} for q in longest]


def bench_http(questions: list[Question], worst: list[Body], *, legacy: bool) -> dict[str, Any]:
    from retrain.train import train_model

    rng = random.Random(SEED)
    training = rng.sample(questions, 3_000)
    seen = {q.id for q in training}
    normal = rng.sample([{"title": q.title, "body": q.body} for q in questions if q.id not in seen], HTTP_NORMAL)
    hostile = [{"title": b.title, "body": b.body} for b in worst]
    benign = _benign_max_size(questions)
    model = train_model(training, top_n=40, max_tags=5, seed=SEED)
    out: dict[str, Any] = {
        "hostile_bodies": [f"{b.family} / {b.name}" for b in worst],
        "predict_ms_in_process": {
            "normal": _predict_ms(model, normal),
            "benign_max_size": _predict_ms(model, benign),
            "hostile": _predict_ms(model, hostile),
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        model.save(model_dir)
        with _service(model_dir, Path(tmp) / "new", legacy=False) as url:
            _normal_requests(url, normal[:30])  # warm-up
            out["new"] = {
                "alone": _normal_requests(url, normal),
                "under_benign_max_size_load": _under_load(url, normal, benign, budget=None),
                "under_hostile_load": _under_load(url, normal, hostile, budget=None),
            }
        print(f"http new: {out['new']}", flush=True)
        if legacy:
            with _service(model_dir, Path(tmp) / "legacy", legacy=True) as url:
                _normal_requests(url, normal[:30])
                out["legacy"] = {
                    "alone": _normal_requests(url, normal),
                    "under_hostile_load": _under_load(
                        url, normal[:LEGACY_HTTP_NORMAL], hostile, budget=LEGACY_HTTP_BUDGET
                    ),
                }
            print(f"http legacy: {out['legacy']}", flush=True)
    return out


def worst_for_http(bodies: list[Body]) -> list[Body]:
    """The bodies that cost the most as the API sees them, plus the three shapes first measured from outside."""
    by_name = {(b.family, b.name): b for b in bodies}
    first = [by_name["html <pre>", "<pre> unclosed"], by_name["html <code>", "<code> unclosed"]]
    first.append(by_name["html tags", "<p "])
    rest = sorted((b for b in bodies if b not in first), key=lambda b: -b.new_ms["detected"])
    return first + rest[:5]
