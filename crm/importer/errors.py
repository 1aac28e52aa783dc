"""What goes wrong in an import, told so a person can fix it: a bad mapping file
(``MappingError``), an export that does not fit its mapping (``ImportDataError``, every
problem with its file, column, rows and values), an output folder that cannot be one."""

from __future__ import annotations

from dataclasses import dataclass

# Rows quoted per problem before the rest is counted.
MAX_ROWS_SHOWN = 5


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
                f"row {r} ({abbreviate(v)!r})" if self.values else f"row {r}"
                for r, v in zip(self.rows, values, strict=True)
            )
            extra = f" and {self.more} more rows" if self.more else ""
            return f"{where}: {self.reason}: {shown}{extra}"
        return f"{where}: {self.reason}"


def abbreviate(value: str, limit: int = 60) -> str:
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
