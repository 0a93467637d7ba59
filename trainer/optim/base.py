"""The `optim` registry, the fields every optimizer shares, and the weight-decay split."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from omegaconf import MISSING
from torch import nn

from trainer.registry import Registry, check

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optim")


@dataclass
class OptimConfig:
    name: str = MISSING
    lr: float = 1e-3
    weight_decay: float = 0.0       # decoupled; never applied to norms and biases

    def __post_init__(self) -> None:
        check(self.lr > 0, "optim.lr", self.lr, "a learning rate > 0")
        check(self.weight_decay >= 0, "optim.weight_decay", self.weight_decay, ">= 0")


def check_unit(field: str, value: float) -> None:
    """Momentum and EMA coefficients live in [0, 1)."""
    check(0 <= value < 1, f"optim.{field}", value, "in [0, 1)")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices and embeddings; leave norm gains and biases alone (GPT-2/nanoGPT practice)."""
    no_decay = {id(p) for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.RMSNorm))
                for p in m.parameters(recurse=False)}
    no_decay |= {id(p) for n, p in model.named_parameters() if n.endswith("bias")}
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if id(p) not in no_decay], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) in no_decay], "weight_decay": 0.0},
    ]


def build_optimizer(cfg: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    return OPTIMIZERS.build(cfg, model)
