"""Registry aliases: ``challenger`` is what training registered last, ``champion`` is served.

Promotion is gated, the first promotion too. The challenger's own time holdout is rebuilt
from its export exactly as ``train`` built it (``training.holdout``: same export end, same
snapshots, same split; checked against the ``holdout_from`` it recorded), and on it

- the challenger must show skill (``training.skill``: ROC AUC interval above 0.5 and log
  loss better than the pre-holdout base rate), and
- when there is a champion, both are scored (features computed with each model's own
  feature config) and ``champion`` moves only if the challenger is not worse beyond the
  tolerances below.

``--to VERSION`` rolls back without a gate; ``force`` overrides a refusal and is recorded
as forced. Every decision is an MLflow run (tagged ``model_kind=promotion``)
and tags on the challenger's model version.

``shadow`` is a model the service scores beside the champion without returning its answers
(:func:`set_shadow`, :func:`clear_shadow`; ``serving.shadow``). ``promote --evidence shadow``
puts it through the same gate as a challenger, and adds the comparison of the two on the
live leads whose outcomes arrived (``training.shadow_evidence``): both must agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from scoring.registry import load_registered
from training.tracking import MODEL_NAME, experiment_for, use_store

if TYPE_CHECKING:  # imported where used: the CLI imports this module for every command
    from training.holdout import HoldoutSet
    from training.skill import SkillVerdict

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
    # the challenger's minimum-skill verdict on its own holdout (None: not measured)
    skill: SkillVerdict | None = None
    data_dir: Path | None = None  # the export the holdout was rebuilt from


def describe_version(version: str, model_name: str = MODEL_NAME) -> str:
    """One line on what a registered version is: target, data, when it was registered and
    its own holdout figures (from the tags ``train`` sets), for promotion and rollback."""
    use_store(experiment_for(model_name))
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
    use_store(experiment_for(model_name))
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
    try:
        return load_registered(model_name, str(version))
    except TypeError as exc:  # LeadScoringModel refuses a pickle of an older layout
        raise RegistryError(f"version {version} of {model_name!r} cannot be loaded: {exc}") from exc


def data_source(
    version: str, tags: dict[str, str], data_dir: str | Path | None = None
) -> tuple[Path, bool]:
    """The export folder the gate rebuilds the challenger's holdout from, as an absolute
    path, and whether it is the one the challenger was trained on (``--data`` may name a
    later export of the same CRM)."""
    recorded = tags.get("data_dir")
    if data_dir is not None:
        path = Path(data_dir).expanduser().resolve()
        if not path.is_dir():
            raise RegistryError(f"--data {path}: no such folder")
        return path, recorded is not None and path == Path(recorded).expanduser().resolve()
    if not recorded:
        raise RegistryError(f"version {version} does not record its data; pass --data DIR")
    path = Path(recorded).expanduser()
    if not path.is_dir():
        raise RegistryError(
            f"version {version} was trained on {path}, which is not there (moved, deleted or "
            "another machine); pass --data DIR with that export to rebuild its holdout"
        )
    return path.resolve(), True


def _utc(t: Any) -> pd.Timestamp:
    t = pd.Timestamp(t)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def gate_holdout(
    challenger: Any,
    data_dir: str | Path,
    tags: dict[str, str] | None = None,
    same_data: bool = True,
    version: str = "?",
) -> HoldoutSet:
    """The challenger's own holdout, rebuilt from ``data_dir`` exactly as ``train`` built
    it (``training.holdout.holdout_set``: same export end, same snapshots, same split),
    with the challenger's feature config and snapshot ages.

    Checked against what training recorded (version tags ``holdout_from`` and
    ``holdout_n_holdout``, else the model's metadata): no gate row may come before the
    challenger's holdout (it would be a row the challenger was fitted or calibrated on),
    and on the data it was trained on the rebuilt holdout must be the same rows."""
    from training.holdout import holdout_set

    tags = tags or {}
    metadata = getattr(challenger, "metadata", None) or {}
    hs = holdout_set(
        data_dir, challenger.target, int(challenger.horizon_days), challenger.feature_config,
        ages_days=metadata.get("snapshot_ages_days"),  # None (older models): the default
    )  # fmt: skip
    recorded_from = tags.get("holdout_from") or metadata.get("split", {}).get("holdout_from")
    recorded_n = tags.get("holdout_n_holdout") or metadata.get("holdout_metrics", {}).get(
        "n_holdout"
    )
    if recorded_from is None:
        return hs  # trained before holdouts were recorded: nothing to check against
    start, own = _utc(hs.holdout_from), _utc(recorded_from)
    n = len(hs.holdout)
    if start < own:
        raise RegistryError(
            f"the data changed since version {version} was trained: the holdout rebuilt "
            f"from {data_dir} starts at {start}, before the challenger's own holdout "
            f"({own}), so the gate would score it on rows it was trained on. Retrain on this "
            "data, or pass --data with the export it was trained on"
        )
    if same_data and (start != own or (recorded_n is not None and n != int(float(recorded_n)))):
        was = f"{int(float(recorded_n))} rows from {own}" if recorded_n is not None else f"{own}"
        raise RegistryError(
            f"the data changed since version {version} was trained: its holdout in "
            f"{data_dir} was {was}, rebuilt it is {n} rows from {start}. Retrain on this "
            "data, or pass --data with the export it was trained on"
        )
    return hs


def holdout_probabilities(
    models: dict[str, Any], hs: HoldoutSet, target: str
) -> dict[str, np.ndarray]:
    """Each model's probability of ``target`` on the holdout rows of ``hs``, features
    computed with each model's own config (the set's own features serve the models that
    share its config)."""
    from training.dataset import snapshot_features

    hold = hs.holdout
    features = {hs.config: hs.ts.X.iloc[hold]}
    out = {}
    for name, model in models.items():
        config = model.feature_config
        if config not in features:
            features[config] = snapshot_features(
                hs.data, hs.ts.as_of.iloc[hold], hs.ts.age_days[hold], config
            )
        scored = model.score(features[config])
        col = f"p_{target}"
        if col not in scored.columns:
            raise RegistryError(f"the {name} model does not predict {target!r}")
        out[name] = scored[col].to_numpy(dtype=float)
    return out


def holdout_comparison(probs: dict[str, np.ndarray], y: np.ndarray) -> dict[str, dict[str, float]]:
    """ROC AUC, ECE, log loss and Brier of each model's probabilities on the same rows."""
    from training.evaluate import binary_metrics

    out = {}
    for name, p in probs.items():
        m = binary_metrics(y, p)
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
    skill = p.skill.to_dict() if p.skill else None
    with mlflow.start_run(run_name=f"promotion-v{p.to_version}"):
        mlflow.set_tags(
            {
                "model_kind": "promotion",
                "decision": "accepted" if p.accepted else "refused",
                "promotion_kind": p.kind,
                "forced": str(p.forced).lower(),
                "reason": p.reason[:5000],
                "skill": skill["skill"] if skill else "not measured",
                "skill_sentence": skill["sentence"] if skill else "",
                **({"data_dir": str(p.data_dir)} if p.data_dir else {}),
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
        if skill:
            mlflow.log_dict(skill, "skill.json")
            mlflow.log_metrics(
                {
                    f"skill_{k}": v
                    for k, v in skill.items()
                    if k in ("roc_auc_ci_low", "roc_auc_ci_high", "constant_log_loss", "base_rate")
                    and v is not None
                }  # fmt: skip
            )
    tags = {
        "promotion_decision": "accepted" if p.accepted else "refused",
        "promotion_kind": p.kind,
        "promotion_forced": str(p.forced).lower(),
        "promotion_reason": p.reason[:5000],
        "promotion_skill": skill["skill"] if skill else "not measured",
        "promotion_skill_sentence": skill["sentence"] if skill else "",
    }
    for k, v in tags.items():
        client.set_model_version_tag(p.model_name, p.to_version, k, v)


def promote(
    model_name: str = MODEL_NAME,
    to_version: str | None = None,
    force: bool = False,
    data_dir: str | Path | None = None,
    candidate: str | None = None,
    evidence: tuple[bool, str] | None = None,
) -> Promotion:
    """Point ``champion`` at the challenger if it passes the gate (or at ``to_version``,
    a rollback). Returns the decision; ``accepted`` False means champion is unchanged.

    ``candidate``: gate this version instead of the challenger (the shadow's, for
    ``--evidence shadow``); ``evidence``: a further verdict (ok, reason) the promotion also
    needs, e.g. the shadow's live comparison; ``force`` overrides it as it does the gate."""
    use_store(experiment_for(model_name))
    client = MlflowClient()
    try:
        current = str(client.get_model_version_by_alias(model_name, "champion").version)
    except MlflowException:
        current = None
    target_version = to_version or candidate or version_for("challenger", model_name)
    try:
        mv = client.get_model_version(model_name, target_version)
    except MlflowException as exc:
        raise RegistryError(f"model {model_name!r} has no version {target_version}") from exc

    if to_version is not None:
        p = Promotion(model_name, current, target_version, force, True, "rollback (--to)",
                      kind="rollback")  # fmt: skip
    elif current == target_version:
        p = Promotion(model_name, current, target_version, force, True,
                      "challenger is already the champion", kind="unchanged")  # fmt: skip
    else:
        p = _challenge(model_name, current, target_version, dict(mv.tags or {}), force, data_dir)
    if evidence is not None and to_version is None:
        p = _with_evidence(p, evidence)
    if p.accepted:
        client.set_registered_model_alias(model_name, "champion", p.to_version)
    _record(p)
    return p


def _challenge(
    model_name: str,
    current: str | None,
    target_version: str,
    tags: dict[str, str],
    force: bool,
    data_dir: str | Path | None,
) -> Promotion:
    """The gate's decision on the challenger, on its own time holdout: it must show skill
    (``training.skill``) and, when there is a champion, not be worse than it beyond the
    tolerances. ``--force`` turns a refusal into a logged forced promotion."""
    from training.skill import skill_verdict

    challenger = load_version(model_name, target_version)
    champion = load_version(model_name, current) if current is not None else None
    if champion is not None and challenger.target not in champion.targets:
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
    source, same_data = data_source(target_version, tags, data_dir)
    hs = gate_holdout(challenger, source, tags, same_data, target_version)
    models = {"challenger": challenger, **({"champion": champion} if champion else {})}
    probs = holdout_probabilities(models, hs, challenger.target)
    y = hs.ts.y[hs.holdout]
    comparison = holdout_comparison(probs, y)
    # the rate the challenger was calibrated to: saying it for everyone is "no skill"
    prior = (
        (getattr(challenger, "metadata", None) or {})
        .get("choice", {})
        .get("calibration_prior", "long-run")
    )
    verdict = skill_verdict(
        y, probs["challenger"], hs.rate_for_prior(prior), groups=hs.ts.X.index[hs.holdout]
    )
    problems = []
    if champion is None:
        ok, reason = True, "first promotion: no champion yet"
    else:
        ok, reason = gate(comparison)
        if not ok:
            problems.append(reason)
    if not verdict.has_skill:
        problems.append(f"the challenger shows no skill on its own holdout. {verdict.sentence()}")
    if problems:
        reason = "; ".join(problems)
        if force:
            reason = f"FORCED although: {reason}"
    kind = "first" if champion is None else "promotion"
    return Promotion(
        model_name,
        current,
        target_version,
        force,
        not problems or force,
        reason,
        comparison,
        kind="forced" if problems and force else kind,
        skill=verdict,
        data_dir=source,
    )


def _with_evidence(p: Promotion, evidence: tuple[bool, str]) -> Promotion:
    """The gate's decision with a further verdict (ok, reason): a refusal by either refuses;
    ``force`` overrides both, recorded as forced."""
    from dataclasses import replace

    ok, why = evidence
    if ok or p.kind == "unchanged":
        return replace(p, reason=f"{p.reason}; {why}")
    gate_refused = p.reason.startswith("FORCED although: ") or not p.accepted
    gate_part = p.reason.removeprefix("FORCED although: ")
    problems = f"{gate_part}; {why}" if gate_refused else why
    if p.forced:
        return replace(p, accepted=True, kind="forced", reason=f"FORCED although: {problems}")
    return replace(p, accepted=False, reason=problems if gate_refused else f"{p.reason}, but {why}")


def set_shadow(version: str, model_name: str = MODEL_NAME) -> str | None:
    """Point the ``shadow`` alias at ``version``; returns the version it pointed at before."""
    use_store(experiment_for(model_name))
    client = MlflowClient()
    try:
        client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        raise RegistryError(f"model {model_name!r} has no version {version}") from exc
    try:
        before = str(client.get_model_version_by_alias(model_name, "shadow").version)
    except MlflowException:
        before = None
    client.set_registered_model_alias(model_name, "shadow", str(version))
    return before


def clear_shadow(model_name: str = MODEL_NAME) -> str | None:
    """Remove the ``shadow`` alias; returns the version it pointed at (None: there was none)."""
    use_store(experiment_for(model_name))
    client = MlflowClient()
    try:
        before = str(client.get_model_version_by_alias(model_name, "shadow").version)
    except MlflowException:
        return None
    client.delete_registered_model_alias(model_name, "shadow")
    return before
