"""Service benchmarks, recorded in bench/results/service.md and service.json.

1. In-process: predict one question vs the TF-IDF transform alone (target: predict <= 1.5x transform).
2. HTTP: the real service (uvicorn, 1 worker) under a bounded load from this process, with the request log on
   (PostgreSQL when reachable, else SQLite) and off; target: throughput with logging >= 0.9x without; after the run,
   rows in the database == requests answered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from commands.polling import free_port, http_ok, wait_for

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
HOME = ROOT / "var" / "bench"
PG_ADMIN = os.environ.get("TAGWATCH_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _champion(settings: Any) -> Any:
    from retrain.job import load_data, train_and_register
    from tagwatch.registry import Registry

    registry = Registry.from_settings(settings)
    if registry.champion_version() is None:
        print("bench: no model yet, training one on the bundled data ...", flush=True)
        train_and_register(settings, load_data(settings.data_path))
    return registry.load_champion()


def bench_inprocess(model: Any, questions: list[Any], repeats: int = 3) -> dict[str, float]:
    """Median per-question time of transform alone and of the full predict, one question per call."""
    sample = questions[:500]
    for q in sample[:20]:
        model.predict([q])

    def per_call(fn: Any) -> float:
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            for q in sample:
                fn([q])
            runs.append((time.perf_counter() - start) / len(sample))
        return statistics.median(runs)

    transform = per_call(model.transform)
    predict = per_call(model.predict)
    return {
        "n_tags": len(model.tags),
        "transform_ms": transform * 1e3,
        "predict_ms": predict * 1e3,
        "ratio": predict / transform,
    }


def _fresh_postgres() -> str | None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    try:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(text('DROP DATABASE IF EXISTS "tagwatch_bench" WITH (FORCE)'))
            conn.execute(text('CREATE DATABASE "tagwatch_bench"'))
        admin.dispose()
    except Exception as exc:
        print(f"bench: PostgreSQL unavailable ({type(exc).__name__}); using SQLite", flush=True)
        return None
    return make_url(PG_ADMIN).set(database="tagwatch_bench").render_as_string(hide_password=False)


async def _load(url: str, payloads: list[dict[str, str]], concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    for p in payloads:
        queue.put_nowait(p)

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            try:
                payload = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            start = time.perf_counter()
            r = await client.post(f"{url}/predict", json=payload)
            latencies.append(time.perf_counter() - start)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(payloads),
        "ok": statuses.get(200, 0),
        "statuses": {str(k): v for k, v in statuses.items()},
        "requests_per_second": len(payloads) / wall,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
    }


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "commands.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        return http_ok(f"http://127.0.0.1:{port}/ready")

    try:
        wait_for(ready, timeout=120, what="the service to be ready", interval=0.3)
    except RuntimeError:
        proc.kill()
        raise
    return proc


def bench_http(questions: list[Any], *, n_requests: int, concurrency: int, rounds: int) -> dict[str, Any]:
    from tagwatch.db import count_rows, make_engine

    payloads = [{"title": q.title, "body": q.body} for q in questions[:n_requests]]
    database_url = _fresh_postgres() or f"sqlite:///{HOME / 'bench-requests.db'}"
    if database_url.startswith("sqlite"):
        Path(database_url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    base = {**os.environ, "TAGWATCH_HOME": str(HOME), "TAGWATCH_DATABASE_URL": database_url}
    runs: dict[str, list[dict[str, Any]]] = {"logging_on": [], "logging_off": []}
    answered_with_logging = 0
    for _ in range(rounds):
        for mode in ("logging_off", "logging_on"):
            port = free_port()
            env = {**base, "TAGWATCH_LOG_ENABLED": "true" if mode == "logging_on" else "false"}
            proc = _serve(env, port)
            try:
                asyncio.run(_load(f"http://127.0.0.1:{port}", payloads[:200], concurrency))  # warm-up
                result = asyncio.run(_load(f"http://127.0.0.1:{port}", payloads, concurrency))
            finally:
                proc.terminate()  # graceful: the service drains its request-log queue
                proc.wait(timeout=60)
            runs[mode].append(result)
            if mode == "logging_on":
                answered_with_logging += result["ok"] + 200
    engine = make_engine(database_url)
    rows = count_rows(engine)["prediction_requests"]
    engine.dispose()
    best = {mode: max(r["requests_per_second"] for r in rs) for mode, rs in runs.items()}
    return {
        "database": database_url.split(":", 1)[0].split("+")[0],
        "concurrency": concurrency,
        "runs": runs,
        "best_rps": best,
        "throughput_ratio": best["logging_on"] / best["logging_off"],
        "rows_in_database": rows,
        "requests_answered_with_logging": answered_with_logging,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ["TAGWATCH_HOME"] = str(HOME)
    from retrain.job import load_data
    from tagwatch.settings import Settings

    settings = Settings()
    model = _champion(settings)
    questions = load_data(settings.data_path)[-args.requests :]
    inproc = bench_inprocess(model, questions)
    print(f"in-process: {inproc}", flush=True)
    http = bench_http(questions, n_requests=args.requests, concurrency=args.concurrency, rounds=args.rounds)
    print(
        f"http: ratio {http['throughput_ratio']:.3f}, rows {http['rows_in_database']} / answered "
        f"{http['requests_answered_with_logging']}",
        flush=True,
    )
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "in_process": inproc,
        "http": http,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "service.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "service.md").write_text(_markdown(result))
    print(f"wrote {RESULTS / 'service.md'}")


def _markdown(r: dict[str, Any]) -> str:
    ip, h = r["in_process"], r["http"]
    lines = [
        "# Service benchmark",
        "",
        f"Run {r['when']} on {r['machine']} by `make bench` (`python -m bench.run`).",
        "",
        "## In-process, one question per call",
        "",
        "| tags | TF-IDF transform | full predict | ratio (target <= 1.5) |",
        "| ---: | ---: | ---: | ---: |",
        f"| {ip['n_tags']} | {ip['transform_ms']:.3f} ms | {ip['predict_ms']:.3f} ms | {ip['ratio']:.2f} |",
        "",
        f"## HTTP, uvicorn 1 worker, {h['concurrency']} concurrent clients, request log on {h['database']}",
        "",
        "| mode | run | requests | ok | req/s | p50 | p99 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode, runs in h["runs"].items():
        for i, run in enumerate(runs, 1):
            lines.append(
                f"| {mode} | {i} | {run['requests']} | {run['ok']} | {run['requests_per_second']:.0f} | "
                f"{run['p50_ms']:.1f} ms | {run['p99_ms']:.1f} ms |"
            )
    lines += [
        "",
        f"Throughput ratio, logging on / off (best runs): **{h['throughput_ratio']:.3f}** (target >= 0.9).",
        "",
        f"Rows in the request log after the logged runs: **{h['rows_in_database']}**; requests answered with "
        f"logging on (incl. warm-up): **{h['requests_answered_with_logging']}** (target: equal).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
