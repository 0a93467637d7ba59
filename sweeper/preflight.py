"""Compose and validate every job of a sweep before anything runs or is submitted."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from trainer.config import JobConfig, to_job


class SweepConfigError(ValueError):
    """One or more jobs of a sweep have an invalid config; nothing was launched."""


@dataclass
class PlannedJob:
    index: int
    overrides: list[str]
    config: JobConfig


def validate(overrides_per_job: Sequence[Sequence[str]], compose) -> list[PlannedJob]:
    """`compose(overrides) -> DictConfig` is Hydra's sweep-config loader. Every failure is
    collected, so one run of the command reports every bad job at once."""
    planned, errors = [], []
    for i, overrides in enumerate(overrides_per_job):
        try:
            cfg: DictConfig = compose(list(overrides))
            planned.append(PlannedJob(i, list(overrides), to_job(cfg)))
        except (OmegaConfBaseException, ValueError, KeyError, TypeError) as e:
            errors.append(f"  job #{i} ({' '.join(overrides) or 'defaults'}): {_first_lines(e)}")
    if errors:
        raise SweepConfigError(
            f"{len(errors)} of {len(overrides_per_job)} jobs have an invalid config; "
            "nothing was launched:\n" + "\n".join(errors))
    return planned


def _first_lines(e: Exception, n: int = 3) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    return " | ".join(lines[:n])
