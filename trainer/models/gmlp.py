"""gMLP (Liu et al. 2021, "Pay Attention to MLPs"): channel MLPs with a spatial gating unit.

    Z = GELU(X U), split into halves Z1, Z2;  s(Z) = Z1 * (W LN(Z2) + b);  out = s(Z) V

W is a T x T map over positions and b a per-position bias. W starts near zero and b at one, so
each block starts as a plain channel MLP (Sec. 2.1). Causal: W is lower-triangular (stored
packed). One residual branch per block, no position embeddings: W is position-aware.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.common import Block, CausalLM, ModelConfig, SequenceMap, hidden_width
from trainer.models.registry import MODELS
from trainer.models.roles import Declarations, Declared, Role, linear, norm


@dataclass
class GMLPConfig(ModelConfig):
    """gMLP (Liu et al. 2021, "Pay Attention to MLPs"): channel MLP gated by a T x T spatial
    projection (lower-triangular when causal), pre-norm, d_ffn = 6 d, no position embeddings."""

    name: str = "gmlp"
    mlp_ratio: float = 6.0  # d_ffn = 6 * d_model in every gMLP of Liu et al. 2021, Table 3


class SpatialGatingMLP(nn.Module):
    def __init__(self, cfg: GMLPConfig, causal: bool):
        super().__init__()
        half = hidden_width(cfg, 1 / 2)  # each half of d_ffn
        self.up = nn.Linear(cfg.d_model, 2 * half, bias=cfg.bias)
        self.norm = nn.LayerNorm(half, bias=cfg.bias)
        self.spatial = SequenceMap(cfg.max_seq_len, causal)
        self.spatial_bias = nn.Parameter(torch.ones(cfg.max_seq_len))
        self.proj = nn.Linear(half, cfg.d_model, bias=cfg.bias)
        eps = 1e-3 / cfg.max_seq_len  # "near-zero"
        nn.init.uniform_(self.spatial.weight, -eps, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.size(1)
        z1, z2 = F.gelu(self.up(x)).chunk(2, dim=-1)
        gate = self.spatial.matrix(T) @ self.norm(z2) + self.spatial_bias[:T, None]
        return self.proj(z1 * gate)

    def param_roles(self) -> Declarations:
        yield from linear(self.up, Role.HIDDEN)  # U of the paper, split after the GELU
        yield from norm(self.norm)
        yield from self.spatial.param_roles()
        yield Declared(self.spatial_bias, Role.VECTOR)  # ones at init: the gate starts open
        yield from linear(self.proj, Role.OUTPUT)


class GMLPBlock(Block):
    def __init__(self, cfg: GMLPConfig, causal: bool):
        super().__init__(cfg, SpatialGatingMLP(cfg, causal))
        self.half = hidden_width(cfg, 1 / 2)

    def mixing_flops_per_token(self, seq_len: int) -> int:
        # The T x T map acts once per gated channel: 2*T*half FLOPs per token forward, x3.
        return 6 * seq_len * self.half


@MODELS.register(GMLPConfig)
def build(cfg: GMLPConfig, vocab_size: int, *, causal: bool) -> CausalLM:
    return CausalLM(cfg, vocab_size, [GMLPBlock(cfg, causal) for _ in range(cfg.n_layers)])
