"""Per-lead reasons: signed LightGBM contributions that add up to the raw score, in plain
words, on every scored lead."""

from __future__ import annotations

import numpy as np
import pytest

from crm.vocabulary import EVENT_TYPES
from scoring.reasons import phrase
from training.registry import load_version
from training.tracking import MODEL_NAME


@pytest.fixture(scope="module")
def model_and_holdout(trained):
    from crm.contract import read_tables
    from training.dataset import build_training_set

    model = load_version(MODEL_NAME, trained.result.model_version)
    data = read_tables(trained.data_dir)
    ts = build_training_set(data, model.target, model.horizon_days, model.feature_config)
    hold = ts.split().holdout
    return model, ts.X.iloc[hold]


def test_contributions_plus_bias_equal_raw_score_for_top_100(model_and_holdout):
    model, X = model_and_holdout
    scored = model.score(X)
    top = scored["p_convert"].to_numpy().argsort()[::-1][:100]
    Xt = X.iloc[top]
    contrib = model.contributions(Xt)
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy(), model.raw_score(Xt), atol=1e-9)


def test_every_scored_lead_has_signed_reasons_in_words(model_and_holdout):
    model, X = model_and_holdout
    scored = model.score(X.iloc[:50])
    assert {"p_mql", "p_sal", "p_convert", "reasons"} <= set(scored.columns)
    for reasons in scored["reasons"]:
        assert 1 <= len(reasons) <= 6
        ups = [r for r in reasons if r["contribution"] > 0]
        downs = [r for r in reasons if r["contribution"] < 0]
        assert len(ups) <= 3 and len(downs) <= 3
        assert [r["contribution"] for r in ups] == sorted(
            (r["contribution"] for r in ups), reverse=True
        )
        for r in reasons:
            assert set(r) == {"feature", "value", "contribution", "text"}
            assert isinstance(r["text"], str) and r["text"]


def test_one_lead_is_fast(model_and_holdout):
    import time

    model, X = model_and_holdout
    model.for_serving()
    one = X.iloc[:1]
    model.score(one)
    t0 = time.perf_counter()
    for _ in range(5):
        model.score(one)
    assert (time.perf_counter() - t0) / 5 < 0.25


@pytest.mark.parametrize(
    ("feature", "value", "words"),
    [
        ("days_since_last_live", 3.0, "webinar or trade fair 3 days ago"),
        ("size_band", "5000+", "company with 5000+ employees"),
        ("n_webinar_attended_30d", 2.0, "2 webinars attended in the last 30 days"),
        ("n_demo_request_7d", 0.0, "no demo request in the last 7 days"),
        ("free_mail", 1.0, "free-mail"),
        ("industry", None, "industry unknown"),
        ("attr_budget_band", "high", "budget band: high"),
    ],
)
def test_phrases_read_like_a_sales_rep_would_say_it(feature, value, words):
    assert words in phrase(feature, value)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_of_the_vocabulary_has_its_own_words(event_type):
    # a counter of an event type without words would fall back to "n <type> 30d: 2"
    assert phrase(f"n_{event_type}_30d", 2.0).endswith("in the last 30 days")


def _mixed_values(rng, n: int):
    """Feature values of every kind the reasons phrase: -0.0 and 0.0, NaN, None, missing
    categories, nullable floats, text."""
    import numpy as np
    import pandas as pd

    return pd.DataFrame(
        {
            "lead_age_days": rng.choice([0.0, -0.0, 1.0, 2.4, np.nan, 400.0], n),
            "industry": pd.Categorical(rng.choice(["saas", "retail", None], n)),
            "attr_tier": pd.Series(rng.choice(["gold", None, "silver"], n), dtype=object),
            "counter_logins": pd.array(rng.choice([1.5, None, 0.0], n), dtype="Float64"),
            "decay_web": rng.random(n) * 4,
        }
    )


def test_reasons_phrase_each_lead_value_as_phrase_does_row_by_row():
    """Words made once per distinct value (float bit pattern, category code) are the words
    ``phrase``/``value_text`` give each lead's own value: -0.0 and 0.0, NaN, None, missing
    categories and nullable floats included."""
    import numpy as np
    import pandas as pd

    from scoring.reasons import phrase, reasons_from_array, value_text

    rng = np.random.default_rng(4)
    n = 400
    X = _mixed_values(rng, n)
    contrib = rng.normal(size=(n, X.shape[1] + 1))
    got = reasons_from_array(contrib, list(X.columns), X)
    for i, reasons in enumerate(got):
        for r in reasons:
            v = X[r["feature"]].to_numpy()[i]
            v = np.nan if v is not None and not isinstance(v, str) and pd.isna(v) else v
            if isinstance(v, np.floating):
                v = float(v)
            assert (r["value"], r["text"]) == (value_text(v), phrase(r["feature"], v))


def test_a_lead_alone_gets_the_reasons_it_gets_among_others():
    """One lead (the one-lead request's plain-Python path) against the same lead in a batch
    (the array path): the same picks in the same order, ties (equal contributions, zeros,
    -0.0) and fewer features than reasons asked for included; the same words, -0.0, NaN,
    None and missing categories included."""
    import numpy as np

    from scoring.reasons import reasons_from_array

    rng = np.random.default_rng(11)
    n = 300
    X = _mixed_values(rng, n)
    columns = list(X.columns)
    # contributions from a few values, so that ties and zeros are common
    contrib = rng.choice([-0.5, -0.25, -0.0, 0.0, 0.25, 0.5, 1e-5], size=(n, len(columns) + 1))
    for k in (1, 2, 3, 5):  # 2 * k reasons asked for: more and fewer than the 5 features
        batch = reasons_from_array(contrib, columns, X, n=k)
        for i in range(n):
            alone = reasons_from_array(contrib[i : i + 1], columns, X.iloc[i : i + 1], n=k)
            assert alone == [batch[i]], (k, i)


def test_arrow_reasons_are_the_records_as_arrow_converts_them():
    """``arrow=True`` (batch runs writing Parquet) gives exactly the Arrow array that the
    records convert to: same picks, words, rounded contributions and per-lead bounds, a
    missing value text as null, leads without any reason as empty lists; and no leads."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from scoring.reasons import REASON_TYPE, reasons_from_array

    rng = np.random.default_rng(9)
    n = 300
    X = pd.DataFrame(
        {
            "lead_age_days": rng.choice([0.0, 3.0, np.nan, 90.0], n),
            "industry": pd.Categorical(rng.choice(["saas", "retail", None], n)),
            "decay_web": rng.random(n) * 4,
        }
    )
    contrib = rng.normal(size=(n, X.shape[1] + 1))
    contrib[:5, :-1] = 0.0  # leads with no reason at all
    columns = list(X.columns)
    records = reasons_from_array(contrib, columns, X)
    got = reasons_from_array(contrib, columns, X, arrow=True)
    assert got.equals(pa.array(records, type=pa.list_(REASON_TYPE)))
    assert got.to_pylist()[:5] == [[]] * 5
    empty = reasons_from_array(contrib[:0], columns, X.iloc[:0], arrow=True)
    assert len(empty) == 0 and empty.type == pa.list_(REASON_TYPE)


def test_round4_is_pythons_round_to_the_bit():
    """The reasons' contributions are rounded on whole arrays (``round4``): the same
    floats as Python's ``round(v, 4)``, ties and values next to a half included."""
    from scoring.reasons import round4

    rng = np.random.default_rng(4)
    halves = (np.arange(-3000, 3000) + 0.5) / 1e4  # next to a half after scaling
    values = np.concatenate(
        [
            rng.normal(0, 1, 100_000),
            rng.normal(0, 1e-4, 20_000),
            rng.normal(0, 300, 20_000),
            np.arange(-200, 200) / 32,  # exact binary ties: 0.03125 -> 0.0312
            halves,
            np.nextafter(halves, np.inf),
            np.nextafter(halves, -np.inf),
            [0.0, -0.0, 1e-12, -1e-12, 0.00005, -0.00005, 0.00015, 2.5e-5],
        ]
    )
    got = round4(values)
    want = [round(v, 4) for v in values.tolist()]
    bits = np.array(got).view(np.int64) != np.array(want).view(np.int64)
    assert not bits.any(), values[bits][:5]


@pytest.mark.parametrize("n", [1, 3, 5])
def test_picks_are_the_ends_of_the_stable_sort(n):
    """``reason_kernels.pick`` keeps what the stable descending sort of each row puts
    first (> 0) and last (< 0): ties, zeros of either sign, infinities and NaN (which
    sorts last and so takes a place at the end) included."""
    from scoring.reason_kernels import pick

    rng = np.random.default_rng(n)
    for _ in range(100):
        m, f = int(rng.integers(1, 40)), int(rng.integers(6, 70))
        c = np.round(rng.normal(size=(m, f)), int(rng.integers(0, 3)))  # many ties
        u = rng.random((m, f))
        c[u < 0.05] = np.nan
        c[(u >= 0.05) & (u < 0.08)] = 0.0
        c[(u >= 0.08) & (u < 0.1)] = -0.0
        c[(u >= 0.1) & (u < 0.11)] = np.inf
        c[(u >= 0.11) & (u < 0.12)] = -np.inf
        order = np.argsort(-c, axis=1, kind="stable")
        want = []
        for r in range(m):
            up = [j for j in order[r, :n] if c[r, j] > 0]
            down = [j for j in order[r, ::-1][:n] if c[r, j] < 0]
            want.append(up + down)
        got = pick(c, n)
        assert [[j for j in row if j >= 0] for row in got.tolist()] == want
