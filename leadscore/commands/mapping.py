"""``leadscore mapping``: draft a mapping YAML from an export (``init``) and print the JSON
Schema of the mapping format (``schema``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from leadscore.shared import err, fail, user_errors


@user_errors
def mapping_init(
    files: Annotated[
        list[Path],
        typer.Argument(help="Export CSV file(s); the first holds one row per lead"),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Write the draft to this file (default: print it)"),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Mapping name (default: from the file)")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --out file")] = False,
) -> None:
    """Draft a mapping YAML from the export's columns, every choice explained in a comment.

    Edit the draft (the lines marked EDIT above all), then run `leadscore import`."""
    from crm.importer import ImportOutputError
    from crm.mapping_draft import DraftError, draft_mapping

    if out is not None and out.exists() and not force:
        raise ImportOutputError(f"--out {out}: exists; pass --force to replace it")
    try:
        text = draft_mapping(files, name=name)
    except DraftError as exc:
        raise fail(str(exc)) from None
    if out is None:
        print(text, end="")
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ImportOutputError(f"--out {out}: cannot write there: {exc}") from None
    err().print(f"wrote {out}; edit it, then: leadscore import --mapping {out} --out DIR FILE...")


@user_errors
def mapping_schema() -> None:
    """Print the JSON Schema of the mapping format (for editors; see docs/MAPPING.md)."""
    from crm.mapping_schema import mapping_json_schema

    print(json.dumps(mapping_json_schema(), indent=2))
