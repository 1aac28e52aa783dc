"""Size as a signal (issue 15): no module of the packages over 600 lines, no function over
80 unless a '# long: why' comment right above it says why it reads better whole."""

from __future__ import annotations

from pathlib import Path

from architecture.sizes import MAX_FUNCTION, MAX_MODULE, offenders

ROOT = Path(__file__).resolve().parents[2]


def test_no_module_or_function_over_the_limits():
    found = offenders(ROOT)
    assert not found, "\n".join(found)


def test_the_rule_sees_a_long_function_and_accepts_a_reason(tmp_path: Path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION))
    pkg = tmp_path / "crm"
    pkg.mkdir()
    (pkg / "long.py").write_text(f"def f():\n{body}")
    assert [o.split(":")[0] for o in offenders(tmp_path)] == ["crm/long.py"]
    (pkg / "long.py").write_text(
        f"# long: one flat table of constants, read top to bottom\ndef f():\n{body}"
    )
    assert offenders(tmp_path) == []
    (pkg / "big.py").write_text("x = 1\n" * (MAX_MODULE + 1))
    assert offenders(tmp_path) == [f"crm/big.py: {MAX_MODULE + 1} lines (max {MAX_MODULE})"]
