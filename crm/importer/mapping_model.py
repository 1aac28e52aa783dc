"""The mapping format as frozen pydantic models, checked as a mapping is loaded: one model
per key of the YAML file (``ExportMapping`` is the whole file). Their docstrings and
field descriptions become the JSON Schema (``crm.mapping_schema``)."""

from __future__ import annotations

import codecs
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crm.importer.mapping_values import (
    MAX_OFFSET,
    Texts,
    cell_text,
    check_date_format,
    check_timezone,
    parse_date,
    parse_duration,
    snake_name,
)
from crm.vocabulary import STAGE_RANK

#: The kinds of custom attribute, spelt out for the type checker and the JSON Schema: the
#: words of crm.vocabulary.CUSTOM_KINDS (tests/crm/test_importer_package.py keeps them equal).
Kind = Literal["numeric", "categorical", "boolean"]

#: The canonical fields a mapping can fill (the leads and accounts columns of the contract).
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


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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
                cell_text(col): (
                    {cell_text(k): None if x is None else cell_text(x) for k, x in m.items()}
                    if isinstance(m, dict)
                    else m
                )
                for col, m in v.items()
            }
        return v


class ValueRules(_Frozen):
    """Value handling shared by fields, attributes and counters."""

    missing_values: Texts = Field(default_factory=list)
    values: dict[str, Any] | None = None
    strict: bool = False  # a value absent from ``values`` is an error, not passed through

    @field_validator("values", mode="before")
    @classmethod
    def _keys_as_text(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {cell_text(k): val for k, val in v.items()}
        return v

    @model_validator(mode="after")
    def _strict_needs_values(self) -> ValueRules:
        if self.strict and not self.values:
            raise ValueError("strict: true needs a 'values' map")
        return self


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
            if parse_date(self.end, "end") <= parse_date(self.start, "start"):
                raise ValueError(f"'end' ({self.end}) must be after 'start' ({self.start})")
        else:
            if self.start is not None or self.end is not None:
                raise ValueError("give 'start'/'end' or 'month', not both")
            if (self.year is None) == (self.year_column is None):
                raise ValueError(
                    "'month' needs one of 'year' (the first row's year) or 'year_column'"
                )
        return self


class FieldSpec(ValueRules):
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

    _tz = field_validator("timezone")(check_timezone)
    _fmt = field_validator("format")(check_date_format)

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
            parse_date(self.start, "start")
            if parse_duration(self.step) <= pd.Timedelta(0):
                raise ValueError("'step' must be positive")
            if parse_duration(self.step) > MAX_OFFSET:
                raise ValueError(f"'step' must be at most 3650d (10 years): {self.step!r}")
        elif self.start is not None or self.step is not None:
            raise ValueError("'start' and 'step' belong to 'from_order'")
        return self


class AttributeSpec(ValueRules):
    kind: Kind
    name: str | None = None  # snake name after ``attr_``; default: from the column name

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"kind": v} if isinstance(v, str) else v


class CounterSpec(ValueRules):
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

    _tz = field_validator("timezone")(check_timezone)
    _fmt = field_validator("format")(check_date_format)

    @field_validator("offset")
    @classmethod
    def _offset(cls, v: str) -> str:
        td = parse_duration(v)
        if td < pd.Timedelta(0):
            raise ValueError("'offset' must not be negative")
        if td > MAX_OFFSET:
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
