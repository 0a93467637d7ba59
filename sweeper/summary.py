"""The end-of-sweep table and the command that opens the runs in the MLflow UI."""
from __future__ import annotations

import math
from typing import Sequence

from trainer.loop import Summary


def _fmt_count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def table(rows: Sequence[Summary | str]) -> str:
    """`rows` holds a Summary per job, or the error text of a job that failed."""
    header = ("run", "params", "tokens", "wall-clock", "final val loss", "outcome")
    body = []
    for r in rows:
        if isinstance(r, Summary):
            loss = "nan" if math.isnan(r.final_val_loss) else f"{r.final_val_loss:.4f}"
            body.append((r.name, _fmt_count(r.params_total), _fmt_count(r.tokens),
                         f"{r.wall_clock_s:.1f}s", loss, r.outcome))
        else:
            body.append((r, "-", "-", "-", "-", "failed"))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    out = [line(header), line("-" * w for w in widths), *map(line, body)]
    baselines = {r.unigram_entropy for r in rows if isinstance(r, Summary)}
    if len(baselines) == 1:
        out.append(f"unigram-entropy baseline (no context): {baselines.pop():.4f} nats/token")
    return "\n".join(out)


def ui_hint(tracking_uri: str, experiment_id: str) -> str:
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri.rstrip('/')}/#/experiments/{experiment_id}"
    return f"mlflow ui --backend-store-uri {tracking_uri}   # then open experiment {experiment_id}"
