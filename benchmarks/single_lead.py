"""In-process cost of a /score request, stage by stage: the table path (pydantic parse,
``leads_to_tables`` -> ``score_tables`` -> ``answer_records``) against the per-request path
(``serving.fast_body`` parse, ``scoring.single.score_request``), for a 1-lead and a
1,000-lead request. Prints CPU time
per lead (``time.process_time``: the machine is shared, wall time is not comparable) side
by side; no server, no HTTP. Each request starts after a full collection of a heap whose
model and libraries are frozen out of the collector (``serving.startup.freeze_heap``, as a
worker of the service does); ``score_request`` is also timed with the heap unfrozen.

    .venv/bin/python benchmarks/single_lead.py [--tracking-uri URI] [--repeat 200]

Without --tracking-uri a model is trained on 6,000 simulated leads in a temporary MLflow
store first (~1 minute), as benchmarks/batch.py does.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from batch import _ensure_model  # noqa: E402  (benchmarks/batch.py: trains when needed)
from bodies import sample_requests, score_body  # noqa: E402  (benchmarks/bodies.py)

from features.build import compute_features  # noqa: E402
from features.content import funnel_profile  # noqa: E402
from features.quadrant_policy import assign_quadrants  # noqa: E402
from features.single import request_features, times_ns  # noqa: E402
from features.single_profile import request_profile  # noqa: E402
from scoring.batch import answer_records, input_flags  # noqa: E402
from scoring.reasons import (  # noqa: E402
    contribution_records,
    reasons_from_values,
    records_from_texts,
)
from scoring.single import _block, request_flags, score_request, value_texts  # noqa: E402
from serving.fast_body import decode_score_body  # noqa: E402
from serving.schemas import Lead, leads_to_tables  # noqa: E402
from serving.startup import freeze_heap  # noqa: E402

REF = {"name": "lead-scorer", "version": "1"}


class Body(BaseModel):
    """The /score body as BentoML's pydantic model of the API parses it."""

    leads: list[Lead]
    as_of: datetime | None = None


def _timed(times: dict[str, float], stage: str, fn: Callable[[], Any]) -> Any:
    t = time.process_time()
    out = fn()
    times[stage] = times.get(stage, 0.0) + time.process_time() - t
    return out


def old_path(model: Any, body: bytes, times: dict[str, float]) -> list[dict]:
    req = _timed(times, "parse", lambda: Body.model_validate_json(body))
    moment = pd.Timestamp(req.as_of)
    leads_df, acc, ev, st = _timed(times, "tables", lambda: leads_to_tables(req.leads))
    X = _timed(times, "features", lambda: compute_features(leads_df, acc, ev, moment,
                                                           model.feature_config))  # fmt: skip
    answers, contrib = _timed(times, "model+reasons", lambda: model.score_with_contributions(X))
    answers["contributions"] = _timed(
        times, "model+reasons", lambda: contribution_records(contrib, model.conversion.columns, X)
    )
    profile = _timed(
        times,
        "profile",
        lambda: funnel_profile(leads_df, ev, st, moment, model.personas, model.content),
    )

    def record() -> list[dict]:
        out = answers.join(profile)
        out["flags"] = input_flags(leads_df, acc, X).reindex(out.index).to_numpy()
        return answer_records(out, REF)

    return _timed(times, "flags+record", record)


def _fast_parse(body: bytes) -> tuple[list[Any], datetime | None]:
    parsed = decode_score_body(body)  # msgspec; pydantic for what it leaves
    if parsed is None:
        req = Body.model_validate_json(body)
        return req.leads, req.as_of
    return parsed


def new_path(model: Any, body: bytes, times: dict[str, float]) -> list[dict]:
    leads, moment = _timed(times, "parse", lambda: _fast_parse(body))
    as_of = int(times_ns([moment])[0])
    rows = _timed(times, "features", lambda: request_features(leads, as_of, model.feature_config))

    def scores() -> tuple:
        M = _block(model, rows.layout).matrix(rows)
        p, fit, interest, extra, contributions = model.score_block(M)
        quadrant = assign_quadrants(fit, interest, model.fit_threshold, model.interest_threshold)
        return p, fit, interest, extra, quadrant, contributions

    *_, contributions = _timed(times, "model", scores)
    columns = model.conversion.columns

    def reasons() -> tuple:
        contrib = contributions()
        texts = value_texts(rows, columns)
        return reasons_from_values(contrib, columns, rows.values), records_from_texts(
            contrib, columns, texts
        )

    _timed(times, "model+reasons", reasons)
    _timed(
        times,
        "profile",
        lambda: request_profile(leads, rows.as_of, rows.events, model.personas, model.content),
    )
    _timed(times, "flags+record", lambda: request_flags(leads, rows))
    return []


def run(model: Any, body: bytes, n_leads: int, repeat: int) -> tuple[dict, dict, float]:
    old: dict[str, float] = {}
    new: dict[str, float] = {}
    old_path(model, body, {})  # warm caches (phrases, titles) on both paths
    new_path(model, body, {})
    for _ in range(repeat):
        gc.collect()  # each request starts from a collected heap (not timed), the
        # model frozen out of it as in a worker
        old_path(model, body, old)
        gc.collect()
        new_path(model, body, new)
    scale = 1e3 / repeat / n_leads  # ms per lead
    whole = whole_request(model, body, n_leads, repeat)
    return {k: v * scale for k, v in old.items()}, {k: v * scale for k, v in new.items()}, whole


def whole_request(model: Any, body: bytes, n_leads: int, repeat: int) -> float:
    """CPU ms per lead of ``score_request``, each call after a full collection."""
    leads, moment = _fast_parse(body)
    whole = 0.0
    for _ in range(repeat):
        gc.collect()
        t = time.process_time()
        score_request(model, leads, moment, REF)
        whole += time.process_time() - t
    return whole * 1e3 / repeat / n_leads


def bodies(data: Path) -> dict[int, bytes]:
    from crm.contract import read_tables

    d = read_tables(data)
    out = {}
    for n in (1, 1000):
        _, leads, moment = sample_requests(d, n, seed=n)
        out[n] = score_body(leads, moment)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracking-uri", default=None)
    ap.add_argument("--data", type=Path, default=None, help="simulated tables (default: train)")
    ap.add_argument("--repeat", type=int, default=200, help="1-lead requests (1,000: /100)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        uri = _ensure_model(args.tracking_uri, Path(tmp))
        os.environ["MLFLOW_TRACKING_URI"] = uri
        from scoring.registry import load_registered

        model = load_registered().for_serving()
        data = args.data or Path(tmp) / "train"
        if not (data / "leads.parquet").exists() and args.data is None:
            from crm.simulate import write_simulation

            write_simulation(data, n_leads=6000, seed=11)
        reqs = bodies(data)
    freeze_heap()  # as a worker does once its model is loaded (serving.startup)
    print(f"# {platform.node()} {platform.machine()}, CPU ms per lead (process_time)")
    for n, body in reqs.items():
        repeat = max(args.repeat // (40 if n > 1 else 1), 3)
        old, new, whole = run(model, body, n, repeat)
        print(f"\n{n:,} lead(s) per request, {repeat} requests, {len(body):,} bytes each")
        print(f"{'stage':<16}{'table path':>12}{'per-request':>14}")
        for stage in dict.fromkeys([*old, *new]):
            a, b = old.get(stage), new.get(stage)
            fa = f"{a:12.3f}" if a is not None else f"{'-':>12}"
            fb = f"{b:14.3f}" if b is not None else f"{'-':>14}"
            print(f"{stage:<16}{fa}{fb}")
        total_old, total_new = sum(old.values()), sum(new.values())
        ratio = total_old / total_new
        print(f"{'total':<16}{total_old:12.3f}{total_new:14.3f}   ratio {ratio:.1f}x")
        print(f"{'score_request':<16}{'':>12}{whole:14.3f}   (features..record in one call)")
        gc.unfreeze()  # before: the heap not frozen, a full collection walks the model too
        unfrozen = whole_request(model, body, n, repeat)
        freeze_heap()
        print(f"{'  heap unfrozen':<16}{'':>12}{unfrozen:14.3f}   (before freeze_heap)")


if __name__ == "__main__":
    main()
