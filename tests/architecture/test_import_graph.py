"""Arrows point down only (docs/ARCHITECTURE.md): serving -> scoring -> features -> crm,
training -> reports -> scoring; serving and training never import each other and nothing
imports the CLI. The checker itself is shown to catch a planted upward import."""

from __future__ import annotations

import shutil
from pathlib import Path

from architecture.layers import ALLOWED, violations

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_exists_and_imports_only_downwards():
    for package in ALLOWED:
        assert (ROOT / package / "__init__.py").exists(), package
    found = violations(ROOT)
    assert not found, "upward imports:\n" + "\n".join(map(str, found))


def test_the_checker_catches_a_planted_upward_import(tmp_path: Path):
    for package in ALLOWED:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    assert violations(tmp_path) == []
    planted = tmp_path / "features" / "planted.py"
    planted.write_text("def late():\n    from serving.service import LeadScoringService\n")
    (tmp_path / "crm" / "planted.py").write_text("import training.train\n")
    (tmp_path / "training" / "planted.py").write_text("from serving import metrics\n")
    (tmp_path / "serving" / "planted.py").write_text("from leadscore.cli import app\n")
    found = {(v.path, v.importer, v.imported) for v in violations(tmp_path)}
    assert found == {
        ("features/planted.py", "features", "serving"),
        ("crm/planted.py", "crm", "training"),
        ("training/planted.py", "training", "serving"),
        ("serving/planted.py", "serving", "leadscore"),
    }
