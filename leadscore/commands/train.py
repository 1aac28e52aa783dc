"""Making models: ``train`` one (registered as `challenger`), ``tune`` LightGBM's parameters
with Optuna, ``promote`` the challenger to `champion` behind the gate (or roll back)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from leadscore.shared import DataDir, ModelName, console, err, fail, user_errors
from scoring.registry import MODEL_NAME

# ---------------------------------------------------------------- train's options
Target = Annotated[str, typer.Option(help="Funnel stage to predict (mql, sal, ...)")]
HorizonDays = Annotated[int, typer.Option(help="Label window after the snapshot, days")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the metrics as one JSON object")]
AllowLeaky = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-leaky",
        help="Train although this feature (or export column) looks like it leaks the "
        "outcome; repeat for several",
    ),
]
OutcomesDb = Annotated[
    str | None,
    typer.Option(
        "--outcomes-db",
        help="Also learn from outcomes the CRM reported to POST /outcomes (database URL "
        "of the prediction log, e.g. sqlite:///leadscore-predictions.db)",
    ),
]
LearnDecay = Annotated[
    bool,
    typer.Option(
        "--learn-decay/--no-learn-decay",
        help="Choose the interest half-life per event group on the calibration slice",
    ),
]
ParamsFromRun = Annotated[
    str | None,
    typer.Option(
        "--params-from-run",
        help="Use the best LightGBM parameters found by a `leadscore tune` run (its id)",
    ),
]
CalibrationPrior = Annotated[
    str,
    typer.Option(
        "--calibration-prior",
        help="auto: chosen on the validation folds. long-run: probabilities average to "
        "the rate of everything before the holdout. recent: to the latest fold's rate. "
        "See training/selection.py.",
    ),
]
Personas = Annotated[
    Path | None,
    typer.Option(
        "--personas",
        help="Persona definitions (YAML) to ship with the model instead of "
        "features/personas.yaml, e.g. one written by `leadscore personas discover`",
    ),
]


@user_errors
def train(
    data: DataDir,
    target: Target = "sal",
    horizon_days: HorizonDays = 90,
    seed: Annotated[int, typer.Option(help="Random seed for the models")] = 7,
    as_json: AsJson = False,
    allow_leaky: AllowLeaky = None,
    outcomes_db: OutcomesDb = None,
    learn_decay: LearnDecay = False,
    params_from_run: ParamsFromRun = None,
    model_name: ModelName = MODEL_NAME,
    calibration_prior: CalibrationPrior = "auto",
    personas: Personas = None,
) -> None:
    """Train on a time split, log to MLflow, register the model and alias it `challenger`.

    The model family (LightGBM, logistic regression, naive Bayes), weighting and
    calibration are chosen on forward-chaining validation folds before the holdout.
    With --target sal (the default) the one model also answers lead -> MQL (p_mql)."""
    from training.train import train as run_training

    # progress and warnings go to stderr, with --json too (a script can log them)
    progress = lambda m: err().print(f"[dim]- {m}[/]")  # noqa: E731
    warn = lambda m: err().print(f"[bold yellow]{m}[/]")  # noqa: E731
    prior = _calibration_prior(calibration_prior)
    _check_personas(personas)
    config = _train_config(
        target=target,
        horizon_days=horizon_days,
        seed=seed,
        allow_leaky=tuple(allow_leaky or ()),
        learn_decay=learn_decay,
        params=_tuned_params(params_from_run, progress),
        calibration_prior=prior,
        model_name=model_name,
        personas_path=personas,
    )
    if outcomes_db:
        data = _with_outcomes(data, outcomes_db, progress)
    result = run_training(data, config, progress=progress, warn=warn)
    if as_json:
        print(json.dumps(result.to_json()))
        return
    show_training(result, target)


def _calibration_prior(value: str) -> str:
    """``--calibration-prior`` checked; `slice` is the name `recent` had before the
    validation folds chose it."""
    from training.config import CALIBRATION_PRIORS

    value = "recent" if value == "slice" else value
    if value not in CALIBRATION_PRIORS:
        raise typer.BadParameter(
            f"choose one of {', '.join(CALIBRATION_PRIORS)}", param_hint="--calibration-prior"
        )
    return value


def _train_config(**fields: Any) -> Any:
    """The TrainConfig of the flags; a value it refuses (say ``--horizon-days 0``) is one
    error message and exit code 2, not a traceback."""
    from training.config import TrainConfig

    try:
        return TrainConfig(**fields)
    except ValueError as exc:
        raise fail(str(exc)) from None


def _check_personas(path: Path | None) -> None:
    """Read ``--personas`` before training, so a missing or invalid file stops the run at
    once with a message naming it (ConfigError: exit code 2), not after the models fit."""
    if path is None:
        return
    from features.config import ConfigError
    from features.personas import load_personas

    try:
        load_personas(path)
    except ConfigError as exc:
        raise ConfigError(f"--personas {exc}") from None


def _tuned_params(run_id: str | None, progress: Callable[[str], None]) -> dict[str, Any]:
    """The best LightGBM parameters of a `leadscore tune` run (none: the defaults)."""
    if not run_id:
        return {}
    from training.tune import params_from_run as load_params

    params = load_params(run_id)
    progress(f"parameters from tuning run {run_id}: {params}")
    return params


def show_training(result: Any, target: str) -> None:
    """The holdout metrics, the comparison with the baselines and what they mean, in words."""
    table = Table(
        title=f"holdout metrics, target {target} "
        f"(model {result.model_name} v{result.model_version})"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in result.metrics.items():
        if "_ci_" not in k and "_gain_vs_" not in k:  # printed in words below
            table.add_row(k, f"{v:.4f}" if not k.startswith("n_") else f"{v:.0f}")
    console().print(table)
    if result.comparison is not None:
        _show_comparison(result)
    for line in _metric_sentences(result.metrics):
        console().print(line)
    if result.choice:
        console().print(f"model choice: {result.choice['reason']}")
    for line in result.drift_lines:
        console().print(line)
    if result.late_wins_sentence:
        console().print(result.late_wins_sentence)
    if result.skill_sentence:
        style = "bold red" if result.skill.get("skill") == "none" else "green"
        console().print(f"[{style}]{result.skill_sentence}[/]")
    if result.warnings:
        console().print(f"[bold yellow]{len(result.warnings)} warning(s)[/], see above")
    console().print(
        f"registered {result.model_name} version {result.model_version} as `challenger`"
    )


def _show_comparison(result: Any) -> None:
    """The chosen model against the baselines on the same holdout, then the intervals."""
    from training import evaluate as ev

    cmp = Table(title=f"chosen model ({result.family}) vs baselines, same time holdout")
    cmp.add_column("model")
    for c in result.comparison.columns:
        cmp.add_column(c, justify="right")
    for name, row in result.comparison.iterrows():
        cmp.add_row(str(name), *(f"{v:.4f}" for v in row))
    console().print(cmp)
    if words := ev.interval_words(result.metrics, result.comparison):
        console().print(words)


def _metric_sentences(metrics: dict[str, float]) -> list[str]:
    """The ceiling (simulated data), the calibration noise floor and the best-sigmoid
    diagnostic, each when the run measured it."""
    lines = []
    if "ceiling_roc_auc" in metrics:
        # the truth is per lead at entry: compare on the entry snapshots when there are more
        entry = "entry_roc_auc" in metrics
        lines.append(
            f"ROC AUC {metrics['entry_roc_auc' if entry else 'roc_auc']:.3f} vs the "
            f"simulator's true probabilities {metrics['ceiling_roc_auc']:.3f} on the "
            f"same {'entry snapshots of the ' if entry else ''}holdout (the ceiling)"
        )
    if "ece_noise_floor" in metrics:
        lines.append(
            f"ECE {metrics['ece']:.3f}; a perfectly calibrated model would show "
            f"{metrics['ece_noise_floor']:.3f} on {metrics['n_holdout']:.0f} "
            "holdout rows by chance alone"
        )
    if "ece_best_sigmoid" in metrics:
        lines.append(
            f"(diagnostic: the best sigmoid of these scores, fitted on the holdout itself, "
            f"would show ECE {metrics['ece_best_sigmoid']:.3f})"
        )
    return lines


def _with_outcomes(data: Path, db_url: str, progress: Callable[[str], None]) -> Path:
    """The data folder with stored outcomes merged into its stage history (a temp copy)."""
    import shutil
    import tempfile

    from crm.contract import read_tables, write_tables
    from serving.outcomes import merge_outcomes
    from serving.predlog import PredictionLog

    log = PredictionLog(db_url, secret=b"x" * 32)  # reading outcomes needs no lead-key secret
    try:
        outcomes = log.read_outcomes()
    finally:
        log.close()
    merged_dir = Path(tempfile.mkdtemp(prefix="leadscore-outcomes-"))
    for extra in Path(data).glob("*.parquet"):  # e.g. the simulator's ground truth
        shutil.copy(extra, merged_dir / extra.name)
    write_tables(merge_outcomes(read_tables(data), outcomes), merged_dir)
    progress(f"merged {len(outcomes):,} stored outcome(s) from the prediction log")
    return merged_dir


@user_errors
def tune(
    data: DataDir,
    trials: Annotated[int, typer.Option(min=1, help="Optuna trials (each a nested run)")] = 30,
    target: Annotated[str, typer.Option(help="Funnel stage to predict")] = "sal",
    horizon_days: HorizonDays = 90,
    seed: Annotated[int, typer.Option(help="Random seed for sampler and models")] = 7,
) -> None:
    """Search LightGBM parameters with Optuna: one parent run, a nested run per trial."""
    from training.tune import tune as run_tune

    with console().status("tuning") as status:
        result = run_tune(
            data, trials, target, horizon_days, seed, progress=lambda m: status.update(m)
        )
    flags = non_default_flags(target=target, horizon_days=horizon_days, seed=seed)
    console().print(
        f"best of {result.trials} trials: log loss {result.best_log_loss:.4f}, ROC AUC "
        f"{result.best_roc_auc:.4f} (calibration slice)\nparameters: {result.best_params}"
    )
    command = shlex.join(
        ["leadscore", "train", "--data", str(data), *flags]
        + ["--params-from-run", result.parent_run_id]
    )
    # one line whatever the width, so it can be copied (and read back) from a log
    console().print(f"train with them: {command}", soft_wrap=True, markup=False, highlight=False)


def non_default_flags(**options: Any) -> list[str]:
    """The command-line words of the options that differ from ``train``'s defaults
    (``["--target", "mql"]``), so a printed follow-up command trains what was tuned (same
    target and horizon)."""
    import inspect

    defaults = inspect.signature(train).parameters
    return [
        word
        for name, value in options.items()
        if value != defaults[name].default
        for word in (f"--{name.replace('_', '-')}", str(value))
    ]


@user_errors
def promote(
    to: Annotated[
        str | None, typer.Option("--to", help="Version to point `champion` at (rollback)")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if the gate refuses (logged)")
    ] = False,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Data for the holdout (default: the challenger's data)"),
    ] = None,
    model_name: ModelName = MODEL_NAME,
    evidence: Annotated[
        str | None,
        typer.Option(
            "--evidence",
            help="shadow: promote the `shadow` version instead of the challenger, if it "
            "passes the gate and, on the served leads whose outcomes arrived, is not worse "
            "than the champion (paired, 95 % intervals; see training/shadow_evidence.py)",
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Prediction log database with the outcomes, for --evidence shadow "
            "(default: LEADSCORE_DB_URL, else ./leadscore-predictions.db)",
        ),
    ] = None,
    min_leads: Annotated[
        int,
        typer.Option("--min-leads", min=1, help="Leads with outcomes --evidence shadow needs"),
    ] = 200,
) -> None:
    """Point `champion` at the challenger if it shows skill on its own time holdout and is
    not worse than the champion there (ROC AUC drop <= 0.01, ECE rise <= 0.01), or at
    --to VERSION (a rollback, ungated). With --evidence shadow, the candidate is the
    `shadow` version, and it must also hold up on the live leads with outcomes."""
    from training.registry import describe_version
    from training.registry import promote as do_promote

    candidate, verdict, live = _shadow_candidate(evidence, to, db, min_leads, model_name)
    _refuse_without_evidence(live)
    p = do_promote(
        model_name=model_name, to_version=to, force=force, data_dir=data,
        candidate=candidate, evidence=verdict,
    )  # fmt: skip
    if p.comparison:
        _show_gate_comparison(p.comparison, "shadow" if candidate else "challenger")
    if live is not None:
        from leadscore.commands.shadow import show_evidence

        show_evidence(*live)
    console().print(f"{p.kind}: {p.reason}")
    if p.skill is not None and p.skill.has_skill:  # a missing skill is in the reason
        console().print(p.skill.sentence())
    for role, v in (("from", p.from_version), ("to", p.to_version)):
        if v and (role == "from" or v != p.from_version):
            console().print(f"  {role}: {describe_version(v, model_name)}")
    if not p.accepted:
        err().print(
            f"[bold red]refused:[/] champion stays at version {p.from_version or '- (none)'}; "
            "`leadscore promote --force` promotes it anyway (recorded as forced)"
        )
        raise typer.Exit(1)
    console().print(f"champion: {p.model_name} version {p.from_version or '-'} -> {p.to_version}")
    if candidate is not None and p.to_version == candidate:
        from training.registry import clear_shadow

        clear_shadow(model_name)
        console().print("the alias `shadow` is cleared: that version is the champion now")
    if p.from_version != p.to_version:
        console().print(
            "a running `leadscore serve` keeps the version it loaded: restart it, or "
            "`leadscore build` and deploy the new bento, to serve this one"
        )


def _shadow_candidate(
    evidence: str | None, to: str | None, db: str | None, min_leads: int, model_name: str
) -> tuple[str | None, tuple[bool, str] | None, tuple | None]:
    """For --evidence shadow: the shadow's version, the live verdict (ok, reason) and what
    to print of it; (None, None, None) without the option."""
    if evidence is None:
        return None, None, None
    if evidence != "shadow":
        raise typer.BadParameter("the only evidence is `shadow`", param_hint="--evidence")
    if to is not None:
        raise fail("--to rolls back to a version without a gate: it takes no --evidence")
    from leadscore.commands.shadow import default_db_url, shadow_evidence

    ev, champion, shadow, target, where = shadow_evidence(
        model_name, db or default_db_url(), min_leads
    )
    return shadow, (ev.ok, f"live evidence: {ev.reason}"), (ev, champion, shadow, target, where)


def _refuse_without_evidence(live: tuple | None) -> None:
    """Too few outcomes for --evidence shadow: say so and refuse (nothing to weigh yet,
    so the gate is not run)."""
    if live is None or live[0].difference:
        return
    from leadscore.commands.shadow import show_evidence

    show_evidence(*live)
    err().print(
        f"[bold red]refused:[/] champion stays at version {live[1]}; the shadow "
        f"(version {live[2]}) keeps being scored while outcomes arrive"
    )
    raise typer.Exit(1)


def _show_gate_comparison(
    comparison: dict[str, dict[str, float]], candidate: str = "challenger"
) -> None:
    """The metrics the promotion gate compared: the challenger (or the shadow, named
    ``candidate``) and the champion on one holdout."""
    title = (
        f"{candidate} vs champion, same time holdout"
        if "champion" in comparison
        else f"{candidate} on its own time holdout (no champion yet)"
    )
    table = Table(title=title)
    table.add_column("model")
    metrics = list(next(iter(comparison.values())))
    for m in metrics:
        table.add_column(m, justify="right")
    for who, row in comparison.items():
        cells = [f"{row[m]:.0f}" if m.startswith("n_") else f"{row[m]:.4f}" for m in metrics]
        table.add_row(candidate if who == "challenger" else who, *cells)
    console().print(table)
