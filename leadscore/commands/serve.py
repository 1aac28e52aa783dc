"""Serving the champion: ``serve`` it over HTTP with BentoML (a child process, stopped with
everything it started when this command is asked to stop), or ``build`` a bento that
serves it anywhere with no MLflow server reachable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from leadscore.shared import ModelName, console, err, fail, import_served, user_errors
from scoring.registry import MODEL_NAME
from serving.process import bentoml_bin, port_in_use, run_until_signal, start_server


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
    model_name: ModelName = MODEL_NAME,
    shadow_alias: Annotated[
        str,
        typer.Option(
            "--shadow",
            help="Registry alias of a model scored beside the served one when it exists "
            "(logged, never returned); '' for none",
        ),
    ] = "shadow",
) -> None:
    """Serve the champion model over HTTP with BentoML (POST /score, POST /outcomes,
    GET /model; bearer tokens from LEADSCORE_API_TOKENS or LEADSCORE_API_TOKENS_FILE).
    When the registry has a `shadow` alias, that version is scored beside it."""
    _check_can_serve(host, port, insecure_dev)
    model = import_served(alias, model_name)
    if insecure_dev:
        err().print("[bold yellow]INSECURE DEV MODE: no authentication, anyone can call /score[/]")
    labels = model.info.labels
    console().print(
        f"serving {model.tag} ({alias}: {labels.get('mlflow_model')} version "
        f"{labels.get('mlflow_version')}, MLflow model {labels.get('mlflow_model_id') or '-'}, "
        f"run {labels.get('mlflow_run_id') or '-'}) on http://{host}:{port}"
    )
    env = {"LEADSCORE_INSECURE_DEV": "1"} if insecure_dev else {}
    shadow = _shadow_model(model_name, model, shadow_alias)
    if shadow is not None:
        env["LEADSCORE_SHADOW_MODEL"] = str(shadow.tag)
    proc = start_server(str(model.tag), port, host, env or None)
    sys.exit(run_until_signal(proc, say=err().print))


def _shadow_model(model_name: str, served: Any, alias: str) -> Any:
    """The shadow to score beside the served model: the registry's ``alias`` (`shadow`)
    imported into the BentoML store, or None (no such alias, or it is the served model)."""
    from serving.model_store import ModelNotFound

    if not alias:
        return None
    try:
        shadow = import_served(alias, model_name)
    except ModelNotFound:
        return None
    labels = shadow.info.labels
    if shadow.tag == served.tag:
        err().print(f"the `{alias}` alias points at the served version: no shadow")
        return None
    console().print(
        f"shadow {shadow.tag} ({alias}: version {labels.get('mlflow_version')}): scored on "
        "every request beside it, logged to shadow_predictions, never returned"
    )
    return shadow


def _check_can_serve(host: str, port: int, insecure_dev: bool) -> None:
    """Refuse, before loading a model, to serve without tokens (unless --insecure-dev on a
    loopback address) or on a port that is taken."""
    from serving.auth import is_loopback, load_tokens

    if insecure_dev and not is_loopback(host):
        raise fail(
            f"--insecure-dev serves without authentication and is allowed "
            f"on a loopback address only (127.0.0.1, ::1, localhost), not --host {host}"
        )
    try:
        has_tokens = bool(load_tokens())
    except ValueError as e:
        raise fail(str(e)) from None
    if not insecure_dev and not has_tokens:
        raise fail(
            "no API tokens: set LEADSCORE_API_TOKENS (comma-separated) or "
            "LEADSCORE_API_TOKENS_FILE, or pass --insecure-dev on a laptop"
        )
    busy = port_in_use(host, port)
    if busy is not None:
        raise fail(
            f"cannot listen on {host}:{port}: {busy}. Another server (or "
            f"a leftover worker of one) may be using it: find it with `ss -ltnp 'sport = "
            f":{port}'`, stop it, or pass another --port"
        )


@user_errors
def build(
    alias: Annotated[str, typer.Option(help="Registry alias or version to package")] = "champion",
    model_name: ModelName = MODEL_NAME,
) -> None:
    """Import the champion from the MLflow registry into the BentoML model store and build a
    bento with bentofile.yaml: it serves with no MLflow server reachable, and always the model
    it was built with (pinned as the bento argument `model`, see serving/bento_entry.py)."""
    from serving.model_store import BENTO_MODEL_ARGUMENT

    model = import_served(alias, model_name)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "LEADSCORE_BENTO_MODEL": str(model.tag)}
    cmd = [bentoml_bin(), "build", "-f", str(root / "bentofile.yaml"), "--output", "tag"]
    cmd += ["--arg", f"{BENTO_MODEL_ARGUMENT}={model.tag}", str(root)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise fail(f"bentoml build failed:\n{proc.stderr[-3000:]}")
    tag = proc.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    console().print(f"built {tag} with model {model.tag} ({alias}); serve it with")
    console().print(f"  LEADSCORE_API_TOKENS=... bentoml serve {tag}")
