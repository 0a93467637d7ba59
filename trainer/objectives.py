"""Training objectives (the `objective` group): how a packed window becomes a loss."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from omegaconf import MISSING

from trainer.registry import Registry

# loss(model, window [B, T+1] token ids) -> scalar loss
Loss = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]
OBJECTIVES: Registry[Callable[..., Loss]] = Registry("objective")


@dataclass
class ObjectiveConfig:
    name: str = MISSING
    causal: bool = True             # whether the model must hide future tokens


@dataclass
class CLMConfig(ObjectiveConfig):
    name: str = "clm"


@OBJECTIVES.register("clm", CLMConfig)
def clm(cfg: CLMConfig) -> Loss:
    """Next-token prediction: inputs x[:-1], targets x[1:]."""
    return lambda model, w: model.loss(w[:, :-1], w[:, 1:])
