"""`--help` reads whole in an 80-column terminal: no option name, path or sentence is cut
with an ellipsis (rich's help panels did that), and the command list shows each command's
whole first sentence (click would cut it with '...')."""

from __future__ import annotations

import click
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from leadscore.cli import app


def _paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            out += _paths(cmd, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


COMMANDS = _paths(get_command(app))  # type: ignore[arg-type]


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(w) or "leadscore")
def test_help_is_not_cut_at_80_columns(words):
    res = CliRunner().invoke(app, [*words, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    body = [line for line in res.output.splitlines() if not line.startswith("Usage:")]
    assert not [line for line in body if "…" in line or line.endswith("...")]
    assert max(len(line) for line in res.output.splitlines()) <= 80


def test_train_help_shows_whole_option_names_and_paths():
    res = CliRunner().invoke(app, ["train", "--help"], terminal_width=80, env={"COLUMNS": "80"})
    text = " ".join(res.output.split())
    assert "--calibration-prior" in text
    assert "accounts/leads/events/stage_history.parquet" in text
    assert "training/selection.py" in text
