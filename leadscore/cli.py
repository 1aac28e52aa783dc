"""The `leadscore` command: one sub-command per verb. The only place that wires the
features, training and serving packages together.

This module assembles the Typer app; the commands live in ``leadscore/commands/`` (one
module per verb group) and what they share (the consoles, the ``user_errors`` decorator,
the option types) in ``leadscore/shared.py``."""

from __future__ import annotations

import click
import typer
from typer.core import TyperGroup

from leadscore.commands import (
    data,
    demo,
    mapping,
    monitor,
    report,
    score,
    serve,
    shadow,
    train,
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


def _group(help: str, **options: object) -> typer.Typer:
    # Plain click help: it wraps long option names, paths and URLs onto the next line;
    # rich's help panels cut them with an ellipsis in an 80-column terminal.
    return typer.Typer(
        cls=_Commands, help=help, no_args_is_help=True, rich_markup_mode=None, **options
    )


app = _group(
    "leadscore: open, explainable, calibrated lead scoring (simulate, train, serve).",
    add_completion=False,
    pretty_exceptions_enable=False,
)
# In the order `leadscore --help` lists them: the path from data to a served model.
app.command()(data.simulate)
app.command("import")(data.import_export)
app.command()(data.validate)
app.command()(train.train)
app.command()(train.tune)
app.command()(train.promote)
app.command()(serve.serve)
app.command()(serve.build)
app.command()(score.score)
app.command()(monitor.monitor)
app.command()(demo.demo)
app.command()(report.report)

mapping_app = _group(
    "Mappings of CRM exports: draft one from an export, print the format's schema."
)
mapping_app.command("init")(mapping.mapping_init)
mapping_app.command("schema")(mapping.mapping_schema)
app.add_typer(mapping_app, name="mapping")

shadow_app = _group(
    "The shadow challenger: a version `serve` scores beside the champion, logged, never "
    "returned; compare them with `promote --evidence shadow`."
)
shadow_app.command("set")(shadow.shadow_set)
shadow_app.command("clear")(shadow.shadow_clear)
app.add_typer(shadow_app, name="shadow")

personas_app = _group("Buyer personas: propose definitions from data.")
personas_app.command("discover")(report.personas_discover)
app.add_typer(personas_app, name="personas")


if __name__ == "__main__":
    app()
