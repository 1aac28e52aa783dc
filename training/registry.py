"""Registry aliases: ``challenger`` is what training registered last, ``champion`` is served."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from training.tracking import MODEL_NAME, use_store


class RegistryError(RuntimeError):
    """The registry does not hold what was asked for (no model, no such alias or version)."""


@dataclass(frozen=True)
class Promotion:
    model_name: str
    from_version: str | None
    to_version: str
    forced: bool = False


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


def promote(model_name: str = MODEL_NAME, to_version: str | None = None) -> Promotion:
    """Point ``champion`` at the challenger (or at ``to_version``, for a rollback)."""
    use_store()
    client = MlflowClient()
    try:
        current = str(client.get_model_version_by_alias(model_name, "champion").version)
    except MlflowException:
        current = None
    target = to_version or version_for("challenger", model_name)
    try:
        client.get_model_version(model_name, target)
    except MlflowException as exc:
        raise RegistryError(f"model {model_name!r} has no version {target}") from exc
    client.set_registered_model_alias(model_name, "champion", target)
    return Promotion(model_name, current, target)
