"""No training data inside what MLflow stores: the pickled model holds no raw job titles
(the persona title cache is left out of the pickle), and the input example helper makes
rows from summaries instead of copying leads."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from features.personas import load_personas
from training.example import PLACEHOLDER, safe_input_example

TITLES = ["VP Marketing at Jane Doe Consulting", "jane.doe@customer.com", "Head of IT"]


def test_persona_title_cache_is_not_pickled_and_refills():
    cfg = load_personas()
    cfg.compiled.title_evidence(pd.Series(TITLES))
    assert set(TITLES) <= set(cfg.compiled.title_cache)  # the cache is in use
    blob = pickle.dumps(cfg)
    for title in TITLES:
        assert title.encode() not in blob, title
    again = pickle.loads(blob)
    assert again.compiled.title_cache == {}
    np.testing.assert_array_equal(
        again.compiled.title_evidence(pd.Series(TITLES)),
        cfg.compiled.title_evidence(pd.Series(TITLES)),
    )


@pytest.mark.slow
def test_registered_model_pickle_holds_no_training_job_title(trained):
    from crm.contract import read_tables

    titles = read_tables(trained.data_dir).leads["job_title"].dropna().astype(str).unique()
    # words the shipped persona definitions contain (e.g. the role pattern \bdeveloper\b)
    # are in any pickle of them: a title that is only such a word proves nothing
    shipped = pickle.dumps(load_personas())
    titles = [t for t in titles if len(t) >= 8 and t.encode() not in shipped]
    assert len(titles) > 20
    pickles = list((trained.store / "artifacts").rglob("*.pkl"))
    assert pickles, "no pickled model found in the store"
    for path in pickles:
        blob = path.read_bytes()
        found = [t for t in titles if t.encode() in blob]
        assert not found, (path.name, found[:5])


def test_safe_input_example_keeps_columns_and_dtypes_and_copies_no_text():
    X = pd.DataFrame(
        {
            "employees": [10.0, 200.0, np.nan, 40.0],
            "n_visits": np.array([1, 2, 3, 10], dtype="int64"),
            "do_not_email": [True, False, False, False],
            "industry": pd.Categorical(["software", "software", "retail", None]),
            "email": pd.Categorical(["a@x.com", "a@x.com", "b@y.com", "c@z.com"]),
            "job_title": pd.Series(["Head of IT", "CTO", "Jane's CFO", None], dtype="str"),
            "note": pd.Series(["call jane.doe@customer.com", "x", "y", "z"], dtype=object),
            "created_at": pd.to_datetime(["2025-01-01", "2025-01-03", "2025-01-05", None]),
            "all_missing": [np.nan] * 4,
        }
    )
    ex = safe_input_example(X, n=3)
    assert list(ex.columns) == list(X.columns) and len(ex) == 3
    assert (ex.dtypes == X.dtypes).all(), pd.concat([X.dtypes, ex.dtypes], axis=1)
    assert ex["employees"].tolist() == [40.0] * 3  # the median
    assert ex["n_visits"].tolist() == [2] * 3  # median 2.5, rounded, still int64
    assert ex["do_not_email"].tolist() == [False] * 3
    assert ex["industry"].tolist() == ["software"] * 3  # a category from a closed set
    assert ex["email"].isna().all()  # the most frequent value is an e-mail: not used
    assert ex["job_title"].tolist() == [PLACEHOLDER] * 3
    assert ex["note"].tolist() == [PLACEHOLDER] * 3
    assert ex["created_at"].tolist() == [pd.Timestamp("2025-01-03")] * 3
    assert ex["all_missing"].isna().all()
    text = ex.to_json()
    for raw in ("Head of IT", "CTO", "jane", "@", "x.com"):
        assert raw not in text, raw


def test_safe_input_example_refuses_no_rows():
    with pytest.raises(ValueError, match="at least 1"):
        safe_input_example(pd.DataFrame({"a": [1.0]}), n=0)
