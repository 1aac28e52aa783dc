"""Worker memory at the largest request the service accepts: 1,000 leads carrying
MAX_EVENTS_PER_REQUEST events in all, their text fields padded until the body is just under
MAX_BODY_BYTES (serving/limits.py). One worker, so every request lands on it; its peak RSS
(VmHWM in /proc) is read before and after. Prints figures; installs nothing.

    .venv/bin/python benchmarks/request_memory.py --data data/demo [--repeat 3]

Needs a trained, promoted model in the MLflow store (MLFLOW_TRACKING_URI or ./mlruns).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd

from crm.contract import data_end, read_tables
from serving.limits import MAX_BODY_BYTES, MAX_EVENTS_PER_REQUEST, count_events
from serving.model_store import import_registered
from serving.process import free_port, server_processes, start_server, stop_server, wait_ready
from serving.schemas import MAX_LEADS_PER_REQUEST, tables_to_requests
from training.tracking import MODEL_NAME, tracking_uri

TOKEN = "benchmark-token-0123456789abcdef"


def largest_body(data: Path) -> bytes:
    """1,000 real leads, MAX_EVENTS_PER_REQUEST events over them (each lead's own events
    repeated), topics and content ids padded so the body is just under the byte cap."""
    d = read_tables(data)
    moment = data_end(d) + pd.Timedelta(seconds=1)
    picks = d.leads.sample(n=MAX_LEADS_PER_REQUEST, random_state=1)
    leads = tables_to_requests(picks, d.accounts, d.events, moment, d.stage_history)
    per_lead = MAX_EVENTS_PER_REQUEST // len(leads)
    filler = {"type": "page_view", "at": (moment - pd.Timedelta(days=1)).isoformat()}
    for lead in leads:
        own = lead["events"] or [filler]
        lead["events"] = [dict(e) for e in (own * (per_lead // len(own) + 1))[:per_lead]]

    def body(pad: int) -> bytes:
        for lead in leads:
            for e in lead["events"]:
                e["topic"] = ("t" * pad)[:200]
                e["content_id"] = ("c" * pad)[:200]
        return json.dumps({"leads": leads, "as_of": moment.isoformat()}).encode()

    lo, hi = 0, 200  # largest padding that keeps the body under the cap
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(body(mid)) <= MAX_BODY_BYTES:
            lo = mid
        else:
            hi = mid - 1
    return body(lo)


def kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    body = largest_body(args.data)
    model = import_registered(MODEL_NAME, "champion", tracking_uri())
    print(f"# largest accepted request, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; "
        f"model {model.tag}"
    )
    print(
        f"body: {len(body):,} bytes (limit {MAX_BODY_BYTES:,}), {count_events(body):,} events "
        f"(limit {MAX_EVENTS_PER_REQUEST:,}), {MAX_LEADS_PER_REQUEST:,} leads"
    )
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="leadscore-memory-"))
    proc = start_server(
        str(model.tag),
        port,
        extra_env={
            "LEADSCORE_API_TOKENS": TOKEN,
            "LEADSCORE_WORKERS": "1",
            "LEADSCORE_DB_URL": f"sqlite:///{tmp / 'predictions.db'}",
        },
        log_file=tmp / "server.log",
    )
    try:
        wait_ready(port, proc, timeout=240)
        (worker,) = server_processes(proc)
        rss0, hwm0 = kib(worker.pid, "VmRSS"), kib(worker.pid, "VmHWM")
        print(f"worker {worker.pid} after warm-up: RSS {rss0 / 1024:.0f} MiB")
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        for i in range(args.repeat):
            t0 = time.perf_counter()
            r = httpx.post(
                f"http://127.0.0.1:{port}/score", content=body, headers=auth, timeout=120
            )
            took = time.perf_counter() - t0
            if r.status_code != 200:
                raise SystemExit(f"answered {r.status_code}: {r.text[:300]}")
            hwm = kib(worker.pid, "VmHWM")
            print(
                f"request {i + 1}: 200 in {took:.1f} s; worker peak RSS {hwm / 1024:.0f} MiB "
                f"(+{(hwm - rss0) / 1024:.0f} MiB over the idle worker), RSS now "
                f"{kib(worker.pid, 'VmRSS') / 1024:.0f} MiB"
            )
        print(
            f"worker memory at the largest accepted request: peak {hwm / 1024:.0f} MiB RSS "
            f"(idle after warm-up {rss0 / 1024:.0f} MiB, peak before {hwm0 / 1024:.0f} MiB)"
        )
    finally:
        stop_server(proc)


if __name__ == "__main__":
    main()
