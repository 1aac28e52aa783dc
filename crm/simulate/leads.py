"""Leads: the account each belongs to, when it was created, its persona and job title,
its e-mail kind and do-not-email flag, its true fit, and the source it came through."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm.simulate.draws import sample_rows, sigmoid
from crm.simulate.firmographics import INDUSTRY_PERSONA_TILT, AccountDraws
from crm.simulate.world import ROLE_MATCH
from crm.vocabulary import SIMULATED_PERSONAS

SOURCES: tuple[str, ...] = (
    "organic_search",
    "paid_search",
    "social",
    "referral",
    "trade_fair",
    "webinar",
    "direct",
    "partner",
    "email_campaign",
    "content_syndication",
)
_SOURCE_P = np.array([0.25, 0.14, 0.10, 0.07, 0.08, 0.09, 0.12, 0.06, 0.05, 0.04])
_SOURCE_FIT_TILT = np.array([0.0, -0.3, -0.4, 0.4, 0.3, 0.1, 0.0, 0.5, -0.1, -0.2])


# ---------------------------------------------------------------- job titles
SENIORITY: tuple[str, ...] = (
    "intern", "junior", "professional", "senior", "manager", "head", "vp", "c_level",
)  # fmt: skip
_SENIORITY_P = np.array([0.03, 0.10, 0.33, 0.17, 0.18, 0.10, 0.04, 0.05])
_SENIORITY_FIT = np.array([-1.0, -0.4, 0.0, 0.2, 0.45, 0.7, 0.7, 0.6])
DEPARTMENTS: tuple[str, ...] = (
    "it", "engineering", "support", "marketing", "sales", "operations", "finance",
    "procurement", "hr", "management",
)  # fmt: skip
_DEPARTMENT_FIT = np.array([0.55, 0.45, 0.1, -0.1, -0.2, 0.2, -0.3, 0.3, -0.6, 0.3])

# track: (persona or "", department, department names, individual-contributor roles, C-level)
_TRACKS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    ("subscriber", "it", ("IT Operations", "IT", "IT Infrastructure"),
     ("System Administrator", "IT Administrator", "Sysadmin"), ()),
    ("subscriber", "support", ("Technical Support", "Support", "Customer Support"),
     ("Support Engineer", "Technical Support Specialist", "Helpdesk Agent"), ()),
    ("subscriber", "operations", ("Service", "Field Service", "Maintenance"),
     ("Service Technician", "Maintenance Technician", "Field Service Engineer"), ()),
    ("evaluator", "engineering", ("Engineering", "Software Engineering", "R&D"),
     ("Software Engineer", "Developer", "Systems Engineer"),
     ("CTO", "Chief Technology Officer", "CTO & Co-Founder")),
    ("evaluator", "it", ("IT", "Information Technology", "IT & Digital"),
     ("Solutions Architect", "IT Architect", "IT Consultant"),
     ("CIO", "Chief Information Officer", "Chief Digital Officer")),
    ("evaluator", "engineering", ("Process Engineering", "Automation", "Production Engineering"),
     ("Process Engineer", "Automation Engineer", "Product Engineer"), ()),
    ("marketer", "marketing", ("Marketing", "Digital Marketing", "Product Marketing"),
     ("Marketing Specialist", "Content Marketer", "Marketing Associate"),
     ("CMO", "Chief Marketing Officer", "CMO")),
    ("marketer", "sales", ("Sales", "Business Development", "Inside Sales"),
     ("Account Executive", "Sales Representative", "Business Development Rep"),
     ("CSO", "Chief Sales Officer", "Chief Revenue Officer")),
    ("", "finance", ("Finance", "Controlling", "Accounting"),
     ("Accountant", "Financial Analyst", "Controller"), ("CFO", "Chief Financial Officer", "CFO")),
    ("", "procurement", ("Procurement", "Purchasing", "Strategic Sourcing"),
     ("Buyer", "Purchaser", "Procurement Specialist"), ("CPO", "Chief Procurement Officer", "CPO")),
    ("", "hr", ("HR", "Human Resources", "People & Culture"),
     ("HR Generalist", "Recruiter", "HR Specialist"), ("CHRO", "Chief People Officer", "CHRO")),
    ("", "management", ("Operations", "Business Operations", "Strategy"),
     ("Operations Analyst", "Business Analyst", "Consultant"),
     ("CEO", "Managing Director", "Founder & CEO")),
)  # fmt: skip
# templates per seniority level, three variants each; {d} department, {r} role
_TEMPLATES: tuple[tuple[str, str, str], ...] = (
    ("{r} Intern", "Intern {d}", "Working Student {d}"),
    ("Junior {r}", "Jr. {r}", "Junior {r}"),
    ("{r}", "{r}", "{r}"),
    ("Senior {r}", "Sr. {r}", "Lead {r}"),
    ("{d} Manager", "Manager {d}", "{d} Team Lead"),
    ("Head of {d}", "Director of {d}", "{d} Director"),
    ("VP {d}", "VP of {d}", "Vice President, {d}"),
    ("{c}", "{c}", "{c}"),
)
_TITLE_SUFFIXES: tuple[str, ...] = ("", " (m/w/d)", " EMEA", " DACH", " - Germany")


def _title_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All titles as a [track, seniority, variant] array plus per-track persona/department."""
    n_t, n_s = len(_TRACKS), len(SENIORITY)
    titles = np.empty((n_t, n_s, 3), dtype=object)
    persona = np.full(n_t, -1)
    dept = np.zeros(n_t, dtype=int)
    has_c = np.zeros(n_t, dtype=bool)
    for i, (pers, dep, dnames, roles, chiefs) in enumerate(_TRACKS):
        persona[i] = SIMULATED_PERSONAS.index(pers) if pers else -1
        dept[i] = DEPARTMENTS.index(dep)
        has_c[i] = bool(chiefs)
        for s, variants in enumerate(_TEMPLATES):
            for v, tpl in enumerate(variants):
                c = chiefs[v] if chiefs else f"Head of {dnames[v]}"
                titles[i, s, v] = tpl.format(d=dnames[v], r=roles[v], c=c)
    return titles, persona, dept, has_c


_TITLES, _TRACK_PERSONA, _TRACK_DEPT, _TRACK_HAS_C = _title_table()


@dataclass(frozen=True)
class LeadDraws:
    """One element per lead: its account (an index), creation time (seconds since start),
    persona code, job title, e-mail kind and flag, true fit (logit, probability and the
    standardised logit the engagement leans on) and source code."""

    account: np.ndarray
    created: np.ndarray
    persona: np.ndarray
    title: pd.Series
    free_mail: np.ndarray
    do_not_email: np.ndarray
    fit_logit: np.ndarray
    fit: np.ndarray
    fit_z: np.ndarray
    source: np.ndarray

    @property
    def source_name(self) -> np.ndarray:
        return np.array(SOURCES)[self.source]


def draw_leads(rng: np.random.Generator, accounts: AccountDraws, n: int, end_s: int) -> LeadDraws:
    """``n`` leads spread over the accounts (bigger ones get more) and over the period."""
    n_acc = len(accounts.employees)
    acc_w = accounts.employees**0.35 * np.exp(rng.normal(0, 0.8, n_acc))
    acc = rng.choice(n_acc, n, p=acc_w / acc_w.sum())
    created = rng.integers(0, end_s + 1, n).astype(np.int64)
    p_persona = np.array([0.40, 0.35, 0.25]) * INDUSTRY_PERSONA_TILT[accounts.industry[acc]]
    big = accounts.log_employees[acc] > 3.5
    p_persona[:, 2] *= np.where(big, 1.2, 1.0)  # big firms: more marketers
    persona = sample_rows(rng, p_persona, np.arange(n))
    title, seniority, department = _job_titles(rng, persona)

    free_mail = rng.random(n) < sigmoid(-1.3 - 0.5 * (accounts.log_employees[acc] - 2.0))
    do_not_email = rng.random(n) < 0.02
    fit_logit = (
        -1.35
        + accounts.fit[acc]
        + _SENIORITY_FIT[seniority]
        + _DEPARTMENT_FIT[department]
        - 0.8 * free_mail
    )
    fit = sigmoid(fit_logit)
    fit_z = (fit_logit - fit_logit.mean()) / (fit_logit.std() + 1e-9)
    p_src = _SOURCE_P * np.exp(np.outer(fit_z, _SOURCE_FIT_TILT))
    source = sample_rows(rng, p_src, np.arange(n))
    return LeadDraws(
        acc, created, persona, title, free_mail, do_not_email, fit_logit, fit, fit_z, source
    )


def _job_titles(
    rng: np.random.Generator, persona: np.ndarray
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Job titles as people type them: a track (matching the persona with probability
    ROLE_MATCH), a seniority level, one of three wordings, a suffix now and then, and some
    in lower or upper case. Returns the titles, the seniority and the department codes."""
    n = len(persona)
    n_tracks = len(_TRACKS)
    p_track = np.zeros((len(SIMULATED_PERSONAS), n_tracks))
    for i in range(len(SIMULATED_PERSONAS)):
        own = _TRACK_PERSONA == i
        p_track[i, own] = ROLE_MATCH / own.sum()
        p_track[i, ~own] = (1 - ROLE_MATCH) / (~own).sum()
    track = sample_rows(rng, p_track, persona)
    p_sen = np.tile(_SENIORITY_P, (n_tracks, 1))
    p_sen[~_TRACK_HAS_C, 7] = 0.0
    p_sen[_TRACK_PERSONA == 0, 6] = 0.0  # no "VP Field Service"
    seniority = sample_rows(rng, p_sen, track)
    variant = rng.integers(0, 3, n)
    title = pd.Series(_TITLES[track, seniority, variant], dtype="str")
    sfx = sample_rows(rng, np.array([[0.92, 0.03, 0.02, 0.02, 0.01]]), np.zeros(n, int))
    title = title + pd.Series(np.array(_TITLE_SUFFIXES, dtype=object)[sfx], dtype="str")
    casing = rng.random(n)
    title = title.where(casing >= 0.12, title.str.lower())
    title = title.where((casing < 0.12) | (casing >= 0.15), title.str.upper())
    return title, seniority, _TRACK_DEPT[track]
