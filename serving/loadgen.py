"""A small asyncio + httpx load generator for the service: closed loop (N connections
sending back to back) or open loop (a fixed request rate), for a fixed time. Used by
``benchmarks/serve.py`` and the reliability tests; loopback only."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float] = field(default_factory=list)  # successful answers, seconds
    statuses: Counter = field(default_factory=Counter)  # status code or exception name
    answers: list[Any] = field(default_factory=list)  # kept bodies of 200 answers
    rejections: list[float] = field(default_factory=list)  # non-200 answers, seconds

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def errors(self) -> int:
        return sum(n for k, n in self.statuses.items() if k != 200)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def slowest_rejection(self) -> float:
        return max(self.rejections, default=0.0)

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")

    def rejection_pct(self, q: float) -> float:
        """Percentile of the non-200 answers' latency, ms (nan without any)."""
        return float(np.percentile(self.rejections, q)) * 1000 if self.rejections else float("nan")

    def summary(self) -> str:
        return (
            f"{self.rps:8.1f} req/s  p50 {self.pct(50):6.1f} ms  p99 {self.pct(99):6.1f} ms  "
            f"ok {self.ok}  errors {self.errors} {dict(self.statuses)}"
        )


async def _run(
    url: str,
    make_body: Callable[[int], Any],
    seconds: float,
    connections: int,
    rate: float | None,
    headers: dict[str, str],
    timeout: float,
    keep: Callable[[Any], Any] | None,
) -> LoadResult:
    res = LoadResult(seconds)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    counter = iter(range(10**9))
    async with httpx.AsyncClient(limits=limits, timeout=timeout, headers=headers) as client:

        async def one() -> None:
            body = make_body(next(counter))
            t0 = time.perf_counter()
            try:
                r = await client.post(url, json=body)
            except httpx.HTTPError as e:
                res.statuses[type(e).__name__] += 1
                return
            dt = time.perf_counter() - t0
            res.statuses[r.status_code] += 1
            if r.status_code == 200:
                res.latencies.append(dt)
                if keep is not None:
                    res.answers.append(keep(r.json()))
            else:
                res.rejections.append(dt)

        start = time.perf_counter()
        end = start + seconds
        if rate is None:

            async def worker() -> None:
                while time.perf_counter() < end:
                    await one()

            await asyncio.gather(*(worker() for _ in range(connections)))
        else:
            sem = asyncio.Semaphore(connections)
            tasks = []

            async def limited() -> None:
                async with sem:
                    await one()

            i = 0
            while (now := time.perf_counter()) < end:
                due = start + i / rate
                if due > now:
                    await asyncio.sleep(due - now)
                tasks.append(asyncio.create_task(limited()))
                i += 1
            await asyncio.gather(*tasks)
        res.seconds = time.perf_counter() - start
    return res


def run_load(
    url: str,
    make_body: Callable[[int], Any],
    seconds: float,
    connections: int = 16,
    rate: float | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    keep: Callable[[Any], Any] | None = None,
) -> LoadResult:
    """Drive ``url`` with POSTs of ``make_body(i)``; closed loop unless ``rate`` (req/s)."""
    return asyncio.run(
        _run(url, make_body, seconds, connections, rate, headers or {}, timeout, keep)
    )


__all__ = ["LoadResult", "run_load"]
