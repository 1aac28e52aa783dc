"""The funnel report (`leadscore report`) and persona discovery (`leadscore personas discover`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from reports.conversion import (
    conversion_rates,
    funnel_counts,
    lead_transitions,
    monthly_conversion,
    stage_entries,
)

SECTIONS = ("data", "funnel", "monthly", "segments", "personas", "quadrants")
IMG = '<img class="chart" src="data:image/png;base64,'


@pytest.fixture(scope="module")
def small_sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crm.simulate import write_simulation

    out = tmp_path_factory.mktemp("report") / "sim"
    write_simulation(out, n_leads=3000, seed=5)
    return out


@pytest.fixture(scope="module")
def page(small_sim: Path) -> tuple[Path, str, str]:
    """`leadscore report --model champion` with no champion registered: page without quadrants.
    (The registry lookup is replaced, so the test needs no MLflow store.)"""
    import leadscore.commands.report
    from serving.model_store import ModelNotFound

    def no_model(alias: str) -> None:
        raise ModelNotFound(f"model 'lead-scorer' has no version or alias {alias!r}")

    out = small_sim.parent / "out" / "report.html"
    args = ["report", "--data", str(small_sim), "--out", str(out), "--model", "champion"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(leadscore.commands.report, "import_served", no_model)
        res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output
    return out, out.read_text(encoding="utf-8"), res.output


# ---------------------------------------------------------------- the page
def test_page_has_every_section_and_embedded_charts(page: tuple[Path, str, str]) -> None:
    _, text, output = page
    assert text.startswith("<!DOCTYPE html>")
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in text
    assert text.count(IMG) + text.count("<svg") >= 3  # funnel, months, persona x stage
    for title in ("Data window", "Conversion by month", "Persona × funnel stage", "Quadrant mix"):
        assert title in text
    assert "right-censored" in text and 'class="cens"' in text
    assert "Quadrants need a trained model" in text and "no version or alias" in text
    assert "no quadrant mix" in output
    assert "Generated " in text and str(page[0].parents[1] / "sim") in text  # footer


def test_page_loads_nothing_from_outside(page: tuple[Path, str, str]) -> None:
    text = page[1]
    assert not re.search(r"https?://", text, re.IGNORECASE)
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert not re.search(r'\bsrc="(?!data:)', text)  # every image is inline
    assert "url(" not in text


def test_funnel_counts_in_page_equal_stage_history(
    small_sim: Path, page: tuple[Path, str, str]
) -> None:
    text = page[1]
    shown = {s: int(n) for s, n in re.findall(r'data-stage="(\w+)" data-count="(\d+)"', text)}
    history = pd.read_parquet(small_sim / "stage_history.parquet")
    direct = history.groupby(history["stage"].astype(str))["lead_id"].nunique().to_dict()
    assert shown == {s: direct.get(s, 0) for s in shown}
    assert set(shown) == {"visit", "lead", "mql", "sal", "opportunity", "customer"}
    assert shown["lead"] == 3000 and shown["customer"] > 0


def test_quadrant_mix_from_scores(small_sim: Path) -> None:
    from crm.contract import read_tables
    from reports.funnel import build_report

    d = read_tables(small_sim)
    rng = np.random.default_rng(0)
    quadrant = rng.choice(["qualified", "drop", "low_fit_interested"], size=len(d.leads))
    scored = pd.DataFrame(
        {
            "quadrant": quadrant,
            "fit_score": rng.uniform(0, 100, len(d.leads)),
            "interest_score": rng.uniform(0, 100, len(d.leads)),
        },
        index=pd.Index(d.leads["lead_id"], name="lead_id"),
    )
    rep = build_report(d, scored=scored, model_label="test scores")
    shown = dict(re.findall(r'data-quadrant="(\w+)" data-count="(\d+)"', rep.html))
    expected = pd.Series(quadrant).value_counts()
    assert {k: int(v) for k, v in shown.items()} == expected.to_dict()
    assert "Quadrants need a trained model" not in rep.html
    assert rep.html.count(IMG) >= 4
    assert rep.quadrants is not None and int(rep.quadrants.to_numpy().sum()) == len(d.leads)


def test_report_rejects_a_bad_folder_and_moment(small_sim: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["report", "--data", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = CliRunner().invoke(app, ["report", "--data", str(small_sim), "--as-of", "someday"])
    assert res.exit_code == 2


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_page_renders_in_headless_chromium(page: tuple[Path, str, str], tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            "chromium",
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,3000",
            f"--screenshot={shot}",
            page[0].resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (3000, 1280)
    assert img.std() > 10  # not a blank page: text, tables and charts drawn


# ---------------------------------------------------------------- conversion, by hand
def _day(n: float) -> pd.Timestamp:
    return pd.Timestamp("2024-01-01") + pd.Timedelta(days=n)


@pytest.fixture
def five_leads() -> pd.DataFrame:
    rows = [
        ("L1", "visit", 0), ("L1", "lead", 1), ("L1", "mql", 10), ("L1", "sal", 20),
        ("L2", "lead", 0), ("L2", "mql", 5),  # stops at MQL
        ("L3", "lead", 0), ("L3", "mql", 3), ("L3", "opportunity", 30),  # skips SAL
        ("L4", "lead", 0), ("L4", "sal", 2), ("L4", "mql", 40),  # SAL before MQL
        ("L5", "lead", 0), ("L5", "mql", 50),  # MQL after the moment below
    ]  # fmt: skip
    return pd.DataFrame(
        {
            "lead_id": [r[0] for r in rows],
            "stage": [r[1] for r in rows],
            "entered_at": [_day(r[2]) for r in rows],
        }
    )


def _rates(t: pd.DataFrame) -> dict[str, tuple[int, int]]:
    r = conversion_rates(t)
    return {
        str(k): (int(e), int(c))
        for k, e, c in zip(r["transition"], r["entered"], r["converted"], strict=True)
    }


def test_stage_entries_and_counts_are_point_in_time(five_leads: pd.DataFrame) -> None:
    moment = _day(45)
    counts = funnel_counts(five_leads, moment).to_dict()
    assert counts == {"visit": 1, "lead": 5, "mql": 4, "sal": 2, "opportunity": 1, "customer": 0}
    assert funnel_counts(five_leads)["mql"] == 5
    wide = stage_entries(five_leads, moment)
    assert wide.loc["L4", "mql"] == _day(40) and pd.isna(wide.loc["L5", "mql"])


def test_conversion_on_a_hand_made_history(five_leads: pd.DataFrame) -> None:
    t = lead_transitions(five_leads, _day(45))
    assert _rates(t) == {
        "visit → lead": (1, 1),
        "lead → MQL": (5, 4),  # L5's MQL entry is after the moment: not converted
        "MQL → SAL": (4, 2),  # L1 (SAL), L3 (skipped SAL, reached opportunity)
        "SAL → opportunity": (2, 0),
        "opportunity → customer": (1, 0),
    }
    by = t.set_index(["lead_id", "transition"])
    # negative cases: stopping at MQL, and an SAL entry *before* the MQL entry
    assert not by.loc[("L2", "MQL → SAL"), "converted"]
    assert not by.loc[("L4", "MQL → SAL"), "converted"]
    assert ("L5", "MQL → SAL") not in by.index  # never entered MQL before the moment
    assert by.loc[("L3", "MQL → SAL"), "converted_at"] == _day(30)
    assert by.loc[("L3", "MQL → SAL"), "days"] == pytest.approx(27)
    assert by.loc[("L4", "lead → MQL"), "converted_at"] == _day(2)  # reached SAL first
    overall = conversion_rates(t).set_index("transition")
    assert overall.loc["MQL → SAL", "rate"] == pytest.approx(0.5)
    assert overall.loc["MQL → SAL", "median_days"] == pytest.approx((10 + 27) / 2)


def test_conversion_by_group_leaves_out_unlabelled_leads(five_leads: pd.DataFrame) -> None:
    t = lead_transitions(five_leads, _day(45))
    groups = pd.Series({"L1": "a", "L2": "a", "L3": "b", "L4": "b"})
    r = conversion_rates(t, groups)
    r = r[r["transition"] == "lead → MQL"].set_index("group")
    assert r["entered"].to_dict() == {"a": 2, "b": 2}  # L5 has no group
    assert r["converted"].to_dict() == {"a": 2, "b": 2}


def test_monthly_cohorts_and_right_censoring(five_leads: pd.DataFrame) -> None:
    moment = pd.Timestamp("2024-03-15")
    m = monthly_conversion(lead_transitions(five_leads, moment), moment)
    mql = m[m["transition"] == "MQL → SAL"]
    mql = mql.set_index(mql["month"].astype(str))
    # January cohort: L1, L2, L3 entered MQL; L1 and L3 moved on. February: L4, L5; none.
    assert mql.loc["2024-01", "entered"] == 3 and mql.loc["2024-01", "converted"] == 2
    assert mql.loc["2024-02", "entered"] == 2 and mql.loc["2024-02", "converted"] == 0
    # 90th percentile of 10 and 27 days = 25.3 days: 44 days since January ended (mature),
    # 15 days since February ended (censored)
    assert mql["lag_days"].iloc[0] == pytest.approx(25.3)
    assert not mql.loc["2024-01", "censored"]
    assert mql.loc["2024-02", "censored"]


def test_no_conversion_without_a_later_entry() -> None:
    history = pd.DataFrame(
        {"lead_id": ["A", "B"], "stage": ["mql", "mql"], "entered_at": [_day(0), _day(1)]}
    )
    t = lead_transitions(history)
    assert _rates(t) == {"MQL → SAL": (2, 0)}
    m = monthly_conversion(t, _day(400))
    assert m["lag_days"].eq(0).all() and not m["censored"].any()


# ---------------------------------------------------------------- persona discovery
def test_personas_discover_writes_loadable_yaml(small_sim: Path, tmp_path: Path) -> None:
    from features.personas import load_personas

    out = tmp_path / "personas.proposed.yaml"
    args = ["personas", "discover", "--data", str(small_sim), "--out", str(out), "--clusters", "3"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    cfg = load_personas(out)
    names = [p.name for p in cfg.personas]
    assert names == ["cluster_1", "cluster_2", "cluster_3"]
    for name in names:
        assert name in res.output
    topics = {t for p in cfg.personas for t in p.topics}
    assert any(t in res.output for t in topics)


def test_personas_discover_explains_too_many_clusters(small_sim: Path, tmp_path: Path) -> None:
    args = ["personas", "discover", "--data", str(small_sim), "--out", str(tmp_path / "p.yaml")]
    res = CliRunner().invoke(app, [*args, "--clusters", "5000"])
    assert res.exit_code == 2 and "n_clusters" in res.output


def test_every_quadrant_and_stage_of_the_vocabulary_has_its_words_on_the_page():
    from crm.vocabulary import QUADRANTS, STAGES
    from reports.conversion import STAGE_LABELS
    from reports.quadrant_mix import QUADRANT_STYLES, quadrant_style

    assert list(QUADRANT_STYLES) == list(QUADRANTS)  # the page lists them in this order
    for q in QUADRANTS:
        style = quadrant_style(q)
        assert style.label and style.todo and style.colour.startswith("#") and style.corner
    assert quadrant_style("unheard_of").label == "unheard_of"
    assert set(STAGE_LABELS) == set(STAGES)
