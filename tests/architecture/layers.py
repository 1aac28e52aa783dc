"""The import-graph checker behind tests/architecture/test_import_graph.py: which of our
packages each package may import (arrows point down only), and an ast walk that lists every
import breaking that, lazy imports inside functions included."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

#: package -> the packages of ours it may import (besides itself). Top to bottom:
#: leadscore (the CLI wires everything) > serving | training > monitoring > reports > scoring
#: > features > crm. serving and training never import each other; nothing imports the CLI.
ALLOWED: dict[str, frozenset[str]] = {
    "crm": frozenset(),
    "features": frozenset({"crm"}),
    "scoring": frozenset({"features", "crm"}),
    "reports": frozenset({"scoring", "features", "crm"}),
    "monitoring": frozenset({"reports", "scoring", "features", "crm"}),
    "training": frozenset({"monitoring", "reports", "scoring", "features", "crm"}),
    "serving": frozenset({"monitoring", "scoring", "features", "crm"}),
    "leadscore": frozenset(
        {"serving", "training", "monitoring", "reports", "scoring", "features", "crm"}
    ),
}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    importer: str
    imported: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}: {self.importer} may not import {self.imported} "
            f"(allowed: {', '.join(sorted(ALLOWED[self.importer])) or 'none of ours'})"
        )


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a module, at any depth."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            # `from features import build` names a module as well as a package
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def violations(root: Path) -> list[Violation]:
    """Every import, in the packages under ``root``, of one of our packages that the
    importing package may not use."""
    out = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for line, name in imported_modules(tree):
                top = name.split(".")[0]
                if top in ALLOWED and top != package and top not in allowed:
                    out.append(Violation(str(path.relative_to(root)), line, package, top))
    return sorted(set(out), key=lambda v: (v.path, v.line, v.imported))
