"""Memory-efficient adaptive optimizers from pytorch-optimizer: the second-moment statistics of
an m x n matrix take O(m + n) memory instead of Adam's O(m * n)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trainer.optim.base import OPTIMIZERS, OptimConfig, check_unit, param_groups
from trainer.registry import check


@dataclass
class SM3Config(OptimConfig):
    name: str = "sm3"
    momentum: float = 0.9           # EMA (heavy-ball) only: pytorch-optimizer has no Nesterov
    beta: float = 0.0               # 0: accumulate squared gradients (Adagrad-like), as published
    eps: float = 1e-30

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unit("momentum", self.momentum)
        check_unit("beta", self.beta)
        check(self.weight_decay == 0, "optim.weight_decay", self.weight_decay,
              "pytorch-optimizer's SM3 has no weight decay; use 0")


@dataclass
class AdafactorConfig(OptimConfig):
    name: str = "adafactor"
    beta1: float = 0.0              # 0: no momentum (the paper's memory-saving setting)
    beta2: float = 0.999            # cap on the increasing decay 1 - t^decay_rate
    decay_rate: float = -0.8
    clip_threshold: float = 1.0     # update clipping d: RMS of an update is at most d
    scale_parameter: bool = True    # step size relative to the parameter's RMS

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unit("beta1", self.beta1)
        check_unit("beta2", self.beta2)
        check(-1 <= self.decay_rate < 0, "optim.decay_rate", self.decay_rate,
              "in [-1, 0): beta2_t = 1 - t^decay_rate must rise towards 1")
        check(self.clip_threshold > 0, "optim.clip_threshold", self.clip_threshold, "> 0")


@OPTIMIZERS.register("sm3", SM3Config)
def sm3(cfg: SM3Config, model: nn.Module) -> torch.optim.Optimizer:
    from pytorch_optimizer import SM3

    # Anil et al. 2019, Alg. SM3-II: one accumulator per row and per column; an entry's
    # second moment is the min over its row's and column's accumulators.
    return SM3(param_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum,
               beta=cfg.beta, eps=cfg.eps)


@OPTIMIZERS.register("adafactor", AdafactorConfig)
def adafactor(cfg: AdafactorConfig, model: nn.Module) -> torch.optim.Optimizer:
    from pytorch_optimizer import AdaFactor

    # Shazeer & Stern 2018, Alg. 4: V ~ R C / sum(R) from row and column EMAs of G^2.
    # relative_step=False: optim.lr times the schedule replaces the paper's min(1e-2, 1/sqrt(t)).
    return AdaFactor(param_groups(model, cfg.weight_decay), lr=cfg.lr,
                     betas=(cfg.beta1 or None, cfg.beta2), decay_rate=cfg.decay_rate,
                     clip_threshold=cfg.clip_threshold, scale_parameter=cfg.scale_parameter,
                     relative_step=False)
