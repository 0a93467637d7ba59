"""Writing results: CSV / JSON files, console tables, and MLflow artifacts on the sweep run."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from analysis.bootstrap import Intervals
from analysis.errors import AnalysisError
from analysis.plausibility import implausible
from trainer.tracking import client_for

# in each output folder: the files the last command wrote there (and, until it finishes, the
# ones the command before it wrote), so that a command removes its predecessor's files and
# never anything else
MANIFEST = ".analysis_files.json"


class Output:
    """The ``--out`` directory; remembers what it wrote so the CLI can report and attach it.

    Made (with its parents) and checked to be writable at once, before anything is loaded or
    fitted; ``close(ok=False)`` removes what was made if nothing was written, so a command that
    fails leaves no empty folder behind. ``close(ok=True)`` removes the files the previous
    command wrote there that this one did not (named in ``MANIFEST``), so a folder never mixes
    two commands' results."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.written: list[Path] = []
        self.removed: list[Path] = []
        self._made: list[Path] = []
        where = f"--out {directory}"
        missing = [p for p in [self.dir, *self.dir.parents] if not p.exists()]
        blocker = next((p for p in [self.dir, *self.dir.parents] if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise AnalysisError(
                f"{where}: {blocker} is a file, not a folder; name a folder for the output files"
            )
        try:
            for folder in reversed(missing):
                folder.mkdir()
                self._made.append(folder)
            with tempfile.TemporaryFile(dir=self.dir):
                pass
        except OSError as err:
            self.close(ok=False)
            raise AnalysisError(
                f"{where}: cannot write there ({err.strerror or err}); name a folder you can "
                f"write to"
            ) from None
        self._previous = self._manifest()

    def _manifest(self) -> set[str]:
        try:
            files = json.loads((self.dir / MANIFEST).read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return set()
        return {f for f in files if isinstance(f, str) and "/" not in f and f != MANIFEST}

    def _record(self, names: set[str]) -> None:
        (self.dir / MANIFEST).write_text(json.dumps({"files": sorted(names)}) + "\n")

    def path(self, name: str) -> Path:
        """Where to write ``name`` (recorded in the folder's manifest before it is written)."""
        path = self.dir / name
        if path not in self.written:
            self.written.append(path)
        self._record(self._previous | {p.name for p in self.written})
        return path

    def csv(self, name: str, df: pd.DataFrame, index: bool = False) -> Path:
        path = self.path(name)
        df.to_csv(path, index=index)
        return path

    def json(self, name: str, obj: Mapping) -> Path:
        path = self.path(name)
        path.write_text(json.dumps(_plain(obj), indent=2, allow_nan=False) + "\n")
        return path

    def close(self, ok: bool) -> None:
        """``ok``: the command finished, so remove the files of the previous command that this
        one did not write; else remove the folders made, if still empty."""
        if ok:
            mine = {p.name for p in self.written}
            for name in sorted(self._previous - mine):
                stale = self.dir / name
                if stale.is_file():
                    stale.unlink()
                    self.removed.append(stale)
            if self.written:
                self._record(mine)
            return
        for folder in reversed(self._made):
            try:
                folder.rmdir()
            except OSError:  # something was written there (or by someone else): keep it
                break


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
    client = client_for(tracking_uri)
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
