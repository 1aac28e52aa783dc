"""Monitoring (issue 17), end to end: the real `bentoml serve` scores simulated traffic
whose feature mix shifts half-way (the second fortnight's leads come from bigger companies
of one industry and view the pricing page many times), the CRM posts outcomes whose rate
has nothing to do with the scores, and the real `leadscore monitor` CLI flags the shifted
features, the calibration drift and the lost ranking, and not the features left alone; on
SQLite and on PostgreSQL. ``GET /monitor`` says the same behind the token and fills the
Prometheus gauges. The page opens in headless Chromium with its charts drawn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from serving_helpers import AUTH, read_log, start_served
from test_history import temp_database

SHIFTED = {"log_employees", "size_band", "industry", "n_pricing_view_7d", "n_pricing_view_30d"}
STABLE = {"source", "seniority", "department", "country", "region", "do_not_email"}
WEEK_A = pd.Timestamp("2025-06-02")  # a Monday: ISO week 2025-W23
WEEK_B = WEEK_A + pd.Timedelta(days=14)  # 2025-W25
N_PER_WEEK = 250
SHOTS = Path(__file__).resolve().parents[1] / "e2e" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _shift_times(body: dict, delta: pd.Timedelta) -> dict:
    def moved(text: str) -> str:
        return (pd.Timestamp(text) + delta).isoformat()

    return {
        **body,
        "created_at": moved(body["created_at"]),
        "events": [{**e, "at": moved(e["at"])} for e in body["events"]],
        "stages": [{**s, "entered_at": moved(s["entered_at"])} for s in body["stages"]],
    }


def _shifted_mix(body: dict, as_of: pd.Timestamp, industry: str) -> dict:
    """Bigger companies of one industry, and eight pricing-page views in the last days."""
    company = dict(body.get("company") or {})
    company["employees"] = float(company.get("employees") or 50) * 40
    company["industry"] = industry
    views = [
        {"type": "pricing_view", "at": (as_of - pd.Timedelta(hours=6 + 12 * i)).isoformat()}
        for i in range(8)
    ]
    return {**body, "company": company, "events": [*body["events"], *views]}


@pytest.fixture(scope="module")
def traffic(trained):
    """(request bodies with their as_of, outcomes): MQL leads scored at the snapshot ages
    the model was trained at, moved in time so that half fall in week A, half in week B;
    the week-B half with the shifted mix. Outcomes: 60 % of all leads reach SAL 3 days
    after they were scored, whatever their score."""
    from crm.contract import read_tables
    from serving.schemas import tables_to_requests

    d = read_tables(trained.data_dir)
    rng = np.random.default_rng(17)
    sh = d.stage_history
    mql = sh[sh["stage"] == "mql"].drop_duplicates("lead_id").set_index("lead_id")["entered_at"]
    sal = sh[sh["stage"] == "sal"].drop_duplicates("lead_id").set_index("lead_id")["entered_at"]
    from scoring.registry import load_registered

    ages = load_registered().metadata["snapshot_ages_days"]
    picks = mql.sample(frac=1.0, random_state=17)
    industries = d.accounts["industry"].dropna().value_counts()
    rare = str(industries.index[-1])
    chosen = []  # (lead_id, as_of, target, converts): one generator, drawn lead by lead
    end = d.events["at"].max()
    for lead_id, entered in picks.items():
        # as training takes its snapshots: the age after entry, plus one second
        as_of = pd.Timestamp(entered) + pd.Timedelta(days=int(rng.choice(ages)), seconds=1)
        reached = sal.get(lead_id)
        if as_of >= end or (reached is not None and reached <= as_of):
            continue
        week = len(chosen) // N_PER_WEEK
        if week > 1:
            break
        target = (WEEK_A if week == 0 else WEEK_B) + pd.Timedelta(hours=float(rng.uniform(0, 110)))
        chosen.append((lead_id, as_of, target, rng.uniform() < 0.6))
    # the chosen leads' rows once, so each body is cut from small tables
    ids = {lead_id for lead_id, *_ in chosen}
    by_lead = {
        name: frame[frame["lead_id"].isin(ids)]
        for name, frame in (("leads", d.leads), ("events", d.events), ("stages", sh))
    }
    bodies, outcomes = [], []
    for lead_id, as_of, target, converts in chosen:
        week = len(bodies) // N_PER_WEEK
        leads = by_lead["leads"][by_lead["leads"]["lead_id"] == lead_id]
        (body,) = tables_to_requests(leads, d.accounts, by_lead["events"], as_of, by_lead["stages"])
        body = _shift_times(body, target - as_of)
        if week == 1:
            body = _shifted_mix(body, target, rare)
        body["lead_id"] = f"mon-{lead_id}"
        bodies.append((body, target))
        if converts:
            at = (target + pd.Timedelta(days=3)).isoformat()
            outcomes.append({"lead_id": body["lead_id"], "stage": "sal", "at": at})
    assert len(bodies) == 2 * N_PER_WEEK
    return bodies, outcomes


def _send(server, traffic) -> None:
    """One lead a request, as a CRM sends them, over 4 connections (each lead is scored
    once, as of its own moment: the order does not matter)."""
    bodies, outcomes = traffic

    def score(client: httpx.Client, body: dict, as_of: pd.Timestamp) -> None:
        payload = {"leads": [body], "as_of": as_of.isoformat()}
        r = client.post(f"{server.url}/score", json=payload, headers=AUTH, timeout=60)
        assert r.status_code == 200, r.text

    with httpx.Client() as client, ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda item: score(client, *item), bodies))
    r = httpx.post(f"{server.url}/outcomes", json={"outcomes": outcomes}, headers=AUTH, timeout=60)
    assert r.status_code == 200 and r.json()["stored"] == len(outcomes), r.text
    deadline = time.monotonic() + 30
    while len(read_log(server.db_url)[0]) < len(bodies) and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def monitored(request, trained, workdir, traffic):
    """A server of its own, its log filled with the traffic, and the CLI's JSON and page."""
    from serving.process import stop_server

    with temp_database(request.param, workdir) as url:
        served = start_served(trained, workdir, f"monitor-{request.param}", db_url=url)
        try:
            _send(served, traffic)
            page = workdir / f"monitor-{request.param}.html"
            cli = subprocess.run(
                [str(Path(sys.executable).parent / "leadscore"), "monitor", "--db", url,
                 "--json", "--out", str(page), "--period", "week"],
                env={**os.environ, "MLFLOW_TRACKING_URI": trained.tracking_uri},
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert cli.returncode == 0, cli.stderr[-3000:]
            yield served, json.loads(cli.stdout), page
        finally:
            stop_server(served.proc)


def _flagged(report: dict, week: str) -> set[str]:
    return {
        d["name"]
        for d in report["drift"]
        if d["kind"] == "feature" and d["period"] == week and d["flagged"]
    }


def _check(report: dict) -> None:
    assert report["volume"] == {"2025-W23": N_PER_WEEK, "2025-W25": N_PER_WEEK}
    week_a, week_b = _flagged(report, "2025-W23"), _flagged(report, "2025-W25")
    assert SHIFTED <= week_b, week_b
    assert week_a == set(), week_a  # the first fortnight is the training mix: no alarm
    assert not STABLE & week_b, week_b
    alerts = report["alerts"]
    assert any(a.startswith("industry drifted in week 2025-W25: PSI ") for a in alerts), alerts
    # outcomes at 60 % whatever the score: the deciles and the ranking are off
    assert report["outcomes_known"] == 2 * N_PER_WEEK
    assert any(b["flagged"] for b in report["calibration_by_decile"])
    assert any(a.startswith("leads scored ") and "converted at" in a for a in alerts), alerts
    auc = report["realised_auc"]
    assert auc["flagged"] and auc["ci_low"] < 0.5 < auc["ci_high"], auc


def test_the_monitor_flags_the_shift_and_the_calibration_drift(monitored, trained):
    from mlflow.tracking import MlflowClient

    _served, report, page = monitored
    _check(report)
    html = page.read_text()
    assert html.count('<img class="chart" src="data:image/png;base64,') == 3
    run = MlflowClient(trained.tracking_uri).get_run(report["mlflow_run_id"])
    assert run.data.tags["leadscore.run_kind"] == "monitoring"
    assert run.data.metrics["alerts"] == len(report["alerts"])
    names = {
        f.path
        for f in MlflowClient(trained.tracking_uri).list_artifacts(run.info.run_id, "monitor")
    }
    assert names == {"monitor/monitor.html", "monitor/monitor.json"}


def test_get_monitor_says_the_same_and_fills_the_gauges(monitored):
    served, cli_report, _page = monitored
    r = httpx.get(f"{served.url}/monitor?format=json&days=3650", headers=AUTH, timeout=120)
    assert r.status_code == 200, r.text
    report = r.json()
    _check(report)
    assert report["flagged_features"] == cli_report["flagged_features"]
    page = httpx.get(f"{served.url}/monitor?days=3650", headers=AUTH, timeout=120)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "drifted in week 2025-W25" in page.text
    scrape = httpx.get(f"{served.url}/metrics", timeout=30).text
    assert 'leadscore_feature_psi{feature="industry"}' in scrape
    assert 'leadscore_calibration_gap{decile="1"}' in scrape
    assert "leadscore_realised_roc_auc" in scrape


def test_get_monitor_needs_a_token_and_names_a_bad_parameter(monitored):
    served, _report, _page = monitored
    r = httpx.get(f"{served.url}/monitor", timeout=30)
    assert r.status_code == 401 and r.json()["field"] == "Authorization"
    r = httpx.get(f"{served.url}/monitor?period=month", headers=AUTH, timeout=30)
    assert r.status_code == 400 and r.json()["field"] == "period"
    docs = httpx.get(f"{served.url}/docs.json", timeout=30).json()
    assert docs["paths"]["/monitor"]["get"]["security"] == [{"bearer": []}]


@pytest.fixture(scope="module")
def browser():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: the browser test needs them")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--window-size=1200,1600"):  # fmt: skip
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()


def test_the_page_renders_in_a_browser(monitored, browser):
    from selenium.webdriver.common.by import By

    _served, _report, page = monitored
    browser.get(page.as_uri())
    sizes = browser.execute_script(
        "return [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight,"
        " i.getBoundingClientRect().width])"
    )
    assert len(sizes) == 3 and all(c and w > 0 and h > 0 and shown > 0 for c, w, h, shown in sizes)
    alerts = browser.find_element(By.ID, "alerts")
    assert alerts.is_displayed() and "drifted in week 2025-W25" in alerts.text
    SHOTS.mkdir(exist_ok=True)
    (SHOTS / ".gitignore").write_text("*\n")
    browser.set_window_size(1200, browser.execute_script("return document.body.scrollHeight"))
    shot = SHOTS / f"monitor-{page.stem}.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
