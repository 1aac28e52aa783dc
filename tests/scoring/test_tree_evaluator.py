"""The compiled tree evaluator (scoring.trees.TreeEnsemble) gives exactly LightGBM's numbers:
raw scores and pred_contrib (SHAP) equal bit for bit, on random rows with NaN, zeros, tiny
values, negative and unseen category codes, for stumps and deeper trees, numerical and
categorical splits and every missing-value mode."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from scoring.trees import TreeEnsemble


def _data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.exponential(size=n),
            "c": rng.integers(0, 5, n).astype(float),  # many exact zeros
            "d": rng.normal(size=n),
            "cat1": pd.Categorical(rng.choice(list("abcdefghij"), n)),
            "cat2": pd.Categorical(rng.choice(["x", "y", "z", "w"], n)),
        }
    )
    X.loc[rng.random(n) < 0.15, "a"] = np.nan
    X.loc[rng.random(n) < 0.3, "b"] = 0.0
    X.loc[rng.random(n) < 0.1, "cat1"] = np.nan
    logit = (
        np.nan_to_num(X["a"].to_numpy()) * 0.8
        + (X["b"] > 1) * 0.7
        - X["c"] * 0.3
        + X["cat1"].cat.codes.isin([1, 3, 5]) * 1.2
        + (X["cat2"] == "z") * 0.6
        + np.isnan(X["a"]) * 0.5
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    return X, y


def _rows(n_cols: int, cat_cols: list[int], n: int, seed: int) -> np.ndarray:
    """Nasty rows: NaN, exact zeros, +-1e-36 (LightGBM reads them as 0), huge values,
    negative and unseen category codes, fractional codes."""
    rng = np.random.default_rng(seed)
    M = rng.normal(0, 2, (n, n_cols)) * rng.choice([0.0, 0.5, 1.0, 10.0], (n, n_cols))
    M[rng.random((n, n_cols)) < 0.15] = np.nan
    M[rng.random((n, n_cols)) < 0.05] = 1e-36
    M[rng.random((n, n_cols)) < 0.05] = -1e-36
    M[rng.random((n, n_cols)) < 0.02] = 1e300
    for j in cat_cols:
        codes = rng.integers(-3, 40, n).astype(float)
        codes[rng.random(n) < 0.1] = np.nan
        codes[rng.random(n) < 0.05] += 0.5
        codes[rng.random(n) < 0.02] = 5e9
        M[:, j] = codes
    return M


CASES = [
    {"num_leaves": 2},
    {"num_leaves": 2, "n_estimators": 3, "min_child_samples": 2000},  # one-leaf trees
    {"num_leaves": 4},
    {"num_leaves": 7, "max_cat_to_onehot": 32},
    {"num_leaves": 7, "zero_as_missing": True},  # 6 internal nodes: lazy SHAP tables
    {"num_leaves": 15, "zero_as_missing": True},
    {"num_leaves": 31, "use_missing": False, "min_child_samples": 5},
    {"num_leaves": 6, "max_depth": 3, "cat_smooth": 1, "min_data_per_group": 5},
]


@pytest.mark.parametrize("params", CASES, ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_raw_and_contributions_equal_lightgbm_exactly(params):
    X, y = _data(3000, seed=len(str(params)))
    clf = lgb.LGBMClassifier(
        **{"n_estimators": 60, "learning_rate": 0.1, "verbose": -1, "n_jobs": 1, **params}
    )
    clf.fit(X, y)
    booster = clf.booster_
    ens = TreeEnsemble(booster)
    assert ens.supported
    M = _rows(X.shape[1], [4, 5], 4000, seed=1)
    # the training rows too (as codes), where the trees' splits actually bite
    train = X.assign(cat1=X["cat1"].cat.codes, cat2=X["cat2"].cat.codes).to_numpy(float)
    train[train == -1] = np.nan
    M = np.vstack([M, train])
    np.testing.assert_array_equal(ens.raw(M), booster.predict(M, raw_score=True))
    np.testing.assert_array_equal(ens.contributions(M), booster.predict(M, pred_contrib=True))
    for k in (1, 2, 8, 9, 17):  # the few-rows paths
        part = M[-k:]
        np.testing.assert_array_equal(ens.raw(part), booster.predict(part, raw_score=True))
        np.testing.assert_array_equal(
            ens.contributions(part), booster.predict(part, pred_contrib=True)
        )


def test_deep_trees_fall_back_to_lightgbm_for_contributions_and_stay_exact():
    X, y = _data(3000, seed=5)
    clf = lgb.LGBMClassifier(
        n_estimators=20, num_leaves=63, min_child_samples=2, verbose=-1, n_jobs=1
    )
    clf.fit(X, y)
    ens = TreeEnsemble(clf.booster_)
    M = _rows(X.shape[1], [4, 5], 500, seed=2)
    np.testing.assert_array_equal(ens.raw(M), clf.booster_.predict(M, raw_score=True))
    np.testing.assert_array_equal(ens.contributions(M), clf.booster_.predict(M, pred_contrib=True))


def test_best_iteration_is_used_like_predict_does():
    """An early-stopped booster predicts with its best iteration only."""
    X, y = _data(3000, seed=9)
    clf = lgb.LGBMClassifier(n_estimators=40, num_leaves=5, learning_rate=0.3, verbose=-1, n_jobs=1)
    clf.fit(X, y)
    booster = clf.booster_
    booster.best_iteration = 17
    ens = TreeEnsemble(booster)
    assert ens.n_trees == 17
    M = _rows(X.shape[1], [4, 5], 1000, seed=3)
    np.testing.assert_array_equal(ens.raw(M), booster.predict(M, raw_score=True))
    np.testing.assert_array_equal(ens.contributions(M), booster.predict(M, pred_contrib=True))


def test_served_model_heads_are_exact(trained):
    from training.registry import load_version
    from training.tracking import MODEL_NAME

    model = load_version(MODEL_NAME, trained.result.model_version)
    for name, head in model.fast_heads().items():
        ens = TreeEnsemble(head.booster)
        cats = [i for i, c in enumerate(head.columns) if c in head.categories]
        M = _rows(len(head.columns), cats, 3000, seed=4)
        np.testing.assert_array_equal(
            ens.raw(M), head.booster.predict(M, raw_score=True), err_msg=name
        )
        np.testing.assert_array_equal(
            ens.contributions(M), head.booster.predict(M, pred_contrib=True), err_msg=name
        )
