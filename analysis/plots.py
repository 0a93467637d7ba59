"""PNG figures: fitted laws, IsoFLOP parabolas, compute-optimal frontier, loss curves."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.groups import GroupFits  # noqa: E402
from analysis.isoflop import IsoFlopFit  # noqa: E402

_BEYOND = 3.0  # draw fitted curves this factor past the data, dashed (extrapolation)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_group_fits(points: pd.DataFrame, group: pd.Series, fits: GroupFits, path: Path) -> Path:
    """Loss against x per group, with each group's fitted law (dashed where extrapolated),
    the law with its numbers in the legend."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, (name, rows) in enumerate(points.groupby(group, sort=True)):
        color = f"C{i}"
        ok = np.isfinite(rows[fits.y]) & ~rows["diverged"].astype(bool)
        ax.scatter(rows.loc[ok, fits.x], rows.loc[ok, fits.y], color=color, s=18, label=name)
        if name in fits.fits:
            fit = fits.fits[name]
            inside = np.geomspace(fit.x_min, fit.x_max, 100)
            beyond = np.geomspace(fit.x_max, fit.x_max * _BEYOND, 30)
            ax.plot(inside, fit.predict(inside), color=color, label=fit.formula())
            ax.plot(beyond, fit.predict(beyond), color=color, ls="--")
    pure = all(not f.irreducible for f in fits.fits.values())
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=fits.x,
        ylabel=fits.y,
        title=f"{fits.y} vs {fits.x}: L = {'' if pure else 'E + '}A x^-alpha",
    )
    _plain_log_ticks(ax.yaxis)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_isoflop(
    budget: np.ndarray, n: np.ndarray, loss: np.ndarray, fit: IsoFlopFit, path: Path
) -> Path:
    """Left: loss against N per budget with the fitted curve and its minimum (red: flagged,
    hollow: excluded); right: the minima against C with the fitted N_opt = k C^a."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    budget = np.asarray(budget).astype(str)
    for i, (label, row) in enumerate(fit.budgets.iterrows()):
        mine = (budget == label) & np.isfinite(loss)
        left.scatter(n[mine], loss[mine], color=f"C{i}", s=18, label=f"C = {label}")
        profile = fit.profiles[label]
        if profile.curve is not None:
            u = np.linspace(*profile.span, 100)
            left.plot(np.exp(u), profile.curve(u), color=f"C{i}")
        if np.isfinite(row.n_opt):
            left.scatter(
                [row.n_opt],
                [row.loss_opt],
                marker="*",
                s=120,
                zorder=3,
                edgecolor="k",
                color="red" if row.flagged else f"C{i}",
            )
    left.set(
        xscale="log",
        xlabel="parameters N",
        ylabel="loss",
        title=f"IsoFLOP profiles ({fit.method.describe()})",
    )
    left.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # labels would overlap
    left.legend(fontsize=8)
    used = fit.budgets.loc[list(fit.frontier.budgets)]
    left_out = fit.budgets.drop(index=list(fit.frontier.budgets))
    c = fit.budgets["compute"].to_numpy()
    grid = np.geomspace(np.nanmin(c), np.nanmax(c) * _BEYOND, 50)
    right.errorbar(
        used["compute"],
        used["n_opt"],
        yerr=_sigma_bars(used),
        fmt="o",
        color="k",
        ms=4,
        label="minima (bars: 1 sigma)",
    )
    right.scatter(
        left_out["compute"],
        left_out["n_opt"],
        facecolor="none",
        edgecolor="k",
        label="minima left out",
    )
    right.plot(
        grid,
        fit.n_opt(grid),
        label=f"N_opt = {fit.coefficient:.3g} C^{fit.exponent:.3f}"
        + (" (weighted)" if fit.frontier.weighted else ""),
    )
    right.set(
        xscale="log",
        yscale="log",
        xlabel="compute C (FLOPs)",
        ylabel="N_opt",
        title="compute-optimal model size",
    )
    right.legend(fontsize=8)
    return _save(fig, path)


def _sigma_bars(budgets: pd.DataFrame) -> np.ndarray | None:
    """Asymmetric error bars of N_opt from sigma of ln N_opt, or None without sigmas."""
    sigma = budgets["sigma"].to_numpy(float)
    if not np.isfinite(sigma).any():
        return None
    n = budgets["n_opt"].to_numpy(float)
    sigma = np.nan_to_num(sigma)
    return np.vstack([n - n * np.exp(-sigma), n * np.exp(sigma) - n])


def _plain_log_ticks(axis: matplotlib.axis.Axis) -> None:
    """A log loss axis spans well under a decade: label it 1.8, 1.9, 2, not 1.8 x 10^0."""
    axis.set_major_formatter(matplotlib.ticker.LogFormatter())
    axis.set_minor_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=False))


def plot_frontier(
    compute_range: tuple[float, float],
    laws: Mapping[str, Callable[[np.ndarray], np.ndarray]],
    path: Path,
    *,
    points: pd.DataFrame | None = None,
    intervals: pd.DataFrame | None = None,
) -> Path:
    """Compute-optimal N_opt(C) per law; ``points`` (columns compute, n, loss) shown coloured by
    loss; ``intervals`` (columns compute, lo, hi) drawn as bootstrap error bars."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if points is not None:
        sc = ax.scatter(points["compute"], points["n"], c=points["loss"], s=14, cmap="viridis")
        fig.colorbar(sc, ax=ax, label="loss")
    grid = np.geomspace(*compute_range, 100)
    for i, (label, n_opt) in enumerate(laws.items()):
        ax.plot(grid, n_opt(grid), color=f"C{i + 1}", label=label)
    if intervals is not None:
        mid = np.sqrt(intervals["lo"] * intervals["hi"])
        ax.errorbar(
            intervals["compute"],
            mid,
            yerr=[mid - intervals["lo"], intervals["hi"] - mid],
            fmt="none",
            ecolor="k",
            capsize=3,
            label="bootstrap interval",
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="compute C (FLOPs)",
        ylabel="parameters N",
        title="compute-optimal frontier",
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_curves(
    runs: pd.DataFrame,
    histories: pd.DataFrame,
    axis: str,
    variant: pd.Series,
    metric: str,
    path: Path,
    common_range: Sequence[float] | None = None,
) -> Path:
    """Every run's ``metric`` against ``axis``, coloured by variant; the range that every run
    covers shaded (``common_range``, None when the runs share none)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colors = {v: f"C{i}" for i, v in enumerate(sorted(variant.unique()))}
    values = histories[histories["metric"] == metric]
    for run_id, name in zip(runs["run_id"], variant):
        curve = values[values["run_id"] == run_id].sort_values(axis)
        ax.plot(curve[axis], curve["value"], color=colors[name], alpha=0.6, lw=1)
    for name, color in colors.items():
        ax.plot([], [], color=color, label=name)
    if common_range is not None:
        ax.axvspan(*common_range, color="0.9", zorder=0, label="range all runs cover")
    ax.set(xscale="log", yscale="log", xlabel=axis, ylabel=metric, title=f"{metric} vs {axis}")
    _plain_log_ticks(ax.yaxis)
    ax.legend(fontsize=8)
    return _save(fig, path)
