"""Entry point of a bento built by `leadscore build` (``service:`` in bentofile.yaml): the
bento serves the model it was built with, never another one.

The service takes its model tag from LEADSCORE_BENTO_MODEL (default
``lead-scorer:latest``), which `bentoml serve <bento>` does not set. Without a pin, a bento
served from a BentoML store would serve whichever ``lead-scorer`` model was imported last
(for example by a later `leadscore serve --alias challenger`), not the one it packages.
`leadscore build` therefore records the model tag as the bento argument ``model``
(``bentoml build --arg model=<tag>``, kept in the bento's bento.yaml); at start-up this
module puts it into the service's settings. The pinned tag wins over an inherited
LEADSCORE_BENTO_MODEL: a bento is one model, as built. A built bento also refuses
LEADSCORE_INSECURE_DEV: it always needs API tokens.

As :mod:`serving.service`, this module builds the service when BentoML asks for
``LeadScoringService`` (PEP 562 ``__getattr__``), not when it is imported.
"""

from __future__ import annotations

from typing import Any

import bentoml

from serving.model_store import BENTO_MODEL_ARGUMENT
from serving.service import service_attribute, start_service


def pinned_service() -> bentoml.Service:
    """The service with the bento's model pin (if any) in its settings: the pinned tag, and
    the built-bento mark that refuses insecure dev mode."""
    pinned = getattr(bentoml.use_arguments(), BENTO_MODEL_ARGUMENT, None)
    return start_service(**({"bento_model": str(pinned), "built_bento": True} if pinned else {}))


def __getattr__(name: str) -> Any:
    return service_attribute(globals(), name, pinned_service)


__all__ = ["LeadScoringService"]  # noqa: F822 (built on first use by __getattr__)
