"""The ``POST /score`` requests the benchmarks send: a seeded sample of a data folder's
leads with their events, as of the data's end (one piece for serve.py, big_request.py and
single_lead.py)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from crm.contract import data_end
from serving.schemas import tables_to_requests


def sample_requests(d: Any, n: int, seed: int = 1) -> tuple[pd.DataFrame, list[dict], pd.Timestamp]:
    """``n`` leads of the tables ``d`` (``crm.contract.read_tables``), sampled with ``seed``:
    their rows, the same leads as request leads, and the moment they are scored as of (one
    second after the data's last record)."""
    moment = data_end(d) + pd.Timedelta(seconds=1)
    picks = d.leads.sample(n=min(n, len(d.leads)), random_state=seed)
    return picks, tables_to_requests(picks, d.accounts, d.events, moment, d.stage_history), moment


def score_body(leads: list[dict], moment: pd.Timestamp) -> bytes:
    """The JSON body of a ``POST /score`` with these leads, as of ``moment``."""
    return json.dumps({"leads": leads, "as_of": moment.isoformat()}).encode()
