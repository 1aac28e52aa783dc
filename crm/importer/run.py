"""``import_export``: an export and its mapping in, the canonical tables out, in steps.

Every step checks in memory and collects the problems it finds; the import stops at the
first step that found any (later checks would only repeat them) and writes nothing. Only
when the tables pass the data contract are they written, all at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crm.contract import CrmData, validate
from crm.importer.creation_time import creation_times
from crm.importer.custom import ColumnPlan, custom_columns, plan_columns
from crm.importer.errors import ImportDataError, ImportOutputError, ImportProblem
from crm.importer.frame import ExportFrame, assign_files, read_export
from crm.importer.mapping_file import load_mapping, resolve_mapping
from crm.importer.mapping_model import ExportMapping
from crm.importer.outputs import CustomFields, ImportSummary, check_out_dir, write_atomically
from crm.importer.tables import (
    accounts_table,
    canonical_fields,
    empty_events,
    label_rows,
    leads_table,
    stage_history,
)
from crm.vocabulary import STAGES


def import_export(
    mapping_path: str | Path,
    files: list[Path],
    out_dir: Path,
    *,
    include_leaky: bool | None = None,
) -> ImportSummary:
    """Map an export onto the canonical tables and write them with ``custom_fields.json``.

    ``files`` may hold files or folders (a folder offers its files to the sources' globs).
    ``include_leaky`` overrides the mapping's switch. Raises MappingError for a bad mapping,
    ImportDataError when the export does not fit it, DataContractError when the result
    breaks the contract; in every such case ``out_dir`` is left untouched."""
    check_out_dir(Path(out_dir))
    mapping_path = resolve_mapping(mapping_path)
    mapping = load_mapping(mapping_path)
    leaky_on = mapping.include_leaky if include_leaky is None else include_leaky
    paths, frame = _read(mapping, files)
    plan = plan_columns(mapping, frame, leaky_on)
    _stop_on_problems(frame)  # missing columns: nothing else can be checked meaningfully
    _require_rows(mapping, frame)
    rows = _select_rows(mapping, frame)
    data = _tables(mapping, frame, plan, rows)
    exported_at = _exported_at(mapping, mapping_path, data)
    custom_fields = _custom_fields(mapping, plan, exported_at)
    try:
        write_atomically(data, custom_fields, Path(out_dir))
    except OSError as exc:
        raise ImportOutputError(f"--out {out_dir}: cannot write there: {exc}") from None
    return _summary(mapping, Path(out_dir), paths, data, rows, custom_fields, frame)


@dataclass(frozen=True)
class _Rows:
    """The rows that become leads: ``keep`` over every row read, ``positive`` over the kept
    rows, and their creation times when they had to be taken before rows were left out."""

    positive: np.ndarray
    keep: np.ndarray
    created: pd.Series | None


def _stop_on_problems(frame: ExportFrame) -> None:
    if frame.problems:
        raise ImportDataError(frame.problems)


def _read(mapping: ExportMapping, files: Iterable[Path]) -> tuple[dict[str, Path], ExportFrame]:
    """The given files matched to the mapping's sources, read and joined."""
    paths, problems = assign_files(mapping, files)
    if problems:
        raise ImportDataError(problems)
    return paths, read_export(mapping, paths)


def _require_rows(mapping: ExportMapping, frame: ExportFrame) -> None:
    if not len(frame.df):
        first_file = frame.files[mapping.sources[0].name]
        raise ImportDataError(
            [ImportProblem(first_file, "-", "0 leads: the file has a header but no data rows")]
        )


def _select_rows(mapping: ExportMapping, frame: ExportFrame) -> _Rows:
    """Which rows are positive and which are kept (label.drop and unknown label values are
    left out); the frame keeps only those rows afterwards."""
    positive, keep = label_rows(mapping, frame)
    # Time from row order is spread over every row of the file, left-out rows included.
    by_rows = mapping.fields["created_at"].row_order is not None
    created = creation_times(mapping, frame) if by_rows else None
    _stop_on_problems(frame)
    if not keep.all():
        frame.keep_rows(keep)
        positive = positive[keep]
        created = None if created is None else created[keep].reset_index(drop=True)
    if not len(frame.df):
        raise ImportDataError(
            [
                ImportProblem(
                    frame.files[mapping.sources[0].name],
                    mapping.label.column,
                    "0 leads left: every row's label value is under label.drop or in none "
                    "of the label's lists",
                )
            ]
        )
    return _Rows(positive=positive, keep=keep, created=created)


def _tables(mapping: ExportMapping, frame: ExportFrame, plan: ColumnPlan, rows: _Rows) -> CrmData:
    """The four canonical tables, checked against the data contract."""
    created = rows.created if rows.created is not None else creation_times(mapping, frame)
    canonical = canonical_fields(mapping, frame)
    custom = custom_columns(mapping, frame, plan)
    lead_ids = canonical["lead_id"]
    history = stage_history(mapping, frame, lead_ids, created, rows.positive)
    _stop_on_problems(frame)
    accounts, account_ids = accounts_table(mapping, canonical, lead_ids)
    leads = leads_table(canonical, custom, lead_ids, account_ids, created)
    return validate(accounts, leads, empty_events(), history)


def _exported_at(mapping: ExportMapping, mapping_path: Path, data: CrmData) -> pd.Timestamp | None:
    """The mapping's ``exported_at``, which no date in the export may be after."""
    exported_at = pd.Timestamp(mapping.exported_at) if mapping.exported_at else None
    latest = max(data.leads["created_at"].max(), data.stage_history["entered_at"].max())
    if exported_at is not None and exported_at < latest:
        raise ImportDataError(
            [
                ImportProblem(
                    mapping_path.name,
                    "exported_at",
                    f"{exported_at} is before the latest date in the export ({latest})",
                )
            ]
        )
    return exported_at


def _custom_fields(
    mapping: ExportMapping, plan: ColumnPlan, exported_at: pd.Timestamp | None
) -> CustomFields:
    return CustomFields(
        attributes={n: spec.kind for n, (_, spec) in plan.attributes.items()},
        counters=tuple(plan.counters),
        label_stage=mapping.label.stage,
        leaky=plan.leaky_excluded,
        leaky_included=plan.leaky_included,
        sources={n: c for n, (c, _) in {**plan.attributes, **plan.counters}.items()},
        exported_at=exported_at,
        mapping=mapping.name,
        known_after_outcome=plan.known_after_outcome,
    )


def _summary(
    mapping: ExportMapping,
    out_dir: Path,
    paths: dict[str, Path],
    data: CrmData,
    rows: _Rows,
    custom_fields: CustomFields,
    frame: ExportFrame,
) -> ImportSummary:
    stage_counts = (
        data.stage_history["stage"].astype(str).value_counts().reindex(list(STAGES)).dropna()
    )
    return ImportSummary(
        mapping=mapping.name,
        out_dir=out_dir,
        files=tuple(str(paths[s.name]) for s in mapping.sources),
        leads=len(data.leads),
        accounts=len(data.accounts),
        events=len(data.events),
        stage_counts={s: int(n) for s, n in stage_counts.items()},
        label_stage=mapping.label.stage,
        positives=int(rows.positive.sum()),
        custom_fields=custom_fields,
        warnings=tuple(frame.warnings),
        left_out=int((~rows.keep).sum()),
        notes=tuple(frame.notes),
    )
