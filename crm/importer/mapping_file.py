"""Finding and reading a mapping file: a path or the name of a shipped mapping
(``crm/mappings/*.yaml``), parsed by a strict YAML loader and checked against
``ExportMapping``; a bad file raises ``MappingError`` naming the key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from crm.importer.errors import MappingError
from crm.importer.mapping_model import ExportMapping

MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings"


class MappingLoader(yaml.SafeLoader):
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


MappingLoader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
MappingLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


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
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=MappingLoader)  # noqa: S506
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
