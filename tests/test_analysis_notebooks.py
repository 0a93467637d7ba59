"""The analysis notebooks execute top to bottom (fit_experiment builds its own demo store)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("name", ["fit_experiment.ipynb", "explore_reference_fit.ipynb"])
def test_notebook_runs(name, tmp_path, monkeypatch):
    # an empty store: fit_experiment must fall back to building its synthetic sweep
    monkeypatch.setenv("LMSWEEP_TRACKING_URI", f"sqlite:///{tmp_path}/missing.db")
    monkeypatch.setenv("LMSWEEP_EXPERIMENT", "lmsweep")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "store notebooks without outputs"
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
