"""The canonical data contract: four tables every CRM export is mapped onto.

accounts, leads, events and stage_history are stored as Parquet files named
``<table>.parquet`` in one folder. ``validate_tables`` checks all of them at once and
returns every problem (table, row key, column, reason); nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crm.vocabulary import (
    EMAIL_DOMAIN_KINDS,
    EVENT_TYPES,
    NO_WORDS,
    STAGES,
    YES_WORDS,
)

TABLES: tuple[str, ...] = ("accounts", "leads", "events", "stage_history")

# Rows listed per column and reason; beyond that a count stands for the rest.
MAX_LISTED = 1000

# column -> kind; kinds: id, str, num, time, bool, cat:<allowed values attr>
SCHEMAS: dict[str, dict[str, str]] = {
    "accounts": {
        "account_id": "id",
        "industry": "str?",
        "employees": "num?",
        "annual_revenue": "num?",
        "country": "str?",
    },
    "leads": {
        "lead_id": "id",
        "account_id": "str?",
        "created_at": "time",
        "job_title": "str?",
        "source": "str?",
        "email_domain_kind": "email_domain_kind?",
        "do_not_email": "bool?",
    },
    "events": {
        "lead_id": "str",
        "at": "time",
        "type": "event_type",
        "topic": "str?",
        "content_id": "str?",
    },
    "stage_history": {
        "lead_id": "str",
        "stage": "stage",
        "entered_at": "time",
    },
}

# Which column identifies a row in error messages.
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "accounts": ("account_id",),
    "leads": ("lead_id",),
    "events": ("lead_id", "at"),
    "stage_history": ("lead_id", "stage"),
}

_ALLOWED: dict[str, tuple[str, ...]] = {
    "event_type": EVENT_TYPES,
    "stage": STAGES,
    "email_domain_kind": EMAIL_DOMAIN_KINDS,
}


@dataclass(frozen=True)
class Problem:
    """One bad value: where it is and why it is bad."""

    table: str
    row: str
    column: str
    reason: str

    def __str__(self) -> str:
        where = "" if self.table == "-" else self.table
        if self.row != "-":
            where += f"[{self.row}]"
        if self.column != "-":
            where += f".{self.column}"
        return f"{where}: {self.reason}" if where else self.reason


class DataContractError(ValueError):
    """Raised with every problem found in a data folder, not only the first."""

    def __init__(self, problems: list[Problem], limit: int = 50) -> None:
        self.problems = problems
        lines = [str(p) for p in problems[:limit]]
        if len(problems) > limit:
            lines.append(f"... and {len(problems) - limit} more problems")
        super().__init__(f"{len(problems)} problem(s) in the data:\n" + "\n".join(lines))


@dataclass(frozen=True)
class CrmData:
    """The four canonical tables, validated and typed."""

    accounts: pd.DataFrame
    leads: pd.DataFrame
    events: pd.DataFrame
    stage_history: pd.DataFrame

    def table(self, name: str) -> pd.DataFrame:
        return getattr(self, name)


def _row_label(df: pd.DataFrame, table: str, idx: np.ndarray) -> list[str]:
    keys = [k for k in ROW_KEYS[table] if k in df.columns]
    if not keys:
        return [f"row {i}" for i in idx]
    out = []
    for i in idx:
        parts = [f"{k}={df[k].iloc[i]}" for k in keys]
        out.append(f"row {i} " + ",".join(parts))
    return out


def _problems_for(
    df: pd.DataFrame, table: str, column: str, bad: np.ndarray, reason: str
) -> list[Problem]:
    idx = np.flatnonzero(bad)
    labels = _row_label(df, table, idx[:MAX_LISTED])
    out = [Problem(table, lab, column, reason) for lab in labels]
    if len(idx) > MAX_LISTED:
        out.append(Problem(table, "-", column, f"{reason}: {len(idx) - MAX_LISTED} more rows"))
    return out


def _coerce_time(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Parse to naive UTC timestamps; returns (values, mask of unparseable non-null)."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        parsed = s.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_datetime64_any_dtype(s.dtype):
        parsed = s
    else:
        parsed = pd.to_datetime(s, errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
    parsed = parsed.astype("datetime64[ns]")
    bad = (parsed.isna() & s.notna()).to_numpy()
    return parsed, bad


def validate_table(
    df: pd.DataFrame, table: str, categorical_text: Collection[str] = ()
) -> tuple[pd.DataFrame, list[Problem]]:
    """Check one table against the contract and return it typed, with all problems found.
    A text column named in ``categorical_text`` that arrives as a categorical of text (a
    Parquet dictionary column, :func:`read_tables` ``dictionary_ids``) stays one: its
    values are the same, and nothing downstream hashes 45M strings again."""
    schema = SCHEMAS[table]
    problems: list[Problem] = []
    # a shallow copy: columns are replaced, never written into, so the caller's frame stays
    # as it was (copy-on-write) without holding a second copy of a big export in memory
    out = df.copy(deep=False)
    for column, kind in schema.items():
        optional = kind.endswith("?")
        kind = kind.rstrip("?")
        if column not in out.columns:
            if optional:
                out[column] = pd.Series([None] * len(out), dtype="object")
            else:
                problems.append(Problem(table, "-", column, "required column is missing"))
                continue
        s = out[column]
        missing = s.isna().to_numpy()
        if not optional and kind != "bool":
            problems += _problems_for(out, table, column, missing, "required value is missing")
        if kind in ("id", "str"):
            kept = column in categorical_text and _text_categories(s)
            if s.dtype != "str" and not kept:
                out[column] = s.astype("str")
            if kind == "id":
                dup = out[column].duplicated(keep=False).to_numpy() & ~missing
                problems += _problems_for(out, table, column, dup, "duplicate id")
        elif kind == "num":
            num = pd.to_numeric(s, errors="coerce")
            bad = (num.isna() & ~missing).to_numpy()
            problems += _problems_for(out, table, column, bad, f"not a number: {column}")
            arr = num.to_numpy(dtype="float64", na_value=np.nan)
            neg = np.nan_to_num(arr, nan=0.0) < 0
            problems += _problems_for(out, table, column, neg, "must not be negative")
            inf = np.isinf(arr)
            problems += _problems_for(out, table, column, inf, "must be finite")
            out[column] = arr
        elif kind == "time":
            parsed, bad = _coerce_time(s)
            problems += _problems_for(out, table, column, bad, "not a valid timestamp")
            out[column] = parsed
        elif kind == "bool" and pd.api.types.is_bool_dtype(s.dtype) and not missing.any():
            out[column] = s.astype(bool)  # already booleans, none missing: nothing to map
        elif kind == "bool":
            mapped = s.map(_to_bool)
            bad = (mapped.isna() & ~missing).to_numpy()
            problems += _problems_for(out, table, column, bad, "not a boolean (true/false)")
            out[column] = mapped.fillna(False).astype(bool)
        else:
            problems += _allowed_values(out, table, column, _ALLOWED[kind], missing)
    return out, problems


def _allowed_values(
    out: pd.DataFrame, table: str, column: str, allowed: tuple[str, ...], missing: np.ndarray
) -> list[Problem]:
    """Type a column of allowed words (event types, stages, ...) as a categorical of them
    in ``out``; the problems of the values outside them."""
    problems: list[Problem] = []
    s = out[column]
    if isinstance(s.dtype, pd.CategoricalDtype):
        # decide per category, not per row (45M events carry 16 event types)
        known = s.cat.categories.astype(str).isin(allowed)
        codes = s.cat.codes.to_numpy()
        bad = np.zeros(len(s), dtype=bool)
        bad[codes >= 0] = ~known[codes[codes >= 0]]
        vals = s.astype("string") if bad.any() else None
    else:
        vals = s.astype("string")
        bad = (~vals.isin(allowed)).to_numpy(dtype=bool, na_value=False) & ~missing
    for i in np.flatnonzero(bad)[:MAX_LISTED]:
        problems.append(
            Problem(
                table,
                _row_label(out, table, np.array([i]))[0],
                column,
                f"unknown value {vals.iloc[i]!r}; allowed: {', '.join(allowed)}",
            )
        )
    if vals is None:  # categorical with only allowed categories: recode, no strings
        position = pd.Index(list(allowed)).get_indexer(s.cat.categories.astype(str))
        recoded = np.where(codes >= 0, position[codes], -1)
        out[column] = pd.Categorical.from_codes(
            recoded, dtype=pd.CategoricalDtype(categories=list(allowed))
        )
    else:
        out[column] = pd.Categorical(vals.where(~bad, None), categories=list(allowed))
    return problems


def _text_categories(s: pd.Series) -> bool:
    """A categorical whose categories are text (what pyarrow reads a dictionary column of
    strings as)."""
    return isinstance(s.dtype, pd.CategoricalDtype) and s.cat.categories.dtype == "str"


def _to_bool(v: object) -> object:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)) and v in (0, 1):
        return bool(v)
    t = str(v).strip().lower()
    if t in YES_WORDS:
        return True
    if t in NO_WORDS:
        return False
    return None


def validate(
    accounts: pd.DataFrame,
    leads: pd.DataFrame,
    events: pd.DataFrame,
    stage_history: pd.DataFrame,
    categorical_text: Mapping[str, Collection[str]] | None = None,
) -> CrmData:
    """Validate all four tables together; raise DataContractError listing every problem.
    ``categorical_text``: table -> text columns that may stay categoricals of text
    (:func:`validate_table`)."""
    problems: list[Problem] = []
    typed: dict[str, pd.DataFrame] = {}
    keep = categorical_text or {}
    for name, df in zip(TABLES, (accounts, leads, events, stage_history), strict=True):
        typed[name], found = validate_table(df, name, keep.get(name, ()))
        problems += found
    if not problems:
        problems += _cross_checks(typed)
    if problems:
        raise DataContractError(problems)
    return CrmData(**typed)


def _cross_checks(t: dict[str, pd.DataFrame]) -> list[Problem]:
    problems: list[Problem] = []
    known_leads = t["leads"]["lead_id"]
    known_accounts = t["accounts"]["account_id"]
    checks = [
        (t["events"], "events", "lead_id", known_leads, "leads"),
        (t["stage_history"], "stage_history", "lead_id", known_leads, "leads"),
        (t["leads"], "leads", "account_id", known_accounts, "accounts"),
    ]
    for df, name, column, known, other in checks:
        col = df[column]
        bad = col.notna().to_numpy() & ~_isin(col, known)
        idx = np.flatnonzero(bad)
        for i, label in zip(idx[:MAX_LISTED], _row_label(df, name, idx[:MAX_LISTED]), strict=True):
            reason = f"unknown {column} {col.iloc[i]!r} (not in {other})"
            problems.append(Problem(name, label, column, reason))
        if len(idx) > MAX_LISTED:
            reason = f"{len(idx) - MAX_LISTED} more rows with an unknown {column}"
            problems.append(Problem(name, "-", column, reason))
    return problems


def _isin(values: pd.Series, known: pd.Series) -> np.ndarray:
    """``values.isin(known)`` as a NumPy bool array; for Arrow-backed text through Arrow's
    own hash look-up (pandas' ``isin`` there makes a Python object of every known id)."""
    if hasattr(values.array, "__arrow_array__") and hasattr(known.array, "__arrow_array__"):
        import pyarrow as pa
        import pyarrow.compute as pc

        vals = pa.chunked_array(pa.array(values.array))
        keys = pa.chunked_array(pa.array(known.array)).combine_chunks()
        if keys.type == vals.type:
            found = pc.is_in(vals, value_set=keys)
            return found.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    return values.isin(known).to_numpy(dtype=bool)


#: the text columns :func:`read_tables` reads as categoricals with ``dictionary_ids``: the
#: long tables' repeated ids and labels
DICTIONARY_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": ("lead_id", "topic", "content_id"),
    "stage_history": ("lead_id",),
}


def read_tables(folder: str | Path, dictionary_ids: bool = False) -> CrmData:
    """Read and validate ``accounts/leads/events/stage_history.parquet`` from a folder.

    ``dictionary_ids``: the events' and stage history's lead ids, topics and content ids
    (:data:`DICTIONARY_COLUMNS`) come as categoricals of text, read from Parquet's
    dictionary pages, instead of one string per row: the same values, and the batch path
    (``leadscore score``) neither builds 45M strings nor hashes them again in every chunk
    (``benchmarks/batch.py``). Code that treats them as text must handle categoricals."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataContractError([Problem("-", "-", "-", f"data folder {folder} does not exist")])
    frames = {}
    missing = []
    for name in TABLES:
        path = folder / f"{name}.parquet"
        if not path.exists():
            missing.append(Problem(name, "-", "-", f"file {path} is missing"))
            continue
        as_dictionary = list(DICTIONARY_COLUMNS.get(name, ())) if dictionary_ids else []
        try:
            if as_dictionary:
                import pyarrow.parquet as pq

                present = set(pq.read_schema(path).names)
                as_dictionary = [c for c in as_dictionary if c in present]
            frames[name] = pd.read_parquet(path, read_dictionary=as_dictionary or None)
        except Exception as exc:  # noqa: BLE001 - a corrupt file is a user error
            missing.append(Problem(name, "-", "-", f"cannot read {path}: {exc}"))
    if missing:
        raise DataContractError(missing)
    return validate(**frames, categorical_text=DICTIONARY_COLUMNS if dictionary_ids else None)


def write_tables(data: CrmData, folder: str | Path) -> None:
    """Write the four tables as Parquet (dictionary-encoded, so ids load as categoricals fast)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        data.table(name).to_parquet(folder / f"{name}.parquet", index=False)


def data_end(data: CrmData) -> pd.Timestamp:
    """The moment the export was taken: the latest recorded timestamp anywhere."""
    candidates = [
        data.events["at"].max() if len(data.events) else pd.NaT,
        data.stage_history["entered_at"].max() if len(data.stage_history) else pd.NaT,
        data.leads["created_at"].max(),
    ]
    return max(c for c in candidates if pd.notna(c))
