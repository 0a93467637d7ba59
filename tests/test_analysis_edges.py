"""Regressions from an audit of ``python -m analysis`` on a real sweep (2 architectures x 4
sizes x 3 token budgets x 2 seeds): each test runs the command a user runs, on that sweep's
final losses (``AUDIT_RUNS``, as exported to CSV) or on realistic synthetic stores and tables."""

import io
import json
import sqlite3
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.bootstrap import Intervals
from analysis.chinchilla import ChinchillaFit
from analysis.cli import main
from analysis.curves import curve_points
from analysis.errors import AnalysisError
from analysis.plausibility import implausible
from analysis.powerlaw import PowerLawFit
from analysis.synthetic import isoflop_sweep
from analysis.table import Columns, read_table
from tests.fake_store import demo_store
from trainer import schema

# the audit sweep's runs: N parameters, tokens trained, final val loss, per architecture
AUDIT_RUNS = """\
arch,N,seed,budget.tokens,tokens,loss
mixer,80320.0,1,200000,200192.0,2.147510290145874
mixer,39914.0,1,200000,200192.0,2.2380478382110596
mixer,20200.0,1,200000,200192.0,2.2836756706237793
mixer,10034.0,1,200000,200192.0,2.457293748855591
mixer,80320.0,1,100000,100096.0,2.4399709701538086
mixer,39914.0,1,100000,100096.0,2.5281660556793213
mixer,20200.0,1,100000,100096.0,2.5935158729553223
mixer,10034.0,1,100000,100096.0,2.6622977256774902
mixer,80320.0,1,50000,50176.0,2.6435704231262207
mixer,39914.0,1,50000,50176.0,2.677630662918091
mixer,20200.0,1,50000,50176.0,2.748095989227295
mixer,10034.0,1,50000,50176.0,2.8718698024749756
transformer,79352.0,1,200000,200192.0,2.586404800415039
transformer,39960.0,1,200000,200192.0,2.56705379486084
transformer,20016.0,1,200000,200192.0,2.3949482440948486
transformer,10016.0,1,200000,200192.0,2.4943156242370605
transformer,79352.0,1,100000,100096.0,2.6996896266937256
transformer,39960.0,1,100000,100096.0,2.802546739578247
transformer,20016.0,1,100000,100096.0,2.7047905921936035
transformer,10016.0,1,100000,100096.0,2.634392738342285
transformer,79352.0,1,50000,50176.0,3.051548957824707
transformer,39960.0,1,50000,50176.0,2.9080348014831543
transformer,20016.0,1,50000,50176.0,2.949843168258667
transformer,10016.0,1,50000,50176.0,3.0982067584991455
mixer,80320.0,0,200000,200192.0,2.183055877685547
mixer,39914.0,0,200000,200192.0,2.202565908432007
mixer,20200.0,0,200000,200192.0,2.302964687347412
mixer,10034.0,0,200000,200192.0,2.560683488845825
mixer,80320.0,0,100000,100096.0,2.3540966510772705
mixer,39914.0,0,100000,100096.0,2.5396440029144287
mixer,20200.0,0,100000,100096.0,2.614983320236206
mixer,10034.0,0,100000,100096.0,2.6590819358825684
mixer,80320.0,0,50000,50176.0,2.634003162384033
mixer,39914.0,0,50000,50176.0,2.647625207901001
mixer,20200.0,0,50000,50176.0,2.7303431034088135
mixer,10034.0,0,50000,50176.0,2.879851818084717
transformer,79352.0,0,200000,200192.0,2.5849575996398926
transformer,39960.0,0,200000,200192.0,2.576645851135254
transformer,20016.0,0,200000,200192.0,2.467323064804077
transformer,10016.0,0,200000,200192.0,2.4665441513061523
transformer,79352.0,0,100000,100096.0,2.7775206565856934
transformer,39960.0,0,100000,100096.0,2.7562851905822754
transformer,20016.0,0,100000,100096.0,2.662811517715454
transformer,10016.0,0,100000,100096.0,2.647049903869629
transformer,79352.0,0,50000,50176.0,2.8801136016845703
transformer,39960.0,0,50000,50176.0,2.9307353496551514
transformer,20016.0,0,50000,50176.0,3.0528831481933594
transformer,10016.0,0,50000,50176.0,3.1204164028167725
"""
LAW = ChinchillaFit.given(1.69, 406.4, 410.7, 0.34, 0.28)


@pytest.fixture
def runs_csv(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text(AUDIT_RUNS)
    return path


def _main(*argv):
    return main([str(a) for a in argv])


def _one_line_error(capsys, *fragments):
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


# --- 1, 4: the pure power law with an exponent near or below 0 ------------------------------


@pytest.mark.parametrize("alpha", [1e-3, 0.0])
def test_kaplan_x_c_overflowing_is_inf_not_a_crash(alpha):
    law = PowerLawFit(
        E=0.0, A=10.0, alpha=alpha, irreducible=False, objective=0, n_points=3, x_min=1, x_max=2
    )
    assert law.estimates()["x_c"] == np.inf


def test_pure_fit_with_exponents_near_zero_runs_and_prints_their_sign(runs_csv, tmp_path, capsys):
    # per architecture and token budget some of the audit's L(N) are flat or rising: resamples
    # put alpha near 0, where x_c = A^(1/alpha) overflows
    argv = ["fit", "--csv", runs_csv, "--n-col", "N", "--d-col", "tokens", "--x", "params"]
    argv += ["--group-by", "arch,budget.tokens", "--pure", "--out", tmp_path / "o"]
    assert _main(*argv) == 0
    printed = capsys.readouterr().out
    saved = json.loads((tmp_path / "o" / "fit_params.json").read_text())
    formulas = {g: v["formula"] for g, v in saved["groups"].items()}
    alphas = {
        g: v["intervals"]["quantities"]["alpha"]["estimate"] for g, v in saved["groups"].items()
    }
    assert min(alphas.values()) < 0 < max(alphas.values())
    for g, alpha in alphas.items():
        # L = A x^-alpha: the exponent printed is -alpha, one sign
        assert formulas[g].endswith(f"params_total^{-alpha:.3f}"), formulas[g]
        assert formulas[g] in printed
    assert "^--" not in printed


def test_formula_writes_the_exponent_with_one_sign():
    law = PowerLawFit(
        E=1.69, A=12.3, alpha=0.31, irreducible=True, objective=0, n_points=3, x_min=1, x_max=2
    )
    assert law.formula() == "L = 1.69 + 12.3 x^-0.310"
    rising = PowerLawFit(
        E=0.0, A=2.0, alpha=-0.038, irreducible=False, objective=0, n_points=3, x_min=1, x_max=2
    )
    assert rising.formula("N") == "L = 2 N^0.038"


# --- 2, 3: option values out of range; --drop-highest and diverged runs -----------------------


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["fit", "--drop-highest", "1000"], ["--drop-highest 1000", "valid: 0 to 47"]),
        (["fit", "--drop-highest", "-2"], ["--drop-highest -2", ">= 0"]),
        (["fit", "--bootstrap", "-5"], ["--bootstrap -5", "0 (no intervals) or >= 100"]),
        # 5 resamples gave E = 3.29578 the interval [3.29612, 3.30917]: refused, data unread
        (["fit", "--bootstrap", "5"], ["--bootstrap 5", "0 (no intervals) or >= 100"]),
        (["fit", "--bootstrap", "100", "--level", "0.99"], ["--bootstrap 100", ">= 500"]),
        (["fit", "--level", "1.5"], ["--level 1.5", "between 0 and 1"]),
        (["fit", "--level", "0"], ["--level 0", "between 0 and 1"]),
        (["chinchilla", "--compute"], ["--compute (no values)", "one or more budgets"]),
        (["chinchilla", "--compute", "0", "1e21"], ["--compute 0", "> 0"]),
        (["compare", "--points", "0"], ["--points 0", ">= 2"]),
        (["compare", "--points", "1"], ["--points 1", ">= 2"]),
    ],
)
def test_out_of_range_options_exit_2_with_one_line(runs_csv, tmp_path, capsys, argv, fragments):
    common = ["--csv", runs_csv, "--n-col", "N", "--d-col", "tokens", "--out", tmp_path / "o"]
    assert _main(*argv[:1], *common, *argv[1:]) == 2
    _one_line_error(capsys, *fragments)
    assert not (tmp_path / "o").exists()


def test_drop_highest_drops_the_highest_finite_losses_not_a_diverged_run(tmp_path):
    runs = pd.read_csv(io.StringIO(AUDIT_RUNS))
    runs = runs[(runs["arch"] == "mixer") & (runs["budget.tokens"] == 200000)]
    diverged = runs.iloc[[0]].assign(loss=np.nan, seed=2)
    pd.concat([runs, diverged]).to_csv(tmp_path / "runs.csv", index=False)
    argv = ["fit", "--csv", tmp_path / "runs.csv", "--n-col", "N", "--d-col", "tokens"]
    assert _main(*argv, "--x", "params", "--drop-highest", "2", "--out", tmp_path / "o") == 0
    kept = pd.read_csv(tmp_path / "o" / "points.csv")["loss"].dropna()
    expected = np.sort(runs["loss"].to_numpy())[:-2]
    np.testing.assert_allclose(np.sort(kept.to_numpy()), expected)


# --- 5, 8, 11: chinchilla with a negative exponent, an unidentified E, extrapolated budgets ---


def test_a_level_that_needs_more_resamples_than_the_default_takes_them(runs_csv, tmp_path, capsys):
    """--level 0.99 alone was refused ("--bootstrap 200: must be ... >= 500"), though the user
    never gave --bootstrap."""
    argv = ["fit", "--csv", runs_csv, "--n-col", "N", "--x", "params", "--level", "0.99"]
    assert _main(*argv, "--out", tmp_path / "o") == 0
    assert "n=500)" in capsys.readouterr().out


def test_chinchilla_on_the_audit_sweep_says_what_is_undefined(runs_csv, tmp_path, capsys):
    argv = ["chinchilla", "--csv", runs_csv, "--n-col", "N", "--d-col", "tokens"]
    argv += ["--group-by", "arch", "--bootstrap", "100", "--out", tmp_path / "o"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numpy warning may leak
        assert _main(*argv) == 0
    printed = capsys.readouterr().out
    saved = json.loads((tmp_path / "o" / "chinchilla.json").read_text())["groups"]
    # the Transformer's alpha comes out < 0: no frontier, said once and plainly
    transformer = saved["transformer"]["intervals"]
    assert transformer["quantities"]["alpha"]["estimate"] < 0
    assert (
        "the compute-optimal frontier (a, b, G, N_opt, D_opt) is undefined because alpha = "
        in printed
    )
    assert "is outside [-inf, inf]" not in printed and "G = nan" not in printed
    assert any("undefined because alpha" in line for line in transformer["implausible"])
    # the Mixer's E goes to ~0 (e^-30), where its gradient vanishes: refits from the full-data
    # optimum alone left it there (a zero-width interval), the cold start spreads it over
    # decades, and the span is flagged
    mixer = saved["mixer"]["intervals"]
    e = mixer["quantities"]["E"]
    assert e["estimate"] < 1e-6 and e["lo"] < 1e-6 and e["hi"] > 0.1
    assert any(line.startswith("the interval of E spans") for line in mixer["implausible"])
    assert "the interval of E spans" in printed
    # the default --compute 1e21 1e23 1e25 lies far above these runs (~1e10 FLOPs)
    assert saved["mixer"]["extrapolated_compute"] == ["1e21", "1e23", "1e25"]
    assert "extrapolated: N_opt, D_opt at C = 1e21, 1e23, 1e25" in printed
    table = pd.read_csv(tmp_path / "o" / "chinchilla.csv")
    assert set(table[table["extrapolated"]]["quantity"]) == {
        f"{q}_opt@{c}" for q in "ND" for c in ("1e21", "1e23", "1e25")
    }


# --- 6, 7: isoflop budgets per group, and a group that fails -------------------------------


def _curves(group: str, final_compute: float, sizes: np.ndarray) -> list[dict]:
    """Each size trained to ``final_compute``, its val loss evaluated at 10 points up to it."""
    rows = []
    for n in sizes:
        for frac in np.geomspace(0.1, 1.0, 10):
            d = final_compute * frac / (6 * n)
            rows.append(
                {
                    "run": f"{group}-{n:.3g}",
                    "arch": group,
                    "N": n,
                    "C": 6 * n * d,
                    "loss": float(LAW.predict(n, d)),
                }
            )
    return rows


def test_isoflop_from_curves_picks_budgets_per_group(tmp_path, capsys):
    # two groups whose curves cover FLOP ranges three decades apart: pooled, the 6 default
    # budgets would span both and leave each group 2; per group, each gets 6 inside its range
    small = np.geomspace(LAW.n_opt(3e16) / 10, LAW.n_opt(3e16) * 10, 7)
    large = np.geomspace(LAW.n_opt(3e19) / 10, LAW.n_opt(3e19) * 10, 7)
    rows = _curves("small", 1e17, small) + _curves("large", 1e20, large)
    pd.DataFrame(rows).to_csv(tmp_path / "curves.csv", index=False)
    argv = ["isoflop", "--csv", tmp_path / "curves.csv", "--run-col", "run", "--n-col", "N"]
    argv += ["--c-col", "C", "--group-by", "arch", "--from-curves", "--bootstrap", "100"]
    assert _main(*argv, "--out", tmp_path / "o") == 0
    budgets = pd.read_csv(tmp_path / "o" / "isoflop_budgets.csv")
    for group, top in (("small", 1e17), ("large", 1e20)):
        mine = budgets[budgets["group"] == group]
        assert len(mine) == 6, mine
        assert (mine["compute"] <= top * 1.001).all() and (mine["compute"] >= top / 10.01).all()
        assert (mine["status"] != "too_few").all()


def test_isoflop_skips_a_group_that_cannot_be_fitted_and_writes_the_rest(tmp_path, capsys):
    budgets = np.geomspace(1e18, 1e20, 4)
    good = isoflop_sweep(LAW, budgets, sizes=7, decades=2.0, noise=0.002).assign(arch="good")
    # two sizes per budget: no budget has a minimum to find
    thin = isoflop_sweep(LAW, budgets, sizes=2, decades=1.0, noise=0.002).assign(arch="thin")
    table = pd.concat([good, thin])
    table = table.assign(D=table["compute"] / (6 * table["n"]))
    table.to_csv(tmp_path / "t.csv", index=False)
    argv = ["isoflop", "--csv", tmp_path / "t.csv", "--n-col", "n", "--d-col", "D"]
    argv += ["--group-by", "arch", "--bootstrap", "100", "--out", tmp_path / "o"]
    assert _main(*argv) == 0
    printed = capsys.readouterr().out
    assert "good: N_opt = k C^a" in printed and "skipped thin: " in printed
    saved = json.loads((tmp_path / "o" / "isoflop.json").read_text())
    assert list(saved["groups"]) == ["good"] and list(saved["skipped"]) == ["thin"]
    for name in ("isoflop_budgets.csv", "frontier.png", "isoflop_good.png"):
        assert (tmp_path / "o" / name).exists()
    # with no group left it is an error, naming why
    thin.assign(D=thin["compute"] / (6 * thin["n"])).to_csv(tmp_path / "thin.csv", index=False)
    argv[2] = tmp_path / "thin.csv"
    capsys.readouterr()
    assert _main(*argv[:-2], "--out", tmp_path / "q") == 2
    _one_line_error(capsys, "no group could be fitted", "group 'thin'")


# --- 9, 10: the store and the sweep to attach to -------------------------------------------


def test_a_store_path_without_sqlite_scheme_says_what_to_pass(tmp_path, capsys):
    db = tmp_path / "mlflow.db"
    sqlite3.connect(db).close()
    assert _main("fit", "--tracking-uri", db, "--out", tmp_path / "o") == 2
    _one_line_error(capsys, f"pass --tracking-uri sqlite:///{db}")


def test_attach_without_sweep_id_on_two_sweeps_fails_before_fitting(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    for sweep in ("one", "two"):
        demo_store(uri, experiment="e", sweep_id=sweep, budgets=(1e15,), sizes=(4e6, 8e6, 1.6e7))
    capsys.readouterr()
    argv = ["fit", "--tracking-uri", uri, "--experiment", "e", "--x", "params", "--attach"]
    assert _main(*argv, "--bootstrap", "100", "--out", tmp_path / "o") == 2
    _one_line_error(capsys, "runs belong to 2 sweeps; pick one with --sweep-id")
    assert not (tmp_path / "o").exists()


def test_chinchilla_skips_a_group_that_cannot_be_fitted_and_writes_the_rest(
    runs_csv, tmp_path, capsys
):
    table = pd.read_csv(runs_csv)
    thin = table[table["arch"] == "mixer"].head(3).assign(arch="thin")  # 3 points, 5 parameters
    pd.concat([table, thin]).to_csv(tmp_path / "t.csv", index=False)
    argv = ["chinchilla", "--csv", tmp_path / "t.csv", "--n-col", "N", "--d-col", "tokens"]
    argv += ["--group-by", "arch", "--bootstrap", "100", "--out", tmp_path / "o"]
    assert _main(*argv) == 0  # was exit 2 for all, after the first groups were printed
    assert "skipped thin: " in capsys.readouterr().out
    saved = json.loads((tmp_path / "o" / "chinchilla.json").read_text())
    assert sorted(saved["groups"]) == ["mixer", "transformer"] and list(saved["skipped"]) == [
        "thin"
    ]


def test_isoflop_says_which_n_opt_lies_past_its_grid(tmp_path, capsys):
    # the last budget trained only sizes above its optimum: the window's parabola puts the
    # vertex below the smallest size, which the console and isoflop_budgets.csv call a guess
    budgets = np.geomspace(1e18, 1e20, 4)
    sweep = isoflop_sweep(LAW, budgets, sizes=9, decades=2.0, noise=0.0)
    last = sweep["budget"] == sweep["budget"].iloc[-1]
    sweep = sweep[~last | (sweep["n"] > LAW.n_opt(budgets[-1]) * 1.1)]
    sweep.assign(D=sweep["compute"] / (6 * sweep["n"])).to_csv(tmp_path / "t.csv", index=False)
    argv = ["isoflop", "--csv", tmp_path / "t.csv", "--n-col", "n", "--d-col", "D"]
    argv += ["--method", "window", "--bootstrap", "0", "--out", tmp_path / "o"]
    assert _main(*argv) == 0
    warned = [line for line in capsys.readouterr().out.splitlines() if "(extrapolated)" in line]
    table = pd.read_csv(tmp_path / "o" / "isoflop_budgets.csv", dtype={"budget": str})
    outside = table[table["extrapolated"]]
    assert len(outside) == 1 and len(warned) == 1 and outside["budget"].iloc[0] in warned[0]
    assert outside["n_opt"].iloc[0] < sweep["n"][sweep["budget"] == outside["budget"].iloc[0]].min()


# --- a second audit: holdout reasons, auto budgets in coverage gaps, interval flags ---------


def test_a_fit_without_holdout_says_why(runs_csv, tmp_path, capsys):
    # L(tokens) over 3 token budgets: the fit below the largest has 2 distinct x, no law
    argv = ["fit", "--csv", runs_csv, "--n-col", "N", "--d-col", "tokens", "--x", "tokens"]
    assert _main(*argv, "--group-by", "arch", "--bootstrap", "100", "--out", tmp_path / "o") == 0
    printed = capsys.readouterr().out
    why = "the fit below the held-out 2e+05 failed: power-law fit: 2 distinct x values"
    assert printed.count(f"holdout: skipped: {why}") == 2
    saved = json.loads((tmp_path / "o" / "fit_tokens.json").read_text())["groups"]
    assert saved["mixer"]["holdout"] == {"skipped": f"{why}, need at least 3"}


def _curve_table(tmp_path, rows):
    pd.DataFrame(rows).to_csv(tmp_path / "curves.csv", index=False)
    return read_table(str(tmp_path / "curves.csv"), Columns(n="N", c="C", run="run"))


def test_automatic_budgets_from_curves_lie_where_3_sizes_overlap(tmp_path):
    # 3 small sizes trained to 1e17 FLOPs, 3 large ones to 1e19: 3 sizes overlap on
    # [1e16, 1e17] and on [1e18, 1e19], and no size spans the decade between
    small = _curves("g", 1e17, np.array([1e6, 2e6, 4e6]))
    large = _curves("g", 1e19, np.array([1e8, 2e8, 4e8]))
    exp = _curve_table(tmp_path, small + large)
    points = curve_points(exp.runs, exp.histories, None, schema.VAL_LOSS, "params_total")
    sizes = points.groupby("budget")["params_total"].nunique()
    assert len(sizes) == 6 and (sizes == 3).all(), sizes  # none in the gap


def test_curves_that_do_not_overlap_name_the_budgets_flag(tmp_path):
    rows = _curves("g", 1e15, np.array([1e6])) + _curves("g", 1e18, np.array([1e8]))
    exp = _curve_table(tmp_path, rows)
    with pytest.raises(AnalysisError, match=r"give budgets with --budgets C \[C \.\.\.\]"):
        curve_points(exp.runs, exp.histories, None, schema.VAL_LOSS, "params_total")


def _intervals(**row):
    table = pd.DataFrame([{"failed": 0, **row}], index=pd.Index(["q"], name="quantity"))
    return Intervals(table=table, level=0.95, n_resamples=200, seed=0)


def test_an_interval_far_narrower_than_its_se_is_not_identified():
    # the audit's mixer frontier fit: E = 0.00024 [0.00024026, 0.00024032] with se 1.9e-5;
    # refits from cold starts put E anywhere from 2e-4 to 1.79
    stuck = _intervals(estimate=0.00024029, lo=0.00024026, hi=0.00024032, se=1.9e-5)
    assert any("q = 0.0002403 is not identified" in line for line in implausible(stuck))
    spread = _intervals(estimate=2.9, lo=2.59, hi=2.97, se=0.1)  # about 4 se wide
    assert implausible(spread) == []


def test_a_zero_width_interval_is_not_identified():
    # every resample's lowest refit was the warm one, left where it started
    stuck = _intervals(estimate=4.9e-14, lo=4.9e-14, hi=4.9e-14, se=0.0)
    assert any("no resample moved it" in line for line in implausible(stuck))


def test_a_zero_or_narrow_width_is_precision_when_the_law_fits_every_point():
    # noise-free points: every resample refits to the same optimum (zero width), and the few
    # with too few distinct points to fix the law land elsewhere (a large se)
    fits = dict(estimate=2.0, lo=2.0, hi=2.0, failed=0)
    table = pd.DataFrame([fits, {**fits, "se": 0.11}], index=pd.Index(["E", "A"], name="q"))
    table.loc["E", "se"] = 3e-13
    exact = Intervals(table=table, level=0.95, n_resamples=200, seed=0, misfit=1e-8)
    assert implausible(exact) == []
    measured = Intervals(table=table, level=0.95, n_resamples=200, seed=0, misfit=0.03)
    lines = implausible(measured)
    assert len(lines) == 2 and all("is not identified" in line for line in lines)


def _fit_csv(tmp_path, capsys, frame, *argv):
    frame.to_csv(tmp_path / "points.csv", index=False)
    assert _main(argv[0], "--csv", tmp_path / "points.csv", *argv[1:], "--out", tmp_path / "o") == 0
    return capsys.readouterr().out


def test_an_exact_chinchilla_law_is_not_flagged_as_unidentified(tmp_path, capsys):
    # Hoffmann et al.'s law without noise: every resample refitted to the same optimum and
    # E = 1.69 [1.69, 1.69] (se 3e-10), beta, a and b were flagged "no resample moved it"
    n, d = np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e9, 1e11, 5))
    loss = 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28
    frame = pd.DataFrame({"N": n.ravel(), "D": d.ravel(), "loss": loss.ravel()})
    printed = _fit_csv(
        tmp_path, capsys, frame, "chinchilla", "--n-col", "N", "--d-col", "D", "--bootstrap", "100"
    )
    saved = json.loads((tmp_path / "o" / "chinchilla.json").read_text())["groups"]["all"]
    e = saved["intervals"]["quantities"]["E"]
    assert e["lo"] == pytest.approx(1.69, rel=1e-8) and e["hi"] == pytest.approx(1.69, rel=1e-8)
    assert saved["intervals"]["implausible"] == []
    assert "not identified" not in printed and "warning" not in printed


def test_noisy_points_with_e_stuck_at_zero_are_still_flagged(tmp_path, capsys):
    # a law with E = -0.3 (losses 0.70 .. 2.21, 0.2% noise) fitted with E = e^e > 0: E goes to
    # 3e-13, far below the losses, where its gradient vanishes; A and alpha move, E does not
    rng = np.random.default_rng(1)
    n = np.geomspace(1e6, 1e10, 12)
    loss = (-0.3 + 10 * n**-0.1) * np.exp(0.002 * rng.standard_normal(n.size))
    frame = pd.DataFrame({"N": n, "loss": loss})
    printed = _fit_csv(
        tmp_path, capsys, frame, "fit", "--n-col", "N", "--x", "params", "--bootstrap", "100"
    )
    assert "warning: E = 2.706e-13 is not identified: no resample moved it" in printed
    assert "warning: A" not in printed and "warning: alpha" not in printed


def test_a_huge_interval_span_is_counted_without_overflow():
    # the audit's k of N_opt = k C^a with --from-curves: hi / lo overflows a float
    wide = _intervals(estimate=1.0, lo=1e-13, hi=1e300, se=1e299)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lines = implausible(wide)
    assert "the interval of q spans 313.0 orders of magnitude" in lines[0]
