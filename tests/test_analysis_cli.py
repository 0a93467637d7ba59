"""``python -m analysis`` end to end on a real MLflow store: files, artifacts, clean errors."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from analysis.cli import main
from analysis.synthetic import demo_store

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data" / "epoch_chinchilla_svg_extracted_data.csv"


@pytest.fixture(scope="module")
def store():
    # RAM-backed where available: SQLite's per-commit fsyncs make a disk store 3x slower
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=shm) as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        parent = demo_store(uri, experiment="demo", sweep_id="sw", sizes=(4e6, 8e6, 1.6e7, 3.2e7))
        yield uri, parent


def _run(store, *args):
    uri, _ = store
    return main([args[0], "--tracking-uri", uri, "--experiment", "demo", "--bootstrap", "20", *args[1:]])


def _artifacts(uri, run_id, path):
    return sorted(Path(a.path).name for a in MlflowClient(tracking_uri=uri).list_artifacts(run_id, path))


def test_fit_writes_files_and_attaches_them(store, tmp_path, capsys):
    out = tmp_path / "fit"
    assert _run(store, "fit", "--group-by", "model.name", "--x", "flops", "--frontier",
                "--out", str(out), "--attach") == 0
    written = {"points.csv", "fit_flops.csv", "fit_flops.json", "winners_flops.csv", "fit_flops.png"}
    assert written == {p.name for p in out.iterdir()}
    report = json.loads((out / "fit_flops.json").read_text())
    assert set(report["groups"]) == {"mixer", "transformer"}
    alpha = report["groups"]["transformer"]["intervals"]["quantities"]["alpha"]
    assert alpha["lo"] <= alpha["estimate"] <= alpha["hi"]
    assert _artifacts(store[0], store[1], "analysis/fit") == sorted(written)
    printed = capsys.readouterr().out
    assert "transformer: val_loss = E + A flops^-alpha" in printed and "winner" in printed


def test_compare_isoflop_and_chinchilla_on_runs(store, tmp_path):
    assert _run(store, "compare", "--group-by", "model.name", "--out", str(tmp_path / "c")) == 0
    names = {p.name for p in (tmp_path / "c").iterdir()}
    assert {"equal_wall_clock.csv", "equal_tokens.csv", "equal_flops.csv", "curves_wall_clock.png",
            "winners_flops.csv", "winners_wall_clock.csv"} <= names

    assert _run(store, "isoflop", "--group-by", "model.name", "--out", str(tmp_path / "i")) == 0
    iso = json.loads((tmp_path / "i" / "isoflop.json").read_text())
    assert 0.3 < iso["groups"]["transformer"]["a"] < 0.7
    assert {"isoflop_transformer.png", "frontier.png", "isoflop_budgets.csv"} <= {p.name for p in (tmp_path / "i").iterdir()}

    assert _run(store, "chinchilla", "--n", "non_embedding_params", "--group-by", "model.name",
                "--compute", "1e17", "--out", str(tmp_path / "ch")) == 0
    ch = json.loads((tmp_path / "ch" / "chinchilla.json").read_text())
    assert ch["groups"]["transformer"]["n_points"] == 12


def test_collapse_and_min_over(store, tmp_path, capsys):
    assert _run(store, "fit", "--x", "params", "--group-by", "model.name", "--collapse-seeds",
                "--min-over", "optim.lr", "--out", str(tmp_path)) == 0
    points = pd.read_csv(tmp_path / "points.csv")
    # 2 archs x 3 budgets x 4 sizes; the diverged 10x-lr run folds into its sibling's cell
    assert len(points) == 24 and (points["n_optim.lr"] <= 2).all()
    assert not points["diverged"].any() and (points["optim.lr"] == 3e-3).all()
    assert "best optim.lr is the smallest or largest tried" in capsys.readouterr().out


def test_chinchilla_on_reference_csv(tmp_path, capsys):
    assert main(["chinchilla", "--csv", str(REFERENCE), "--drop-highest", "5", "--bootstrap", "20",
                 "--compute", "1e21", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "chinchilla.json").read_text())["groups"]["csv"]
    assert report["n_points"] == 240 and report["objective"] < report["objective_at_hoffmann_2022"]
    assert "N_opt@1e+21" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["fit", "--experiment", "nope"], "unknown experiment 'nope'; valid: Default, demo"),
    (["fit", "--group-by", "model.nme"], "unknown column for --group-by 'model.nme'; valid: "),
    (["fit", "--sweep-id", "zz"], "'zz'; valid: sw"),
    (["isoflop", "--budget", "budget.nope"], "unknown column for --budget 'budget.nope'"),
    (["fit", "--x", "params", "--group-by", "model.size"], "1 distinct x values, need at least 3"),
    (["fit", "--x", "params", "--group-by", "fingerprint"], "1 usable points (finite, positive), need at least 4"),
])
def test_bad_input_is_one_clear_line(store, args, message, capsys, tmp_path):
    uri, _ = store
    assert main([*args[:1], "--tracking-uri", uri, "--bootstrap", "5", "--out", str(tmp_path),
                 *(["--experiment", "demo"] if "--experiment" not in args else []), *args[1:]]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_module_entry_point_has_no_traceback(store):
    proc = subprocess.run([sys.executable, "-m", "analysis", "fit", "--tracking-uri", store[0],
                           "--experiment", "nope"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown experiment 'nope'") and "Traceback" not in proc.stderr
