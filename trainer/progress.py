"""One human-readable progress line per log interval (step, loss, throughput, ETA)."""

from __future__ import annotations

import logging

log = logging.getLogger("lmsweep")


def _duration(s: float) -> str:
    s = int(s)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def report(
    name: str,
    step: int,
    fraction: float,
    loss: float,
    tokens_per_s: float,
    seconds: float,
    val_loss: float | None = None,
) -> None:
    eta = seconds * (1 - fraction) / fraction if fraction > 0 else float("nan")
    val = f" val {val_loss:.3f}" if val_loss is not None else ""
    log.info(
        f"[{name}] step {step} ({fraction:5.1%}) loss {loss:.3f}{val} | "
        f"{tokens_per_s / 1e3:.1f}k tok/s | {_duration(seconds)} elapsed, ETA "
        f"{_duration(eta) if eta == eta else '?'}"
    )
