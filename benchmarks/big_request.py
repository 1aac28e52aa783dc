"""One 1,000-lead `/score` request, timed against a real `bentoml serve`, for this checkout
and (side by side, in the same run) for another one, e.g. the commit before a change:

    git worktree add /tmp/leadscore-before <rev>
    .venv/bin/python benchmarks/big_request.py --data data/demo --baseline /tmp/leadscore-before

Each variant gets a fresh server (its code imported from its own checkout, the same
champion, the same venv) and a fresh SQLite prediction log; the same request (1,000 leads
of the data with their events, as of the data's end) is sent ``--repeat`` times one after
the other. The first request finds no earlier answers; every later one finds the previous
answer of each lead (``changed_because``), as a CRM re-scoring a list does; ``--gap``
seconds apart (0.3: the log's writer thread has written the last answers; 0: back to
back, the writer's work overlapping the next request). Printed per
variant: the first request, the median and best of the later ones (wall ms at the
client), and the server's CPU per request (its worker processes, psutil). ``--rounds``
alternates the variants to spread the machine's drift. Needs a promoted champion in the
MLflow store (MLFLOW_TRACKING_URI); installs nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bodies import sample_requests, score_body  # noqa: E402  (benchmarks/bodies.py)
from shadow import tree_cpu  # noqa: E402  (benchmarks/shadow.py: the workers' CPU)

from crm.contract import read_tables  # noqa: E402
from serving.model_store import import_registered  # noqa: E402
from serving.process import free_port, start_server, stop_server, wait_ready  # noqa: E402
from training.tracking import MODEL_NAME, tracking_uri  # noqa: E402

TOKEN = "benchmark-token-0123456789"


def run_variant(
    checkout: Path, tag: str, body: bytes, repeat: int, work: Path, name: str, gap: float
) -> dict[str, float]:
    """Serve from ``checkout``, send the request ``repeat`` times, stop; the figures."""
    port = free_port()
    db = work / f"{name}-{port}.db"
    env = {
        "LEADSCORE_API_TOKENS": TOKEN,
        "LEADSCORE_DB_URL": f"sqlite:///{db}",
        # the checkout's packages before the venv's editable install of this one
        "PYTHONPATH": str(checkout),
    }
    log = work / f"{name}-{port}.log"
    proc = start_server(tag, port, extra_env=env, log_file=log, cwd=checkout)
    times = []
    try:
        wait_ready(port, proc, timeout=240)
        url = f"http://127.0.0.1:{port}/score"
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        cpu0 = tree_cpu(proc.pid)["workers"]
        with httpx.Client(timeout=120) as client:
            for _ in range(repeat):
                t0 = time.perf_counter()
                r = client.post(url, content=body, headers=headers)
                times.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"{name}: {r.status_code} {r.text[:300]}")
                time.sleep(gap)  # the log's writer thread writes between requests
        cpu = (tree_cpu(proc.pid)["workers"] - cpu0) / repeat
    finally:
        stop_server(proc)
    later = times[1:]
    return {
        "first_ms": times[0] * 1000,
        "median_ms": statistics.median(later) * 1000,
        "best_ms": min(later) * 1000,
        "cpu_ms": cpu * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="simulated tables")
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout to compare")
    ap.add_argument("--leads", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument(
        "--gap", type=float, default=0.3, help="seconds between requests (0: back to back)"
    )
    ap.add_argument("--work", type=Path, default=ROOT / "data" / "big-request")
    args = ap.parse_args()
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)

    _, leads, moment = sample_requests(read_tables(args.data), args.leads)
    body = score_body(leads, moment)
    tag = str(import_registered(MODEL_NAME, "champion", tracking_uri()).tag)
    n_events = sum(len(lead["events"]) for lead in leads)

    variants = {"this checkout": ROOT}
    if args.baseline is not None:
        variants = {"baseline": args.baseline.resolve(), **variants}
    print(f"# one {len(leads):,}-lead request ({n_events:,} events, {len(body):,} bytes), "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")  # fmt: skip
    print(f"machine: {platform.node()}, {os.cpu_count()} cores; model {tag}; gap {args.gap} s")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for r in range(args.rounds):
        for name, checkout in variants.items():
            res = run_variant(
                checkout, tag, body, args.repeat, args.work, name.split()[0], args.gap
            )
            runs[name].append(res)
            print(f"round {r + 1}, {name} ({checkout}): first {res['first_ms']:.0f} ms, "
                  f"later median {res['median_ms']:.0f} ms, best {res['best_ms']:.0f} ms, "
                  f"server CPU {res['cpu_ms']:.0f} ms/request", flush=True)  # fmt: skip
    print("\n| variant | later requests, median ms | best ms | first ms | server CPU ms/request |")
    print("|---|---:|---:|---:|---:|")
    for name, results in runs.items():
        med = statistics.median(x["median_ms"] for x in results)
        best = min(x["best_ms"] for x in results)
        first = statistics.median(x["first_ms"] for x in results)
        cpu = statistics.median(x["cpu_ms"] for x in results)
        print(f"| {name} | {med:.0f} | {best:.0f} | {first:.0f} | {cpu:.0f} |")
    print("\ngoal: 1,000 leads <= 250 ms median (issue 16)")


if __name__ == "__main__":
    main()
