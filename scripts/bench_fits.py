"""Wall time of the 4,500-start Chinchilla fit and of a 1,000-resample bootstrap.

    python scripts/bench_fits.py [--repeat 3] [--resamples 1000]

Runs on Epoch AI's extraction of Hoffmann et al. 2022, Fig. 4 (tests/data), 240 points after
dropping the 5 highest losses, exactly as tests/test_analysis_chinchilla.py.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.chinchilla import bootstrap_chinchilla, fit_chinchilla  # noqa: E402
from analysis.lse import grid_starts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed repetitions; the best is reported"
    )
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    df = pd.read_csv(ROOT / "tests" / "data" / "epoch_chinchilla_svg_extracted_data.csv")
    df = df[df["loss"] < np.sort(df["loss"])[-5]]
    n = df["Model Size"].to_numpy()
    d, loss = df["Training FLOP"].to_numpy() / (6 * n), df["loss"].to_numpy()
    starts = grid_starts(2, irreducible=True)

    def best_of(fn):
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t0)
        return min(times), result

    fit_s, fit = best_of(lambda: fit_chinchilla(n, d, loss, starts=starts))
    boot_s, ci = best_of(
        lambda: bootstrap_chinchilla(n, d, loss, fit, n_resamples=args.resamples, seed=0)
    )
    print(f"machine: {os.cpu_count()} CPUs; numpy {np.__version__}; best of {args.repeat}")
    print(
        f"chinchilla fit, {len(starts)} L-BFGS-B starts, {fit.n_points} points: {fit_s:.2f} s "
        f"(objective {fit.objective:.7g}, {fit.n_converged} converged)"
    )
    print(f"bootstrap, {args.resamples} resamples: {boot_s:.2f} s ({ci.n_failed} failed refits)")


if __name__ == "__main__":
    main()
