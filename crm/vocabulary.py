"""The words the data and the answers use, each defined once: funnel stages, event types,
lifecycle stages, buyer personas of the simulator, quadrant names, content phases, the kinds
of custom attribute, and the texts read as yes or no.

It sits in crm/, the lowest package, because the simulator and the contract need these
words as much as the features, the scoring runtime and the service schemas do (arrows
point down only: docs/ARCHITECTURE.md)."""

from __future__ import annotations

#: The funnel, in order (DOMAIN.md): a stage's rank is its position.
STAGES: tuple[str, ...] = ("visit", "lead", "mql", "sal", "opportunity", "customer")
STAGE_RANK: dict[str, int] = {s: i for i, s in enumerate(STAGES)}

#: The kinds of custom lead attribute (``attr_*`` columns) an import mapping may declare;
#: features/build.py turns each kind into a feature.
CUSTOM_KINDS: tuple[str, ...] = ("numeric", "categorical", "boolean")

EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "blog_read",
    "newsletter_open",
    "newsletter_click",
    "email_open",
    "email_click",
    "webinar_registered",
    "webinar_attended",
    "content_download",
    "form_submit",
    "pricing_view",
    "demo_request",
    "trade_fair_visit",
    "unsubscribe",
    "email_bounce",
    "referral",
)

EMAIL_DOMAIN_KINDS: tuple[str, ...] = ("business", "free")

#: Lifecycle stages of a lead's company relationship (DOMAIN.md, features/lifecycle.py).
LIFECYCLE_STAGES: tuple[str, ...] = ("prospect", "new_customer", "active_customer", "ambassador")

#: The buyer personas the simulator plants (the shipped features/personas.yaml names them).
SIMULATED_PERSONAS: tuple[str, ...] = ("subscriber", "evaluator", "marketer")

#: The four quadrants of fit x interest (features/quadrant_policy.py decides the cut-offs).
QUADRANTS: tuple[str, ...] = ("qualified", "qualified_low_interest", "low_fit_interested", "drop")

#: The buying phases content is written for and a lead is in (DOMAIN.md, features/content.py).
CONTENT_PHASES: tuple[str, ...] = ("awareness", "consideration", "decision")

#: Texts read as yes / no in boolean columns (case and surrounding blanks ignored); "t" and
#: "f" are how databases export booleans.
YES_WORDS: frozenset[str] = frozenset({"true", "yes", "y", "1", "t"})
NO_WORDS: frozenset[str] = frozenset({"false", "no", "n", "0", "f"})
