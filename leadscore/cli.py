"""The `leadscore` command: one sub-command per verb. The only place that wires the
features, training and serving packages together."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from scoring.registry import scoring_model
from serving.process import (
    bentoml_bin,
    free_port,
    port_in_use,
    run_until_signal,
    start_server,
    stop_server,
    wait_ready,
)


class _Commands(TyperGroup):
    """Lists each sub-command with the whole first sentence of its help, wrapped, where
    click would cut it with '...' to fit one line."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=1_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


app = typer.Typer(
    cls=_Commands,
    help="leadscore: open, explainable, calibrated lead scoring (simulate, train, serve).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: it wraps long option names, paths and URLs onto the next line;
    # rich's help panels cut them with an ellipsis in an 80-column terminal.
    rich_markup_mode=None,
)
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Known failures become one clear message and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from crm.contract import DataContractError
        from crm.importer import ImportDataError, ImportOutputError, MappingError
        from features.config import ConfigError
        from serving.model_store import ModelNotFound
        from training.dataset import TrainingDataError
        from training.leakage import LeakageError
        from training.registry import RegistryError

        known = (
            DataContractError,
            TrainingDataError,
            RegistryError,
            ModelNotFound,
            LeakageError,
            MappingError,
            ImportDataError,
            ImportOutputError,
            ConfigError,
        )
        try:
            return fn(*args, **kwargs)
        except known as exc:
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None
        except FileNotFoundError as exc:
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


DataDir = Annotated[
    Path, typer.Option("--data", help="Folder with accounts/leads/events/stage_history.parquet")
]


def _model_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", value):
        raise typer.BadParameter(
            "use letters, digits, '.', '_' or '-' (at most 100, starting with a letter or "
            f"digit), got {value!r}"
        )
    return value


#: One registered model (and MLflow experiment) per data set: a second export trained
#: under its own name leaves the first one's challenger and champion alone.
ModelName = Annotated[
    str,
    typer.Option(
        "--model-name",
        help="Registered model name, one per data set (the gate compares only within it)",
        callback=_model_name,
    ),
]


@app.command()
@user_errors
def simulate(
    leads: Annotated[
        int, typer.Option("--leads", min=100, help="Number of leads to simulate")
    ] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same data")] = 7,
    out: Annotated[Path, typer.Option(help="Output folder for the Parquet tables")] = Path(
        "data/sim"
    ),
) -> None:
    """Simulate a B2B CRM: the four canonical tables plus a ground-truth table."""
    from crm.simulate import write_simulation

    t0 = time.perf_counter()
    with console.status(f"simulating {leads:,} leads"):
        write_simulation(out, n_leads=leads, seed=seed)
    console.print(
        f"wrote {out}/ ({leads:,} leads, seed {seed}) in {time.perf_counter() - t0:.1f} s"
    )


@app.command("import")
@user_errors
def import_export(
    files: Annotated[list[Path], typer.Argument(help="Export file(s) or folder(s) to import")],
    mapping: Annotated[
        str,
        typer.Option(
            "--mapping",
            help="Mapping YAML (a path, or a shipped name: x-education, olist)",
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output folder for the canonical tables")],
    include_leaky: Annotated[
        bool | None,
        typer.Option(
            "--include-leaky/--exclude-leaky",
            help="Also map the columns the mapping declares as filled after the outcome "
            "(for a leakage check); default: as the mapping says",
        ),
    ] = None,
) -> None:
    """Map a CRM export onto the canonical tables through a YAML mapping (no code)."""
    from crm.importer import import_export as run_import

    summary = run_import(mapping, files, out, include_leaky=include_leaky)
    console.print(summary.describe())
    console.print(
        f"wrote {out}/; train with: leadscore train --data {out} --target {summary.label_stage}"
    )


mapping_app = typer.Typer(
    cls=_Commands,
    help="Mappings of CRM exports: draft one from an export, print the format's schema.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(mapping_app, name="mapping")


@mapping_app.command("init")
@user_errors
def mapping_init(
    files: Annotated[
        list[Path],
        typer.Argument(help="Export CSV file(s); the first holds one row per lead"),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Write the draft to this file (default: print it)"),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Mapping name (default: from the file)")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --out file")] = False,
) -> None:
    """Draft a mapping YAML from the export's columns, every choice explained in a comment.

    Edit the draft (the lines marked EDIT above all), then run `leadscore import`."""
    from crm.importer import ImportOutputError
    from crm.mapping_draft import DraftError, draft_mapping

    if out is not None and out.exists() and not force:
        raise ImportOutputError(f"--out {out}: exists; pass --force to replace it")
    try:
        text = draft_mapping(files, name=name)
    except DraftError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if out is None:
        print(text, end="")
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ImportOutputError(f"--out {out}: cannot write there: {exc}") from None
    err.print(f"wrote {out}; edit it, then: leadscore import --mapping {out} --out DIR FILE...")


@mapping_app.command("schema")
@user_errors
def mapping_schema() -> None:
    """Print the JSON Schema of the mapping format (for editors; see docs/MAPPING.md)."""
    from crm.mapping_schema import mapping_json_schema

    print(json.dumps(mapping_json_schema(), indent=2))


@app.command()
@user_errors
def validate(data: DataDir) -> None:
    """Check a data folder against the canonical contract and list every problem."""
    from crm.contract import read_tables

    d = read_tables(data)
    console.print(
        f"ok: {len(d.accounts):,} accounts, {len(d.leads):,} leads, {len(d.events):,} events, "
        f"{len(d.stage_history):,} stage changes"
    )


@app.command()
@user_errors
def train(
    data: DataDir,
    target: Annotated[str, typer.Option(help="Funnel stage to predict (mql, sal, ...)")] = "sal",
    horizon_days: Annotated[int, typer.Option(help="Label window after the snapshot, days")] = 90,
    seed: Annotated[int, typer.Option(help="Random seed for the models")] = 7,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the metrics as one JSON object")
    ] = False,
    allow_leaky: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-leaky",
            help="Train although this feature (or export column) looks like it leaks the "
            "outcome; repeat for several",
        ),
    ] = None,
    outcomes_db: Annotated[
        str | None,
        typer.Option(
            "--outcomes-db",
            help="Also learn from outcomes the CRM reported to POST /outcomes (database URL "
            "of the prediction log, e.g. sqlite:///leadscore-predictions.db)",
        ),
    ] = None,
    learn_decay: Annotated[
        bool,
        typer.Option(
            "--learn-decay/--no-learn-decay",
            help="Choose the interest half-life per event group on the calibration slice",
        ),
    ] = False,
    params_from_run: Annotated[
        str | None,
        typer.Option(
            "--params-from-run",
            help="Use the best LightGBM parameters found by a `leadscore tune` run (its id)",
        ),
    ] = None,
    model_name: ModelName = "lead-scorer",
    calibration_prior: Annotated[
        str,
        typer.Option(
            "--calibration-prior",
            help="auto: chosen on the validation folds. long-run: probabilities average to "
            "the rate of everything before the holdout. recent: to the latest fold's rate. "
            "See training/selection.py.",
        ),
    ] = "auto",
) -> None:
    """Train on a time split, log to MLflow, register the model and alias it `challenger`.

    The model family (LightGBM, logistic regression, naive Bayes), weighting and
    calibration are chosen on forward-chaining validation folds before the holdout.
    With --target sal (the default) the one model also answers lead -> MQL (p_mql)."""
    from training import evaluate as ev
    from training.selection import PRIORS
    from training.train import train as run_training

    if calibration_prior == "slice":  # the name before the validation folds chose it
        calibration_prior = "recent"
    if calibration_prior not in ("auto", *PRIORS):
        raise typer.BadParameter(
            f"choose one of auto, {', '.join(PRIORS)}", param_hint="--calibration-prior"
        )
    # progress and warnings go to stderr, with --json too (a script can log them)
    progress = lambda m: err.print(f"[dim]- {m}[/]")  # noqa: E731
    warn = lambda m: err.print(f"[bold yellow]{m}[/]")  # noqa: E731
    params = None
    if params_from_run:
        from training.tune import params_from_run as load_params

        params = load_params(params_from_run)
        progress(f"parameters from tuning run {params_from_run}: {params}")
    if outcomes_db:
        data = _with_outcomes(data, outcomes_db, progress)
    result = run_training(
        data,
        target=target,
        horizon_days=horizon_days,
        seed=seed,
        progress=progress,
        allow_leaky=tuple(allow_leaky or ()),
        learn_decay=learn_decay,
        params=params,
        calibration_prior=calibration_prior,
        warn=warn,
        model_name=model_name,
    )
    if as_json:
        print(json.dumps(result.to_json()))
        return
    table = Table(
        title=f"holdout metrics, target {target} "
        f"(model {result.model_name} v{result.model_version})"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in result.metrics.items():
        if "_ci_" not in k and "_gain_vs_" not in k:  # printed in words below
            table.add_row(k, f"{v:.4f}" if not k.startswith("n_") else f"{v:.0f}")
    console.print(table)
    if result.comparison is not None:
        cmp = Table(title=f"chosen model ({result.family}) vs baselines, same time holdout")
        cmp.add_column("model")
        for c in result.comparison.columns:
            cmp.add_column(c, justify="right")
        for name, row in result.comparison.iterrows():
            cmp.add_row(str(name), *(f"{v:.4f}" for v in row))
        console.print(cmp)
    if result.comparison is not None and (
        words := ev.interval_words(result.metrics, result.comparison)
    ):
        console.print(words)
    if "ceiling_roc_auc" in result.metrics:
        # the truth is per lead at entry: compare on the entry snapshots when there are more
        entry = "entry_roc_auc" in result.metrics
        console.print(
            f"ROC AUC {result.metrics['entry_roc_auc' if entry else 'roc_auc']:.3f} vs the "
            f"simulator's true probabilities {result.metrics['ceiling_roc_auc']:.3f} on the "
            f"same {'entry snapshots of the ' if entry else ''}holdout (the ceiling)"
        )
    if "ece_noise_floor" in result.metrics:
        console.print(
            f"ECE {result.metrics['ece']:.3f}; a perfectly calibrated model would show "
            f"{result.metrics['ece_noise_floor']:.3f} on {result.metrics['n_holdout']:.0f} "
            "holdout rows by chance alone"
        )
    if "ece_best_sigmoid" in result.metrics:
        console.print(
            f"(diagnostic: the best sigmoid of these scores, fitted on the holdout itself, "
            f"would show ECE {result.metrics['ece_best_sigmoid']:.3f})"
        )
    if result.choice:
        console.print(f"model choice: {result.choice['reason']}")
    for line in result.drift_lines:
        console.print(line)
    if result.late_wins_sentence:
        console.print(result.late_wins_sentence)
    if result.skill_sentence:
        style = "bold red" if result.skill.get("skill") == "none" else "green"
        console.print(f"[{style}]{result.skill_sentence}[/]")
    if result.warnings:
        console.print(f"[bold yellow]{len(result.warnings)} warning(s)[/], see above")
    console.print(f"registered {result.model_name} version {result.model_version} as `challenger`")


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


@app.command()
@user_errors
def tune(
    data: DataDir,
    trials: Annotated[int, typer.Option(min=1, help="Optuna trials (each a nested run)")] = 30,
    target: Annotated[str, typer.Option(help="Funnel stage to predict")] = "sal",
    horizon_days: Annotated[int, typer.Option(help="Label window after the snapshot, days")] = 90,
    seed: Annotated[int, typer.Option(help="Random seed for sampler and models")] = 7,
) -> None:
    """Search LightGBM parameters with Optuna: one parent run, a nested run per trial."""
    from training.tune import tune as run_tune

    with console.status("tuning") as status:
        result = run_tune(
            data, trials, target, horizon_days, seed, progress=lambda m: status.update(m)
        )
    flags = non_default_flags(target=target, horizon_days=horizon_days, seed=seed)
    console.print(
        f"best of {result.trials} trials: log loss {result.best_log_loss:.4f}, ROC AUC "
        f"{result.best_roc_auc:.4f} (calibration slice)\nparameters: {result.best_params}\n"
        "train with them: leadscore train --data "
        + " ".join([str(data), *flags])
        + f" --params-from-run {result.parent_run_id}"
    )


def non_default_flags(**options: Any) -> list[str]:
    """The command-line flags of the options that differ from ``train``'s defaults, so a
    printed follow-up command trains what was tuned (same target and horizon)."""
    import inspect

    defaults = inspect.signature(train).parameters
    return [
        f"--{name.replace('_', '-')} {value}"
        for name, value in options.items()
        if value != defaults[name].default
    ]


@app.command()
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
    model_name: ModelName = "lead-scorer",
) -> None:
    """Point `champion` at the challenger if it shows skill on its own time holdout and is
    not worse than the champion there (ROC AUC drop <= 0.01, ECE rise <= 0.01), or at
    --to VERSION (a rollback, ungated)."""
    from training.registry import describe_version
    from training.registry import promote as do_promote

    p = do_promote(model_name=model_name, to_version=to, force=force, data_dir=data)
    if p.comparison:
        title = (
            "challenger vs champion, same time holdout"
            if "champion" in p.comparison
            else "challenger on its own time holdout (no champion yet)"
        )
        table = Table(title=title)
        table.add_column("model")
        metrics = list(next(iter(p.comparison.values())))
        for m in metrics:
            table.add_column(m, justify="right")
        for who, row in p.comparison.items():
            cells = [f"{row[m]:.0f}" if m.startswith("n_") else f"{row[m]:.4f}" for m in metrics]
            table.add_row(who, *cells)
        console.print(table)
    console.print(f"{p.kind}: {p.reason}")
    if p.skill is not None and p.skill.has_skill:  # a missing skill is in the reason
        console.print(p.skill.sentence())
    for role, v in (("from", p.from_version), ("to", p.to_version)):
        if v and (role == "from" or v != p.from_version):
            console.print(f"  {role}: {describe_version(v, model_name)}")
    if not p.accepted:
        err.print(
            f"[bold red]refused:[/] champion stays at version {p.from_version or '- (none)'}; "
            "`leadscore promote --force` promotes it anyway (recorded as forced)"
        )
        raise typer.Exit(1)
    console.print(f"champion: {p.model_name} version {p.from_version or '-'} -> {p.to_version}")
    if p.from_version != p.to_version:
        console.print(
            "a running `leadscore serve` keeps the version it loaded: restart it, or "
            "`leadscore build` and deploy the new bento, to serve this one"
        )


def _import_served(alias: str, model_name: str = "lead-scorer") -> Any:
    from serving.model_store import import_registered
    from training.tracking import tracking_uri

    return import_registered(model_name, alias, tracking_uri())


@app.command()
@user_errors
def serve(
    port: Annotated[int, typer.Option(help="Port to listen on")] = 3000,
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    alias: Annotated[str, typer.Option(help="Registry alias or version to serve")] = "champion",
    insecure_dev: Annotated[
        bool,
        typer.Option(
            "--insecure-dev",
            help="Serve without API tokens (every caller is let in): a laptop only",
        ),
    ] = False,
    model_name: ModelName = "lead-scorer",
) -> None:
    """Serve the champion model over HTTP with BentoML (POST /score, POST /outcomes,
    GET /model; bearer tokens from LEADSCORE_API_TOKENS or LEADSCORE_API_TOKENS_FILE)."""
    from serving.auth import is_loopback, load_tokens

    if insecure_dev and not is_loopback(host):
        err.print(
            f"[bold red]error:[/] --insecure-dev serves without authentication and is allowed "
            f"on a loopback address only (127.0.0.1, ::1, localhost), not --host {host}"
        )
        raise typer.Exit(2)
    try:
        has_tokens = bool(load_tokens())
    except ValueError as e:
        err.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None
    if not insecure_dev and not has_tokens:
        err.print(
            "[bold red]error:[/] no API tokens: set LEADSCORE_API_TOKENS (comma-separated) or "
            "LEADSCORE_API_TOKENS_FILE, or pass --insecure-dev on a laptop"
        )
        raise typer.Exit(2)
    busy = port_in_use(host, port)
    if busy is not None:
        err.print(
            f"[bold red]error:[/] cannot listen on {host}:{port}: {busy}. Another server (or "
            f"a leftover worker of one) may be using it: find it with `ss -ltnp 'sport = "
            f":{port}'`, stop it, or pass another --port"
        )
        raise typer.Exit(2)
    model = _import_served(alias, model_name)
    if insecure_dev:
        err.print("[bold yellow]INSECURE DEV MODE: no authentication, anyone can call /score[/]")
    labels = model.info.labels
    console.print(
        f"serving {model.tag} ({alias}: {labels.get('mlflow_model')} version "
        f"{labels.get('mlflow_version')}, MLflow model {labels.get('mlflow_model_id') or '-'}, "
        f"run {labels.get('mlflow_run_id') or '-'}) on http://{host}:{port}"
    )
    proc = start_server(
        str(model.tag), port, host, {"LEADSCORE_INSECURE_DEV": "1"} if insecure_dev else None
    )
    sys.exit(run_until_signal(proc, say=err.print))


@app.command()
@user_errors
def build(
    alias: Annotated[str, typer.Option(help="Registry alias or version to package")] = "champion",
    model_name: ModelName = "lead-scorer",
) -> None:
    """Import the champion from the MLflow registry into the BentoML model store and build a
    bento with bentofile.yaml: it serves with no MLflow server reachable, and always the model
    it was built with (pinned as the bento argument `model`, see serving/bento_entry.py)."""
    from serving.model_store import BENTO_MODEL_ARGUMENT

    model = _import_served(alias, model_name)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "LEADSCORE_BENTO_MODEL": str(model.tag)}
    cmd = [bentoml_bin(), "build", "-f", str(root / "bentofile.yaml"), "--output", "tag"]
    cmd += ["--arg", f"{BENTO_MODEL_ARGUMENT}={model.tag}", str(root)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        err.print(f"[bold red]error:[/] bentoml build failed:\n{proc.stderr[-3000:]}")
        raise typer.Exit(2)
    tag = proc.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    console.print(f"built {tag} with model {model.tag} ({alias}); serve it with")
    console.print(f"  LEADSCORE_API_TOKENS=... bentoml serve {tag}")


@app.command()
@user_errors
def score(
    data: DataDir,
    out: Annotated[Path, typer.Option(help="Output Parquet file")] = Path("scored.parquet"),
    as_of: Annotated[
        str | None, typer.Option(help="Score as of this moment (default: end of the data)")
    ] = None,
    alias: Annotated[str, typer.Option(help="Registry alias or version to use")] = "champion",
    chunk_size: Annotated[int, typer.Option(help="Leads per chunk (bounds memory)")] = 50_000,
    engine: Annotated[
        str,
        typer.Option(
            help="pandas: this machine (--out is a Parquet file); spark: Apache Spark "
            "(--data/--out are Parquet folders, local or cluster paths)"
        ),
    ] = "pandas",
    workers: Annotated[
        int, typer.Option(help="pandas engine: processes scoring chunks (0 = one per core)")
    ] = 0,
    master: Annotated[
        str | None,
        typer.Option(help="spark engine: master URL (default: spark-submit's, else local[*])"),
    ] = None,
    model_name: ModelName = "lead-scorer",
) -> None:
    """Batch-score every lead in a data folder with the same code path as the HTTP service."""
    import pandas as pd
    from rich.progress import Progress

    from crm.contract import data_end, read_tables
    from scoring.batch import score_to_parquet

    if engine not in ("pandas", "spark"):
        raise typer.BadParameter("choose pandas or spark", param_hint="--engine")
    bento_model = _import_served(alias, model_name)
    import bentoml

    model = scoring_model(bentoml.mlflow.load_model(bento_model))
    if engine == "spark":
        _score_spark(bento_model, model, data, out, as_of, master)
        return
    d = read_tables(data)
    moment = pd.Timestamp(as_of) if as_of else data_end(d) + pd.Timedelta(seconds=1)
    labels = bento_model.info.labels
    quadrants: list[pd.Series] = []
    with Progress(console=err) as bar:
        task = bar.add_task("scoring", total=len(d.leads))

        def tally(part: pd.DataFrame) -> None:  # each chunk is written, then dropped
            quadrants.append(part["quadrant"].value_counts())
            bar.advance(task, len(part))

        n = score_to_parquet(
            out, model, d, moment, chunk_size, workers,
            columns={
                "model_name": labels.get("mlflow_model"),
                "model_version": labels.get("mlflow_version"),
                "as_of": moment,
            },
            on_part=tally,
        )  # fmt: skip
    console.print(f"scored {n:,} leads as of {moment} -> {out}")
    if quadrants:
        counts = pd.concat(quadrants).groupby(level=0).sum()
        console.print(counts.sort_values(ascending=False, kind="stable").to_string())


def _score_spark(
    bento_model: Any, model: Any, data: Path, out: Path, as_of: str | None, master: str | None
) -> None:
    """`score --engine spark`: read Parquet, score per lead bucket, write a Parquet folder."""
    import pandas as pd
    from pyspark.errors import PythonException
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from crm.contract import DataContractError, Problem
    from features.spark import data_end_spark, read_spark_tables, spark_session
    from serving.spark_batch import score_spark

    owned = SparkSession.getActiveSession() is None
    spark = spark_session(master)  # None: spark-submit's master, else local[*]
    try:
        tables = read_spark_tables(spark, data)
        moment = pd.Timestamp(as_of) if as_of else data_end_spark(tables) + pd.Timedelta(seconds=1)
        labels = bento_model.info.labels
        answers = score_spark(model, tables, moment).select(
            "*",
            F.lit(labels.get("mlflow_model")).alias("model_name"),
            F.lit(labels.get("mlflow_version")).alias("model_version"),
            F.lit(moment.to_pydatetime()).cast("timestamp_ntz").alias("as_of"),
        )
        answers.write.mode("overwrite").parquet(str(out))
        written = spark.read.parquet(str(out))
        counts = written.groupBy("quadrant").count().orderBy(F.desc("count")).collect()
    except PythonException as exc:  # a contract problem found inside a Spark task
        text = str(exc)
        if "DataContractError" not in text:
            raise
        reason = text[text.index("DataContractError") :].split("\n", 1)[-1].strip()
        raise DataContractError([Problem("-", "-", "-", reason[:4000])]) from None
    finally:
        if owned:
            spark.stop()
    console.print(f"scored {sum(r['count'] for r in counts):,} leads as of {moment} -> {out}/")
    console.print("\n".join(f"{r['quadrant']}  {r['count']}" for r in counts))


@app.command()
@user_errors
def demo(
    leads: Annotated[int, typer.Option("--leads", help="Leads to simulate")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed")] = 7,
    data: Annotated[Path, typer.Option(help="Folder for the simulated CRM")] = Path("data/demo"),
    sample: Annotated[int, typer.Option(help="Leads to score over HTTP")] = 8,
) -> None:
    """Simulate, train, register, promote, serve, score sample leads over HTTP, stop."""
    import httpx
    import pandas as pd

    from crm.contract import data_end, read_tables
    from serving.schemas import tables_to_requests

    console.rule("1. simulate a CRM")
    simulate(leads=leads, seed=seed, out=data)
    console.rule("2. train, register (challenger), promote (champion)")
    train(data=data, target="sal", horizon_days=90, seed=seed, as_json=False)
    promote(to=None, force=False, data=None)
    console.rule("3. serve with BentoML and score over HTTP")
    import secrets

    model = _import_served("champion")
    port = free_port()
    token = secrets.token_urlsafe(24)  # a one-off token: the demo server is never open
    proc = start_server(str(model.tag), port, extra_env={"LEADSCORE_API_TOKENS": token})
    try:
        wait_ready(port, proc)
        d = read_tables(data)
        moment = data_end(d) + pd.Timedelta(seconds=1)
        picks = demo_sample(d, sample, seed)
        body = {
            "leads": tables_to_requests(picks, d.accounts, d.events, moment, d.stage_history),
            "as_of": moment.isoformat(),
        }
        r = httpx.post(
            f"http://127.0.0.1:{port}/score",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        if r.status_code != 200:
            raise RuntimeError(f"/score answered {r.status_code}: {r.text[:500]}")
        show_scores(r.json()["scores"], picks)
    finally:
        stop_server(proc)
    console.print(
        "[bold green]demo finished[/]: the service is stopped; `make serve` runs it on port 3000"
    )


def demo_sample(d: Any, n: int, seed: int) -> Any:
    """A mix worth looking at: recent leads with some engagement, MQLs and customers."""
    import pandas as pd

    sh = d.stage_history
    active = d.events["lead_id"].value_counts()
    recent = d.leads.sort_values("created_at").tail(3000)
    engaged = recent[recent["lead_id"].map(active).fillna(0) >= 5]
    mqls = sh.loc[sh["stage"] == "mql", "lead_id"]
    customers = sh.loc[sh["stage"] == "customer", "lead_id"]
    parts = [
        engaged.sample(n=min(n - n // 2, len(engaged)), random_state=seed),
        recent[recent["lead_id"].isin(mqls)].tail(n // 4 or 1),
        d.leads[d.leads["lead_id"].isin(customers)].tail(n // 4 or 1),
    ]
    return pd.concat(parts).drop_duplicates("lead_id").head(n)


def show_scores(scores: list[dict], leads: Any) -> None:
    import pandas as pd

    titles = {
        k: ("-" if pd.isna(v) else str(v))
        for k, v in zip(leads["lead_id"], leads["job_title"], strict=True)
    }
    table = Table(title="scored over HTTP (POST /score)", show_lines=True)
    columns = (
        "lead",
        "job title",
        "p_mql",
        "p_sal",
        "fit",
        "interest",
        "quadrant",
        "segment",
        "phase / next content",
        "top reason",
    )
    for col in columns:
        table.add_column(col)
    for s in scores:
        reasons = s.get("reasons") or []
        top = max(reasons, key=lambda r: abs(r["contribution"]), default=None)
        table.add_row(
            s["lead_id"],
            titles.get(s["lead_id"], "-"),
            f"{s['p_mql']:.2f}" if s.get("p_mql") is not None else "-",
            f"{s['p_sal']:.2f}" if s.get("p_sal") is not None else "-",
            f"{s['fit_score']:.0f}",
            f"{s['interest_score']:.0f}",
            s["quadrant"],
            s.get("segment", ""),
            f"{s.get('content_stage', '')}: {', '.join(s.get('next_content') or [])}",
            f"{'+' if top['contribution'] > 0 else '-'} {top['text']}" if top else "",
        )
    console.print(table)
    model = scores[0]["model"] if scores else {}
    console.print(f"model: {model.get('name')} version {model.get('version')}")


@app.command()
@user_errors
def report(
    data: DataDir,
    out: Annotated[Path, typer.Option(help="Output HTML file")] = Path("report.html"),
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Registry alias or version to score the quadrant mix with (e.g. champion); "
            "none: no quadrants",
        ),
    ] = "none",
    as_of: Annotated[
        str | None, typer.Option(help="Report as of this moment (default: end of the data)")
    ] = None,
) -> None:
    """Write the funnel report: one self-contained HTML page.

    Funnel counts, conversion by month and segment, persona x stage heat map and (with
    --model) the quadrant mix; it opens in a browser without a server or network."""
    from crm.contract import read_tables
    from reports.funnel import write_report
    from serving.model_store import ModelNotFound

    moment = _parse_moment(as_of)
    d = read_tables(data)
    scorer, label, note = None, None, None
    if model.strip().lower() != "none":
        try:
            bento_model = _import_served(model)
        except ModelNotFound as exc:
            note = str(exc)
            err.print(f"[yellow]warning:[/] {exc}; the page shows no quadrant mix")
        else:
            import bentoml

            scorer = scoring_model(bentoml.mlflow.load_model(bento_model))
            labels = bento_model.info.labels
            label = f"{labels.get('mlflow_model')} version {labels.get('mlflow_version')} ({model})"
    with console.status("building the report"):
        rep = write_report(
            out, d, as_of=moment, data_dir=data, model=scorer, model_label=label, model_note=note
        )
    funnel = rep.funnel.set_index("stage")["leads"]
    console.print("funnel: " + ", ".join(f"{s} {n:,}" for s, n in funnel.items()))
    if rep.quadrants is not None:
        console.print(f"quadrants: {rep.quadrants.sum(axis=1).to_dict()}")
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); open it in a browser")


def _parse_moment(as_of: str | None) -> Any:
    import pandas as pd

    if as_of is None:
        return None
    try:
        return pd.Timestamp(as_of)
    except ValueError as exc:
        raise typer.BadParameter(f"not a timestamp: {as_of!r}", param_hint="--as-of") from exc


personas_app = typer.Typer(
    cls=_Commands,
    help="Buyer personas: propose definitions from data.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(personas_app, name="personas")


@personas_app.command("discover")
@user_errors
def personas_discover(
    data: DataDir,
    out: Annotated[Path, typer.Option(help="Output YAML file")] = Path("personas.proposed.yaml"),
    clusters: Annotated[int, typer.Option(min=2, help="Number of clusters (personas)")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed for KMeans")] = 0,
    as_of: Annotated[
        str | None, typer.Option(help="Use events before this moment (default: end of the data)")
    ] = None,
) -> None:
    """Propose persona definitions from data (KMeans over topics and job titles) as YAML."""
    import re

    import pandas as pd
    import yaml
    from rich.markup import escape

    from crm.contract import data_end, read_tables
    from features.persona_discovery import discover_personas

    moment = _parse_moment(as_of)
    d = read_tables(data)
    if moment is None:
        moment = data_end(d) + pd.Timedelta(seconds=1)
    try:
        assignments, text = discover_personas(
            d.leads, d.events, moment, n_clusters=clusters, seed=seed
        )
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    sizes = assignments["cluster"].value_counts()
    table = Table(title=f"proposed personas ({clusters} clusters, as of {moment})")
    for col in ("cluster", "leads", "top topics (weight)", "roles (title words)", "departments"):
        table.add_column(col)
    for p in yaml.safe_load(text)["personas"]:
        roles = [re.sub(r"\\(.)", r"\1", r.replace(r"\b", "")) for r in p["roles"]]
        table.add_row(
            escape(p["name"]),
            f"{int(sizes.get(p['name'], 0)):,}",
            escape(", ".join(f"{t} ({w:.2f})" for t, w in p["topics"].items())),
            escape(", ".join(roles) or "-"),
            escape(", ".join(p["departments"]) or "-"),
        )
    console.print(table)
    console.print(f"wrote {out}; review the topics and roles and rename the clusters before use")


if __name__ == "__main__":
    app()
