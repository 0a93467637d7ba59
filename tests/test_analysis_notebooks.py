"""The analysis notebooks are stored without outputs, and the reference-fit one executes top to
bottom without errors or progress-bar warnings (fit_experiment executes against a real sweep's
store in tests/test_analysis_real_sweep.py)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("name", ["fit_experiment.ipynb", "explore_reference_fit.ipynb"])
def test_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(
        not c.get("outputs") and not c.get("execution_count")
        for c in nb.cells
        if c.cell_type == "code"
    )


def test_reference_fit_notebook_runs():
    nb = nbformat.read(NOTEBOOKS / "explore_reference_fit.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if "TqdmWarning" in o.get("text", "")]
