"""Loading the scoring model (``LeadScoringModel``) out of what MLflow or BentoML hand back,
in one place: a registered version or alias of the MLflow registry, or any MLflow pyfunc
(``bentoml.mlflow.load_model`` gives one too)."""

from __future__ import annotations

from typing import Any

import mlflow

from scoring.model import LeadScoringModel, LeadScoringPyfunc

#: The registered model `leadscore train` writes to unless ``--model-name`` says otherwise.
MODEL_NAME = "lead-scorer"


class NotALeadScoringModel(TypeError):
    """A pyfunc that is not a leadscore model (or one pickled by an older layout)."""


def scoring_model(pyfunc: Any) -> LeadScoringModel:
    """The ``LeadScoringModel`` inside a loaded MLflow pyfunc."""
    inner = pyfunc.unwrap_python_model()
    if not isinstance(inner, LeadScoringPyfunc):
        raise NotALeadScoringModel(
            f"the model holds a {type(inner).__name__}, not a leadscore model: "
            "train it with `leadscore train`"
        )
    return inner.model


def load_registered(model_name: str = MODEL_NAME, ref: str = "champion") -> LeadScoringModel:
    """The model of a registry alias (``champion``) or version number (``"3"``), from the
    tracking store MLflow is pointed at."""
    sep = "/" if str(ref).isdigit() else "@"
    return scoring_model(mlflow.pyfunc.load_model(f"models:/{model_name}{sep}{ref}"))
