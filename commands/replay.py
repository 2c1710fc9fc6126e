"""Replay real questions against a running service, as a production stream would arrive.

Questions go to ``POST /predict`` in time order (or shuffled, for a stable stream) at a bounded rate and
concurrency; for a share of them the question's real tags are posted to ``POST /feedback`` after a delay, as tags
confirmed later would arrive.

``api_key`` (the CLI's ``--key`` / ``TAGWATCH_API_KEY``: the secret of one of the service's keys) is sent as
``Authorization: Bearer`` on every request: the feedback route requires it when the service has keys, the prediction
routes when it has prediction keys (and ignore it otherwise). Refusals are counted like any other error
(``feedback 401``, ``403``, ...), never raised.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tagwatch.data import Question


@dataclass
class ReplaySummary:
    sent: int = 0
    answered: int = 0
    feedback_sent: int = 0
    feedback_ok: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)

    @property
    def refused(self) -> int:
        """Requests the service refused for their API key (401 or 403), predictions and feedback together."""
        feedback = self.errors["feedback 401"] + self.errors["feedback 403"]
        return self.statuses["401"] + self.statuses["403"] + feedback

    @property
    def requests_per_second(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(len(lat) * p))] * 1e3, 2) if lat else None

        return {
            "sent": self.sent,
            "answered": self.answered,
            "feedback_sent": self.feedback_sent,
            "feedback_ok": self.feedback_ok,
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "seconds": round(self.seconds, 2),
            "requests_per_second": round(self.requests_per_second, 1),
            "latency_p50_ms": pct(0.5),
            "latency_p99_ms": pct(0.99),
        }


def order_stream(questions: Sequence[Question], *, shuffle: bool, seed: int, limit: int | None) -> list[Question]:
    """The stream to replay: time order (as loaded), or a seeded shuffle for a stable stream; at most ``limit``."""
    stream = list(questions)
    if shuffle:
        random.Random(seed).shuffle(stream)
    return stream[:limit] if limit is not None else stream


async def replay(
    questions: Sequence[Question],
    *,
    url: str,
    rate: float | None = None,
    concurrency: int = 8,
    feedback_share: float = 1.0,
    feedback_delay: float = 0.0,
    seed: int = 0,
    max_seconds: float | None = None,
    on_answer: Callable[[int], None] | None = None,
    client: httpx.AsyncClient | None = None,
    api_key: str | None = None,
) -> ReplaySummary:
    """Send ``questions`` to ``url``; returns what happened. Bounded by the stream's length and ``max_seconds``.

    ``api_key``: sent as ``Authorization: Bearer <api_key>`` on /predict and /feedback."""
    if not 0.0 <= feedback_share <= 1.0:
        raise ValueError("feedback_share must be within [0, 1]")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive")
    headers: dict[str, str] = {}
    if api_key is not None and api_key.strip():
        headers["Authorization"] = f"Bearer {api_key.strip()}"
    summary = ReplaySummary()
    rng = random.Random(seed)
    gives_feedback = [rng.random() < feedback_share for _ in questions]
    base = url.rstrip("/")
    own_client = client is None
    http = client or httpx.AsyncClient(
        timeout=30, limits=httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    )
    feedback_tasks: set[asyncio.Task[None]] = set()
    semaphore = asyncio.Semaphore(concurrency)
    start = time.monotonic()
    deadline = start + max_seconds if max_seconds is not None else None

    async def send_feedback(request_id: str, tags: tuple[str, ...]) -> None:
        if feedback_delay > 0:
            await asyncio.sleep(feedback_delay)
        summary.feedback_sent += 1
        try:
            r = await http.post(
                f"{base}/feedback", json={"request_id": request_id, "tags": list(tags)[:10]}, headers=headers
            )
        except httpx.HTTPError as exc:
            summary.errors[f"feedback {type(exc).__name__}"] += 1
            return
        if r.status_code == 200:
            summary.feedback_ok += 1
        else:
            summary.errors[f"feedback {r.status_code}"] += 1

    async def send(i: int, q: Question) -> None:
        try:
            t0 = time.perf_counter()
            try:
                r = await http.post(
                    f"{base}/predict", json={"title": q.title[:300], "body": q.body[:60_000]}, headers=headers
                )
            except httpx.HTTPError as exc:
                summary.errors[type(exc).__name__] += 1
                return
            summary.latencies.append(time.perf_counter() - t0)
            summary.statuses[str(r.status_code)] += 1
            if r.status_code != 200:
                return
            summary.answered += 1
            if on_answer is not None:
                on_answer(i)
            if gives_feedback[i] and q.tags:
                task = asyncio.create_task(send_feedback(r.json()["request_id"], q.tags))
                feedback_tasks.add(task)
                task.add_done_callback(feedback_tasks.discard)
        finally:
            semaphore.release()

    try:
        pending: set[asyncio.Task[None]] = set()
        for i, q in enumerate(questions):
            if deadline is not None and time.monotonic() >= deadline:
                break
            if rate is not None:
                # Pace by schedule, not by sleeps between sends, so a slow answer does not lower the rate.
                wait = start + i / rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            await semaphore.acquire()
            summary.sent += 1
            task = asyncio.create_task(send(i, q))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
        if feedback_tasks:
            await asyncio.gather(*list(feedback_tasks))
    finally:
        summary.seconds = time.monotonic() - start
        if own_client:
            await http.aclose()
    return summary
