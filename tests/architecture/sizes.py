"""The size rule behind tests/architecture/test_sizes.py: no module over ``MAX_MODULE``
lines, no function over ``MAX_FUNCTION`` lines unless a comment right above its ``def`` (or
its decorators) starts with ``# long:`` and says why. Run it as a script to list offenders:
``python tests/architecture/sizes.py``."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE = 600
MAX_FUNCTION = 80
PACKAGES = ("crm", "features", "scoring", "training", "reports", "serving", "leadscore")
LONG_MARK = "# long:"


def _justified(lines: list[str], node: ast.AST) -> bool:
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    above = lines[first - 2].strip() if first >= 2 else ""
    return above.startswith(LONG_MARK) and len(above) > len(LONG_MARK) + 10


def offenders(root: Path) -> list[str]:
    out = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text()
            lines = text.splitlines()
            rel = path.relative_to(root)
            if len(lines) > MAX_MODULE:
                out.append(f"{rel}: {len(lines)} lines (max {MAX_MODULE})")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    n = node.end_lineno - node.lineno + 1
                    if n > MAX_FUNCTION and not _justified(lines, node):
                        out.append(
                            f"{rel}:{node.lineno} {node.name}: {n} lines (max {MAX_FUNCTION} "
                            f"without a '{LONG_MARK} why' comment above it)"
                        )
    return out


if __name__ == "__main__":
    found = offenders(
        Path(__file__).resolve().parents[2] if len(sys.argv) < 2 else Path(sys.argv[1])
    )
    print("\n".join(found) or "no module or function over the limits")
    sys.exit(1 if found else 0)
