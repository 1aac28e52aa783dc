"""``leadscore demo``: the whole path in one command, for a first look: simulate a CRM,
train, promote, serve with BentoML, score a few sample leads over HTTP, stop the server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from leadscore.commands.data import simulate
from leadscore.commands.train import promote, train
from leadscore.shared import console, import_served, user_errors
from serving.process import free_port, start_server, stop_server, wait_ready


@user_errors
def demo(
    leads: Annotated[int, typer.Option("--leads", help="Leads to simulate")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed")] = 7,
    data: Annotated[Path, typer.Option(help="Folder for the simulated CRM")] = Path("data/demo"),
    sample: Annotated[int, typer.Option(help="Leads to score over HTTP")] = 8,
) -> None:
    """Simulate, train, register, promote, serve, score sample leads over HTTP, stop."""
    console().rule("1. simulate a CRM")
    simulate(leads=leads, seed=seed, out=data)
    console().rule("2. train, register (challenger), promote (champion)")
    train(data=data, target="sal", horizon_days=90, seed=seed, as_json=False)
    promote(to=None, force=False, data=None)
    console().rule("3. serve with BentoML and score over HTTP")
    scores, picks = _score_over_http(data, sample, seed)
    show_scores(scores, picks)
    console().print(
        "[bold green]demo finished[/]: the service is stopped; `make serve` runs it on port 3000"
    )


def _score_over_http(data: Path, sample: int, seed: int) -> tuple[list[dict], Any]:
    """Serve the champion on a free port with a one-off token, POST /score a sample of the
    leads in ``data``, stop the server; the answers and the leads sampled."""
    import secrets

    import httpx
    import pandas as pd

    from crm.contract import data_end, read_tables
    from serving.schemas import tables_to_requests

    model = import_served("champion")
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
        return r.json()["scores"], picks
    finally:
        stop_server(proc)


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


SCORE_COLUMNS = (
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


def show_scores(scores: list[dict], leads: Any) -> None:
    """The answers of POST /score as a table: one row per lead, its top reason in words."""
    import pandas as pd

    titles = {
        k: ("-" if pd.isna(v) else str(v))
        for k, v in zip(leads["lead_id"], leads["job_title"], strict=True)
    }
    table = Table(title="scored over HTTP (POST /score)", show_lines=True)
    for col in SCORE_COLUMNS:
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
    console().print(table)
    model = scores[0]["model"] if scores else {}
    console().print(f"model: {model.get('name')} version {model.get('version')}")
