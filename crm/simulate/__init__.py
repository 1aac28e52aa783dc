"""A B2B funnel simulator: a realistic CRM export with a known ground truth.

``simulate`` draws accounts, leads, their engagement events and their path through the
funnel ``visit -> lead -> mql -> sal -> opportunity -> customer`` and returns the four
canonical tables (validated by ``crm.contract.validate``) plus a ground-truth table
with what no real CRM knows: each lead's persona, true fit, true interest and the true
probabilities of the two steps the models predict.

How the world works (all of it vectorised; no Python loop per lead or per event):

- **Fit** is ``sigmoid(fit_logit)``; the logit adds effects of industry, company size
  (a mid-market bump), country/region, the seniority and department behind the job title,
  and free-mail vs business e-mail. Missing values in the export hide some of it.
- **Personas** (subscriber, evaluator, marketer) drive the job title (the role's track
  matches the persona ~80% of the time) and the topics of topical events (~78% from the
  persona's motive topics, ~6% from other personas' motives, the rest general topics).
- **Engagement**: every lead has an intensity (lognormal, ~50 events over its life) and an
  intent that tilts the event-type mix towards pricing views, demo requests, webinars,
  downloads and forms. Event times rise and fade after ``created_at`` (a gamma mixture);
  known-cookie page views precede it by up to 30 days. Newsletters go out every 14 days.
  Bounces stop all e-mail/newsletter events, so do unsubscribes; ``do_not_email`` leads
  (a flag set when the lead was created) get none.
- **lead -> MQL** with ``p_mql = sigmoid(a + b * fit_logit + c * z)``, z the standardised
  log intensity (observable only through the event counts it produces); the MQL
  moment is a form fill, download or demo request inside the lead's engagement curve.
- **MQL -> SAL within 90 days** with ``p_sal = sigmoid(logit)``; the logit is
  ``fit_logit`` plus the *interest logit*: log1p of decayed, type-weighted event sums per
  group, taken over the events at or before the MQL moment (web 7 days half-life,
  e-mail 30, webinars/fairs/downloads 14, forms/demos 14), minus penalties for an earlier
  unsubscribe or bounce and for silence before the MQL, plus N(0, 0.3) unobserved noise.
  ``interest`` in the truth is ``sigmoid`` of that interest logit (at the MQL moment, or at
  ``end`` for leads without a recorded MQL).
  Two sales rules then bend that additive score, as real sales teams do: a demo request in
  the 14 days up to the MQL from a business address at a company with 50+ employees is
  fast-tracked (p_sal >= 0.8), and free-mail leads from companies under 20 employees keep
  only 35 % of theirs. Trees can learn such rules; a logistic regression cannot.
- SAL -> opportunity -> customer depend on fit; each step has a delay, and anything after
  ``end`` is censored (an MQL after ``end`` is not recorded either: its truth row then has
  ``p_sal`` NaN and ``mql_at`` NaT, while ``p_mql`` stays the lead's true probability).
  After SAL, sales e-mails follow (post-MQL, so they leak into any pre-MQL feature that
  ignores the snapshot time).
- **Lifecycle** at ``end`` (derived from the recorded events, as a CRM would): purchase less
  than 90 days before ``end`` -> ``new_customer``; else a ``referral`` event after the
  purchase -> ``ambassador``; else product/community activity (page_view/blog_read with
  topic ``product_docs`` or ``community``) after the purchase -> ``active_customer``; else
  ``new_customer`` (bought but never activated). Everybody who has not bought is a
  ``prospect``.

``end`` is a timestamp: nothing later than it is recorded.

The stages, each a module: ``firmographics`` (accounts), ``leads`` (personas, job titles,
e-mail, fit, source), ``engagement`` (intensity and the events before the funnel moves),
``funnel`` (MQL, interest and p_sal, SAL, opportunity, customer, and the events after),
``tables`` (what the CRM records, and the truth); ``world`` holds the parameters,
``draws`` the drawing tools, ``run`` puts the stages in order (and draws a run of more
than ``CHUNK_LEADS`` leads chunk by chunk, so 1M leads fit in a few GiB), ``checks`` measures a
simulation. The personas and lifecycle stages are crm.vocabulary's ``SIMULATED_PERSONAS``
and ``LIFECYCLE_STAGES``.
"""

from crm.simulate.checks import ceiling_auc, sal_holdout, stage_counts, stage_rates, truth_auc
from crm.simulate.firmographics import COUNTRIES, INDUSTRIES
from crm.simulate.leads import DEPARTMENTS, SENIORITY, SOURCES
from crm.simulate.run import CHUNK_LEADS, chunk_bounds, simulate, simulate_chunks, write_simulation
from crm.simulate.world import (
    BOUNCE_PENALTY,
    CONTENT_CATALOG,
    CUSTOMER_TOPICS,
    DAY,
    EMAIL_TYPES,
    FAST_TRACK_DAYS,
    FAST_TRACK_MIN_EMPLOYEES,
    FAST_TRACK_P,
    GENERAL_TOPICS,
    INTEREST_GROUPS,
    INTEREST_OFFSET,
    INTEREST_WEIGHTS,
    MOTIVE_TOPICS,
    NEW_CUSTOMER_DAYS,
    ROLE_MATCH,
    SAL_FIT_WEIGHT,
    SAL_HORIZON_DAYS,
    SAL_INTERCEPT,
    SAL_NOISE_STD,
    SILENCE_PENALTY,
    SMALL_FREE_MAIL_FACTOR,
    SMALL_MAX_EMPLOYEES,
    TOPIC_SHARE_OTHER,
    TOPIC_SHARE_OWN,
    TOPICAL_TYPES,
    TOPICS,
    TRUTH_FILE,
    UNSUBSCRIBE_PENALTY,
)

__all__ = [
    "BOUNCE_PENALTY",
    "CHUNK_LEADS",
    "CONTENT_CATALOG",
    "COUNTRIES",
    "CUSTOMER_TOPICS",
    "DAY",
    "DEPARTMENTS",
    "EMAIL_TYPES",
    "FAST_TRACK_DAYS",
    "FAST_TRACK_MIN_EMPLOYEES",
    "FAST_TRACK_P",
    "GENERAL_TOPICS",
    "INDUSTRIES",
    "INTEREST_GROUPS",
    "INTEREST_OFFSET",
    "INTEREST_WEIGHTS",
    "MOTIVE_TOPICS",
    "NEW_CUSTOMER_DAYS",
    "ROLE_MATCH",
    "SAL_FIT_WEIGHT",
    "SAL_HORIZON_DAYS",
    "SAL_INTERCEPT",
    "SAL_NOISE_STD",
    "SENIORITY",
    "SILENCE_PENALTY",
    "SMALL_FREE_MAIL_FACTOR",
    "SMALL_MAX_EMPLOYEES",
    "SOURCES",
    "TOPICAL_TYPES",
    "TOPICS",
    "TOPIC_SHARE_OTHER",
    "TOPIC_SHARE_OWN",
    "TRUTH_FILE",
    "UNSUBSCRIBE_PENALTY",
    "ceiling_auc",
    "chunk_bounds",
    "sal_holdout",
    "simulate",
    "simulate_chunks",
    "stage_counts",
    "stage_rates",
    "truth_auc",
    "write_simulation",
]
