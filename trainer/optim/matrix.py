"""Optimizers that treat a weight as a matrix, from pytorch-optimizer: Shampoo and SOAP keep
per-dimension preconditioners (O(m^2 + n^2) state per m x n matrix, blocked or capped for large
dimensions); Muon orthogonalizes the momentum of each hidden matrix."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trainer.optim.base import OPTIMIZERS, OptimConfig, check_eps, check_unit, param_groups
from trainer.optim.elementwise import AdamConfig
from trainer.registry import check, check_choice

GRAFTS = ("none", "sgd", "adagrad", "rmsprop", "sqrtn")


@dataclass
class ShampooConfig(OptimConfig):
    """Shampoo (Gupta et al. 2018) in its scalable form (Anil et al. 2020, "Scalable Second Order
    Optimization for Deep Learning"): pytorch-optimizer's ScalableShampoo, a port of Google's
    distributed_shampoo. betas (0.9, 0.999), Nesterov, 25 grafted-only steps and blocks of 512
    are pytorch-optimizer's defaults. Refresh every 100 steps with RMSProp (Adam-like) grafting
    and decoupled weight decay follow the Distributed Shampoo README (Shi et al. 2023,
    facebookresearch/optimizers); pytorch-optimizer's 1000-step refresh would precondition a
    300-step demo run not even once. The graft sets the step size, so lr is AdamConfig's."""

    name: str = "shampoo"
    lr: float = AdamConfig.lr
    beta1: float = 0.9  # momentum
    beta2: float = 0.999  # EMA of the statistics (and of the graft's)
    nesterov: bool = True
    graft: str = "rmsprop"  # whose per-layer step size the update takes
    start_preconditioning_step: int = 25  # grafted steps only before this
    preconditioning_compute_steps: int = 100  # steps between inverse-root refreshes
    block_size: int = 512  # larger dimensions are split into blocks

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unit("beta1", self.beta1)
        check_unit("beta2", self.beta2)
        check_choice("optim.graft", self.graft, GRAFTS)
        for f in ("start_preconditioning_step", "preconditioning_compute_steps", "block_size"):
            check(getattr(self, f) > 0, f"optim.{f}", getattr(self, f), "> 0")


@dataclass
class SOAPConfig(OptimConfig):
    """SOAP (Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using Adam") from
    pytorch-optimizer; every default is the paper's reference implementation's (and
    pytorch-optimizer's): lr 3e-3, betas (0.95, 0.95), eps 1e-8, weight decay 0.01, eigenbasis
    refresh every 10 steps, dimensions above 10000 left unrotated."""

    name: str = "soap"
    lr: float = 3e-3
    weight_decay: float = 0.01
    beta1: float = 0.95
    beta2: float = 0.95  # also the decay of the preconditioner statistics
    eps: float = 1e-8
    precondition_frequency: int = 10  # steps between eigenbasis refreshes
    max_precondition_dim: int = 10000  # dimensions larger than this are not rotated

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unit("beta1", self.beta1)
        check_unit("beta2", self.beta2)
        check_eps(self.eps)
        check(
            self.precondition_frequency > 0,
            "optim.precondition_frequency",
            self.precondition_frequency,
            "> 0 steps",
        )
        check(
            self.max_precondition_dim > 0,
            "optim.max_precondition_dim",
            self.max_precondition_dim,
            "> 0",
        )


@dataclass
class MuonConfig(OptimConfig):
    """Muon (Jordan et al. 2024, kellerjordan.github.io/posts/muon) from pytorch-optimizer:
    momentum 0.95, Nesterov, 5 Newton-Schulz steps on hidden matrices; AdamW with betas
    (0.9, 0.95) for embeddings, head, norms and 1-D weights (pytorch-optimizer's defaults). Muon
    updates are rescaled to AdamW's RMS as in Moonlight (Liu et al. 2025), which then shares
    AdamW's lr and decay: lr as AdamConfig, weight decay 0.1 as in Moonlight."""

    name: str = "muon"
    lr: float = AdamConfig.lr
    weight_decay: float = 0.1
    momentum: float = 0.95
    nesterov: bool = True
    ns_steps: int = 5  # Newton-Schulz iterations
    adam_beta1: float = 0.9  # AdamW for everything that is not a hidden matrix
    adam_beta2: float = 0.95

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unit("momentum", self.momentum)
        check(self.ns_steps > 0, "optim.ns_steps", self.ns_steps, "> 0 iterations")
        check_unit("adam_beta1", self.adam_beta1)
        check_unit("adam_beta2", self.adam_beta2)


@OPTIMIZERS.register(ShampooConfig)
def shampoo(cfg: ShampooConfig, model: nn.Module) -> torch.optim.Optimizer:
    from pytorch_optimizer import ScalableShampoo
    from pytorch_optimizer.optimizer.utils import graft, partition, preconditioner

    # Anil et al. 2020, "Scalable Second Order Optimization": Shampoo's L^(-1/4) G R^(-1/4)
    # (Gupta et al. 2018) with L, R as EMAs of G G^T and G^T G, refreshed every few steps,
    # blocked for large dimensions, and grafted: each layer's update takes the norm of the
    # `graft` optimizer's. Plain Shampoo would keep an n x n statistic for every dimension
    # (8256^2 for a Mixer token-mixing vector at seq_len 128) and refresh it every step.
    #
    # Its state holds preconditioner and graft objects; checkpoints load with weights_only=True,
    # so those classes are allowed there. The loop builds the optimizer before it loads one.
    torch.serialization.add_safe_globals(
        [
            preconditioner.PreConditioner,
            partition.BlockPartitioner,
            partition.PreConditionerType,
            graft.Graft,
            graft.SGDGraft,
            graft.SQRTNGraft,
            graft.AdaGradGraft,
            graft.RMSPropGraft,
        ]
    )
    return ScalableShampoo(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        nesterov=cfg.nesterov,
        decoupled_weight_decay=True,
        graft_type=graft.LayerWiseGrafting[cfg.graft.upper()],
        start_preconditioning_step=cfg.start_preconditioning_step,
        preconditioning_compute_steps=cfg.preconditioning_compute_steps,
        block_size=cfg.block_size,
    )


@OPTIMIZERS.register(SOAPConfig)
def soap(cfg: SOAPConfig, model: nn.Module) -> torch.optim.Optimizer:
    from pytorch_optimizer import SOAP

    # Vyas et al. 2024, Alg. 3: Adam in the eigenbasis of Shampoo's L and R, refreshed by one
    # QR power-iteration step every precondition_frequency steps.
    return SOAP(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.eps,
        precondition_frequency=cfg.precondition_frequency,
        max_precondition_dim=cfg.max_precondition_dim,
    )


@OPTIMIZERS.register(MuonConfig)
def muon(cfg: MuonConfig, model: nn.Module) -> torch.optim.Optimizer:
    from pytorch_optimizer import Muon

    # Jordan et al. 2024: W -= lr * NewtonSchulz5(momentum) for the hidden matrices (the
    # matrices inside the blocks, by declared role); embeddings, head, maps over positions and
    # vectors take AdamW. A fused weight (QKV) is orthogonalised as one matrix, as in the first
    # modded-nanogpt records (c_attn). use_adjusted_lr scales each orthogonal update by
    # 0.2 * sqrt(max(m, n)) so its RMS matches AdamW's (Liu et al. 2025, "Muon is Scalable",
    # Sec. 2.2): one optim.lr and one decay serve both kinds of group, which the loop needs as
    # it sets every group's lr alike.
    groups = [
        {**g, "use_muon": g.pop("hidden_matrix")}
        for g in param_groups(model, cfg.weight_decay, split_hidden_matrices=True)
    ]
    return Muon(
        groups,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        ns_steps=cfg.ns_steps,
        use_adjusted_lr=True,
        adamw_lr=cfg.lr,
        adamw_betas=(cfg.adam_beta1, cfg.adam_beta2),
    )
