"""What every command module shares: the two consoles (results on stdout, progress and
errors on stderr), the ``user_errors`` decorator that turns known failures into one clear
message and exit code 2, and the option types several commands take (``--data``,
``--model-name``, ``--as-of``), plus the look-up of a registered model to serve or score."""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from scoring.registry import MODEL_NAME

F = TypeVar("F", bound=Callable[..., Any])


# The consoles are made at first use, not at import: rich reads the environment (COLUMNS,
# NO_COLOR, TERM, ...) when a Console is created.
@functools.cache
def console() -> Console:
    """Results, on stdout; 160 columns wide when stdout is not a terminal (a log, a pipe)."""
    return Console(width=None if sys.stdout.isatty() else 160)


@functools.cache
def err() -> Console:
    """Progress, warnings and errors, on stderr (a script reading stdout never sees them)."""
    return Console(stderr=True, soft_wrap=True)


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error; the exit (code 2) for the caller to raise."""
    err().print(f"[bold red]error:[/] {message}")
    return typer.Exit(2)


def user_errors(fn: F) -> F:
    """Known failures become one clear message and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from crm.contract import DataContractError
        from crm.importer import ImportDataError, ImportOutputError, MappingError
        from features.config import ConfigError
        from scoring.registry import NotALeadScoringModel
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
            NotALeadScoringModel,
            FileNotFoundError,
        )
        try:
            return fn(*args, **kwargs)
        except known as exc:
            raise fail(str(exc)) from None

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


def parse_moment(as_of: str | None) -> Any:
    """``--as-of`` as a timestamp (None: not given); a usage error when it is not one."""
    import pandas as pd

    if as_of is None:
        return None
    try:
        return pd.Timestamp(as_of)
    except ValueError as exc:
        raise typer.BadParameter(f"not a timestamp: {as_of!r}", param_hint="--as-of") from exc


def import_served(alias: str, model_name: str = MODEL_NAME) -> Any:
    """The registered model ``alias`` (or version) of ``model_name``, imported from the
    MLflow registry into the BentoML model store (the store is what serves and scores)."""
    from serving.model_store import import_registered
    from training.tracking import tracking_uri

    return import_registered(model_name, alias, tracking_uri())
