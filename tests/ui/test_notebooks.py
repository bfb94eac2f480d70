"""Every notebook: paired with its py:percent file, committed without outputs, runs top to bottom."""

from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.compare import compare_notebooks
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PAIRS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
EXPECTED = ["01_trampolines", "02_trapped_call", "03_stack_gap", "04_race_sweeps", "05_batching", "06_explorer",
            "07_model_checking", "08_real_kernel"]

# about 40 s on two busy cores: started first (tests/conftest.py)
pytestmark = pytest.mark.slow(40)


def test_every_notebook_is_there_in_both_forms():
    assert [p.stem for p in PAIRS] == EXPECTED
    for py in PAIRS:
        assert py.with_suffix(".ipynb").exists(), f"{py.name} has no paired .ipynb"
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("py", PAIRS, ids=lambda p: p.stem)
def test_ipynb_is_in_sync_with_its_py_pair_and_has_no_outputs(py):
    ipynb = py.with_suffix(".ipynb")
    nb = nbformat.read(ipynb, as_version=4)
    assert nb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    # the same cells, sources and tags as the text file (jupytext's own comparison)
    compare_notebooks(jupytext.read(py), jupytext.read(ipynb), "py:percent")
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{ipynb.name}: outputs committed"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code", "one cell tagged 'parameters'"


# notebook 08 boots QEMU guests: it runs in the end-to-end part with the other guests
RUNS = [pytest.param(py, marks=pytest.mark.qemu) if py.stem == "08_real_kernel" else py for py in PAIRS]


@pytest.mark.parametrize("py", RUNS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(py):
    nb = nbformat.read(py.with_suffix(".ipynb"), as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    kinds = {k for o in outputs for k in o.get("data", {})}
    if py.stem in ("03_stack_gap", "04_race_sweeps", "05_batching", "08_real_kernel"):
        assert "image/png" in kinds, "figures must render in the notebook"
    if py.stem in ("02_trapped_call", "06_explorer", "07_model_checking"):
        assert "application/vnd.jupyter.widget-view+json" in kinds
