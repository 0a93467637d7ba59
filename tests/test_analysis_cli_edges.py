"""``python -m analysis`` on input it must refuse or trim, on the user's path (``main``, as the
module entry calls it): diverged runs and unusable points left out with one line, stores that
do not exist or do not answer, output folders, options a subcommand would ignore, messages."""

import json
import os
import socket
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from analysis.cli import main
from tests.fake_store import demo_store


@pytest.fixture(scope="module")
def store():
    """The demo sweep (2 archs x 3 budgets x 4 sizes) and its one diverged run: 10x the lr,
    NaN final_val_loss, a finite best_val_loss from before the blow-up."""
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=shm) as tmp, pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)  # MLflow puts a new experiment's artifacts under ./mlruns
        uri = f"sqlite:///{tmp}/mlflow.db"
        demo_store(uri, experiment="demo", sweep_id="sw", sizes=(4e6, 8e6, 1.6e7, 3.2e7))
        yield uri


def _run(store, *args):
    return main(
        [args[0], "--tracking-uri", store, "--experiment", "demo", "--bootstrap", "100", *args[1:]]
    )


def _one_line_error(capsys, *fragments):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


# --- A: diverged runs are left out by every subcommand, whatever --y ------------------------


def test_fit_on_best_val_loss_leaves_the_diverged_run_out(store, tmp_path, capsys):
    out = tmp_path / "o"
    argv = ["fit", "--y", "best_val_loss", "--x", "params", "--group-by", "model.name"]
    assert _run(store, *argv, "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert printed.count("left out 1 diverged run: ") == 1
    points = pd.read_csv(out / "points.csv")
    assert len(points) == 24 and not points["diverged"].any()
    assert (points["optim.lr"] == 3e-3).all()  # the 10x-lr run diverged
    assert "on 12 points" in printed and "on 13 points" not in printed


def test_a_diverged_seed_is_counted_in_its_cell(tmp_path, capsys):
    """Left out of the fit, still counted: docs/analysis.md's "diverged seeds are left out and
    counted" (n_diverged was 0 once diverged runs were dropped on loading)."""
    sizes = (1e6, 2e6, 4e6, 8e6, 1.6e7)
    lines = [
        f"{n:g},{seed},{'nan' if (n, seed) == (1.6e7, 1) else 4 * n**-0.1 + 1 + 0.01 * seed}"
        for n in sizes
        for seed in (0, 1)
    ]
    (tmp_path / "runs.csv").write_text("N,seed,loss\n" + "\n".join(lines) + "\n")
    argv = ["fit", "--csv", str(tmp_path / "runs.csv"), "--n-col", "N", "--x", "params"]
    argv += ["--collapse-seeds", "--seed-column", "seed"]
    assert main([*argv, "--bootstrap", "0", "--out", str(tmp_path / "o")]) == 0
    assert "left out 1 row whose loss is not a finite number (diverged)" in capsys.readouterr().out
    points = pd.read_csv(tmp_path / "o" / "points.csv")
    assert points["n_runs"].tolist() == [2] * 5
    assert points["n_diverged"].tolist() == [0, 0, 0, 0, 1]


@pytest.mark.parametrize(
    "args",
    [
        ["chinchilla", "--y", "best_val_loss", "--group-by", "model.name", "--compute", "1e17"],
        ["isoflop", "--y", "best_val_loss", "--group-by", "model.name"],
        ["compare", "--group-by", "model.name", "--axes", "flops"],
    ],
    ids=["chinchilla", "isoflop", "compare"],
)
def test_every_subcommand_leaves_diverged_runs_out_and_says_so(store, args, tmp_path, capsys):
    assert _run(store, *args, "--out", str(tmp_path)) == 0
    printed = capsys.readouterr().out
    assert printed.count("left out 1 diverged run: ") == 1
    if args[0] == "chinchilla":
        groups = json.loads((tmp_path / "chinchilla.json").read_text())["groups"]
        assert groups["mixer"]["n_points"] == 12  # 3 budgets x 4 sizes, not the diverged 13th
    if args[0] == "isoflop":
        budgets = pd.read_csv(tmp_path / "isoflop_budgets.csv")
        assert "left out (diverged" not in printed and len(budgets) == 6


# a sweep at one token budget (and so one L(N) curve), plus rows no fit can use: a diverged
# run and a loss of 0 at other budgets, a size of -1, a size that is missing
POOLED = """\
N,D,loss
1e6,1e9,4.10
2e6,1e9,3.80
4e6,1e9,3.56
8e6,1e9,3.38
1.6e7,1e9,3.25
3.2e7,1e9,3.16
6.4e7,1e9,3.10
6.4e7,3e9,
1.6e7,1e10,0
-1,1e9,3.3
,1e9,3.4
"""


def test_points_left_out_are_counted_named_and_not_pooled(tmp_path, capsys):
    (tmp_path / "runs.csv").write_text(POOLED)
    argv = ["fit", "--csv", str(tmp_path / "runs.csv"), "--n-col", "N", "--d-col", "D"]
    assert main([*argv, "--x", "params", "--bootstrap", "100", "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert "left out 1 row whose loss is not a finite number (diverged): row 8" in printed
    assert (
        "left out 3 of 10 points whose params_total or loss is not a finite number > 0 (the "
        "fits take logs): row 9 (loss = 0), row 10 (params_total = -1), row 11 (params_total = "
        "nan)" in printed
    )
    assert "on 7 points" in printed
    # the other token budgets are only those of rows left out: one curve, no warning
    assert "pools runs" not in printed


def test_chinchilla_names_the_points_it_leaves_out(tmp_path, capsys):
    rows = [
        {"N": n, "D": d, "loss": 1.7 + 400 / n**0.34 + 410 / d**0.28}
        for n in (1e7, 3e7, 1e8, 3e8)
        for d in (1e9, 3e9, 1e10)
    ]
    rows[3]["loss"] = -1.0
    pd.DataFrame(rows).to_csv(tmp_path / "runs.csv", index=False)
    argv = ["chinchilla", "--csv", str(tmp_path / "runs.csv"), "--n-col", "N", "--d-col", "D"]
    assert main([*argv, "--bootstrap", "100", "--compute", "1e19", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "left out 1 of 12 points whose params_total or tokens or loss" in printed
    assert "row 4 (loss = -1)" in printed and "on 11 points" in printed


# --- C, D: stores that do not answer or do not exist -----------------------------------------


def test_a_server_that_does_not_answer_fails_in_seconds_with_its_uri_redacted(tmp_path, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    uri = f"http://user:hunter2@127.0.0.1:{port}"
    assert main(["fit", "--tracking-uri", uri, "--x", "params", "--out", str(tmp_path / "o")]) == 2
    assert time.monotonic() - start < 30  # MLflow's own retries take ~4 minutes
    err = _one_line_error(
        capsys, f"--tracking-uri http://user:***@127.0.0.1:{port}: no MLflow server answers"
    )
    assert "hunter2" not in err and len(err) < 300
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("form", ["file", "bare"])
def test_a_mistyped_file_store_is_named_and_nothing_is_created(form, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "nostore" / "mlruns"
    uri = f"file://{path}" if form == "file" else str(path)
    assert main(["fit", "--tracking-uri", uri, "--x", "params", "--out", "o"]) == 2
    _one_line_error(capsys, f"no MLflow file store at {path}", f"--tracking-uri {uri}")
    assert list(tmp_path.iterdir()) == []


# --- E, F: the output folder -----------------------------------------------------------------


@pytest.mark.parametrize(
    "out, fragment",
    [
        ("some.csv", "some.csv is a file, not a folder"),
        ("some.csv/sub", "some.csv is a file, not a folder"),
        ("/proc/x", "--out /proc/x: cannot write there"),
    ],
)
def test_an_output_folder_that_cannot_be_written_is_refused_first(
    out, fragment, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "some.csv").write_text("mine\n")
    # the store does not exist either: the output folder is checked before anything is read
    argv = ["fit", "--tracking-uri", f"sqlite:///{tmp_path}/none.db", "--x", "params"]
    assert main([*argv, "--out", out]) == 2
    _one_line_error(capsys, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["some.csv"]


def test_each_subcommand_has_its_own_default_folder_and_replaces_its_last_run(
    store, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert _run(store, "fit", "--x", "flops", "--frontier", "--group-by", "model.name") == 0
    assert _run(store, "compare", "--group-by", "model.name", "--axes", "flops") == 0
    fit = tmp_path / "analysis_out" / "fit_flops_frontier"
    compare = tmp_path / "analysis_out" / "compare"
    assert (fit / "winners_flops.csv").is_file() and (fit / "fit_flops.json").is_file()
    assert (compare / "winners_flops.csv").is_file() and (compare / "compare.json").is_file()
    assert not list(compare.glob("fit_*")) and not list(fit.glob("equal_*"))
    assert f"wrote 6 files to {Path('analysis_out/compare')}/" in capsys.readouterr().out
    # another fit into that folder: the last fit's files go, a file of the user's stays
    (fit / "notes.txt").write_text("mine\n")
    assert _run(store, "fit", "--x", "params", "--group-by", "model.name", "--out", str(fit)) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in fit.iterdir() if not p.name.startswith(".")) == [
        "fit_params.csv",
        "fit_params.json",
        "fit_params.png",
        "notes.txt",
        "points.csv",
        "winners_params.csv",
    ]
    assert f"removed 4 files an earlier command wrote to {fit}/" in printed
    assert "winners_flops.csv" in printed


# --- G: options a subcommand would ignore are honoured or refused ----------------------------


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["compare", "--y", "best_val_loss"], "--y best_val_loss does not apply to compare"),
        (
            ["fit", "--frontier", "--x", "flops", "--y", "best_val_loss"],
            "--y best_val_loss does not apply to fit --frontier --x flops",
        ),
        (
            ["isoflop", "--from-curves", "--y", "best_val_loss"],
            "--y best_val_loss does not apply to isoflop --from-curves",
        ),
    ],
)
def test_y_where_a_command_reads_curves_is_refused(store, args, fragment, tmp_path, capsys):
    assert _run(store, *args, "--out", str(tmp_path / "o")) == 2
    _one_line_error(capsys, fragment)
    assert not (tmp_path / "o").exists()


def test_compare_honours_metric_and_axes_in_its_fitted_laws(store, tmp_path, capsys):
    argv = ["compare", "--group-by", "model.name", "--metric", "train_loss", "--axes", "flops"]
    assert _run(store, *argv, "--out", str(tmp_path)) == 0
    assert not (tmp_path / "winners_wall_clock.csv").exists()
    assert not (tmp_path / "frontier_fit_wall_clock.csv").exists()
    fits = pd.read_csv(tmp_path / "frontier_fit_flops.csv")
    assert set(fits["y"]) == {"train_loss"}
    report = json.loads((tmp_path / "compare.json").read_text())
    assert report["metric"] == "train_loss" and set(report["fitted_law_winners"]) == {"flops"}


# --- H: messages -----------------------------------------------------------------------------


def test_an_unknown_y_lists_the_loss_columns_only(store, tmp_path, capsys):
    assert _run(store, "fit", "--y", "nope", "--out", str(tmp_path / "o")) == 2
    err = _one_line_error(capsys)
    assert err == "error: unknown --y 'nope'; valid: best_val_loss, final_val_loss\n"


def test_a_fit_that_fails_says_why_once(tmp_path, capsys):
    # two sizes per budget: no budget has a minimum to find
    rows = [
        {"N": n, "C": c, "loss": 3.0 - 0.1 * i}
        for c in (1e18, 1e19)
        for i, n in enumerate((1e7, 1e8))
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "runs.csv", index=False)
    argv = ["isoflop", "--csv", str(tmp_path / "runs.csv"), "--n-col", "N", "--c-col", "C"]
    assert main([*argv, "--bootstrap", "100", "--out", str(tmp_path / "o")]) == 2
    printed = capsys.readouterr()
    assert "skipped" not in printed.out
    assert printed.err.startswith("error: isoflop: no group could be fitted: group 'all': ")
    assert printed.err.count("\n") == 1


def test_help_is_whole_sentences_and_documents_axes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "scaling-law fits of an lmsweep experiment read from MLflow, or of a table (--csv)." in text
    )
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--axes {wall_clock,tokens,flops} [{wall_clock,tokens,flops} ...] the axes" in text


def test_the_guide_lists_what_compare_writes_and_its_options():
    guide = (Path(__file__).resolve().parents[1] / "docs" / "analysis.md").read_text()
    assert "frontier_fit_flops.csv" in guide and "frontier_fit_wall_clock.png" in guide
    assert "`--axes` names the axes" in guide and "analysis_out/<subcommand>/" in guide
