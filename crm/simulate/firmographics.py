"""Accounts: industry, size, revenue and country, and the part of fit they carry."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

INDUSTRIES: tuple[str, ...] = (
    "software",
    "manufacturing",
    "retail",
    "finance",
    "healthcare",
    "education",
    "public_sector",
    "logistics",
    "energy",
    "media",
)
_INDUSTRY_P = np.array([0.16, 0.20, 0.10, 0.09, 0.09, 0.06, 0.06, 0.09, 0.07, 0.08])
_INDUSTRY_FIT = np.array([0.8, 0.7, -0.3, 0.0, 0.1, -0.7, -0.5, 0.3, 0.3, -0.4])
_INDUSTRY_REV_PER_EMP = np.array(
    [220e3, 180e3, 150e3, 400e3, 120e3, 60e3, 80e3, 160e3, 500e3, 170e3]
)
# persona mix tilts per industry (multiplies subscriber, evaluator, marketer base weights)
INDUSTRY_PERSONA_TILT = np.array(
    [
        [0.8, 1.4, 1.0],
        [1.3, 1.1, 0.7],
        [0.8, 0.7, 1.7],
        [0.9, 1.0, 1.2],
        [1.2, 1.0, 0.8],
        [1.1, 1.0, 0.9],
        [1.3, 0.9, 0.7],
        [1.2, 1.0, 0.8],
        [1.2, 1.1, 0.7],
        [0.7, 0.8, 1.8],
    ]
)
COUNTRIES: tuple[str, ...] = (
    "DE", "AT", "CH", "US", "GB", "FR", "NL", "ES", "IT", "PL", "SE", "DK", "BE", "IN", "BR", "CA",
)  # fmt: skip
_COUNTRY_P = np.array(
    [0.28, 0.06, 0.06, 0.13, 0.08, 0.06, 0.05, 0.04, 0.05, 0.04, 0.02, 0.02, 0.02, 0.04, 0.03, 0.02]
)
_COUNTRY_FIT = np.array(
    [0.6, 0.6, 0.6, 0.3, 0.3, 0.2, 0.2, 0.0, 0.0, 0.0, 0.2, 0.2, 0.2, -0.6, -0.6, 0.1]
)


@dataclass(frozen=True)
class AccountDraws:
    """One element per account: industry and country codes, size, revenue, and ``fit``,
    the account's part of the fit logit (industry, a mid-market bump, country)."""

    industry: np.ndarray
    employees: np.ndarray
    revenue: np.ndarray
    country: np.ndarray
    log_employees: np.ndarray
    fit: np.ndarray


def draw_accounts(rng: np.random.Generator, n_acc: int) -> AccountDraws:
    industry = rng.choice(len(INDUSTRIES), n_acc, p=_INDUSTRY_P / _INDUSTRY_P.sum())
    employees = np.clip(np.round(np.exp(rng.normal(math.log(150), 1.9, n_acc))), 1, 100_000)
    revenue = np.round(
        employees * _INDUSTRY_REV_PER_EMP[industry] * np.exp(rng.normal(0, 0.5, n_acc)), -3
    )
    country = rng.choice(len(COUNTRIES), n_acc, p=_COUNTRY_P / _COUNTRY_P.sum())
    log_emp = np.log10(employees)
    size_fit = np.clip(0.9 - 0.4 * (log_emp - 2.8) ** 2, -1.2, 0.9)
    acc_fit = _INDUSTRY_FIT[industry] + size_fit + _COUNTRY_FIT[country]
    return AccountDraws(industry, employees, revenue, country, log_emp, acc_fit)
