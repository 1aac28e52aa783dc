"""Map a CRM export onto the canonical contract through a YAML mapping, not code.

A mapping (see ``crm/mappings/*.yaml`` for two complete, commented examples) says:

- ``sources``: the input file(s) and how to read them (CSV separator, encoding, a trailing
  empty column, number format) and value maps applied as a file is read; a further source
  is joined onto the first (``on``, or ``left_on``/``right_on``; main-table rows without a
  match are counted in a warning);
- ``missing_values``: placeholders meaning "not answered" (X Education's ``Select``),
  globally and per column;
- ``fields``: canonical fields (``lead_id``, ``created_at``, ``source``, ``country`` ...)
  from source columns, with value maps and date formats; ``created_at`` can be synthesized
  when the export has no date, from an ordering column (``from_order``) or from the rows'
  order in the file (``row_order``: between two dates, or within the month a column names);
- ``label``: which column/values mark a positive lead (``positive``/``negative``; rows
  under ``drop`` or of any other value are left out), which funnel stage that means and
  when the lead entered it; ``stages``: further stage entries every lead has;
- ``leaky``: columns filled in by sales during or after the outcome, excluded from the
  output unless ``include_leaky`` maps them on purpose (for the leakage check);
  ``known_after_outcome``: columns known only after the outcome, left out quietly;
- ``attributes``: custom lead/account attributes (numeric, categorical, boolean), written
  as ``attr_<snake_name>`` columns of the leads table;
- ``counters``: pre-aggregated engagement counts for exports without an event log, written
  as ``counter_<snake_name>`` columns (numeric, never negative).

docs/MAPPING.md documents every key; ``crm.mapping_schema`` gives the JSON Schema.

``import_export`` writes the four canonical Parquet tables plus ``custom_fields.json`` into
``out_dir``, all or nothing: everything is checked in memory first, written into a temporary
folder beside ``out_dir`` and moved into place only at the end. Training and serving read
the custom columns back with ``load_custom_fields``.
"""

from __future__ import annotations

import codecs
import difflib
import fnmatch
import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from crm.contract import SCHEMAS, validate, write_tables
from crm.email import email_domain_kind
from crm.vocabulary import CUSTOM_KINDS, EVENT_TYPES, STAGE_RANK, STAGES

MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings"
CUSTOM_FIELDS_FILE = "custom_fields.json"

Kind = Literal["numeric", "categorical", "boolean"]
KINDS: tuple[str, ...] = CUSTOM_KINDS

LEAD_FIELDS: tuple[str, ...] = tuple(SCHEMAS["leads"])
ACCOUNT_FIELDS: tuple[str, ...] = tuple(c for c in SCHEMAS["accounts"] if c != "account_id")
CanonicalField = Literal[
    "lead_id",
    "account_id",
    "created_at",
    "job_title",
    "source",
    "email_domain_kind",
    "do_not_email",
    "industry",
    "employees",
    "annual_revenue",
    "country",
]
_NUMERIC_FIELDS = frozenset({"employees", "annual_revenue"})
_BOOLEAN_FIELDS = frozenset({"do_not_email"})

_TRUE = frozenset({"true", "yes", "y", "1", "t"})
_FALSE = frozenset({"false", "no", "n", "0", "f"})

# Rows quoted per problem before the rest is counted.
_MAX_ROWS_SHOWN = 5
_ROW = "__row__:"


# --------------------------------------------------------------------------- errors


class MappingError(ValueError):
    """The mapping file itself is bad; the message names the file and the key."""


@dataclass(frozen=True)
class ImportProblem:
    """One way the export does not fit the mapping: which file, column, rows and values."""

    file: str
    column: str
    reason: str
    rows: tuple[int, ...] = ()
    values: tuple[str, ...] = ()
    more: int = 0

    def __str__(self) -> str:
        where = self.file if self.column == "-" else f"{self.file}, column {self.column!r}"
        if self.rows:
            values = self.values or ("",) * len(self.rows)
            shown = ", ".join(
                f"row {r} ({_short(v)!r})" if self.values else f"row {r}"
                for r, v in zip(self.rows, values, strict=True)
            )
            extra = f" and {self.more} more rows" if self.more else ""
            return f"{where}: {self.reason}: {shown}{extra}"
        return f"{where}: {self.reason}"


def _short(value: str, limit: int = 60) -> str:
    """A cell as quoted in a message: a 5,000-digit number is shown by its start."""
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value):,} characters)"


class ImportOutputError(ValueError):
    """``--out`` cannot hold the import: a file, a path under a file, or not writable."""


class ImportDataError(ValueError):
    """The export does not fit its mapping; lists every problem found, nothing is written.

    Rows are data rows of the named file counted from 1, header excluded."""

    def __init__(self, problems: list[ImportProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"- {p}" for p in problems)
        super().__init__(
            f"the export does not fit the mapping ({len(problems)} problem(s)):\n{lines}"
        )


# --------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """YAML 1.2-style scalars: only true/false are booleans (``Yes``/``No``/``on`` stay
    strings, as CRM values do), dates stay strings, and a repeated key is an error.

    Anchors and aliases (``&name`` / ``*name``) are refused before anything is built: a
    mapping never needs them, and a kilobyte of nested aliases expands to billions of
    nodes (a "YAML bomb") that would take minutes to check."""

    _depth = 0
    MAX_DEPTH = 20  # a mapping nests 6 levels deep; 50,000 '[' would overflow the stack

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if self._depth >= self.MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"nested deeper than {self.MAX_DEPTH} levels; a mapping never needs that",
                event.start_mark,
            )
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None,
                None,
                "YAML anchors and aliases (&name, *name) are not allowed in a mapping; "
                "write the values out",
                event.start_mark,
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


# --------------------------------------------------------------------------- schema


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _text(value: Any) -> str:
    """A YAML scalar as the text it stands for in a CSV cell (``1`` -> ``"1"``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _texts(value: Any) -> Any:
    if value is None:
        return value
    if isinstance(value, (str, int, float, bool)):
        value = [value]
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


_SCALAR_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
}
# A list of cell values; YAML numbers and booleans are read as the text they stand for, and
# one value may stand alone (``positive: 1`` is ``positive: ["1"]``).
Texts = Annotated[
    list[str],
    BeforeValidator(_texts),
    WithJsonSchema({"anyOf": [_SCALAR_SCHEMA, {"type": "array", "items": _SCALAR_SCHEMA}]}),
]

# Dates a mapping may name: pandas holds nanoseconds from 1677 to 2262; a lead-scoring
# export lives well inside this window, and staying inside it keeps arithmetic safe.
_EARLIEST, _LATEST = pd.Timestamp("1900-01-01"), pd.Timestamp("2200-01-01")
_MAX_OFFSET = pd.Timedelta(days=3650)


def _date(value: Any, key: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(str(value))
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"'{key}' is not a date: {value!r}") from exc
    if pd.isna(ts) or not _EARLIEST <= ts.tz_localize(None) < _LATEST:
        raise ValueError(f"'{key}' must be a date between 1900 and 2200: {value!r}")
    return ts


def _timedelta(value: str) -> pd.Timedelta:
    """``1h``, ``30min``, ``1d`` / ``2 days`` (pandas deprecates the lower-case ``d``)."""
    text = re.sub(r"(?<=[\d\s])d(?:ays?)?$", "D", str(value).strip())
    try:
        td = pd.Timedelta(text)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"not a duration like '1h' or '1d': {value!r}") from exc
    if pd.isna(td):
        raise ValueError(f"not a duration like '1h' or '1d': {value!r}")
    return td


def _check_format(value: str | None) -> str | None:
    """A strftime date format pandas can parse with (``%Q`` is refused here, not mid-import)."""
    if value is not None:
        try:
            pd.to_datetime(pd.Series(["2020-01-01"]), format=value, errors="coerce")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a date format: {exc}") from None
    return value


def _check_timezone(value: str | None) -> str | None:
    if value is not None:
        try:
            pd.Timestamp("2020-01-01").tz_localize(value)
        except Exception as exc:  # noqa: BLE001 - pytz/zoneinfo raise several types
            raise ValueError(f"unknown time zone {value!r}") from exc
    return value


class CsvOptions(_Frozen):
    """How to read one CSV file. Every cell is read as text; the mapping types it."""

    separator: str = Field(",", min_length=1, max_length=1)  # pandas reads longer as a regex
    encoding: str = "utf-8-sig"  # utf-8 that also drops a byte-order mark
    quotechar: str = Field('"', min_length=1, max_length=1)
    skip_rows: int = Field(0, ge=0, le=1000)  # title lines; pandas builds a set of them
    na_values: Texts = Field(default_factory=lambda: [""])
    strip_whitespace: bool = True
    # Every line ends in a separator (X Education): drop the unnamed, empty last column.
    trailing_empty_column: bool = False
    decimal: str = Field(".", min_length=1, max_length=1)
    thousands: str | None = Field(None, min_length=1, max_length=1)

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        try:
            info = codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r} (e.g. utf-8, latin-1, cp1252)") from None
        if not getattr(info, "_is_text_encoding", True):
            raise ValueError(f"{v!r} is not a text encoding (e.g. utf-8, latin-1, cp1252)")
        return v


class JoinSpec(_Frozen):
    """Join this source onto the sources before it: ``left`` keeps every row of the main
    table. ``on`` names a key column both sides share; ``left_on``/``right_on`` name it on
    each side when the names differ (the key keeps the left name)."""

    on: str | None = None
    left_on: str | None = None
    right_on: str | None = None
    how: Literal["left", "inner"] = "left"

    @model_validator(mode="after")
    def _keys(self) -> JoinSpec:
        if self.on is not None and (self.left_on is not None or self.right_on is not None):
            raise ValueError("give 'on' (same name on both sides) or 'left_on' and 'right_on'")
        if self.on is None and (self.left_on is None or self.right_on is None):
            raise ValueError("give 'on', or both 'left_on' and 'right_on'")
        return self

    @property
    def left_key(self) -> str:
        return self.on or self.left_on or ""

    @property
    def right_key(self) -> str:
        return self.on or self.right_on or ""


class SourceSpec(_Frozen):
    name: str
    file: str = "*"  # glob matched against the names of the files given to the import
    csv: CsvOptions = CsvOptions()
    join: JoinSpec | None = None
    prefix: str = ""  # put before this source's column names when they clash
    # Every column of this file exists only after the outcome (Olist closed deals): leaky.
    after_outcome: bool = False
    # Value maps applied to this file's columns as it is read, before any join: a key
    # spelt differently in two files is made the same here.
    values: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("values", mode="before")
    @classmethod
    def _values_as_text(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {
                _text(col): (
                    {_text(k): None if x is None else _text(x) for k, x in m.items()}
                    if isinstance(m, dict)
                    else m
                )
                for col, m in v.items()
            }
        return v


class _ValueRules(_Frozen):
    """Value handling shared by fields, attributes and counters."""

    missing_values: Texts = Field(default_factory=list)
    values: dict[str, Any] | None = None
    strict: bool = False  # a value absent from ``values`` is an error, not passed through

    @field_validator("values", mode="before")
    @classmethod
    def _keys_as_text(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {_text(k): val for k, val in v.items()}
        return v

    @model_validator(mode="after")
    def _strict_needs_values(self) -> _ValueRules:
        if self.strict and not self.values:
            raise ValueError("strict: true needs a 'values' map")
        return self


_MONTH_NAMES = (
    "jan feb mar apr may jun jul aug sep oct nov dec".split(),
    "january february march april may june july august september october november december".split(),
)
MONTHS: Mapping[str, int] = MappingProxyType(
    {name: i for names in _MONTH_NAMES for i, name in enumerate(names, start=1)}
    | {str(i): i for i in range(1, 13)}
    | {f"{i:02d}": i for i in range(1, 10)}
)


class RowOrder(_Frozen):
    """created_at from the order of the rows in the file, for exports without a date that
    are in time order. Either ``start`` and ``end``: the first row is created at start, the
    last at end, the others evenly spread in between in file order. Or ``month``: a column
    naming each row's month (``may``, ``June``, ``6``), with ``year_column`` or ``year``
    (the first row's year, counted on each time the month goes back, as from dec to jan);
    the rows of one month are spread evenly over it in file order."""

    start: str | None = None
    end: str | None = None
    month: str | None = None
    year: int | None = Field(None, ge=1900, le=2199)
    year_column: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> RowOrder:
        if self.month is None:
            if self.start is None or self.end is None:
                raise ValueError(
                    "give 'start' and 'end' (dates), or 'month' (a column) with 'year' "
                    "or 'year_column'"
                )
            if self.year is not None or self.year_column is not None:
                raise ValueError("'year' and 'year_column' go with 'month'")
            if _date(self.end, "end") <= _date(self.start, "start"):
                raise ValueError(f"'end' ({self.end}) must be after 'start' ({self.start})")
        else:
            if self.start is not None or self.end is not None:
                raise ValueError("give 'start'/'end' or 'month', not both")
            if (self.year is None) == (self.year_column is None):
                raise ValueError(
                    "'month' needs one of 'year' (the first row's year) or 'year_column'"
                )
        return self


class FieldSpec(_ValueRules):
    """A canonical field: ``column`` (with an optional date ``format``/``timezone``,
    ``from_email`` for email_domain_kind), or for created_at only ``from_order`` or
    ``row_order``."""

    column: str | None = None
    format: str | None = None
    timezone: str | None = None
    from_email: bool = False  # email_domain_kind: read an e-mail address, keep only its kind
    from_order: str | None = None
    start: str | None = None
    step: str | None = None
    row_order: RowOrder | None = None

    _tz = field_validator("timezone")(_check_timezone)
    _fmt = field_validator("format")(_check_format)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"column": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_origin(self) -> FieldSpec:
        origins = [self.column, self.from_order, self.row_order]
        if sum(o is not None for o in origins) != 1:
            raise ValueError("give exactly one of 'column', 'from_order' or 'row_order'")
        if self.from_order is not None:
            if self.start is None or self.step is None:
                raise ValueError("'from_order' needs 'start' (a date) and 'step' (e.g. '1h')")
            _date(self.start, "start")
            if _timedelta(self.step) <= pd.Timedelta(0):
                raise ValueError("'step' must be positive")
            if _timedelta(self.step) > _MAX_OFFSET:
                raise ValueError(f"'step' must be at most 3650d (10 years): {self.step!r}")
        elif self.start is not None or self.step is not None:
            raise ValueError("'start' and 'step' belong to 'from_order'")
        return self


class AttributeSpec(_ValueRules):
    kind: Kind
    name: str | None = None  # snake name after ``attr_``; default: from the column name

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"kind": v} if isinstance(v, str) else v


class CounterSpec(_ValueRules):
    name: str | None = None  # snake name after ``counter_``; default: from the column name

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {} if v is None else v


class StageTime(_Frozen):
    """When a stage was entered: a date ``column`` (leads whose cell is empty did not enter
    it) or, without a column, ``created_at``; plus an ``offset`` such as ``1d``."""

    column: str | None = None
    format: str | None = None
    timezone: str | None = None
    offset: str = "0s"

    _tz = field_validator("timezone")(_check_timezone)
    _fmt = field_validator("format")(_check_format)

    @field_validator("offset")
    @classmethod
    def _offset(cls, v: str) -> str:
        td = _timedelta(v)
        if td < pd.Timedelta(0):
            raise ValueError("'offset' must not be negative")
        if td > _MAX_OFFSET:
            raise ValueError(f"'offset' must be at most 3650d (10 years): {v!r}")
        return v


class StageSpec(_Frozen):
    stage: Literal["mql", "sal", "opportunity", "customer"]
    at: StageTime = StageTime()


class LabelSpec(_Frozen):
    """Positive leads entered ``stage`` at ``at``. ``positive`` lists the values of
    ``column`` that mean positive; without it any non-empty value is positive. Empty cells
    are negative. ``drop`` lists values whose rows are left out (open deals: no outcome
    yet). With ``negative`` given, rows holding any other value are left out too and
    reported with their count and examples."""

    column: str
    positive: Texts | None = None
    negative: Texts | None = None
    drop: Texts | None = None
    stage: Literal["mql", "sal", "opportunity", "customer"]
    at: StageTime = StageTime()

    @model_validator(mode="after")
    def _disjoint(self) -> LabelSpec:
        lists = {"positive": self.positive, "negative": self.negative, "drop": self.drop}
        seen: dict[str, str] = {}
        for key, values in lists.items():
            for v in values or ():
                if v in seen:
                    raise ValueError(f"value {v!r} is in both '{seen[v]}' and '{key}'")
                seen[v] = key
        if self.negative is not None and self.positive is None:
            raise ValueError("'negative' needs 'positive'")
        return self


class ExportMapping(_Frozen):
    """A whole mapping file."""

    version: Literal[1] = 1
    name: str
    description: str = ""
    sources: list[SourceSpec] = Field(min_length=1)
    missing_values: Texts = Field(default_factory=list)
    fields: dict[CanonicalField, FieldSpec]
    label: LabelSpec
    stages: list[StageSpec] = Field(default_factory=list)
    leaky: list[str] = Field(default_factory=list)  # column names or glob patterns
    include_leaky: bool = False
    # Known only after the outcome (close reason, won amount): never a feature, never
    # offered to the leakage check, left out without a word. Names or glob patterns.
    known_after_outcome: list[str] = Field(default_factory=list)
    attributes: dict[str, AttributeSpec] = Field(default_factory=dict)
    counters: dict[str, CounterSpec] = Field(default_factory=dict)
    # When the export was taken: outcomes are final up to here (see custom_fields.json).
    exported_at: str | None = None

    @field_validator("counters", mode="before")
    @classmethod
    def _counter_list(cls, v: Any) -> Any:
        if isinstance(v, list):
            return {c: None for c in v} if all(isinstance(c, str) for c in v) else v
        return v

    @field_validator("exported_at")
    @classmethod
    def _exported_at(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                pd.Timestamp(v)
            except ValueError as exc:
                raise ValueError(f"not a date: {v!r}") from exc
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ExportMapping:
        for required in ("lead_id", "created_at"):
            if required not in self.fields:
                raise ValueError(f"fields.{required} is required")
        for name, spec in self.fields.items():
            if spec.from_order is not None and name != "created_at":
                raise ValueError(f"fields.{name}: 'from_order' is only for created_at")
            if spec.row_order is not None and name != "created_at":
                raise ValueError(f"fields.{name}: 'row_order' is only for created_at")
            if spec.from_email and name != "email_domain_kind":
                raise ValueError(f"fields.{name}: 'from_email' is only for email_domain_kind")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError("sources: names must be unique")
        if self.sources[0].join is not None:
            raise ValueError("sources.0.join: the first source is the one others join onto")
        for i, s in enumerate(self.sources[1:], start=1):
            if s.join is None:
                raise ValueError(f"sources.{i}.join: a further source needs 'join: {{on: ...}}'")
        for pattern in self.known_after_outcome:
            if pattern in self.leaky:
                raise ValueError(
                    f"known_after_outcome: {pattern!r} is also under 'leaky'; keep one "
                    "('leaky' to have the leakage check see it)"
                )
        seen: dict[str, str] = {}
        for col, a in self.attributes.items():
            key = "attr_" + (a.name or snake_name(col))
            if key in seen:
                raise ValueError(f"attributes.{col}: column name {key} also used by {seen[key]!r}")
            seen[key] = col
        for col, c in self.counters.items():
            key = "counter_" + (c.name or snake_name(col))
            if key in seen:
                raise ValueError(f"counters.{col}: column name {key} also used by {seen[key]!r}")
            seen[key] = col
        for stage in self.stages:
            if STAGE_RANK[stage.stage] >= STAGE_RANK[self.label.stage]:
                raise ValueError(
                    f"stages: {stage.stage!r} is not before the label stage {self.label.stage!r}"
                )
        return self

    def attribute_name(self, column: str) -> str:
        spec = self.attributes[column]
        return "attr_" + (spec.name or snake_name(column))

    def counter_name(self, column: str) -> str:
        spec = self.counters[column]
        return "counter_" + (spec.name or snake_name(column))


def snake_name(column: str) -> str:
    """``"Total Time Spent on Website"`` -> ``total_time_spent_on_website``,
    ``"TotalVisits"`` -> ``total_visits``."""
    text = unicodedata.normalize("NFKD", column).encode("ascii", "ignore").decode()
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    text = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()
    if not text:
        raise ValueError(f"cannot derive a column name from {column!r}; give it a 'name'")
    return text


def _key_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "[key]") or "(top level)"


def resolve_mapping(name_or_path: str | Path) -> Path:
    """A mapping file path, or the name of a shipped mapping (``x-education``, ``olist``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = MAPPINGS_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    known = ", ".join(sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml")))
    raise MappingError(f"mapping {name_or_path!s} not found (a file, or one of: {known})")


def load_mapping(path: str | Path) -> ExportMapping:
    """Read and check a mapping file; a bad one raises MappingError naming the key."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506
    except OSError as exc:
        raise MappingError(f"cannot read mapping {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise MappingError(f"mapping {path} is not UTF-8 text: {exc}") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"mapping {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise MappingError(f"mapping {path}: expected a YAML mapping of keys at the top level")
    try:
        return ExportMapping.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  {_key_path(err['loc'])}: {msg}")
        raise MappingError(f"mapping {path} is invalid:\n" + "\n".join(lines)) from None


# --------------------------------------------------------------------------- outputs


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
        if not str(col).startswith("attr_") or kind not in KINDS:
            problems.append(f"attributes.{col}: expected attr_* -> one of {', '.join(KINDS)}")
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


# --------------------------------------------------------------------------- reading


@dataclass
class _Frame:
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
        return self.df[_ROW + self.origin.get(column, next(iter(self.files)))]

    def problem(self, column: str, mask: np.ndarray | pd.Series, reason: str) -> None:
        """Record ``reason`` for the rows of ``column`` where ``mask`` is true."""
        mask = np.asarray(mask, dtype=bool)
        idx = np.flatnonzero(mask)
        if not len(idx):
            return
        shown = idx[:_MAX_ROWS_SHOWN]
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


def _assign_files(
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
            reason = f"column not found (used by {at}.values.{col})" + _hint(col, df.columns)
            problems.append(ImportProblem(path.name, col, reason))
            continue
        mapped = df[col].map(lambda v, m=value_map: m.get(v, v) if isinstance(v, str) else v)
        df[col] = mapped.astype(object).where(mapped.notna(), None)
    if problems:
        raise ImportDataError(problems)
    df.insert(0, _ROW + spec.name, np.arange(1, len(df) + 1))
    return df


def _read_all(mapping: ExportMapping, paths: dict[str, Path]) -> _Frame:
    base_spec = mapping.sources[0]
    df = _read_source(base_spec, paths[base_spec.name], "sources.0")
    frame = _Frame(
        df=df,
        origin={c: base_spec.name for c in df.columns},
        files={s.name: paths[s.name].name for s in mapping.sources},
        csv={s.name: s.csv for s in mapping.sources},
    )
    for i, spec in enumerate(mapping.sources[1:], start=1):
        assert spec.join is not None
        right = _read_source(spec, paths[spec.name], f"sources.{i}")
        key, right_key = spec.join.left_key, spec.join.right_key
        fname = paths[spec.name].name
        problems = []
        for k, cols, name in ((key, frame.df.columns, None), (right_key, right.columns, fname)):
            if k not in cols:
                problems.append(
                    ImportProblem(
                        name or frame.file_of(k),
                        k,
                        f"join column not found (sources.{i}.join)" + _hint(k, cols),
                    )
                )
        if problems:
            raise ImportDataError(problems)
        right = right.rename(
            columns={
                c: spec.prefix + c
                for c in right.columns
                if c != right_key and not c.startswith(_ROW)
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
                        f"also a column of {frame.file_of(c)}; set 'prefix' on source "
                        f"{spec.name!r}",
                    )
                    for c in clash
                ]
            )
        dup = right[key].duplicated(keep=False) & right[key].notna()
        if dup.any():
            sub = _Frame(right, {c: spec.name for c in right.columns}, {spec.name: fname}, {})
            sub.problem(key, dup, "duplicate join key (each lead may match one row)")
            raise ImportDataError(sub.problems)
        unmatched = int((~right[key].isin(frame.df[key])).sum())
        if unmatched:
            frame.warnings.append(
                f"{fname}: {unmatched} row(s) whose {right_key!r} matches no row of "
                f"{frame.files[base_spec.name]} were ignored"
            )
        if not spec.after_outcome:  # there, no row simply means no outcome (not won)
            _report_unmatched(frame, spec, right[key], fname)
        frame.df = frame.df.merge(right, on=key, how=spec.join.how, sort=False)
        frame.origin.update({c: spec.name for c in right.columns if c != key})
    return frame


def _report_unmatched(frame: _Frame, spec: SourceSpec, right_keys: pd.Series, fname: str) -> None:
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
        f"{'(empty)' if pd.isna(v) else repr(_short(str(v), 40))} ({c:,})"
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


def _hint(column: str, available: Iterable[str]) -> str:
    names = [c for c in available if not str(c).startswith(_ROW)]
    close = difflib.get_close_matches(column, names, n=2, cutoff=0.6)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return ""


# --------------------------------------------------------------------------- typing


def _apply_rules(
    frame: _Frame, column: str, rules: _ValueRules, global_missing: Iterable[str]
) -> pd.Series:
    """The column's values with placeholders turned missing and the value map applied."""
    s = frame.df[column]
    placeholders = set(global_missing) | set(rules.missing_values)
    if placeholders:
        s = s.where(~s.isin(placeholders), None)
    if rules.values:
        if rules.strict:
            bad = (~s.isin(list(rules.values)) & s.notna()).to_numpy()
            allowed = ", ".join(repr(k) for k in rules.values)
            frame.problem(column, bad, f"value not in the strict value map ({allowed})")
            s = s.where(~bad, None)  # reported here; missing from now on, not reported again
        mapped = s.map(lambda v: rules.values.get(v, v) if isinstance(v, str) else v)
        s = mapped.astype(object).where(s.notna(), None)
    return s


def _as_text(s: pd.Series) -> pd.Series:
    """Text values (after a value map they may be numbers), None where missing."""
    return pd.Series(
        [None if pd.isna(v) else str(v) for v in s.astype(object)], index=s.index, dtype=object
    )


def _as_numbers(frame: _Frame, column: str, s: pd.Series, what: str) -> np.ndarray:
    opts = frame.csv.get(frame.origin.get(column, ""), CsvOptions())
    text = s.astype(object).where(s.notna(), None)

    def norm(v: Any) -> Any:
        if v is None or isinstance(v, (int, float)) and not isinstance(v, bool):
            return v
        t = str(v)
        if opts.thousands:
            t = t.replace(opts.thousands, "")
        if opts.decimal != ".":
            t = t.replace(opts.decimal, ".")
        return t

    num = pd.to_numeric(text.map(norm), errors="coerce").to_numpy(dtype="float64", copy=True)
    bad = np.isnan(num) & text.notna().to_numpy()
    frame.problem(column, bad, f"not a number ({what})")
    frame.problem(column, np.isinf(num), f"not a finite number ({what})")
    num[np.isinf(num)] = np.nan
    return num


def _as_booleans(frame: _Frame, column: str, s: pd.Series, what: str) -> pd.Series:
    def parse(v: Any) -> Any:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        t = str(v).strip().lower()
        return True if t in _TRUE else False if t in _FALSE else None

    parsed = s.map(parse)
    bad = (parsed.isna() & s.notna()).to_numpy()
    frame.problem(column, bad, f"not a yes/no value ({what}); map it with 'values'")
    return parsed.astype("boolean")


def _as_times(
    frame: _Frame, column: str, s: pd.Series, fmt: str | None, tz: str | None, what: str
) -> pd.Series:
    text = s.astype(object).where(s.notna(), None)
    parsed = pd.to_datetime(text, format=fmt or "ISO8601", errors="coerce")
    bad = (parsed.isna() & text.notna()).to_numpy()
    expected = f"date format {fmt!r}" if fmt else "an ISO 8601 date (or set 'format')"
    frame.problem(column, bad, f"not a date matching {expected} ({what})")
    if tz is not None:
        parsed = (
            parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
            .dt.tz_convert("UTC")
            .dt.tz_localize(None)
        )
    elif isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.astype("datetime64[ns]")


def _infer_kind(s: pd.Series) -> str:
    """Kind of a column mapped without a declaration (leaky columns under include_leaky)."""
    values = s.dropna().astype(str).str.strip()
    if values.empty:
        return "categorical"
    if pd.to_numeric(values, errors="coerce").notna().all():
        return "numeric"
    if values.str.lower().isin(_TRUE | _FALSE).all():
        return "boolean"
    return "categorical"


# --------------------------------------------------------------------------- mapping


@dataclass(frozen=True)
class _Plan:
    """Resolved column roles: which export columns become which output columns."""

    attributes: dict[str, tuple[str, AttributeSpec]]  # attr_* -> (column, spec)
    counters: dict[str, tuple[str, CounterSpec]]  # counter_* -> (column, spec)
    leaky_excluded: tuple[str, ...]
    leaky_included: tuple[str, ...]  # attr_* names
    known_after_outcome: tuple[str, ...] = ()


def _resolve_columns(patterns: Iterable[str], key: str, frame: _Frame) -> list[str]:
    """The export columns named by ``patterns`` (names or globs); one naming none is a
    problem (a typo would otherwise let the column in unnoticed)."""
    columns = [c for c in frame.df.columns if not c.startswith(_ROW)]
    found: list[str] = []
    for pattern in patterns:
        if pattern in columns:
            hits = [pattern]
        else:
            hits = [c for c in columns if fnmatch.fnmatchcase(c, pattern)]
        if not hits:
            frame.column_problem(
                pattern, f"declared under {key} but no such column" + _hint(pattern, columns)
            )
        found += [h for h in hits if h not in found]
    return found


def _resolve_leaky(mapping: ExportMapping, frame: _Frame, known_after: list[str]) -> list[str]:
    columns = [c for c in frame.df.columns if not c.startswith(_ROW)]
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


def _plan(mapping: ExportMapping, frame: _Frame, include_leaky: bool) -> _Plan:
    columns = [c for c in frame.df.columns if not c.startswith(_ROW)]
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
            frame.column_problem(col, f"column not found (used by {key})" + _hint(col, columns))

    known_after = _resolve_columns(mapping.known_after_outcome, "known_after_outcome", frame)
    leaky = _resolve_leaky(mapping, frame, known_after)
    label_cols = {mapping.label.column, mapping.label.at.column} - {None}
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
            kind = _infer_kind(frame.df[col].where(~frame.df[col].isin(mapping.missing_values)))
            attributes[name] = (col, AttributeSpec(kind=kind))
            leaky_included.append(name)
        else:
            excluded.append(col)
    return _Plan(attributes, counters, tuple(excluded), tuple(leaky_included), tuple(known_after))


def _created_at(mapping: ExportMapping, frame: _Frame) -> pd.Series:
    spec = mapping.fields["created_at"]
    if spec.row_order is not None:
        if spec.row_order.month is None:
            return _spread_over_rows(mapping, frame, spec.row_order)
        return _spread_over_months(mapping, frame, spec.row_order)
    if spec.from_order is None:
        assert spec.column is not None
        s = _apply_rules(frame, spec.column, spec, mapping.missing_values)
        times = _as_times(frame, spec.column, s, spec.format, spec.timezone, "fields.created_at")
        missing = s.isna().to_numpy()
        frame.problem(spec.column, missing, "missing creation date (fields.created_at)")
        return times
    col = spec.from_order
    s = _apply_rules(frame, col, spec, mapping.missing_values)
    order = _as_numbers(frame, col, s, "fields.created_at.from_order")
    frame.problem(
        col, np.isnan(order) & s.isna().to_numpy(), "missing value in the ordering column"
    )
    # Rank, not value: only the order is real, the spacing is synthetic (one ``step`` apart).
    rank = pd.Series(order).rank(method="dense").to_numpy() - 1
    rank = np.nan_to_num(rank, nan=0.0)
    start = pd.Timestamp(spec.start)
    step = _timedelta(spec.step or "1h")
    if len(rank) and float(step.value) * float(rank.max()) >= float((_LATEST - start).value):
        frame.column_problem(
            col,
            f"{int(rank.max()) + 1:,} values one step ({spec.step}) apart from {spec.start} "
            "run past the year 2200 (fields.created_at.step): choose a shorter step",
        )
        return pd.Series(pd.NaT, index=frame.df.index, dtype="datetime64[ns]")
    return pd.Series(start + pd.to_timedelta(rank * step.value, unit="ns"), index=frame.df.index)


def _spread_over_rows(mapping: ExportMapping, frame: _Frame, order: RowOrder) -> pd.Series:
    """``row_order: {start, end}``: the first row of the file at start, the last at end, the
    others evenly spaced in between in file order."""
    rows = frame.df[_ROW + mapping.sources[0].name].to_numpy(dtype="float64")
    start, end = pd.Timestamp(order.start), pd.Timestamp(order.end)
    span = rows.max() - rows.min() if len(rows) else 0.0
    share = (rows - rows.min()) / span if span else np.zeros(len(rows))
    offset = pd.to_timedelta(share * (end - start).value, unit="ns")
    return pd.Series(start + offset, index=frame.df.index).astype("datetime64[ns]")


def _spread_over_months(mapping: ExportMapping, frame: _Frame, order: RowOrder) -> pd.Series:
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
        numbers = _as_numbers(frame, col, raw, f"{what}.year_column")
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


def _canonical(mapping: ExportMapping, frame: _Frame) -> dict[str, pd.Series]:
    out: dict[str, pd.Series] = {}
    for name, spec in mapping.fields.items():
        if name == "created_at" or spec.column is None:
            continue
        s = _apply_rules(frame, spec.column, spec, mapping.missing_values)
        what = f"fields.{name}"
        if name in _NUMERIC_FIELDS:
            num = _as_numbers(frame, spec.column, s, what)
            frame.problem(spec.column, num < 0, f"must not be negative ({what})")
            out[name] = pd.Series(num, index=s.index)
        elif name in _BOOLEAN_FIELDS:
            out[name] = _as_booleans(frame, spec.column, s, what)
        elif name == "email_domain_kind" and spec.from_email:
            out[name] = s.map(lambda v: email_domain_kind(v) if isinstance(v, str) else None)
        else:
            out[name] = _as_text(s)
    if "lead_id" in out:
        ids = out["lead_id"]
        col = mapping.fields["lead_id"].column or ""
        frame.problem(col, ids.isna().to_numpy(), "missing lead id (fields.lead_id)")
        dup = (ids.duplicated(keep=False) & ids.notna()).to_numpy()
        frame.problem(col, dup, "duplicate lead id (fields.lead_id)")
    return out


def _custom_columns(mapping: ExportMapping, frame: _Frame, plan: _Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (col, spec) in plan.attributes.items():
        if col not in frame.df.columns:
            continue
        s = _apply_rules(frame, col, spec, mapping.missing_values)
        what = f"attributes.{col}"
        if spec.kind == "numeric":
            out[name] = _as_numbers(frame, col, s, what)
        elif spec.kind == "boolean":
            out[name] = _as_booleans(frame, col, s, what).array
        else:
            out[name] = pd.array(_as_text(s).to_numpy(), dtype="str")
    for name, (col, cspec) in plan.counters.items():
        if col not in frame.df.columns:
            continue
        s = _apply_rules(frame, col, cspec, mapping.missing_values)
        what = f"counters.{col}"
        num = _as_numbers(frame, col, s, what)
        frame.problem(col, num < 0, f"a counter must not be negative ({what})")
        out[name] = num
    return out


def _label(mapping: ExportMapping, frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
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
            for value, count in s[other].value_counts().head(_MAX_ROWS_SHOWN).items():
                first = rows[np.flatnonzero(other & (s == value).to_numpy())[:3]]
                where = ", ".join(f"row {r}" for r in first)
                shown.append(f"{_short(str(value), 30)!r} ({count:,}: {where})")
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
    mapping: ExportMapping, frame: _Frame, at: StageTime, created: pd.Series, what: str
) -> pd.Series:
    offset = _timedelta(at.offset)
    if at.column is None:
        return created + offset
    s = frame.df[at.column]
    if mapping.missing_values:
        s = s.where(~s.isin(mapping.missing_values), None)
    return _as_times(frame, at.column, s, at.format, at.timezone, what) + offset


def _stage_history(
    mapping: ExportMapping,
    frame: _Frame,
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


def _accounts(
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


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": pd.Series([], dtype="str"),
            "at": pd.Series([], dtype="datetime64[ns]"),
            "type": pd.Categorical([], categories=list(EVENT_TYPES)),
            "topic": pd.Series([], dtype="str"),
            "content_id": pd.Series([], dtype="str"),
        }
    )


# --------------------------------------------------------------------------- entry point


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
    paths, problems = _assign_files(mapping, files)
    if problems:
        raise ImportDataError(problems)
    frame = _read_all(mapping, paths)

    plan = _plan(mapping, frame, leaky_on)
    if frame.problems:  # missing columns: nothing else can be checked meaningfully
        raise ImportDataError(frame.problems)
    first_file = frame.files[mapping.sources[0].name]
    if not len(frame.df):
        raise ImportDataError(
            [ImportProblem(first_file, "-", "0 leads: the file has a header but no data rows")]
        )
    positive, keep = _label(mapping, frame)
    # Time from row order is spread over every row of the file, left-out rows included.
    by_rows = mapping.fields["created_at"].row_order is not None
    created = _created_at(mapping, frame) if by_rows else None
    if frame.problems:
        raise ImportDataError(frame.problems)
    if not keep.all():
        frame.keep_rows(keep)
        positive = positive[keep]
        created = None if created is None else created[keep].reset_index(drop=True)
    if not len(frame.df):
        raise ImportDataError(
            [
                ImportProblem(
                    first_file,
                    mapping.label.column,
                    "0 leads left: every row's label value is under label.drop or in none "
                    "of the label's lists",
                )
            ]
        )
    if created is None:
        created = _created_at(mapping, frame)
    canonical = _canonical(mapping, frame)
    custom = _custom_columns(mapping, frame, plan)
    lead_ids = canonical["lead_id"]
    stage_history = _stage_history(mapping, frame, lead_ids, created, positive)
    if frame.problems:
        raise ImportDataError(frame.problems)

    accounts, account_ids = _accounts(mapping, canonical, lead_ids)
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
    leads = leads.reset_index(drop=True)
    data = validate(accounts, leads, _empty_events(), stage_history)

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
    custom_fields = CustomFields(
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
    try:
        _write_atomically(data, custom_fields, Path(out_dir))
    except OSError as exc:
        raise ImportOutputError(f"--out {out_dir}: cannot write there: {exc}") from None
    stage_counts = (
        data.stage_history["stage"].astype(str).value_counts().reindex(list(STAGES)).dropna()
    )
    return ImportSummary(
        mapping=mapping.name,
        out_dir=Path(out_dir),
        files=tuple(str(paths[s.name]) for s in mapping.sources),
        leads=len(data.leads),
        accounts=len(data.accounts),
        events=len(data.events),
        stage_counts={s: int(n) for s, n in stage_counts.items()},
        label_stage=mapping.label.stage,
        positives=int(positive.sum()),
        custom_fields=custom_fields,
        warnings=tuple(frame.warnings),
        left_out=int((~keep).sum()),
        notes=tuple(frame.notes),
    )


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


def _write_atomically(data: Any, custom_fields: CustomFields, out_dir: Path) -> None:
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


__all__ = [
    "AttributeSpec",
    "CounterSpec",
    "CsvOptions",
    "CustomFields",
    "ExportMapping",
    "FieldSpec",
    "ImportDataError",
    "ImportOutputError",
    "ImportProblem",
    "ImportSummary",
    "LabelSpec",
    "MappingError",
    "RowOrder",
    "SourceSpec",
    "StageSpec",
    "StageTime",
    "import_export",
    "load_custom_fields",
    "load_mapping",
    "resolve_mapping",
    "snake_name",
]
