"""Getting data in: ``simulate`` a CRM, ``import`` an export through a YAML mapping,
``validate`` a data folder against the canonical contract."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from leadscore.shared import DataDir, console, user_errors


@user_errors
def simulate(
    leads: Annotated[
        int, typer.Option("--leads", min=100, help="Number of leads to simulate")
    ] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same data")] = 7,
    out: Annotated[Path, typer.Option(help="Output folder for the Parquet tables")] = Path(
        "data/sim"
    ),
    chunk_leads: Annotated[
        int,
        typer.Option(
            "--chunk-leads",
            min=1,
            help="Leads drawn and written per chunk; memory grows with it. Default 100,000: "
            "up to that many leads are one chunk",
        ),
    ] = 100_000,
) -> None:
    """Simulate a B2B CRM: the four canonical tables plus a ground-truth table."""
    from crm.simulate import write_simulation

    t0 = time.perf_counter()
    with console().status(f"simulating {leads:,} leads"):
        write_simulation(out, n_leads=leads, seed=seed, chunk_leads=chunk_leads)
    console().print(
        f"wrote {out}/ ({leads:,} leads, seed {seed}) in {time.perf_counter() - t0:.1f} s"
    )


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
    console().print(summary.describe())
    console().print(
        f"wrote {out}/; train with: leadscore train --data {out} --target {summary.label_stage}"
    )


@user_errors
def validate(data: DataDir) -> None:
    """Check a data folder against the canonical contract and list every problem."""
    from crm.contract import read_tables

    d = read_tables(data)
    console().print(
        f"ok: {len(d.accounts):,} accounts, {len(d.leads):,} leads, {len(d.events):,} events, "
        f"{len(d.stage_history):,} stage changes"
    )
