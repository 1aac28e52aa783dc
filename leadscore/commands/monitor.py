"""``leadscore monitor``: is the served model still right? Its answers in the prediction
log against the reference statistics it was trained with (drift per feature and per score,
by day or week), and against the outcomes the CRM reported (realised calibration and ROC
AUC); alerts in plain words. Writes an HTML page, prints JSON with ``--json``, and logs
both to MLflow as a monitoring run of the model's experiment."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from leadscore.shared import ModelName, console, fail, parse_moment, user_errors
from scoring.registry import MODEL_NAME

DEFAULT_DB = "sqlite:///leadscore-predictions.db"

Db = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="LEADSCORE_DB_URL",
        help="Database URL of the prediction log, as the service writes it (LEADSCORE_DB_URL), "
        "e.g. sqlite:///leadscore-predictions.db or postgresql+psycopg://host/db",
    ),
]


def _moment(value: str | None, option: str) -> Any:
    try:
        moment = parse_moment(value)
    except typer.BadParameter as e:
        raise typer.BadParameter(str(e), param_hint=option) from None
    if moment is not None and moment.tzinfo is not None:
        moment = moment.tz_convert("UTC").tz_localize(None)
    return None if moment is None else moment.to_pydatetime()


def _resolve(model_name: str, ref: str) -> tuple[Any, str]:
    """The registered model of an alias or version, and its version number."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from scoring.registry import load_registered

    try:
        version = (
            ref
            if ref.isdigit()
            else MlflowClient().get_model_version_by_alias(model_name, ref).version
        )
        return load_registered(model_name, str(version)), str(version)
    except MlflowException as e:
        raise fail(f"no model {model_name} {ref} in the MLflow registry: {e.message}") from None


def _read(db: str, model_name: str, version: str, since: Any, until: Any) -> Any:
    import sqlalchemy as sa

    from serving.predlog.store import Store, StoreUnavailableError
    from serving.predlog.traffic import read_traffic

    try:
        url = sa.engine.make_url(db)
    except sa.exc.ArgumentError:
        raise fail(f"--db {db!r} is not a database URL") from None
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        raise fail(f"no prediction log at {url.database}: pass --db (or LEADSCORE_DB_URL)")
    try:
        store = Store(url)
        return read_traffic(store, model_name, version, since, until)
    except StoreUnavailableError as e:
        raise fail(f"could not read the prediction log: {e}") from None
    except ValueError as e:
        raise fail(f"--db: {e}") from None


def _log_to_mlflow(model_name: str, version: str, report: Any, page: str) -> str:
    """A monitoring run in the model's experiment with the page, the JSON and the figures."""
    import mlflow

    from training.tracking import experiment_for, use_store

    use_store(experiment_for(model_name))
    tags = {
        "leadscore.run_kind": "monitoring",
        "model_kind": "monitoring",
        "model_name": model_name,
        "model_version": version,
        "alerts": str(len(report.alerts)),
    }
    with mlflow.start_run(run_name=f"monitor-v{version}-{report.period}", tags=tags) as run:
        mlflow.log_dict(report.to_dict(), "monitor/monitor.json")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "monitor.html"
            path.write_text(page, encoding="utf-8")
            mlflow.log_artifact(str(path), "monitor")
        g = report.gauges()
        metrics = {"alerts": g["alerts"], "leads": g["leads"]}
        if g["realised_auc"] is not None:
            metrics["realised_roc_auc"] = g["realised_auc"]
        metrics.update({f"psi_{k}": v for k, v in g["feature_psi"].items()})
        mlflow.log_metrics(metrics)
    return run.info.run_id


@user_errors
def monitor(
    db: Db = DEFAULT_DB,
    alias: Annotated[
        str, typer.Option(help="Registry alias or version whose answers to monitor")
    ] = "champion",
    period: Annotated[str, typer.Option(help="Drift per day or per week")] = "week",
    since: Annotated[
        str | None, typer.Option(help="From this moment (scored as of; default: all)")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Until this moment (excluded)")] = None,
    out: Annotated[Path, typer.Option("--out", help="Where to write the HTML page")] = Path(
        "monitor.html"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    log_mlflow: Annotated[
        bool, typer.Option("--mlflow/--no-mlflow", help="Log the page and JSON to MLflow")
    ] = True,
    model_name: ModelName = MODEL_NAME,
) -> None:
    """Monitor the served model: drift of its features and scores against the training
    data by day or week, unknown categories, volume, and once outcomes have arrived its
    realised calibration and ROC AUC; alerts in plain words (HTML page, --json, MLflow)."""
    from monitoring import MissingReference, monitor_model
    from monitoring.page import render
    from training.tracking import experiment_for, use_store

    if period not in ("day", "week"):
        raise typer.BadParameter("use day or week", param_hint="--period")
    start, end = _moment(since, "--since"), _moment(until, "--until")
    use_store(experiment_for(model_name))
    model, version = _resolve(model_name, alias)
    traffic = _read(db, model_name, version, start, end)
    if traffic.predictions.empty:
        raise fail(
            f"no answers of {model_name} version {version} in the prediction log {db}"
            + (" in that time range" if since or until else "")
        )
    try:
        report = monitor_model(
            model, traffic, model_name=model_name, model_version=version, period=period
        )
    except MissingReference as e:
        raise fail(str(e)) from None
    page = render(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    run_id = _log_to_mlflow(model_name, version, report, page) if log_mlflow else None
    if as_json:
        print(json.dumps({**report.to_dict(), "page": str(out), "mlflow_run_id": run_id}))
        return
    _show(report, out, run_id)


def _show(report: Any, out: Path, run_id: str | None) -> None:
    c = console()
    c.print(
        f"{report.model_name} version {report.model_version}: "
        f"{sum(report.volume.values()):,} answers from {report.date_from} to "
        f"{report.date_to}, {report.outcomes_known:,} with a known outcome"
    )
    if report.alerts:
        c.print(f"[bold red]{len(report.alerts)} alert(s):[/]")
        for a in report.alerts:
            c.print(f"  - {a}", markup=False, highlight=False)
    else:
        c.print("[green]no alert[/]: nothing crossed a threshold")
    c.print(f"page: {out}" + (f"; MLflow run {run_id}" if run_id else ""))
