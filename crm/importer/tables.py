"""The canonical tables built from the typed export: canonical fields, which rows are
positive and kept (the label), the stage history, the accounts and the leads."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crm.contract import SCHEMAS
from crm.email import email_domain_kind
from crm.importer.cells import apply_rules, as_booleans, as_numbers, as_text, as_times
from crm.importer.errors import MAX_ROWS_SHOWN, abbreviate
from crm.importer.frame import ExportFrame
from crm.importer.mapping_model import ExportMapping, StageTime
from crm.importer.mapping_values import parse_duration
from crm.vocabulary import EVENT_TYPES, STAGE_RANK

LEAD_FIELDS: tuple[str, ...] = tuple(SCHEMAS["leads"])
ACCOUNT_FIELDS: tuple[str, ...] = tuple(c for c in SCHEMAS["accounts"] if c != "account_id")
_NUMERIC_FIELDS = frozenset({"employees", "annual_revenue"})
_BOOLEAN_FIELDS = frozenset({"do_not_email"})


def canonical_fields(mapping: ExportMapping, frame: ExportFrame) -> dict[str, pd.Series]:
    """The mapped canonical fields but created_at, typed; lead ids must be present and
    unique."""
    out: dict[str, pd.Series] = {}
    for name, spec in mapping.fields.items():
        if name == "created_at" or spec.column is None:
            continue
        s = apply_rules(frame, spec.column, spec, mapping.missing_values)
        what = f"fields.{name}"
        if name in _NUMERIC_FIELDS:
            num = as_numbers(frame, spec.column, s, what)
            frame.problem(spec.column, num < 0, f"must not be negative ({what})")
            out[name] = pd.Series(num, index=s.index)
        elif name in _BOOLEAN_FIELDS:
            out[name] = as_booleans(frame, spec.column, s, what)
        elif name == "email_domain_kind" and spec.from_email:
            out[name] = s.map(lambda v: email_domain_kind(v) if isinstance(v, str) else None)
        else:
            out[name] = as_text(s)
    if "lead_id" in out:
        ids = out["lead_id"]
        col = mapping.fields["lead_id"].column or ""
        frame.problem(col, ids.isna().to_numpy(), "missing lead id (fields.lead_id)")
        dup = (ids.duplicated(keep=False) & ids.notna()).to_numpy()
        frame.problem(col, dup, "duplicate lead id (fields.lead_id)")
    return out


def label_rows(mapping: ExportMapping, frame: ExportFrame) -> tuple[np.ndarray, np.ndarray]:
    """Which rows are positive, and which rows to keep: rows whose label value is under
    ``label.drop`` are left out, and so are rows whose value is in none of the lists when
    ``negative`` is given (reported with their count and examples)."""
    spec = mapping.label
    s = frame.df[spec.column]
    if mapping.missing_values:
        s = s.where(~s.isin(mapping.missing_values), None)
    present = s.notna().to_numpy()
    dropped = s.isin(spec.drop or []).to_numpy() & present
    if dropped.any():
        counts = s[dropped].value_counts()
        frame.notes.append(
            f"left out {int(dropped.sum()):,} row(s) whose {spec.column!r} is under label.drop: "
            + ", ".join(f"{v!r} ({c:,})" for v, c in counts.items())
        )
    if spec.positive is None:
        return present & ~dropped, ~dropped
    positive = s.isin(spec.positive).to_numpy() & present
    keep = ~dropped
    if spec.negative is not None:
        other = present & ~positive & ~dropped & ~s.isin(spec.negative).to_numpy()
        if other.any():
            rows = frame.rows_of(spec.column).to_numpy()
            shown = []
            for value, count in s[other].value_counts().head(MAX_ROWS_SHOWN).items():
                first = rows[np.flatnonzero(other & (s == value).to_numpy())[:3]]
                where = ", ".join(f"row {r}" for r in first)
                shown.append(f"{abbreviate(str(value), 30)!r} ({count:,}: {where})")
            kinds = int(s[other].nunique())
            more = f" and {kinds - len(shown)} more value(s)" if kinds > len(shown) else ""
            frame.warnings.append(
                f"left out {int(other.sum()):,} row(s) of {frame.file_of(spec.column)} whose "
                f"{spec.column!r} is in none of label.positive, label.negative, label.drop: "
                + ", ".join(shown)
                + more
                + "; add each value to one of those lists"
            )
            keep &= ~other
    return positive, keep


def _stage_time(
    mapping: ExportMapping, frame: ExportFrame, at: StageTime, created: pd.Series, what: str
) -> pd.Series:
    offset = parse_duration(at.offset)
    if at.column is None:
        return created + offset
    s = frame.df[at.column]
    if mapping.missing_values:
        s = s.where(~s.isin(mapping.missing_values), None)
    return as_times(frame, at.column, s, at.format, at.timezone, what) + offset


def stage_history(
    mapping: ExportMapping,
    frame: ExportFrame,
    lead_ids: pd.Series,
    created: pd.Series,
    positive: np.ndarray,
) -> pd.DataFrame:
    """Every lead enters ``lead`` at created_at; then the declared stages; positives enter the
    label stage. A stage dated before an earlier one (a data-entry slip) is moved up to it."""
    entries: list[tuple[str, pd.Series]] = [("lead", created)]
    for i, st in enumerate(mapping.stages):
        entries.append((st.stage, _stage_time(mapping, frame, st.at, created, f"stages.{i}.at")))
    label_at = _stage_time(mapping, frame, mapping.label.at, created, "label.at")
    if mapping.label.at.column is not None:
        missing = positive & label_at.isna().to_numpy()
        frame.problem(mapping.label.at.column, missing, "positive lead without a label date")
    entries.append((mapping.label.stage, label_at.where(positive)))
    entries.sort(key=lambda e: STAGE_RANK[e[0]])

    frames = []
    floor = created.copy()
    for stage, at in entries:
        at = at.copy()
        early = (at < floor).to_numpy()
        if early.any():
            frame.warnings.append(
                f"{int(early.sum())} lead(s) entered {stage!r} before an earlier stage; "
                "their entry was moved up to the earlier stage's time"
            )
            at[early] = floor[early]
        floor = at.where(at.notna(), floor)
        keep = at.notna().to_numpy()
        frames.append(
            pd.DataFrame(
                {
                    "lead_id": lead_ids[keep].to_numpy(),
                    "stage": stage,
                    "entered_at": at[keep].to_numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def accounts_table(
    mapping: ExportMapping, canonical: dict[str, pd.Series], lead_ids: pd.Series
) -> tuple[pd.DataFrame, pd.Series | None]:
    """Accounts from the mapped account fields: grouped by account_id when it is mapped,
    else one account per lead (id = lead id) so per-lead firmographics fit the contract."""
    fields = [f for f in ACCOUNT_FIELDS if f in canonical]
    columns = ["account_id", *ACCOUNT_FIELDS]
    if "account_id" in canonical:
        ids = canonical["account_id"]
        df = pd.DataFrame({"account_id": ids, **{f: canonical[f] for f in fields}})
        df = df[ids.notna()].groupby("account_id", sort=False, as_index=False).first()
        return df.reindex(columns=columns), ids
    if not fields:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns}), None
    df = pd.DataFrame({"account_id": lead_ids, **{f: canonical[f] for f in fields}})
    return df.reindex(columns=columns), lead_ids


def empty_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": pd.Series([], dtype="str"),
            "at": pd.Series([], dtype="datetime64[ns]"),
            "type": pd.Categorical([], categories=list(EVENT_TYPES)),
            "topic": pd.Series([], dtype="str"),
            "content_id": pd.Series([], dtype="str"),
        }
    )


def leads_table(
    canonical: dict[str, pd.Series],
    custom: dict[str, Any],
    lead_ids: pd.Series,
    account_ids: pd.Series | None,
    created: pd.Series,
) -> pd.DataFrame:
    """The leads table: id, account, creation time, the mapped lead fields, then the custom
    ``attr_*`` and ``counter_*`` columns."""
    leads = pd.DataFrame(
        {
            "lead_id": lead_ids,
            "account_id": account_ids if account_ids is not None else None,
            "created_at": created,
            **{f: canonical[f] for f in LEAD_FIELDS[3:] if f in canonical},
        }
    )
    for name, values in custom.items():
        leads[name] = values
    return leads.reset_index(drop=True)
