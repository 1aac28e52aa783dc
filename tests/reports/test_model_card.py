"""The model card's charts draw on bare matplotlib figures: no pyplot, no backend switch,
and the same PNG files the training run logs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DRAW = r"""
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

switched = []
matplotlib.use = lambda *a, **k: switched.append(a)  # any backend switch is recorded
from training import evaluate as ev
from training.drift import DriftReport, FeatureDrift, SliceSummary, plot_drift

out = Path(sys.argv[1])
rng = np.random.default_rng(0)
y = (rng.random(300) < 0.3).astype(int)
probs = {"a": np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.2, 300), 0.01, 0.99)}
ev.plot_roc(y, probs, out / "roc.png")
ev.plot_reliability_by(y, probs["a"], y * 0 + 7, "{} days", "by age", out / "rel.png")
ev.plot_importance(pd.Series([1.0, 2.0], index=["x", "y"]), out / "imp.png", "importance")
report = DriftReport("fit", [SliceSummary("fit", 100, 10), SliceSummary("holdout", 50, 9)],
                     [FeatureDrift("x", {"holdout": 0.3}, {"holdout": 0.1})], [])
plot_drift(report, out / "drift.png")
assert "matplotlib.pyplot" not in sys.modules, "pyplot imported"
assert not switched, f"backend switched: {switched}"
print("drawn")
"""


def test_charts_need_no_pyplot_and_switch_no_backend(tmp_path: Path):
    run = subprocess.run(
        [sys.executable, "-c", DRAW, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("roc", "rel", "imp", "drift"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_card_renders_from_the_run_facts_alone():
    import pandas as pd

    from reports.model_card import model_card

    comparison = pd.DataFrame({"roc_auc": [0.8, 0.7]}, index=pd.Index(["lgbm", "lr"], name="model"))
    card = model_card(
        {
            "comparison": comparison, "features": ["a", "attr_b"], "model_name": "m",
            "run_name": "r", "targets": {"sal": "SAL in 90 days"}, "primary": "sal",
            "data_dir": "/d", "split": {"fit": "2024"}, "half_lives": {"web": 14},
            "warnings": ["few rows"],
        }
    )  # fmt: skip
    assert card.startswith("# Model card: m (r)")
    assert "| model | roc_auc |" in card and "| lgbm | 0.8 |" in card
    assert "and the export's own attributes and counters" in card
    assert "## Warnings\n\n- few rows" in card and "## Known limits" in card
