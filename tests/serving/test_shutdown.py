"""Issue 18 with real processes: `leadscore serve` loads the artifact a recreated MLflow store
registered (not a cached model of the same name and version) and stops with everything it
started on SIGTERM under load; a SIGKILLed BentoML server takes its workers with it; a port
still in use gets a clear message; a request past its deadline is stopped and not logged."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from serving_helpers import (
    API_TOKEN,
    AUTH,
    LEAD_KEY_SECRET,
    crm_sample,
    read_log,
    request_leads,
    start_served,
)

from serving.loadgen import run_load
from serving.process import DRAIN_S, free_port, port_in_use, server_processes, stop_server

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def _cli(*args: str, env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "leadscore"), *args], env=env, capture_output=True, text=True, **kw
    )


def _gone(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of ``procs`` still running (zombies count as gone)."""
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def _kill_all(procs: list[psutil.Process]) -> None:
    for p in _gone(procs):
        p.kill()


@pytest.fixture(scope="module")
def bodies(trained):
    d, picks, moment = crm_sample(trained.data_dir, n=100, seed=21)
    leads = request_leads(d, picks, moment)
    return lambda i: {"leads": [leads[i % len(leads)]], "as_of": moment.isoformat()}


@pytest.fixture(scope="module")
def recreated_store(isolated_stores, small_sim_dir, tmp_path_factory):
    """An MLflow store at one URI: version 1 trained for ``sal`` and imported into the
    (session's) BentoML store, then the store deleted and recreated at the same URI with a
    different version 1 (trained for ``mql``). Training runs in subprocesses, as a user would
    run it, so no MLflow client of this process holds the deleted database."""
    import json

    from training.tracking import MODEL_NAME

    root = tmp_path_factory.mktemp("recreated")
    # what is checked is which artifact is served, not its quality: the session's small
    # export trains in about half the time of the session's model
    data = small_sim_dir
    store = root / "mlruns"
    uri = f"sqlite:///{store / 'mlflow.db'}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_REGISTRY_URI": uri,  # MLflow exports the session store's in this process
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    runs = []
    for target in ("sal", "mql"):
        if store.exists():
            shutil.rmtree(store)
        store.mkdir()
        res = _cli("train", "--data", str(data), "--target", target, "--json", env=env)
        assert res.returncode == 0, res.stderr[-2000:]
        out = json.loads(res.stdout.strip().splitlines()[-1])  # the version and its run
        assert (out["model"], out["version"], out["target"]) == (MODEL_NAME, "1", target), out
        runs.append(out["run_id"])
        if target == "sal":
            old = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "from serving.model_store import import_registered as i;"
                    f"print(i({MODEL_NAME!r}, '1', {uri!r}).tag)",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            old_tag = old.stdout.strip().splitlines()[-1]
    assert runs[0] != runs[1]
    return {"uri": uri, "env": env, "old_tag": old_tag, "old_run": runs[0], "new_run": runs[1]}


@pytest.fixture(scope="module")
def cli_server(recreated_store, workdir):
    """`leadscore serve --alias 1` on the recreated store, in a session of its own."""
    port = free_port()
    db = f"sqlite:///{workdir / f'cli-serve-{port}.db'}"
    env = {
        **recreated_store["env"],
        "LEADSCORE_API_TOKENS": API_TOKEN,
        "LEADSCORE_DB_URL": db,
        "LEADSCORE_LEAD_KEY_SECRET": LEAD_KEY_SECRET,
    }
    out = workdir / f"cli-serve-{port}.log"
    with open(out, "wb") as f:
        proc = subprocess.Popen(
            [str(BIN / "leadscore"), "serve", "--port", str(port), "--alias", "1"],
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    tree: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, out.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError(f"not ready: {out.read_text()[-3000:]}")
        tree = psutil.Process(proc.pid).children(recursive=True)
        yield {"proc": proc, "port": port, "url": f"http://127.0.0.1:{port}", "out": out}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(DRAIN_S + 10)
            except subprocess.TimeoutExpired:
                proc.kill()
        _kill_all(tree)


def test_serve_loads_the_new_artifact_of_a_recreated_store(recreated_store, cli_server):
    r = httpx.get(f"{cli_server['url']}/model", headers=AUTH)
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["version"] == "1"
    assert card["target"] == "mql", card  # the new version 1, not the cached sal model
    said = cli_server["out"].read_text()
    assert recreated_store["new_run"] in said, said[-2000:]  # the CLI names the artifact
    assert recreated_store["old_tag"] not in said
    # ... and so does the worker's "ready" log line
    assert f"run {recreated_store['new_run']}" in said.split("ready: model", 1)[-1], said[-2000:]


def test_sigterm_to_leadscore_serve_under_load_stops_server_and_workers(cli_server, bodies):
    proc, port = cli_server["proc"], cli_server["port"]
    tree = psutil.Process(proc.pid).children(recursive=True)
    assert len(tree) >= 3, tree  # bentoml serve and its 2 workers
    results = []

    def load():
        results.append(
            run_load(
                f"{cli_server['url']}/score",
                bodies,
                6,
                connections=8,
                headers=AUTH,
                timeout=15,
                keep=lambda b: b["request_id"],
            )
        )

    t = threading.Thread(target=load)
    t.start()
    time.sleep(2.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)  # to the command only, as a supervisor would
    assert proc.wait(DRAIN_S + 5) == 0
    while _gone(tree) and time.monotonic() - sent < DRAIN_S:
        time.sleep(0.2)
    took = time.monotonic() - sent
    t.join(30)
    assert not _gone(tree), [p.cmdline() for p in _gone(tree)]
    assert port_in_use("127.0.0.1", port) is None
    print(f"SIGTERM -> all {len(tree) + 1} processes gone and port free in {took:.1f} s")
    assert took < DRAIN_S
    res = results[0]
    assert res.ok > 10, res.summary()


def test_sigkilled_server_takes_its_workers_and_a_busy_port_is_named(trained, workdir, bodies):
    served = start_served(trained, workdir, "sigkill", env={"LEADSCORE_REQUEST_DEADLINE_S": "0.2"})
    workers = server_processes(served.proc)
    try:
        assert len(workers) >= 2, workers
        port = int(served.url.rsplit(":", 1)[1])
        # a second server on the same port: one clear line, exit code 2, no traceback
        env = {**os.environ, **served.env, "PATH": f"{BIN}:{os.environ['PATH']}"}
        second = _cli("serve", "--port", str(port), env=env, timeout=120)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr + second.stdout

        # the deadline: a big request is stopped (503) and nothing of it is logged
        d, picks, moment = crm_sample(trained.data_dir, n=1000, seed=4)
        big = request_leads(d, picks, moment)
        for lead in big:
            lead["events"] = (lead["events"] * 100)[:100]
        r = httpx.post(
            f"{served.url}/score",
            json={"leads": big, "as_of": moment.isoformat()},
            headers=AUTH,
            timeout=60,
        )
        assert r.status_code == 503, r.text[:500]
        assert "deadline" in r.json()["error"], r.text
        small = httpx.post(f"{served.url}/score", json=bodies(0), headers=AUTH, timeout=30)
        assert small.status_code == 200, small.text
        rid = small.json()["request_id"]
        for _ in range(60):
            preds, _ = read_log(served.db_url)
            if rid in set(preds["request_id"]):
                break
            time.sleep(0.5)
        assert set(preds["request_id"]) == {rid}, preds["request_id"].value_counts()

        served.proc.send_signal(signal.SIGKILL)  # the BentoML server, not its workers
        served.proc.wait(10)
        start = time.monotonic()
        while _gone(workers) and time.monotonic() - start < DRAIN_S:
            time.sleep(0.2)
        took = time.monotonic() - start
        assert not _gone(workers), [p.pid for p in _gone(workers)]
        print(f"SIGKILL to the server: its {len(workers)} workers gone in {took:.1f} s")
        assert port_in_use("127.0.0.1", port) is None
    finally:
        stop_server(served.proc)
        _kill_all(workers)
