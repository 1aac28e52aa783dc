"""Answers to one Parquet file, chunk by chunk: each chunk's answer frame becomes an Arrow
table where it was scored (``AnswerTables``), and ``write_answers`` appends the tables to
one file in the first chunk's schema, renamed into place only when every chunk is in.
``scoring.batch.score_to_parquet`` (``leadscore score``) writes through here."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from scoring.reasons import REASON_TYPE


class AnswerTables:
    """Answer frame -> Arrow table (lead_id and ``columns`` included), where the chunk was
    scored. The types are inferred from the first chunk only (``_answer_schema``; inferring
    walks every Python object of the reasons, flags and content lists) and reused for the
    next chunks of the same process; a chunk that does not fit them (a column the first
    chunk left all missing) is inferred on its own, as before, and cast by the writer."""

    def __init__(self, columns: Mapping[str, Any] | None) -> None:
        self.columns = dict(columns or {})
        self.schema: pa.Schema | None = None

    def __call__(self, part: pd.DataFrame) -> pa.Table:
        frame = part.reset_index().assign(**self.columns)
        table = None
        if self.schema is not None and self.schema.names == [str(c) for c in frame.columns]:
            try:
                table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                pass
        if table is None:
            schema = _answer_schema(frame)
            if self.schema is None:
                self.schema = schema
            table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        return _as_object_columns(table, frame)


def _as_object_columns(table: pa.Table, frame: pd.DataFrame) -> pa.Table:
    """The table with the pandas metadata of an answer frame whose list columns hold
    Python lists: Arrow-backed reasons (``arrow_reasons``) are the same values, and a
    reader of the file gets them back as the object column they always were."""
    arrow = [str(c) for c in frame.columns if isinstance(frame[c].dtype, pd.ArrowDtype)]
    meta = table.schema.metadata or {}
    if not arrow or b"pandas" not in meta:
        return table
    pandas_meta = json.loads(meta[b"pandas"])
    for column in pandas_meta.get("columns", []):
        if column.get("name") in arrow:
            column["numpy_type"] = "object"
    return table.replace_schema_metadata({**meta, b"pandas": json.dumps(pandas_meta).encode()})


def write_answers(
    path: str | os.PathLike[str],
    parts: Iterable[pd.DataFrame | pa.Table],
    columns: Mapping[str, Any] | None = None,
) -> int:
    """Write answer frames (index lead_id) to one Parquet file as they come, each with
    ``columns`` (name -> one value for every row) appended: the file
    ``pd.concat(parts).reset_index()`` with those columns would give with ``to_parquet``,
    without ever holding all answers. Written to a temporary file beside ``path`` and
    renamed at the end, so a failure (bad input, a chunk that fails) leaves nothing
    partial at ``path``. Returns the number of rows written. A part may also be an Arrow
    table already holding lead_id and ``columns`` (``score_to_parquet``'s chunks); the
    first part's schema is the file's."""
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # created by the writer (permissions as for any new file), a name no one else uses
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.part")
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    rows = 0

    def with_columns(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(**dict(columns or {}))

    try:
        for part in parts:
            if isinstance(part, pa.Table):
                if writer is None:
                    schema = part.schema
                    writer = pq.ParquetWriter(tmp, schema)
                table = _cast_answers(part, schema, rows)
            else:
                frame = with_columns(part.reset_index())
                if writer is None:
                    schema = _answer_schema(frame)
                    writer = pq.ParquetWriter(tmp, schema)
                table = _answer_table(frame, schema, rows)
            writer.write_table(table)
            rows += table.num_rows
        if writer is None:  # no leads: what to_parquet writes for no answers
            with_columns(pd.DataFrame().reset_index()).to_parquet(tmp, index=False)
        else:
            writer.close()
            writer = None
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            with contextlib.suppress(OSError, pa.ArrowException):  # report the first error
                writer.close()
        Path(tmp).unlink(missing_ok=True)
        raise
    return rows


# answer columns whose Arrow type a chunk may not show (every list empty, every value None)
_ANSWER_TYPES = {
    "flags": pa.list_(pa.string()),
    "next_content": pa.list_(pa.string()),
    "reasons": pa.list_(REASON_TYPE),
}


def _has_null(t: pa.DataType) -> bool:
    if pa.types.is_null(t):
        return True
    return any(_has_null(t.field(i).type) for i in range(t.num_fields))


def _answer_schema(frame: pd.DataFrame) -> pa.Schema:
    """The file's schema from the first chunk, with the known types of columns the chunk
    leaves undetermined (a list column whose lists are all empty reads as list<null>)."""
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    for i, field in enumerate(schema):
        if _has_null(field.type) and field.name in _ANSWER_TYPES:
            schema = schema.set(i, field.with_type(_ANSWER_TYPES[field.name]))
    return schema


def _cast_answers(table: pa.Table, schema: pa.Schema, first_row: int) -> pa.Table:
    """An answer table in the file's schema (a chunk may type a column the first chunk
    left open, or the other way round), or the error ``_answer_table`` gives."""
    if table.schema.equals(schema):
        return table
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError) as exc:
        raise _misfit(table.schema, schema, first_row, exc) from exc


def _answer_table(frame: pd.DataFrame, schema: pa.Schema, first_row: int) -> pa.Table:
    try:
        return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        got = pa.Schema.from_pandas(frame, preserve_index=False)
        raise _misfit(got, schema, first_row, exc) from exc


def _misfit(got: pa.Schema, schema: pa.Schema, first_row: int, exc: Exception) -> ValueError:
    """The error for a chunk whose columns do not fit the file's schema, naming each."""
    diff = [
        f"{f.name}: {got.field(f.name).type} (file: {f.type})"
        for f in schema
        if f.name in got.names and got.field(f.name).type != f.type
    ]
    return ValueError(
        f"answers from row {first_row:,} on do not fit the Parquet schema of the first "
        f"chunk ({'; '.join(diff) or exc})"
    )
