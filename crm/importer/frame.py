"""Reading the export: the given files matched to the mapping's sources, each read as
text with its CSV options and value maps, further sources joined onto the first. The
result, ``ExportFrame``, keeps each row's number in its file so every problem can
name the rows it was found in."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from crm.importer.errors import MAX_ROWS_SHOWN, ImportDataError, ImportProblem, abbreviate
from crm.importer.mapping_model import CsvOptions, ExportMapping, SourceSpec

ROW_COLUMN = "__row__:"


@dataclass
class ExportFrame:
    """The joined export: every cell as text (or NA), plus where each column came from."""

    df: pd.DataFrame
    origin: dict[str, str]  # column -> source name
    files: dict[str, str]  # source name -> file name
    csv: dict[str, CsvOptions]  # source name -> options
    problems: list[ImportProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # expected, told once (label.drop)

    def keep_rows(self, keep: np.ndarray) -> None:
        """Leave out rows (label.drop); the row numbers quoted in messages stay the file's."""
        self.df = self.df[keep].reset_index(drop=True)

    def file_of(self, column: str) -> str:
        return self.files[self.origin.get(column, next(iter(self.files)))]

    def rows_of(self, column: str) -> pd.Series:
        return self.df[ROW_COLUMN + self.origin.get(column, next(iter(self.files)))]

    def problem(self, column: str, mask: np.ndarray | pd.Series, reason: str) -> None:
        """Record ``reason`` for the rows of ``column`` where ``mask`` is true."""
        mask = np.asarray(mask, dtype=bool)
        idx = np.flatnonzero(mask)
        if not len(idx):
            return
        shown = idx[:MAX_ROWS_SHOWN]
        rows = self.rows_of(column).to_numpy()[shown]
        values = self.df[column].to_numpy()[shown] if column in self.df else [None] * len(shown)
        found = ImportProblem(
            file=self.file_of(column),
            column=column,
            reason=reason,
            rows=tuple(int(r) for r in rows),
            values=tuple("" if pd.isna(v) else str(v) for v in values),
            more=len(idx) - len(shown),
        )
        if found not in self.problems:  # a column used twice is reported once
            self.problems.append(found)

    def column_problem(self, column: str, reason: str, file: str | None = None) -> None:
        self.problems.append(ImportProblem(file or self.file_of(column), column, reason))


def assign_files(
    mapping: ExportMapping, files: Iterable[str | Path]
) -> tuple[dict[str, Path], list[ImportProblem]]:
    """Match the given files to the mapping's sources by file-name glob. Files named one
    by one are matched first; when some of them match no glob but exactly as many sources
    are still open, they are taken in order (an export saved under another name). A folder
    offers its files to the sources still open; its other files are ignored."""
    explicit: list[Path] = []
    from_dirs: list[Path] = []
    problems: list[ImportProblem] = []
    for f in files:
        p = Path(f)
        if p.is_dir():
            from_dirs += sorted(q for q in p.iterdir() if q.is_file())
        elif p.is_file():
            explicit.append(p)
        else:
            problems.append(ImportProblem(str(p), "-", "file does not exist"))
    used: dict[str, Path] = {}

    def match(candidates: list[Path]) -> None:
        for s in mapping.sources:
            if s.name in used:
                continue
            hit = next(
                (
                    p
                    for p in candidates
                    if p not in used.values() and fnmatch.fnmatch(p.name, s.file)
                ),
                None,
            )
            if hit is not None:
                used[s.name] = hit

    match(explicit)
    open_sources = [s for s in mapping.sources if s.name not in used]
    unused = [p for p in explicit if p not in used.values()]
    if unused and len(unused) == len(open_sources):
        used.update({s.name: p for s, p in zip(open_sources, unused, strict=True)})
    match(from_dirs)
    given = ", ".join(p.name for p in explicit + from_dirs) or "none"
    for s in mapping.sources:
        if s.name not in used:
            reason = f"no input file matches source {s.name!r}; given: {given}"
            problems.append(ImportProblem(s.file, "-", reason))
    names = ", ".join(f"{s.name} ({s.file})" for s in mapping.sources)
    for p in explicit:
        if p not in used.values():
            reason = f"file matches no source of the mapping: {names}"
            problems.append(ImportProblem(p.name, "-", reason))
    return used, problems


def _read_source(spec: SourceSpec, path: Path, at: str) -> pd.DataFrame:
    """One file, every cell as text; ``at`` is the source's key path (``sources.1``)."""
    opts = spec.csv
    try:
        df = pd.read_csv(
            path,
            sep=opts.separator,
            encoding=opts.encoding,
            quotechar=opts.quotechar,
            skiprows=opts.skip_rows,
            dtype=str,
            keep_default_na=False,
            na_values=opts.na_values,
        )
    except (OSError, UnicodeError, ValueError) as exc:  # ParserError, EmptyDataError: ValueError
        raise ImportDataError(
            [
                ImportProblem(
                    path.name,
                    "-",
                    f"cannot read as CSV with {at}.csv "
                    f"(encoding {opts.encoding}, separator {opts.separator!r}): {exc}",
                )
            ]
        ) from None
    if opts.trailing_empty_column:
        last = df.columns[-1] if len(df.columns) else None
        if last is None or not (str(last).startswith("Unnamed:") and df[last].isna().all()):
            raise ImportDataError(
                [
                    ImportProblem(
                        path.name,
                        str(last),
                        "csv.trailing_empty_column is set but the last column is not an "
                        "unnamed, empty column",
                    )
                ]
            )
        df = df.drop(columns=[last])
    if opts.strip_whitespace:
        for c in df.columns:
            stripped = df[c].str.strip()
            df[c] = stripped.where(stripped != "", None)
    problems = []
    for col, value_map in spec.values.items():
        if col not in df.columns:
            reason = f"column not found (used by {at}.values.{col})" + did_you_mean(col, df.columns)
            problems.append(ImportProblem(path.name, col, reason))
            continue
        mapped = df[col].map(lambda v, m=value_map: m.get(v, v) if isinstance(v, str) else v)
        df[col] = mapped.astype(object).where(mapped.notna(), None)
    if problems:
        raise ImportDataError(problems)
    df.insert(0, ROW_COLUMN + spec.name, np.arange(1, len(df) + 1))
    return df


def read_export(mapping: ExportMapping, paths: dict[str, Path]) -> ExportFrame:
    """Every source read, the further ones joined onto the first in the mapping's order."""
    base_spec = mapping.sources[0]
    df = _read_source(base_spec, paths[base_spec.name], "sources.0")
    frame = ExportFrame(
        df=df,
        origin={c: base_spec.name for c in df.columns},
        files={s.name: paths[s.name].name for s in mapping.sources},
        csv={s.name: s.csv for s in mapping.sources},
    )
    for i, spec in enumerate(mapping.sources[1:], start=1):
        right = _read_source(spec, paths[spec.name], f"sources.{i}")
        right = _align_to_join(frame, spec, right, f"sources.{i}", paths[spec.name].name)
        _join(frame, spec, right, paths[spec.name].name)
    return frame


def _align_to_join(
    frame: ExportFrame, spec: SourceSpec, right: pd.DataFrame, at: str, fname: str
) -> pd.DataFrame:
    """A further source's columns renamed for the join: its ``prefix`` put before them and
    its key given the main table's name; a missing key or a clashing name is an error."""
    assert spec.join is not None
    key, right_key = spec.join.left_key, spec.join.right_key
    problems = []
    for k, cols, name in ((key, frame.df.columns, None), (right_key, right.columns, fname)):
        if k not in cols:
            problems.append(
                ImportProblem(
                    name or frame.file_of(k),
                    k,
                    f"join column not found ({at}.join)" + did_you_mean(k, cols),
                )
            )
    if problems:
        raise ImportDataError(problems)
    right = right.rename(
        columns={
            c: spec.prefix + c
            for c in right.columns
            if c != right_key and not c.startswith(ROW_COLUMN)
        }
    )
    if right_key != key:
        if key in right.columns:
            raise ImportDataError(
                [
                    ImportProblem(
                        fname,
                        key,
                        f"the join key {right_key!r} takes the left name {key!r}, which "
                        f"this file also has; set 'prefix' on source {spec.name!r}",
                    )
                ]
            )
        right = right.rename(columns={right_key: key})
    clash = sorted(set(right.columns) & set(frame.df.columns) - {key})
    if clash:
        raise ImportDataError(
            [
                ImportProblem(
                    fname,
                    c,
                    f"also a column of {frame.file_of(c)}; set 'prefix' on source {spec.name!r}",
                )
                for c in clash
            ]
        )
    return right


def _join(frame: ExportFrame, spec: SourceSpec, right: pd.DataFrame, fname: str) -> None:
    """Join ``right`` onto the frame on the source's key: each lead may match one row;
    rows matching no lead, and leads matching no row, are told in warnings."""
    assert spec.join is not None
    key, right_key = spec.join.left_key, spec.join.right_key
    dup = right[key].duplicated(keep=False) & right[key].notna()
    if dup.any():
        sub = ExportFrame(right, {c: spec.name for c in right.columns}, {spec.name: fname}, {})
        sub.problem(key, dup, "duplicate join key (each lead may match one row)")
        raise ImportDataError(sub.problems)
    unmatched = int((~right[key].isin(frame.df[key])).sum())
    if unmatched:
        main_file = next(iter(frame.files.values()))
        frame.warnings.append(
            f"{fname}: {unmatched} row(s) whose {right_key!r} matches no row of "
            f"{main_file} were ignored"
        )
    if not spec.after_outcome:  # there, no row simply means no outcome (not won)
        _report_unmatched(frame, spec, right[key], fname)
    frame.df = frame.df.merge(right, on=key, how=spec.join.how, sort=False)
    frame.origin.update({c: spec.name for c in right.columns if c != key})


def _report_unmatched(
    frame: ExportFrame, spec: SourceSpec, right_keys: pd.Series, fname: str
) -> None:
    """Rows of the main table that find no row of the joined file lose that file's columns
    (left join) or are left out (inner join): say how many, on which key, with examples."""
    assert spec.join is not None
    key, right_key = spec.join.left_key, spec.join.right_key
    left = frame.df[key]
    missing = ~left.isin(right_keys.dropna())
    n = int(missing.sum())
    if not n:
        return
    on = f"{key}" if key == right_key else f"{key} = {fname}'s {right_key}"
    counts = left[missing].value_counts(dropna=False)
    examples = ", ".join(
        f"{'(empty)' if pd.isna(v) else repr(abbreviate(str(v), 40))} ({c:,})"
        for v, c in counts.head(3).items()
    )
    if len(counts) > 3:
        examples += f" and {len(counts) - 3:,} more value(s)"
    what = (
        "they are left out (inner join)"
        if spec.join.how == "inner"
        else "their columns from it stay empty"
    )
    frame.warnings.append(
        f"{n:,} of {len(left):,} rows of {frame.file_of(key)} found no row of {fname} on "
        f"{on} (source {spec.name!r}): {what}; {key} values without a match: {examples}"
    )


def did_you_mean(column: str, available: Iterable[str]) -> str:
    """A hint for a column name not found: the closest names the export has, if any."""
    names = [c for c in available if not str(c).startswith(ROW_COLUMN)]
    close = difflib.get_close_matches(column, names, n=2, cutoff=0.6)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return ""
