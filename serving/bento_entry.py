"""Entry point of a bento built by `leadscore build` (``service:`` in bentofile.yaml): the
bento serves the model it was built with, never another one.

The service takes its model tag from LEADSCORE_BENTO_MODEL (default
``lead-scorer:latest``), which `bentoml serve <bento>` does not set. Without a pin, a bento
served from a BentoML store would serve whichever ``lead-scorer`` model was imported last
(for example by a later `leadscore serve --alias challenger`), not the one it packages.
`leadscore build` therefore records the model tag as the bento argument ``model``
(``bentoml build --arg model=<tag>``, kept in the bento's bento.yaml); this module sets
LEADSCORE_BENTO_MODEL from it before the service module reads it. The pinned tag wins over
an inherited LEADSCORE_BENTO_MODEL: a bento is one model, as built. A built bento also
refuses LEADSCORE_INSECURE_DEV: it always needs API tokens.
"""

from __future__ import annotations

import os
import sys

import bentoml

from serving.model_store import BENTO_MODEL_ARGUMENT

_pinned = getattr(bentoml.use_arguments(), BENTO_MODEL_ARGUMENT, None)
if _pinned:
    if "serving.service" in sys.modules:  # too late: it has read its model tag already
        raise RuntimeError("serving.service was imported before the bento's model pin")
    os.environ["LEADSCORE_BENTO_MODEL"] = str(_pinned)
    # a built bento is never served without tokens (serving.service.insecure_dev)
    os.environ["LEADSCORE_BUILT_BENTO"] = "1"

from serving.service import LeadScoringService  # noqa: E402  (reads the variable at import)

__all__ = ["LeadScoringService"]
