"""Plain-text tables for the terminal (the plan before a sweep, the summary after it)."""

from __future__ import annotations

import math
from typing import Optional, Sequence


def human(n: Optional[float]) -> str:
    """1234567 -> '1.23M'; None/NaN -> '?'."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "?"
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def counted(count: int, what: str) -> str:
    """ "1 GPU", "2 GPUs": a count and its noun."""
    return f"{count} {what}{'' if count == 1 else 's'}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])
