"""``replay``: send real questions to a running service, with delayed feedback (commands/replay.py does the work)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from commands.cli.options import DataOpt, JsonOpt, SinceOpt, UntilOpt, parse_date
from tagwatch.settings import get_settings


def replay(
    url: Annotated[str, typer.Option(help="Base URL of a running service.")] = "http://127.0.0.1:8000",
    data: DataOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    shuffle: Annotated[bool, typer.Option("--shuffle", help="Shuffle the questions (a stable stream).")] = False,
    rate: Annotated[
        float | None, typer.Option(min=0.1, help="Questions per second (default: as fast as the concurrency allows).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Requests in flight at once.")] = 8,
    limit: Annotated[int | None, typer.Option(min=1, help="Send at most this many questions.")] = None,
    feedback_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of questions whose real tags are posted as feedback.")
    ] = 0.5,
    feedback_delay: Annotated[float, typer.Option(min=0.0, help="Seconds between an answer and its feedback.")] = 1.0,
    max_seconds: Annotated[float | None, typer.Option(min=1.0, help="Stop sending after this long.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for --shuffle and the feedback share.")] = 0,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            envvar="TAGWATCH_API_KEY",
            show_default=False,
            help="API key secret, sent as 'Authorization: Bearer' on /feedback and /predict (the service's "
            "TAGWATCH_FEEDBACK_KEYS holds it as name=secret). Prefer the environment variable: an option is visible "
            "in the process list.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay real questions (time order, or shuffled) against a service, with delayed feedback."""
    import asyncio

    from tqdm import tqdm

    from commands.replay import order_stream
    from commands.replay import replay as run_replay
    from retrain.job import load_data, select_window

    settings = get_settings()
    questions = select_window(
        load_data(data or settings.data_path), since=parse_date(since, "--since"), until=parse_date(until, "--until")
    )
    stream = order_stream(questions, shuffle=shuffle, seed=seed, limit=limit)
    if not stream:
        typer.echo("No questions to replay in that window.", err=True)
        raise typer.Exit(2)
    with tqdm(total=len(stream), unit="q", disable=as_json or not sys.stderr.isatty()) as bar:
        summary = asyncio.run(
            run_replay(
                stream,
                url=url,
                rate=rate,
                concurrency=concurrency,
                feedback_share=feedback_share,
                feedback_delay=feedback_delay,
                seed=seed,
                max_seconds=max_seconds,
                on_answer=lambda _: _tick(bar),
                api_key=key,
            )
        )
    result = summary.to_dict()
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(" ".join(f"{k}={v}" for k, v in result.items()))
    if summary.refused:
        typer.echo(
            f"{summary.refused} requests were refused for their API key (401: none sent, 403: not a key of the "
            "service): set TAGWATCH_API_KEY to the secret of one of the service's TAGWATCH_FEEDBACK_KEYS",
            err=True,
        )
    if summary.answered == 0 or summary.refused:
        raise typer.Exit(1)


def _tick(bar: Any) -> None:
    bar.update(1)
