"""Loading the scoring model (``LeadScoringModel``) out of what MLflow or BentoML hand back,
in one place: a registered version or alias of the MLflow registry, or any MLflow pyfunc
(``bentoml.mlflow.load_model`` gives one too)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scoring.model import LeadScoringModel

# MLflow, scikit-learn and the model's classes are imported by the functions that load a
# model: the command line imports this module for MODEL_NAME, and `leadscore --help`
# should not wait two seconds for them

#: The registered model `leadscore train` writes to unless ``--model-name`` says otherwise.
MODEL_NAME = "lead-scorer"

#: Where the model's classes lived before scoring/ existed: a model pickled then names them.
OLD_LAYOUT_MODULES = frozenset(
    {"training.model", "training.heads", "training.trees", "features.explain", "serving.scoring"}
)


class NotALeadScoringModel(TypeError):
    """A pyfunc that is not a leadscore model (or one pickled by an older layout)."""


def scoring_model(pyfunc: Any) -> LeadScoringModel:
    """The ``LeadScoringModel`` inside a loaded MLflow pyfunc."""
    from scoring.model import LeadScoringPyfunc

    inner = pyfunc.unwrap_python_model()
    if not isinstance(inner, LeadScoringPyfunc):
        raise NotALeadScoringModel(
            f"the model holds a {type(inner).__name__}, not a leadscore model: "
            "train it with `leadscore train`"
        )
    return inner.model


def load_scoring_model(load: Callable[[], Any], what: str) -> LeadScoringModel:
    """The ``LeadScoringModel`` of the pyfunc ``load()`` returns (MLflow's or BentoML's
    loader), ``what`` naming it in errors. A model pickled by the layout before scoring/
    existed is refused with "retrain", not a traceback about a missing module."""
    try:
        pyfunc = load()
    except ModuleNotFoundError as e:
        if e.name not in OLD_LAYOUT_MODULES:
            raise
        raise NotALeadScoringModel(
            f"{what} was saved by an older leadscore (its classes were in {e.name}): "
            "retrain it with `leadscore train`"
        ) from e
    return scoring_model(pyfunc)


def load_registered(model_name: str = MODEL_NAME, ref: str = "champion") -> LeadScoringModel:
    """The model of a registry alias (``champion``) or version number (``"3"``), from the
    tracking store MLflow is pointed at."""
    import mlflow

    sep = "/" if str(ref).isdigit() else "@"
    uri = f"models:/{model_name}{sep}{ref}"
    return load_scoring_model(lambda: mlflow.pyfunc.load_model(uri), uri)
