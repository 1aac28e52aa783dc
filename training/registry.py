"""Registry aliases: ``challenger`` is what training registered last, ``champion`` is served.

Promotion is gated: challenger and champion are scored on the same latest time holdout
(snapshots rebuilt from the challenger's data, features computed with each model's own
feature config), and ``champion`` moves only if the challenger is not worse beyond the
tolerances below. ``--to VERSION`` rolls back without a gate; ``force`` skips the gate and
is recorded as forced. Every decision is an MLflow run (tagged ``model_kind=promotion``)
and tags on the challenger's model version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from training.tracking import MODEL_NAME, use_store

# The challenger may lose at most this much ROC AUC and gain at most this much ECE.
AUC_TOLERANCE = 0.01
ECE_TOLERANCE = 0.01


class RegistryError(RuntimeError):
    """The registry does not hold what was asked for (no model, no such alias or version)."""


@dataclass(frozen=True)
class Promotion:
    model_name: str
    from_version: str | None
    to_version: str
    forced: bool = False
    accepted: bool = True
    reason: str = ""
    # {"challenger": {"roc_auc": .., "ece": ..}, "champion": {...}} on the same holdout
    comparison: dict[str, dict[str, float]] = field(default_factory=dict)
    kind: str = "promotion"  # promotion | rollback | first | forced | unchanged


def describe_version(version: str, model_name: str = MODEL_NAME) -> str:
    """One line on what a registered version is: target, data, when it was registered and
    its own holdout figures (from the tags ``train`` sets), for promotion and rollback."""
    use_store()
    mv = MlflowClient().get_model_version(model_name, version)
    tags = mv.tags or {}
    when = pd.Timestamp(mv.creation_timestamp, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")
    figures = ", ".join(
        f"{label} {tags[f'holdout_{key}']}"
        for key, label in (("roc_auc", "ROC AUC"), ("ece", "ECE"))
        if f"holdout_{key}" in tags
    )
    parts = [
        f"target {tags.get('target', '?')}",
        f"data {tags.get('data_dir', '?')}",
        f"registered {when} UTC",
        *([f"own holdout {figures}"] if figures else []),
    ]
    return f"version {version}: " + ", ".join(parts)


def version_for(alias: str, model_name: str = MODEL_NAME) -> str:
    """The version number an alias points to, or a clear error."""
    use_store()
    client = MlflowClient()
    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as exc:
        raise RegistryError(
            f"no version of model {model_name!r} has the alias {alias!r}; "
            "run `leadscore train` (and `leadscore promote`) first"
        ) from exc


def load_version(model_name: str, version: str) -> Any:
    """The LeadScoringModel inside a registered version (our own registry only)."""
    pyfunc = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    return pyfunc.unwrap_python_model().model


def holdout_comparison(
    models: dict[str, Any], data_dir: str | Path, target: str, horizon_days: int
) -> dict[str, dict[str, float]]:
    """ROC AUC, ECE, log loss and Brier of each model on the latest time holdout of
    ``data_dir`` for ``target``; features computed with each model's own config."""
    from features.contract import read_tables
    from training.dataset import build_training_set, snapshot_features
    from training.evaluate import binary_metrics

    data = read_tables(Path(data_dir))
    first = next(iter(models.values()))
    ts = build_training_set(data, target, horizon_days, first.feature_config)
    hold = ts.split().holdout
    y = ts.y[hold]
    # the training set's features already are the first model's; others computed once
    # per distinct feature config
    features = {first.feature_config: ts.X.iloc[hold]}
    out = {}
    for name, model in models.items():
        config = model.feature_config
        if config not in features:
            features[config] = snapshot_features(
                data, ts.as_of.iloc[hold], ts.age_days[hold], config
            )
        scored = model.score(features[config])
        col = f"p_{target}" if f"p_{target}" in scored.columns else None
        if col is None:
            raise RegistryError(f"the {name} model does not predict {target!r}")
        m = binary_metrics(y, scored[col].to_numpy())
        out[name] = {k: m[k] for k in ("roc_auc", "ece", "log_loss", "brier")}
        out[name]["n_holdout"] = float(len(y))
    return out


def gate(comparison: dict[str, dict[str, float]]) -> tuple[bool, str]:
    """Accept unless the challenger is worse than the champion beyond a tolerance."""
    ch, cp = comparison["challenger"], comparison["champion"]
    auc_drop = cp["roc_auc"] - ch["roc_auc"]
    ece_rise = ch["ece"] - cp["ece"]
    problems = []
    if auc_drop > AUC_TOLERANCE:
        problems.append(f"ROC AUC drops by {auc_drop:.4f} (> {AUC_TOLERANCE})")
    if ece_rise > ECE_TOLERANCE:
        problems.append(f"ECE rises by {ece_rise:.4f} (> {ECE_TOLERANCE})")
    if problems:
        return False, "; ".join(problems)
    return True, (
        f"ROC AUC change {0.0 - auc_drop:+.4f}, ECE change {ece_rise:+.4f} within tolerance "
        f"(AUC drop <= {AUC_TOLERANCE}, ECE rise <= {ECE_TOLERANCE})"
    )


def _record(p: Promotion) -> None:
    """The decision as an MLflow run and as tags on the challenger's version."""
    client = MlflowClient()
    with mlflow.start_run(run_name=f"promotion-v{p.to_version}"):
        mlflow.set_tags(
            {
                "model_kind": "promotion",
                "decision": "accepted" if p.accepted else "refused",
                "promotion_kind": p.kind,
                "forced": str(p.forced).lower(),
                "reason": p.reason[:5000],
            }
        )
        mlflow.log_params(
            {
                "model_name": p.model_name,
                "from_version": p.from_version or "-",
                "to_version": p.to_version,
                "auc_tolerance": AUC_TOLERANCE,
                "ece_tolerance": ECE_TOLERANCE,
            }
        )
        for who, m in p.comparison.items():
            mlflow.log_metrics({f"{who}_{k}": v for k, v in m.items()})
    tags = {
        "promotion_decision": "accepted" if p.accepted else "refused",
        "promotion_kind": p.kind,
        "promotion_forced": str(p.forced).lower(),
        "promotion_reason": p.reason[:5000],
    }
    for k, v in tags.items():
        client.set_model_version_tag(p.model_name, p.to_version, k, v)


def promote(
    model_name: str = MODEL_NAME,
    to_version: str | None = None,
    force: bool = False,
    data_dir: str | Path | None = None,
) -> Promotion:
    """Point ``champion`` at the challenger if it passes the gate (or at ``to_version``,
    a rollback). Returns the decision; ``accepted`` False means champion is unchanged."""
    use_store()
    client = MlflowClient()
    try:
        current = str(client.get_model_version_by_alias(model_name, "champion").version)
    except MlflowException:
        current = None
    target_version = to_version or version_for("challenger", model_name)
    try:
        mv = client.get_model_version(model_name, target_version)
    except MlflowException as exc:
        raise RegistryError(f"model {model_name!r} has no version {target_version}") from exc

    if to_version is not None:
        p = Promotion(model_name, current, target_version, force, True, "rollback (--to)",
                      kind="rollback")  # fmt: skip
    elif current is None:
        p = Promotion(model_name, None, target_version, force, True,
                      "first promotion: no champion yet", kind="first")  # fmt: skip
    elif current == target_version:
        p = Promotion(model_name, current, target_version, force, True,
                      "challenger is already the champion", kind="unchanged")  # fmt: skip
    else:
        tags = mv.tags or {}
        source = data_dir or tags.get("data_dir")
        if source is None:
            raise RegistryError(
                f"version {target_version} does not record its data; pass --data DIR"
            )
        p = _challenge(model_name, current, target_version, source, force)
    if p.accepted:
        client.set_registered_model_alias(model_name, "champion", p.to_version)
    _record(p)
    return p


def _challenge(
    model_name: str, current: str, target_version: str, source: str | Path, force: bool
) -> Promotion:
    """The gate's decision on the challenger against the champion, on the latest time
    holdout of ``source`` (``--force`` turns a refusal into a logged forced promotion)."""
    challenger = load_version(model_name, target_version)
    champion = load_version(model_name, current)
    if challenger.target not in champion.targets:
        # nothing to compare on one holdout: switching what is predicted is a choice
        reason = (
            f"the challenger (version {target_version}) predicts {challenger.target!r}, "
            f"the champion (version {current}) only {', '.join(map(repr, champion.targets))}"
            ": they cannot be compared on one holdout"
        )
        if not force:
            raise RegistryError(
                f"{reason}. To switch what the service predicts on purpose, pass --force "
                f"(logged as forced) or --to {target_version}"
            )
        return Promotion(model_name, current, target_version, force, True,
                         f"FORCED although: {reason}", kind="forced")  # fmt: skip
    comparison = holdout_comparison(
        {"challenger": challenger, "champion": champion},
        source,
        challenger.target,
        int(challenger.horizon_days),
    )
    ok, reason = gate(comparison)
    if force and not ok:
        reason = f"FORCED although: {reason}"
    return Promotion(
        model_name,
        current,
        target_version,
        force,
        ok or force,
        reason,
        comparison,
        kind="forced" if force and not ok else "promotion",
    )
