"""Shadow benchmark: what scoring a shadow model beside the champion costs the answers.
The same single-lead requests at 4 connections against the champion served without and
with the `shadow` alias's model (serving/shadow.py), side by side, and the p99 ratio
(goal <= 1.2); also how many leads the shadow scored and how many requests it dropped
(it runs on idle CPU only, so on a saturated machine it falls behind and drops).

    .venv/bin/python benchmarks/shadow.py --data data/demo [--seconds 15] [--rounds 5]

Needs a champion and a `shadow` alias in the MLflow store (`leadscore shadow set VERSION`).
Rounds alternate without/with, so a machine that gets busier meanwhile hurts both. Each
run starts a fresh server, and how its two workers happen to split the 4 connections
(2-2, 3-1 or 4-0) moves a run's p99 by tens of percent: take several rounds (the p99 is
over all of them), or ``--workers 1``, which leaves that luck out. Each run also prints
the workers' CPU per request and the shadow's CPU per lead scored.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil

from crm.contract import data_end, read_tables
from serving.loadgen import LoadResult, run_load
from serving.model_store import import_registered
from serving.process import free_port, start_server, stop_server, wait_ready
from serving.schemas import tables_to_requests
from training.tracking import MODEL_NAME, tracking_uri

TOKEN = "benchmark-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _metric(text: str, name: str) -> float:
    return sum(float(x.split()[-1]) for x in text.splitlines() if x.startswith(name))


def _tree_times(pid: int) -> list[tuple[str, float]]:
    """(kind, CPU seconds so far) of each process under the server: "workers" (a worker of
    `bentoml serve`), "shadow" (a worker's shadow process) or "" (anything else)."""
    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for p in procs:
        try:
            cmd, t = " ".join(p.cmdline()), p.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        kind = "shadow" if "spawn_main" in cmd else "workers" if "worker.service" in cmd else ""
        out.append((kind, t.user + t.system))
    return out


def tree_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the server's workers and by their shadow
    processes."""
    used = {"workers": 0.0, "shadow": 0.0}
    for kind, cpu in _tree_times(pid):
        if kind:
            used[kind] += cpu
    return used


def worker_cpu(pid: int) -> list[float]:
    """CPU seconds used so far by each worker of the server (in process order)."""
    return [cpu for kind, cpu in _tree_times(pid) if kind == "workers"]


def wait_shadow_loaded(log: Path, workers: int = 2, timeout: float = 240) -> None:
    """Until every worker's shadow process says it loaded its model (the server log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if text.count("shadow model") and text.count(" loaded (") >= workers:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the shadow processes did not load their model in {timeout:.0f} s")


def measure(
    champion: str, shadow: str | None, make_body, seconds: float, folder: Path, workers: int = 2
) -> tuple[LoadResult, dict[str, float]]:
    """One server (with or without the shadow): warm-up, then ``seconds`` at 4 connections;
    the load result and the shadow's counters at the end."""
    port = free_port()
    env = {
        "LEADSCORE_API_TOKENS": TOKEN,
        "LEADSCORE_DB_URL": f"sqlite:///{folder / f'shadow-bench-{port}.db'}",
        "LEADSCORE_WORKERS": str(workers),
    }
    if shadow is not None:
        env["LEADSCORE_SHADOW_MODEL"] = shadow
    proc = start_server(champion, port, extra_env=env, log_file=folder / f"server-{port}.log")
    try:
        wait_ready(port, proc, timeout=240)
        url = f"http://127.0.0.1:{port}/score"
        if shadow is not None:  # its processes load the model after the workers are ready
            wait_shadow_loaded(folder / f"server-{port}.log", workers)
        run_load(url, make_body, 3, 4, headers=AUTH)  # warm-up
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        scored_before = _metric(text, "leadscore_shadow_scored_leads_total")
        cpu_before = tree_cpu(proc.pid)
        result = run_load(url, make_body, seconds, 4, headers=AUTH)
        time.sleep(2.0)  # the shadow finishes what is queued
        cpu = {k: v - cpu_before[k] for k, v in tree_cpu(proc.pid).items()}
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        counters = {
            k: _metric(text, f"leadscore_shadow_{k}")
            for k in ("scored_leads_total", "failures_total", "dropped_total")
        }
        counters["scored_measured"] = counters["scored_leads_total"] - scored_before
        counters["worker_cpu_ms_per_request"] = cpu["workers"] * 1000 / max(result.ok, 1)
        scored = max(counters["scored_measured"], 1)
        counters["shadow_cpu_ms_per_lead"] = cpu["shadow"] * 1000 / scored
    finally:
        stop_server(proc)
    return result, counters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=5, help="without/with pairs, alternating")
    ap.add_argument(
        "--workers",
        type=int,
        default=2,
        help="worker processes (1: no luck in how the connections split between workers)",
    )
    args = ap.parse_args()

    d = read_tables(args.data)
    moment = data_end(d) + pd.Timedelta(seconds=1)
    picks = d.leads.sample(n=min(1000, len(d.leads)), random_state=1)
    leads = tables_to_requests(picks, d.accounts, d.events, moment, d.stage_history)
    uri = tracking_uri()
    champion = import_registered(MODEL_NAME, "champion", uri)
    shadow = import_registered(MODEL_NAME, "shadow", uri)

    def body(i: int) -> dict:
        return {"leads": [leads[i % len(leads)]], "as_of": moment.isoformat()}

    print(f"# shadow benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; champion {champion.tag} "
        f"(v{champion.info.labels.get('mlflow_version')}), shadow {shadow.tag} "
        f"(v{shadow.info.labels.get('mlflow_version')}); {args.workers} worker(s); single-lead "
        "requests, 4 connections, "
        f"{args.seconds:g} s per run, {args.rounds} round(s)"
    )
    runs: dict[str, list[LoadResult]] = {"without shadow": [], "with shadow": []}
    costs: dict[str, list[dict[str, float]]] = {"without shadow": [], "with shadow": []}
    with tempfile.TemporaryDirectory(prefix="leadscore-shadow-bench-") as tmp:
        for _ in range(args.rounds):
            for name, tag in (("without shadow", None), ("with shadow", str(shadow.tag))):
                res, c = measure(
                    str(champion.tag), tag, body, args.seconds, Path(tmp), args.workers
                )
                runs[name].append(res)
                costs[name].append(c)
    counters = costs["with shadow"]
    p99 = {}
    for name, results in runs.items():
        for i, (r, c) in enumerate(zip(results, costs[name], strict=True), 1):
            cpu = f"  worker CPU {c['worker_cpu_ms_per_request']:.1f} ms/request"
            if name == "with shadow":
                cpu += (
                    f", shadow CPU {c['shadow_cpu_ms_per_lead']:.2f} ms/lead "
                    f"({c['scored_measured']:.0f} leads)"
                )
            print(f"{name:>15} round {i}: {r.summary()}{cpu}")
        latencies = np.concatenate([np.asarray(r.latencies) for r in results])
        p99[name] = float(np.percentile(latencies, 99)) * 1000
        p50 = float(np.percentile(latencies, 50)) * 1000
        rps = sum(r.ok for r in results) / sum(r.seconds for r in results)
        print(
            f"{name:>15} all rounds: {rps:8.1f} req/s  p50 {p50:6.1f} ms  p99 {p99[name]:6.1f} ms"
        )
    ratio = p99["with shadow"] / p99["without shadow"]
    print(f"p99 with / without shadow: {ratio:.2f} (goal <= 1.20)")
    scored = sum(c["scored_leads_total"] for c in counters)
    dropped = sum(c["dropped_total"] for c in counters)
    failed = sum(c["failures_total"] for c in counters)
    served = sum(r.ok for r in runs["with shadow"])
    print(
        f"shadow: {scored:.0f} leads scored, {dropped:.0f} requests dropped (queue full), "
        f"{failed:.0f} failed, of {served} measured requests (plus warm-up)"
    )


if __name__ == "__main__":
    main()
