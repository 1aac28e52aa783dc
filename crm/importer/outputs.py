"""What an import leaves behind: ``custom_fields.json`` (``CustomFields``, read back by
training and serving), the summary told to the user (``ImportSummary``), and the
all-or-nothing write into ``--out``."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from crm.contract import CrmData, write_tables
from crm.importer.errors import ImportOutputError
from crm.vocabulary import CUSTOM_KINDS, STAGES

CUSTOM_FIELDS_FILE = "custom_fields.json"


@dataclass(frozen=True)
class CustomFields:
    """What an import added beyond the contract, read back by training and serving.

    ``attributes`` maps each ``attr_*`` column of the leads table to its kind;
    ``counters`` names the ``counter_*`` columns (numeric); ``sources`` maps each of them to
    the export column it came from (for reasons shown to users); ``leaky`` lists export
    columns declared as filled after the outcome and left out; ``leaky_included`` the
    columns that were mapped although declared leaky (``include_leaky``); ``exported_at``,
    when known, is the moment after which outcomes in the export were not observed."""

    attributes: Mapping[str, str]
    counters: tuple[str, ...]
    label_stage: str
    leaky: tuple[str, ...] = ()
    leaky_included: tuple[str, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)
    exported_at: pd.Timestamp | None = None
    mapping: str = ""
    known_after_outcome: tuple[str, ...] = ()  # export columns left out quietly

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))
        object.__setattr__(self, "counters", tuple(self.counters))
        object.__setattr__(self, "leaky", tuple(self.leaky))
        object.__setattr__(self, "leaky_included", tuple(self.leaky_included))
        object.__setattr__(self, "known_after_outcome", tuple(self.known_after_outcome))

    @property
    def columns(self) -> tuple[str, ...]:
        """Every custom feature column: attributes, then counters."""
        return tuple(self.attributes) + self.counters

    def of_kind(self, kind: str) -> tuple[str, ...]:
        return tuple(c for c, k in self.attributes.items() if k == kind)

    def to_json(self) -> dict[str, Any]:
        return {
            "mapping": self.mapping,
            "attributes": dict(self.attributes),
            "counters": list(self.counters),
            "label_stage": self.label_stage,
            "leaky": list(self.leaky),
            "leaky_included": list(self.leaky_included),
            "sources": dict(self.sources),
            "exported_at": None if self.exported_at is None else self.exported_at.isoformat(),
            "known_after_outcome": list(self.known_after_outcome),
        }


def load_custom_fields(data_dir: str | Path) -> CustomFields | None:
    """The custom fields of an imported data folder; None when the folder has none (data
    that did not come through ``import_export``, e.g. the simulator)."""
    path = Path(data_dir) / CUSTOM_FIELDS_FILE
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    problems = []
    attributes = raw.get("attributes")
    if not isinstance(attributes, dict):
        problems.append("attributes: expected an object of column -> kind")
        attributes = {}
    for col, kind in attributes.items():
        if not str(col).startswith("attr_") or kind not in CUSTOM_KINDS:
            kinds = ", ".join(CUSTOM_KINDS)
            problems.append(f"attributes.{col}: expected attr_* -> one of {kinds}")
    counters = raw.get("counters")
    if not isinstance(counters, list) or not all(str(c).startswith("counter_") for c in counters):
        problems.append("counters: expected a list of counter_* column names")
        counters = []
    label_stage = raw.get("label_stage")
    if label_stage not in STAGES:
        problems.append(f"label_stage: expected one of {', '.join(STAGES)}")
    if problems:
        raise ValueError(f"{path} is invalid:\n  " + "\n  ".join(problems))
    exported = raw.get("exported_at")
    return CustomFields(
        attributes=attributes,
        counters=tuple(counters),
        label_stage=label_stage,
        leaky=tuple(raw.get("leaky") or ()),
        leaky_included=tuple(raw.get("leaky_included") or ()),
        sources=raw.get("sources") or {},
        exported_at=None if exported is None else pd.Timestamp(exported),
        mapping=raw.get("mapping", ""),
        known_after_outcome=tuple(raw.get("known_after_outcome") or ()),
    )


@dataclass(frozen=True)
class ImportSummary:
    """What an import wrote."""

    mapping: str
    out_dir: Path
    files: tuple[str, ...]
    leads: int
    accounts: int
    events: int
    stage_counts: Mapping[str, int]
    label_stage: str
    positives: int
    custom_fields: CustomFields
    warnings: tuple[str, ...] = ()
    left_out: int = 0  # rows left out by their label value (label.drop and unknown values)
    notes: tuple[str, ...] = ()

    @property
    def positive_rate(self) -> float:
        return self.positives / self.leads if self.leads else 0.0

    def describe(self) -> str:
        stages = ", ".join(f"{s} {n:,}" for s, n in self.stage_counts.items())
        lines = [
            f"{self.mapping}: {self.leads:,} leads, {self.accounts:,} accounts, "
            f"{self.events:,} events -> {self.out_dir}",
            f"stages: {stages}",
            f"label: {self.label_stage}, {self.positives:,} positive ({self.positive_rate:.1%})",
            f"attributes: {len(self.custom_fields.attributes)}, "
            f"counters: {len(self.custom_fields.counters)}, "
            f"leaky columns left out: {len(self.custom_fields.leaky)}",
        ]
        if self.left_out:
            lines.append(f"left out by their label value: {self.left_out:,} rows")
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def check_out_dir(out_dir: Path) -> None:
    """Refuse an output folder that cannot be one before any work is done: an existing
    file, a path under a file, or a place this user cannot write to."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ImportOutputError(f"--out {out_dir}: is a file, not a folder")
    parent = out_dir
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent != out_dir and not parent.is_dir():
        raise ImportOutputError(
            f"--out {out_dir}: {parent} is a file, so no folder can be under it"
        )
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise ImportOutputError(f"--out {out_dir}: {parent} is not writable")


def write_atomically(data: CrmData, custom_fields: CustomFields, out_dir: Path) -> None:
    """Write into a temporary folder beside ``out_dir``, then move the files in."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.import-", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; it may become out_dir itself
        write_tables(data, tmp)
        (tmp / CUSTOM_FIELDS_FILE).write_text(
            json.dumps(custom_fields.to_json(), indent=2) + "\n", encoding="utf-8"
        )
        if not out_dir.exists():
            os.replace(tmp, out_dir)
            return
        for f in tmp.iterdir():
            os.replace(f, out_dir / f.name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
