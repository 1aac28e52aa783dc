"""Small CRM exports made on the spot, imported through a real mapping: a drifting
marketing-response export, one whose labels carry no signal, one with an after-the-outcome
column. Used by the trust tests (training, gate, leakage)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

MAPPING = """\
version: 1
name: {name}
description: generated for a test
sources:
  - name: rows
    file: {name}.csv
fields:
  lead_id: id
  created_at: {{from_order: order, start: "2021-01-01", step: 2h}}
label:
  column: outcome
  positive: [1]
  negative: [0]
  stage: customer
  at: {{offset: 1d}}
exported_at: "2023-01-01"
attributes:
{attributes}
"""


def write_export(
    out: Path, name: str, frame: pd.DataFrame, kinds: dict[str, str]
) -> tuple[Path, Path]:
    """The CSV and its mapping (``kinds``: column -> numeric | categorical)."""
    out.mkdir(parents=True, exist_ok=True)
    csv = out / f"{name}.csv"
    frame.to_csv(csv, index=False)
    attributes = "\n".join(f"  {c}: {k}" for c, k in kinds.items())
    mapping = out / f"{name}.yaml"
    mapping.write_text(MAPPING.format(name=name, attributes=attributes))
    return csv, mapping


def imported(out: Path, name: str, frame: pd.DataFrame, kinds: dict[str, str]) -> Path:
    """The export written, then imported with ``leadscore import``'s code; the data folder."""
    from crm.importer import import_export

    csv, mapping = write_export(out / "raw", name, frame, kinds)
    data_dir = out / "data"
    import_export(mapping, [csv], data_dir)
    return data_dir


def drifting_frame(n: int = 6000, seed: int = 3) -> pd.DataFrame:
    """Rows in time order whose positive rate rises from about 5 % to 30 %, and whose
    signal moves from one field to another on the way (campaigns change, a new sales team
    works other leads): what the oldest rows teach is not what the newest need."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, n)
    a, b, c = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    channel = rng.choice(["email", "event", "partner", "web"], size=n)
    rate = 0.02 + 0.2 * t
    logit = (
        np.log(rate / (1 - rate))
        + 1.4 * (1 - t) * a
        + 1.8 * t * b
        + 0.4 * c
        + np.where(channel == "event", 0.6 * t, 0.0)
    )
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "id": [f"r{i:06d}" for i in range(n)],
            "order": np.arange(n),
            "a": a.round(3),
            "b": b.round(3),
            "c": c.round(3),
            "channel": channel,
            "outcome": y.astype(int),
        }
    )


DRIFT_KINDS = {"a": "numeric", "b": "numeric", "c": "numeric", "channel": "categorical"}


def no_signal_frame(n: int = 4000, seed: int = 5) -> pd.DataFrame:
    """Fields and labels drawn independently: nothing to learn."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": [f"o{i:06d}" for i in range(n)],
            "order": np.arange(n),
            "amount": rng.lognormal(8, 1, n).round(2),
            "agent": rng.choice([f"agent{i}" for i in range(12)], size=n),
            "product": rng.choice(["basic", "pro", "enterprise"], size=n),
            "outcome": (rng.random(n) < 0.25).astype(int),
        }
    )


NO_SIGNAL_KINDS = {"amount": "numeric", "agent": "categorical", "product": "categorical"}
