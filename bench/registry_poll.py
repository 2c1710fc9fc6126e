"""What one API replica's champion check costs the registry database, recorded in bench/results/registry-poll.md.

    python -m bench.registry_poll [--checks 500]

Every replica asks the registry which version the champion alias points at every TAGWATCH_RELOAD_INTERVAL_SECONDS
(service.app._reload_loop -> Registry.champion_version). This registers a small model in an MLflow registry on a fresh
PostgreSQL database, as a deployment's, and counts the SQL statements one check sends and times it (median, p99), so
docs/scaling.md can turn replicas and the interval into queries per second on the database.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from bench.requestlog_scale import PG_ADMIN, fresh_database

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "bench" / "results" / "registry-poll.md"


def measure(checks: int) -> dict[str, Any]:
    from retrain.train import train_model
    from tagwatch.data import load_questions
    from tagwatch.registry import Registry
    from tagwatch.settings import BUNDLED_DATA, Settings

    questions, _ = load_questions(BUNDLED_DATA)
    sample = questions[:1500]
    with tempfile.TemporaryDirectory() as home, fresh_database(PG_ADMIN, "tagwatch_bench_registry") as url:
        settings = Settings(home=Path(home), registry_url=url)
        registry = Registry.from_settings(settings)
        model = train_model(sample, top_n=20, max_tags=5, seed=7)
        version = registry.register(
            model,
            params=model.params,
            metrics={"holdout_random": {"micro_f1": 0.5, "samples_jaccard": 0.4}},
            data_window={"n_questions": len(sample)},
            reference=sample[:200],
        )
        registry.promote(version)
        statements: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement.split()[0].upper())

        assert registry.champion_version() == version  # warm: the pool has its connection
        # On every engine: during the checks only MLflow's store sends statements.
        event.listen(Engine, "before_cursor_execute", count)
        seconds = []
        for _ in range(checks):
            t0 = time.perf_counter()
            registry.champion_version()
            seconds.append(time.perf_counter() - t0)
        event.remove(Engine, "before_cursor_execute", count)
        seconds.sort()
        return {
            "checks": checks,
            "statements_per_check": len(statements) / checks,
            "kinds": sorted(set(statements)),
            "median_ms": statistics.median(seconds) * 1000,
            "p99_ms": seconds[int(0.99 * (len(seconds) - 1))] * 1000,
        }


def report(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            "# Registry polling: one champion check",
            "",
            f"`python -m bench.registry_poll --checks {r['checks']}`"
            f" on {datetime.now(UTC).isoformat(timespec='seconds')}"
            f" ({platform.machine()}, {os.cpu_count()} CPUs, 1-minute load {os.getloadavg()[0]:.1f} at the end); MLflow"
            " registry on a fresh PostgreSQL 15 database on loopback, one registered version with the champion alias.",
            "",
            "| checks | SQL statements per check | statement kinds | median | p99 |",
            "| ---: | ---: | --- | ---: | ---: |",
            f"| {r['checks']} | {r['statements_per_check']:.1f} | {', '.join(r['kinds'])} | {r['median_ms']:.2f} ms"
            f" | {r['p99_ms']:.2f} ms |",
            "",
            "Every API replica makes one check per TAGWATCH_RELOAD_INTERVAL_SECONDS (default 5 s):"
            " see docs/scaling.md.",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=500)
    args = parser.parse_args(argv)
    result = measure(args.checks)
    RESULT.write_text(report(result))
    print(RESULT.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
