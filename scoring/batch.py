"""The one scoring path: canonical tables -> features -> model -> answer rows.

The HTTP service and `leadscore score` (batch) both call ``score_tables``, so a lead gets
the same answer either way.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm.contract import CrmData
from features.build import compute_features
from features.content import funnel_profile
from scoring.answers_file import AnswerTables, write_answers
from scoring.reasons import contribution_records

EMPTY_STAGES = pd.DataFrame(
    {
        "lead_id": pd.Series(dtype="str"),
        "stage": pd.Series(dtype="str"),
        "entered_at": pd.Series(dtype="datetime64[ns]"),
    }
)


def score_tables(
    model: Any,
    leads: pd.DataFrame,
    accounts: pd.DataFrame,
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    stage_history: pd.DataFrame | None = None,
    *,
    with_contributions: bool = False,
    reasons: bool = True,
    arrow_reasons: bool = False,
) -> pd.DataFrame:
    """Score leads as of one moment; returns one answer row per lead, index = lead_id:
    probabilities, fit and interest, quadrant, then persona, lifecycle stage, segment,
    content phase and next content from the configuration versioned with the model.
    ``with_contributions`` adds a ``contributions`` column, each lead's
    :func:`~scoring.reasons.contribution_records`, and a ``features`` column, each lead's
    :func:`feature_records` (the service logs both; answers leave them out).
    ``reasons=False`` leaves the ``reasons`` column out (and the contributions it is made
    from: batch runs that need no reasons skip their cost); it cannot be combined with
    ``with_contributions``. ``arrow_reasons``: the reasons as an Arrow-backed column (see
    ``LeadScoringModel.score``), for answers about to be written to Parquet."""
    if with_contributions and not reasons:
        raise ValueError("with_contributions needs reasons")
    X = compute_features(leads, accounts, events, as_of, model.feature_config)
    if with_contributions:
        answers, contrib = model.score_with_contributions(X)
        answers["contributions"] = contribution_records(contrib, model.conversion.columns, X)
        answers["features"] = feature_records(X, model.feature_columns)
    elif not reasons:
        answers = model.score(X, reasons=False)
    else:
        answers = model.score(X, arrow_reasons=True) if arrow_reasons else model.score(X)
    history = EMPTY_STAGES if stage_history is None else stage_history
    profile = funnel_profile(leads, events, history, as_of, model.personas, model.content)
    out = answers.join(profile)
    out["flags"] = input_flags(leads, accounts, X).reindex(out.index).to_numpy()
    return out


def feature_records(X: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """Per lead, the exact value of every model feature (numbers as floats, categories as
    text, missing as None): what the prediction log keeps for monitoring drift against
    the training data (the value texts of the contributions are rounded for reading)."""
    values = []
    for c in columns:
        s = X[c]
        if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object:
            values.append([None if v is None or v != v else str(v) for v in s.tolist()])
        elif s.dtype.kind == "b":
            values.append(s.tolist())
        else:
            a = s.to_numpy(dtype=np.float64, na_value=np.nan)
            values.append([None if v != v else v for v in a.tolist()])
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


# raw column -> (feature column, name in the API); the API nests account fields in `company`
_FLAGGED_CATEGORIES = (
    ("accounts", "industry", "industry", "company.industry"),
    ("accounts", "country", "country", "company.country"),
    ("leads", "source", "source", "source"),
)
_FLAGGED_MISSING = (
    ("leads", "job_title", "job_title"),
    ("leads", "source", "source"),
    ("leads", "email_domain_kind", "email"),
    ("accounts", "industry", "company.industry"),
    ("accounts", "employees", "company.employees"),
    ("accounts", "annual_revenue", "company.annual_revenue"),
    ("accounts", "country", "company.country"),
)


def expected_custom_fields(model: Any) -> dict[str, Any]:
    """The import's custom attributes (name -> kind) and counters a model was trained on,
    named as the API takes them (without the attr_/counter_ prefixes)."""
    config = getattr(model, "feature_config", None)
    attrs = getattr(config, "custom_attributes", ())
    counters = getattr(config, "counters", ())
    return {
        "attributes": {a.name.removeprefix("attr_"): a.kind for a in attrs},
        "counters": [c.removeprefix("counter_") for c in counters],
    }


def _custom_flags(leads: pd.DataFrame, X: pd.DataFrame, flags: list[list[str]]) -> None:
    """Custom fields sent that the model does not use, and expected ones that are missing."""
    x_columns = X.columns.tolist()  # once: iterating an Arrow-backed Index is slow
    expected = {*x_columns}
    custom = [c for c in leads.columns.tolist() if c.startswith(("attr_", "counter_"))]
    for c in custom:
        if c not in expected:
            for i in np.flatnonzero(leads[c].notna().to_numpy()):
                flags[i].append(f"unknown field {c.split('_', 1)[1]!r} (not used by this model)")
    for c in x_columns:
        if c.startswith(("attr_", "counter_")):
            present = leads[c].notna().to_numpy() if c in leads else np.zeros(len(leads), bool)
            for i in np.flatnonzero(~present):
                flags[i].append(
                    f"missing {c.split('_', 1)[0].replace('attr', 'attribute')} "
                    f"{c.split('_', 1)[1]!r}"
                )


def _account_rows(accounts: pd.DataFrame, leads: pd.DataFrame) -> np.ndarray:
    """Row in ``accounts`` of each lead's account (its first row, as drop_duplicates keeps
    it), -1 when there is none."""
    ids = accounts["account_id"]
    if len(ids) <= 256 and len(leads) <= 256:  # a request: dicts beat pandas' set-up
        listed = ids.tolist()
        if all(type(a) is str for a in listed):
            first: dict[str, int] = {}
            for i, a in enumerate(listed):
                first.setdefault(a, i)
            wanted = leads["account_id"].tolist()
            return np.fromiter(
                (first.get(a, -1) if type(a) is str else -1 for a in wanted), np.intp, len(wanted)
            )
    keep = ~ids.duplicated().to_numpy()
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        return np.full(len(leads), -1, dtype=np.intp)
    pos = pd.Index(ids[keep]).get_indexer(leads["account_id"])
    return np.where(pos >= 0, rows[np.maximum(pos, 0)], -1)


def input_flags(leads: pd.DataFrame, accounts: pd.DataFrame, X: pd.DataFrame) -> pd.Series:
    """Per lead (index lead_id), what was scored but is worth a look: optional fields that
    are missing and categories the model does not know (scored as "other")."""
    n = len(leads)
    acc_row = _account_rows(accounts, leads) if "account_id" in leads else None

    def raw(table: str, column: str) -> np.ndarray:
        if table == "leads":
            if column not in leads:
                return np.full(n, None, dtype=object)
            return leads[column].to_numpy(dtype=object)
        if acc_row is None or column not in accounts or column == "account_id":
            return np.full(n, None, dtype=object)
        values = np.append(accounts[column].to_numpy(dtype=object), None)
        return values[acc_row]

    flags: list[list[str]] = [[] for _ in range(n)]
    for table, column, name in _FLAGGED_MISSING:
        values = raw(table, column)
        for i in np.flatnonzero(pd.isna(values)):
            flags[i].append(f"missing {name}")
    # each lead's row in X (the three category columns only, not a reindex of all of X)
    row = X.index.get_indexer(leads["lead_id"])
    for table, column, feature, name in _FLAGGED_CATEGORIES:
        if feature not in X:
            continue
        values = raw(table, column)
        known = np.append(X[feature].astype(object).to_numpy(), np.nan)[row]  # -1: absent
        unknown = (known == "other") & ~pd.isna(values)
        for i in np.flatnonzero(unknown):
            flags[i].append(f"unknown {name.split('.')[-1]} {str(values[i])[:60]!r}")
    _custom_flags(leads, X, flags)  # reads X's column names only
    return pd.Series(flags, index=leads["lead_id"].to_numpy(), dtype=object)


def score_batch(
    model: Any,
    leads: pd.DataFrame,
    accounts: pd.DataFrame,
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    chunk_size: int = 50_000,
    on_chunk: Callable[[int], None] = lambda n: None,
    stage_history: pd.DataFrame | None = None,
    workers: int = 1,
    reasons: bool = True,
) -> pd.DataFrame:
    """``score_tables`` over chunks of leads, as one frame (``iter_score_batch``'s chunks
    joined); ``on_chunk(n_leads)`` reports progress."""
    parts = []
    with gc_frozen():  # the tables and the model outlive the run (see gc_frozen)
        for part in iter_score_batch(
            model, leads, accounts, events, as_of, chunk_size, stage_history, workers, reasons
        ):
            parts.append(part)
            on_chunk(len(part))
    return pd.concat(parts) if parts else pd.DataFrame()


@contextlib.contextmanager
def gc_frozen() -> Iterator[None]:
    """Keep every object alive at the start of a batch run out of the cyclic garbage
    collector's scans until the run ends (``gc.freeze``, undone after).

    The tables, the model and the libraries outlive the scoring, while each chunk
    allocates millions of objects, which triggers collections that would walk them all
    again and again. Forked workers inherit the frozen heap, and a collection in a worker
    no longer writes to (and so copies) the pages shared with the parent. A run inside
    another frozen run (the service freezes its heap at start-up) leaves the freeze alone.
    ``score_batch`` and ``score_to_parquet`` enter it at their start; whoever iterates
    ``iter_score_batch`` directly may do the same."""
    frozen = gc.get_freeze_count() == 0
    if frozen:
        gc.freeze()
    try:
        yield
    finally:
        if frozen:
            gc.unfreeze()


def iter_score_batch(
    model: Any,
    leads: pd.DataFrame,
    accounts: pd.DataFrame,
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    chunk_size: int = 50_000,
    stage_history: pd.DataFrame | None = None,
    workers: int = 1,
    reasons: bool = True,
) -> Iterator[pd.DataFrame]:
    """``score_tables`` over chunks of leads, so memory stays bounded on big exports: yields
    each chunk's answer frame in lead order, and holds no answers after handing them out.

    Each chunk gets its own leads' events, stage changes and accounts (events keep their
    input order, so every answer equals the one ``score_tables`` gives on the whole
    tables). ``workers`` > 1 scores chunks in that many forked processes (0 = one per
    core), each with a single-threaded model. Iterating has no effect beyond scoring:
    the garbage-collector freeze of a batch run is the caller's (``gc_frozen``).
    ``reasons=False``: answers without the ``reasons`` column (see ``score_tables``).
    """
    plan = _ChunkPlan.build(leads, accounts, events, stage_history, as_of, chunk_size, reasons)
    yield from _score_chunks(model, plan, workers)


def _score_chunks(
    model: Any, plan: _ChunkPlan, workers: int, finish: Callable[[pd.DataFrame], Any] | None = None
) -> Iterator[Any]:
    """Each chunk's answer frame in order, or what ``finish`` makes of it (applied where
    the chunk was scored, in the worker process)."""
    workers = (os.cpu_count() or 1) if workers <= 0 else workers
    workers = min(workers, plan.n_chunks)
    if workers <= 1 or "fork" not in mp.get_all_start_methods():
        for i in range(plan.n_chunks):
            part = plan.score(model, i)
            yield part if finish is None else finish(part)
        return
    # fork: the workers share the tables with this process (copy-on-write; a forked
    # pool hands the initializer its arguments without pickling them), only the chunk
    # number goes in and the answer rows come back, one chunk at a time
    build_trees(model)  # once here: the forked workers share them
    with mp.get_context("fork").Pool(workers, _start_worker, (model, plan, finish)) as pool:
        yield from pool.imap(_score_chunk, range(plan.n_chunks))


def build_trees(model: Any) -> None:
    """The trees of a LightGBM model's heads, built and compiled now (they are otherwise
    made on first use), and the loop that picks reasons: forked batch workers share them, a
    server's first request does not wait for them."""
    heads = getattr(model, "all_heads", None)
    if heads is None or any(getattr(h, "family", None) != "lightgbm" for h in heads()):
        return
    for head in model.fast_heads().values():
        if head.trees is not None:
            head.trees.compile()
    from scoring.reason_kernels import pick

    pick(np.zeros((2, 3))[:, :-1], 1)  # the reasons' loop, on a view as _reason_parts passes


def score_to_parquet(
    path: str | os.PathLike[str],
    model: Any,
    data: CrmData,
    as_of: pd.Timestamp,
    chunk_size: int = 50_000,
    workers: int = 1,
    columns: Mapping[str, Any] | None = None,
    on_part: Callable[[pa.Table], None] = lambda part: None,
    reasons: bool = True,
) -> int:
    """Score every lead of ``data`` in chunks (as ``iter_score_batch``) straight into one
    Parquet file (as ``write_answers``), as `leadscore score` does; ``on_part`` sees each
    chunk's answers, as the Arrow table about to be written (lead_id and ``columns``
    included), before they are written (progress, tallies). Returns the rows written.

    Each chunk's answers become an Arrow table where they were scored (in the worker
    process): Arrow's buffers cross the process boundary far cheaper than a frame of
    Python lists and dicts, and the parent only writes."""

    to_table = AnswerTables(columns)
    plan = _ChunkPlan.build(
        data.leads, data.accounts, data.events, data.stage_history, as_of, chunk_size, reasons,
        arrow_reasons=True,  # the chunk's answers become an Arrow table: no dict per reason
    )  # fmt: skip

    def parts() -> Iterator[pa.Table]:
        for table in _score_chunks(model, plan, workers, to_table):
            on_part(table)
            yield table

    with gc_frozen():  # the tables and the model outlive the run (see gc_frozen)
        return write_answers(path, parts(), columns)


#: in a forked batch worker only: the model and the chunk plan it scores (``_start_worker``)
_WORKER_JOB: tuple[Any, _ChunkPlan, Callable[[pd.DataFrame], Any] | None] | None = None


def _start_worker(
    model: Any, plan: _ChunkPlan, finish: Callable[[pd.DataFrame], Any] | None = None
) -> None:
    """Pool initializer, run once in each forked worker: the job it scores, with a
    single-threaded model (the processes already use every core)."""
    global _WORKER_JOB
    scorer = model.for_serving() if hasattr(model, "for_serving") else model
    _WORKER_JOB = (scorer, plan, finish)


def _score_chunk(i: int) -> Any:
    scorer, plan, finish = _WORKER_JOB  # type: ignore[misc]
    part = plan.score(scorer, i)
    return part if finish is None else finish(part)


def _lead_positions(ids: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each id in the (unique, text) lead index; -1 for unknown or missing."""
    if isinstance(ids.dtype, pd.CategoricalDtype):
        lookup = np.append(index.get_indexer(ids.cat.categories.astype("str")), -1)
        return lookup[ids.array.codes]
    array = ids.array
    if hasattr(array, "__arrow_array__"):  # Arrow hash look-up, no Python strings
        values = pa.array(array)
        keys = pa.array(index.array).cast(values.type)
        found = pc.index_in(values, value_set=keys)
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.intp)
    return index.get_indexer(ids.astype("str"))


def _group_rows(positions: np.ndarray, chunk_size: int, n_chunks: int) -> tuple:
    """Rows ordered by chunk (input order kept inside a chunk) and each chunk's bounds."""
    keep = positions >= 0
    chunk = positions // chunk_size
    chunk = chunk.astype(np.int16 if n_chunks < 2**15 else np.int32)  # int16: radix sort
    rows = np.flatnonzero(keep)
    ids = chunk[rows]
    # tables grouped by lead in lead order (as exports often are) need no sort
    in_order = len(ids) < 2 or bool((ids[1:] >= ids[:-1]).all())
    order = rows if in_order else rows[np.argsort(ids, kind="stable")]
    bounds = np.zeros(n_chunks + 1, dtype=np.intp)
    np.cumsum(np.bincount(chunk[rows], minlength=n_chunks), out=bounds[1:])
    return order, bounds


class _ChunkRows:
    """A table's rows grouped by chunk (``_group_rows``), each chunk handed out with its
    ``lead_id`` as a categorical over the chunk's lead ids (codes = the lead's position in
    the chunk, known from the plan): the id text is neither copied per chunk nor hashed
    again by every feature (``features.encoding`` reads a categorical's codes)."""

    def __init__(
        self, table: pd.DataFrame, pos: np.ndarray, order: np.ndarray, bounds: np.ndarray
    ) -> None:
        self.columns = table.columns
        self.rest = table.drop(columns="lead_id")
        small = np.int32 if pos.max(initial=0) < 2**31 else np.int64
        self.pos = pos.astype(small)
        self.order, self.bounds = order, bounds
        # every row kept, already in chunk order: a chunk is a slice (no copy of its rows)
        self.sliced = len(order) == len(pos) and bool((np.diff(order) == 1).all())

    def chunk(self, i: int, start: int, ids: pd.CategoricalDtype) -> pd.DataFrame:
        a, b = int(self.bounds[i]), int(self.bounds[i + 1])
        rows = slice(a, b) if self.sliced else self.order[a:b]
        out = self.rest.iloc[rows]
        codes = self.pos[rows] - start
        lead_id = pd.Categorical.from_codes(codes, dtype=ids)
        out.insert(self.columns.get_loc("lead_id"), "lead_id", lead_id)
        return out


class _ChunkPlan:
    """Which rows of each table belong to chunk i (leads i*chunk_size ...)."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)

    @classmethod
    def build(
        cls,
        leads: pd.DataFrame,
        accounts: pd.DataFrame,
        events: pd.DataFrame,
        stage_history: pd.DataFrame | None,
        as_of: pd.Timestamp,
        chunk_size: int,
        reasons: bool = True,
        arrow_reasons: bool = False,
    ) -> _ChunkPlan:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        index = pd.Index(leads["lead_id"].astype("str").array).drop_duplicates()
        n_chunks = -(-len(leads) // chunk_size)
        if len(index) != len(leads):
            dup = leads.loc[leads["lead_id"].duplicated(), "lead_id"].unique()[:5].tolist()
            raise ValueError(f"leads.lead_id must be unique; duplicated: {dup}")
        ev_pos = _lead_positions(events["lead_id"], index)
        ev_order, ev_bounds = _group_rows(ev_pos, chunk_size, n_chunks)
        history = None
        if stage_history is not None:
            st_pos = _lead_positions(stage_history["lead_id"], index)
            st_order, st_bounds = _group_rows(st_pos, chunk_size, n_chunks)
            history = _ChunkRows(stage_history, st_pos, st_order, st_bounds)
        return cls(
            leads=leads,
            accounts_by_id=accounts.set_index("account_id", drop=False),
            events=_ChunkRows(events, ev_pos, ev_order, ev_bounds),
            stage_history=stage_history,
            history=history,
            as_of=as_of,
            chunk_size=chunk_size,
            n_chunks=n_chunks,
            reasons=reasons,
            arrow_reasons=arrow_reasons,
        )

    def tables(self, i: int) -> tuple[pd.DataFrame, ...]:
        start = i * self.chunk_size
        part = self.leads.iloc[start : start + self.chunk_size]
        ids = pd.CategoricalDtype(pd.Index(part["lead_id"].array))  # the leads' own ids
        ev = self.events.chunk(i, start, ids)
        acc_ids = part["account_id"].dropna().unique() if "account_id" in part else []
        acc = self.accounts_by_id
        acc = acc.loc[acc.index.intersection(acc_ids)].reset_index(drop=True)
        hist = None if self.history is None else self.history.chunk(i, start, ids)
        return part, acc, ev, hist

    def score(self, model: Any, i: int) -> pd.DataFrame:
        part, acc, ev, hist = self.tables(i)
        return score_tables(
            model, part, acc, ev, self.as_of, hist,
            reasons=self.reasons, arrow_reasons=self.arrow_reasons,
        )  # fmt: skip


def answer_records(answers: pd.DataFrame, model_ref: dict[str, str]) -> list[dict[str, Any]]:
    """Answer frame -> JSON-ready dicts, one per lead, each naming the model (the values
    ``DataFrame.to_dict("records")`` gives, read column by column)."""
    columns = answers.columns.tolist()
    values = [_native(answers.iloc[:, j]) for j in range(len(columns))]
    ids = [str(i) for i in answers.index.tolist()]
    if not columns:
        return [{"lead_id": lead_id, "model": model_ref} for lead_id in ids]
    return [
        {"lead_id": lead_id, **dict(zip(columns, row, strict=True)), "model": model_ref}
        for lead_id, row in zip(ids, zip(*values, strict=True), strict=True)
    ]


def _native(column: pd.Series) -> list[Any]:
    """A column's values as ``to_dict("records")`` gives them: NumPy numbers as Python
    numbers, object values as ``to_dict`` boxes them (NumPy scalars inside as Python
    ones, datetimes as Timestamps, ``pd.NA`` as None), other columns as their iteration
    yields them."""
    if isinstance(column.dtype, np.dtype):
        if column.dtype.kind in "fiub":
            return column.to_numpy().tolist()
        if column.dtype == object:
            return column.to_frame("values").to_dict(orient="list")["values"]
    return list(column)
