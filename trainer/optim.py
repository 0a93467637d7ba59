"""Optimizers (the `optim` group), all from maintained libraries: torch.optim, pytorch-optimizer.

Each YAML in conf/optim/ carries the defaults and names where they come from.
"""
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


@dataclass
class AdamConfig(OptimConfig):
    name: str = "adam"
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-8

    def __post_init__(self) -> None:
        super().__post_init__()
        for f in ("beta1", "beta2"):
            v = getattr(self, f)
            check(0 <= v < 1, f"optim.{f}", v, "in [0, 1)")


@dataclass
class SM3Config(OptimConfig):
    name: str = "sm3"
    momentum: float = 0.9
    beta: float = 0.0               # 0: accumulate squared gradients (Adagrad-like), as in the paper
    eps: float = 1e-30

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 <= self.momentum < 1, "optim.momentum", self.momentum, "in [0, 1)")
        check(0 <= self.beta < 1, "optim.beta", self.beta, "in [0, 1)")
        check(self.weight_decay == 0, "optim.weight_decay", self.weight_decay,
              "pytorch-optimizer's SM3 has no weight decay; use 0")


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


@OPTIMIZERS.register("adam", AdamConfig)
def adam(cfg: AdamConfig, model: nn.Module) -> torch.optim.Optimizer:
    # AdamW with weight_decay=0 is Adam; a non-zero decay is decoupled (Loshchilov & Hutter 2019).
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr,
                             betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)


@OPTIMIZERS.register("sm3", SM3Config)
def sm3(cfg: SM3Config, model: nn.Module) -> torch.optim.Optimizer:
    from pytorch_optimizer import SM3

    return SM3(param_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum,
               beta=cfg.beta, eps=cfg.eps)


def state_bytes_per_param(opt: torch.optim.Optimizer) -> float:
    """Optimizer-state memory per trainable parameter (call after the first step)."""
    n_params = sum(p.numel() for g in opt.param_groups for p in g["params"])
    state = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values()
                if torch.is_tensor(t))
    return state / max(n_params, 1)


def build_optimizer(cfg: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    return OPTIMIZERS.build(cfg, model)
