"""Optimizers with per-entry state: Adam(W) and SGD from torch.optim; Lion and Tiger (sign
updates) from pytorch-optimizer. Their state is one or two tensors shaped like each parameter."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trainer.optim.base import OPTIMIZERS, OptimConfig, check_eps, check_unit, param_groups
from trainer.registry import check


@dataclass
class AdamConfig(OptimConfig):
    """Adam (Kingma & Ba 2015) via torch.optim.AdamW with weight_decay 0. beta2=0.98 as in
    Cramming and RoBERTa for short, large-batch LM runs; lr tuned for the demo's small models."""

    name: str = "adam"
    lr: float = 3e-3
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-8

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unit("beta1", self.beta1)
        check_unit("beta2", self.beta2)
        check_eps(self.eps)


@dataclass
class AdamWConfig(AdamConfig):
    """AdamW (Loshchilov & Hutter 2019) via torch.optim.AdamW: beta2=0.95 and decoupled weight
    decay 0.1 as in GPT-3 (Brown et al. 2020, App. B) and Chinchilla; lr as AdamConfig."""

    name: str = "adamw"
    beta2: float = 0.95
    weight_decay: float = 0.1


@dataclass
class SGDConfig(OptimConfig):
    """SGD with Nesterov momentum (Sutskever et al. 2013) via torch.optim.SGD. lr 0.1 and momentum
    0.9 are the classic starting point (He et al. 2016, ResNet); no weight decay, as torch's is
    coupled L2 rather than decoupled."""

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unit("momentum", self.momentum)
        check(
            self.momentum > 0 or not self.nesterov,
            "optim.nesterov",
            self.nesterov,
            "Nesterov needs optim.momentum > 0",
        )
        check(
            self.weight_decay == 0,
            "optim.weight_decay",
            self.weight_decay,
            "torch SGD's weight decay is coupled (L2), not decoupled; use 0",
        )


@dataclass
class LionConfig(OptimConfig):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms") from
    pytorch-optimizer. betas (0.9, 0.99) as in the paper; the paper advises an lr 3-10x smaller
    than AdamW's (a sign update has a larger norm), so AdamConfig's / 10. Weight decay is
    3-10x larger than AdamW's in the paper; AdamConfig has none, so neither does this."""

    name: str = "lion"
    # rounded to the decimal: 3e-3 / 10 is 3.0000000000000003e-4 in binary floating point
    lr: float = round(AdamConfig.lr / 10, 12)
    beta1: float = 0.9  # interpolation for the update's sign
    beta2: float = 0.99  # momentum tracking

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unit("beta1", self.beta1)
        check_unit("beta2", self.beta2)


@dataclass
class TigerConfig(OptimConfig):
    """Tiger, "a tight-fisted optimizer" (Su 2023, github.com/bojone/tiger), from
    pytorch-optimizer: Lion with one beta, so the momentum is the only state. beta 0.965 and
    weight decay 0.01 as in the reference. pytorch-optimizer's Tiger takes plain sign steps (the
    reference scales them per tensor), so its lr is set as for Lion (LionConfig)."""

    name: str = "tiger"
    lr: float = LionConfig.lr
    weight_decay: float = 0.01
    beta: float = 0.965  # Lion with beta1 = beta2: one buffer serves both

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unit("beta", self.beta)


@OPTIMIZERS.register(AdamWConfig)
@OPTIMIZERS.register(AdamConfig)
def adam(cfg: AdamConfig, model: nn.Module) -> torch.optim.Optimizer:
    # AdamW with weight_decay=0 is Adam; a non-zero decay is decoupled (Loshchilov & Hutter 2019).
    # fused: one kernel for all parameters, on CUDA and on CPU alike (3.6-5x faster than
    # foreach on 2 CPU cores at the bench shapes).
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.eps,
        fused=True,
    )


@OPTIMIZERS.register(SGDConfig)
def sgd(cfg: SGDConfig, model: nn.Module) -> torch.optim.Optimizer:
    # Nesterov in torch's form (Sutskever et al. 2013): b = mu*b + g; x -= lr * (g + mu*b).
    return torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, fused=True
    )


@OPTIMIZERS.register(LionConfig)
def lion(cfg: LionConfig, model: nn.Module) -> torch.optim.Optimizer:
    from pytorch_optimizer import Lion

    # Chen et al. 2023, Alg. 2: x -= lr * (sign(b1*m + (1-b1)*g) + wd*x); m = b2*m + (1-b2)*g.
    return Lion(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


@OPTIMIZERS.register(TigerConfig)
def tiger(cfg: TigerConfig, model: nn.Module) -> torch.optim.Optimizer:
    from pytorch_optimizer import Tiger

    # Su 2023 (github.com/bojone/tiger): m = b*m + (1-b)*g; x -= lr * (sign(m) + wd*x).
    return Tiger(param_groups(model, cfg.weight_decay), lr=cfg.lr, beta=cfg.beta)
