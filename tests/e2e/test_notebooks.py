"""The notebooks are part of the product: each one runs top to bottom in the test suite.

They are executed with nbclient in a kernel on this interpreter (the ``python3`` kernel of
ipykernel, which jupyter_client starts with ``sys.executable``), in a temporary working
folder, and any cell error fails the test. They are stored without outputs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 600


def test_the_notebooks_are_there() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {"01-explore-funnel.ipynb", "02-review-model.ipynb"} <= names, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: clear the outputs of cells {dirty} before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    took = time.perf_counter() - started
    print(f"{path.name}: {took:.1f}s")
    interpreter = nb.cells[0].outputs[0]["text"].strip()
    assert Path(interpreter).parent == Path(sys.executable).parent, interpreter
    # Every cell that shows a figure must have drawn one (a non-inline backend draws nothing).
    blank = [
        i
        for i, cell in enumerate(nb.cells[1:], start=1)
        if cell.cell_type == "code"
        and "plt.show()" in cell.source
        and not any("image/png" in out.get("data", {}) for out in cell.outputs)
    ]
    assert not blank, f"{path.name}: cells {blank} showed no figure"
