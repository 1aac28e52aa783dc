"""The importer package keeps its public face: the names the rest of the tree imports from
``crm.importer``, the shipped mappings' folder, and one spelling of the custom kinds."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import crm.importer
from crm.importer import MAPPINGS_DIR, Kind
from crm.vocabulary import CUSTOM_KINDS


def test_every_public_name_is_importable_from_the_package():
    assert all(hasattr(crm.importer, name) for name in crm.importer.__all__)


def test_the_shipped_mappings_are_found_in_crm_mappings():
    assert MAPPINGS_DIR == Path(__file__).resolve().parents[2] / "crm" / "mappings"
    assert sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml")) == ["olist", "x-education"]


def test_the_kind_literal_spells_the_vocabulary_custom_kinds():
    assert get_args(Kind) == CUSTOM_KINDS
