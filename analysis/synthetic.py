"""IsoFLOP grids from a known Chinchilla law, as a table: wide and lopsided as published sweeps
can be, for the method benchmark (scripts/bench_isoflop_methods.py) and the tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.budgets import budget_label


def isoflop_sweep(
    law,
    budgets: Sequence[float],
    *,
    sizes: int = 12,
    decades: float = 4.0,
    positions: Sequence[float] | None = None,
    noise: float = 0.002,
    n_seeds: int = 1,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (budget, size, seed): columns budget, compute, n, loss, seed. Per budget,
    ``sizes`` log-spaced model sizes span ``decades``, placed so that the law's N_opt (``law``:
    an ``analysis.chinchilla.ChinchillaFit``) falls at fractional index ``positions[i]`` of the
    grid (default: the middle); losses are the law's with multiplicative log-normal noise of
    relative size ``noise``, drawn independently per seed."""
    rng = np.random.default_rng(seed)
    positions = [(sizes - 1) / 2] * len(budgets) if positions is None else positions
    step = decades / (sizes - 1)
    rows = []
    for c, position in zip(budgets, positions):
        n = law.n_opt(c) * 10 ** (step * (np.arange(sizes) - position))
        truth = law.predict(n, c / (6 * n))
        for s in range(n_seeds):
            loss = truth * np.exp(noise * rng.standard_normal(sizes))
            rows.append(
                pd.DataFrame(
                    {
                        "budget": budget_label(c),
                        "compute": float(c),
                        "n": n,
                        "loss": loss,
                        "seed": s,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)
