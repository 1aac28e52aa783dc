"""Where MLflow keeps things: the tracking URI, the experiment and its artifact folder.

Nothing happens at import time; callers ask for the store explicitly.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow

from scoring.registry import MODEL_NAME

EXPERIMENT = "leadscore"
DEFAULT_STORE = Path("mlruns")


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the SQLite store under ./mlruns."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    DEFAULT_STORE.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(DEFAULT_STORE / 'mlflow.db').resolve()}"


def artifact_root(uri: str) -> str | None:
    """Artifacts live next to a SQLite store (``<dir>/artifacts``); other stores decide."""
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        return (db.parent / "artifacts").resolve().as_uri()
    return None


def experiment_for(model_name: str) -> str:
    """The MLflow experiment of a registered model: the default one for the default name,
    else the name itself (one data set, one name, one experiment)."""
    return EXPERIMENT if model_name == MODEL_NAME else model_name


def use_store(experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the store and experiment; returns the experiment id."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = mlflow.get_experiment_by_name(experiment)
    experiment_id = (
        mlflow.create_experiment(experiment, artifact_location=artifact_root(uri))
        if exp is None
        else exp.experiment_id
    )
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def git_commit() -> str:
    """The commit of the working tree, with ``-dirty`` when there are local changes."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class _DropPickleNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "serialized using CloudPickle" not in record.getMessage()


@contextmanager
def quiet_pickle_notice() -> Iterator[None]:
    """Drop MLflow's per-call notice that a Python-object model is cloudpickled. The model
    is a pickled ``scoring.model`` object on purpose (one code path for training, batch
    and serving); load models only from a store you trust, as the README says. Every
    other MLflow message still shows."""
    logger = logging.getLogger("mlflow.pyfunc")
    notice = _DropPickleNotice()
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)
