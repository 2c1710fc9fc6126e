"""Model commands: ``train`` a model and register it, ``evaluate`` a registered one again on its hold-outs."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from commands.cli.console import setup_logging
from commands.cli.options import DataOpt, JsonOpt, SinceOpt, UntilOpt, parse_date
from tagwatch import progress
from tagwatch.settings import get_settings

# The two micro-F1s, named for the tags they count (retrain/evaluate.py).
F1_LEGEND = (
    "micro_f1: over the model's tags (true tags outside them are left out)\n"
    "micro_f1_all_tags: over every true tag (those outside the model's tags count as misses)"
)
# The anchors' protocol trains on 80 % of the data: as many questions as `tagwatch train` needs.
ANCHORS_MIN_QUESTIONS = 200
ANCHORS_LEGEND = (
    "anchors_protocol: a model trained with this version's parameters on a random 80 % of the data, scored on the "
    "other 20 %"
)


def metrics_table(metrics: dict[str, dict[str, Any]]) -> str:
    """One column per hold-out, one row per headline metric, then what the two micro-F1s count."""
    names = [
        "micro_f1",
        "micro_f1_all_tags",
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
            # "-": a metric the version was registered without (micro_f1_all_tags before it existed)
            cells.append(f"{v:>16.4f}" if isinstance(v, float) else f"{'-' if v is None else v!s:>16}")
        lines.append(f"{name:<18}" + "".join(cells))
    lines.append(F1_LEGEND)
    if "anchors_protocol" in metrics:
        lines.append(ANCHORS_LEGEND)
    return "\n".join(lines)


def summary(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The metrics without the per-tag F1s."""
    return {h: {k: v for k, v in m.items() if k != "per_tag_f1"} for h, m in metrics.items()}


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
    setup_logging()
    from retrain.job import load_data, select_window, train_and_register

    settings = get_settings()
    questions = select_window(
        load_data(data or settings.data_path), since=parse_date(since, "--since"), until=parse_date(until, "--until")
    )
    if len(questions) < 200:
        typer.echo(f"Only {len(questions)} questions in that window; at least 200 are needed.", err=True)
        raise typer.Exit(2)
    with progress.show():
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
    typer.echo(metrics_table(summary(run.metrics)))


def evaluate(
    version: Annotated[str | None, typer.Option(help="Model version (default: the champion).")] = None,
    data: DataOpt = None,
    as_json: JsonOpt = False,
    anchors: Annotated[
        bool,
        typer.Option(
            "--anchors/--no-anchors",
            help="Also run the anchors' protocol: train a model with the version's parameters on a random 80 % of "
            "the data and score it on the other 20 % (minutes on the bundled data).",
        ),
    ] = True,
) -> None:
    """Score a registered model (default: the champion) again on both of its hold-outs, and run the anchors'
    protocol with its parameters."""
    setup_logging()
    from retrain.evaluate import anchors_protocol, training_params
    from retrain.evaluate import evaluate as evaluate_model
    from retrain.job import load_data
    from tagwatch.registry import Registry

    settings = get_settings()
    registry = Registry.from_settings(settings)
    version = version or registry.champion_version()
    if version is None:
        typer.echo("No champion in the registry: run `tagwatch train` first.", err=True)
        raise typer.Exit(1)
    model = registry.load_model(version)
    holdouts = registry.holdout_ids(version)
    questions_all = load_data(data or settings.data_path)
    by_id = {q.id: q for q in questions_all}
    metrics: dict[str, dict[str, Any]] = {}
    with progress.show(), progress.task("evaluating hold-outs", total=len(holdouts)) as evaluated:
        for name, ids in holdouts.items():
            questions = [by_id[i] for i in ids if i in by_id]
            if len(questions) < len(ids):
                typer.echo(
                    f"hold-out {name}: {len(ids) - len(questions)} of {len(ids)} questions are not in the data",
                    err=True,
                )
            metrics[f"holdout_{name}"] = evaluate_model(model, questions)
            evaluated.advance()
        if anchors and len(questions_all) < ANCHORS_MIN_QUESTIONS:
            typer.echo(
                f"anchors' protocol skipped: {len(questions_all)} questions in the data, "
                f"at least {ANCHORS_MIN_QUESTIONS} are needed",
                err=True,
            )
        elif anchors:
            # A model of its own: the version may have trained on any question of a random 20 %.
            with progress.task("anchors' protocol: training on a random 80 %"):
                metrics["anchors_protocol"] = anchors_protocol(questions_all, **training_params(model.params))
    if as_json:
        typer.echo(json.dumps({"version": version, "metrics": metrics}, indent=2))
    else:
        typer.echo(f"{settings.model_name} version {version}")
        typer.echo(metrics_table(summary(metrics)))
