"""Compose and validate every job of a sweep before anything runs or is submitted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from omegaconf import DictConfig

from trainer.config import CONFIG_ERRORS, JobConfig, checked_job, in_one_line
from trainer.contract import ConfigError


@dataclass
class PlannedJob:
    index: int
    overrides: list[str]
    config: JobConfig


def validate(
    overrides_per_job: Sequence[Sequence[str]],
    compose: Callable[[list[str]], DictConfig],
    local: bool,
) -> list[PlannedJob]:
    """`compose(overrides) -> DictConfig` is Hydra's sweep-config loader. Every job is composed,
    type-checked and pre-flighted (files, sizes, devices, directories: `trainer.config.preflight`)
    and every failure collected, so one run of the command reports every bad job at once.
    `local`: the jobs run on this machine (devices are checked here, not on a cluster's nodes)."""
    planned, errors = [], []
    for i, overrides in enumerate(overrides_per_job):
        try:
            planned.append(
                PlannedJob(i, list(overrides), checked_job(compose(list(overrides)), local))
            )
        except CONFIG_ERRORS as e:
            errors.append(f"  job #{i} ({' '.join(overrides) or 'defaults'}): {in_one_line(e)}")
    if errors:
        raise ConfigError(
            f"{len(errors)} of {len(overrides_per_job)} jobs have an invalid config; "
            "nothing was launched:\n" + "\n".join(errors)
        )
    return planned
