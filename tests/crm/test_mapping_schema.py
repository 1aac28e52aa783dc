"""The mapping format's JSON Schema (generated from ExportMapping) accepts every shipped
mapping, refuses a bad one, and docs/MAPPING.md documents exactly the keys it names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from crm.importer import MAPPINGS_DIR, MappingLoader
from crm.mapping_schema import mapping_json_schema, schema_key_paths
from leadscore.cli import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "MAPPING.md"


def validator() -> jsonschema.Draft202012Validator:
    schema = mapping_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_cli_prints_the_schema():
    res = CliRunner().invoke(app, ["mapping", "schema"])
    assert res.exit_code == 0
    assert json.loads(res.output) == mapping_json_schema()


@pytest.mark.parametrize("path", sorted(MAPPINGS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_mappings_fit_the_schema(path):
    raw = yaml.load(path.read_text(encoding="utf-8"), Loader=MappingLoader)  # noqa: S506
    assert list(validator().iter_errors(raw)) == []


def test_schema_refuses_what_the_loader_refuses():
    raw = yaml.load((MAPPINGS_DIR / "olist.yaml").read_text(), Loader=MappingLoader)  # noqa: S506
    bad = {**raw, "weights": 3}
    assert any("weights" in e.message for e in validator().iter_errors(bad))
    bad = {**raw, "attributes": {"origin": "text"}}
    assert list(validator().iter_errors(bad))
    bad = {**raw, "fields": {**raw["fields"], "lead_key": "mql_id"}}
    assert list(validator().iter_errors(bad))


def documented_keys() -> set[str]:
    """Key paths named in backticks in docs/MAPPING.md headings (### `label.drop`)."""
    keys: set[str] = set()
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if re.match(r"#{2,4} ", line):
            keys.update(re.findall(r"`([^`]+)`", line))
    return keys


def test_every_schema_key_is_documented_and_every_documented_key_exists():
    in_schema = set(schema_key_paths())
    in_doc = documented_keys()
    assert sorted(in_schema - in_doc) == [], "keys missing from docs/MAPPING.md"
    assert sorted(in_doc - in_schema) == [], "docs/MAPPING.md documents keys that do not exist"


def test_every_documented_key_has_an_example():
    """Each key's section holds a YAML example naming the key."""
    text = DOC.read_text(encoding="utf-8")
    sections = re.split(r"\n(?=#{2,4} )", text)
    for section in sections:
        heading = section.splitlines()[0]
        for key in re.findall(r"`([^`]+)`", heading):
            leaf = re.sub(r"\[\]$", "", key.rsplit(".", 1)[-1])
            assert "```yaml" in section and re.search(rf"\b{re.escape(leaf)}:", section), key
