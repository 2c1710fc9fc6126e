"""The ``tagwatch`` command. Each subcommand is a thin edge: parse options, call a stage, print the result."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from tagwatch.settings import Settings, get_settings

app = typer.Typer(
    help="tagwatch: tag suggestions for Stack Overflow questions, kept healthy in production.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _check_settings() -> None:
    """Read the settings once before any command: a wrong value is one clear line, not a traceback."""
    from pydantic import ValidationError

    try:
        get_settings()
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            name = f"TAGWATCH_{where.upper()}: " if where else ""
            typer.echo(f"tagwatch: invalid setting: {name}{err['msg'].removeprefix('Value error, ')}", err=True)
        raise typer.Exit(2) from None


DataOpt = Annotated[
    Path | None,
    typer.Option(
        help="Questions file (bundled CSV, SEDE CSV, StackSample "
        "Questions.csv, or a data-dump Posts.xml). Default: bundled data."
    ),
]
SinceOpt = Annotated[str | None, typer.Option(help="Only questions created on or after this date (YYYY-MM-DD).")]
UntilOpt = Annotated[str | None, typer.Option(help="Only questions created before this date (YYYY-MM-DD).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
# The promotion lock's wait, for every command that moves the champion.
WaitOpt = Annotated[
    float,
    typer.Option(
        "--wait",
        min=0.0,
        metavar="SECONDS",
        help="Wait up to this long for a retrain or promotion running elsewhere (the monitor's) to end "
        "(default: give up at once).",
    ),
]


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _date(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2018-01-31", param_hint=option) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _metrics_table(metrics: dict[str, dict[str, Any]]) -> str:
    names = [
        "micro_f1",
        "macro_f1",
        "samples_jaccard",
        "precision_at_1",
        "precision_at_3",
        "recall_at_3",
        "n_questions",
    ]
    holdouts = list(metrics)
    lines = [f"{'metric':<18}" + "".join(f"{h:>16}" for h in holdouts)]
    for name in names:
        cells = []
        for h in holdouts:
            v = metrics[h].get(name)
            cells.append(f"{v:>16.4f}" if isinstance(v, float) else f"{v!s:>16}")
        lines.append(f"{name:<18}" + "".join(cells))
    return "\n".join(lines)


def _summary(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {h: {k: v for k, v in m.items() if k != "per_tag_f1"} for h, m in metrics.items()}


@app.command()
def train(
    data: DataOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    as_json: JsonOpt = False,
    champion: Annotated[
        bool | None,
        typer.Option(
            "--champion/--no-champion",
            help="Make the new version champion (default: only when the registry has none).",
        ),
    ] = None,
) -> None:
    """Train on the bundled data (or --data), evaluate on a time and a random hold-out, register the model."""
    _setup_logging()
    from retrain.job import load_data, select_window, train_and_register

    settings = get_settings()
    questions = select_window(
        load_data(data or settings.data_path), since=_date(since, "--since"), until=_date(until, "--until")
    )
    if len(questions) < 200:
        typer.echo(f"Only {len(questions)} questions in that window; at least 200 are needed.", err=True)
        raise typer.Exit(2)
    run = train_and_register(settings, questions, make_champion=champion)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "version": run.version,
                    "champion": run.champion,
                    "data_window": run.data_window,
                    "seconds": round(run.seconds, 1),
                    "metrics": run.metrics,
                },
                indent=2,
            )
        )
        return
    typer.echo(
        f"Registered {settings.model_name} version {run.version}"
        f"{' (champion)' if run.champion else ''} in {run.seconds:.0f} s; window {run.data_window}"
    )
    typer.echo(_metrics_table(_summary(run.metrics)))


@app.command()
def evaluate(
    version: Annotated[str | None, typer.Option(help="Model version (default: the champion).")] = None,
    data: DataOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score a registered model (default: the champion) again on both of its hold-outs."""
    _setup_logging()
    from retrain.evaluate import evaluate as evaluate_model
    from retrain.job import load_data
    from tagwatch.registry import Registry

    settings = get_settings()
    registry = Registry(settings.tracking_url, settings.artifacts_dir, settings.model_name)
    version = version or registry.champion_version()
    if version is None:
        typer.echo("No champion in the registry: run `tagwatch train` first.", err=True)
        raise typer.Exit(1)
    model = registry.load_model(version)
    holdouts = registry.holdout_ids(version)
    by_id = {q.id: q for q in load_data(data or settings.data_path)}
    metrics: dict[str, dict[str, Any]] = {}
    for name, ids in holdouts.items():
        questions = [by_id[i] for i in ids if i in by_id]
        if len(questions) < len(ids):
            typer.echo(
                f"hold-out {name}: {len(ids) - len(questions)} of {len(ids)} questions are not in the data",
                err=True,
            )
        metrics[f"holdout_{name}"] = evaluate_model(model, questions)
    if as_json:
        typer.echo(json.dumps({"version": version, "metrics": metrics}, indent=2))
    else:
        typer.echo(f"{settings.model_name} version {version}")
        typer.echo(_metrics_table(_summary(metrics)))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
) -> None:
    """Run the prediction service (FastAPI) until interrupted."""
    _setup_logging()
    import uvicorn

    from service.app import create_app
    from service.auth import ProductionConfigError

    try:
        api = create_app(get_settings())
    except ProductionConfigError as exc:
        typer.echo(f"tagwatch: invalid setting: {exc}", err=True)
        raise typer.Exit(2) from None
    # In-flight requests get 5 s after SIGTERM; then the lifespan drains the request log (TAGWATCH_LOG_DRAIN_SECONDS).
    uvicorn.run(
        api,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )


@app.command()
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
        load_data(data or settings.data_path), since=_date(since, "--since"), until=_date(until, "--until")
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


@app.command()
def monitor(
    interval: Annotated[
        float | None, typer.Option(min=1.0, help="Seconds between runs (default: TAGWATCH_MONITOR_INTERVAL_SECONDS).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface for the monitor's /metrics.")] = None,
    port: Annotated[int | None, typer.Option(help="Port for the monitor's /metrics (0: none).")] = None,
) -> None:
    """Run the drift monitor on a schedule (APScheduler) and expose its metrics, until interrupted."""
    _setup_logging()
    from commands.scheduler import build_monitor, serve_metrics, start_scheduler

    settings = get_settings()
    mon = build_monitor(settings)
    metrics_port = settings.monitor_port if port is None else port
    if metrics_port:
        serve_metrics(mon, host=host or settings.monitor_host, port=metrics_port)
    scheduler = start_scheduler(mon, interval_seconds=interval or settings.monitor_interval_seconds, background=False)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        scheduler.start()


@app.command("drift-check")
def drift_check(
    as_json: JsonOpt = False,
    no_retrain: Annotated[bool, typer.Option("--no-retrain", help="Measure and decide, but start no retrain.")] = False,
) -> None:
    """Run the drift monitor once on the current window and print its summary.

    Like a scheduled run it holds the drift-run lock: while another run (a running monitor's) holds it, nothing is
    measured (status skipped, no run recorded)."""
    _setup_logging()
    from commands.scheduler import build_monitor

    outcome = build_monitor(get_settings()).run_once(allow_retrain=not no_retrain)
    result = outcome.to_dict()
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    elif outcome.id is None and outcome.status == "skipped":
        typer.echo("not run: " + "; ".join(result["decision"]["reasons"]))
    else:
        typer.echo(f"run {result['run_id']}: {result['status']} (model {result['model_version']})")
        for kind, k in result["kinds"].items():
            flag = "CONFIRMED" if k["confirmed"] else ("detected" if k["detected"] else "-")
            typer.echo(f"  {kind:<8} score {k['score']} threshold {k['threshold']} {flag}")
        typer.echo("  decision: " + "; ".join(result["decision"]["reasons"]))
        if result["report"]:
            typer.echo(f"  report: {get_settings().reports_dir / result['report']}")
    if outcome.status == "failed":
        raise typer.Exit(1)


@app.command("retrain")
def retrain_cmd(
    as_json: JsonOpt = False,
    wait: WaitOpt = 0.0,
) -> None:
    """Train a challenger on recent labelled requests now; promote it only if it beats the champion.

    Holds the promotion lock: one retrain, promotion or rollback at a time, the monitor's included. Recorded in the
    registry, not in drift_runs (the monitor's runs)."""
    _setup_logging()
    from monitor.job import retrain_config_from
    from retrain.promote import retrain
    from tagwatch.db import feedback_sources, fetch_requests, make_engine
    from tagwatch.history import local_actor
    from tagwatch.locks import PROMOTION, LockBusy, promotion_lock
    from tagwatch.registry import registry_for

    settings = get_settings()
    engine = make_engine(settings.db_url)
    try:
        with promotion_lock(engine, settings.model_name, wait=wait):
            labelled = fetch_requests(engine, with_feedback=True, limit=settings.retrain_window)
            registry = registry_for(settings, actor=local_actor(), engine=engine)
            outcome = retrain(
                registry,
                [r.as_question() for r in labelled],
                config=retrain_config_from(settings),
                top_n=settings.top_n_tags,
                max_tags=settings.max_tags,
                seed=settings.seed,
                trigger="manual",
                feedback_sources=feedback_sources(labelled),
            )
    except LockBusy:
        message = "a retrain or promotion is running (monitor?): nothing done" + (
            f" after waiting {wait:g} s" if wait else "; --wait SECONDS waits for it"
        )
        if as_json:
            typer.echo(json.dumps({"result": "busy", "error": message, "lock": PROMOTION}, indent=2))
        typer.echo(f"tagwatch retrain: {message}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if as_json:
        result = {**outcome.to_dict(), "lock": PROMOTION, "recorded_in_drift_runs": False}
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        typer.echo(
            f"retrain: {outcome.result}; challenger {outcome.challenger_version}, champion "
            f"{outcome.champion_version}" + (f"; {outcome.error}" if outcome.error else "")
        )
        if outcome.comparison:
            typer.echo("  " + "; ".join(outcome.comparison["reasons"]))
    if outcome.result == "failed":
        raise typer.Exit(1)


@app.command()
def rollback(
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="VERSION",
            help="Make this version champion, however old (default: the previous champion). Refused, with nothing "
            "moved, if the version does not exist or its artifacts are gone.",
        ),
    ] = None,
    wait: WaitOpt = 0.0,
) -> None:
    """Put an earlier model back as champion; the current one becomes previous (the service follows within its
    reload interval). Recorded in the history (`tagwatch history`) with trigger "rollback" and your user name.

    Holds the promotion lock: no retrain or promotion (the monitor's included) can move the champion meanwhile."""
    _setup_logging()
    from retrain.promote import rollback as do_rollback
    from tagwatch.db import make_engine, upgrade_database
    from tagwatch.history import local_actor
    from tagwatch.locks import LockBusy, promotion_lock
    from tagwatch.registry import RegistryError, registry_for

    settings = get_settings()
    actor = local_actor()
    if settings.auto_migrate:
        upgrade_database(settings.db_url)
    engine = make_engine(settings.db_url)
    try:
        with promotion_lock(engine, settings.model_name, wait=wait):
            registry = registry_for(settings, actor=actor, engine=engine)
            old, new = do_rollback(registry, to, trigger="rollback", actor=actor)
    except LockBusy:
        typer.echo(
            "rollback refused: a retrain or promotion is running (monitor?); no alias moved"
            + (f" after waiting {wait:g} s" if wait else "; --wait SECONDS waits for it"),
            err=True,
        )
        raise typer.Exit(1) from None
    except (LookupError, RegistryError, ValueError) as exc:
        typer.echo(f"rollback refused: {exc}; no alias moved", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if old == new:
        typer.echo(f"{settings.model_name} version {new} is the champion already: nothing moved")
        return
    typer.echo(f"champion {old or '-'} -> {new}" + (f" (previous is now {old})" if old else ""))


@app.command()
def history(
    as_json: JsonOpt = False,
    alias: Annotated[
        str | None, typer.Option(help="Only this alias's moves (champion, previous, challenger; default: all).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the newest N moves.")] = None,
) -> None:
    """Every recorded move of the model's aliases, newest first: when, alias, from -> to, trigger, who."""
    from sqlalchemy.exc import SQLAlchemyError

    from tagwatch.db import make_engine
    from tagwatch.history import list_moves

    settings = get_settings()
    engine = make_engine(settings.db_url)
    try:
        moves = list_moves(engine, model_name=settings.model_name, alias=alias, limit=limit)
    except SQLAlchemyError as exc:
        typer.echo(
            f"cannot read the history from {_redact(settings.db_url)}: {type(exc).__name__} "
            "(is the database at head? `tagwatch migrate`)",
            err=True,
        )
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps([m.to_dict() for m in moves], indent=2))
        return
    if not moves:
        typer.echo(f"no {alias + ' ' if alias else ''}alias move recorded for {settings.model_name}")
        return
    rows = [
        (
            f"{m.moved_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            m.alias,
            f"{m.from_version or '-'} -> {m.to_version or '-'}",
            m.trigger,
            m.actor,
        )
        for m in moves
    ]
    header = ("moved at (UTC)", "alias", "from -> to", "trigger", "who")
    widths = [max(len(_printable(r[i])) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        cells = [_printable(cell) for cell in row]
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=False)) + "  " + cells[4])


def _printable(text: str) -> str:
    """``text`` with control characters escaped: a trigger or actor cannot move the cursor or recolour a terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


@app.command()
def backtest(
    as_json: JsonOpt = False,
    window: Annotated[int, typer.Option(min=100, help="Questions per window.")] = 500,
    max_train: Annotated[int, typer.Option(min=500, help="Train the first models on at most this many.")] = 12_000,
    output: Annotated[Path | None, typer.Option(help="Also write the JSON result to this file.")] = None,
) -> None:
    """Replay history through the policy offline: false alarms (stable stream), poisoned feedback (must promote
    nothing), detection delay and F1 per arm (chronological stream)."""
    _setup_logging()
    from commands.backtest import run_scenarios
    from retrain.job import load_data

    settings = get_settings()
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
        "mean micro-F1 after the shift: "
        + ", ".join(f"{a} {v:.3f}" for a, v in ch["mean_f1_after_shift"].items())
        + f"; policy/oracle {ch['policy_vs_oracle']:.3f}"
    )


@app.command()
def migrate() -> None:
    """Create or upgrade the request-log database (Alembic) and the model registry's store."""
    _setup_logging()
    _migrate(get_settings())


def _migrate(settings: Settings) -> str | None:
    """Upgrade the database and create the registry's store; returns the champion version (None: no champion)."""
    from tagwatch.db import upgrade_database
    from tagwatch.registry import Registry

    upgrade_database(settings.db_url)
    typer.echo(f"database at head: {_redact(settings.db_url)}")
    # The registry store creates its tables on first use: do it here, once, not in several processes at once.
    champion = Registry(settings.tracking_url, settings.artifacts_dir, settings.model_name).champion_version()
    typer.echo(f"registry ready: {_redact(settings.tracking_url)}")
    _ensure_roles(settings)
    return champion


def _ensure_roles(settings: Settings) -> None:
    """The least-privilege database roles of a deployment (tagwatch/roles.py), for the role passwords that are set."""
    from pydantic import SecretStr
    from sqlalchemy.engine import make_url

    from tagwatch.roles import ROLE_KINDS, RolesError, ensure_roles

    variables = {kind: f"TAGWATCH_{kind.upper()}_DB_PASSWORD" for kind in ROLE_KINDS}
    if make_url(settings.db_url).get_backend_name() == "sqlite":
        typer.echo("database roles: none (SQLite has no roles; every process opens the files itself)")
        return
    passwords: dict[str, SecretStr | None] = {kind: getattr(settings, f"{kind}_db_password") for kind in ROLE_KINDS}
    if not any(p is not None and p.get_secret_value() for p in passwords.values()):
        typer.echo(f"database roles: none created (set {', '.join(variables.values())} to create them)")
        return
    try:
        results = ensure_roles(settings.db_url, settings.tracking_url, passwords, prefix=settings.db_role_prefix)
    except RolesError as exc:
        typer.echo(f"tagwatch: database roles: {exc}", err=True)
        raise typer.Exit(1) from None
    for result in results:
        if result.action == "skipped":
            typer.echo(f"database role {result.role}: skipped ({variables[result.kind]} is not set)")
        else:
            typer.echo(f"database role {result.role} {result.action}: {', '.join(result.databases)}")


@app.command()
def init(
    data: DataOpt = None,
    until: Annotated[
        str, typer.Option(help="Train on questions created before this date (YYYY-MM-DD).")
    ] = "2019-01-01",
    max_train: Annotated[
        int, typer.Option(min=200, help="Train on a seeded sample of at most this many of those questions.")
    ] = 12_000,
    if_empty: Annotated[
        bool,
        typer.Option(
            "--if-empty/--always",
            help="Train only when the registry has no champion (default), or register a new version anyway "
            "(it becomes champion only when there is none).",
        ),
    ] = True,
) -> None:
    """Prepare a deployment (the compose stack's one-shot init): migrate, create the registry, train a first model."""
    _setup_logging()
    import random

    from retrain.job import load_data, select_window, train_and_register

    settings = get_settings()
    cutoff = _date(until, "--until")
    champion = _migrate(settings)
    if champion is not None and if_empty:
        typer.echo(f"{settings.model_name} version {champion} is champion: no model to train")
        return
    questions = select_window(load_data(data or settings.data_path), since=None, until=cutoff)
    if len(questions) > max_train:
        # A seeded sample, kept in time order (the time hold-out is the newest part of it).
        keep = set(random.Random(settings.seed).sample(range(len(questions)), max_train))
        questions = [q for i, q in enumerate(questions) if i in keep]
    if len(questions) < 200:
        typer.echo(f"Only {len(questions)} questions created before {until}; at least 200 are needed.", err=True)
        raise typer.Exit(2)
    typer.echo(f"training on {len(questions)} questions created before {until} ...")
    run = train_and_register(settings, questions, trigger="init")
    typer.echo(
        f"Registered {settings.model_name} version {run.version}"
        f"{' (champion)' if run.champion else ''} in {run.seconds:.0f} s; window {run.data_window}"
    )
    typer.echo(_metrics_table(_summary(run.metrics)))


@app.command("alert-sink")
def alert_sink(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to bind.")] = 9095,
    keep: Annotated[int, typer.Option(min=1, help="Notifications kept in memory for GET /alerts.")] = 200,
) -> None:
    """Receive Alertmanager webhooks on POST /alerts: log one line per alert, keep the last ones for GET /alerts."""
    import signal

    from commands.alertsink import AlertSink

    sink = AlertSink(host, port, keep=keep, echo=typer.echo)
    sink.bind()
    # As a container's PID 1 the process ignores SIGTERM unless it handles it: stop cleanly on `docker stop`.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    typer.echo(f"alert sink listening on {sink.url}/alerts", err=True)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        sink.serve_forever()


@app.command()
def demo(
    window: Annotated[int, typer.Option(min=100, help="Questions per window.")] = 500,
    max_train: Annotated[
        int,
        typer.Option(min=500, help="Train the first model on a sample of this many questions created before May 2018."),
    ] = 15_000,
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
    typer.echo(f"tagwatch demo: state in {settings.home}")
    result = run_demo(settings, DemoPlan(window=window, max_train=max_train), echo=typer.echo)
    promoted = [r for r in result.timeline if r.retrain and r.retrain.startswith("promoted")]
    typer.echo(
        f"done in {result.seconds:.0f} s: {len(result.timeline)} windows, "
        f"{sum(1 for r in result.timeline if r.retrain)} retrain(s), {len(promoted)} promoted"
    )
    typer.echo(f"plot:    {result.plot}")
    typer.echo(f"reports: {result.reports_index}")


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _tick(bar: Any) -> None:
    bar.update(1)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
