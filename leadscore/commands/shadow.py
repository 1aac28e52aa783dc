"""The shadow challenger: ``shadow set VERSION`` points the registry alias `shadow` at a
version, which `leadscore serve` then scores beside the champion on every request (logged,
never returned: serving/shadow.py); ``shadow clear`` removes it. ``promote --evidence
shadow`` (in train.py) reads the evidence gathered here: :func:`shadow_evidence`."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.table import Table

from leadscore.shared import ModelName, console, fail, user_errors
from scoring.registry import MODEL_NAME

Version = Annotated[str, typer.Argument(help="Registered version to score in the shadow")]


@user_errors
def shadow_set(version: Version, model_name: ModelName = MODEL_NAME) -> None:
    """Point the alias `shadow` at VERSION: `leadscore serve` scores it beside the champion
    on every request, logs its answers to shadow_predictions and never returns them."""
    from training.registry import RegistryError, describe_version, set_shadow, version_for

    if not version.isdigit():
        raise typer.BadParameter("a version number, e.g. 3", param_hint="VERSION")
    try:
        champion = version_for("champion", model_name)
    except RegistryError:
        champion = None
    if champion == version:
        raise fail(f"version {version} is the champion: a shadow is a different model")
    before = set_shadow(version, model_name)
    console().print(f"shadow: {model_name} version {before or '-'} -> {version}")
    console().print(f"  {describe_version(version, model_name)}")
    console().print(
        "a running `leadscore serve` keeps what it loaded: restart it to score the shadow"
    )


@user_errors
def shadow_clear(model_name: ModelName = MODEL_NAME) -> None:
    """Remove the alias `shadow`: `leadscore serve` scores the champion only."""
    from training.registry import clear_shadow

    before = clear_shadow(model_name)
    if before is None:
        console().print(f"{model_name} has no shadow: nothing to clear")
        return
    console().print(f"shadow cleared ({model_name} version {before} is no longer scored)")
    console().print("a running `leadscore serve` keeps its shadow until it is restarted")


def default_db_url() -> str | None:
    """The prediction log the service writes: LEADSCORE_DB_URL, else its SQLite default."""
    return os.environ.get("LEADSCORE_DB_URL") or None


def shadow_evidence(model_name: str, db_url: str | None, min_leads: int) -> Any:
    """The champion and the shadow on the live leads with outcomes (paired), read from the
    prediction log at ``db_url``: a :class:`training.shadow_evidence.ShadowEvidence` and
    the two versions."""
    from mlflow.tracking import MlflowClient

    from serving.outcomes import shadow_pairs
    from serving.predlog import PredictionLog, StoreUnavailableError
    from training.registry import RegistryError, version_for
    from training.shadow_evidence import paired_evidence

    champion = version_for("champion", model_name)
    try:
        shadow = version_for("shadow", model_name)
    except RegistryError:
        raise fail(
            f"{model_name} has no shadow: set one with `leadscore shadow set VERSION`, serve "
            "it, and come back when outcomes have arrived"
        ) from None
    if shadow == champion:
        raise fail(f"the shadow is the champion (version {champion}): nothing to compare")
    client = MlflowClient()
    targets = {
        v: (client.get_model_version(model_name, v).tags or {}).get("target")
        for v in (champion, shadow)
    }
    if targets[champion] and targets[shadow] and targets[champion] != targets[shadow]:
        raise fail(
            f"the champion predicts {targets[champion]!r}, the shadow {targets[shadow]!r}: "
            "they cannot be compared on the same outcomes"
        )
    target = targets[champion] or targets[shadow] or "sal"
    # reading needs no lead-key secret: the rows are joined on the stored keys
    try:
        log = PredictionLog(db_url, secret=b"x" * 32)
        try:
            preds = log.read_predictions()
            shadows, outcomes = log.read_shadow_predictions(), log.read_outcomes()
        finally:
            log.close()
    except (StoreUnavailableError, ValueError) as e:
        raise fail(f"--db: cannot read the prediction log: {e}") from None
    pairs = shadow_pairs(
        preds, shadows, outcomes, target, (model_name, champion), (model_name, shadow)
    )
    evidence = paired_evidence(
        pairs["y"].to_numpy(),
        pairs["p_champion"].to_numpy(),
        pairs["p_shadow"].to_numpy(),
        min_leads=min_leads,
    )
    return evidence, champion, shadow, target, log.url


def show_evidence(evidence: Any, champion: str, shadow: str, target: str, where: str) -> None:
    """The paired comparison as a table, then the rule's verdict."""
    if not evidence.difference:
        console().print(f"live evidence ({where}): {evidence.reason}")
        return
    console().print(
        f"shadow v{shadow} vs champion v{champion} on {evidence.n_leads} live leads with "
        f"outcomes ({evidence.n_converted} reached {target}), paired:"
    )
    table = Table(title="shadow vs champion, live outcomes")
    for column in ("metric", f"champion v{champion}", f"shadow v{shadow}", "shadow - champion",
                   "95 % interval"):  # fmt: skip
        table.add_column(column, justify="left" if column == "metric" else "right")
    for m, (d, low, high) in evidence.difference.items():
        table.add_row(
            m,
            f"{evidence.champion[m]:.4f}",
            f"{evidence.shadow[m]:.4f}",
            f"{d:+.4f}",
            f"[{low:+.4f}, {high:+.4f}]",
        )
    console().print(table)
    console().print(f"live evidence: {evidence.reason}")
