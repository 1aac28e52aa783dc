"""The `leadscore` command: one sub-command per verb. The only place that wires the
features, training and serving packages together."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="leadscore: open, explainable, calibrated lead scoring (simulate, train, serve).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Known failures become one clear message and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from features.contract import DataContractError
        from serving.model_store import ModelNotFound
        from training.dataset import TrainingDataError
        from training.registry import RegistryError

        try:
            return fn(*args, **kwargs)
        except (DataContractError, TrainingDataError, RegistryError, ModelNotFound) as exc:
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None
        except FileNotFoundError as exc:
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


DataDir = Annotated[
    Path, typer.Option("--data", help="Folder with accounts/leads/events/stage_history.parquet")
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
    from features.simulate import write_simulation

    t0 = time.perf_counter()
    with console.status(f"simulating {leads:,} leads"):
        write_simulation(out, n_leads=leads, seed=seed)
    console.print(
        f"wrote {out}/ ({leads:,} leads, seed {seed}) in {time.perf_counter() - t0:.1f} s"
    )


@app.command()
@user_errors
def validate(data: DataDir) -> None:
    """Check a data folder against the canonical contract and list every problem."""
    from features.contract import read_tables

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
) -> None:
    """Train on a time split, log to MLflow, register the model and alias it `challenger`."""
    from training.train import train as run_training

    progress = (lambda m: None) if as_json else (lambda m: err.print(f"[dim]- {m}[/]"))
    result = run_training(
        data, target=target, horizon_days=horizon_days, seed=seed, progress=progress
    )
    if as_json:
        print(
            json.dumps(
                {
                    "model": result.model_name,
                    "version": result.model_version,
                    "run_id": result.run_id,
                    "target": result.target,
                    **result.metrics,
                }
            )
        )
        return
    table = Table(
        title=f"holdout metrics, target {target} "
        f"(model {result.model_name} v{result.model_version})"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in result.metrics.items():
        table.add_row(k, f"{v:.4f}" if not k.startswith("n_") else f"{v:.0f}")
    console.print(table)
    if "ceiling_roc_auc" in result.metrics:
        console.print(
            f"ROC AUC {result.metrics['roc_auc']:.3f} vs the simulator's true probabilities "
            f"{result.metrics['ceiling_roc_auc']:.3f} on the same holdout (the ceiling)"
        )
    console.print(f"registered {result.model_name} version {result.model_version} as `challenger`")


@app.command()
@user_errors
def promote(
    to: Annotated[
        str | None, typer.Option("--to", help="Version to point `champion` at (rollback)")
    ] = None,
) -> None:
    """Point the `champion` alias at the challenger (or at --to VERSION)."""
    from training.registry import promote as do_promote

    p = do_promote(to_version=to)
    console.print(f"champion: {p.model_name} version {p.from_version or '-'} -> {p.to_version}")


def _import_served(alias: str) -> Any:
    from serving.model_store import import_registered
    from training.tracking import MODEL_NAME, tracking_uri

    return import_registered(MODEL_NAME, alias, tracking_uri())


def _bentoml_bin() -> str:
    here = Path(sys.executable).parent / "bentoml"
    return str(here) if here.exists() else "bentoml"


def start_server(
    tag: str, port: int, host: str = "127.0.0.1", extra_env: dict | None = None
) -> subprocess.Popen:
    """Start `bentoml serve` for the service with the given BentoML model tag."""
    env = {**os.environ, "LEADSCORE_BENTO_MODEL": tag, **(extra_env or {})}
    return subprocess.Popen(
        [
            _bentoml_bin(),
            "serve",
            "serving.service:LeadScoringService",
            "--host",
            host,
            "--port",
            str(port),
        ],
        env=env,
        start_new_session=True,
    )


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the service exited with code {proc.returncode} before it was ready"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the service was not ready on port {port} after {timeout:.0f} s")


def stop_server(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@app.command()
@user_errors
def serve(
    port: Annotated[int, typer.Option(help="Port to listen on")] = 3000,
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    alias: Annotated[str, typer.Option(help="Registry alias or version to serve")] = "champion",
) -> None:
    """Serve the champion model over HTTP with BentoML (POST /score)."""
    model = _import_served(alias)
    console.print(f"serving {model.tag} ({alias}) on http://{host}:{port}")
    proc = start_server(str(model.tag), port, host)
    try:
        sys.exit(proc.wait())
    except KeyboardInterrupt:
        stop_server(proc)


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
) -> None:
    """Batch-score every lead in a data folder with the same code path as the HTTP service."""
    import pandas as pd
    from rich.progress import Progress

    from features.contract import read_tables
    from serving.scoring import score_batch
    from training.dataset import data_end

    bento_model = _import_served(alias)
    import bentoml

    model = bentoml.mlflow.load_model(bento_model).unwrap_python_model().model
    d = read_tables(data)
    moment = pd.Timestamp(as_of) if as_of else data_end(d) + pd.Timedelta(seconds=1)
    with Progress(console=err) as bar:
        task = bar.add_task("scoring", total=len(d.leads))
        answers = score_batch(
            model, d.leads, d.accounts, d.events, moment, chunk_size, lambda n: bar.advance(task, n)
        )
    labels = bento_model.info.labels
    answers = answers.reset_index()
    answers["model_name"] = labels.get("mlflow_model")
    answers["model_version"] = labels.get("mlflow_version")
    answers["as_of"] = moment
    out.parent.mkdir(parents=True, exist_ok=True)
    answers.to_parquet(out, index=False)
    console.print(f"scored {len(answers):,} leads as of {moment} -> {out}")
    console.print(answers["quadrant"].value_counts().to_string())


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

    from features.contract import read_tables
    from serving.schemas import tables_to_requests
    from training.dataset import data_end

    console.rule("1. simulate a CRM")
    simulate(leads=leads, seed=seed, out=data)
    console.rule("2. train, register (challenger), promote (champion)")
    train(data=data, target="sal", horizon_days=90, seed=seed, as_json=False)
    promote(to=None)
    console.rule("3. serve with BentoML and score over HTTP")
    model = _import_served("champion")
    port = free_port()
    proc = start_server(str(model.tag), port)
    try:
        wait_ready(port, proc)
        d = read_tables(data)
        moment = data_end(d) + pd.Timedelta(seconds=1)
        recent = d.leads.sort_values("created_at").tail(400)
        picks = recent.sample(n=min(sample, len(recent)), random_state=seed)
        body = {
            "leads": tables_to_requests(picks, d.accounts, d.events, moment),
            "as_of": moment.isoformat(),
        }
        r = httpx.post(f"http://127.0.0.1:{port}/score", json=body, timeout=60)
        if r.status_code != 200:
            raise RuntimeError(f"/score answered {r.status_code}: {r.text[:500]}")
        show_scores(r.json()["scores"], picks)
    finally:
        stop_server(proc)
    console.print(
        "[bold green]demo finished[/]: the service is stopped; `make serve` runs it on port 3000"
    )


def show_scores(scores: list[dict], leads: Any) -> None:
    titles = dict(zip(leads["lead_id"], leads["job_title"], strict=True))
    table = Table(title="scored over HTTP (POST /score)")
    for col in ("lead_id", "job title", "p_convert", "fit", "interest", "quadrant", "model"):
        table.add_column(col)
    for s in scores:
        table.add_row(
            s["lead_id"],
            str(titles.get(s["lead_id"], "")),
            f"{s['p_convert']:.3f}",
            f"{s['fit_score']:.0f}",
            f"{s['interest_score']:.0f}",
            s["quadrant"],
            f"{s['model']['name']} v{s['model']['version']}",
        )
    console.print(table)


if __name__ == "__main__":
    app()
