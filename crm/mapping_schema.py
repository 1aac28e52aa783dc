"""The mapping format as a JSON Schema, generated from its pydantic model ``ExportMapping``.

Editors (VS Code's YAML extension, JetBrains) validate and complete a mapping file against
it: ``leadscore mapping schema > mapping.schema.json`` and put
``# yaml-language-server: $schema=mapping.schema.json`` at the top of the mapping. The
shorthands the loader accepts (``lead_id: Prospect ID`` for ``{column: Prospect ID}``,
``Segment: categorical`` for ``{kind: categorical}``, ``counters: [Visits]``) are added
here, so the schema accepts every mapping the loader accepts. docs/MAPPING.md documents
every key the schema names (a test keeps the two in step)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from crm.importer.mapping_model import ExportMapping
from crm.vocabulary import CUSTOM_KINDS

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def mapping_json_schema() -> dict[str, Any]:
    """The JSON Schema of a mapping file, shorthands included."""
    schema = copy.deepcopy(ExportMapping.model_json_schema())
    schema = {
        "$schema": SCHEMA_DIALECT,
        "title": "leadscore export mapping",
        **{k: v for k, v in schema.items() if k != "title"},
    }
    props = schema["properties"]
    props["fields"]["additionalProperties"] = {
        "anyOf": [
            {"type": "string", "description": "the source column (shorthand for {column: ...})"},
            _ref("FieldSpec"),
        ]
    }
    props["attributes"]["additionalProperties"] = {
        "anyOf": [
            {"enum": list(CUSTOM_KINDS), "description": "the kind (shorthand for {kind: ...})"},
            _ref("AttributeSpec"),
        ]
    }
    counters = props["counters"]
    counters["additionalProperties"] = {"anyOf": [{"type": "null"}, _ref("CounterSpec")]}
    props["counters"] = {
        "title": counters.pop("title", "Counters"),
        "anyOf": [
            counters,
            {
                "type": "array",
                "items": {"type": "string"},
                "description": "column names (shorthand for {COLUMN: null, ...})",
            },
        ],
    }
    return schema


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The object/array schemas a property may take, through $ref and anyOf."""
    if "$ref" in node:
        yield from _resolve(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    elif "anyOf" in node:
        for option in node["anyOf"]:
            yield from _resolve(option, defs)
    else:
        yield node


# What stands for the free keys of a dict-valued key in a documented path.
_FREE_KEY = {"fields": "<field>", "attributes": "<column>", "counters": "<column>"}


def schema_key_paths(schema: dict[str, Any] | None = None) -> list[str]:
    """Every key of the mapping format as a path: ``sources[].csv.encoding``,
    ``fields.<field>.row_order.start``, ``attributes.<column>.kind`` ..."""
    schema = schema or mapping_json_schema()
    defs = schema.get("$defs", {})
    paths: list[str] = []

    def walk(node: dict[str, Any], at: str) -> None:
        for option in _resolve(node, defs):
            if "properties" in option:
                for key, sub in option["properties"].items():
                    path = f"{at}.{key}" if at else key
                    if path not in paths:
                        paths.append(path)
                    walk(sub, path)
            elif isinstance(option.get("items"), dict):
                walk(option["items"], f"{at}[]")
            elif isinstance(option.get("additionalProperties"), dict):
                free = _FREE_KEY.get(at, "<name>")
                walk(option["additionalProperties"], f"{at}.{free}")

    walk(schema, "")
    return paths
