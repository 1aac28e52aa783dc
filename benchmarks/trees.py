"""Tree evaluators side by side: leadscore's (scoring/trees.py, its loops compiled by numba in
scoring/tree_kernels.py) against LightGBM's own
``predict`` / ``pred_contrib`` and, where installed, a compiled forest (tl2cgen, C code
compiled with gcc) and treelite's GTIL interpreter; same model, same rows, one thread.

Run::

    .venv/bin/python benchmarks/trees.py [--rows 100000] [--trees 300] [--leaves 4]
        [--features 60] [--block 50000]

The model is a binary LightGBM trained on simulated rows (numerical features with NaN and
exact zeros, two categorical features), as issue 16 describes the reference. Rows are
scored in blocks of ``--block`` (a batch chunk). Figures: rows per CPU second
(``time.process_time``, best of ``--repeat``) and whether the answers are identical to
LightGBM's (max |difference| otherwise). treelite/tl2cgen are not project dependencies:
``pip install treelite tl2cgen`` into the venv to include them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np

from scoring.trees import TreeEnsemble


def _model(n_features: int, trees: int, leaves: int, seed: int) -> tuple[lgb.Booster, list[int]]:
    rng = np.random.default_rng(seed)
    n = 20_000
    X = rng.normal(size=(n, n_features))
    X[rng.random(X.shape) < 0.1] = np.nan
    X[rng.random(X.shape) < 0.1] = 0.0
    cats = [n_features - 2, n_features - 1]
    for j in cats:
        X[:, j] = rng.integers(0, 12, n)
    w = rng.normal(size=n_features)
    logit = np.nan_to_num(X) @ w / np.sqrt(n_features) + np.isin(X[:, cats[0]], [1, 4, 7])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    params = {
        "objective": "binary",
        "num_leaves": leaves,
        "learning_rate": 0.05,
        "verbose": -1,
        "num_threads": 1,
        "seed": seed,
    }
    data = lgb.Dataset(X, y, categorical_feature=cats)
    return lgb.train(params, data, num_boost_round=trees), cats


def _rows(n: int, n_features: int, cats: list[int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(n, n_features))
    M[rng.random(M.shape) < 0.1] = np.nan
    M[rng.random(M.shape) < 0.1] = 0.0
    for j in cats:
        M[:, j] = rng.integers(-1, 14, n)
    return M


def _timed(fn: Callable[[np.ndarray], np.ndarray], M: np.ndarray, block: int, repeat: int):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.process_time()
        out = np.concatenate([fn(M[a : a + block]) for a in range(0, len(M), block)])
        best = min(best, time.process_time() - t)
    return best, out


def _compiled(booster: lgb.Booster, work: Path) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """tl2cgen (C, gcc -O2) and treelite GTIL raw scores, when the packages are installed."""
    try:
        import tl2cgen
        import treelite
    except ImportError:
        return {}
    model = treelite.frontend.from_lightgbm(booster)
    lib = work / "forest.so"
    t = time.perf_counter()
    tl2cgen.export_lib(model, toolchain="gcc", libpath=str(lib), params={"parallel_comp": 8})
    print(f"tl2cgen: compiled in {time.perf_counter() - t:.1f} s wall", flush=True)
    pred = tl2cgen.Predictor(str(lib), nthread=1)

    def tl2cgen_raw(M: np.ndarray) -> np.ndarray:
        dmat = tl2cgen.DMatrix(M, dtype="float64")
        return np.asarray(pred.predict(dmat, pred_margin=True)).reshape(len(M))

    def gtil_raw(M: np.ndarray) -> np.ndarray:
        out = treelite.gtil.predict(model, M, pred_margin=True, nthread=1)
        return np.asarray(out).reshape(len(M))

    return {"tl2cgen compiled raw": tl2cgen_raw, "treelite GTIL raw": gtil_raw}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--trees", type=int, default=300)
    p.add_argument("--leaves", type=int, default=4)
    p.add_argument("--features", type=int, default=60)
    p.add_argument("--block", type=int, default=50_000)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--seed", type=int, default=3)
    a = p.parse_args()
    booster, cats = _model(a.features, a.trees, a.leaves, a.seed)
    M = _rows(a.rows, a.features, cats, a.seed + 1)
    t = time.process_time()
    ens = TreeEnsemble(booster)
    ens.contributions(M[:2000])  # the SHAP tables of the patterns these rows meet
    setup = time.process_time() - t

    def lgb_raw(X: np.ndarray) -> np.ndarray:
        return booster.predict(X, raw_score=True, num_threads=1)

    def lgb_contrib(X: np.ndarray) -> np.ndarray:
        return booster.predict(X, pred_contrib=True, num_threads=1)

    def both(X: np.ndarray) -> np.ndarray:  # what a scored lead with reasons costs
        decided = ens.decide(X)
        return np.column_stack([decided.raw, ens.contributions(X, decided)])

    raw_methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "LightGBM predict raw": lgb_raw,
        "leadscore TreeEnsemble.raw": ens.raw,
    }
    with tempfile.TemporaryDirectory(prefix="leadscore-trees-") as work:
        raw_methods.update(_compiled(booster, Path(work)))
        ref_raw = lgb_raw(M)
        rows = []
        for name, fn in raw_methods.items():
            cpu, out = _timed(fn, M, a.block, a.repeat)
            rows.append((name, cpu, out, ref_raw))
    ref_contrib = lgb_contrib(M)
    for name, fn, ref in (
        ("LightGBM pred_contrib", lgb_contrib, ref_contrib),
        ("leadscore TreeEnsemble.contributions", ens.contributions, ref_contrib),
        ("leadscore decide + raw + contributions", both, None),
    ):
        cpu, out = _timed(fn, M, a.block, a.repeat)
        if ref is None:
            ref = np.column_stack([ref_raw, ref_contrib])
        rows.append((name, cpu, out, ref))
    print(
        f"\n{a.trees} trees x {a.leaves} leaves, {a.features} features, {a.rows:,} rows in "
        f"blocks of {a.block:,}, one thread (SHAP tables set up in {setup:.2f} CPU s)\n"
    )
    print("| evaluator | rows / CPU s | vs LightGBM's own call | answers vs LightGBM |")
    print("|---|---:|---:|---|")
    base = {"raw": rows[0][1], "contrib": next(r[1] for r in rows if "pred_contrib" in r[0])}
    for name, cpu, out, ref in rows:
        kind = "contrib" if "contrib" in name else "raw"
        diff = (
            np.nanmax(np.abs(np.asarray(out, dtype=float) - ref)) if out.shape == ref.shape else -1
        )
        same = "identical" if np.array_equal(out, ref, equal_nan=True) else f"max diff {diff:.3g}"
        print(f"| {name} | {a.rows / cpu:,.0f} | {base[kind] / cpu:.2f}x | {same} |")


if __name__ == "__main__":
    main()
