"""``python -m analysis`` end to end on a real MLflow store and on CSV tables: files,
artifacts, options that do what they say, clean errors."""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from analysis.chinchilla import ChinchillaFit
from analysis.cli import main
from analysis.synthetic import isoflop_sweep
from tests.fake_store import demo_store

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data" / "epoch_chinchilla_svg_extracted_data.csv"
LAW = ChinchillaFit.given(1.69, 406.4, 410.7, 0.34, 0.28)


@pytest.fixture(scope="module")
def store():
    # RAM-backed where available: SQLite's per-commit fsyncs make a disk store 3x slower
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=shm) as tmp, pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)  # MLflow puts a new experiment's artifacts under ./mlruns
        uri = f"sqlite:///{tmp}/mlflow.db"
        parent = demo_store(uri, experiment="demo", sweep_id="sw", sizes=(4e6, 8e6, 1.6e7, 3.2e7))
        yield uri, parent


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """An IsoFLOP grid with 3 seeds per cell as one row per run (N, D, loss, group, seed), and
    the same runs' curves as one row per evaluation (run, N, C, tokens, seconds, loss)."""
    path = tmp_path_factory.mktemp("csv")
    sweep = isoflop_sweep(
        LAW, np.geomspace(1e18, 1e20, 5), sizes=9, decades=2.0, noise=0.003, n_seeds=3, seed=0
    )
    final = pd.DataFrame(
        {
            "N": sweep["n"],
            "D": sweep["compute"] / (6 * sweep["n"]),
            "loss": sweep["loss"],
            "arch": "t",
            "seed": sweep["seed"],
            "w": 1.0,
        }
    )
    final.to_csv(path / "final.csv", index=False)
    rows = []
    for i, run in final.iterrows():
        for frac in (0.25, 0.5, 0.75, 1.0):
            d = run["D"] * frac
            rows.append(
                {
                    "run": f"r{i}",
                    "arch": "ab"[i % 2],
                    "seed": run["seed"],
                    "N": run["N"],
                    "C": 6 * run["N"] * d,
                    "sec": 6 * run["N"] * d / (1e12 if i % 2 else 2e12),
                    "loss": LAW.predict(run["N"], d) + 0.001 * (i % 3),
                }
            )
    pd.DataFrame(rows).to_csv(path / "curves.csv", index=False)
    return path


def _run(store, *args):
    uri, _ = store
    return main(
        [args[0], "--tracking-uri", uri, "--experiment", "demo", "--bootstrap", "100", *args[1:]]
    )


def _artifacts(uri, run_id, path):
    artifacts = MlflowClient(tracking_uri=uri).list_artifacts(run_id, path)
    return sorted(Path(a.path).name for a in artifacts)


def test_fit_writes_files_and_attaches_them(store, tmp_path, capsys):
    out = tmp_path / "fit"
    assert (
        _run(
            store,
            "fit",
            "--group-by",
            "model.name",
            "--x",
            "flops",
            "--frontier",
            "--out",
            str(out),
            "--attach",
        )
        == 0
    )
    written = {
        "points.csv",
        "fit_flops.csv",
        "fit_flops.json",
        "winners_flops.csv",
        "fit_flops.png",
    }
    # and the folder's record of them (.analysis_files.json), which the next command reads
    assert written == {p.name for p in out.iterdir() if not p.name.startswith(".")}
    report = json.loads((out / "fit_flops.json").read_text())
    assert set(report["groups"]) == {"mixer", "transformer"}
    alpha = report["groups"]["transformer"]["intervals"]["quantities"]["alpha"]
    assert alpha["lo"] <= alpha["estimate"] <= alpha["hi"] and alpha["failed"] == 0
    assert _artifacts(store[0], store[1], "analysis/fit") == sorted(written)
    printed = capsys.readouterr().out
    assert "transformer: val_loss = E + A flops^-alpha" in printed and "winner" in printed
    assert "prediction on the largest budget off by" in printed and "within" not in printed


def test_compare_isoflop_and_chinchilla_on_runs(store, tmp_path, capsys):
    assert _run(store, "compare", "--group-by", "model.name", "--out", str(tmp_path / "c")) == 0
    names = {p.name for p in (tmp_path / "c").iterdir()}
    assert {
        "equal_wall_clock.csv",
        "equal_tokens.csv",
        "equal_flops.csv",
        "curves_wall_clock.png",
        "winners_flops.csv",
        "winners_wall_clock.csv",
    } <= names
    equal = pd.read_csv(tmp_path / "c" / "equal_flops.csv")
    assert {"winner", "absent", "margin", "p_value", "significant"} <= set(equal.columns)
    assert "untested: a p-value needs >= 2 seeds" in capsys.readouterr().out  # one seed each

    assert _run(store, "isoflop", "--group-by", "model.name", "--out", str(tmp_path / "i")) == 0
    iso = json.loads((tmp_path / "i" / "isoflop.json").read_text())
    assert 0.3 < iso["groups"]["transformer"]["a"] < 0.7
    assert iso["groups"]["transformer"]["budgets_used"] == ["3e15", "1e16", "3e16"]  # as written
    assert {"isoflop_transformer.png", "frontier.png", "isoflop_budgets.csv"} <= {
        p.name for p in (tmp_path / "i").iterdir()
    }
    assert "predicted from the others, off by" in capsys.readouterr().out

    assert (
        _run(
            store,
            "chinchilla",
            "--n",
            "non_embedding_params",
            "--group-by",
            "model.name",
            "--compute",
            "1e17",
            "--out",
            str(tmp_path / "ch"),
        )
        == 0
    )
    ch = json.loads((tmp_path / "ch" / "chinchilla.json").read_text())
    assert ch["groups"]["transformer"]["n_points"] == 12
    assert "N_opt@1e17" in ch["groups"]["transformer"]["intervals"]["quantities"]


def test_collapse_and_min_over(store, tmp_path, capsys):
    assert (
        _run(
            store,
            "fit",
            "--x",
            "params",
            "--group-by",
            "model.name",
            "--collapse-seeds",
            "--min-over",
            "optim.lr",
            "--out",
            str(tmp_path),
        )
        == 0
    )
    points = pd.read_csv(tmp_path / "points.csv")
    # 2 archs x 3 budgets x 4 sizes; the diverged 10x-lr run folds into its sibling's cell
    assert len(points) == 24 and (points["n_optim.lr"] <= 2).all()
    assert not points["diverged"].any() and (points["optim.lr"] == 3e-3).all()
    assert "best optim.lr is the smallest or largest tried" in capsys.readouterr().out


def test_chinchilla_on_reference_csv(tmp_path, capsys):
    assert (
        main(
            [
                "chinchilla",
                "--csv",
                str(REFERENCE),
                "--drop-highest",
                "5",
                "--bootstrap",
                "100",
                "--compute",
                "1e21",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "chinchilla.json").read_text())["groups"]["all"]
    assert report["n_points"] == 240 and report["objective"] < report["objective_at_hoffmann_2022"]
    assert "N_opt@1e21" in capsys.readouterr().out


def test_every_fitting_subcommand_reads_a_csv(tables, tmp_path, capsys):
    # chinchilla reads Epoch's CSV in test_chinchilla_on_reference_csv (and the README's command)
    final, curves = str(tables / "final.csv"), str(tables / "curves.csv")
    common = ["--bootstrap", "100", "--group-by", "arch"]
    assert (
        main(
            [
                "fit",
                "--csv",
                final,
                "--n-col",
                "N",
                "--d-col",
                "D",
                "--x",
                "tokens",
                "--collapse-seeds",
                "--pure",
                *common,
                "--out",
                str(tmp_path / "f"),
            ]
        )
        == 0
    )
    fitted = pd.read_csv(tmp_path / "f" / "points.csv")
    assert len(fitted) == 45 and (fitted["n_seeds"] == 3).all()  # 5 budgets x 9 sizes, 3 seeds
    law = json.loads((tmp_path / "f" / "fit_tokens.json").read_text())["groups"]["t"]["formula"]
    assert re.fullmatch(r"L = [0-9.e+]+ tokens\^-[0-9.]+", law)  # A x^-alpha, no E term
    assert (
        main(
            [
                "isoflop",
                "--csv",
                final,
                "--n-col",
                "N",
                "--d-col",
                "D",
                "--collapse-seeds",
                *common,
                "--out",
                str(tmp_path / "i"),
            ]
        )
        == 0
    )
    iso = json.loads((tmp_path / "i" / "isoflop.json").read_text())["groups"]["t"]
    assert iso["a"] == pytest.approx(LAW.a, abs=0.02)
    assert iso["intervals"]["resampled"] == "seeds within cells"
    assert (
        main(
            [
                "compare",
                "--csv",
                curves,
                "--run-col",
                "run",
                "--n-col",
                "N",
                "--c-col",
                "C",
                "--t-col",
                "sec",
                *common,
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    assert {"equal_flops.csv", "equal_tokens.csv", "equal_wall_clock.csv"} <= {
        p.name for p in (tmp_path / "c").iterdir()
    }
    assert (
        main(
            [
                "isoflop",
                "--csv",
                curves,
                "--run-col",
                "run",
                "--n-col",
                "N",
                "--c-col",
                "C",
                "--from-curves",
                "--budgets",
                "1e18",
                "1e19",
                "1e20",
                "--bootstrap",
                "100",
                "--group-by",
                "seed",
                "--out",
                str(tmp_path / "ic"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "bootstrap over seeds within cells" in printed


def test_compare_names_a_variant_its_fitted_laws_leave_out(tables, tmp_path, capsys):
    # variant b: one run's last 3 evaluations, too few frontier points for a law; the winners
    # by fitted law are then a's alone, and compare says so instead of crowning a silently
    curves = pd.read_csv(tables / "curves.csv")
    b = curves[curves["run"] == curves[curves["arch"] == "b"]["run"].iloc[0]].tail(3)
    pd.concat([curves[curves["arch"] == "a"], b]).to_csv(tmp_path / "c.csv", index=False)
    argv = ["compare", "--csv", str(tmp_path / "c.csv"), "--run-col", "run", "--n-col", "N"]
    argv += ["--c-col", "C", "--t-col", "sec", "--group-by", "arch", "--bootstrap", "100"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 0
    assert "skipped b: power-law fit: 3 usable points" in capsys.readouterr().out
    saved = json.loads((tmp_path / "o" / "compare.json").read_text())["fitted_law_winners"]
    for axis in ("flops", "wall_clock"):
        assert saved[axis]["fitted"] == ["a"] and list(saved[axis]["skipped"]) == ["b"]
        winners = pd.read_csv(tmp_path / "o" / f"winners_{axis}.csv")
        assert (winners["skipped"] == "b").all()


def test_weights_from_a_column(tables, tmp_path):
    df = pd.read_csv(tables / "final.csv")
    df["w"] = np.where(df["N"] < df["N"].median(), 0.0, 1.0)  # the smaller sizes left out
    df.to_csv(tmp_path / "weighted.csv", index=False)
    df[df["w"] > 0].to_csv(tmp_path / "subset.csv", index=False)
    args = ["--n-col", "N", "--d-col", "D", "--x", "params", "--bootstrap", "0"]
    assert (
        main(
            [
                "fit",
                "--csv",
                str(tmp_path / "weighted.csv"),
                "--weight-col",
                "w",
                *args,
                "--out",
                str(tmp_path / "a"),
            ]
        )
        == 0
    )
    assert (
        main(["fit", "--csv", str(tmp_path / "subset.csv"), *args, "--out", str(tmp_path / "b")])
        == 0
    )
    weighted, subset = (
        pd.read_csv(tmp_path / d / "fit_params.csv").set_index("quantity") for d in ("a", "b")
    )
    assert weighted.loc["alpha", "estimate"] == pytest.approx(
        subset.loc["alpha", "estimate"], rel=1e-6
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["fit", "--y", "best_val_loss"],
            "--y does not apply to --csv input (name the loss with --loss-col)",
        ),
        (
            ["chinchilla", "--n", "params"],
            "--n does not apply to --csv input (name the N column with --n-col)",
        ),
        (["fit", "--sweep-id", "x"], "--sweep-id does not apply to --csv input"),
        (["fit", "--attach"], "--attach does not apply to --csv input"),
        (
            ["fit", "--tracking-uri", "sqlite:///x.db"],
            "--tracking-uri does not apply to --csv input",
        ),
        (
            ["chinchilla", "--d-col", "Model Size", "--c-col", "Training FLOP"],
            "--d-col and --c-col both given",
        ),
        (
            ["fit", "--n-col", "nope"],
            "has no column 'nope' (--n-col); columns: x, y, color, Model Size",
        ),
        (["fit", "--x", "wall_clock"], "--x wall_clock needs a wall-clock column (--t-col)"),
        (["compare"], "name the column that says which run each row belongs to with --run-col"),
        (
            ["isoflop", "--method", "akima", "--window", "2"],
            "--window and --margin apply to --method window",
        ),
        (["isoflop", "--budget", "x", "--budgets", "1e19"], "--budget names a column of budgets"),
        (
            ["fit", "--loss-col", "color"],
            "--loss-col 'color' must be a numeric column (it holds '#faebdd'); numeric columns: "
            "Model Size, Training FLOP, loss, x, y",
        ),
        (["chinchilla", "--loss-col", "color"], "--loss-col 'color' must be a numeric column"),
        # the reference table has no seed column: --collapse-seeds cannot collapse anything
        (["fit", "--collapse-seeds"], "unknown column for --seed-column 'seed'"),
    ],
)
def test_options_that_do_not_apply_to_a_csv_are_refused(args, message, capsys, tmp_path):
    assert (
        main([*args[:1], "--csv", str(REFERENCE), "--out", str(tmp_path / "out"), *args[1:]]) == 2
    )
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # a failed command leaves no output folder


def test_csv_options_without_a_csv_are_refused(store, capsys):
    assert _run(store, "fit", "--n-col", "N") == 2
    assert "--n-col applies only to --csv input" in capsys.readouterr().err


def test_outside_a_launch_directory_nothing_is_created(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["fit"]) == 2
    err = capsys.readouterr().err
    assert f"no MLflow store at {tmp_path / 'mlflow.db'}" in err
    assert "--tracking-uri sqlite:///<launch dir>/mlflow.db" in err and "--csv FILE" in err
    assert list(tmp_path.iterdir()) == []  # neither mlflow.db nor analysis_out/


def test_failed_resamples_and_implausible_values_are_shown(tmp_path, capsys):
    # an IsoFLOP grid whose optimum shrinks as compute grows (the budgets relabelled in reverse):
    # a < 0 is flagged; with 5 sizes per budget some resamples keep fewer than 3 distinct ones
    # and find no minimum there, counted per quantity
    budgets = np.geomspace(1e18, 1e20, 4)
    sweep = isoflop_sweep(LAW, budgets, sizes=5, decades=1.0, noise=0.001)
    sweep["compute"] = sweep["compute"].map(dict(zip(budgets, budgets[::-1])))
    sweep = sweep.assign(D=sweep["compute"] / (6 * sweep["n"]))
    sweep.to_csv(tmp_path / "odd.csv", index=False)
    assert (
        main(
            [
                "isoflop",
                "--csv",
                str(tmp_path / "odd.csv"),
                "--n-col",
                "n",
                "--d-col",
                "D",
                "--bootstrap",
                "100",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "is outside [0, 1]: implausible" in printed
    assert "resamples failed)" in printed


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "--experiment", "nope"], "unknown experiment 'nope'; valid: Default, demo"),
        (["fit", "--group-by", "model.nme"], "unknown column for --group-by 'model.nme'; valid: "),
        (["fit", "--sweep-id", "zz"], "'zz'; valid: sw"),
        (["isoflop", "--budget", "budget.nope"], "unknown column for --budget 'budget.nope'"),
        (
            ["fit", "--x", "params", "--group-by", "model.size"],
            "1 distinct x values, need at least 3",
        ),
        (
            ["fit", "--x", "params", "--group-by", "fingerprint"],
            "1 usable points (finite, positive), need at least 4",
        ),
        (["fit", "--y", "model.name"], "--y 'model.name' must be a numeric column (it holds "),
        (["compare", "--metric", "nope"], "unknown --metric (no loaded run logged it) 'nope'"),
        (
            ["fit", "--x", "params", "--collapse-seeds", "--seed-column", "sed"],
            "unknown column for --seed-column 'sed'; valid: ",
        ),
        # misspelt, compare would take every seed for a configuration of its own
        (["compare", "--seed-column", "sed"], "unknown column for --seed-column 'sed'; valid: "),
        # the frontier on FLOPs and compare read whole curves: the point options are refused
        (
            ["fit", "--x", "flops", "--frontier", "--min-over", "optim.lr"],
            "--min-over: options for the runs' final points; fit --frontier --x flops reads",
        ),
        (
            ["compare", "--collapse-seeds", "--drop-highest", "2"],
            "--collapse-seeds, --drop-highest: options for the runs' final points; compare reads",
        ),
    ],
)
def test_bad_input_is_one_clear_line(store, args, message, capsys, tmp_path):
    uri, _ = store
    assert (
        main(
            [
                *args[:1],
                "--tracking-uri",
                uri,
                "--bootstrap",
                "100",
                "--out",
                str(tmp_path),
                *(["--experiment", "demo"] if "--experiment" not in args else []),
                *args[1:],
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_module_entry_point_has_no_traceback(store):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "analysis",
            "fit",
            "--tracking-uri",
            store[0],
            "--experiment",
            "nope",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown experiment 'nope'")
    assert "Traceback" not in proc.stderr
