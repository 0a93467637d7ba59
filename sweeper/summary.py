"""The end-of-sweep table and the command that opens the runs in the MLflow UI."""
from __future__ import annotations

import math
from typing import Sequence

from sweeper.tables import format_table, human
from trainer.contract import Summary


def table(rows: Sequence[Summary | str]) -> str:
    """`rows` holds a Summary per job, or the error text of a job that failed."""
    header = ("run", "params", "tokens", "wall-clock", "final val loss", "outcome")
    body = []
    for r in rows:
        if isinstance(r, Summary):
            loss = "nan" if math.isnan(r.final_val_loss) else f"{r.final_val_loss:.4f}"
            body.append((r.name, human(r.params_total), human(r.tokens),
                         f"{r.wall_clock_s:.1f}s", loss, r.outcome))
        else:
            body.append((r, "-", "-", "-", "-", "failed"))
    out = [format_table(header, body)]
    baselines = {r.unigram_entropy for r in rows if isinstance(r, Summary)}
    if len(baselines) == 1:
        out.append(f"unigram-entropy baseline (no context): {baselines.pop():.4f} nats/token")
    return "\n".join(out)


def ui_hint(tracking_uri: str, experiment_id: str) -> str:
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri.rstrip('/')}/#/experiments/{experiment_id}"
    return f"mlflow ui --backend-store-uri {tracking_uri}   # then open experiment {experiment_id}"
