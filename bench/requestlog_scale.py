"""The request log at scale on PostgreSQL, recorded in bench/results/requestlog-scale.md (and .json).

    python -m bench.requestlog_scale [--rows 10000000] [--runs 20] [--convert-rows 1000000] [--keep]

1. Load ``--rows`` requests (default 10 M) with COPY into a fresh, migrated database, spread evenly over the year
   up to now, with the title/body of the bundled questions in turn and feedback for ~20 % of them.
2. The monitor's window query (``fetch_requests(limit=1000, until=now)``, as ``monitor.job`` calls it): median and
   worst of ``--runs`` runs (target <= 50 ms), the partitions its plan reads, and the query as it was before
   partitioning (the whole feedback table ranked) for comparison.
3. Retention dropping the oldest month (target <= 1 s) while a writer COPYs batches into the current month as the
   service's writer does: its insert rate before and during, and its longest batch (the stall a lock would cause).
4. Table and index sizes per million rows (pg_total_relation_size over the partitions).
5. ``--convert-rows``: the migration's conversion of a populated 0004 log of that many requests (the one-off
   downtime of an upgrade), timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from bench.postgres import fresh_postgres_database

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = os.environ.get("TAGWATCH_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
WINDOW_TARGET_SECONDS = 0.050
RETENTION_TARGET_SECONDS = 1.0
_COPY_REQUESTS = (
    "COPY prediction_requests (id, created_at, title, body, body_format, predicted, model_version, latency_seconds) "
    "FROM STDIN"
)
_COPY_FEEDBACK = "COPY feedback (id, request_id, request_created_at, tags, received_at, key_name) FROM STDIN"
# (title, body, body_format, tags) of the bundled questions, used in turn.
Questions = Sequence[tuple[str, str, str, tuple[str, ...]]]
_COPY_FEEDBACK_V4 = "COPY feedback (id, request_id, tags, received_at, key_name) FROM STDIN"


@dataclass
class ScaleResult:
    rows: int
    feedback_rows: int
    load_seconds: float
    span: tuple[str, str]
    window_limit: int
    window_seconds: list[float]
    window_rows: int
    window_partitions: list[str]
    legacy_window_seconds: list[float]
    retention_seconds: float
    retention_dropped: list[str]
    retention_rows_estimate: int | None
    writer: dict[str, float]
    sizes: dict[str, dict[str, int]]
    convert: dict[str, float] = field(default_factory=dict)
    machine: str = field(default_factory=lambda: f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs")

    @property
    def window_median(self) -> float:
        return statistics.median(self.window_seconds)

    @property
    def window_worst(self) -> float:
        return max(self.window_seconds)


def _questions(limit: int | None = None) -> list[tuple[str, str, str, tuple[str, ...]]]:
    from tagwatch.data import load_questions
    from tagwatch.settings import BUNDLED_DATA

    questions, _ = load_questions(BUNDLED_DATA)
    out = [(q.title, q.body, q.body_format, tuple(q.tags)) for q in questions]
    return out[:limit] if limit else out


def fresh_database(admin_url: str, prefix: str = "tagwatch_bench_scale") -> AbstractContextManager[str]:
    """A new empty database on the server of ``admin_url``, dropped on exit."""
    return fresh_postgres_database(admin_url, prefix)


def _raw(engine: Engine) -> Any:
    import psycopg

    raw = engine.raw_connection()
    assert isinstance(raw.driver_connection, psycopg.Connection)
    return raw


def load(
    engine: Engine,
    *,
    rows: int,
    start: datetime,
    end: datetime,
    questions: Questions,
    feedback_share: float = 0.2,
    chunk: int = 200_000,
    partitioned: bool = True,
    seed: int = 7,
) -> int:
    """COPY ``rows`` requests evenly spread over [start, end) (oldest first), feedback for ``feedback_share`` of
    them; returns the feedback rows. ``partitioned=False``: the 0004 schema (feedback without the request's time)."""
    rng = random.Random(seed)
    step = (end - start) / rows
    feedback_rows = 0
    raw = _raw(engine)
    try:
        conn = raw.driver_connection
        for first in range(0, rows, chunk):
            batch = range(first, min(rows, first + chunk))
            labelled: list[tuple[str, datetime, tuple[str, ...]]] = []
            with conn.cursor() as cur, cur.copy(_COPY_REQUESTS) as copy:
                for i in batch:
                    title, body, body_format, tags = questions[i % len(questions)]
                    rid = uuid.UUID(int=rng.getrandbits(128), version=4).hex
                    at = start + step * i
                    predicted = json.dumps([{"tag": t, "score": round(0.9 - 0.1 * k, 3)} for k, t in enumerate(tags)])
                    copy.write_row((rid, at, title, body, body_format, predicted, "3", 0.004))
                    if rng.random() < feedback_share:
                        labelled.append((rid, at, tags))
            with conn.cursor() as cur, cur.copy(_COPY_FEEDBACK if partitioned else _COPY_FEEDBACK_V4) as copy:
                for rid, at, tags in labelled:
                    fid = uuid.UUID(int=rng.getrandbits(128), version=4).hex
                    received = at + timedelta(minutes=5)
                    tag_json = json.dumps(list(tags))
                    if partitioned:
                        copy.write_row((fid, rid, at, tag_json, received, "labeller"))
                    else:
                        copy.write_row((fid, rid, tag_json, received, "labeller"))
            conn.commit()
            feedback_rows += len(labelled)
            if first // chunk % 10 == 9:
                print(f"  loaded {first + len(batch):,} rows", flush=True)
    finally:
        raw.close()
    return feedback_rows


def _legacy_fetch(engine: Engine, *, limit: int, until: datetime) -> int:
    """The window query as it was before partitioning: the whole feedback table ranked, no bound on time."""
    sql = text(
        "SELECT pr.id FROM prediction_requests pr LEFT OUTER JOIN (SELECT * FROM (SELECT request_id, tags, "
        "received_at, key_name, row_number() OVER (PARTITION BY request_id ORDER BY received_at DESC, id DESC) AS rank "
        "FROM feedback) ranked WHERE rank = 1) fb ON fb.request_id = pr.id WHERE pr.created_at < :until "
        "ORDER BY pr.created_at DESC, pr.id DESC LIMIT :limit"
    )
    with engine.connect() as conn:
        return len(conn.execute(sql, {"until": until, "limit": limit}).all())


def time_window(engine: Engine, *, limit: int, until: datetime, runs: int) -> tuple[list[float], int]:
    from tagwatch.db import fetch_requests

    times: list[float] = []
    n = 0
    for _ in range(runs):
        start = time.perf_counter()
        n = len(fetch_requests(engine, until=until, limit=limit))
        times.append(time.perf_counter() - start)
    return times, n


def window_partitions(engine: Engine, *, limit: int, until: datetime) -> list[str]:
    """The partitions the window query's row statement reads (EXPLAIN of the statement fetch_requests runs)."""
    from sqlalchemy import event

    from tagwatch.db import fetch_requests

    seen: list[tuple[str, Any]] = []

    def listener(_c: Any, _cur: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listener)
    try:
        fetch_requests(engine, until=until, limit=limit)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    statement, parameters = next((s, p) for s, p in seen if "row_number()" in s)
    with engine.connect() as conn:
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
        names = [
            str(n)
            for (n,) in conn.execute(
                text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent IN ('prediction_requests'::regclass, 'feedback'::regclass) ORDER BY 1"
                )
            )
        ]
    return [n for n in names if f" on {n} " in plan]


class Writer(threading.Thread):
    """COPYs batches of ``batch`` requests dated now into the log, one transaction each, as the service's writer
    does; records when each batch committed and how long it took."""

    def __init__(self, engine: Engine, questions: Questions, batch: int = 100):
        super().__init__(daemon=True)
        self.engine, self.questions, self.batch = engine, questions, batch
        self.stop = threading.Event()
        self.commits: list[tuple[float, float, int]] = []  # (end, seconds, rows)
        self.error: BaseException | None = None

    def run(self) -> None:
        from service.requestlog import PredictionRow
        from tagwatch.db.requestlog import insert_predictions

        i = 0
        try:
            while not self.stop.is_set():
                rows = []
                for _ in range(self.batch):
                    title, body, body_format, tags = self.questions[i % len(self.questions)]
                    rows.append(
                        PredictionRow(
                            id=uuid.uuid4().hex,
                            created_at=datetime.now(UTC),
                            title=title,
                            body=body,
                            body_format=body_format,
                            predicted=[{"tag": t, "score": 0.5} for t in tags],
                            model_version="3",
                            latency_seconds=0.004,
                        )
                    )
                    i += 1
                start = time.perf_counter()
                with self.engine.begin() as conn:
                    inserted, _, _ = insert_predictions(conn, rows, use_copy=True)
                end = time.perf_counter()
                self.commits.append((end, end - start, inserted))
                time.sleep(0.005)  # a writer flushes batches, it does not spin
        except BaseException as exc:  # reported by the caller
            self.error = exc

    def rate(self, since: float, until: float) -> float:
        rows = sum(n for end, _, n in self.commits if since <= end < until)
        return rows / (until - since) if until > since else 0.0

    def longest(self, since: float, until: float) -> float:
        """The longest batch that ended in [since, until + 5 s) and overlapped [since, until)."""
        return max((s for end, s, _ in self.commits if end >= since and end - s < until), default=0.0)

    def total(self) -> int:
        return sum(n for _, _, n in self.commits)


def retention_under_writes(
    engine: Engine,
    *,
    older_than: datetime,
    questions: Questions,
    warmup: float = 3.0,
    after: float = 2.0,
) -> tuple[Any, dict[str, float]]:
    from tagwatch.db.partitions import prune_requests

    writer = Writer(engine, questions)
    writer.start()
    time.sleep(warmup)
    t0 = time.perf_counter()
    result = prune_requests(engine, older_than=older_than)
    t1 = time.perf_counter()
    time.sleep(after)
    writer.stop.set()
    writer.join(30)
    if writer.error is not None:
        raise writer.error
    base = writer.rate(t0 - warmup + 0.5, t0)
    # The rate over the second around the retention run (it is shorter than the sampling interval).
    around = writer.rate(t0 - 0.5, t1 + 0.5)
    batches = [s for end, s, _ in writer.commits if end < t0]
    stats = {
        "batch_rows": float(writer.batch),
        "rows_per_second_before": round(base, 1),
        "rows_per_second_around_retention": round(around, 1),
        "longest_batch_seconds_during_retention": round(writer.longest(t0, t1), 4),
        "median_batch_seconds_before": round(statistics.median(batches), 4) if batches else 0.0,
        "longest_batch_seconds_before": round(max(batches), 4) if batches else 0.0,
        "rows_written": float(writer.total()),
    }
    return result, stats


def sizes(engine: Engine) -> dict[str, dict[str, int]]:
    """Bytes of each table over its partitions: total (heap + TOAST + indexes) and indexes alone; rows."""
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for table in ("prediction_requests", "feedback"):
            total, indexes = conn.execute(
                text(
                    "SELECT coalesce(sum(pg_total_relation_size(relid)), 0), coalesce(sum(pg_indexes_size(relid)), 0) "
                    "FROM pg_partition_tree(:t) WHERE isleaf"
                ),
                {"t": table},
            ).one()
            rows = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            out[table] = {"total_bytes": int(total), "index_bytes": int(indexes), "rows": int(rows)}
    return out


def convert(admin_url: str, *, rows: int, questions: Questions) -> dict[str, float]:
    """A populated 0004 log of ``rows`` requests migrated to head: the one-off conversion, timed."""
    from tagwatch.db import make_engine, upgrade_database

    with fresh_database(admin_url, "tagwatch_bench_convert") as url:
        upgrade_database(url, "0004")
        engine = make_engine(url)
        end = datetime.now(UTC)
        feedback = load(
            engine, rows=rows, start=end - timedelta(days=365), end=end, questions=questions, partitioned=False
        )
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
        engine.dispose()
        start = time.perf_counter()
        upgrade_database(url)
        seconds = time.perf_counter() - start
    return {"rows": float(rows), "feedback_rows": float(feedback), "seconds": round(seconds, 2)}


def run(
    admin_url: str = PG_ADMIN,
    *,
    rows: int = 10_000_000,
    runs: int = 20,
    window: int = 1_000,
    convert_rows: int = 0,
    keep: bool = False,
    questions: Questions | None = None,
) -> ScaleResult:
    from tagwatch.db import make_engine, upgrade_database
    from tagwatch.db.partitions import ensure_partitions

    questions = questions or _questions()
    now = datetime.now(UTC)
    start = now - timedelta(days=365)
    with fresh_database(admin_url) as url:
        upgrade_database(url)
        engine = make_engine(url)
        try:
            ensure_partitions(engine, now=start, ahead=13)
            print(f"bench: loading {rows:,} requests over {start:%Y-%m-%d} .. {now:%Y-%m-%d} ...", flush=True)
            t = time.perf_counter()
            feedback_rows = load(engine, rows=rows, start=start, end=now, questions=questions)
            load_seconds = time.perf_counter() - t
            with engine.connect() as conn:
                conn.execute(text("ANALYZE"))
            print(f"bench: loaded in {load_seconds:.0f} s; window query ...", flush=True)
            until = datetime.now(UTC) + timedelta(microseconds=1)  # as monitor.job asks
            window_times, window_rows = time_window(engine, limit=window, until=until, runs=runs)
            partitions = window_partitions(engine, limit=window, until=until)
            legacy: list[float] = []
            for _ in range(3):
                t = time.perf_counter()
                _legacy_fetch(engine, limit=window, until=until)
                legacy.append(time.perf_counter() - t)
            table_sizes = sizes(engine)
            print("bench: retention of the oldest month while a writer inserts ...", flush=True)
            second_month = (start.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0)
            second_month = second_month.replace(microsecond=0)
            pruned, writer = retention_under_writes(engine, older_than=second_month, questions=questions)
        finally:
            engine.dispose()
        if keep:
            print(f"bench: --keep: the database stays at {url}", flush=True)
            input("press Enter to drop it ... ")
    converted = convert(admin_url, rows=convert_rows, questions=questions) if convert_rows else {}
    return ScaleResult(
        rows=rows,
        feedback_rows=feedback_rows,
        load_seconds=round(load_seconds, 1),
        span=(start.isoformat(timespec="seconds"), now.isoformat(timespec="seconds")),
        window_limit=window,
        window_seconds=[round(s, 5) for s in window_times],
        window_rows=window_rows,
        window_partitions=partitions,
        legacy_window_seconds=[round(s, 3) for s in legacy],
        retention_seconds=round(pruned.seconds, 4),
        retention_dropped=list(pruned.partitions_dropped),
        retention_rows_estimate=pruned.rows_estimate,
        writer=writer,
        sizes=table_sizes,
        convert=converted,
    )


def _mib(n: float) -> str:
    return f"{n / 1_048_576:,.0f} MiB"


def report(r: ScaleResult) -> str:
    ok_median = "meets" if r.window_median <= WINDOW_TARGET_SECONDS else "misses"
    ok_worst = "meets" if r.window_worst <= WINDOW_TARGET_SECONDS else "misses"
    ok_ret = "meets" if r.retention_seconds <= RETENTION_TARGET_SECONDS else "misses"
    w = r.writer
    lines = [
        "# Request log at scale (PostgreSQL, monthly partitions)",
        "",
        f"`python -m bench.requestlog_scale --rows {r.rows}` on this machine ({r.machine}), "
        f"{datetime.now(UTC):%Y-%m-%d}. PostgreSQL with its default settings (shared_buffers 128 MB).",
        "",
        f"- Loaded {r.rows:,} requests (COPY, 200k per transaction) evenly over {r.span[0][:10]} .. "
        f"{r.span[1][:10]}, titles and bodies of the bundled questions in turn, {r.feedback_rows:,} feedback "
        f"records ({r.feedback_rows / r.rows:.0%}): {r.load_seconds:,.0f} s ({r.rows / r.load_seconds:,.0f} rows/s).",
        "",
        f"## Window query: newest {r.window_limit:,} requests (target <= {WINDOW_TARGET_SECONDS * 1000:.0f} ms)",
        "",
        f"`fetch_requests(engine, until=now, limit={r.window_limit})` as the monitor calls it, {len(r.window_seconds)} "
        f"runs: median **{r.window_median * 1000:.1f} ms**, worst **{r.window_worst * 1000:.1f} ms** (first run "
        f"{r.window_seconds[0] * 1000:.1f} ms): the median {ok_median} the target, the worst run {ok_worst} it. "
        f"{r.window_rows:,} rows returned.",
        "",
        f"Partitions its row statement reads (EXPLAIN): {', '.join(f'`{p}`' for p in r.window_partitions)}; "
        "every older month is pruned at plan time, indexes included.",
        "",
        "The same window as queried before partitioning (feedback ranked over the whole table, no time bound): "
        + ", ".join(f"{s:.2f} s" for s in r.legacy_window_seconds)
        + ".",
        "",
        f"## Retention: drop the oldest month (target <= {RETENTION_TARGET_SECONDS:.0f} s)",
        "",
        f"`prune_requests(older_than=<first day of the second month>)` dropped {', '.join(r.retention_dropped)} "
        f"(~{r.retention_rows_estimate or 0:,} rows, estimate) in **{r.retention_seconds * 1000:.0f} ms**: "
        f"{ok_ret} the target.",
        "",
        f"A writer COPYing batches of {w['batch_rows']:.0f} requests into the current month meanwhile "
        f"(one transaction each, as the service's writer): {w['rows_per_second_before']:,.0f} rows/s before, "
        f"{w['rows_per_second_around_retention']:,.0f} rows/s over the retention run +- 0.5 s; its batches took "
        f"{w['median_batch_seconds_before'] * 1000:.1f} ms (median) and at most "
        f"{w['longest_batch_seconds_before'] * 1000:.0f} ms before, and at most "
        f"**{w['longest_batch_seconds_during_retention'] * 1000:.0f} ms** during the retention run (the longest stall "
        "the DROP's lock caused; lock_timeout 500 ms bounds it).",
        "",
        "## Sizes",
        "",
        "| table | rows | total (heap + TOAST + indexes) | indexes | total per million rows | indexes per million |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for table, s in r.sizes.items():
        per = 1_000_000 / max(1, s["rows"])
        lines.append(
            f"| {table} | {s['rows']:,} | {_mib(s['total_bytes'])} | {_mib(s['index_bytes'])} | "
            f"{_mib(s['total_bytes'] * per)} | {_mib(s['index_bytes'] * per)} |"
        )
    lines.append("")
    lines.append("Sizes measured after the load, before the retention run.")
    if r.convert:
        c = r.convert
        lines += [
            "",
            "## Converting an existing log (migration 0005, once per upgrade)",
            "",
            f"A 0004 log of {c['rows']:,.0f} requests and {c['feedback_rows']:,.0f} feedback records migrated in "
            f"**{c['seconds']:.0f} s** ({c['seconds'] / c['rows'] * 1e6:.0f} s per million requests): the time the "
            "two tables are locked (the service spills its rows meanwhile and replays them after).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20, help="window query runs")
    parser.add_argument("--window", type=int, default=1_000)
    parser.add_argument("--convert-rows", type=int, default=1_000_000, help="0: skip the conversion timing")
    parser.add_argument("--admin-url", default=PG_ADMIN)
    parser.add_argument("--keep", action="store_true", help="keep the database until Enter is pressed")
    parser.add_argument("--out", type=Path, default=RESULTS / "requestlog-scale.md")
    args = parser.parse_args(argv)
    if args.rows < 10_000 or args.runs < 1:
        parser.error("--rows must be >= 10000 and --runs >= 1")
    result = run(
        args.admin_url,
        rows=args.rows,
        runs=args.runs,
        window=args.window,
        convert_rows=args.convert_rows,
        keep=args.keep,
    )
    text_ = report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text_)
    args.out.with_suffix(".json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(text_)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
