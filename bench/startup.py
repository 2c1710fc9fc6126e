"""Start-up time and resident memory of one API replica, and the predictions it gives for a fixed set of questions.

The real service (`tagwatch serve`, uvicorn, 1 worker, the bench champion of `bench.run`, request log on SQLite) in a
subprocess, started ``--runs`` times. Measured from outside: seconds from the process start until ``/ready`` answers
200 (polled every 20 ms), the resident set (VmRSS from /proc) once ready and after ``--requests`` predictions, and the
high-water mark (VmHWM). The tags and scores of ``--questions`` fixed bundled questions are kept in the JSON, so two
records can be compared for identical predictions.

    python -m bench.startup --label after [--compare before] [--home DIR]
    # before/after on one machine, runs interleaved so both see the same load: the baseline is another checkout
    git archive <commit> | tar -x -C /tmp/base
    python -m bench.startup --baseline-code /tmp/base --baseline-label before --label after

Results: bench/results/startup-<label>.json (and startup-<baseline-label>.json), and bench/results/startup.md when
there is a record to compare with.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.memory import proc_memory
from bench.run import HOME, RESULTS, ROOT, _champion
from commands.polling import free_port
from tagwatch.settings import Settings

MIB = 1_048_576
TARGET_READY_SECONDS = 4.0
TARGET_RSS_BYTES = 300 * MIB


def fixed_questions(settings: Settings, n: int) -> list[dict[str, str]]:
    """``n`` bundled questions spread over the file (every 50th), as /predict bodies."""
    from tagwatch.data import load_questions

    questions, _ = load_questions(settings.data_path)
    return [{"title": q.title, "body": q.body} for q in questions[::50][:n]]


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used: less sensitive to other load than the wall clock."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_ready(proc: subprocess.Popen[bytes], url: str, start: float, timeout: float) -> float:
    """Seconds from ``start`` (the process start) until ``url`` answers 200."""
    with httpx.Client(timeout=2) as client:
        while time.monotonic() - start < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited with {proc.returncode} before it was ready")
            try:
                if client.get(url).status_code == 200:
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
    raise RuntimeError(f"the service was not ready after {timeout} s")


def one_run(home: Path, questions: list[dict[str, str]], requests: int, code: Path = ROOT) -> dict[str, Any]:
    """One service started from the checkout at ``code``, measured, predictions taken, stopped."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "TAGWATCH_HOME": str(home),
            "TAGWATCH_DATABASE_URL": f"sqlite:///{tmp}/log.db",
            "PYTHONPATH": str(code),
        }
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "commands.cli", "serve", "--port", str(port)],
            cwd=code,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            ready = _wait_ready(proc, f"{base}/ready", started, 180)
            at_ready = proc_memory(proc.pid)
            cpu = _cpu_seconds(proc.pid)
            predictions = []
            with httpx.Client(timeout=30) as client:
                for q in questions:
                    r = client.post(f"{base}/predict", json=q)
                    r.raise_for_status()
                    predictions.append([[t["tag"], t["score"]] for t in r.json()["tags"]])
                for i in range(requests):
                    client.post(f"{base}/predict", json=questions[i % len(questions)]).raise_for_status()
            after = proc_memory(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return {
        "ready_seconds": round(ready, 3),
        "cpu_seconds_at_ready": round(cpu, 3),
        "rss_ready": at_ready["VmRSS"],
        "peak_rss_ready": at_ready["VmHWM"],
        "rss_after_requests": after["VmRSS"],
        "peak_rss": after["VmHWM"],
        "predictions": predictions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="after", help="name of this record: bench/results/startup-<label>.json")
    parser.add_argument("--compare", help="label of an earlier record to compare with (writes startup.md)")
    parser.add_argument("--home", type=Path, default=HOME, help="TAGWATCH_HOME with a champion (default: the bench's)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--baseline-code", type=Path, help="another checkout to measure too, runs interleaved")
    parser.add_argument("--baseline-label", default="before")
    args = parser.parse_args()

    os.environ["TAGWATCH_HOME"] = str(args.home)
    settings = Settings(home=args.home)
    if args.home == HOME:
        _champion(settings)
    questions = fixed_questions(settings, args.questions)
    codes = {args.label: ROOT}
    if args.baseline_code:
        codes = {args.baseline_label: args.baseline_code.resolve(), **codes}
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in codes}
    for i in range(args.runs):
        for label, code in codes.items():
            run = one_run(args.home, questions, args.requests, code)
            print(
                f"{label} run {i + 1}: ready {run['ready_seconds']:.2f} s ({run['cpu_seconds_at_ready']:.2f} s CPU), "
                f"RSS {run['rss_ready'] / MIB:.0f} MiB at "
                f"ready, {run['rss_after_requests'] / MIB:.0f} MiB after {args.requests} requests",
                flush=True,
            )
            runs[label].append(run)
    results = {label: _summary(label, rs, args.requests, questions) for label, rs in runs.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    for label, result in results.items():
        (RESULTS / f"startup-{label}.json").write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {RESULTS / f'startup-{label}.json'}")
    compare = args.baseline_label if args.baseline_code else args.compare
    if compare:
        before = json.loads((RESULTS / f"startup-{compare}.json").read_text())
        (RESULTS / "startup.md").write_text(
            _markdown(before, results[args.label], interleaved=bool(args.baseline_code))
        )
        print(_markdown(before, results[args.label], interleaved=bool(args.baseline_code)))


def _summary(label: str, runs: list[dict[str, Any]], requests: int, questions: list[dict[str, str]]) -> dict[str, Any]:
    predictions = runs[0]["predictions"]
    if any(r["predictions"] != predictions for r in runs):
        raise SystemExit(f"{label}: the same service gave different predictions in different runs")
    return {
        "label": label,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_before": os.getloadavg()[0],
        "runs": len(runs),
        "requests": requests,
        "ready_seconds": [r["ready_seconds"] for r in runs],
        "ready_seconds_median": statistics.median(r["ready_seconds"] for r in runs),
        "cpu_seconds_at_ready_median": statistics.median(r["cpu_seconds_at_ready"] for r in runs),
        "rss_ready_median": statistics.median(r["rss_ready"] for r in runs),
        "rss_after_requests_median": statistics.median(r["rss_after_requests"] for r in runs),
        "peak_rss_ready_max": max(r["peak_rss_ready"] for r in runs),
        "peak_rss_max": max(r["peak_rss"] for r in runs),
        "questions": questions,
        "predictions": predictions,
    }


def _mib(value: int | None) -> str:
    return "–" if value is None else f"{value / MIB:.0f} MiB"


def _row(r: dict[str, Any]) -> str:
    return (
        f"| {r['label']} ({r['date']}, load {r['load_before']:.1f}) | {r['ready_seconds_median']:.2f} s "
        f"({min(r['ready_seconds']):.2f}–{max(r['ready_seconds']):.2f}) | {r['cpu_seconds_at_ready_median']:.2f} s | "
        f"{r['rss_ready_median'] / MIB:.0f} MiB | "
        f"{r['rss_after_requests_median'] / MIB:.0f} MiB | {_mib(r.get('peak_rss_ready_max'))} | "
        f"{r['peak_rss_max'] / MIB:.0f} MiB |"
    )


def _command(before: dict[str, Any], after: dict[str, Any], interleaved: bool) -> str:
    if interleaved:
        return (
            f"python -m bench.startup --baseline-code <checkout of the {before['label']} commit> "
            f"--baseline-label {before['label']} --label {after['label']}"
        )
    return f"python -m bench.startup --label {after['label']} --compare {before['label']}"


def _markdown(before: dict[str, Any], after: dict[str, Any], *, interleaved: bool = False) -> str:
    same = sum(a == b for a, b in zip(before["predictions"], after["predictions"], strict=True))
    ok_time = after["ready_seconds_median"] <= TARGET_READY_SECONDS
    ok_rss = after["rss_after_requests_median"] <= TARGET_RSS_BYTES
    return "\n".join(
        [
            "# Start-up time and memory of one API replica",
            "",
            f"`{_command(before, after, interleaved)}` ({after['machine']}).",
            "The real service (`tagwatch serve`, uvicorn, 1 worker, the bench champion, request log on SQLite), "
            f"started {after['runs']} times{' per checkout, runs interleaved' if interleaved else ''}. Ready = seconds "
            "from the process start until `/ready` answers 200; CPU = user + system time of the process at ready (less "
            "sensitive than the wall clock to other work on the machine); RSS from /proc (VmRSS) once ready and after "
            f"{after['requests']} `/predict` requests; peak = VmHWM, at ready and at the end. Medians over "
            "the runs (range in brackets).",
            "",
            "| record | ready | CPU until ready | RSS at ready | RSS after requests | peak RSS at ready | peak RSS |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            _row(before),
            _row(after),
            "",
            f"Target: ready <= {TARGET_READY_SECONDS:.0f} s ({'met' if ok_time else 'NOT met'}), RSS <= "
            f"{TARGET_RSS_BYTES / MIB:.0f} MiB ({'met' if ok_rss else 'NOT met'}).",
            f"Predictions (tags and scores as the API answers them) for {len(after['predictions'])} fixed bundled "
            f"questions: {same} of {len(after['predictions'])} identical to the {before['label']} record.",
            "",
        ]
    )


if __name__ == "__main__":
    main()
