"""Generate the Grafana dashboards of the stack as JSON, from plain dicts.

    python -m dashboards.build          # (re)write dashboards/json/*.json
    python -m dashboards.build --check  # exit 1 if the committed JSON is not what this would write

Three dashboards, linked to each other and to the drift reports, one module each: ``service``, ``model_drift``,
``retraining``. All three carry the champion's moves (promotions, rollbacks: ``alias_moves`` in PostgreSQL) as
annotations (``annotations``). Panels query Prometheus (the recording rules of ``prometheus/recording.rules.yml`` where
they fit) and the request-log database, built with ``panels``. ``queries`` lists every query for the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dashboards.board import FILES
from dashboards.model_drift import model_drift_dashboard
from dashboards.retraining import retraining_dashboard
from dashboards.service import service_dashboard

JSON_DIR = Path(__file__).resolve().parent / "json"


def build() -> dict[str, dict[str, Any]]:
    """Every dashboard, by file name."""
    boards = (service_dashboard(), model_drift_dashboard(), retraining_dashboard())
    return {FILES[board["uid"]]: board for board in boards}


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


def stale_files(out_dir: Path = JSON_DIR) -> list[str]:
    """JSON files of ``out_dir`` that differ from what ``write`` would write: changed, missing, or produced by no
    dashboard."""
    wanted = {name: render(board) for name, board in build().items()}
    changed = [
        name
        for name, text in wanted.items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text(encoding="utf-8") != text
    ]
    unknown = [p.name for p in out_dir.glob("*.json") if p.name not in wanted]
    return sorted(changed + unknown)


def write(out_dir: Path = JSON_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, board in build().items():
        path = out_dir / name
        path.write_text(render(board), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.build", description="Generate the Grafana dashboards.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the JSON files differ from the generator's")
    parser.add_argument("--out", type=Path, default=JSON_DIR, help="output directory (default: dashboards/json)")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.out)
        if stale:
            print(f"out of date in {args.out}: {', '.join(stale)}; run `python -m dashboards.build`", file=sys.stderr)
            return 1
        print(f"{args.out}: up to date")
        return 0
    for path in write(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
