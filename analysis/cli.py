"""``python -m analysis {fit,compare,isoflop,chinchilla}``: scaling-law fits of an lmsweep
experiment read from MLflow, or of a table (--csv).

Every subcommand prints its results, writes CSV/JSON and PNGs into --out (default
analysis_out/<command>/, fit's per --x), and with --attach logs them as artifacts of the
sweep's parent MLflow run. Diverged runs, and points a fit in log space cannot use, are left
out with one line saying which. Bad input, and an option that does not apply
to the input given, exit 2 with one line naming the bad value and the valid ones.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from mlflow.exceptions import MlflowException

from analysis import commands
from analysis.bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES
from analysis.budgets import BUDGET_GAP_DECADES, BUDGET_TOLERANCE
from analysis.collapse import SEED_COLUMN
from analysis.compare import COMPARE_AXES
from analysis.curves import HOW
from analysis.errors import AnalysisError, option_name
from analysis.load import AXES, X_AXES
from analysis.optimum import DEFAULT_METHOD, METHODS
from analysis.outputs import Output
from analysis.table import DEFAULT_LOSS
from trainer import schema
from trainer.contract import DEFAULT_EXPERIMENT, TRACKING_URI_ENV, default_uri, resolve_uri

DEFAULT_OUT = "analysis_out"  # each subcommand writes into its own folder under it
# options that only apply to one kind of input, and what to use instead on the other
MLFLOW_ONLY = {
    "tracking_uri": "",
    "experiment": "",
    "sweep_id": "",
    "include_unfinished": "",
    "attach": " (there is no sweep run to attach to)",
    "y": " (name the loss with --loss-col)",
    "n": " (name the N column with --n-col)",
    "metric": " (name the loss with --loss-col)",
}
# --bootstrap: at least this many resamples beyond each end of a percentile interval (fewer
# put its ends on single resamples: 5 resamples gave E = 3.29578 the interval [3.29612, 3.30917])
TAIL_RESAMPLES = 2.5
CSV_ONLY = ("n_col", "d_col", "c_col", "t_col", "loss_col", "weight_col", "run_col")
# --n (isoflop, chinchilla): which parameter count of a run is N (keys of load.X_AXES)
N_COUNTS, DEFAULT_N_COUNT = ("params", "non_embedding_params"), "params"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ok = False
    try:
        resolve(args)
        # the output folder is made and checked before anything is loaded or fitted
        args.output = Output(args.out)
        args.command(args)
        ok = True
    except (AnalysisError, MlflowException) as err:
        print(f"error: {getattr(err, 'message', err)}", file=sys.stderr)
        return 2
    finally:
        if not ok and getattr(args, "output", None) is not None:
            args.output.close(ok=False)  # remove the folder made, if nothing was written
    return 0


def _check_ranges(args: argparse.Namespace) -> None:
    """Numeric options outside their valid range: one line naming the value and the range."""

    def refuse(dest: str, value: object, valid: str) -> None:
        raise AnalysisError(f"{option_name(dest)} {value}: must be {valid}")

    if args.drop_highest < 0:
        refuse("drop_highest", args.drop_highest, "a count >= 0 of points to drop")
    if not 0 < args.level < 1:
        refuse("level", args.level, f"strictly between 0 and 1, e.g. {DEFAULT_LEVEL:g}")
    least = math.ceil(TAIL_RESAMPLES / ((1 - args.level) / 2) - 1e-9)  # 100 at --level 0.95
    if args.bootstrap is None:  # not given: enough for the level
        args.bootstrap = max(DEFAULT_RESAMPLES, least)
    elif not (args.bootstrap == 0 or args.bootstrap >= least):
        refuse(
            "bootstrap",
            args.bootstrap,
            f"0 (no intervals) or >= {least} resamples (at --level {args.level:g}: fewer put "
            f"an interval's ends on single resamples)",
        )
    if getattr(args, "points", 2) < 2:
        refuse("points", args.points, ">= 2 budgets on the grid")
    for dest in ("budgets", "compute"):
        values = getattr(args, dest, None)
        if values is None:
            continue
        if not values:
            refuse(dest, "(no values)", "one or more budgets in FLOPs, e.g. 1e21 1e23")
        bad = [v for v in values if not (v > 0 and v < float("inf"))]
        if bad:
            refuse(dest, " ".join(f"{v:g}" for v in bad), "budgets in FLOPs > 0")


def _refuse_ignored_y(args: argparse.Namespace) -> None:
    """--y names a run's final loss; where a command reads the runs' loss curves instead, it
    would be ignored: refuse it, naming what the command reads and how to fit --y."""
    curves = {
        "compare": (
            "compare",
            "it compares the runs' curves of --metric (default val_loss); name the curve "
            "with --metric",
        ),
        "fit": (
            f"fit --frontier --x {getattr(args, 'x', '')}",
            "the frontier there is the lower envelope of the runs' val_loss curves; fit --y "
            "without --frontier, or on --x params",
        ),
        "isoflop": (
            "isoflop --from-curves",
            "it reads the runs' val_loss curves at the budgets; fit --y without --from-curves",
        ),
    }
    applies = {
        "compare": True,
        "fit": getattr(args, "frontier", False) and X_AXES.get(getattr(args, "x", "")) in AXES,
        "isoflop": getattr(args, "from_curves", False),
    }
    if applies.get(args.name):
        where, why = curves[args.name]
        raise AnalysisError(
            f"--y {args.y} does not apply to {where}: a final loss is not what it reads ({why})"
        )


def default_folder(args: argparse.Namespace) -> str:
    """A subcommand's own folder; fit's per --x (and --frontier), as the docs' scaling preset
    fits params, then non_embedding_params, then the frontier: each keeps its files."""
    if args.name != "fit":
        return args.name
    return f"fit_{args.x}" + ("_frontier" if args.frontier else "")


def resolve(args: argparse.Namespace) -> None:
    """Refuse options that do not apply to the input, then fill in the defaults of the rest
    (None until here, so that an option given can be told from a default)."""
    _check_ranges(args)
    args.out = args.out or f"{DEFAULT_OUT}/{default_folder(args)}"
    # a --seed-column given must name a column; the default may be absent (one seed per config)
    args.seed_column_given = args.seed_column is not None
    args.seed_column = args.seed_column or SEED_COLUMN
    if args.csv:
        for dest, instead in MLFLOW_ONLY.items():
            if getattr(args, dest, None) not in (None, False):
                raise AnalysisError(f"{option_name(dest)} does not apply to --csv input{instead}")
        if args.d_col and args.c_col:
            raise AnalysisError(
                "--d-col and --c-col both given: name one (the other follows from C = 6 N D)"
            )
        args.loss_col = args.loss_col or DEFAULT_LOSS
        return
    for dest in CSV_ONLY:
        if getattr(args, dest) is not None:
            raise AnalysisError(f"{option_name(dest)} applies only to --csv input")
    if args.y is not None:
        _refuse_ignored_y(args)
    args.tracking_uri = resolve_uri(args.tracking_uri)
    args.experiment = args.experiment or DEFAULT_EXPERIMENT
    args.y = args.y or schema.FINAL_VAL_LOSS
    if hasattr(args, "n"):
        args.n = args.n or DEFAULT_N_COUNT
    if hasattr(args, "metric"):
        args.metric = args.metric or schema.VAL_LOSS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        # the module docstring, its paragraphs whole (argparse re-wraps them); guide:
        # docs/analysis.md
        description=" ".join(__doc__.replace("``", "").split("\n\n")[0].split())
        + " Guide: docs/analysis.md.",
        epilog=" ".join(__doc__.split("\n\n", 1)[1].split()),
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, run, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(command=run, name=name)
        arg = p.add_argument_group("MLflow runs (the default input)").add_argument
        arg(
            "--tracking-uri",
            help=f"MLflow tracking URI (default: ${TRACKING_URI_ENV} or "
            f"{default_uri()}, the store of a sweep launched from here)",
        )
        arg("--experiment", help=f"experiment name or id (default: {DEFAULT_EXPERIMENT})")
        arg("--sweep-id", help="only the runs of this sweep")
        arg(
            "--include-unfinished",
            action="store_true",
            help="also use runs whose MLflow status is not FINISHED (RUNNING, FAILED, KILLED): "
            "their partial curves",
        )
        arg("--y", help=f"loss column (default: {schema.FINAL_VAL_LOSS})")
        arg(
            "--attach",
            action="store_true",
            help="log the outputs as artifacts of the sweep's parent run",
        )
        arg = p.add_argument_group("a table instead (--csv)").add_argument
        arg(
            "--csv",
            help="fit this CSV instead of MLflow runs: one row per run, or per "
            "evaluation with --run-col",
        )
        arg("--n-col", help="column of N, parameters (default: 'Model Size' if present)")
        arg("--d-col", help="column of D, tokens (default: C / 6N)")
        arg("--c-col", help="column of C, FLOPs (default: 'Training FLOP' if present, else 6ND)")
        arg("--t-col", help="column of training wall-clock seconds")
        arg("--loss-col", help=f"column of the loss (default: {DEFAULT_LOSS})")
        arg("--weight-col", help="column of per-point weights in the fits")
        arg(
            "--run-col",
            help="column naming each row's run: rows are points on runs' curves "
            "(compare, isoflop --from-curves)",
        )
        arg = p.add_argument_group("points").add_argument
        arg(
            "--group-by",
            action="append",
            default=[],
            metavar="COL[,COL]",
            help="columns that define a group, e.g. model.name (repeatable)",
        )
        arg(
            "--collapse-seeds",
            action="store_true",
            help="average seeds (mean, sem) per config; bootstraps resample them",
        )
        arg("--seed-column", help=f"column of the seed (default: {SEED_COLUMN})")
        arg(
            "--min-over",
            metavar="COL",
            help="keep the best value of this column per cell, e.g. optim.lr",
        )
        arg(
            "--drop-highest",
            type=int,
            default=0,
            metavar="K",
            help="drop the K highest-loss points (Besiroglu et al. drop 5)",
        )
        arg = p.add_argument_group("output").add_argument
        arg(
            "--out",
            help=f"output folder (default: {DEFAULT_OUT}/"
            + ("fit_<x>[_frontier]" if name == "fit" else name)
            + "/); the files an earlier command wrote there and this one does not are removed",
        )
        arg(
            "--bootstrap",
            type=int,
            metavar="N",
            help=f"bootstrap resamples: 0 (no intervals) or enough for --level (default: "
            f"{DEFAULT_RESAMPLES}, more above --level "
            f"{1 - 2 * TAIL_RESAMPLES / DEFAULT_RESAMPLES:g})",
        )
        arg("--seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
        arg(
            "--level",
            type=float,
            default=DEFAULT_LEVEL,
            help="interval level (default: %(default)s)",
        )
        return p

    def n_option(p: argparse.ArgumentParser) -> None:  # isoflop's and chinchilla's
        p.add_argument("--n", choices=N_COUNTS, help=f"N (default: {DEFAULT_N_COUNT})")

    p = command("fit", commands.fit, "saturating power law L = E + A x^-alpha per group")
    p.add_argument("--x", choices=X_AXES, default="flops", help="x axis (default: %(default)s)")
    p.add_argument("--pure", action="store_true", help="fit A x^-alpha (E = 0, Kaplan et al. 2020)")
    p.add_argument(
        "--frontier", action="store_true", help="fit only each group's efficient frontier in x"
    )

    p = command(
        "compare",
        commands.compare,
        "loss at equal wall-clock / tokens / FLOPs per "
        "variant, with significance over seeds, and winners from fitted frontier laws",
    )
    p.add_argument(
        "--axes",
        nargs="+",
        choices=COMPARE_AXES,
        default=list(COMPARE_AXES),
        help="the axes to compare the variants at equal values of; the fitted-law winners are "
        "written for flops and wall_clock among them (default: all three)",
    )
    p.add_argument("--metric", help=f"history metric (default: {schema.VAL_LOSS})")
    p.add_argument(
        "--points", type=int, default=8, help="budgets on the grid (default: %(default)s)"
    )
    p.add_argument(
        "--at",
        choices=HOW,
        default="best",
        help="a run's value at budget T: the best or the last loss it reached by T "
        "(default: %(default)s)",
    )

    p = command(
        "isoflop",
        commands.isoflop,
        "Chinchilla Approach 2: the loss-optimal N per compute budget and N_opt = k C^a per group",
    )
    p.add_argument(
        "--budget",
        metavar="COL",
        help="column naming each run's compute budget (default: by FLOPs; runs within "
        f"{BUDGET_GAP_DECADES:g} decade of each other share one)",
    )
    p.add_argument(
        "--budgets",
        type=float,
        nargs="+",
        metavar="C",
        # %% for argparse: 10%% shows as 10%
        help=f"the compute budgets in FLOPs: a run joins the one within {BUDGET_TOLERANCE:.0%}% "
        "of its FLOPs (others are left out); with --from-curves, where curves are read",
    )
    p.add_argument(
        "--from-curves",
        action="store_true",
        help="read each run's val-loss curve at the budgets (default: 6 over the range "
        "where >= 3 sizes' curves overlap) instead of taking its final loss",
    )
    n_option(p)
    p.add_argument(
        "--method",
        choices=METHODS,
        default=DEFAULT_METHOD.name,
        help="where a budget's minimum is (default: %(default)s, the most accurate on "
        "the benchmark in docs/analysis.md)",
    )
    p.add_argument(
        "--window",
        type=int,
        metavar="K",
        help=f"--method window: fit the best size +- K sizes (default: {DEFAULT_METHOD.window})",
    )
    p.add_argument(
        "--margin",
        type=float,
        metavar="M",
        help="--method window: instead, the sizes within a relative loss margin M of the best",
    )
    p.add_argument(
        "--unweighted",
        action="store_true",
        help="regress ln N_opt on ln C unweighted (default: weighted by 1/sigma^2)",
    )
    p.add_argument(
        "--drop-flagged",
        action="store_true",
        help="leave flagged budgets (grid edge, poor fit) out of the regression",
    )

    p = command(
        "chinchilla",
        commands.chinchilla,
        "Chinchilla Approach 3: L(N, D) = E + A/N^alpha + B/D^beta on runs, or on a CSV with --csv",
    )
    n_option(p)
    p.add_argument(
        "--compute",
        type=float,
        nargs="*",
        default=[1e21, 1e23, 1e25],
        help="budgets at which to report N_opt, D_opt (default: %(default)s)",
    )
    return parser
