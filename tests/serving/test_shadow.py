"""The shadow challenger (issue 17 part 4), against real `bentoml serve` processes and a real
MLflow registry: with a shadow model the answers are byte-identical to those without it
(request ids aside) and the shadow's answers land in ``shadow_predictions``, keyed and
paired with the champion's; a shadow model whose scoring raises on every call fails no
request and is counted in /metrics; ``leadscore promote --evidence shadow`` compares the
two on posted outcomes (paired, with intervals), and says when there are too few."""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import UTC, datetime

import httpx
import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from serving_helpers import AUTH, LEAD_KEY_SECRET, crm_sample, read_log, request_leads, start_served
from typer.testing import CliRunner

from serving.predlog import PredictionLog, lead_key
from training.tracking import MODEL_NAME

REQUEST_ID = re.compile(rb'"request_id":"[0-9a-f]{32}"')
ALIASES = ("champion", "challenger", "shadow")


def _alias(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


@pytest.fixture(scope="module")
def shadow_version(trained):
    """A second registered version of the session's model (another seed), set as `shadow`
    with `leadscore shadow set`; the session's aliases are put back afterwards."""
    from leadscore.cli import app
    from training.train import train

    client = MlflowClient(trained.tracking_uri)
    before = {a: _alias(client, MODEL_NAME, a) for a in ALIASES}
    result = train(trained.data_dir, target="sal", seed=12)
    res = CliRunner().invoke(app, ["shadow", "set", str(result.model_version)])
    assert res.exit_code == 0, res.output
    assert f"-> {result.model_version}" in res.output
    try:
        yield str(result.model_version)
    finally:
        for alias, v in before.items():
            if v is None:
                if _alias(client, MODEL_NAME, alias) is not None:
                    client.delete_registered_model_alias(MODEL_NAME, alias)
            else:
                client.set_registered_model_alias(MODEL_NAME, alias, v)


def _serve(trained, workdir, name: str, shadow_ref: tuple[str, str] | None):
    from serving.model_store import import_registered

    env = {}
    if shadow_ref is not None:
        shadow = import_registered(shadow_ref[0], shadow_ref[1], trained.tracking_uri)
        env["LEADSCORE_SHADOW_MODEL"] = str(shadow.tag)
    return start_served(trained, workdir, name, env=env)


@pytest.fixture(scope="module")
def servers(trained, workdir, shadow_version):
    """Two fresh servers of the champion, each with its own log: one with the shadow."""
    from serving.process import stop_server

    plain = _serve(trained, workdir, "shadow-off", None)
    try:
        shadowed = _serve(trained, workdir, "shadow-on", (MODEL_NAME, "shadow"))
        try:
            yield plain, shadowed
        finally:
            stop_server(shadowed.proc)
    finally:
        stop_server(plain.proc)


def _wait_rows(read, n: int, seconds: float = 120) -> pd.DataFrame:
    deadline = time.monotonic() + seconds
    while True:
        rows = read()
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def _shadow_rows(db_url: str) -> pd.DataFrame:
    log = PredictionLog(db_url, secret=LEAD_KEY_SECRET.encode())
    try:
        return log.read_shadow_predictions()
    finally:
        log.close()


def test_answers_are_byte_identical_with_a_shadow_and_it_is_logged(
    trained, servers, shadow_version
):
    plain, shadowed = servers
    d, picks, moment = crm_sample(trained.data_dir, n=36, seed=29)
    leads = request_leads(d, picks, moment)
    bodies = [leads[:1], leads[1:6], leads[6:36]]  # distinct leads: no changed_because
    for leads_part in bodies:
        body = {"leads": leads_part, "as_of": moment.isoformat()}
        a = httpx.post(f"{plain.url}/score", json=body, headers=AUTH, timeout=120)
        b = httpx.post(f"{shadowed.url}/score", json=body, headers=AUTH, timeout=120)
        assert a.status_code == b.status_code == 200, (a.text[:300], b.text[:300])
        assert REQUEST_ID.sub(b"ID", a.content) == REQUEST_ID.sub(b"ID", b.content)
        assert b"shadow" not in b.content
    champion_rows = _wait_rows(lambda: read_log(shadowed.db_url)[0], 36)
    rows = _wait_rows(lambda: _shadow_rows(shadowed.db_url), 36)
    assert len(champion_rows) == 36 and len(rows) == 36
    assert set(rows["model_version"]) == {shadow_version}
    assert set(champion_rows["model_version"]) != {shadow_version}
    # each shadow row pairs with the champion's row for the same lead in the same request
    pairs = rows.merge(champion_rows, on=["request_id", "lead_key"], suffixes=("_s", "_c"))
    assert len(pairs) == 36
    assert (pairs["p_convert_s"] != pairs["p_convert_c"]).any()  # another model
    # keyed by the lead key, never the raw id; no raw id anywhere in the rows
    keys = {lead_key(lead["lead_id"], LEAD_KEY_SECRET.encode()) for lead in leads}
    assert set(rows["lead_key"]) == keys
    raw_ids = "|".join(re.escape(lead["lead_id"]) for lead in leads)
    assert not rows.astype(str).apply(lambda c: c.str.contains(raw_ids)).any().any()
    # the answers' own table holds no shadow row; the plain server has no shadow table rows
    assert len(_shadow_rows(plain.db_url)) == 0
    metrics = httpx.get(f"{shadowed.url}/metrics", timeout=10).text
    assert _metric(metrics, "leadscore_shadow_scored_leads_total") == 36
    assert _metric(metrics, "leadscore_shadow_failures_total") == 0


def _metric(text: str, name: str) -> float:
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name)]
    return sum(values)


@pytest.fixture(scope="module")
def broken_version(trained):
    """A real MLflow pyfunc in the registry whose scoring raises on every call: the
    session's model with a quadrant cut-off that cannot be compared (None)."""
    from scoring.model import LeadScoringPyfunc
    from scoring.registry import load_registered

    model = load_registered(MODEL_NAME, "champion")
    broken = dataclasses.replace(model, fit_threshold=None)
    name = "lead-scorer-broken-shadow"
    mlflow.set_tracking_uri(trained.tracking_uri)
    mlflow.set_registry_uri(trained.tracking_uri)
    with mlflow.start_run(run_name="broken-shadow"):
        info = mlflow.pyfunc.log_model(name="model", python_model=LeadScoringPyfunc(broken))
    version = mlflow.register_model(info.model_uri, name)
    return name, str(version.version)


def test_a_failing_shadow_fails_no_request_and_is_counted(trained, workdir, broken_version):
    from serving.process import stop_server

    served = _serve(trained, workdir, "shadow-broken", broken_version)
    try:
        d, picks, moment = crm_sample(trained.data_dir, n=8, seed=31)
        leads = request_leads(d, picks, moment)
        for lead in leads:
            r = httpx.post(
                f"{served.url}/score",
                json={"leads": [lead], "as_of": moment.isoformat()},
                headers=AUTH,
                timeout=60,
            )
            assert r.status_code == 200, r.text[:300]
            assert r.json()["scores"][0]["lead_id"] == lead["lead_id"]
        deadline = time.monotonic() + 120
        while True:
            metrics = httpx.get(f"{served.url}/metrics", timeout=10).text
            failed = _metric(metrics, "leadscore_shadow_failures_total")
            if failed >= len(leads) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert failed == len(leads)
        assert _metric(metrics, "leadscore_shadow_scored_leads_total") == 0
        assert len(_shadow_rows(served.db_url)) == 0
        assert len(_wait_rows(lambda: read_log(served.db_url)[0], len(leads))) == len(leads)
        _sigkill_takes_the_shadows_too(served)
    finally:
        stop_server(served.proc)
    log = served.log.read_text()
    assert "shadow model failed on" in log and "TypeError" in log
    assert log.count("shadow model failed on") <= 2  # once per interval and worker


def _sigkill_takes_the_shadows_too(served) -> None:
    """A SIGKILLed server takes its workers with it (serving.startup.watch_parent), and a
    worker's shadow process stops once its worker is gone: nothing is left behind."""
    import signal

    import psutil

    tree = psutil.Process(served.proc.pid).children(recursive=True)
    shadows = [p for p in tree if "multiprocessing.spawn" in " ".join(p.cmdline())]
    assert len(shadows) >= 2, [p.cmdline() for p in tree]
    served.proc.send_signal(signal.SIGKILL)
    served.proc.wait(10)
    _, alive = psutil.wait_procs(tree, timeout=30)
    assert not alive, [(p.pid, p.cmdline()) for p in alive]


# ------------------------------------------------------- promote --evidence shadow


def _evidence_sample(data_dir, n_negative: int = 260):
    """Leads not yet converted 120 days before the export's end, scored as of then; the
    ones that reached `sal` since are the positives (all of them), plus some that did not."""
    from crm.contract import data_end, read_tables

    d = read_tables(data_dir)
    end = data_end(d)
    as_of = end - pd.Timedelta(days=120)
    leads = d.leads[d.leads["created_at"] < as_of]
    sh = d.stage_history
    later = sh[sh["stage"].astype(str).isin(["sal", "opportunity", "customer"])]
    first = leads["lead_id"].map(later.groupby("lead_id")["entered_at"].min())
    eligible = leads[~(first < as_of)]
    converted = eligible["lead_id"].map(later.groupby("lead_id")["entered_at"].min()).notna()
    picks = pd.concat(
        [eligible[converted], eligible[~converted].sample(n=n_negative, random_state=5)]
    )
    return d, picks, as_of + pd.Timedelta(seconds=1), set(eligible.loc[converted, "lead_id"])


def _promote_evidence(db_url: str, *extra: str):
    from leadscore.cli import app

    args = ["promote", "--evidence", "shadow", "--db", db_url, *extra]
    return CliRunner().invoke(app, args, terminal_width=200, env={"COLUMNS": "200"})


def _post_outcomes(server, lead_ids, positives) -> None:
    at = datetime.now(UTC).replace(microsecond=0).isoformat()
    outcomes = [
        {"lead_id": i, "stage": "sal", "accepted": i in positives, "at": at} for i in lead_ids
    ]
    r = httpx.post(f"{server.url}/outcomes", json={"outcomes": outcomes}, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text[:300]


def test_promote_with_shadow_evidence_compares_on_live_outcomes(trained, servers, shadow_version):
    _, shadowed = servers
    d, picks, moment, positives = _evidence_sample(trained.data_dir)
    leads = request_leads(d, picks, moment)
    before = len(_shadow_rows(shadowed.db_url))
    for i in range(0, len(leads), 200):
        body = {"leads": leads[i : i + 200], "as_of": moment.isoformat()}
        r = httpx.post(f"{shadowed.url}/score", json=body, headers=AUTH, timeout=120)
        assert r.status_code == 200, r.text[:300]
    assert len(_wait_rows(lambda: _shadow_rows(shadowed.db_url), before + len(leads))) == (
        before + len(leads)
    )
    ids = [lead["lead_id"] for lead in leads]
    time.sleep(1.1)  # the outcomes come after the scores

    _post_outcomes(shadowed, ids[:12], positives)
    few = _promote_evidence(shadowed.db_url)
    assert few.exit_code == 1, few.output
    assert "only 12 leads with outcomes scored by both models" in few.output
    assert "need at least 200" in few.output
    client = MlflowClient(trained.tracking_uri)
    assert _alias(client, MODEL_NAME, "shadow") == shadow_version  # nothing moved

    _post_outcomes(shadowed, ids[12:], positives)
    res = _promote_evidence(shadowed.db_url)
    out = res.output
    assert res.exit_code in (0, 1), out
    n = len(ids)
    print(out)  # the comparison, for the record (pytest -s)
    assert f"on {n} live leads with outcomes ({len(positives)} reached sal), paired" in out
    for metric in ("roc_auc", "log_loss", "brier"):
        row = rf"{metric}\W+\d\.\d{{4}}\W+\d\.\d{{4}}\W+[+-]\d\.\d{{4}}\W+\[[+-]\d\.\d{{4}}, "
        assert re.search(row, out), metric
    assert "shadow vs champion, same time holdout" in out  # the gate, beside it
    assert "live evidence: the shadow" in out
    if res.exit_code == 0:  # promoted: the shadow is the champion, the alias is cleared
        assert _alias(client, MODEL_NAME, "champion") == shadow_version
        assert _alias(client, MODEL_NAME, "shadow") is None
    else:
        assert "refused" in out and _alias(client, MODEL_NAME, "shadow") == shadow_version


def test_shadow_set_and_clear_say_what_they_did(trained, shadow_version):
    """Runs after the evidence test (which may have promoted the shadow); the module's
    fixture puts the session's aliases back."""
    from leadscore.cli import app

    client = MlflowClient(trained.tracking_uri)
    champion = _alias(client, MODEL_NAME, "champion")
    runner = CliRunner()
    same = runner.invoke(app, ["shadow", "set", champion])
    assert same.exit_code == 2 and "is the champion" in same.output
    missing = runner.invoke(app, ["shadow", "set", "999"])
    assert missing.exit_code == 2 and "no version 999" in missing.output
    other = "1" if champion != "1" else shadow_version
    assert runner.invoke(app, ["shadow", "set", other]).exit_code == 0
    cleared = runner.invoke(app, ["shadow", "clear"])
    assert cleared.exit_code == 0 and f"version {other} is no longer scored" in cleared.output
    assert _alias(client, MODEL_NAME, "shadow") is None
    again = runner.invoke(app, ["shadow", "clear"])
    assert again.exit_code == 0 and "nothing to clear" in again.output
