"""``python -m analysis ... --csv FILE`` on bad tables: one line naming the file or column, the bad
values and their rows, before anything is fitted; and a curve's rows read in training order."""

import numpy as np
import pandas as pd
import pytest

from analysis.chinchilla import ChinchillaFit
from analysis.cli import main

LAW = ChinchillaFit.given(1.69, 406.4, 410.7, 0.34, 0.28)
SIZES = np.geomspace(1e7, 1e9, 6)


def _refused(argv, out, capsys) -> str:
    """Runs the CLI, which must refuse with one line on stderr and write nothing; that line."""
    assert main([*argv, "--bootstrap", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not out.exists()
    return err


def _final(groups=("a", "b")) -> pd.DataFrame:
    """One row per run: N, D (20 tokens per parameter), loss on the law, group g, weight w."""
    return pd.DataFrame(
        [
            {"g": g, "N": n, "D": 20 * n, "loss": LAW.predict(n, 20 * n) + 0.01 * i, "w": 1.0}
            for i, g in enumerate(groups)
            for n in SIZES
        ]
    )


@pytest.mark.parametrize(
    "text, says",
    [("", "has no rows: the file is empty"), ("N,D,loss\n", "has no rows: only a header")],
)
def test_a_file_without_rows_is_refused(text, says, tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text(text)
    argv = ["fit", "--csv", str(path), "--n-col", "N", "--x", "params"]
    err = _refused(argv, tmp_path / "o", capsys)
    assert f"--csv {str(path)!r} {says}" in err


def test_values_that_are_not_numbers_are_refused_with_their_rows(tmp_path, capsys):
    df = _final(groups=("a",)).astype({"N": object})
    df.loc[[1, 3], "N"] = ["70M", "160M"]  # a partly bad column would quietly lose these rows
    df.to_csv(tmp_path / "t.csv", index=False)
    argv = ["fit", "--csv", str(tmp_path / "t.csv"), "--n-col", "N", "--d-col", "D"]
    err = _refused([*argv, "--x", "params"], tmp_path / "o", capsys)
    assert (
        "--n-col 'N' must hold numbers (an empty cell is a missing value); "
        "not numbers: row 2: '70M', row 4: '160M'"
    ) in err
    # wholly bad, as isoflop sees it: the first three named, the rest counted
    pd.DataFrame({"N": ["70M", "160M", "410M", "1B"], "C": 1e18, "loss": 3.0}).to_csv(
        tmp_path / "s.csv", index=False
    )
    err = _refused(
        ["isoflop", "--csv", str(tmp_path / "s.csv"), "--n-col", "N"], tmp_path / "o", capsys
    )
    assert "not numbers: row 1: '70M', row 2: '160M', row 3: '410M' and 1 more" in err
    # an empty cell is a missing value, not a bad one: that row is left to the fit
    df = _final(groups=("a",))
    df.loc[len(df)] = {"g": "a", "N": np.nan, "D": 1e9, "loss": 3.0, "w": 1.0}
    df.to_csv(tmp_path / "m.csv", index=False)
    argv = ["fit", "--csv", str(tmp_path / "m.csv"), "--n-col", "N", "--d-col", "D"]
    assert main([*argv, "--x", "params", "--bootstrap", "0", "--out", str(tmp_path / "m")]) == 0


@pytest.mark.parametrize("bad, shown", [(-1.0, "-1.0"), (np.nan, "nan")])
def test_a_bad_weight_is_refused_before_any_group_is_fitted(bad, shown, tmp_path, capsys):
    # before: group a skipped ("weights must be finite and >= 0"), b declared the winner, exit 0
    df = _final()
    df.loc[3, "w"] = bad
    df.to_csv(tmp_path / "t.csv", index=False)
    argv = ["fit", "--csv", str(tmp_path / "t.csv"), "--n-col", "N", "--d-col", "D"]
    err = _refused(
        [*argv, "--group-by", "g", "--weight-col", "w", "--x", "params"], tmp_path / "o", capsys
    )
    assert "--weight-col 'w' must be finite and >= 0 on every row" in err
    assert f"invalid: row 4: {shown} (rows numbered from 1 after the header" in err


def test_a_runs_result_is_its_last_row_in_training_order_not_file_order(tmp_path, capsys):
    rows = [
        {"run": f"r{i}", "N": n, "D": d, "loss": LAW.predict(n, d) + 0.002 * (i % 3)}
        for i, n in enumerate(SIZES)
        for d in 20 * n * np.array([0.1, 0.3, 1.0])
    ]
    ordered = pd.DataFrame(rows)
    ordered.to_csv(tmp_path / "ordered.csv", index=False)
    ordered.sample(frac=1, random_state=1).to_csv(tmp_path / "shuffled.csv", index=False)
    alpha, points = {}, {}
    for name in ("ordered", "shuffled"):
        argv = ["fit", "--csv", str(tmp_path / f"{name}.csv"), "--run-col", "run", "--n-col", "N"]
        out = tmp_path / f"o_{name}"
        assert (
            main([*argv, "--d-col", "D", "--x", "params", "--bootstrap", "0", "--out", str(out)])
            == 0
        )
        fitted = pd.read_csv(out / "fit_params.csv").set_index("quantity")
        alpha[name] = fitted.loc["alpha", "estimate"]
        points[name] = pd.read_csv(out / "points.csv")
    assert alpha["shuffled"] == pytest.approx(alpha["ordered"], rel=1e-6)
    for name in points:  # each run's point is its largest D, wherever it is in the file
        assert np.allclose(points[name]["tokens"], 20 * points[name]["params_total"])
