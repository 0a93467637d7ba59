"""The `optim` registry, the fields every optimizer shares, and the parameter groups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from omegaconf import MISSING
from torch import nn

from trainer.models.roles import param_kinds
from trainer.registry import Registry, check

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optim")


@dataclass
class OptimConfig:
    name: str = MISSING
    lr: float = MISSING  # every optimizer states its own (and where it comes from)
    weight_decay: float = 0.0  # decoupled; never applied to norms and biases

    def __post_init__(self) -> None:
        check(self.lr > 0, "optim.lr", self.lr, "a learning rate > 0")
        check(self.weight_decay >= 0, "optim.weight_decay", self.weight_decay, ">= 0")


def check_unit(field: str, value: float) -> None:
    """Momentum and EMA coefficients live in [0, 1)."""
    check(0 <= value < 1, f"optim.{field}", value, "in [0, 1)")


def check_eps(value: float) -> None:
    """The constant added to a denominator: below 0 the optimizers refuse it mid-job (torch:
    "Invalid epsilon value"), and at 0 a parameter without gradient steps by 0/0 (NaN)."""
    check(value > 0, "optim.eps", value, "> 0 (added to the update's denominator), e.g. 1e-8")


def param_groups(
    model: nn.Module, weight_decay: float, split_hidden_matrices: bool = False
) -> list[dict]:
    """nanoGPT's configure_optimizers, by the roles the model declares (models/roles.py):
    decay weights (matrices, embeddings, maps over positions), never gains, gates or biases.
    split_hidden_matrices: also one group per kind, each with `hidden_matrix` set (Muon)."""
    kinds = {p: k for p, k in param_kinds(model).items() if p.requires_grad}
    groups = []
    for decayed in (True, False):
        for hidden in (True, False) if split_hidden_matrices else (None,):
            params = [
                p
                for p, k in kinds.items()
                if k.decayed == decayed and hidden in (None, k.hidden_matrix)
            ]
            extra = {} if hidden is None else {"hidden_matrix": hidden}
            if params:
                groups.append(
                    {"params": params, "weight_decay": weight_decay if decayed else 0.0, **extra}
                )
    return groups


def build_optimizer(cfg: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    return OPTIMIZERS.build(cfg, model)
