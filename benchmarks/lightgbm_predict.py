"""The batch comparator: LightGBM's own ``predict`` on the same feature rows the champion
scores, side by side with the champion's ``score`` in this process.

    .venv/bin/python benchmarks/lightgbm_predict.py --data DATA [--rows 100000]
        [--tracking-uri URI] [--json figures.json]

Rows: the features (``compute_features``) of the first ``--rows`` leads of DATA at the
export's end, computed once and not timed. Then, on those rows:

- LightGBM: ``booster.predict(block, raw_score=True)`` of every LightGBM head the champion
  scores with (conversion, fit, interest and the extra ``p_<target>`` heads), each on its
  own columns as one float block (categories as their training codes, built before the
  clock starts), all cores; with reasons, ``pred_contrib=True`` of the conversion head too.
- leadscore: the model's ``score`` (the one scoring path: probabilities, scores,
  quadrant, reasons); without reasons as well when ``score`` takes ``reasons=``.

Wall and CPU seconds (this process) per side; leads/s = rows / wall seconds.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def head_blocks(model: Any, X: pd.DataFrame) -> list[tuple[str, Any, np.ndarray]]:
    """(name, booster, float block) per LightGBM head, built from the feature rows."""
    heads = {"conversion": model.conversion, "fit": model.fit, "interest": model.interest}
    heads |= {f"p_{t}": h for t, h in getattr(model, "heads", {}).items() if t != model.target}
    out = []
    for name, head in heads.items():
        lgbm = head.lgbm
        if lgbm is None:
            continue
        select = head.estimator.named_steps["select"]
        block = np.empty((len(X), len(select.columns_)))
        for i, c in enumerate(select.columns_):
            if c in select.categories_:
                codes = X[c].astype(select.categories_[c]).cat.codes.to_numpy().astype(float)
                codes[codes < 0] = np.nan
                block[:, i] = codes
            else:
                block[:, i] = X[c].to_numpy(dtype=np.float64, na_value=np.nan)
        out.append((name, lgbm.booster_, block))
    return out


def clock(fn: Any, repeats: int) -> dict[str, float]:
    """Best wall seconds of ``repeats`` calls and the CPU seconds of that call."""
    best = (float("inf"), 0.0)
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - t, time.process_time() - c))
    return {"wall_s": best[0], "cpu_s": best[1]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    a = p.parse_args()
    if a.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = a.tracking_uri

    from crm.contract import data_end, read_tables
    from features.build import compute_features
    from scoring.registry import load_registered

    model = load_registered()
    d = read_tables(a.data)
    moment = data_end(d) + pd.Timedelta(seconds=1)
    leads = d.leads.iloc[: a.rows]
    X = compute_features(leads, d.accounts, d.events, moment, model.feature_config)
    del d
    rows = len(X)
    blocks = head_blocks(model, X)
    threads = os.cpu_count() or 1

    def lgbm_predict() -> None:
        for _, booster, block in blocks:
            booster.predict(block, raw_score=True, num_threads=threads)

    def lgbm_with_contrib() -> None:
        lgbm_predict()
        conv = next(b for b in blocks if b[0] == "conversion")
        conv[1].predict(conv[2], pred_contrib=True, num_threads=threads)

    figures: dict[str, Any] = {"rows": rows, "heads": [b[0] for b in blocks], "threads": threads}
    figures["lightgbm_predict"] = clock(lgbm_predict, a.repeats)
    figures["lightgbm_predict_contrib"] = clock(lgbm_with_contrib, a.repeats)
    model.score(X.iloc[:100])  # warm-up: builds the NumPy heads once
    figures["leadscore_score"] = clock(lambda: model.score(X), a.repeats)
    if "reasons" in inspect.signature(model.score).parameters:
        figures["leadscore_score_no_reasons"] = clock(
            lambda: model.score(X, reasons=False), a.repeats
        )
    for v in figures.values():
        if isinstance(v, dict):
            v["leads_per_s"] = rows / v["wall_s"]
    base, base_c = figures["lightgbm_predict"], figures["lightgbm_predict_contrib"]
    print(f"{rows:,} rows, heads {', '.join(figures['heads'])}, {threads} threads for LightGBM")
    for key, label in (
        ("lightgbm_predict", "LightGBM predict (raw, all heads)"),
        ("lightgbm_predict_contrib", "LightGBM predict + pred_contrib (conversion)"),
        ("leadscore_score_no_reasons", "leadscore score, no reasons"),
        ("leadscore_score", "leadscore score, with reasons"),
    ):
        if key in figures:
            v = figures[key]
            vs = base_c if key == "leadscore_score" else base
            print(
                f"{label:>45}: {v['leads_per_s'] / 1e3:8.1f}k leads/s "
                f"({v['wall_s']:.3f} s wall, {v['cpu_s']:.3f} s CPU); "
                f"{vs['wall_s'] / v['wall_s']:.2f}x LightGBM"
            )
    if a.json:
        a.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
