"""Reading configuration files users edit (persona definitions, the content map, the
quadrant policy) into frozen pydantic models, with errors that name the file and the key.

Nothing is read at import time: callers read a file once at start-up and pass the frozen
object on."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


_M = TypeVar("_M", bound=BaseModel)


def _loc_label(loc: tuple[Any, ...], raw: Any) -> str:
    """``('personas', 1, 'topics', 'fixes')`` -> ``personas[1] (evaluator).topics.fixes``."""
    out = ""
    node = raw
    for key in loc:
        if isinstance(key, int):
            out += f"[{key}]"
            node = node[key] if isinstance(node, list) and 0 <= key < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                out += f" ({node['name']})"
        else:
            out += f".{key}" if out else str(key)
            node = node.get(key) if isinstance(node, dict) else None
    return out or "(top level)"


def _explain(source: str, err: ValidationError, raw: Any) -> ConfigError:
    lines = []
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        given = e.get("input")
        if isinstance(given, (str, int, float, bool)) and e["type"] != "missing":
            msg += f" (got {given!r})"
        lines.append(f"  {_loc_label(tuple(e['loc']), raw)}: {msg}")
    return ConfigError(f"{source}: {len(lines)} problem(s):\n" + "\n".join(lines))


def _raw_mapping(data: str | Path | Mapping[str, Any], source: str | None) -> tuple[Any, str]:
    """The parsed YAML (or the mapping as a dict) and the name errors should use."""
    if isinstance(data, Path):
        source = source or str(data)
        try:
            text: str | Mapping[str, Any] = data.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read the file: {exc}") from None
    else:
        text = data
        source = source or "<configuration>"
    if isinstance(text, str):
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    else:
        raw = dict(text)
    return ({} if raw is None else raw), source


def read_yaml_config(
    model: type[_M], data: str | Path | Mapping[str, Any], source: str | None = None
) -> _M:
    """Validate a YAML file (a Path), YAML text (a str) or a mapping into a frozen model.

    Raises ConfigError naming the source and the offending key."""
    raw, source = _raw_mapping(data, source)
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of keys, not {type(raw).__name__}"
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _explain(source, exc, raw) from None
