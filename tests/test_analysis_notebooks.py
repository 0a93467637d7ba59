"""The analysis notebooks are stored without outputs, and the reference-fit one executes top to
bottom without errors or progress-bar warnings (fit_experiment executes against a real sweep's
store in tests/test_analysis_real_sweep.py; here against a store too thin for its fits, where
it says why and goes on, and with a mistyped LMSWEEP_GROUP_BY)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.fake_store import demo_store

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
    outputs = _execute("explore_reference_fit.ipynb")
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if "TqdmWarning" in o.get("text", "")]


def _execute(name: str) -> list:
    """The outputs of every code cell of the executed notebook."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


@pytest.fixture(scope="module")
def thin_store(tmp_path_factory):
    """One size, one budget, 3 evaluations per run: no group has the 4 frontier points a law
    needs, and one optimizer: nothing to compare."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('thin')}/mlflow.db"
    demo_store(uri, experiment="thin", budgets=(1e15,), sizes=(4e6,), n_steps=3)
    return uri


def test_fit_experiment_says_why_a_fit_is_impossible_and_goes_on(thin_store, monkeypatch):
    monkeypatch.setenv("LMSWEEP_TRACKING_URI", thin_store)
    monkeypatch.setenv("LMSWEEP_EXPERIMENT", "thin")
    monkeypatch.setenv("LMSWEEP_GROUP_BY", "optim.name")
    outputs = _execute("fit_experiment.ipynb")
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "no frontier fit: no group could be fitted on 'flops'" in text
    assert "no comparison at equal flops: need >= 2 variants of optim.name" in text


def test_fit_experiment_names_the_valid_group_by_columns(thin_store, monkeypatch):
    monkeypatch.setenv("LMSWEEP_TRACKING_URI", thin_store)
    monkeypatch.setenv("LMSWEEP_EXPERIMENT", "thin")
    monkeypatch.setenv("LMSWEEP_GROUP_BY", "model.nme")
    with pytest.raises(CellExecutionError) as err:
        _execute("fit_experiment.ipynb")
    assert "unknown column for LMSWEEP_GROUP_BY 'model.nme'; valid: " in str(err.value)
    assert "model.name" in str(err.value)
