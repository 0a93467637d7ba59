"""A CSV in place of MLflow runs: its named columns mapped onto the runs table's.

Each row is one run's result, or, with a run column, one evaluation on a run's curve (a run's
rows are ordered by its training progress: the D, else C, else wall-clock column, whichever is
given, else file order; its last row is then its result). The N, D, C and wall-clock columns
become the runs table's ``params_total``, ``tokens``, ``flops`` and ``wall_clock_s`` (C = 6 N D
fills in whichever of D and C is missing); the loss column keeps its name; every other column
(group, seed, lr, ...) is a parameter, usable in --group-by, --collapse-seeds and --min-over
like a run's config.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from analysis.collapse import check_numeric
from analysis.errors import AnalysisError
from analysis.load import AXES, Experiment, empty_histories
from trainer import schema

N, D, C, T = "params_total", schema.TOKENS, schema.FLOPS, schema.WALL_CLOCK
# The defaults of the N and C columns, used when the CSV has them: Epoch AI's extraction of
# Hoffmann et al. 2022, Fig. 4 (tests/data/epoch_chinchilla_svg_extracted_data.csv).
DEFAULT_N, DEFAULT_C = "Model Size", "Training FLOP"
DEFAULT_LOSS = "loss"


@dataclass(frozen=True)
class Columns:
    """CSV column names given by the user (None: not given)."""

    n: str | None = None
    d: str | None = None
    c: str | None = None
    t: str | None = None
    loss: str = DEFAULT_LOSS
    weight: str | None = None
    run: str | None = None


def read_table(path: str, cols: Columns) -> Experiment:
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:  # not even a header
        raise AnalysisError(f"--csv {path!r} has no rows: the file is empty") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise AnalysisError(
            f"cannot read --csv {path!r}: {getattr(err, 'strerror', None) or err}"
        ) from None
    if df.empty:
        raise AnalysisError(
            f"--csv {path!r} has no rows: only a header ({', '.join(map(str, df.columns))})"
        )
    cols = replace(
        cols,
        n=cols.n or (DEFAULT_N if DEFAULT_N in df else None),
        c=cols.c or (DEFAULT_C if DEFAULT_C in df and cols.d is None else None),
    )
    for option, column in (
        ("--n-col", cols.n),
        ("--d-col", cols.d),
        ("--c-col", cols.c),
        ("--t-col", cols.t),
        ("--loss-col", cols.loss),
        ("--weight-col", cols.weight),
        ("--run-col", cols.run),
    ):
        if column is not None and column not in df.columns:
            raise AnalysisError(
                f"--csv {path!r} has no column {column!r} ({option}); "
                f"columns: {', '.join(map(str, df.columns))}"
            )
    for option, column in (("--loss-col", cols.loss), ("--weight-col", cols.weight)):
        if column is not None:
            check_numeric(df, column, option)
    for option, column in (
        ("--n-col", cols.n),
        ("--d-col", cols.d),
        ("--c-col", cols.c),
        ("--t-col", cols.t),
    ):
        if column is not None:
            _check_numbers(df, column, option)
    if cols.weight is not None:
        _check_weights(df, cols.weight)
    special = {cols.loss, cols.weight, cols.run, cols.t} - {None}
    params = tuple(c for c in df.columns if c not in special)
    rows = df.assign(
        **_measures(df, cols), run_id=df[cols.run].astype(str) if cols.run else df.index.astype(str)
    )
    rows = rows.assign(
        run_name=rows["run_id"],
        diverged=~np.isfinite(pd.to_numeric(df[cols.loss], errors="coerce")),
    )
    if cols.run is None:
        return Experiment(name=path, runs=rows, histories=empty_histories(), param_columns=params)
    # one row per evaluation: D and C run along the curve and are no config of the run. A run's
    # rows in order of its progress (rows without it first), not the file's: its last is its result
    progress = next((a for a, given in ((D, cols.d), (C, cols.c), (T, cols.t)) if given), None)
    if progress is not None:
        rows = rows.assign(__run=pd.factorize(rows["run_id"])[0], __progress=rows[progress])
        rows = rows.sort_values(["__run", "__progress"], kind="stable", na_position="first")
        rows = rows.drop(columns=["__run", "__progress"])
    histories = pd.DataFrame(
        {
            "run_id": rows["run_id"],
            "step": rows.groupby("run_id").cumcount(),
            **{a: rows[a] if a in rows else np.nan for a in AXES},
            "metric": schema.VAL_LOSS,
            "value": rows[cols.loss],
        }
    )
    last = rows.groupby("run_id", sort=False).tail(1).reset_index(drop=True)
    return Experiment(
        name=path,
        runs=last,
        histories=histories,
        param_columns=tuple(c for c in params if c not in (cols.d, cols.c)),
    )


def _measures(df: pd.DataFrame, cols: Columns) -> dict[str, pd.Series]:
    def col(name: str | None) -> pd.Series | None:
        return pd.to_numeric(df[name], errors="coerce") if name else None

    n, d, c, t = col(cols.n), col(cols.d), col(cols.c), col(cols.t)
    out = {N: n, T: t}
    if d is not None:
        out[D], out[C] = d, None if n is None else 6 * n * d
    elif c is not None:
        out[C], out[D] = c, None if n is None else c / (6 * n)
    return {k: v for k, v in out.items() if v is not None}


def _rows(values: pd.Series, bad: pd.Series, show: int = 3) -> str:
    """The first rows flagged in ``bad`` (numbered from 1 after the header) and their values."""
    index = np.flatnonzero(bad.to_numpy())
    shown = values.tolist()  # Python scalars: -1.0, not np.float64(-1.0)
    listed = ", ".join(f"row {i + 1}: {shown[i]!r}" for i in index[:show])
    return listed + (f" and {index.size - show} more" if index.size > show else "")


def _check_numbers(df: pd.DataFrame, column: str, option: str) -> None:
    """Refuse values of an N, D, C or wall-clock column that are present but not numbers (an
    empty cell is a missing value, left to the fits)."""
    values = df[column]
    bad = values.notna() & pd.to_numeric(values, errors="coerce").isna()
    if bad.any():
        raise AnalysisError(
            f"{option} {column!r} must hold numbers (an empty cell is a missing value); "
            f"not numbers: {_rows(values, bad)} (rows numbered from 1 after the header)"
        )


def _check_weights(df: pd.DataFrame, column: str) -> None:
    """Refuse weights that the fits would (lse.user_weights): each must be finite and >= 0."""
    weights = pd.to_numeric(df[column], errors="coerce")
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        raise AnalysisError(
            f"--weight-col {column!r} must be finite and >= 0 on every row (0 leaves a row "
            f"out); invalid: {_rows(df[column], bad)} (rows numbered from 1 after the header; "
            f"an empty cell is NaN)"
        )
