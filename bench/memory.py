"""Worst-case memory of one API replica: peak RSS under 16 concurrent maximum-size requests.

The real service (`tagwatch serve`, uvicorn, 1 worker, the bench champion of `bench.run`, request log on SQLite) in a
subprocess; 16 clients on loopback each send maximum-size bodies of one hostile family at a time. The peak resident
set (VmHWM from /proc) is read after each family. Results: bench/results/memory.md and memory.json.

    python -m bench.memory [--concurrency 16] [--rounds 4] [--name memory]
    python -m bench.memory --concurrency 32 --name memory-32   # at TAGWATCH_MAX_CONCURRENT_REQUESTS
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.run import HOME, RESULTS, _champion
from commands.polling import free_port, http_ok, wait_for
from tagwatch.settings import Settings

MIB = 1_048_576


def families(settings: Settings) -> dict[str, bytes]:
    """Request bodies at the limits: each as large as the service accepts, or just over what it validates."""
    limit = settings.max_request_bytes
    n_objects = (limit - 20) // 3
    title = "How do I parse this " + "x" * (settings.max_title_chars - 20)
    body = "<p>" + "é€" * ((settings.max_body_chars - 3) // 2)
    ascii_body = "<p>" + "loop " * ((settings.max_body_chars - 3) // 5)
    per_question = len(title) + len(ascii_body)
    batch_n = max(1, settings.max_batch_chars // per_question)
    keys: list[str] = []
    size = 14
    while size < limit - 20:
        keys.append(f'"k{len(keys)}":0')
        size += len(keys[-1]) + 1
    out = {
        # The parser's worst expansion: 3 bytes of JSON become a dict (~64 bytes) and a list slot.
        "empty objects, 1 MiB (422)": (b'{"questions":[' + b",".join([b"{}"] * n_objects) + b"]}")[: limit - 2] + b"]}",
        # One valid question at its limits, every character escaped (ensure_ascii clients): ~6 bytes per character.
        "max question, \\u-escaped (200)": json.dumps({"title": title, "body": body}).encode(),
        # A valid batch at TAGWATCH_MAX_BATCH_CHARS.
        f"batch of {batch_n} max questions (200)": json.dumps(
            {"questions": [{"title": title, "body": ascii_body}] * batch_n}
        ).encode(),
        # 100,000 unknown fields (one error each without the schema's guard).
        "unknown fields, 1 MiB (422)": ("{" + ",".join(keys) + "}").encode(),
        # Nesting too deep for the parser (RecursionError): a 400, not a 500.
        "nested arrays, 1 MiB (400)": b"[" * (limit // 2) + b"]" * (limit // 2),
    }
    for name, data in out.items():
        assert len(data) <= limit, (name, len(data))
    return out


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (bytes) of process ``pid``, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


async def _hammer(url: str, data: bytes, concurrency: int, rounds: int) -> dict[str, Any]:
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one() -> None:
            for _ in range(rounds):
                r = await client.post(url, content=data, headers=headers)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        await asyncio.gather(*(one() for _ in range(concurrency)))
    return {"statuses": statuses, "seconds": round(time.perf_counter() - start, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--name", default="memory", help="results file name under bench/results (.md, .json)")
    parser.add_argument("--home", type=Path, default=HOME, help="TAGWATCH_HOME with a champion (default: the bench's)")
    args = parser.parse_args()

    os.environ["TAGWATCH_HOME"] = str(args.home)
    settings = Settings(home=args.home)
    if args.home == HOME:
        _champion(settings)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TAGWATCH_HOME": str(args.home), "TAGWATCH_DATABASE_URL": f"sqlite:///{tmp}/log.db"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "commands.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: http_ok(f"{base}/ready"), timeout=180, what="the service")
            for _ in range(20):
                httpx.post(f"{base}/predict", json={"title": "How to read a csv file with pandas"}, timeout=30)
            idle = proc_memory(proc.pid)
            rows = []
            for name, data in families(settings).items():
                path = "/predict/batch" if "batch" in name or "objects" in name else "/predict"
                run = asyncio.run(_hammer(base + path, data, args.concurrency, args.rounds))
                st = proc_memory(proc.pid)
                rows.append({"family": name, "bytes": len(data), "path": path, **run, "peak_rss": st["VmHWM"]})
                print(f"{name:40s} {len(data):>9,} B  {run}  peak {st['VmHWM'] / MIB:.0f} MiB", flush=True)
            final = proc_memory(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_before": os.getloadavg()[0],
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "max_request_bytes": settings.max_request_bytes,
        "idle_rss": idle["VmRSS"],
        "peak_rss": final["VmHWM"],
        "families": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(_markdown(result))
    print(_markdown(result))


def _markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Memory of one API replica under maximum-size requests",
        "",
        f"`python -m bench.memory` on {r['date']} ({r['machine']}; 1-minute load {r['load_before']:.1f} at the start).",
        "The real service (`tagwatch serve`, the bench champion, request log on SQLite); "
        f"{r['concurrency']} clients on loopback, {r['rounds']} requests each per family; "
        f"TAGWATCH_MAX_REQUEST_BYTES {r['max_request_bytes']:,}. "
        "Peak RSS is the process's high-water mark (VmHWM) after each family, so it only grows down the table.",
        "",
        "| family | body bytes | answers | seconds | peak RSS so far |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for row in r["families"]:
        answers = ", ".join(f"{n}× {s}" for s, n in sorted(row["statuses"].items()))
        lines.append(
            f"| {row['family']} | {row['bytes']:,} | {answers} | {row['seconds']} | {row['peak_rss'] / MIB:.0f} MiB |"
        )
    lines += [
        "",
        f"Idle after warm-up: **{r['idle_rss'] / MIB:.0f} MiB**; "
        f"peak over the whole run: **{r['peak_rss'] / MIB:.0f} MiB** (compose's `mem_limit` for the api is 1.5 GiB).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
