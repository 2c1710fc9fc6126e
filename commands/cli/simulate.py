"""The loop simulated on this machine: ``backtest`` the policy offline, run the whole loop live as a ``demo``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from commands.cli.console import setup_logging
from commands.cli.options import JsonOpt
from tagwatch import progress
from tagwatch.settings import Settings, get_settings


def backtest(
    as_json: JsonOpt = False,
    window: Annotated[int, typer.Option(min=100, help="Questions per window.")] = 500,
    max_train: Annotated[int, typer.Option(min=500, help="Train the first models on at most this many.")] = 12_000,
    output: Annotated[Path | None, typer.Option(help="Also write the JSON result to this file.")] = None,
) -> None:
    """Replay history through the policy offline: false alarms (stable stream), poisoned feedback (must promote
    nothing), detection delay and F1 per arm (chronological stream)."""
    setup_logging()
    from commands.scenarios import run_scenarios
    from retrain.job import load_data

    settings = get_settings()
    with progress.show():
        result = run_scenarios(load_data(settings.data_path), settings, window=window, max_train=max_train)
    text = json.dumps(result, indent=2, default=str)
    if output is not None:
        output.write_text(text + "\n")
    if as_json:
        typer.echo(text)
        return
    st, ch = result["stable"], result["chronological"]
    typer.echo(
        f"stable (shuffled) stream: {st['windows']} windows, {st['alarms']} confirmed alarms, "
        f"detections per kind {st['detections']}, retrains {st['retrains']}"
    )
    for name, p in result["poisoned"].items():
        if name == "pairs":
            continue
        typer.echo(
            f"poisoned feedback ({name}): {p['windows']} windows, {p['alarms']} confirmed alarms, retrains "
            f"{p['retrains']} (held {p['held']}, rejected {p['rejected']}), promotions {p['promotions']}"
        )
    typer.echo(
        f"chronological stream: shift at window {ch['shift_window']}, first confirmed "
        f"{ch['first_confirmed_window']} (delay {ch['detection_delay_windows']} windows), "
        f"alarms before the shift {ch['alarms_before_shift']}"
    )
    typer.echo(
        "mean micro-F1 over all tags after the shift: "
        + ", ".join(f"{a} {v:.3f}" for a, v in ch["mean_f1_after_shift"].items())
        + f"; policy/oracle {ch['policy_vs_oracle']:.3f}"
    )


def demo(
    window: Annotated[int, typer.Option(min=100, help="Questions per window.")] = 500,
    max_train: Annotated[
        int,
        typer.Option(min=500, help="Train the first model on a sample of this many questions created before May 2018."),
    ] = 15_000,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document at the end (the progress lines go to stderr).")
    ] = False,
) -> None:
    """The whole loop on this machine: train, serve, replay real questions, monitor, detect, retrain, promote."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from commands.demo import DemoPlan, run_demo

    base = get_settings()
    settings = Settings(
        **{
            **base.model_dump(),
            # The demo's own scale: one monitor window per replayed window, a quick reload and flush.
            "window_size": window,
            "min_window": window,
            "reload_interval_seconds": 0.5,
            "log_flush_interval_seconds": 0.1,
            "retrain_window": 8 * window,
        }
    )
    echo = (lambda line: typer.echo(line, err=True)) if as_json else typer.echo
    echo(f"tagwatch demo: state in {settings.home}")
    with progress.show():
        result = run_demo(settings, DemoPlan(window=window, max_train=max_train), echo=echo)
    promoted = [r for r in result.timeline if r.retrain and r.retrain.startswith("promoted")]
    if as_json:
        from dataclasses import asdict

        document = {
            "home": str(settings.home),
            "seconds": round(result.seconds, 1),
            "windows": len(result.timeline),
            "retrains": sum(1 for r in result.timeline if r.retrain),
            "promoted": len(promoted),
            "plot": None if result.plot is None else str(result.plot),
            "reports": None if result.reports_index is None else str(result.reports_index),
            "timeline": [asdict(r) for r in result.timeline],
        }
        typer.echo(json.dumps(document, indent=2, default=str))
        return
    typer.echo(
        f"done in {result.seconds:.0f} s: {len(result.timeline)} windows, "
        f"{sum(1 for r in result.timeline if r.retrain)} retrain(s), {len(promoted)} promoted"
    )
    typer.echo(f"plot:    {result.plot}")
    typer.echo(f"reports: {result.reports_index}")
