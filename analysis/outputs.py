"""Writing results: CSV / JSON files, console tables, and MLflow artifacts on the sweep run."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from analysis.bootstrap import Intervals
from analysis.plausibility import implausible


class Output:
    """The ``--out`` directory; remembers what it wrote so the CLI can report and attach it."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.written: list[Path] = []

    def path(self, name: str) -> Path:
        """Where to write ``name``; the directory is made on the first write, so a command
        that fails before writing anything leaves no empty folder behind."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / name
        self.written.append(path)
        return path

    def csv(self, name: str, df: pd.DataFrame, index: bool = False) -> Path:
        path = self.path(name)
        df.to_csv(path, index=index)
        return path

    def json(self, name: str, obj: Mapping) -> Path:
        path = self.path(name)
        path.write_text(json.dumps(_plain(obj), indent=2, allow_nan=False) + "\n")
        return path


def intervals_json(intervals: Intervals) -> dict:
    return {
        "level": intervals.level,
        "n_resamples": intervals.n_resamples,
        "resampled": intervals.resampled,
        "seed": intervals.seed,
        "implausible": implausible(intervals),
        "quantities": intervals.table.to_dict(orient="index"),
    }


def format_intervals(intervals: Intervals) -> str:
    """'quantity  estimate  [lo, hi]' lines, the interval level and what was resampled in the
    header, failed resamples per quantity, then a warning per implausible value."""
    pct = f"{100 * intervals.level:g}%"
    lines = [
        f"  {'quantity':<16} {'estimate':>12}  {pct} interval (bootstrap over "
        f"{intervals.resampled}, n={intervals.n_resamples})"
    ]
    for q, row in intervals.table.iterrows():
        failed = (
            f"  ({row.failed:.0f} of {intervals.n_resamples} resamples failed)"
            if row.failed
            else ""
        )
        lines.append(f"  {q:<16} {row.estimate:>12.5g}  [{row.lo:.5g}, {row.hi:.5g}]{failed}")
    lines += [f"  warning: {line}" for line in implausible(intervals)]
    return "\n".join(lines)


def attach(tracking_uri: str, parent_run_id: str, out: Output, artifact_path: str) -> None:
    """Log every file written this invocation as an artifact of the sweep's parent run."""
    client = MlflowClient(tracking_uri=tracking_uri)
    for path in out.written:
        client.log_artifact(parent_run_id, str(path), artifact_path=artifact_path)


def _plain(obj: object) -> object:
    """JSON-safe copy: NaN / inf become null (strict JSON has no NaN)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item"):  # numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
