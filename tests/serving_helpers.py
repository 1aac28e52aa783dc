"""Helpers for tests that run the real HTTP service: start it with tokens, a prediction log
and a captured log file; build request bodies from the simulated CRM."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

API_TOKEN = "leadscore-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
LEAD_KEY_SECRET = "leadscore-test-secret-0123456789abcdef"


@dataclass
class Served:
    url: str
    proc: Any
    log: Path
    db_url: str
    model_tag: str
    env: dict[str, str] = field(default_factory=dict)


def start_served(
    trained: Any,
    workdir: Path,
    name: str,
    env: dict[str, str] | None = None,
    db_url: str | None = None,
    timeout: float = 180,
    target: str = "serving.service:LeadScoringService",
) -> Served:
    from serving.model_store import import_registered
    from serving.process import free_port, start_server, stop_server, wait_ready
    from training.tracking import MODEL_NAME

    model = import_registered(MODEL_NAME, "champion", trained.tracking_uri)
    port = free_port()
    db = db_url or f"sqlite:///{workdir / f'{name}-{uuid.uuid4().hex[:6]}.db'}"
    full_env = {
        "LEADSCORE_API_TOKENS": API_TOKEN,
        "LEADSCORE_DB_URL": db,
        "LEADSCORE_LEAD_KEY_SECRET": LEAD_KEY_SECRET,
        **(env or {}),
    }
    log = workdir / f"{name}-{port}.log"
    proc = start_server(str(model.tag), port, extra_env=full_env, log_file=log, target=target)
    try:
        wait_ready(port, proc, timeout=timeout)
    except BaseException:
        stop_server(proc)
        raise
    return Served(f"http://127.0.0.1:{port}", proc, log, db, str(model.tag), full_env)


def crm_sample(data_dir: Path, n: int = 30, seed: int = 3):
    """(data, picked leads, as_of) from the simulated CRM."""
    from crm.contract import data_end, read_tables

    d = read_tables(data_dir)
    moment = data_end(d) + pd.Timedelta(seconds=1)
    return d, d.leads.sample(n=n, random_state=seed), moment


def request_leads(d: Any, picks: pd.DataFrame, moment: pd.Timestamp) -> list[dict]:
    from serving.schemas import tables_to_requests

    return tables_to_requests(picks, d.accounts, d.events, moment, d.stage_history)


def read_log(db_url: str):
    from serving.predlog import PredictionLog

    log = PredictionLog(db_url, secret=LEAD_KEY_SECRET.encode())
    try:
        return log.read_predictions(), log.read_outcomes()
    finally:
        log.close()
