"""Custom attributes and counters: which export columns become ``attr_*`` and
``counter_*`` columns of the leads table (the plan, with the leaky and
known-after-outcome columns resolved and checked against them), and their typed
values."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from crm.importer.cells import apply_rules, as_booleans, as_numbers, as_text, infer_kind
from crm.importer.frame import ROW_COLUMN, ExportFrame, did_you_mean
from crm.importer.mapping_model import AttributeSpec, CounterSpec, ExportMapping
from crm.importer.mapping_values import snake_name


@dataclass(frozen=True)
class ColumnPlan:
    """Resolved column roles: which export columns become which output columns."""

    attributes: dict[str, tuple[str, AttributeSpec]]  # attr_* -> (column, spec)
    counters: dict[str, tuple[str, CounterSpec]]  # counter_* -> (column, spec)
    leaky_excluded: tuple[str, ...]
    leaky_included: tuple[str, ...]  # attr_* names
    known_after_outcome: tuple[str, ...] = ()


def _resolve_columns(patterns: Iterable[str], key: str, frame: ExportFrame) -> list[str]:
    """The export columns named by ``patterns`` (names or globs); one naming none is a
    problem (a typo would otherwise let the column in unnoticed)."""
    columns = [c for c in frame.df.columns if not c.startswith(ROW_COLUMN)]
    found: list[str] = []
    for pattern in patterns:
        if pattern in columns:
            hits = [pattern]
        else:
            hits = [c for c in columns if fnmatch.fnmatchcase(c, pattern)]
        if not hits:
            frame.column_problem(
                pattern, f"declared under {key} but no such column" + did_you_mean(pattern, columns)
            )
        found += [h for h in hits if h not in found]
    return found


def _resolve_leaky(mapping: ExportMapping, frame: ExportFrame, known_after: list[str]) -> list[str]:
    """The leaky columns: those under ``leaky`` and every column of an ``after_outcome``
    source but its join key, less those known only after the outcome."""
    columns = [c for c in frame.df.columns if not c.startswith(ROW_COLUMN)]
    leaky = _resolve_columns(mapping.leaky, "leaky", frame)
    for spec in mapping.sources[1:]:
        if spec.after_outcome:
            key = spec.join.left_key if spec.join else None
            leaky += [
                c
                for c in columns
                if frame.origin.get(c) == spec.name and c != key and c not in leaky
            ]
    return [c for c in leaky if c not in known_after]


def plan_columns(mapping: ExportMapping, frame: ExportFrame, include_leaky: bool) -> ColumnPlan:
    """Which export column becomes which ``attr_*``/``counter_*`` column, and which leaky
    columns are left out or (``include_leaky``) mapped too. Every column the mapping names
    must exist, and a label, leaky or known-after-outcome column cannot be a feature."""
    _check_named_columns(mapping, frame)
    known_after = _resolve_columns(mapping.known_after_outcome, "known_after_outcome", frame)
    leaky = _resolve_leaky(mapping, frame, known_after)
    label_cols = {mapping.label.column, mapping.label.at.column} - {None}
    _check_feature_columns(mapping, frame, label_cols, known_after, leaky, include_leaky)

    attributes = {mapping.attribute_name(c): (c, a) for c, a in mapping.attributes.items()}
    counters = {mapping.counter_name(c): (c, s) for c, s in mapping.counters.items()}
    leaky_included: list[str] = []
    excluded: list[str] = []
    join_keys = {s.join.left_key for s in mapping.sources if s.join}
    declared = set(mapping.attributes) | set(mapping.counters)
    for col in leaky:
        if col in declared:
            name = next(n for n, (c, _) in {**attributes, **counters}.items() if c == col)
            leaky_included.append(name)
        elif include_leaky and col not in label_cols and col not in join_keys:
            name = "attr_" + snake_name(col)
            if name in attributes or name in counters:
                frame.column_problem(col, f"leaky column would be named {name}, which is taken")
                continue
            kind = infer_kind(frame.df[col].where(~frame.df[col].isin(mapping.missing_values)))
            attributes[name] = (col, AttributeSpec(kind=kind))
            leaky_included.append(name)
        else:
            excluded.append(col)
    return ColumnPlan(
        attributes, counters, tuple(excluded), tuple(leaky_included), tuple(known_after)
    )


def _check_named_columns(mapping: ExportMapping, frame: ExportFrame) -> None:
    """Every column the fields, label, stages, attributes and counters name is in the
    export; each one missing is a problem naming the key that uses it."""
    columns = [c for c in frame.df.columns if not c.startswith(ROW_COLUMN)]
    used_by: list[tuple[str, str]] = []
    for name, spec in mapping.fields.items():
        if spec.row_order is None:
            used_by.append((spec.column or spec.from_order or "", f"fields.{name}"))
        if spec.row_order is not None:
            for key in ("month", "year_column"):
                if (col := getattr(spec.row_order, key)) is not None:
                    used_by.append((col, f"fields.{name}.row_order.{key}"))
    used_by.append((mapping.label.column, "label.column"))
    if mapping.label.at.column:
        used_by.append((mapping.label.at.column, "label.at.column"))
    for i, st in enumerate(mapping.stages):
        if st.at.column:
            used_by.append((st.at.column, f"stages.{i}.at.column"))
    used_by += [(c, f"attributes.{c}") for c in mapping.attributes]
    used_by += [(c, f"counters.{c}") for c in mapping.counters]
    for col, key in used_by:
        if col not in frame.df.columns:
            frame.column_problem(
                col, f"column not found (used by {key})" + did_you_mean(col, columns)
            )


def _check_feature_columns(
    mapping: ExportMapping,
    frame: ExportFrame,
    label_cols: set[str | None],
    known_after: list[str],
    leaky: list[str],
    include_leaky: bool,
) -> None:
    """An attribute or counter may not be the label, a known-after-outcome column, or a
    leaky one (unless ``include_leaky`` maps leaky columns on purpose)."""
    for col in list(mapping.attributes) + list(mapping.counters):
        if col in label_cols:
            frame.column_problem(col, "is the label; it cannot also be a feature")
        elif col in known_after:
            frame.column_problem(
                col,
                "is declared under known_after_outcome (known only after the outcome); it "
                "cannot be a feature: remove it from attributes/counters",
            )
        elif col in leaky and not include_leaky:
            frame.column_problem(
                col,
                "is declared leaky (filled after the outcome); remove it from attributes/"
                "counters, or set include_leaky to map it on purpose",
            )


def custom_columns(mapping: ExportMapping, frame: ExportFrame, plan: ColumnPlan) -> dict[str, Any]:
    """The typed values of every planned ``attr_*`` and ``counter_*`` column."""
    out: dict[str, Any] = {}
    for name, (col, spec) in plan.attributes.items():
        if col not in frame.df.columns:
            continue
        s = apply_rules(frame, col, spec, mapping.missing_values)
        what = f"attributes.{col}"
        if spec.kind == "numeric":
            out[name] = as_numbers(frame, col, s, what)
        elif spec.kind == "boolean":
            out[name] = as_booleans(frame, col, s, what).array
        else:
            out[name] = pd.array(as_text(s).to_numpy(), dtype="str")
    for name, (col, cspec) in plan.counters.items():
        if col not in frame.df.columns:
            continue
        s = apply_rules(frame, col, cspec, mapping.missing_values)
        what = f"counters.{col}"
        num = as_numbers(frame, col, s, what)
        frame.problem(col, num < 0, f"a counter must not be negative ({what})")
        out[name] = num
    return out
