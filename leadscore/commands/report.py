"""Looking at the data: the funnel ``report`` (one self-contained HTML page) and
``personas discover`` (persona definitions proposed from the data, as YAML)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from leadscore.shared import (
    DataDir,
    console,
    err,
    fail,
    import_served,
    parse_moment,
    user_errors,
)
from scoring.registry import load_scoring_model


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

    moment = parse_moment(as_of)
    d = read_tables(data)
    scorer, label, note = _quadrant_model(model)
    with console().status("building the report"):
        rep = write_report(
            out, d, as_of=moment, data_dir=data, model=scorer, model_label=label, model_note=note
        )
    funnel = rep.funnel.set_index("stage")["leads"]
    console().print("funnel: " + ", ".join(f"{s} {n:,}" for s, n in funnel.items()))
    if rep.quadrants is not None:
        console().print(f"quadrants: {rep.quadrants.sum(axis=1).to_dict()}")
    console().print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); open it in a browser")


def _quadrant_model(model: str) -> tuple[Any, str | None, str | None]:
    """(scoring model, its label, a note why there is none) for ``--model``: a registered
    model that cannot be found leaves the page without the quadrant mix, with a warning."""
    from serving.model_store import ModelNotFound

    if model.strip().lower() == "none":
        return None, None, None
    try:
        bento_model = import_served(model)
    except ModelNotFound as exc:
        err().print(f"[yellow]warning:[/] {exc}; the page shows no quadrant mix")
        return None, None, str(exc)
    import bentoml

    scorer = load_scoring_model(
        lambda: bentoml.mlflow.load_model(bento_model), str(bento_model.tag)
    )
    labels = bento_model.info.labels
    label = f"{labels.get('mlflow_model')} version {labels.get('mlflow_version')} ({model})"
    return scorer, label, None


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
    import pandas as pd

    from crm.contract import data_end, read_tables
    from features.persona_discovery import discover_personas

    moment = parse_moment(as_of)
    d = read_tables(data)
    if moment is None:
        moment = data_end(d) + pd.Timedelta(seconds=1)
    try:
        assignments, text = discover_personas(
            d.leads, d.events, moment, n_clusters=clusters, seed=seed
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    _show_personas(text, assignments["cluster"].value_counts(), clusters, moment)
    console().print(f"wrote {out}; review the topics and roles and rename the clusters before use")


def _show_personas(text: str, sizes: Any, clusters: int, moment: Any) -> None:
    """The proposed personas as a table: size, top topics, title words, departments."""
    import yaml
    from rich.markup import escape

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
    console().print(table)
