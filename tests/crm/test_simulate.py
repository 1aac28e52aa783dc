"""Tests of the funnel simulator: determinism, the contract, funnel rates, event rules,
the difficulty of the MQL -> SAL problem and the persona signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from crm import simulate as sim
from crm.contract import read_tables, validate, write_tables
from crm.simulate.draws import sigmoid
from crm.simulate.funnel import interest_logit
from crm.vocabulary import EVENT_TYPES, SIMULATED_PERSONAS, STAGES

END = pd.Timestamp("2025-12-31")
EMAIL_TYPES = list(sim.EMAIL_TYPES)


@pytest.fixture(scope="module")
def big() -> tuple:
    """One 20k-lead run (about 2-3 s) shared by the statistical tests."""
    return sim.simulate(n_leads=20_000, seed=7)


@pytest.fixture(scope="module")
def small() -> tuple:
    return sim.simulate(n_leads=3_000, seed=11)


def _logit(p: pd.Series | np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.log(p / (1 - p))


# ---------------------------------------------------------------- determinism and contract
def test_same_seed_gives_identical_frames(small: tuple) -> None:
    data, truth = small
    again, truth_again = sim.simulate(n_leads=3_000, seed=11)
    for name in ("accounts", "leads", "events", "stage_history"):
        pd.testing.assert_frame_equal(data.table(name), again.table(name), check_exact=True)
    pd.testing.assert_frame_equal(truth, truth_again, check_exact=True)


def test_different_seed_gives_different_frames(small: tuple) -> None:
    data, truth = small
    other, other_truth = sim.simulate(n_leads=3_000, seed=12)
    assert not data.events.equals(other.events)
    assert not data.leads.equals(other.leads)
    assert not np.allclose(truth["fit"], other_truth["fit"])


def test_output_passes_the_contract_and_round_trips(small: tuple, tmp_path) -> None:
    data, truth = small
    # validate again from plain frames: nothing in the typed output breaks the contract
    again = validate(data.accounts, data.leads, data.events, data.stage_history)
    assert len(again.events) == len(data.events)
    sim.write_simulation(tmp_path, n_leads=500, seed=3)
    read = read_tables(tmp_path)
    written_truth = pd.read_parquet(tmp_path / "truth.parquet")
    assert len(read.leads) == 500 == len(written_truth)
    assert set(written_truth["lead_id"]) == set(read.leads["lead_id"])


@pytest.mark.parametrize("n_leads", [1, 7])
def test_a_handful_of_leads_without_a_customer_simulates(n_leads: int) -> None:
    data, truth = sim.simulate(n_leads=n_leads, seed=2)
    assert len(data.leads) == n_leads == len(truth)
    assert "customer" not in set(data.stage_history["stage"].astype(str))


def test_tables_have_the_designed_shape(small: tuple) -> None:
    data, truth = small
    n = 3_000
    assert len(data.leads) == n and data.leads["lead_id"].is_unique
    assert data.leads["lead_id"].str.fullmatch(r"L\d{7}").all()
    assert abs(len(data.accounts) - n / 3) <= 1
    assert set(data.events["type"].astype(str)) == set(EVENT_TYPES)
    for df, cols in ((data.accounts, ["industry", "employees", "annual_revenue", "country"]),
                     (data.leads, ["account_id", "job_title", "source"])):  # fmt: skip
        share = df[cols].isna().mean()
        assert ((share > 0.005) & (share < 0.10)).all(), share
    emp = data.accounts["employees"].dropna()
    assert emp.min() >= 1 and emp.max() <= 100_000 and emp.median() < emp.mean()
    rev = data.accounts[["employees", "annual_revenue"]].dropna()
    assert np.corrcoef(np.log(rev["employees"]), np.log(rev["annual_revenue"]))[0, 1] > 0.7
    created = data.leads["created_at"]
    assert created.min() >= pd.Timestamp("2024-01-01") and created.max() <= END
    cids = data.events["content_id"].dropna()
    assert cids.str.fullmatch(r"C\d{3}").all() and 40 <= cids.nunique() <= 80


def test_truth_columns_and_consistency(small: tuple) -> None:
    data, truth = small
    assert list(truth.columns) == [
        "lead_id", "persona", "fit", "interest", "p_mql", "p_sal", "mql_at", "lifecycle_stage",
    ]  # fmt: skip
    assert (truth["lead_id"].to_numpy() == data.leads["lead_id"].to_numpy()).all()
    assert set(truth["persona"].astype(str)) == set(SIMULATED_PERSONAS)
    for col in ("fit", "interest", "p_mql"):
        assert truth[col].between(0, 1, inclusive="neither").all()
    sh = data.stage_history
    mql = sh[sh["stage"] == "mql"].set_index("lead_id")["entered_at"]
    t = truth.set_index("lead_id")
    assert t["mql_at"].notna().sum() == len(mql)
    assert (t.loc[mql.index, "mql_at"] == mql).all()
    assert (t["p_sal"].isna() == t["mql_at"].isna()).all()


# ---------------------------------------------------------------- funnel
def test_stage_rates_in_ranges(big: tuple) -> None:
    data, _ = big
    r = sim.stage_rates(data)
    assert 0.10 <= r["lead->mql"] <= 0.30
    assert 0.30 <= r["mql->sal"] <= 0.60
    assert 0.28 <= r["sal->opportunity"] <= 0.55
    assert 0.15 <= r["opportunity->customer"] <= 0.40
    assert r["opportunity->customer"] < r["sal->opportunity"] < r["mql->sal"]


def test_every_lead_has_visit_then_lead_and_stages_are_ordered(small: tuple) -> None:
    data, _ = small
    sh = data.stage_history
    wide = sh.pivot(index="lead_id", columns="stage", values="entered_at")
    leads = data.leads.set_index("lead_id")
    assert wide["visit"].notna().all() and wide["lead"].notna().all()
    assert (wide["lead"] == leads.loc[wide.index, "created_at"]).all()
    assert (wide["visit"] < wide["lead"]).all()
    assert (wide["lead"] - wide["visit"]).max() <= pd.Timedelta(days=30)
    present = [s for s in STAGES if s in wide.columns]
    for a, b in zip(present, present[1:], strict=False):
        both = wide[[a, b]].dropna()
        assert (both[a] < both[b]).all(), (a, b)
        # nobody skips a stage
        assert wide.loc[wide[b].notna(), a].notna().all(), (a, b)
    assert sh["entered_at"].max() <= END


def test_mql_moment_is_a_conversion_event(small: tuple) -> None:
    data, truth = small
    m = truth.dropna(subset=["mql_at"])[["lead_id", "mql_at"]]
    ev = data.events[["lead_id", "at", "type"]].astype({"type": str})
    hits = m.merge(ev, left_on=["lead_id", "mql_at"], right_on=["lead_id", "at"])
    hits = hits[hits["type"].isin(["form_submit", "content_download", "demo_request"])]
    assert hits["lead_id"].nunique() == len(m)


def test_sal_probability_is_fit_plus_pre_mql_interest_plus_small_noise(big: tuple) -> None:
    """The truth's interest must be recomputable from the exported events at or before
    the MQL moment, and p_sal = sigmoid(intercept + w * fit_logit + interest_logit + noise)
    with a noise std of about 0.3, before the two sales rules (fast track, small free-mail
    leads turned away), which are read off the export and undone here."""
    data, truth = big
    ev = data.events
    lead_index = pd.Index(truth["lead_id"])
    lead = lead_index.get_indexer(ev["lead_id"])
    t0 = pd.Timestamp("2024-01-01")
    sec = ((ev["at"] - t0).dt.total_seconds()).to_numpy().astype(np.int64)
    etype = ev["type"].cat.codes.to_numpy().astype(np.int16)
    ref_ts = truth["mql_at"].fillna(END)
    ref = ((ref_ts - t0).dt.total_seconds()).to_numpy().astype(np.int64)
    created = data.leads.set_index("lead_id").loc[lead_index, "created_at"]
    created_s = ((created - t0).dt.total_seconds()).to_numpy().astype(np.int64)
    logit = interest_logit(lead, sec, etype, ref, created_s)
    np.testing.assert_allclose(sigmoid(logit), truth["interest"], rtol=1e-9, atol=1e-12)

    # the sales rules on top, recomputed from the export (leads whose e-mail kind or
    # company size is missing in the export are left out: the rule cannot be read off)
    leads = data.leads.set_index("lead_id").loc[lead_index]
    employees = data.accounts.set_index("account_id")["employees"]
    size = leads["account_id"].map(employees).to_numpy(dtype=float)
    kind = leads["email_domain_kind"].to_numpy(dtype=object)
    demo = (ev["type"] == "demo_request").to_numpy() & (sec <= ref[lead])
    demo &= sec >= ref[lead] - sim.FAST_TRACK_DAYS * sim.DAY
    recent_demo = np.bincount(lead[demo], minlength=len(lead_index)) > 0
    known = ~pd.isna(kind) & ~np.isnan(size)
    fast = recent_demo & (kind == "business") & (size >= sim.FAST_TRACK_MIN_EMPLOYEES)
    small = (kind == "free") & (size < sim.SMALL_MAX_EMPLOYEES)

    m = truth["p_sal"].notna().to_numpy() & known
    p = truth["p_sal"].to_numpy(dtype=float)
    assert (p[m & fast] >= sim.FAST_TRACK_P).all()
    base = np.where(fast, 1.0 - (1.0 - p) / (1.0 - sim.FAST_TRACK_P), p)
    base = np.where(small, base / sim.SMALL_FREE_MAIL_FACTOR, base)
    assert (m & fast).sum() > 50 and (m & small).sum() > 5
    resid = (
        _logit(base[m])
        - sim.SAL_INTERCEPT
        - sim.SAL_FIT_WEIGHT * _logit(truth["fit"].to_numpy()[m])
        - logit[m]
    )
    assert abs(resid.mean()) < 0.03
    assert 0.25 < resid.std() <= 0.33


def test_ceiling_auc_on_the_time_holdout(big: tuple) -> None:
    data, truth = big
    hold = sim.sal_holdout(data, truth, END)
    assert (hold["mql_at"] + pd.Timedelta(days=90) <= END).all()
    assert hold["mql_at"].is_monotonic_increasing
    assert 500 <= len(hold) <= 800
    auc = sim.ceiling_auc(data, truth, END)
    assert 0.80 <= auc <= 0.92, auc


def test_lifecycle_follows_the_documented_rules(big: tuple) -> None:
    data, truth = big
    sh = data.stage_history
    bought = sh[sh["stage"] == "customer"].set_index("lead_id")["entered_at"]
    stage = truth.set_index("lead_id")["lifecycle_stage"].astype(str)
    assert (stage.drop(bought.index) == "prospect").all()
    ev = data.events[data.events["lead_id"].isin(bought.index)].copy()
    ev = ev[ev["at"] > bought.reindex(ev["lead_id"]).to_numpy()]
    referred = set(ev.loc[ev["type"] == "referral", "lead_id"])
    activity = ev["type"].isin(["page_view", "blog_read"]) & ev["topic"].isin(
        ["product_docs", "community"]
    )
    active = set(ev.loc[activity, "lead_id"])
    for lead_id, at in bought.items():
        if at > END - pd.Timedelta(days=90):
            want = "new_customer"
        elif lead_id in referred:
            want = "ambassador"
        elif lead_id in active:
            want = "active_customer"
        else:
            want = "new_customer"
        assert stage[lead_id] == want, lead_id
    shares = stage[bought.index].value_counts(normalize=True)
    assert 0.12 <= shares.get("ambassador", 0) <= 0.30
    assert shares.get("active_customer", 0) > 0.3


# ---------------------------------------------------------------- events
def test_no_event_after_end_and_engagement_rises_and_fades(big: tuple) -> None:
    data, _ = big
    ev = data.events
    assert ev["at"].max() <= END
    per_lead = ev.groupby("lead_id", observed=True).size()
    assert 35 <= per_lead.mean() <= 60
    assert per_lead.max() > 8 * per_lead.median()  # heavy tail
    created = data.leads.set_index("lead_id")["created_at"]
    offset = (ev["at"] - created.reindex(ev["lead_id"]).to_numpy()).dt.days
    assert 0.01 < (offset < 0).mean() < 0.10  # known-cookie views before the lead
    assert offset.min() >= -30
    daily = offset[offset >= 0].value_counts().sort_index()
    first, peak, late = daily.loc[0:6].mean(), daily.loc[14:34].mean(), daily.loc[120:179].mean()
    assert peak > late * 3 and first > late


def test_no_email_events_after_unsubscribe_or_bounce(big: tuple) -> None:
    data, _ = big
    ev = data.events
    n = len(data.leads)
    stops = {}
    for kind in ("unsubscribe", "email_bounce"):
        first = ev[ev["type"] == kind].groupby("lead_id", observed=True)["at"].min()
        stops[kind] = first
    unsub_share = stops["unsubscribe"].size / n
    bounce_share = stops["email_bounce"].size / n
    assert 0.05 <= unsub_share <= 0.10, unsub_share
    assert 0.015 <= bounce_share <= 0.035, bounce_share
    stop = pd.concat(stops.values()).groupby(level=0).min()
    mail = ev[ev["type"].isin(EMAIL_TYPES)]
    after = mail["at"].to_numpy() >= stop.reindex(mail["lead_id"]).to_numpy()
    assert not after.any()
    # the rule must bite: unsubscribers did read newsletters before
    before = mail[mail["lead_id"].isin(stops["unsubscribe"].index)]
    assert before["lead_id"].nunique() == stops["unsubscribe"].size
    dne = data.leads.loc[data.leads["do_not_email"], "lead_id"]
    assert len(dne) > 0 and not mail["lead_id"].isin(dne).any()


def test_high_fit_leads_show_more_buying_intent(big: tuple) -> None:
    data, truth = big
    ev = data.events
    # (forms and downloads also open every lead and mark the MQL moment, so they are left out)
    intent = ev["type"].isin(["pricing_view", "demo_request", "webinar_attended"])
    share = intent.groupby(ev["lead_id"], observed=True).mean()
    fit = truth.set_index("lead_id")["fit"].reindex(share.index)
    top, bottom = share[fit >= fit.quantile(0.75)], share[fit <= fit.quantile(0.25)]
    assert top.mean() > bottom.mean() * 1.5


# ---------------------------------------------------------------- personas
def test_persona_topic_shares_and_role_signal(big: tuple) -> None:
    data, truth = big
    ev = data.events
    persona = truth.set_index("lead_id")["persona"].astype(str)
    n_personas = len(SIMULATED_PERSONAS)
    # persona code per topic: 0..2 for motive topics, 3 for general topics
    topic_code = np.full(len(sim.TOPICS), n_personas)
    for i, p in enumerate(SIMULATED_PERSONAS):
        topic_code[[sim.TOPICS.index(t) for t in sim.MOTIVE_TOPICS[p]]] = i
    topical = ev[ev["type"].isin(sim.TOPICAL_TYPES) & ev["topic"].notna()]
    topical = topical[~topical["topic"].isin(sim.CUSTOMER_TOPICS)]
    motive = topic_code[pd.Categorical(topical["topic"], categories=sim.TOPICS).codes]
    lead = pd.Index(truth["lead_id"]).get_indexer(topical["lead_id"])
    lead_persona = truth["persona"].cat.codes.to_numpy()[lead]
    own = motive == lead_persona
    for i, p in enumerate(SIMULATED_PERSONAS):
        assert 0.70 <= own[lead_persona == i].mean() <= 0.85, p
    assert 0.10 <= (motive == n_personas).mean() <= 0.25

    # job titles: marketing/sales words point to marketers, admin/support to subscribers
    title = data.leads.set_index("lead_id")["job_title"].str.lower()
    p_of = persona.reindex(title.index)
    mkt = title.str.contains(r"market|sales|account exec", na=False)
    sub = title.str.contains(r"admin|helpdesk|technician|technical support", na=False)
    assert 0.70 <= (p_of[mkt] == "marketer").mean() <= 0.95
    assert 0.70 <= (p_of[sub] == "subscriber").mean() <= 0.95

    # a naive topic-count classifier must already reach 90% for leads with >= 3 events
    n = len(truth)
    counts = np.bincount(lead * (n_personas + 1) + motive, minlength=n * (n_personas + 1))
    guess = counts.reshape(n, n_personas + 1)[:, :n_personas].argmax(axis=1)
    n_events = np.bincount(pd.Index(truth["lead_id"]).get_indexer(ev["lead_id"]), minlength=n)
    enough = n_events >= 3
    accuracy = (guess == truth["persona"].cat.codes.to_numpy())[enough].mean()
    assert 0.9 <= accuracy, accuracy


# ---------------------------------------------------------------- chunks
def test_chunked_writing_equals_the_one_shot_run(tmp_path) -> None:
    """A run drawn in three chunks: the files written chunk by chunk read back row for row
    as the one-shot run (all chunks in memory, written at once) of the same seed."""
    assert sim.chunk_bounds(2_000, 700) == [(0, 666), (666, 1333), (1333, 2000)]
    data, truth = sim.simulate(n_leads=2_000, seed=5, chunk_leads=700)
    write_tables(data, tmp_path / "one_shot")
    truth.to_parquet(tmp_path / "one_shot" / sim.TRUTH_FILE, index=False)
    sim.write_simulation(tmp_path / "chunked", n_leads=2_000, seed=5, chunk_leads=700)
    one_shot, chunked = read_tables(tmp_path / "one_shot"), read_tables(tmp_path / "chunked")
    for name in ("accounts", "leads", "events", "stage_history"):
        pd.testing.assert_frame_equal(chunked.table(name), one_shot.table(name), check_exact=True)
        assert pq.ParquetFile(tmp_path / "chunked" / f"{name}.parquet").num_row_groups == 3
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "chunked" / sim.TRUTH_FILE),
        pd.read_parquet(tmp_path / "one_shot" / sim.TRUTH_FILE),
        check_exact=True,
    )
    # one export: ids continue across chunks, every lead's account and events are known
    assert chunked.leads["lead_id"].tolist() == [f"L{i:07d}" for i in range(1, 2_001)]
    assert chunked.accounts["account_id"].is_unique and len(chunked.accounts) == 222 + 222 + 222
    assert chunked.leads["account_id"].dropna().isin(chunked.accounts["account_id"]).all()
    assert chunked.events["lead_id"].is_monotonic_increasing
    # the chunks are not copies of each other, and the run is a function of the seed
    fit = truth["fit"].to_numpy()
    assert not np.allclose(fit[:666], fit[666:1332])
    again, _ = sim.simulate(n_leads=2_000, seed=5, chunk_leads=700)
    pd.testing.assert_frame_equal(again.events, data.events, check_exact=True)


def test_a_run_that_fits_in_one_chunk_draws_as_before() -> None:
    """Up to CHUNK_LEADS leads are one chunk drawn from default_rng(seed): the tables the
    golden answers were recorded on. Chunked, the same seed draws other numbers."""
    one, _ = sim.simulate(n_leads=900, seed=5)
    same, _ = sim.simulate(n_leads=900, seed=5, chunk_leads=900)
    pd.testing.assert_frame_equal(one.events, same.events, check_exact=True)
    split, _ = sim.simulate(n_leads=900, seed=5, chunk_leads=450)
    assert len(split.leads) == 900
    assert not split.leads["created_at"].equals(one.leads["created_at"])
