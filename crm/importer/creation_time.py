"""When each lead was created: from a date column, from an ordering column (one ``step``
apart per rank), or from the rows' order in the file (spread between two dates, or over
the month a column names)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm.importer.cells import apply_rules, as_numbers, as_times
from crm.importer.frame import ROW_COLUMN, ExportFrame
from crm.importer.mapping_model import ExportMapping, RowOrder
from crm.importer.mapping_values import LATEST, MONTHS, parse_duration


def creation_times(mapping: ExportMapping, frame: ExportFrame) -> pd.Series:
    """Each row's ``created_at`` the way ``fields.created_at`` says; a row without one is
    a problem."""
    spec = mapping.fields["created_at"]
    if spec.row_order is not None:
        if spec.row_order.month is None:
            return _spread_over_rows(mapping, frame, spec.row_order)
        return _spread_over_months(mapping, frame, spec.row_order)
    if spec.from_order is None:
        assert spec.column is not None
        s = apply_rules(frame, spec.column, spec, mapping.missing_values)
        times = as_times(frame, spec.column, s, spec.format, spec.timezone, "fields.created_at")
        missing = s.isna().to_numpy()
        frame.problem(spec.column, missing, "missing creation date (fields.created_at)")
        return times
    return _from_order(mapping, frame)


def _from_order(mapping: ExportMapping, frame: ExportFrame) -> pd.Series:
    """``from_order``: the n-th distinct value of the ordering column created ``n`` steps
    after ``start``."""
    spec = mapping.fields["created_at"]
    assert spec.from_order is not None
    col = spec.from_order
    s = apply_rules(frame, col, spec, mapping.missing_values)
    order = as_numbers(frame, col, s, "fields.created_at.from_order")
    frame.problem(
        col, np.isnan(order) & s.isna().to_numpy(), "missing value in the ordering column"
    )
    # Rank, not value: only the order is real, the spacing is synthetic (one ``step`` apart).
    rank = pd.Series(order).rank(method="dense").to_numpy() - 1
    rank = np.nan_to_num(rank, nan=0.0)
    start = pd.Timestamp(spec.start)
    step = parse_duration(spec.step or "1h")
    if len(rank) and float(step.value) * float(rank.max()) >= float((LATEST - start).value):
        frame.column_problem(
            col,
            f"{int(rank.max()) + 1:,} values one step ({spec.step}) apart from {spec.start} "
            "run past the year 2200 (fields.created_at.step): choose a shorter step",
        )
        return pd.Series(pd.NaT, index=frame.df.index, dtype="datetime64[ns]")
    return pd.Series(start + pd.to_timedelta(rank * step.value, unit="ns"), index=frame.df.index)


def _spread_over_rows(mapping: ExportMapping, frame: ExportFrame, order: RowOrder) -> pd.Series:
    """``row_order: {start, end}``: the first row of the file at start, the last at end, the
    others evenly spaced in between in file order."""
    rows = frame.df[ROW_COLUMN + mapping.sources[0].name].to_numpy(dtype="float64")
    start, end = pd.Timestamp(order.start), pd.Timestamp(order.end)
    span = rows.max() - rows.min() if len(rows) else 0.0
    share = (rows - rows.min()) / span if span else np.zeros(len(rows))
    offset = pd.to_timedelta(share * (end - start).value, unit="ns")
    return pd.Series(start + offset, index=frame.df.index).astype("datetime64[ns]")


def _spread_over_months(mapping: ExportMapping, frame: ExportFrame, order: RowOrder) -> pd.Series:
    """``row_order: {month, year | year_column}``: each row in the month it names; the rows
    of one month evenly spread over it in file order."""
    assert order.month is not None
    what = "fields.created_at.row_order"
    text = frame.df[order.month]
    if mapping.missing_values:
        text = text.where(~text.isin(mapping.missing_values), None)
    month = text.map(lambda v: MONTHS.get(v.strip().lower()) if isinstance(v, str) else None)
    frame.problem(order.month, text.isna().to_numpy(), f"missing month ({what}.month)")
    frame.problem(
        order.month,
        (month.isna() & text.notna()).to_numpy(),
        f"not a month name or number like 'may', 'June' or '6' ({what}.month)",
    )
    months = month.fillna(1).to_numpy(dtype="int64")
    if order.year_column is not None:
        col = order.year_column
        raw = frame.df[col]
        if mapping.missing_values:
            raw = raw.where(~raw.isin(mapping.missing_values), None)
        numbers = as_numbers(frame, col, raw, f"{what}.year_column")
        frame.problem(col, raw.isna().to_numpy(), f"missing year ({what}.year_column)")
        odd = ~np.isnan(numbers) & ((numbers < 1900) | (numbers >= 2200) | (numbers % 1 != 0))
        frame.problem(col, odd, f"not a year between 1900 and 2199 ({what}.year_column)")
        years = np.where(np.isnan(numbers) | odd, 2000, numbers).astype("int64")
    else:
        assert order.year is not None
        back = np.concatenate([[0], (np.diff(months) < 0).astype("int64")]).cumsum()
        years = order.year + back
        if len(years) and years.max() >= 2200:
            frame.column_problem(
                order.month,
                f"the month goes back {int(back.max())} times, which counts from {order.year} "
                f"past the year 2199 ({what}.year): are the rows in time order?",
            )
            return pd.Series(pd.NaT, index=frame.df.index, dtype="datetime64[ns]")
    period = pd.Series(years * 12 + months - 1)
    first = pd.to_datetime({"year": years, "month": months, "day": 1})
    nxt = pd.to_datetime({"year": years + (months == 12), "month": months % 12 + 1, "day": 1})
    k = period.groupby(period).cumcount().to_numpy(dtype="float64")
    n = period.groupby(period).transform("size").to_numpy(dtype="float64")
    length = (nxt - first).to_numpy().astype("timedelta64[ns]").astype("int64")
    offset = pd.to_timedelta(length * (k / n), unit="ns")
    return pd.Series(first.to_numpy() + offset.to_numpy(), index=frame.df.index).astype(
        "datetime64[ns]"
    )
