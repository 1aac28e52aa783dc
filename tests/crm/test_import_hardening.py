"""Issue 18, the import part: every user error is a message naming the key, path, row or
column, with exit code 2, never a traceback; and nothing already stored is lost."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadscore.cli import app

MAPPING = """
    name: hardening
    sources: [{name: leads, file: "*.csv"}]
    fields:
      lead_id: id
      created_at: created
    label: {column: won, positive: ["1"], negative: ["0"], stage: customer, at: {offset: 1d}}
    counters: [visits]
"""

CSV = "id,created,won,visits\na,2020-01-01,1,3\nb,2020-01-02,0,5\n"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def run_import(mapping: Path, export: Path, out: Path | str) -> tuple[int, str]:
    res = CliRunner().invoke(
        app, ["import", "--mapping", str(mapping), "--out", str(out), str(export)]
    )
    assert (
        "Traceback" not in res.output
        and res.exception is None
        or isinstance(res.exception, SystemExit)
    ), res.output
    return res.exit_code, " ".join(res.output.split())


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    return write(tmp_path / "m.yaml", MAPPING), write(tmp_path / "leads.csv", CSV)


def test_the_fixture_imports(files, tmp_path):
    code, out = run_import(*files, tmp_path / "ok")
    assert code == 0 and "2 leads" in out


def test_out_is_an_existing_file(files, tmp_path):
    target = tmp_path / "scores.parquet"
    target.write_bytes(b"keep me")
    code, out = run_import(*files, target)
    assert code == 2 and f"--out {target}: is a file, not a folder" in out
    assert target.read_bytes() == b"keep me"


def test_out_under_a_file(files, tmp_path):
    (tmp_path / "afile").write_text("keep me")
    code, out = run_import(*files, tmp_path / "afile" / "data")
    assert code == 2 and "afile is a file, so no folder can be under it" in out
    assert (tmp_path / "afile").read_text() == "keep me"


def test_out_in_an_unwritable_place(files):
    code, out = run_import(*files, "/proc/leadscore-test/data")
    assert code == 2 and "--out /proc/leadscore-test/data" in out
    assert "not writable" in out or "cannot write there" in out


def test_offset_of_100000_days(files, tmp_path):
    mapping, export = files
    mapping.write_text(mapping.read_text().replace("offset: 1d", "offset: 100000d"))
    code, out = run_import(mapping, export, tmp_path / "out")
    assert code == 2 and "label.at.offset" in out and "at most 3650d" in out


def test_a_5001_digit_integer(files, tmp_path):
    mapping, export = files
    export.write_text(CSV.replace("0,5", "0," + "7" * 5001))
    code, out = run_import(mapping, export, tmp_path / "out")
    assert code == 2 and "column 'visits'" in out and "not a number" in out and "row 2" in out
    assert "(5,001 characters)" in out and len(out) < 1000  # quoted by its start only
    assert not (tmp_path / "out").exists()


def test_encoding_rot13(files, tmp_path):
    mapping, export = files
    mapping.write_text(
        mapping.read_text().replace('file: "*.csv"}', 'file: "*.csv", csv: {encoding: rot13}}')
    )
    code, out = run_import(mapping, export, tmp_path / "out")
    assert code == 2 and "sources.0.csv.encoding" in out and "not a text encoding" in out
    mapping.write_text(mapping.read_text().replace("rot13", "klingon"))
    code, out = run_import(mapping, export, tmp_path / "out")
    assert code == 2 and "unknown encoding 'klingon'" in out


BOMB = "level_00: &level_00 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"level_{i:02d}: &level_{i:02d} [{', '.join([f'*level_{i - 1:02d}'] * 10)}]\n"
    for i in range(1, 9)
)


def test_yaml_alias_bomb_is_refused_at_once(files, tmp_path):
    mapping, export = files
    mapping.write_text(BOMB + textwrap.dedent(MAPPING))
    assert 1100 < len(mapping.read_bytes()) < 1400  # ~1.2 KB expanding to 10**9 nodes
    t0 = time.perf_counter()
    code, out = run_import(mapping, export, tmp_path / "out")
    assert time.perf_counter() - t0 < 5
    assert code == 2 and "anchors and aliases (&name, *name) are not allowed" in out
    assert "line 1" in out


def test_a_single_alias_is_refused_too(files, tmp_path):
    mapping, export = files
    text = textwrap.dedent(MAPPING).replace(
        "name: hardening", "name: &n hardening\ndescription: *n"
    )
    mapping.write_text(text)
    code, out = run_import(mapping, export, tmp_path / "out")
    assert code == 2 and "not allowed in a mapping" in out


def test_header_only_csv_is_refused(files, tmp_path):
    mapping, export = files
    export.write_text("id,created,won,visits\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "leads.parquet").write_bytes(b"earlier import")
    code, out = run_import(mapping, export, out_dir)
    assert code == 2 and "leads.csv" in out and "0 leads" in out
    assert (out_dir / "leads.parquet").read_bytes() == b"earlier import"


def test_a_wrong_encoding_for_the_file(files, tmp_path):
    mapping, export = files
    mapping.write_text(
        mapping.read_text().replace('file: "*.csv"}', 'file: "*.csv", csv: {encoding: utf-16}}')
    )
    code, out = run_import(mapping, export, tmp_path / "out")
    assert code == 2 and "leads.csv: cannot read as CSV with sources.0.csv" in out
    assert "encoding utf-16" in out


def test_a_date_format_pandas_cannot_use(files, tmp_path):
    mapping, export = files
    mapping.write_text(
        mapping.read_text().replace(
            "created_at: created", 'created_at: {column: created, format: "%Q"}'
        )
    )
    code, out = run_import(mapping, export, tmp_path / "out")
    assert code == 2 and "fields.created_at.format: not a date format" in out


def test_a_mapping_that_is_not_utf8(files, tmp_path):
    mapping, export = files
    mapping.write_bytes(b"\xff\xfe\x00name: t\n")
    code, out = run_import(mapping, export, tmp_path / "out")
    assert code == 2 and "is not UTF-8 text" in out


def test_synthetic_dates_past_2200(files, tmp_path):
    """Each step is allowed (at most 10 years), but 30 of them from 2020 run past 2200."""
    mapping, export = files
    mapping.write_text(
        mapping.read_text().replace(
            "created_at: created",
            'created_at: {from_order: visits, start: "2020-01-01", step: 3650d}',
        )
    )
    export.write_text("id,created,won,visits\n" + "".join(f"l{i},,0,{i}\n" for i in range(30)))
    code, out = run_import(mapping, export, tmp_path / "out")
    assert code == 2 and "column 'visits'" in out and "run past the year 2200" in out
    assert "fields.created_at.step" in out


def test_yaml_nested_50000_deep(files, tmp_path):
    mapping, export = files
    mapping.write_text("name: " + "[" * 50_000 + "]" * 50_000 + "\n")
    code, out = run_import(mapping, export, tmp_path / "out")
    assert code == 2 and "nested deeper than 20 levels" in out


def test_skip_rows_of_a_trillion(files, tmp_path):
    """pandas builds a set of the rows to skip: a trillion ran out of memory."""
    mapping, export = files
    mapping.write_text(
        mapping.read_text().replace(
            'file: "*.csv"}', 'file: "*.csv", csv: {skip_rows: 1000000000000}}'
        )
    )
    code, out = run_import(mapping, export, tmp_path / "out")
    assert code == 2 and "sources.0.csv.skip_rows" in out
