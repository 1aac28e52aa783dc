"""Feature computation: point-in-time correctness, fixed dtypes, parsing, and path parity."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from crm.contract import validate
from crm.vocabulary import EVENT_TYPES
from features import build, encoding, geo
from features.build import (
    CATEGORICAL_FEATURES,
    ENGAGEMENT_FEATURES,
    EVENT_GROUPS,
    FEATURE_COLUMNS,
    FIRMOGRAPHIC_FEATURES,
    FeatureConfig,
    compute_features,
)
from features.jobtitle import DEPARTMENTS, SENIORITIES, parse_job_title

AS_OF = pd.Timestamp("2025-03-01 12:00")
DAY = pd.Timedelta(days=1)


def make_leads(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(n)],
            "account_id": [["A0", "A1", None][i % 3] for i in range(n)],
            "created_at": [AS_OF - (10 + i) * DAY for i in range(n)],
            "job_title": [["CTO", "Mktg Manager", None][i % 3] for i in range(n)],
            "source": [["webinar", "Direct", None][i % 3] for i in range(n)],
            "email_domain_kind": [["business", "free", None][i % 3] for i in range(n)],
            "do_not_email": [False] * n,
        }
    )


def make_accounts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["A0", "A1"],
            "industry": ["Software", "Underwater Basket Weaving"],
            "employees": [120.0, np.nan],
            "annual_revenue": [2e7, np.nan],
            "country": ["DE", "ZZ"],
        }
    )


def make_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": ["L0", "L0", "L0", "L1", "L1"],
            "at": [
                AS_OF - 1 * DAY,
                AS_OF - 7 * DAY,
                AS_OF - 40 * DAY,
                AS_OF - 3 * DAY,
                AS_OF - DAY,
            ],
            "type": ["page_view", "webinar_attended", "pricing_view", "email_open", "unsubscribe"],
            "topic": ["fixes", "solutions", "fixes", None, None],
        }
    )


def features(events: pd.DataFrame | None = None, **kwargs) -> pd.DataFrame:
    ev = make_events() if events is None else events
    return compute_features(make_leads(), make_accounts(), ev, kwargs.pop("as_of", AS_OF), **kwargs)


# ----------------------------------------------------------------------------- shape and dtypes


def test_columns_index_and_dtypes_are_fixed():
    out = features()
    assert list(out.columns) == FEATURE_COLUMNS
    assert FEATURE_COLUMNS == FIRMOGRAPHIC_FEATURES + ENGAGEMENT_FEATURES
    assert len(FEATURE_COLUMNS) == len(set(FEATURE_COLUMNS)) == 77
    assert out.index.name == "lead_id" and out.index.tolist() == ["L0", "L1", "L2"]
    for col in FEATURE_COLUMNS:
        if col in CATEGORICAL_FEATURES:
            assert out[col].dtype == build.CATEGORY_DTYPES[col], col
        else:
            assert out[col].dtype == np.float64, col


def test_one_row_frame_matches_its_row_in_a_big_frame():
    """Small inputs take the dict path, big ones pandas' hashing: same dtypes and values."""
    rng = np.random.default_rng(7)
    n = 300
    leads = make_leads(n)
    ev = pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in rng.integers(0, n, 3000)],
            "at": AS_OF - pd.to_timedelta(rng.integers(-20, 200 * 24, 3000), unit="h"),
            "type": [EVENT_TYPES[i] for i in rng.integers(0, len(EVENT_TYPES), 3000)],
            "topic": [f"t{i}" for i in rng.integers(0, 12, 3000)],
        }
    )
    assert len(ev) > encoding.SMALL and n > encoding.SMALL
    big = compute_features(leads, make_accounts(), ev, AS_OF)
    for lead_id in ["L0", "L1", "L2", "L123"]:
        one_lead = leads[leads["lead_id"] == lead_id]
        one_ev = ev[ev["lead_id"] == lead_id]
        assert 0 < len(one_ev) <= encoding.SMALL
        one = compute_features(one_lead, make_accounts(), one_ev, AS_OF)
        assert (one.dtypes == big.dtypes).all()
        for col in CATEGORICAL_FEATURES:
            assert one[col].cat.codes.tolist() == big.loc[[lead_id], col].cat.codes.tolist()
        pd.testing.assert_frame_equal(one, big.loc[[lead_id]])


def test_categories_survive_a_round_trip_through_text():
    """MLflow signatures store categoricals as strings: ``astype(CATEGORY_DTYPES)`` restores."""
    out = features()
    as_text = out.astype({c: "str" for c in CATEGORICAL_FEATURES})
    assert as_text["industry"].dtype == "str" and pd.isna(as_text.loc["L2", "industry"])
    pd.testing.assert_frame_equal(as_text.astype(build.CATEGORY_DTYPES), out)


def test_empty_inputs_give_typed_empty_or_zero_rows():
    empty_events = pd.DataFrame(columns=["lead_id", "at", "type", "topic"])
    out = compute_features(make_leads(), make_accounts(), empty_events, AS_OF)
    assert (out["n_events_total"] == 0).all() and out["days_since_last_event"].isna().all()
    no_leads = compute_features(make_leads().iloc[:0], make_accounts(), make_events(), AS_OF)
    assert len(no_leads) == 0 and list(no_leads.columns) == FEATURE_COLUMNS
    assert (no_leads.dtypes == out.dtypes).all()


# ----------------------------------------------------------------------------- point in time


def test_events_at_or_after_as_of_change_nothing():
    base = features()
    late = pd.DataFrame(
        {
            "lead_id": ["L0", "L0", "L1", "L2", "L2"],
            "at": [AS_OF, AS_OF + pd.Timedelta(1, "ns"), AS_OF + 5 * DAY, AS_OF, AS_OF + DAY],
            "type": ["demo_request", "unsubscribe", "email_bounce", "referral", "page_view"],
            "topic": ["new", "new", "other", "x", "y"],
        }
    )
    with_late = features(pd.concat([make_events(), late], ignore_index=True))
    pd.testing.assert_frame_equal(base, with_late)


def test_leakage_check_can_fail():
    """The same check sees an event one nanosecond before as_of."""
    just_before = pd.DataFrame(
        {"lead_id": ["L2"], "at": [AS_OF - pd.Timedelta(1, "ns")], "type": ["demo_request"]}
    )
    changed = features(pd.concat([make_events(), just_before], ignore_index=True))
    assert not changed.equals(features())
    assert changed.loc["L2", "n_demo_request_7d"] == 1.0


@pytest.mark.parametrize(
    ("age", "in_7d", "in_30d"),
    [
        (7 * DAY, 1.0, 1.0),  # as_of - 7d <= at: inside the 7-day window
        (7 * DAY + pd.Timedelta(1, "ns"), 0.0, 1.0),
        (30 * DAY, 0.0, 1.0),
        (30 * DAY + pd.Timedelta(1, "us"), 0.0, 0.0),
        (pd.Timedelta(1, "ns"), 1.0, 1.0),
        (pd.Timedelta(0), 0.0, 0.0),  # at == as_of: not yet known
    ],
)
def test_window_boundaries(age, in_7d, in_30d):
    ev = pd.DataFrame({"lead_id": ["L0"], "at": [AS_OF - age], "type": ["blog_read"]})
    out = features(ev)
    assert out.loc["L0", "n_blog_read_7d"] == in_7d
    assert out.loc["L0", "n_blog_read_30d"] == in_30d


def test_per_lead_as_of_series():
    ev = pd.DataFrame(
        {
            "lead_id": ["L0", "L1", "L1", "X9", None],  # events of unknown leads are ignored
            "at": [AS_OF - 2 * DAY, AS_OF - 2 * DAY, AS_OF - 20 * DAY, AS_OF, AS_OF - DAY],
            "type": ["page_view"] * 5,
        }
    )
    # index order differs from leads order: alignment is by lead_id, not position
    as_of = pd.Series(
        [AS_OF - 10 * DAY, AS_OF - 3 * DAY, AS_OF], index=pd.Index(["L1", "L0", "L2"])
    )
    out = features(ev, as_of=as_of)
    assert out.loc["L0", "n_page_view_90d"] == 0.0  # its event is after its own as_of
    assert out.loc["L1", "n_page_view_90d"] == 1.0  # only the 20-day-old event
    assert out.loc["L1", "days_since_last_event"] == pytest.approx(10.0)
    assert out.loc["L0", "lead_age_days"] == pytest.approx(7.0)
    # one timestamp for all equals a Series holding that timestamp for every lead
    same = pd.Series(AS_OF, index=["L0", "L1", "L2"])
    pd.testing.assert_frame_equal(features(ev, as_of=same), features(ev))


def test_as_of_series_must_cover_every_lead():
    with pytest.raises(ValueError, match="no timestamp for 1 lead"):
        features(as_of=pd.Series([AS_OF, AS_OF], index=["L0", "L1"]))


def test_lead_created_at_or_after_as_of_keeps_a_row_without_engagement():
    leads = make_leads()
    leads.loc[1, "created_at"] = AS_OF
    leads.loc[2, "created_at"] = AS_OF + 3 * DAY
    ev = pd.DataFrame(
        {
            "lead_id": ["L0", "L1", "L2"],
            "at": [AS_OF - 20 * DAY, AS_OF - DAY, AS_OF - DAY],
            "type": ["page_view"] * 3,
        }
    )
    out = compute_features(leads, make_accounts(), ev, AS_OF)
    assert out.index.tolist() == ["L0", "L1", "L2"]
    assert out.loc["L0", "n_page_view_30d"] == 1.0  # visit before creation counts once it exists
    for lead_id in ("L1", "L2"):  # not created yet at as_of: the link to the visit was unknown
        assert out.loc[lead_id, "lead_age_days"] == 0.0
        assert out.loc[lead_id, "n_events_total"] == 0.0
        assert (
            out.loc[lead_id, "seniority"]
            == parse_job_title(leads.loc[int(lead_id[1]), "job_title"])[0]
        )
    leads.loc[2, "created_at"] = AS_OF - pd.Timedelta(1, "s")
    out = compute_features(leads, make_accounts(), ev, AS_OF)
    assert out.loc["L2", "n_events_total"] == 1.0


def test_timezones_and_units_do_not_change_values():
    ev = make_events()
    aware = ev.assign(at=ev["at"].dt.tz_localize("UTC").dt.tz_convert("Europe/Berlin"))
    as_of_aware = AS_OF.tz_localize("UTC").tz_convert("America/New_York")
    pd.testing.assert_frame_equal(features(aware, as_of=as_of_aware), features())
    micro = ev.assign(at=ev["at"].astype("datetime64[us]"))
    pd.testing.assert_frame_equal(features(micro), features())
    text = ev.assign(at=ev["at"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    pd.testing.assert_frame_equal(features(text), features())


# ----------------------------------------------------------------------------- engagement values


def test_counts_recency_and_flags():
    out = features()
    assert out.loc["L0", "n_page_view_7d"] == 1.0
    assert out.loc["L0", "n_webinar_attended_7d"] == 1.0  # exactly 7 days old
    assert out.loc["L0", "n_pricing_view_30d"] == 0.0
    assert out.loc["L0", "n_pricing_view_90d"] == 1.0
    assert out.loc["L0", "n_events_total"] == 3.0
    assert out.loc["L0", "days_since_last_event"] == pytest.approx(1.0)
    assert out.loc["L0", "days_since_last_live"] == pytest.approx(7.0)
    assert out.loc["L0", "days_since_last_web"] == pytest.approx(1.0)
    assert math.isnan(out.loc["L0", "days_since_last_email"])
    assert out.loc["L0", "distinct_topics_90d"] == 2.0
    assert out.loc["L1", "unsubscribed"] == 1.0 and out.loc["L0", "unsubscribed"] == 0.0
    assert out.loc["L1", "bounced"] == 0.0
    # a lead with no events: true zeros for counts, unknown (NaN) recency
    assert out.loc["L2", ENGAGEMENT_FEATURES].filter(like="n_").eq(0).all()
    assert out.loc["L2", [c for c in ENGAGEMENT_FEATURES if "since" in c]].isna().all()


def test_distinct_topics_count_only_the_last_90_days():
    ev = pd.DataFrame(
        {
            "lead_id": ["L0", "L0", "L0", "L0", "L0"],
            "at": [AS_OF - d * DAY for d in (1, 2, 90, 91, 200)],
            "type": ["blog_read"] * 5,
            "topic": ["fixes", "fixes", "solutions", "benchmarks", "pricing"],
        }
    )
    out = features(ev)
    assert out.loc["L0", "distinct_topics_90d"] == 2.0  # fixes, solutions (90 days inclusive)
    assert out.loc["L0", "n_events_total"] == 5.0


@pytest.mark.parametrize(("event_type", "group"), [("blog_read", "web"), ("email_open", "email")])
def test_decay_is_one_half_at_the_half_life(event_type, group):
    half_life = FeatureConfig().half_lives_days[group]
    ev = pd.DataFrame(
        {
            "lead_id": ["L0", "L1", "L1"],
            "at": [AS_OF - half_life * DAY, AS_OF - 2 * half_life * DAY, AS_OF - pd.Timedelta(0)],
            "type": [event_type] * 3,
        }
    )
    out = features(ev)
    assert out.loc["L0", f"decay_{group}"] == pytest.approx(0.5, rel=1e-12)
    assert out.loc["L1", f"decay_{group}"] == pytest.approx(0.25, rel=1e-12)  # at as_of: left out
    assert out.loc["L2", f"decay_{group}"] == 0.0


def test_config_changes_half_life_and_windows():
    ev = pd.DataFrame({"lead_id": ["L0"], "at": [AS_OF - 3 * DAY], "type": ["page_view"]})
    config = FeatureConfig(windows_days=(14, 3), half_lives_days={"web": 3})
    out = features(ev, config=config)
    assert out.loc["L0", "decay_web"] == pytest.approx(0.5)
    assert config.windows_days == (3, 14)
    assert config.half_lives_days["email"] == build.DEFAULT_HALF_LIVES_DAYS["email"]
    assert list(out.columns) == build.feature_columns(config) != FEATURE_COLUMNS
    assert out.loc["L0", "n_page_view_3d"] == 1.0


def test_config_rejects_bad_values_and_is_hashable():
    with pytest.raises(ValueError, match="unknown event groups"):
        FeatureConfig(half_lives_days={"webb": 3})
    with pytest.raises(ValueError, match="positive"):
        FeatureConfig(half_lives_days={"web": 0})
    with pytest.raises(ValueError, match="windows_days"):
        FeatureConfig(windows_days=(0, 7))
    assert FeatureConfig() == FeatureConfig() and hash(FeatureConfig()) == hash(FeatureConfig())
    assert FeatureConfig(half_lives_days={"web": 3}) != FeatureConfig()


def test_event_groups_cover_every_event_type_once():
    grouped = [t for types in EVENT_GROUPS.values() for t in types]
    assert sorted(grouped) == sorted(EVENT_TYPES)
    assert set(EVENT_GROUPS) == set(build.DEFAULT_HALF_LIVES_DAYS)


def test_shuffled_events_give_identical_output():
    rng = np.random.default_rng(3)
    ev = make_events()
    shuffled = ev.iloc[rng.permutation(len(ev))].reset_index(drop=True)
    pd.testing.assert_frame_equal(features(shuffled), features())


def test_categorical_and_text_columns_give_identical_output():
    ev = make_events()
    categorical = ev.assign(
        lead_id=pd.Categorical(ev["lead_id"], categories=["L9", "L1", "L0", "L7"]),
        type=pd.Categorical(ev["type"], categories=list(EVENT_TYPES)),
        topic=ev["topic"].astype("category"),
    )
    same_dictionary = ev.assign(  # lead dictionary == leads: codes are used as positions
        lead_id=pd.Categorical(ev["lead_id"], categories=["L0", "L1", "L2"]),
        type=pd.Categorical(ev["type"], categories=list(EVENT_TYPES)),
    )
    same_set_other_order = ev.assign(
        lead_id=pd.Categorical(ev["lead_id"], categories=["L2", "L0", "L1"])
    )
    reordered = ev.assign(type=pd.Categorical(ev["type"]))  # categories not in EVENT_TYPES order
    objects = ev.astype({"lead_id": object, "type": object, "topic": object})
    for variant in (categorical, same_dictionary, same_set_other_order, reordered, objects):
        pd.testing.assert_frame_equal(features(variant), features())


def test_long_columns_give_the_same_result_for_every_encoding():
    """Long text columns take Arrow/pandas look-ups, short ones dicts: all must agree."""
    rng = np.random.default_rng(11)
    n_events = 500
    ev = pd.DataFrame(
        {
            "lead_id": rng.choice(["L0", "L1", "L2", "X9", None], n_events),
            "at": AS_OF - pd.to_timedelta(rng.integers(-5, 100, n_events), unit="D"),
            "type": rng.choice(list(EVENT_TYPES), n_events),
            "topic": rng.choice(["fixes", "solutions", None], n_events),
        }
    )
    expected = features(ev)
    assert expected["n_events_total"].sum() > 0
    as_str = ev.astype({"lead_id": "str", "type": "str", "topic": "str"})
    as_object = ev.astype({"lead_id": object, "type": object, "topic": object})
    as_category = ev.astype({"lead_id": "category", "type": "category", "topic": "category"})
    for variant in (as_str, as_object, as_category):
        pd.testing.assert_frame_equal(features(variant), expected)
    chunks = np.array_split(np.arange(n_events), 25)  # short frames take the dict path
    assert max(len(c) for c in chunks) <= encoding.SMALL
    per_chunk = sum(features(ev.iloc[c])["n_events_total"] for c in chunks)
    pd.testing.assert_series_equal(per_chunk, expected["n_events_total"])
    bad = as_str.copy()
    bad.loc[7, "type"] = "webinar"
    with pytest.raises(ValueError, match="'webinar'"):
        features(bad)


def test_events_of_other_leads_are_ignored_and_unknown_types_raise():
    stranger = pd.DataFrame({"lead_id": ["X9"], "at": [AS_OF - DAY], "type": ["demo_request"]})
    pd.testing.assert_frame_equal(
        features(pd.concat([make_events(), stranger], ignore_index=True)), features()
    )
    bad = pd.DataFrame({"lead_id": ["L0"], "at": [AS_OF - DAY], "type": ["Page View"]})
    with pytest.raises(ValueError, match="unknown or missing values \\['Page View'\\]"):
        features(bad)


def test_contract_typed_frames_work():
    """Frames as ``contract.validate`` returns them (bool flags, categoricals, ns times)."""
    stage_history = pd.DataFrame({"lead_id": ["L0"], "stage": ["lead"], "entered_at": [AS_OF]})
    data = validate(make_accounts(), make_leads(), make_events(), stage_history)
    out = compute_features(data.leads, data.accounts, data.events, AS_OF)
    pd.testing.assert_frame_equal(out, features())


def test_duplicate_lead_ids_raise():
    leads = pd.concat([make_leads(), make_leads().iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="unique"):
        compute_features(leads, make_accounts(), make_events(), AS_OF)


# ----------------------------------------------------------------------------- firmographics


def test_firmographics_known_unknown_and_missing():
    out = features()
    l0, l1, l2 = (out.loc[i] for i in ["L0", "L1", "L2"])
    assert (l0["industry"], l0["country"], l0["region"]) == ("software", "DE", "DACH")
    assert (l1["industry"], l1["country"], l1["region"]) == ("other", "other", "other")
    assert pd.isna(l2["industry"]) and pd.isna(l2["country"]) and pd.isna(l2["region"])
    assert l0["size_band"] == "50-249" and l0["log_employees"] == pytest.approx(math.log1p(120))
    assert pd.isna(l1["size_band"]) and math.isnan(l1["log_employees"])  # missing employees
    assert (l0["source"], l1["source"]) == ("webinar", "direct_traffic") and pd.isna(l2["source"])
    assert (l0["free_mail"], l1["free_mail"]) == (0.0, 1.0) and math.isnan(l2["free_mail"])
    assert (l0["seniority"], l0["department"]) == ("c_level", "engineering")
    assert (l2["seniority"], l2["department"]) == ("unknown", "unknown")
    assert l0["lead_age_days"] == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("employees", "band"),
    [(0, "1-9"), (9, "1-9"), (10, "10-49"), (249.5, "50-249"), (999, "250-999"),
     (1000, "1000-4999"), (5000, "5000+"), (250_000, "5000+")],
)  # fmt: skip
def test_size_bands(employees, band):
    accounts = make_accounts().assign(employees=[employees, np.nan])
    out = compute_features(make_leads(), accounts, make_events(), AS_OF)
    assert out.loc["L0", "size_band"] == band


def test_text_flags_and_placeholders():
    leads = make_leads().assign(
        do_not_email=["yes", None, "No"], source=["Select", "LinkedIn", "carrier pigeon"]
    )
    out = compute_features(leads, make_accounts(), make_events(), AS_OF)
    assert out["do_not_email"].tolist()[0] == 1.0 and out["do_not_email"].tolist()[2] == 0.0
    assert math.isnan(out.loc["L1", "do_not_email"])
    assert pd.isna(out.loc["L0", "source"])  # "Select" is a form placeholder, not a value
    assert out.loc["L1", "source"] == "social" and out.loc["L2", "source"] == "other"


def test_missing_optional_columns_are_missing_features():
    leads = make_leads()[["lead_id", "created_at"]]
    out = compute_features(leads, pd.DataFrame(), make_events(), AS_OF)
    assert out["industry"].isna().all() and out["free_mail"].isna().all()
    assert (out["seniority"] == "unknown").all()
    assert out.loc["L0", "n_page_view_7d"] == 1.0


@pytest.mark.parametrize(
    ("value", "code", "region"),
    [("DE", "DE", "DACH"), ("de", "DE", "DACH"), ("Deutschland", "DE", "DACH"),
     ("Österreich", "AT", "DACH"), ("UK", "GB", "western_europe"),
     ("United States", "US", "north_america"), ("usa", "US", "north_america"),
     ("India", "IN", "asia_pacific"), ("Brasil", "BR", "latin_america"),
     ("United Arab Emirates", "AE", "middle_east_africa"), ("PL", "PL", "eastern_europe"),
     ("Sweden", "SE", "nordics"), ("Atlantis", "??", "other"), ("", None, None)],
)  # fmt: skip
def test_country_normalisation(value, code, region):
    assert geo.country_code(value) == code
    assert geo.region_of(geo.country_code(value)) == region


def test_every_country_category_has_a_region():
    assert all(c in geo.REGION_OF_COUNTRY for c in geo.COUNTRIES if c != "other")
    assert set(geo.REGION_OF_COUNTRY.values()) <= set(geo.REGIONS)


# ----------------------------------------------------------------------------- job titles

TITLES = [
    ("CTO", "c_level", "engineering"),
    ("CEO & Founder", "c_level", "executive"),
    ("Chief Financial Officer", "c_level", "finance"),
    ("Geschäftsführer", "c_level", "executive"),
    ("Owner", "c_level", "executive"),
    ("Product Owner", "individual", "product"),
    ("VP Sales", "vp", "sales"),
    ("V.P. Marketing", "vp", "marketing"),
    ("Vice-President, Engineering", "vp", "engineering"),
    ("Director of Procurement", "director", "procurement"),
    ("Bereichsleiter Produktion", "director", "operations"),
    ("head of it operations", "head", "it"),
    ("Leiter IT", "head", "it"),
    ("IT-Leiter", "head", "it"),
    ("Vertriebsleiterin", "head", "sales"),
    ("Personalleiter", "head", "hr"),
    ("Mktg Manager", "manager", "marketing"),
    ("Sales Operations Manager", "manager", "sales"),
    ("Teamleiter Einkauf", "manager", "procurement"),
    ("Customer Success Manager", "manager", "support"),
    ("Sr. Software Engineer", "senior", "engineering"),
    ("Lead Developer", "senior", "engineering"),
    ("Senior Consultant", "senior", "other"),
    ("Software Engineer", "individual", "engineering"),
    ("Softwareentwickler (m/w/d)", "individual", "engineering"),
    ("Network Administrator", "individual", "it"),
    ("Controller", "individual", "finance"),
    ("Einkäuferin", "individual", "procurement"),
    ("Junior Accountant", "junior", "finance"),
    ("Jr. Recruiter", "junior", "hr"),
    ("Assistant to the CEO", "junior", "other"),
    ("Marketing Intern", "intern", "marketing"),
    ("Werkstudent Marketing", "intern", "marketing"),
    ("Praktikantin Personalwesen", "intern", "hr"),
    ("SALES ENGINEER", "individual", "sales"),
    ("Select", "unknown", "unknown"),
    ("  ", "unknown", "unknown"),
    (None, "unknown", "unknown"),
]


@pytest.mark.parametrize(("title", "seniority", "department"), TITLES)
def test_job_title_parsing(title, seniority, department):
    assert parse_job_title(title) == (seniority, department)


def test_job_title_outputs_are_known_categories():
    for title, _, _ in TITLES:
        seniority, department = parse_job_title(title)
        assert seniority in SENIORITIES and department in DEPARTMENTS
