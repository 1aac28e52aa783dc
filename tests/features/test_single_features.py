"""The two feature evaluators agree: ``compute_features`` over the tables the service builds
of a request (``leads_to_tables``) and ``request_features`` over the request's lead objects
give identical values on simulated leads: categories exactly, numbers bit for bit (NaN
where the other has NaN), for leads one at a time and for whole requests.

The leads are the simulator's (``crm.simulate``, fixed seeds) with their fields made messy
(alias spellings, unknown values, placeholders, missing fields, free-mail addresses), all
their events (also those after as_of, which both must ignore) and as-of moments that vary
per lead, including moments before a lead was created and exactly on an event or window
edge."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from crm.simulate import simulate
from features.build import compute_features
from features.feature_config import CustomAttribute, FeatureConfig
from features.single import request_features
from serving.schemas import Lead, leads_to_tables, tables_to_requests

pytestmark = pytest.mark.slow  # simulates 10,000 leads (~45 s of CPU)

N_LEADS = 10_000
MESSY = {
    "industry": ["SaaS", "Maschinenbau", "unknown", "n/a", "", "Quantum Widgets", None, " IT "],
    "country": ["Deutschland", "USA", "DEU", "xx", "Atlantis", "ch", None, "United Kingdom"],
    "source": ["PPC", "Trade Show", "select", "carrier pigeon", None, "Organic"],
    "job_title": ["VP Sales", "Head of Mktg", "CTO", "", "Intern", None, "Dipl.-Ing. Einkauf"],
    "email": ["a@gmail.com", "b@acme.de", "broken", "c@", None],
}


def _messy(requests: list[dict], rng: np.random.Generator) -> list[dict]:
    """Some fields replaced by awkward spellings or left out, some companies dropped."""
    for r in requests:
        if rng.random() < 0.3:
            field = rng.choice(["industry", "country", "source", "job_title", "email"])
            value = MESSY[field][rng.integers(len(MESSY[field]))]
            if field in ("industry", "country"):
                if r["company"] is not None:
                    r["company"][field] = value
            else:
                r[field] = value
                if field == "email":
                    r["email_domain_kind"] = None
        if rng.random() < 0.05:
            r["company"] = None
        if rng.random() < 0.05 and r["company"] is not None:
            r["company"]["employees"] = float(rng.choice([0.0, 9.0, 10.0, 49.5, 1e6]))
    return requests


def _as_of(requests: list[dict], end: pd.Timestamp, rng: np.random.Generator) -> np.ndarray:
    """One moment per lead: mostly spread over the data's time range, some exactly on one
    of its events (excluded), a day/7/30/90 days after one (window edges), or before the
    lead was created."""
    out = []
    for r in requests:
        created = pd.Timestamp(r["created_at"])
        pick = rng.random()
        if pick < 0.25 and r["events"]:
            at = pd.Timestamp(r["events"][rng.integers(len(r["events"]))]["at"])
            out.append(at + pd.Timedelta(days=int(rng.choice([0, 1, 7, 30, 90]))))
        elif pick < 0.3:
            out.append(created - pd.Timedelta(days=1))
        elif pick < 0.35:
            out.append(created)
        else:
            out.append(created + (end - created) * rng.random())
    return np.array([t.floor("us").as_unit("ns").value for t in out], dtype=np.int64)


def _same(batch: pd.DataFrame, single: pd.DataFrame) -> None:
    assert batch.columns.tolist() == single.columns.tolist()
    assert batch.index.astype(str).tolist() == single.index.astype(str).tolist()
    for c in batch.columns:
        a, b = batch[c], single[c]
        if isinstance(a.dtype, pd.CategoricalDtype):
            assert a.dtype == b.dtype, c
            np.testing.assert_array_equal(a.cat.codes.to_numpy(), b.cat.codes.to_numpy(), c)
            continue
        x, y = a.to_numpy(dtype=np.float64), b.to_numpy(dtype=np.float64)
        assert (np.isnan(x) == np.isnan(y)).all(), c
        ok = ~np.isnan(x)
        diff = np.flatnonzero(x[ok].view(np.int64) != y[ok].view(np.int64))
        assert len(diff) == 0, f"{c}: {x[ok][diff[:3]]} != {y[ok][diff[:3]]}"


def _batch(leads: list[Lead], as_of: np.ndarray, config: FeatureConfig) -> pd.DataFrame:
    leads_df, accounts_df, events_df, _ = leads_to_tables(leads)
    moments = pd.Series(as_of.view("datetime64[ns]"), index=leads_df["lead_id"].to_numpy())
    return compute_features(leads_df, accounts_df, events_df, moments, config)


@pytest.fixture(scope="module")
def simulated() -> tuple[list[Lead], np.ndarray]:
    """10,000 simulated leads as the API parses them, with an as-of moment each."""
    leads: list[Lead] = []
    moments = []
    for seed, n in ((101, 5000), (202, 5000)):
        data, _ = simulate(n_leads=n, seed=seed)
        rng = np.random.default_rng(seed)
        requests = tables_to_requests(data.leads, data.accounts, data.events)
        requests = _messy(requests, rng)
        end = data.events["at"].max()
        moments.append(_as_of(requests, end, rng))
        leads += [Lead.model_validate(r) for r in requests]
    return leads, np.concatenate(moments)


def test_one_lead_at_a_time_equals_the_batch_path(simulated):
    leads, as_of = simulated
    assert len(leads) >= N_LEADS
    config = FeatureConfig()
    step = 500
    for start in range(0, len(leads), step):
        part, moments = leads[start : start + step], as_of[start : start + step]
        batch = _batch(part, moments, config)
        singles = [
            request_features([lead], moments[i : i + 1], config) for i, lead in enumerate(part)
        ]
        # each lead's own block, stacked: one frame for the 500 (a frame per lead costs
        # more than computing its features)
        one_by_one = replace(
            singles[0],
            lead_ids=[i for one in singles for i in one.lead_ids],
            block=np.vstack([one.block for one in singles]),
        ).frame()
        _same(batch, one_by_one)


def test_a_whole_request_equals_the_batch_path(simulated):
    leads, as_of = simulated
    config = FeatureConfig(windows_days=(3, 14, 60), half_lives_days={"web": 2.5, "email": 45})
    for start in range(0, 2000, 1000):
        part, moments = leads[start : start + 1000], as_of[start : start + 1000]
        _same(_batch(part, moments, config), request_features(part, moments, config).frame())
        one = int(moments[0])  # one moment for every lead
        batch = compute_features(*leads_to_tables(part)[:3], pd.Timestamp(one), config)
        _same(batch, request_features(part, one, config).frame())


CUSTOM = FeatureConfig(
    custom_attributes=(
        CustomAttribute("attr_origin", "categorical", ("API", "True", "1.0", "web", "other")),
        CustomAttribute("attr_member", "boolean"),
        CustomAttribute("attr_visits", "numeric"),
    ),
    counters=("counter_total_visits", "counter_calls"),
)
CUSTOM_VALUES = ["API", "web", "Web", "True", True, False, 1.0, 0.0, 2.5, "yes", "no", "5",
                 " 7 ", "1e3", "x", "", None]  # fmt: skip


def test_custom_attributes_and_counters_agree(simulated):
    leads, as_of = simulated
    rng = np.random.default_rng(7)
    part = []
    for lead in leads[:400]:
        attrs = {}
        for name in ("origin", "member", "visits", "unused"):
            if rng.random() < 0.8:
                attrs[name] = CUSTOM_VALUES[rng.integers(len(CUSTOM_VALUES))]
        counters = {n: float(rng.integers(0, 9)) for n in ("total_visits", "calls")
                    if rng.random() < 0.7}  # fmt: skip
        part.append(lead.model_copy(update={"attributes": attrs, "counters": counters}))
    moments = as_of[:400]
    _same(_batch(part, moments, CUSTOM), request_features(part, moments, CUSTOM).frame())
    for i in range(0, 400, 37):  # one at a time: a lone value has a column of its own type
        lone = request_features(part[i : i + 1], moments[i : i + 1], CUSTOM).frame()
        _same(_batch(part[i : i + 1], moments[i : i + 1], CUSTOM), lone)


def test_values_reads_a_feature_as_the_frame_does(simulated):
    leads, as_of = simulated
    rows = request_features(leads[:50], as_of[:50])
    frame = rows.frame()
    for c in ("industry", "country", "lead_age_days", "decay_web"):
        want = frame[c].to_numpy()
        got = rows.values(c)
        assert [str(v) for v in got] == [str(v) for v in want]
