"""``python -m analysis {fit,compare,isoflop,chinchilla}``: scaling-law fits of an lmsweep experiment.

Every subcommand prints its results, writes CSV/JSON and PNGs into --out, and with --attach logs
them as artifacts of the sweep's parent MLflow run. Bad input exits 2 with one line naming the
bad value and the valid ones.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from analysis import plots
from analysis.chinchilla import HOFFMANN_2022_PARAMS, bootstrap_chinchilla, fit_chinchilla, objective_at
from analysis.collapse import check_columns, collapse_seeds, config_columns, min_over
from analysis.compare import COMPARE_AXES, compare_at_equal, history_frontier, pareto_front, winners_from_fits
from analysis.errors import AnalysisError
from analysis.groups import GroupFits, budget_bins, fit_groups, labels
from analysis.holdout import extrapolation_check
from analysis.isoflop import bootstrap_isoflop, fit_isoflop, frontier_predict
from analysis.lse import usable
from analysis.load import AXES, X_AXES, Experiment, load_experiment
from analysis.outputs import Output, attach, format_intervals, intervals_json
from trainer import schema

DEFAULT_URI = "sqlite:///mlflow.db"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.command(args)
    except (AnalysisError, MlflowException) as err:
        print(f"error: {getattr(err, 'message', err)}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, run, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(command=run, name=name)
        p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI),
                       help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or %(default)s)")
        p.add_argument("--experiment", default="lmsweep", help="experiment name or id (default: %(default)s)")
        p.add_argument("--sweep-id", help="only the runs of this sweep")
        p.add_argument("--group-by", action="append", default=[], metavar="COL[,COL]",
                       help="param columns that define a group, e.g. model.name (repeatable)")
        p.add_argument("--y", default=schema.FINAL_VAL_LOSS, help="loss column (default: %(default)s)")
        p.add_argument("--collapse-seeds", action="store_true", help="average seeds (mean, sem) per config")
        p.add_argument("--seed-column", default="seed", help="param that holds the seed (default: %(default)s)")
        p.add_argument("--min-over", metavar="COL", help="keep the best value of this param per cell, e.g. optim.lr")
        p.add_argument("--attach", action="store_true", help="log the outputs as artifacts of the sweep's parent run")
        p.add_argument("--out", default="analysis_out", help="output directory (default: %(default)s)")
        p.add_argument("--bootstrap", type=int, default=200, metavar="N", help="bootstrap resamples (default: %(default)s)")
        p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
        p.add_argument("--level", type=float, default=0.95, help="interval level (default: %(default)s)")
        return p

    p = command("fit", cmd_fit, "saturating power law L = E + A x^-alpha per group")
    p.add_argument("--x", choices=X_AXES, default="flops", help="x axis (default: %(default)s)")
    p.add_argument("--pure", action="store_true", help="fit A x^-alpha (E = 0, Kaplan et al. 2020)")
    p.add_argument("--frontier", action="store_true", help="fit only each group's Pareto frontier in x")

    p = command("compare", cmd_compare, "loss at equal wall-clock / tokens / FLOPs per variant, "
                "and winners from fitted frontier laws")
    p.add_argument("--axes", nargs="+", choices=COMPARE_AXES, default=list(COMPARE_AXES))
    p.add_argument("--metric", default=schema.VAL_LOSS, help="history metric (default: %(default)s)")
    p.add_argument("--points", type=int, default=8, help="grid points on the common range (default: %(default)s)")

    p = command("isoflop", cmd_isoflop, "Chinchilla Approach 2: IsoFLOP parabolas and N_opt = k C^a per group")
    p.add_argument("--budget", help="column naming each run's compute budget (default: the run's FLOPs "
                   "to 0.1 decade)")
    p.add_argument("--n", choices=["params", "non_embedding_params"], default="params")

    p = command("chinchilla", cmd_chinchilla, "Chinchilla Approach 3: L(N, D) = E + A/N^alpha + B/D^beta "
                "on runs, or on a CSV with --csv")
    p.add_argument("--n", choices=["params", "non_embedding_params"], default="params")
    p.add_argument("--csv", help="fit this CSV instead of runs (e.g. Epoch's extraction of Hoffmann et al. Fig. 4)")
    p.add_argument("--n-col", default="Model Size", help="CSV column of N (default: %(default)s)")
    p.add_argument("--d-col", help="CSV column of D (default: C / (6 N) from --c-col)")
    p.add_argument("--c-col", default="Training FLOP", help="CSV column of C (default: %(default)s)")
    p.add_argument("--loss-col", default="loss", help="CSV column of the loss (default: %(default)s)")
    p.add_argument("--drop-highest", type=int, default=0, metavar="K",
                   help="drop the K highest-loss points (Besiroglu et al. drop 5)")
    p.add_argument("--compute", type=float, nargs="*", default=[1e21, 1e23, 1e25],
                   help="budgets at which to report N_opt, D_opt (default: %(default)s)")
    return parser


# --- data ----------------------------------------------------------------------------------

def _group_by(args: argparse.Namespace) -> list[str]:
    return [c for arg in args.group_by for c in arg.split(",") if c]


def _points(args: argparse.Namespace, metrics: Sequence[str] | None = None) -> tuple[Experiment, pd.DataFrame]:
    """The experiment and its runs table, collapsed over seeds / a swept param on request."""
    exp = load_experiment(args.tracking_uri, args.experiment, sweep_id=args.sweep_id, metrics=metrics)
    check_columns(exp.runs, _group_by(args), "--group-by")
    check_columns(exp.runs, [args.y], "--y")
    points = exp.runs
    if args.collapse_seeds:
        points = collapse_seeds(points, config_columns(exp.param_columns, [args.seed_column]), value=args.y)
    if args.min_over:
        # without --collapse-seeds each seed is its own cell
        exclude = [args.min_over, args.seed_column] if args.collapse_seeds else [args.min_over]
        points = min_over(points, args.min_over, config_columns(exp.param_columns, exclude), value=args.y)
        edge = points[points[f"{args.min_over}_at_edge"] & (points[f"n_{args.min_over}"] > 1)]
        if len(edge):
            print(f"warning: for {len(edge)} cells the best {args.min_over} is the smallest or largest tried")
    return exp, points


def _finish(args: argparse.Namespace, out: Output, exp: Experiment | None) -> None:
    if exp is not None and args.attach:
        parent = exp.parent_run_id()
        attach(args.tracking_uri, parent, out, f"analysis/{args.name}")
        print(f"attached {len(out.written)} files to run {parent} under analysis/{args.name}/")
    print(f"wrote {len(out.written)} files to {out.dir}/: " + ", ".join(p.name for p in out.written))


# --- subcommands ---------------------------------------------------------------------------

def _frontier(args: argparse.Namespace, exp: Experiment, points: pd.DataFrame, x: str,
              by: Sequence[str]) -> tuple[pd.DataFrame, str, list[str]]:
    """(points, y, group columns) of each group's efficient frontier in ``x``: the envelope of
    the val_loss curves for tokens / FLOPs / wall-clock, the best runs for parameter counts."""
    if x in AXES:
        if exp.histories.empty:
            exp = load_experiment(args.tracking_uri, args.experiment, sweep_id=args.sweep_id,
                                  metrics=[schema.VAL_LOSS])
        return history_frontier(exp.runs, exp.histories, x, labels(exp.runs, by)), schema.VAL_LOSS, ["group"]
    front = points.groupby(labels(points, by), group_keys=False).apply(lambda g: pareto_front(g, x, args.y))
    return front, args.y, list(by)


# A law in one count is read at a fixed value of the other: L(N) at one token budget, L(D) at one size.
_HELD_FIXED = {"params_total": schema.TOKENS, "params_non_embedding": schema.TOKENS,
               schema.TOKENS: "params_total"}


def _warn_pooled(points: pd.DataFrame, x: str, by: Sequence[str]) -> None:
    """Warn when a group pools runs that differ in the quantity an L(x) fit holds fixed, e.g.
    L(N) over runs of several token budgets: the fit then mixes several curves."""
    fixed = _HELD_FIXED.get(x)
    if fixed is None or fixed not in points:
        return
    for g, rows in points.groupby(labels(points, by), sort=True):
        values = np.unique(budget_bins(rows[fixed].to_numpy(float)))
        values = values[np.isfinite(values)]
        if values.size > 1:
            print(f"warning: group {g!r} pools runs at {values.size} values of {fixed} "
                  f"({', '.join(f'{v:.3g}' for v in values)}): its L({x}) mixes one curve per "
                  f"value; add the swept param to --group-by (e.g. budget.tokens or model.params) "
                  f"or fit --frontier")


def _winner_budgets(fits: GroupFits) -> np.ndarray:
    """Seven budgets from the smallest fitted x to 10x past the largest."""
    return np.geomspace(min(f.x_min for f in fits.fits.values()),
                        10 * max(f.x_max for f in fits.fits.values()), 7)


def cmd_fit(args: argparse.Namespace) -> None:
    exp, points = _points(args)
    x, y, by = X_AXES[args.x], args.y, _group_by(args)
    if args.frontier:
        points, y, by = _frontier(args, exp, points, x, by)
    else:
        _warn_pooled(points, x, by)
    fits = fit_groups(points, x, y, by, irreducible=not args.pure, n_resamples=args.bootstrap,
                      seed=args.seed, level=args.level)
    out = Output(args.out)
    out.csv("points.csv", points)
    out.csv(f"fit_{args.x}.csv", fits.table())
    winners = winners_from_fits(fits.fits, _winner_budgets(fits))
    out.csv(f"winners_{args.x}.csv", winners, index=True)
    out.json(f"fit_{args.x}.json", {
        "experiment": exp.name, "sweep_id": args.sweep_id, "x": x, "y": y, "group_by": by,
        "frontier": args.frontier, "law": "A x^-alpha" if args.pure else "E + A x^-alpha",
        "skipped": fits.skipped,
        "groups": {g: {"n_points": f.n_points, "objective": f.objective, "x_range": [f.x_min, f.x_max],
                       "intervals": intervals_json(fits.intervals[g]),
                       "holdout": fits.extrapolation[g].summary() if fits.extrapolation[g] else None}
                   for g, f in fits.fits.items()}})
    plots.plot_group_fits(points, labels(points, by), fits, out.path(f"fit_{args.x}.png"))
    for g, fit in fits.fits.items():
        held = fits.extrapolation[g]
        print(f"{g}: {y} = {'' if args.pure else 'E + '}A {x}^-alpha on {fit.n_points} points")
        print(format_intervals(fits.intervals[g]))
        if held:
            print(f"  holdout: fit below {held.threshold:.3g}, mean |rel. error| on the largest "
                  f"budget {held.mean_abs_rel_error:.3%}")
    for g, why in fits.skipped.items():
        print(f"skipped {g}: {why}")
    print(f"\nwinner by fitted law at {x}:\n{winners.to_string(float_format='%.4g')}")
    _finish(args, out, exp)


def cmd_compare(args: argparse.Namespace) -> None:
    exp, points = _points(args, metrics=sorted({args.metric, schema.VAL_LOSS}))
    variant = _group_by(args) or ["model.name"]
    check_columns(exp.runs, variant, "--group-by")
    cell = config_columns(exp.param_columns, [args.seed_column])
    out = Output(args.out)
    for axis in args.axes:
        res = compare_at_equal(exp.runs, exp.histories, COMPARE_AXES[axis], variant, cell,
                               metric=args.metric, n_points=args.points)
        out.csv(f"equal_{axis}.csv", res.table.join(res.sem.add_suffix("_sem")), index=True)
        plots.plot_curves(exp.runs, exp.histories, res.axis, labels(exp.runs, variant), args.metric,
                          out.path(f"curves_{axis}.png"), res.common_range)
        print(f"{args.metric} at equal {res.axis} (range every variant covers: "
              f"{res.common_range[0]:.4g} .. {res.common_range[1]:.4g}):")
        print(res.table.to_string(float_format="%.4f"))
        if res.excluded:
            print(f"  left out (diverged or < 2 finite points): {', '.join(res.excluded)}")
    # "which variant wins at compute C / wall-clock T": laws fitted to each variant's frontier
    for axis in ("flops", "wall_clock"):
        x = X_AXES[axis]
        front, y, by = _frontier(args, exp, points, x, variant)
        try:
            fits = fit_groups(front, x, y, by, n_resamples=args.bootstrap, seed=args.seed, level=args.level)
        except AnalysisError as err:
            print(f"no fitted-law winners on {x}: {err}")
            continue
        winners = winners_from_fits(fits.fits, _winner_budgets(fits))
        out.csv(f"winners_{axis}.csv", winners, index=True)
        out.csv(f"frontier_fit_{axis}.csv", fits.table())
        plots.plot_group_fits(front, labels(front, by), fits, out.path(f"frontier_fit_{axis}.png"))
        print(f"\nwinner by law fitted to each variant's frontier, at {x}:\n"
              f"{winners.to_string(float_format='%.4g')}")
    _finish(args, out, exp)


def cmd_isoflop(args: argparse.Namespace) -> None:
    exp, points = _points(args)
    if args.budget:
        check_columns(points, [args.budget], "--budget")
    points = points.assign(_budget=points[args.budget] if args.budget else
                           [f"{c:.2g}" for c in budget_bins(points[schema.FLOPS])])
    n_col, by = X_AXES[args.n], _group_by(args)
    out = Output(args.out)
    tables, summaries, laws, vertices = [], {}, {}, []
    for g, rows in points.groupby(labels(points, by), sort=True):
        arrays = (rows["_budget"].to_numpy(), rows[schema.FLOPS].to_numpy(float),
                  rows[n_col].to_numpy(float), rows[args.y].to_numpy(float))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = _in_group(g, fit_isoflop, *arrays)
        for w in caught:
            print(f"warning ({g}): {w.message}")
        intervals = bootstrap_isoflop(*arrays, fit, n_resamples=args.bootstrap, seed=args.seed, level=args.level)
        budgets = fit.budgets.dropna(subset=["n_opt"])
        try:
            held = extrapolation_check(budgets["compute"].to_numpy(), budgets["n_opt"].to_numpy(),
                                       lambda tr, te: frontier_predict(budgets["compute"].to_numpy(),
                                                                       budgets["n_opt"].to_numpy(), tr, te))
        except AnalysisError:
            held = None
        tables.append(fit.budgets.reset_index().assign(group=g))
        vertices.append(budgets.assign(group=g))
        laws[f"{g}: N_opt = {fit.coefficient:.3g} C^{fit.exponent:.3f}"] = fit.n_opt
        summaries[g] = {"a": fit.exponent, "k": fit.coefficient, "a_ols_stderr": fit.exponent_stderr,
                        "edge_budgets": list(fit.edge_budgets), "at_edge": fit.at_edge,
                        "intervals": intervals_json(intervals),
                        "holdout_n_opt": held.summary() if held else None}
        plots.plot_isoflop(arrays[0], arrays[2], arrays[3], fit, out.path(f"isoflop_{_safe(g)}.png"))
        print(f"{g}: N_opt = k C^a")
        print(format_intervals(intervals))
        if held:
            print(f"  holdout: N_opt at the largest budget predicted within {held.mean_abs_rel_error:.2%}")
    out.csv("isoflop_budgets.csv", pd.concat(tables, ignore_index=True))
    out.json("isoflop.json", {"experiment": exp.name, "sweep_id": args.sweep_id,
                              "budget": args.budget or "flops (0.1 decade bins)",
                              "n": n_col, "y": args.y, "groups": summaries})
    allv = pd.concat(vertices)
    plots.plot_frontier((allv["compute"].min(), allv["compute"].max() * 10), laws, out.path("frontier.png"),
                        points=allv.rename(columns={"n_opt": "n", "loss_opt": "loss"}))
    _finish(args, out, exp)


def cmd_chinchilla(args: argparse.Namespace) -> None:
    exp = None
    if args.csv:
        sets = {"csv": _csv_points(args)}
    else:
        exp, points = _points(args)
        n_col = X_AXES[args.n]
        sets = {g: (rows[n_col].to_numpy(float), rows[schema.TOKENS].to_numpy(float), rows[args.y].to_numpy(float))
                for g, rows in points.groupby(labels(points, _group_by(args)), sort=True)}
    out = Output(args.out)
    summaries, tables = {}, []
    for g, (n, d, loss) in sets.items():
        ok = usable(n, d, loss)   # diverged runs (NaN loss) stay out of the fit and the holdout
        n, d, loss = n[ok], d[ok], loss[ok]
        fit = _in_group(g, fit_chinchilla, n, d, loss)
        intervals = bootstrap_chinchilla(n, d, loss, fit, n_resamples=args.bootstrap, seed=args.seed,
                                         level=args.level, compute=tuple(args.compute))
        c = 6 * n * d
        try:
            held = extrapolation_check(c if args.csv else budget_bins(c), loss,
                                       lambda tr, te: fit_chinchilla(n[tr], d[tr], loss[tr]).predict(n[te], d[te]),
                                       holdout_frac=0.1 if args.csv else None)
        except AnalysisError:
            held = None
        hoffmann = objective_at(HOFFMANN_2022_PARAMS, n, d, loss)
        summaries[g] = {"objective": fit.objective, "objective_at_hoffmann_2022": hoffmann,
                        "n_points": fit.n_points, "n_starts": fit.n_starts, "n_converged": fit.n_converged,
                        "intervals": intervals_json(intervals), "holdout": held.summary() if held else None}
        tables.append(intervals.table.reset_index().assign(group=g))
        print(f"{g}: L = E + A/N^alpha + B/D^beta on {fit.n_points} points, "
              f"{fit.n_converged}/{fit.n_starts} starts converged")
        print(format_intervals(intervals))
        print(f"  objective {fit.objective:.7g} (at Hoffmann et al. 2022's parameters: {hoffmann:.7g})")
        if held:
            print(f"  holdout: fit below C = {held.threshold:.3g}, mean |rel. error| above it "
                  f"{held.mean_abs_rel_error:.3%}")
        plots.plot_frontier((c.min(), max(c.max(), *args.compute)),
                            {f"{g}: N_opt = {fit.G:.3g} (C/6)^{fit.a:.3f}": fit.n_opt},
                            out.path(f"frontier_{_safe(g)}.png"),
                            points=pd.DataFrame({"compute": c, "n": n, "loss": loss}),
                            intervals=_nopt_intervals(intervals.table, args.compute))
    out.csv("chinchilla.csv", pd.concat(tables, ignore_index=True))
    out.json("chinchilla.json", {"source": args.csv or exp.name, "groups": summaries})
    _finish(args, out, exp)


def _in_group(group: str, fit, *arrays):
    """``fit(*arrays)``, naming the group in any input error."""
    try:
        return fit(*arrays)
    except AnalysisError as err:
        raise AnalysisError(f"group {group!r}: {err}") from None


def _csv_points(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        df = pd.read_csv(args.csv)
    except OSError as err:
        raise AnalysisError(f"cannot read --csv {args.csv!r}: {err.strerror}") from None
    check_columns(df, [args.n_col, args.loss_col, args.d_col or args.c_col], "--csv")
    if args.drop_highest:
        # Besiroglu et al. 2024 drop the 5 highest-loss points: keep loss < 5th largest
        df = df[df[args.loss_col] < np.sort(df[args.loss_col].to_numpy())[-args.drop_highest]]
    n = df[args.n_col].to_numpy(float)
    d = df[args.d_col].to_numpy(float) if args.d_col else df[args.c_col].to_numpy(float) / (6 * n)
    return n, d, df[args.loss_col].to_numpy(float)


def _nopt_intervals(table: pd.DataFrame, compute: Sequence[float]) -> pd.DataFrame:
    rows = table.loc[[f"N_opt@{c:.3g}" for c in compute]]
    return pd.DataFrame({"compute": list(compute), "lo": rows["lo"].to_numpy(), "hi": rows["hi"].to_numpy()})


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
