"""Draft a mapping from the export itself (``leadscore mapping init FILE...``).

The draft is a starting point for a person to edit, not a decision: every choice (the
lead id, the creation date, the label and its values, columns that look filled in after
the outcome, columns left out) is written with a YAML comment saying why, and the choices
that need a human say ``EDIT``. The first file is the main table (one row per lead);
further files are joined onto it on a column both share.

Heuristics, on the cells read as text (a sample of at most ``SAMPLE_ROWS`` rows):
unique and never empty -> id; >= 95 % parse as dates -> date; every value a number ->
numeric; only yes/no/true/false/0/1 -> boolean; many distinct values -> free text, left
out; names such as ``Tags``, ``Lead Quality``, ``... Score`` or ``Last Activity`` -> filled
in by sales, declared ``leaky`` so the leakage check can test them; names such as
``won_date``, ``close_reason`` -> ``known_after_outcome``."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from crm.importer.mapping_values import MONTHS, snake_name
from crm.vocabulary import NO_WORDS, YES_WORDS

SAMPLE_ROWS = 200_000
_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%d.%m.%Y",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d-%m-%Y",
    "%Y/%m/%d",
    "%d.%m.%Y %H:%M",
    "%m/%d/%Y %H:%M",
)
_PLACEHOLDERS = ("Select", "N/A", "n/a", "NA", "null", "NULL", "None", "-", "?", "(blank)")
_BOOL_TEXT = YES_WORDS | NO_WORDS  # a column of only these reads as yes/no
_POSITIVE = {"1", "yes", "true", "won", "closed won", "converted", "y", "t", "success", "win"}
_NEGATIVE = {"0", "no", "false", "lost", "closed lost", "n", "f", "failure", "lose"}

_ID = re.compile(r"(^|[\s_])(id|key|uuid)$|_id$|\bid\b", re.I)
_ORDER = re.compile(r"number|\bno\b|num|seq|index", re.I)
_CREATED = re.compile(r"creat|first.?contact|engage|sign.?up|registered|submitted|date", re.I)
_LABEL = re.compile(
    r"^(converted|conversion|won|is_won|label|target|outcome|result|deal.?stage|status|y"
    r"|closed|subscribed|churn(ed)?)$",
    re.I,
)
_AFTER = re.compile(
    r"won|lost|clos(e|ed|ing)|reason|deal.?value|amount|contract|invoice|seller", re.I
)
_SALES_FILLED = re.compile(
    r"\btags?\b|quality|profile|score|index|last.?(notable.?)?activity|rating|grade|stage"
    r"|status|owner|agent",
    re.I,
)
_COUNTER = re.compile(r"visit|view|click|open|session|time.?spent|page|download|call", re.I)
# Canonical fields by column name, the better names first.
_FIELD_NAMES = {
    "source": (re.compile(r"source", re.I), re.compile(r"origin|channel", re.I)),
    "country": (re.compile(r"^country$|country.?code", re.I),),
    "job_title": (re.compile(r"job.?title|^title$", re.I), re.compile(r"position|role", re.I)),
    "industry": (re.compile(r"industry|sector", re.I), re.compile(r"segment", re.I)),
    "do_not_email": (re.compile(r"do.?not.?email|opt.?out|unsubscribed", re.I),),
}


class DraftError(ValueError):
    """An export that cannot be drafted from: missing, unreadable, or without rows."""


@dataclass
class _Column:
    name: str
    values: pd.Series  # non-missing cells, as text
    rows: int
    kind: str = "categorical"  # id, date, numeric, boolean, categorical, text, empty, constant
    date_format: str | None = None
    why: str = ""


@dataclass
class _Source:
    name: str
    path: Path
    separator: str
    encoding: str
    trailing_empty: bool
    df: pd.DataFrame
    columns: dict[str, _Column] = field(default_factory=dict)


def _q(value: object) -> str:
    """A YAML scalar that reads back as this exact text."""
    text = str(value)
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_ .()/-]*", text) and not re.fullmatch(
        r"(?i)(true|false|yes|no|on|off|null|y|n|~)", text
    )
    return text if plain and text == text.strip() else json.dumps(text, ensure_ascii=False)


def _sniff(path: Path) -> tuple[str, str]:
    raw = path.read_bytes()[:65_536]
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            sample = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # cp1252 leaves five bytes undefined: latin-1 reads any byte
        encoding, sample = "latin-1", raw.decode("latin-1")
    try:
        separator = csv.Sniffer().sniff(sample.split("\n", 1)[0], delimiters=",;\t|").delimiter
    except csv.Error:
        separator = ","
    return separator, encoding


def _read(path: Path, name: str) -> _Source:
    if not path.is_file():
        raise DraftError(f"{path}: not a file")
    try:
        separator, encoding = _sniff(path)
        df = pd.read_csv(
            path,
            sep=separator,
            encoding=encoding,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            nrows=SAMPLE_ROWS,
        )
    except (OSError, UnicodeError, ValueError) as exc:  # ParserError, EmptyDataError: ValueError
        raise DraftError(f"{path.name}: cannot read as CSV: {exc}") from None
    if df.empty:
        raise DraftError(f"{path.name}: 0 rows: nothing to draft a mapping from")
    trailing = bool(
        len(df.columns) > 1
        and str(df.columns[-1]).startswith("Unnamed:")
        and df[df.columns[-1]].isna().all()
    )
    if trailing:
        df = df.drop(columns=[df.columns[-1]])
    for c in df.columns:
        stripped = df[c].str.strip()
        df[c] = stripped.where(stripped != "", None)
    return _Source(name, path, separator, encoding, trailing, df)


def _placeholders(df: pd.DataFrame) -> list[str]:
    """Placeholder texts that stand for 'not answered' in some column (>= 1 % of its rows)."""
    found = []
    for token in _PLACEHOLDERS:
        share = max(((df[c] == token).mean() for c in df.columns), default=0.0)
        if share >= 0.01:
            found.append(token)
    return found


def _date_format(values: pd.Series) -> str | None:
    sample = values.head(2000)
    if sample.empty or pd.to_numeric(sample, errors="coerce").notna().mean() > 0.5:
        return None
    for fmt in _DATE_FORMATS:
        if pd.to_datetime(sample, format=fmt, errors="coerce").notna().mean() >= 0.95:
            return fmt
    return None


def _profile(src: _Source, missing: list[str]) -> None:
    n = len(src.df)
    for name in src.df.columns:
        s = src.df[name]
        values = s[s.notna() & ~s.isin(missing)]
        col = _Column(name, values, n)
        distinct = values.nunique()
        lower = set(values.str.lower().unique()) if distinct <= 10 else set()
        if values.empty:
            col.kind, col.why = "empty", "always empty"
        elif distinct == 1:
            col.kind, col.why = "constant", f"holds {values.iloc[0]!r} in every row"
        elif distinct == n and len(values) == n and (_ID.search(name) or _ORDER.search(name)):
            col.kind, col.why = "id", "unique in every row"
        elif (fmt := _date_format(values)) is not None:
            col.kind, col.date_format, col.why = "date", fmt, f"dates like {values.iloc[0]!r}"
        elif lower and lower <= _BOOL_TEXT:
            col.kind, col.why = "boolean", "only " + "/".join(sorted(lower))
        elif pd.to_numeric(values, errors="coerce").notna().all():
            col.kind, col.why = "numeric", "every value is a number"
        elif distinct > 100 and distinct > 0.05 * n:
            col.kind, col.why = "text", f"{distinct:,} distinct values in {n:,} rows"
        else:
            col.why = f"{distinct:,} distinct values"
        src.columns[name] = col


def _pick_id(src: _Source) -> _Column | None:
    ids = [c for c in src.columns.values() if c.kind == "id"]
    ids.sort(key=lambda c: (not _ID.search(c.name), c.name))
    if not ids:  # no id-like name: any column unique in every row
        ids = [
            c
            for c in src.columns.values()
            if c.kind in ("categorical", "text", "numeric")
            and len(c.values) == c.rows
            and c.values.nunique() == c.rows
        ]
        for c in ids:
            c.why = "unique in every row (EDIT if it is not an id)"
    return ids[0] if ids else None


def _pick_label(src: _Source) -> _Column | None:
    named = [
        c
        for c in src.columns.values()
        if _LABEL.search(c.name.strip()) and 2 <= c.values.nunique() <= 20
    ]
    return named[0] if named else None


def _label_lists(col: _Column) -> tuple[list[str], list[str], list[str]]:
    values = list(col.values.value_counts().index)
    positive = [v for v in values if v.lower() in _POSITIVE]
    negative = [v for v in values if v.lower() in _NEGATIVE]
    drop = [v for v in values if v not in positive and v not in negative]
    return positive, negative, drop


def _join_key(main: _Source, other: _Source) -> str | None:
    shared = [c for c in other.df.columns if c in main.df.columns]
    shared.sort(key=lambda c: (not _ID.search(c), other.df[c].duplicated().any()))
    return shared[0] if shared else None


@dataclass
class _Draft:
    """The mapping being written: its lines, and the columns some key already names (the
    rest are sorted into leaky, known after the outcome, attributes, counters, left out)."""

    lines: list[str] = field(default_factory=list)
    used: set[str] = field(default_factory=set)

    def say(self, line: str) -> None:
        self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines).rstrip() + "\n"


def draft_mapping(files: list[Path], name: str | None = None) -> str:
    """A commented mapping YAML for the export in ``files`` (the first is the main table)."""
    sources = [_read(Path(f), f"source{i}" if i else "leads") for i, f in enumerate(files)]
    main = sources[0]
    missing = sorted({m for s in sources for m in _placeholders(s.df)}, key=_PLACEHOLDERS.index)
    for src in sources:
        _profile(src, missing)
    columns: dict[str, _Column] = {}
    for src in sources:
        for c, col in src.columns.items():
            columns.setdefault(c, col)
    label, label_at, outcome_source = _pick_outcome(sources, columns)

    draft = _Draft()
    title = name or snake_name(main.path.stem).replace("_", "-")
    _say_header(draft, sources, title)
    _say_sources(draft, sources, outcome_source)
    if missing:
        draft.say(f"missing_values: [{', '.join(_q(m) for m in missing)}]")
        draft.say("# these texts fill >= 1 % of some column: read as 'not answered'")
        draft.say("")
    draft.say("fields:")
    lead_id = _pick_id(main)
    _say_lead_id(draft, main, lead_id)
    _say_created_at(draft, main, lead_id, label_at)
    _say_named_fields(draft, main, label)
    draft.say("")
    _say_label(draft, main, columns, label, label_at)
    _say_other_columns(draft, columns)
    return draft.text()


def _pick_outcome(
    sources: list[_Source], columns: dict[str, _Column]
) -> tuple[_Column | None, _Column | None, _Source | None]:
    """The label column, the column dating the outcome, and the joined source the label
    comes from (if it does not come from the main table)."""
    label = _pick_label(sources[0])
    label_at = _pick_label_time(columns, label)
    if label is None:  # an outcome file joined on (Olist's closed deals): its date is the label
        label = label_at = next(
            (
                c
                for src in sources[1:]
                for c in src.columns.values()
                if c.kind == "date" and _AFTER.search(c.name)
            ),
            None,
        )
    outcome_source = next(
        (s for s in sources[1:] if label is not None and label.name in s.columns), None
    )
    return label, label_at, outcome_source


def _say_header(draft: _Draft, sources: list[_Source], title: str) -> None:
    main = sources[0]
    say = draft.say
    say(f"# Drafted by `leadscore mapping init` from {', '.join(s.path.name for s in sources)}")
    say(f"# ({len(main.df):,} rows read). Every choice below says why; check each one, and")
    say("# those marked EDIT above all. Reference: docs/MAPPING.md; check it with")
    say(f"#   leadscore import --mapping THIS_FILE --out data/{title} {main.path.name}")
    say("version: 1")
    say(f"name: {_q(title)}")
    say("")


def _say_sources(draft: _Draft, sources: list[_Source], outcome_source: _Source | None) -> None:
    """``sources``: each file with the CSV options sniffed; further files joined onto the
    first on a shared column, the one the label comes from marked ``after_outcome``."""
    say = draft.say
    say("sources:")
    for i, src in enumerate(sources):
        say(f"  - name: {src.name}")
        say(f"    file: {_q(src.path.name)}")
        csv_opts = []
        if src.separator != ",":
            csv_opts.append(f"separator: {_q(src.separator)}")
        if src.encoding != "utf-8-sig":
            csv_opts.append(f"encoding: {src.encoding}")
        if src.trailing_empty:
            csv_opts.append("trailing_empty_column: true")
        if csv_opts:
            say(f"    csv: {{{', '.join(csv_opts)}}}")
        if src.trailing_empty:
            say("    # every line ends in a separator: the unnamed, empty last column is dropped")
        if i:
            _say_join(draft, sources[0], src)
            if src is outcome_source:
                say("    after_outcome: true")
                say("    # the label comes from this file: its rows exist only for leads with")
                say("    # an outcome, so none of its columns may become a feature")
                draft.used.update(c for c in src.df.columns)
    say("")


def _say_join(draft: _Draft, main: _Source, src: _Source) -> None:
    key = _join_key(main, src)
    if key is None:
        first = next(iter(src.df.columns))
        lead_key = _pick_id(main)
        draft.say(
            f"    join: {{left_on: {_q(lead_key.name if lead_key else first)}, "
            f"right_on: {_q(first)}, how: left}}"
        )
        draft.say("    # EDIT: no column name is shared with the main table; name the keys")
    else:
        draft.say(f"    join: {{on: {_q(key)}, how: left}}")
        draft.say(f"    # {key!r} is the only shared column name (or the most id-like one)")
        draft.used.add(key)


def _say_lead_id(draft: _Draft, main: _Source, lead_id: _Column | None) -> None:
    if lead_id is None:
        first = next(iter(main.df.columns))
        draft.say(f"  lead_id: {_q(first)}  # EDIT: no column is unique in every row")
        draft.used.add(first)
    else:
        draft.say(f"  lead_id: {_q(lead_id.name)}  # {lead_id.why}")
        draft.used.add(lead_id.name)


def _say_created_at(
    draft: _Draft, main: _Source, lead_id: _Column | None, label_at: _Column | None
) -> None:
    """``created_at`` from the earliest-sounding date column; else from a unique number
    taken as the order leads came in; else from the rows' order (within the months a
    column names, or between two dates)."""
    say = draft.say
    dates = [c for c in main.columns.values() if c.kind == "date" and c is not label_at]
    dates.sort(key=lambda c: (not _CREATED.search(c.name), -len(c.values)))
    orders = [c for c in main.columns.values() if c.kind == "id" and c is not lead_id]
    orders += [c for c in main.columns.values() if c.kind == "numeric" and _ORDER.search(c.name)]
    if dates:
        d = dates[0]
        say(f"  created_at: {{column: {_q(d.name)}, format: {_q(d.date_format)}}}")
        say(f"  # {d.name!r}: {d.why}; the earliest-sounding date column")
        draft.used.add(d.name)
        return
    if orders and pd.to_numeric(orders[0].values, errors="coerce").notna().all():
        o = orders[0]
        say(f'  created_at: {{from_order: {_q(o.name)}, start: "2020-01-01", step: 1h}}')
        say(f"  # no date column: {o.name!r} is a unique number, taken as the order leads came")
        say("  # in; EDIT start (the first lead's date) and step (the time between two leads)")
        draft.used.add(o.name)
        return
    months = [
        c
        for c in main.columns.values()
        if 2 <= c.values.nunique() <= 12
        and set(c.values.str.strip().str.lower().unique()) <= set(MONTHS)
        and not c.values.str.fullmatch(r"\d+").all()
    ]
    if months:
        m = months[0]
        say(f"  created_at: {{row_order: {{month: {_q(m.name)}, year: 2020}}}}")
        say(f"  # no date column; {m.name!r} names months: rows taken as in time order.")
        say("  # EDIT year: the year of the first row")
        draft.used.add(m.name)
    else:
        say('  created_at: {row_order: {start: "2020-01-01", end: "2020-12-31"}}')
        say("  # no date column: rows taken as in time order, evenly spread between the")
        say("  # dates. EDIT start and end: the dates of the first and the last row")


def _say_named_fields(draft: _Draft, main: _Source, label: _Column | None) -> None:
    """Canonical fields recognised by their column names, and e-mail addresses read for
    their kind only."""
    for fld, patterns in _FIELD_NAMES.items():
        hit = next(
            (
                c
                for pattern in patterns
                for c in main.columns.values()
                if pattern.search(c.name)
                and c.name not in draft.used
                and c.kind in (("boolean",) if fld == "do_not_email" else ("categorical",))
                and not (label and c.name == label.name)
            ),
            None,
        )
        if hit is not None:
            draft.say(f"  {fld}: {_q(hit.name)}  # by its name; {hit.why}")
    email = next(
        (c for c in main.columns.values() if c.kind == "text" and _looks_like_email(c)), None
    )
    if email is not None:
        draft.say(f"  email_domain_kind: {{column: {_q(email.name)}, from_email: true}}")
        draft.say("  # e-mail addresses: only their kind (business, free, ...) is kept")
        draft.used.add(email.name)


def _say_label(
    draft: _Draft,
    main: _Source,
    columns: dict[str, _Column],
    label: _Column | None,
    label_at: _Column | None,
) -> None:
    say = draft.say
    say("label:")
    if label is None:
        candidates = [c.name for c in columns.values() if c.kind in ("boolean", "categorical")]
        guess = candidates[0] if candidates else next(iter(main.df.columns))
        say(f"  column: {_q(guess)}  # EDIT: the column that says whether a lead converted")
        say("  stage: customer")
        say("  at: {offset: 1d}")
        say("")
        return
    draft.used.add(label.name)
    positive, negative, drop = _label_lists(label)
    if label is label_at:
        say(f"  column: {_q(label.name)}  # an outcome date: a lead with one is positive")
        positive = negative = drop = []
    else:
        say(f"  column: {_q(label.name)}  # by its name; values: {label.why}")
    if positive:
        say(f"  positive: [{', '.join(_q(v) for v in positive)}]")
    if negative and positive:
        say(f"  negative: [{', '.join(_q(v) for v in negative)}]")
    if drop and positive:
        say(f"  drop: [{', '.join(_q(v) for v in drop)}]")
        say("  # EDIT: rows with these values are left out (no outcome yet?); move a value")
        say("  # to positive or negative if it is one")
    if not positive and label is not label_at:
        say("  # EDIT: no value reads as positive: list them under positive/negative/drop")
    say("  stage: customer  # EDIT if the label means an earlier stage (mql, sal, ...)")
    if label_at is not None:
        say(f"  at: {{column: {_q(label_at.name)}, format: {_q(label_at.date_format)}}}")
        say(f"  # {label_at.name!r} reads as the date of the outcome")
        draft.used.add(label_at.name)
    else:
        say("  at: {offset: 1d}  # no outcome date found: EDIT the delay after created_at")
    say("")


@dataclass
class _Rest:
    """The columns no key names yet, by what the draft does with them."""

    leaky: list[_Column] = field(default_factory=list)
    after: list[_Column] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    attributes: list[_Column] = field(default_factory=list)
    counters: list[_Column] = field(default_factory=list)


def _sort_rest(columns: dict[str, _Column], used: set[str]) -> _Rest:
    rest = _Rest()
    for c in columns.values():
        if c.name in used:
            continue
        if c.kind == "empty":
            rest.left_out.append(f"{c.name} ({c.why})")
        elif c.kind == "date" or _AFTER.search(c.name):
            rest.after.append(c)  # even when filled in one way only: its emptiness tells
        elif c.kind in ("constant", "id"):
            rest.left_out.append(f"{c.name} ({c.why})")
        elif _SALES_FILLED.search(c.name):
            rest.leaky.append(c)
        elif c.kind == "text":
            rest.left_out.append(f"{c.name} (free text: {c.why})")
        elif c.kind == "numeric" and _COUNTER.search(c.name):
            rest.counters.append(c)
        else:
            rest.attributes.append(c)
    return rest


def _say_other_columns(draft: _Draft, columns: dict[str, _Column]) -> None:
    """``leaky``, ``known_after_outcome``, the columns left out (as a comment),
    ``attributes`` and ``counters``, each with why."""
    say = draft.say
    rest = _sort_rest(columns, draft.used)
    if rest.leaky:
        say("# Names that suggest sales fill them in during or after contact: left out of the")
        say("# features; `leadscore import --include-leaky` maps them for the leakage check.")
        say("leaky:")
        for c in rest.leaky:
            say(f"  - {_q(c.name)}  # {c.why}")
        say("")
    if rest.after:
        say("# Dates and names that suggest the outcome (won, closed, reason, amount): known")
        say("# only after it, left out quietly. Move a column to attributes if it is known")
        say("# when the lead comes in.")
        say("known_after_outcome:")
        for c in rest.after:
            say(f"  - {_q(c.name)}  # {c.why}")
        say("")
    if rest.left_out:
        say("# Left out (no key needed, only mapped columns are imported):")
        for text in rest.left_out:
            say(f"#   {text}")
        say("")
    if rest.attributes:
        say("# Lead attributes (features), kind from the values seen:")
        say("attributes:")
        for c in rest.attributes:
            say(f"  {_q(c.name)}: {c.kind}  # {c.why}")
        say("")
    if rest.counters:
        say("# Numbers whose names suggest engagement counts (no event log in this export):")
        say("counters:")
        for c in rest.counters:
            say(f"  {_q(c.name)}: {{}}  # {c.why}")
        say("")


def _pick_label_time(columns: dict[str, _Column], label: _Column | None) -> _Column | None:
    if label is None:
        return None
    dates = [c for c in columns.values() if c.kind == "date" and _AFTER.search(c.name)]
    return dates[0] if dates else None


def _looks_like_email(col: _Column) -> bool:
    sample = col.values.head(200)
    return bool(len(sample)) and sample.str.contains(r"^[^@\s]+@[^@\s]+\.\w+$").mean() > 0.9
