"""Hand-off from the MLflow registry to the BentoML model store.

A served model is always a BentoML model imported from a registry version; its labels keep
the MLflow model name and version so every answer can name them, and the service needs no
MLflow server at run time.
"""

from __future__ import annotations

import bentoml
import bentoml.exceptions
import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

BENTO_MODEL_NAME = "lead-scorer"
#: Bento argument holding the model tag a bento was built with (see serving/bento_entry.py).
BENTO_MODEL_ARGUMENT = "model"


class ModelNotFound(RuntimeError):
    """No registered version answers to the alias or version asked for."""


def resolve_version(model_name: str, alias_or_version: str, tracking_uri: str) -> str:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient()
    try:
        if alias_or_version.isdigit():
            return str(client.get_model_version(model_name, alias_or_version).version)
        return str(client.get_model_version_by_alias(model_name, alias_or_version).version)
    except MlflowException as exc:
        raise ModelNotFound(
            f"model {model_name!r} has no version or alias {alias_or_version!r} in "
            f"{tracking_uri}; run `leadscore train` and `leadscore promote` first"
        ) from exc


def import_registered(model_name: str, alias_or_version: str, tracking_uri: str) -> bentoml.Model:
    """Import a registry version into the BentoML store (once per version) and return it."""
    version = resolve_version(model_name, alias_or_version, tracking_uri)
    try:
        existing_models = bentoml.models.list(BENTO_MODEL_NAME)
    except bentoml.exceptions.NotFound:
        existing_models = []
    for existing in existing_models:
        labels = existing.info.labels
        if labels.get("mlflow_model") == model_name and labels.get("mlflow_version") == version:
            if labels.get("tracking_uri") == tracking_uri:
                return existing
    return bentoml.mlflow.import_model(
        BENTO_MODEL_NAME,
        f"models:/{model_name}/{version}",
        labels={
            "mlflow_model": model_name,
            "mlflow_version": version,
            "tracking_uri": tracking_uri,
        },
    )
