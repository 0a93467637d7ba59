"""Which IsoFLOP optimum method recovers the exponent a of N_opt = k C^a: a measurement.

    python scripts/bench_isoflop_methods.py [--reps 10] [--resamples 100]

Synthetic sweeps from known Chinchilla laws (analysis.synthetic.isoflop_sweep), 7 budgets over
3 decades of compute, in three grid shapes:
- centred: 9 sizes over 2 decades, N_opt in the middle of every grid (the easy case);
- lopsided: 11 sizes over 3 decades, N_opt at the 3rd size of every grid;
- drifting: 12 sizes over 4 decades, N_opt moving from the 2nd-3rd size at the smallest budget
  to the 10th-11th at the largest (one size grid shifted little across budgets, as in several
  published sweeps; losses at the grid's ends reach 3-7x the minimum);
each with 0.2% and 1% multiplicative loss noise. Every method fits every sweep; the script
prints, per shape and noise, the mean error of a (bias), the mean and 90th-percentile absolute
error, weighted (Porian et al. 2024, the default) and unweighted, and how many fits failed.
At the defaults it takes about 10 minutes on 2 shared cores; docs/analysis.md has its numbers.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.chinchilla import ChinchillaFit  # noqa: E402
from analysis.errors import AnalysisError  # noqa: E402
from analysis.isoflop import fit_isoflop  # noqa: E402
from analysis.optimum import Method  # noqa: E402
from analysis.synthetic import isoflop_sweep  # noqa: E402

LAWS = {  # (E, A, B, alpha, beta): Hoffmann et al. 2022; Besiroglu et al. 2024; an asymmetric one
    "hoffmann": (1.69, 406.4, 410.7, 0.34, 0.28),
    "epoch": (1.817, 482.0, 2085.4, 0.348, 0.366),
    "asymmetric": (1.69, 406.4, 410.7, 0.25, 0.50),
}
BUDGETS = np.geomspace(1e18, 1e21, 7)
SHAPES = {  # sizes, decades, position of N_opt (fractional index) per budget
    "centred": (9, 2.0, np.full(7, 4.0)),
    "lopsided": (11, 3.0, np.full(7, 2.0)),
    "drifting": (12, 4.0, np.linspace(1.5, 9.5, 7)),
}
METHODS = {
    "parabola": Method("parabola"),
    "window K=2": Method("window", window=2),
    "window K=3": Method("window", window=3),
    "window K=4": Method("window", window=4),
    "window 5%": Method("window", margin=0.05),
    "akima": Method("akima"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=10, help="sweeps per law, shape and noise")
    parser.add_argument("--resamples", type=int, default=100, help="bootstrap resamples per fit")
    args = parser.parse_args()
    rows, t0 = [], time.perf_counter()
    for shape, (sizes, decades, positions) in SHAPES.items():
        for noise in (0.002, 0.01):
            for law_name, params in LAWS.items():
                truth = ChinchillaFit.given(*params)
                for rep in range(args.reps):
                    sweep = isoflop_sweep(
                        truth,
                        BUDGETS,
                        sizes=sizes,
                        decades=decades,
                        positions=positions,
                        noise=noise,
                        seed=rep,
                    )
                    for name, method in METHODS.items():
                        rows.append(
                            dict(
                                shape=shape,
                                noise=noise,
                                law=law_name,
                                method=name,
                                **_errors(sweep, method, truth.a, args.resamples, rep),
                            )
                        )
    df = pd.DataFrame(rows)
    print(
        f"{len(df) // len(METHODS)} sweeps x {len(METHODS)} methods, {args.resamples} "
        f"resamples each, {time.perf_counter() - t0:.0f} s\n"
    )
    for weighting in ("weighted", "unweighted"):
        err = df[weighting]
        table = (
            df.assign(err=err, abs=err.abs())
            .groupby(["shape", "noise", "method"])
            .agg(
                bias=("err", "mean"),
                mean_abs=("abs", "mean"),
                p90_abs=("abs", lambda v: v.quantile(0.9)),
                failed=("err", lambda v: int(v.isna().sum())),
            )
        )
        print(
            f"error of a, {weighting} regression (bias, mean |error|, 90th pct |error|, "
            f"failed fits):"
        )
        print(
            table.unstack("method")
            .swaplevel(axis=1)
            .sort_index(axis=1)
            .to_string(float_format=lambda v: f"{v:+.3f}" if abs(v) < 1 else f"{v:.0f}")
        )
        overall = df.assign(abs=err.abs()).groupby("method")["abs"].mean().sort_values()
        print(
            f"\nmean |error| over all sweeps ({weighting}): "
            + ", ".join(f"{m} {v:.4f}" for m, v in overall.items())
            + "\n"
        )


def _errors(sweep: pd.DataFrame, method: Method, a: float, resamples: int, seed: int) -> dict:
    try:
        fit = fit_isoflop(
            sweep["budget"],
            sweep["compute"],
            sweep["n"],
            sweep["loss"],
            method=method,
            n_resamples=resamples,
            seed=seed,
        )
    except AnalysisError:
        return dict(weighted=np.nan, unweighted=np.nan)
    unweighted = fit.alternatives.get("unweighted", fit.frontier)
    return dict(
        weighted=fit.exponent - a if fit.frontier.weighted else np.nan, unweighted=unweighted.a - a
    )


if __name__ == "__main__":
    main()
