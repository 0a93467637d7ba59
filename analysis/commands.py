"""The subcommands of ``python -m analysis`` (options: ``cli.py``; guide: docs/analysis.md)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from analysis import plots
from analysis.budgets import (
    BUDGET_GAP_DECADES,
    BUDGET_TOLERANCE,
    budget_bins,
    budget_label,
    nearest_budget,
)
from analysis.chinchilla import (
    HOFFMANN_2022_PARAMS,
    bootstrap_chinchilla,
    fit_chinchilla,
    objective_at,
)
from analysis.collapse import (
    check_columns,
    check_numeric,
    collapse_seeds,
    config_columns,
    labels,
    min_over,
    seed_values,
)
from analysis.compare import (
    COMPARE_AXES,
    compare_at_equal,
    history_frontier,
    pareto_front,
    winners_from_fits,
)
from analysis.curves import curve_points
from analysis.errors import AnalysisError, option_name, unknown
from analysis.groups import GroupFits, first_reasons, fit_groups
from analysis.holdout import Extrapolation, held_out, holdout_json
from analysis.isoflop import fit_isoflop, frontier_predict
from analysis.load import (
    AXES,
    X_AXES,
    Experiment,
    describe_unfinished,
    empty_histories,
    load_experiment,
)
from analysis.lse import usable
from analysis.optimum import Method
from analysis.outputs import Output, attach, format_intervals, intervals_json
from analysis.table import Columns, read_table
from trainer import schema

# what names each runs-table column in a CSV, for messages
_CSV_SOURCE = {
    "params_total": "an N column (--n-col)",
    schema.TOKENS: "a D column (--d-col), or C and N columns (--c-col, --n-col)",
    schema.FLOPS: "a C column (--c-col), or D and N columns (--d-col, --n-col)",
    schema.WALL_CLOCK: "a wall-clock column (--t-col)",
}


# --- inputs --------------------------------------------------------------------------------


def _group_by(args: argparse.Namespace) -> list[str]:
    return [c for arg in args.group_by for c in arg.split(",") if c]


def _load(args: argparse.Namespace, metrics: Sequence[str] | None) -> Experiment:
    """The runs of the experiment (MLflow) or the rows of --csv, as one runs table, less the
    diverged runs (every subcommand leaves them out, with one line naming them)."""
    return _without_diverged(args, _read(args, metrics))


def _without_diverged(args: argparse.Namespace, exp: Experiment) -> Experiment:
    """``exp`` less its diverged runs (outcome diverged, or a non-finite loss logged; a CSV
    row or run whose loss is not a finite number): a diverged run is no result, though its
    best_val_loss (its best before the blow-up) is finite."""
    if "diverged" not in exp.runs:
        return exp
    diverged = exp.runs["diverged"].eq(True).to_numpy()
    if not diverged.any():
        return exp
    bad = exp.runs[diverged]
    one = len(bad) == 1
    noun = ("row" if args.csv and not args.run_col else "run") + ("" if one else "s")
    if args.csv and not args.run_col:
        what = f"{noun} whose loss is not a finite number (diverged)"
        names = [f"row {int(i) + 1}" for i in bad["run_id"]]  # numbered from 1 after the header
    elif args.csv:
        what = f"{noun} whose last loss is not a finite number (diverged)"
        names = bad["run_name"].astype(str).tolist()
    else:
        what = f"diverged {noun}"
        names = bad["run_name"].astype(str).tolist()
    print(f"left out {len(bad)} {what}: {_first(names)}")
    args.diverged = bad  # counted in cells of seeds, and among the --min-over values tried
    if diverged.all():
        raise AnalysisError(f"all {len(bad)} {noun} diverged: there is nothing to fit")
    kept = exp.runs[~diverged].reset_index(drop=True)
    return replace(
        exp,
        runs=kept,
        histories=exp.histories[exp.histories["run_id"].isin(kept["run_id"])],
    )


def _first(names: Sequence[str], show: int = 5) -> str:
    """The first ``show`` names and how many more: one readable line for any sweep."""
    more = f" and {len(names) - show} more" if len(names) > show else ""
    return ", ".join(names[:show]) + more


def _read(args: argparse.Namespace, metrics: Sequence[str] | None) -> Experiment:
    if args.csv:
        return read_table(
            args.csv,
            Columns(
                n=args.n_col,
                d=args.d_col,
                c=args.c_col,
                t=args.t_col,
                loss=args.loss_col,
                weight=args.weight_col,
                run=args.run_col,
            ),
        )
    exp = load_experiment(
        args.tracking_uri,
        args.experiment,
        sweep_id=args.sweep_id,
        metrics=metrics,
        include_unfinished=args.include_unfinished,
    )
    line = describe_unfinished(exp.unfinished)
    if line:
        print(line)
    if args.attach:
        exp.parent_run_id()  # several sweeps and no --sweep-id: say so before fitting anything
    return exp


def _loss(args: argparse.Namespace) -> str:
    return args.loss_col if args.csv else args.y


def _seed_column(args: argparse.Namespace, exp: Experiment, needed: bool = False) -> str:
    """--seed-column, which must exist when given or `needed`: a misspelt one would leave every
    seed its own configuration. The default may be absent (a CSV of one seed per
    configuration)."""
    if args.seed_column_given or needed:
        check_columns(exp.runs, [args.seed_column], "--seed-column")
    return args.seed_column


def _losses(exp: Experiment) -> list[str]:
    """The runs' numeric loss columns (final_val_loss, best_val_loss, ...): what --y may name."""
    return sorted(
        str(c)
        for c in exp.runs.columns
        if "loss" in str(c)
        and c not in exp.param_columns
        and pd.api.types.is_numeric_dtype(exp.runs[c])
        and not pd.api.types.is_bool_dtype(exp.runs[c])
    )


def _points(args: argparse.Namespace, exp: Experiment, y: str) -> pd.DataFrame:
    """The runs table, less the --drop-highest losses, collapsed over seeds / a swept column."""
    check_columns(exp.runs, _group_by(args), "--group-by")
    if not args.csv and y not in exp.runs:
        raise unknown("--y", y, _losses(exp))
    check_columns(exp.runs, [y], "--loss-col" if args.csv else "--y")
    check_numeric(exp.runs, y, "--loss-col" if args.csv else "--y")
    seed = _seed_column(args, exp, needed=args.collapse_seeds)
    if args.weight_col and args.collapse_seeds:
        raise AnalysisError(
            "--weight-col and --collapse-seeds: a cell of seeds has no one weight; give one of them"
        )
    points = exp.runs
    if args.drop_highest:
        # Besiroglu et al. 2024 drop the 5 highest-loss points: keep loss < 5th largest. A
        # diverged run (NaN / inf loss) is not one of them: it stays to be left out (and
        # counted) like everywhere else, and the K are the highest finite losses
        loss = points[y].to_numpy(float)
        finite = np.isfinite(loss)
        if args.drop_highest >= finite.sum():
            raise AnalysisError(
                f"--drop-highest {args.drop_highest}: there are {int(finite.sum())} points with "
                f"a finite loss; valid: 0 to {max(int(finite.sum()) - 1, 0)}"
            )
        threshold = np.sort(loss[finite])[-args.drop_highest]
        points = points[~finite | (loss < threshold)]
    # The diverged runs (named as they were left out) have no loss: they count in their
    # cells of seeds (n_runs, n_diverged), and a diverged run's value of --min-over was tried
    # too (for the edge warning), though it cannot be the best.
    diverged = getattr(args, "diverged", None)
    tried = None if diverged is None else diverged.assign(**{y: np.nan})
    if args.collapse_seeds:
        cells = config_columns(exp.param_columns, [seed])
        points = collapse_seeds(pd.concat([points, tried], ignore_index=True), cells, value=y)
        tried = None  # a cell whose every seed diverged is among the points, diverged
    if args.min_over:
        # without --collapse-seeds each seed is its own cell
        exclude = [args.min_over, seed] if args.collapse_seeds else [args.min_over]
        cells = config_columns(exp.param_columns, exclude)
        if tried is not None and not tried.empty:
            points = pd.concat([points, tried], ignore_index=True)
        points = min_over(points, args.min_over, cells, value=y)
        edge = points[points[f"{args.min_over}_at_edge"] & (points[f"n_{args.min_over}"] > 1)]
        if len(edge):
            print(
                f"warning: for {len(edge)} cells the best {args.min_over} is the smallest or "
                f"largest tried"
            )
    return points


def _usable(
    args: argparse.Namespace,
    points: pd.DataFrame,
    columns: Sequence[str],
    by: Sequence[str] = (),
) -> pd.DataFrame:
    """``points`` less those a fit in log space cannot use (a loss, size, token count, ... that
    is not a finite number > 0), with one line saying how many were left out, why and which."""
    if "diverged" in points:  # cells whose every seed diverged: named as they were left out
        points = points[~points["diverged"].eq(True)]
    columns = [c for c in dict.fromkeys(columns) if c in points]
    if points.empty or not columns:
        return points
    values = points[columns].apply(pd.to_numeric, errors="coerce").astype(float)
    ok = usable(*(values[c].to_numpy() for c in columns))
    if ok.all():
        return points
    bad = values[~ok]
    shown = []
    for name, (_, row) in zip(_point_names(args, points[~ok], by), bad.iterrows()):
        wrong = [c for c in columns if not (np.isfinite(row[c]) and row[c] > 0)]
        shown.append(f"{name} ({', '.join(f'{c} = {row[c]:g}' for c in wrong)})")
    print(
        f"left out {len(bad)} of {len(points)} points whose {' or '.join(columns)} is not a "
        f"finite number > 0 (the fits take logs): {_first(shown, 3)}"
    )
    return points[ok]


def _point_names(args: argparse.Namespace, points: pd.DataFrame, by: Sequence[str]) -> list[str]:
    """What to call each point in a message: its CSV row (numbered from 1 after the header),
    its run, else (points averaged over seeds, frontier points) its group."""
    if "run_name" in points:
        if args.csv and not args.run_col:
            return [f"row {int(i) + 1}" for i in points["run_id"]]
        return points["run_name"].astype(str).tolist()
    by = [c for c in by if c in points]
    return [f"a point of {g}" for g in labels(points, by)]


def _require(args: argparse.Namespace, points: pd.DataFrame, column: str, option: str) -> None:
    if column not in points.columns:
        if args.csv:
            raise AnalysisError(
                f"{option} needs {_CSV_SOURCE.get(column, repr(column))} in --csv {args.csv!r}"
            )
        check_columns(points, [column], option)


def _weights(args: argparse.Namespace, rows: pd.DataFrame) -> np.ndarray | None:
    return rows[args.weight_col].to_numpy(float) if args.weight_col else None


def _output(args: argparse.Namespace) -> Output:
    """The --out folder: made and checked by the CLI before anything was loaded."""
    return getattr(args, "output", None) or Output(args.out)


def _finish(args: argparse.Namespace, out: Output, exp: Experiment) -> None:
    if args.attach:
        parent = exp.parent_run_id()
        attach(args.tracking_uri, parent, out, f"analysis/{args.name}")
        print(f"attached {len(out.written)} files to run {parent} under analysis/{args.name}/")
    out.close(ok=True)
    names = ", ".join(p.name for p in out.written)
    print(f"wrote {len(out.written)} files to {out.dir}/: {names}")
    if out.removed:
        print(
            f"removed {len(out.removed)} files an earlier command wrote to {out.dir}/ that this "
            f"one did not: {', '.join(p.name for p in out.removed)}"
        )


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


# --- fit -----------------------------------------------------------------------------------


def _uses_curves(exp: Experiment, x: str) -> bool:
    """Whether a frontier in ``x`` is the envelope of the runs' curves (not of their points)."""
    return x in AXES and not exp.histories.empty


# the options that make the points out of the runs' final results
_POINT_OPTIONS = ("collapse_seeds", "min_over", "drop_highest")


def _refuse_point_options(args: argparse.Namespace, where: str, instead: str) -> None:
    """``where`` reads whole curves, not the runs' final points: refuse the point options
    there rather than ignore them."""
    given = [option_name(dest) for dest in _POINT_OPTIONS if getattr(args, dest)]
    if given:
        raise AnalysisError(
            f"{', '.join(given)}: options for the runs' final points; {where} reads every "
            f"evaluation of their val-loss curves instead ({instead})"
        )


def _frontier(
    args: argparse.Namespace,
    exp: Experiment,
    points: pd.DataFrame,
    x: str,
    y: str,
    by: Sequence[str],
    metric: str = schema.VAL_LOSS,
) -> tuple[pd.DataFrame, str, list[str]]:
    """(points, y, group columns) of each group's efficient frontier in ``x``: the envelope of
    the ``metric`` curves for tokens / FLOPs / wall-clock when there are curves, else its
    Pareto-best points."""
    if _uses_curves(exp, x):
        histories = exp.histories
        values = pd.to_numeric(histories["value"], errors="coerce")
        bad = (histories["metric"] == metric) & (values <= 0)
        if bad.any():  # before the envelope: a loss <= 0 would be its lowest point
            runs = exp.runs.set_index("run_id")["run_name"].astype(str)
            named = runs.reindex(histories.loc[bad, "run_id"].unique()).dropna().tolist()
            print(
                f"left out {int(bad.sum())} evaluations whose {metric} is not > 0 (the fits "
                f"take logs), on the curves of {_first(named, 3)}"
            )
            histories = histories[~bad]
        return (
            history_frontier(exp.runs, histories, x, labels(exp.runs, by), metric=metric),
            metric,
            ["group"],
        )
    front = points.groupby(labels(points, by), group_keys=False).apply(
        lambda g: pareto_front(g, x, y)
    )
    return front, y, list(by)


# A law in one count is read at a fixed value of the other: L(N) at one token budget, L(D) at
# one size.
_HELD_FIXED = {
    "params_total": schema.TOKENS,
    "params_non_embedding": schema.TOKENS,
    schema.TOKENS: "params_total",
}


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
            print(
                f"warning: group {g!r} pools runs at {values.size} values of {fixed} "
                f"({', '.join(budget_label(v) for v in values)}): its L({x}) mixes one curve "
                f"per value; add the swept param to --group-by (e.g. budget.tokens or "
                f"model.params) or fit --frontier"
            )


def _winners(fits: GroupFits) -> pd.DataFrame:
    """Which group's law is lowest at seven budgets from the smallest fitted x to 10x past the
    largest; ``skipped`` names the groups without a law, which cannot win."""
    budgets = np.geomspace(
        min(f.x_min for f in fits.fits.values()), 10 * max(f.x_max for f in fits.fits.values()), 7
    )
    return winners_from_fits(fits.fits, budgets).assign(skipped=", ".join(sorted(fits.skipped)))


def fit(args: argparse.Namespace) -> None:
    x = X_AXES[args.x]
    if args.csv and args.x == "non_embedding_params":
        raise AnalysisError(
            "--x non_embedding_params needs MLflow runs; a CSV's N column (--n-col) is --x params"
        )
    curves = args.frontier and x in AXES
    exp = _load(args, [schema.VAL_LOSS] if curves else None)
    y, by = _loss(args), _group_by(args)
    points = _points(args, exp, y)
    _require(args, points, x, f"--x {args.x}")
    weight = args.weight_col
    if args.frontier and _uses_curves(exp, x):
        _refuse_point_options(
            args, f"fit --frontier --x {args.x}", "fit without --frontier, or on --x params"
        )
    else:  # before the Pareto front: a loss <= 0 would dominate every other point
        points = _usable(args, points, [x, y], by)
    if args.frontier:
        points, y, by = _frontier(args, exp, points, x, y, by)
        weight = None  # a frontier point is the best of several: no one row's weight
    else:
        _warn_pooled(points, x, by)  # over the points fitted only
    fits = fit_groups(
        points,
        x,
        y,
        by,
        irreducible=not args.pure,
        n_resamples=args.bootstrap,
        seed=args.seed,
        level=args.level,
        weight=weight,
    )
    out = _output(args)
    out.csv("points.csv", points)
    out.csv(f"fit_{args.x}.csv", fits.table())
    winners = _winners(fits)
    out.csv(f"winners_{args.x}.csv", winners, index=True)
    out.json(
        f"fit_{args.x}.json",
        {
            "source": exp.name,
            "sweep_id": args.sweep_id,
            "x": x,
            "y": y,
            "group_by": by,
            "frontier": args.frontier,
            "law": "A x^-alpha" if args.pure else "E + A x^-alpha",
            "skipped": fits.skipped,
            "groups": {
                g: {
                    "n_points": f.n_points,
                    "objective": f.objective,
                    "formula": f.formula(x),
                    "x_range": [f.x_min, f.x_max],
                    "intervals": intervals_json(fits.intervals[g]),
                    "holdout": holdout_json(fits.extrapolation[g]),
                }
                for g, f in fits.fits.items()
            },
        },
    )
    plots.plot_group_fits(points, labels(points, by), fits, out.path(f"fit_{args.x}.png"))
    for g, law in fits.fits.items():
        held = fits.extrapolation[g]
        print(
            f"{g}: {y} = {'' if args.pure else 'E + '}A {x}^-alpha on {law.n_points} points: "
            f"{law.formula(x)}"
        )
        print(format_intervals(fits.intervals[g]))
        print(
            f"  holdout: fit below {held.threshold:.3g}, prediction on the largest budget "
            f"off by {held.mean_abs_rel_error:.2%} (mean |relative error|)"
            if isinstance(held, Extrapolation)
            else _holdout_skipped(held)
        )
    _report_skipped("fit", fits.skipped, fits.fits)
    print(f"\nwinner by fitted law at {x}:\n{winners.to_string(float_format='%.4g')}")
    _finish(args, out, exp)


# --- compare -------------------------------------------------------------------------------


def compare(args: argparse.Namespace) -> None:
    if args.csv and not args.run_col:
        raise AnalysisError(
            "compare --csv compares loss curves: name the column that says which "
            "run each row belongs to with --run-col"
        )
    _refuse_point_options(
        args,
        "compare",
        "it averages the seeds of each configuration itself (--seed-column) and shows each "
        "variant's best configuration",
    )
    metric = schema.VAL_LOSS if args.csv else args.metric
    exp = _load(args, sorted({metric, schema.VAL_LOSS}))
    if metric not in exp.metrics and not args.csv:
        raise unknown("--metric (no loaded run logged it)", metric, exp.metrics)
    y = _loss(args)
    points = _points(args, exp, y)
    variant = _group_by(args) or ["model.name"]
    check_columns(exp.runs, variant, "--group-by")
    cell = config_columns(exp.param_columns, [_seed_column(args, exp)])
    out = _output(args)
    for axis in args.axes:
        column = COMPARE_AXES[axis]
        if not np.isfinite(pd.to_numeric(exp.histories[column], errors="coerce")).any():
            print(f"no {column} values to compare at: skipped")
            continue
        res = compare_at_equal(
            exp.runs,
            exp.histories,
            column,
            variant,
            cell,
            metric=metric,
            n_points=args.points,
            how=args.at,
            level=args.level,
        )
        out.csv(f"equal_{axis}.csv", res.table.join(res.sem.add_suffix("_sem")), index=True)
        plots.plot_curves(
            exp.runs,
            exp.histories,
            res.axis,
            labels(exp.runs, variant),
            metric,
            out.path(f"curves_{axis}.png"),
            res.common_range,
        )
        covered = (
            f"{res.common_range[0]:.4g} .. {res.common_range[1]:.4g}"
            if res.common_range
            else "none"
        )
        print(
            f"{metric}, the {res.how} each variant reached by each {res.axis} (range every run "
            f"covers: {covered}; absent: no run evaluated yet, never a winner):"
        )
        print(res.table.to_string(float_format="%.4g", na_rep="-"))
        _print_verdict(res.table)
        if res.excluded:
            print(f"  left out (no finite point): {', '.join(res.excluded)}")
    # the fitted-law winners on the axes asked for (--axes) that have them
    winners = {
        axis: _compare_winners(args, exp, points, axis, variant, metric, out)
        for axis in ("flops", "wall_clock")
        if axis in args.axes and X_AXES[axis] in points
    }
    out.json(
        "compare.json",
        {
            "source": exp.name,
            "sweep_id": args.sweep_id,
            "metric": metric,
            "variant": variant,
            "fitted_law_winners": winners,
        },
    )
    _finish(args, out, exp)


def _compare_winners(
    args: argparse.Namespace,
    exp: Experiment,
    points: pd.DataFrame,
    axis: str,
    variant: list[str],
    metric: str,
    out: Output,
) -> dict:
    """Which variant wins at compute C / wall-clock T, by laws fitted to each variant's
    frontier of ``metric``. Returns the variants fitted and those skipped with why, for
    compare.json."""
    x = X_AXES[axis]
    front, fy, by = _frontier(args, exp, points, x, _loss(args), variant, metric)
    try:
        fits = fit_groups(
            front, x, fy, by, n_resamples=args.bootstrap, seed=args.seed, level=args.level
        )
    except AnalysisError as err:
        print(f"no fitted-law winners on {x}: {err}")
        return {"fitted": [], "error": str(err)}
    winners = _winners(fits)
    out.csv(f"winners_{axis}.csv", winners, index=True)
    out.csv(f"frontier_fit_{axis}.csv", fits.table())
    plots.plot_group_fits(front, labels(front, by), fits, out.path(f"frontier_fit_{axis}.png"))
    print(
        f"\nwinner by law fitted to each variant's frontier, at {x}:\n"
        f"{winners.to_string(float_format='%.4g')}"
    )
    skipped = _report_skipped(f"compare's frontier fits on {x}", fits.skipped, fits.fits)
    return {"fitted": sorted(fits.fits), "skipped": skipped}


def _print_verdict(table: pd.DataFrame) -> None:
    """The A-vs-B verdict at the largest budget where every variant is present."""
    decided = table.dropna(subset=["winner"])
    if decided.empty:
        print("  no budget at which every variant is present: no winner")
        return
    at, row = decided.index[-1], decided.iloc[-1]
    if np.isfinite(row["p_value"]):
        verdict = (
            "significant"
            if row["significant"]
            else "not significant (a claimed improvement needs p < 0.01 over several seeds)"
        )
        print(
            f"  at {at:.4g}: {row['winner']} leads by {row['margin']:.4g} "
            f"[{row['margin_lo']:.4g}, {row['margin_hi']:.4g}], p = {row['p_value']:.2g}: "
            f"{verdict}"
        )
    else:
        print(
            f"  at {at:.4g}: {row['winner']} leads by {row['margin']:.4g}; untested: a p-value "
            f"needs >= 2 seeds per variant (seed=0,1,2)"
        )


# --- isoflop -------------------------------------------------------------------------------


def _method(args: argparse.Namespace) -> Method:
    if args.method != "window" and (args.window is not None or args.margin is not None):
        raise AnalysisError(f"--window and --margin apply to --method window, not {args.method}")
    if args.window is not None and args.margin is not None:
        raise AnalysisError("--window and --margin both given: the window is one or the other")
    window = {} if args.window is None else {"window": args.window}
    return Method(args.method, margin=args.margin, **window)


def _budgets(args: argparse.Namespace, points: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(label, FLOPs) of each point's compute budget; a point in no budget has label ''."""
    if args.from_curves:
        return points["budget"].to_numpy(str), points[schema.FLOPS].to_numpy(float)
    if args.budget:
        check_columns(points, [args.budget], "--budget")
        value = pd.to_numeric(points[args.budget], errors="coerce")
        label = [
            budget_label(v) if np.isfinite(v) else str(s)
            for v, s in zip(value, points[args.budget])
        ]
        compute = points[schema.FLOPS] if schema.FLOPS in points else value
        return np.asarray(label), compute.to_numpy(float)
    _require(args, points, schema.FLOPS, "isoflop")
    compute = points[schema.FLOPS].to_numpy(float)
    if args.budgets:
        nominal = nearest_budget(compute, np.asarray(args.budgets))
        if np.isnan(nominal).any():
            print(
                f"left out {int(np.isnan(nominal).sum())} of {nominal.size} runs whose FLOPs are "
                f"not within {BUDGET_TOLERANCE:.0%} of a budget in --budgets"
            )
        return np.array([budget_label(v) if np.isfinite(v) else "" for v in nominal]), compute
    return np.array([budget_label(v) for v in budget_bins(compute)]), compute


def _curve_points(
    args: argparse.Namespace, exp: Experiment, n_col: str
) -> tuple[Experiment, dict[str, str]]:
    """The runs' curves read at the budgets, as one row per run and budget. Without
    --budgets each group's budgets span where its own curves of >= 3 sizes overlap (pooled,
    one group's sizes would count toward another's coverage); a group whose curves do not
    overlap is left out with the reason, in ``skipped``."""
    if exp.histories.empty:
        raise AnalysisError("--from-curves on a CSV needs --run-col (rows as points on curves)")
    _require(args, exp.runs, n_col, "isoflop")
    by = _group_by(args)
    check_columns(exp.runs, by, "--group-by")
    parts, skipped = [], {}
    for g, rows in exp.runs.groupby(labels(exp.runs, by), sort=True):
        history = exp.histories[exp.histories["run_id"].isin(rows["run_id"])]
        try:
            parts.append(curve_points(rows, history, args.budgets, schema.VAL_LOSS, n_col))
        except AnalysisError as err:
            skipped[g] = str(err)
    if not parts:
        raise AnalysisError(_none_fitted("isoflop --from-curves", skipped))
    return Experiment(
        name=exp.name,
        histories=empty_histories(),
        runs=pd.concat(parts, ignore_index=True),
        param_columns=(*exp.param_columns, "budget"),
    ), skipped


def _none_fitted(what: str, skipped: dict[str, str]) -> str:
    named = {f"group {g!r}": why for g, why in skipped.items()}
    return f"{what}: no group could be fitted: {first_reasons(named)}"


def _report_skipped(what: str, skipped: dict[str, str], fitted: dict) -> dict[str, str]:
    """Prints each group left out with its reason; an error when no group was fitted. The
    skipped groups, sorted, for the command's JSON."""
    skipped = dict(sorted(skipped.items()))
    if not fitted:  # the error names the groups and why: not printed twice
        raise AnalysisError(_none_fitted(what, skipped))
    for g, why in skipped.items():
        print(f"skipped {g}: {why}")
    return skipped


def isoflop(args: argparse.Namespace) -> None:
    method = _method(args)
    curves = args.from_curves
    if args.budget and (curves or args.budgets):
        raise AnalysisError(
            f"--budget names a column of budgets: it does not go with "
            f"{'--from-curves' if curves else '--budgets'}"
        )
    n_col = "params_total" if args.csv else X_AXES[args.n]
    exp = _load(args, [schema.VAL_LOSS] if curves else None)
    skipped: dict[str, str] = {}
    if curves:
        exp, skipped = _curve_points(args, exp, n_col)
    y = schema.VAL_LOSS if curves else _loss(args)
    points = _points(args, exp, y).reset_index(drop=True)
    _require(args, points, n_col, "isoflop")
    points = _usable(args, points, [n_col, y], _group_by(args)).reset_index(drop=True)
    budget, compute = _budgets(args, points)
    points, budget, compute = points[budget != ""], budget[budget != ""], compute[budget != ""]
    points = points.reset_index(drop=True)
    out = _output(args)
    tables, summaries, laws, minima = [], {}, {}, []
    for g, rows in points.groupby(labels(points, _group_by(args)), sort=True):
        i = rows.index.to_numpy()
        arrays = (budget[i], compute[i], rows[n_col].to_numpy(float), rows[y].to_numpy(float))
        try:  # like fit: a group that cannot be fitted is skipped with its reason
            fitted = fit_isoflop(
                *arrays,
                method=method,
                weights=_weights(args, rows),
                seeds=seed_values(rows, y),
                weighted=not args.unweighted,
                drop_flagged=args.drop_flagged,
                n_resamples=args.bootstrap,
                seed=args.seed,
                level=args.level,
            )
        except AnalysisError as err:
            skipped[g] = str(err)
            continue
        used = fitted.budgets.loc[list(fitted.frontier.budgets)]
        held = _isoflop_holdout(used)
        tables.append(fitted.budgets.reset_index().assign(group=g))
        minima.append(used.assign(group=g))
        laws[f"{g}: N_opt = {fitted.coefficient:.3g} C^{fitted.exponent:.3f}"] = fitted.n_opt
        summaries[g] = _isoflop_summary(fitted, held)
        plots.plot_isoflop(
            arrays[0], arrays[2], arrays[3], fitted, out.path(f"isoflop_{_safe(g)}.png")
        )
        _print_isoflop(g, fitted, held)
    skipped = _report_skipped("isoflop", skipped, summaries)
    out.csv("isoflop_budgets.csv", pd.concat(tables, ignore_index=True))
    out.json(
        "isoflop.json",
        {
            "source": exp.name,
            "sweep_id": args.sweep_id,
            "budget": (
                args.budget
                or args.budgets
                or (
                    "per group: 6 over the range where >= 3 sizes' curves overlap"
                    if curves
                    else f"flops (runs within {BUDGET_GAP_DECADES:g} decade)"
                )
            ),
            "from_curves": curves,
            "n": n_col,
            "y": y,
            "method": method.describe(),
            "groups": summaries,
            "skipped": skipped,
        },
    )
    allv = pd.concat(minima)
    plots.plot_frontier(
        (allv["compute"].min(), allv["compute"].max() * 10),
        laws,
        out.path("frontier.png"),
        points=allv.rename(columns={"n_opt": "n", "loss_opt": "loss"}),
    )
    _finish(args, out, exp)


def _isoflop_holdout(used: pd.DataFrame) -> Extrapolation | str:
    c, n = used["compute"].to_numpy(), used["n_opt"].to_numpy()
    return held_out(c, n, lambda tr, te: frontier_predict(c, n, tr, te))


def _holdout_skipped(why: str) -> str:
    return f"  holdout: skipped: {why}"


def _isoflop_summary(fitted, held) -> dict:
    law = fitted.frontier
    return {
        "a": law.a,
        "k": law.k,
        "a_stderr": law.stderr,
        "weighted": law.weighted,
        "budgets_used": list(law.budgets),
        "with_flagged": law.with_flagged,
        "alternatives": {
            name: {"a": alt.a, "k": alt.k, "budgets": list(alt.budgets)} if alt else None
            for name, alt in fitted.alternatives.items()
        },
        "diagnostics": fitted.messages(),
        "intervals": intervals_json(fitted.intervals) if fitted.intervals else None,
        "holdout_n_opt": holdout_json(held),
    }


def _print_isoflop(group: str, fitted, held) -> None:
    law = fitted.frontier
    weighting = "weighted by 1/sigma^2 of each ln N_opt" if law.weighted else "unweighted"
    print(
        f"{group}: N_opt = k C^a over {len(law.budgets)} budgets ({fitted.method.describe()}; "
        f"{weighting}): a = {law.a:.4f}"
    )
    for line in fitted.messages():
        print(f"  warning: {line}")
    if fitted.intervals:
        print(format_intervals(fitted.intervals))
    for name, alt in fitted.alternatives.items():
        print(
            f"  a = {alt.a:.4f} {name} ({len(alt.budgets)} budgets: {', '.join(alt.budgets)})"
            if alt
            else f"  {name}: fewer than 2 budgets, no exponent"
        )
    print(
        f"  holdout: N_opt at the largest budget predicted from the others, off by "
        f"{held.mean_abs_rel_error:.1%}"
        if isinstance(held, Extrapolation)
        else _holdout_skipped(held)
    )


# --- chinchilla ----------------------------------------------------------------------------


def chinchilla(args: argparse.Namespace) -> None:
    n_col = "params_total" if args.csv else X_AXES[args.n]
    exp = _load(args, None)
    y = _loss(args)
    points = _points(args, exp, y)
    _require(args, points, n_col, "chinchilla")
    _require(args, points, schema.TOKENS, "chinchilla")
    points = _usable(args, points, [n_col, schema.TOKENS, y], _group_by(args))
    out = _output(args)
    summaries, tables, skipped = {}, [], {}
    for g, rows in points.groupby(labels(points, _group_by(args)), sort=True):
        n, d, loss = (rows[c].to_numpy(float) for c in (n_col, schema.TOKENS, y))
        weights, seeds = _weights(args, rows), seed_values(rows, y)
        _warn_unidentified(g, n, d)
        try:  # like fit and isoflop: a group that cannot be fitted is skipped with its reason
            law = fit_chinchilla(n, d, loss, weights=weights)
        except AnalysisError as err:
            skipped[g] = str(err)
            continue
        intervals = bootstrap_chinchilla(
            n,
            d,
            loss,
            law,
            n_resamples=args.bootstrap,
            seed=args.seed,
            level=args.level,
            compute=tuple(args.compute),
            weights=weights,
            seeds=seeds,
        )
        c = 6 * n * d
        # N_opt, D_opt at a budget outside the runs' compute range: read off the law, not data
        extrapolated = [budget_label(v) for v in args.compute if not c.min() <= v <= c.max()]
        held = _chinchilla_holdout(n, d, loss, weights, continuous=bool(args.csv))
        hoffmann = objective_at(HOFFMANN_2022_PARAMS, n, d, loss)
        summaries[g] = {
            "objective": law.objective,
            "objective_at_hoffmann_2022": hoffmann,
            "n_points": law.n_points,
            "n_starts": law.n_starts,
            "n_converged": law.n_converged,
            "intervals": intervals_json(intervals),
            "holdout": holdout_json(held),
            "compute_range": [float(c.min()), float(c.max())],
            "extrapolated_compute": extrapolated,
        }
        table = intervals.table.reset_index()
        at = table["quantity"].str.extract(r"^[ND]_opt@(.*)$")[0]
        tables.append(table.assign(group=g, extrapolated=at.isin(extrapolated)))
        print(
            f"{g}: L = E + A/N^alpha + B/D^beta on {law.n_points} points, "
            f"{law.n_converged}/{law.n_starts} starts converged"
        )
        print(format_intervals(intervals))
        if extrapolated:
            print(
                f"  extrapolated: N_opt, D_opt at C = {', '.join(extrapolated)} lie outside the "
                f"runs' compute range {c.min():.3g} .. {c.max():.3g} FLOPs"
            )
        print(
            f"  objective {law.objective:.7g} (at Hoffmann et al. 2022's parameters: "
            f"{hoffmann:.7g})"
        )
        print(
            f"  holdout: fit below C = {held.threshold:.3g}, prediction above it off by "
            f"{held.mean_abs_rel_error:.2%} (mean |relative error|)"
            if isinstance(held, Extrapolation)
            else _holdout_skipped(held)
        )
        plots.plot_frontier(
            (c.min(), max(c.max(), *args.compute)),
            {f"{g}: N_opt = {law.G:.3g} (C/6)^{law.a:.3f}": law.n_opt},
            out.path(f"frontier_{_safe(g)}.png"),
            points=pd.DataFrame({"compute": c, "n": n, "loss": loss}),
            intervals=_nopt_intervals(intervals.table, args.compute),
        )
    skipped = _report_skipped("chinchilla", skipped, summaries)
    out.csv("chinchilla.csv", pd.concat(tables, ignore_index=True))
    out.json(
        "chinchilla.json",
        {"source": exp.name, "groups": summaries, "skipped": skipped},
    )
    _finish(args, out, exp)


def _chinchilla_holdout(
    n: np.ndarray, d: np.ndarray, loss: np.ndarray, weights: np.ndarray | None, continuous: bool
):
    """Fit below the largest budget (a CSV's compute is continuous: below its top 10%) and
    score the prediction above it; why not (a str) without two smaller budgets."""

    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        law = fit_chinchilla(
            n[train], d[train], loss[train], weights=None if weights is None else weights[train]
        )
        return law.predict(n[test], d[test])

    c = 6 * n * d
    return held_out(
        c if continuous else budget_bins(c),
        loss,
        fit_predict,
        holdout_frac=0.1 if continuous else None,
    )


def _warn_unidentified(group: str, n: np.ndarray, d: np.ndarray) -> None:
    """L(N, D) needs >= 3 distinct values of each count: through 2, a power law and its
    offset trade off exactly (E against B/D^beta, or against A/N^alpha)."""
    for name, values, term in (("N", n, "A and alpha"), ("D (tokens)", d, "B and beta")):
        distinct = np.unique(budget_bins(values)[np.isfinite(values)]).size
        if distinct < 3:
            print(
                f"warning: group {group!r} has {distinct} distinct values of {name}: E, {term} "
                f"are not identified; sweep >= 3"
            )


def _nopt_intervals(table: pd.DataFrame, compute: Sequence[float]) -> pd.DataFrame:
    rows = table.loc[[f"N_opt@{budget_label(c)}" for c in compute]]
    return pd.DataFrame(
        {"compute": list(compute), "lo": rows["lo"].to_numpy(), "hi": rows["hi"].to_numpy()}
    )
