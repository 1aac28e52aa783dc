"""Hand-off from the MLflow registry to the BentoML model store.

A served model is always a BentoML model imported from a registry version; its labels keep
the MLflow model name and version so every answer can name them, and the service needs no
MLflow server at run time.

An imported model is reused only for the same artifact: the labels also keep what identifies
it in MLflow (the logged model id, the run id and the artifact source). Name, version and
tracking URI alone do not: a store that is recreated, or a registry restored from a backup,
numbers its versions from 1 again, and `serve` would answer with the old model.
"""

from __future__ import annotations

import bentoml
import bentoml.exceptions
import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

BENTO_MODEL_NAME = "lead-scorer"
#: Bento argument holding the model tag a bento was built with (see serving/bento_entry.py).
BENTO_MODEL_ARGUMENT = "model"


class ModelNotFound(RuntimeError):
    """No registered version answers to the alias or version asked for."""


def _model_version(model_name: str, alias_or_version: str, tracking_uri: str) -> ModelVersion:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient()
    try:
        if alias_or_version.isdigit():
            return client.get_model_version(model_name, alias_or_version)
        return client.get_model_version_by_alias(model_name, alias_or_version)
    except MlflowException as exc:
        raise ModelNotFound(
            f"model {model_name!r} has no version or alias {alias_or_version!r} in "
            f"{tracking_uri}; run `leadscore train` and `leadscore promote` first"
        ) from exc


def resolve_version(model_name: str, alias_or_version: str, tracking_uri: str) -> str:
    return str(_model_version(model_name, alias_or_version, tracking_uri).version)


def artifact_labels(mv: ModelVersion, tracking_uri: str) -> dict[str, str]:
    """What names a registry version's artifact: the BentoML labels an import carries."""
    source = str(mv.source or "")
    model_id = getattr(mv, "model_id", None) or (
        source.removeprefix("models:/") if source.startswith("models:/m-") else ""
    )
    return {
        "mlflow_model": str(mv.name),
        "mlflow_version": str(mv.version),
        "mlflow_model_id": str(model_id),
        "mlflow_run_id": str(mv.run_id or ""),
        "mlflow_source": source,
        "tracking_uri": tracking_uri,
    }


_IDENTITY = ("mlflow_model", "mlflow_version", "mlflow_model_id", "mlflow_run_id", "mlflow_source")


def import_registered(model_name: str, alias_or_version: str, tracking_uri: str) -> bentoml.Model:
    """Import a registry version into the BentoML store (once per artifact) and return it."""
    mv = _model_version(model_name, alias_or_version, tracking_uri)
    labels = artifact_labels(mv, tracking_uri)
    try:
        existing_models = bentoml.models.list(BENTO_MODEL_NAME)
    except bentoml.exceptions.NotFound:
        existing_models = []
    for existing in existing_models:
        have = existing.info.labels
        if all(have.get(k) == labels[k] for k in _IDENTITY) and (
            labels["mlflow_model_id"] or labels["mlflow_run_id"]  # something that identifies
        ):
            return existing
    return bentoml.mlflow.import_model(
        BENTO_MODEL_NAME, f"models:/{model_name}/{mv.version}", labels=labels
    )
