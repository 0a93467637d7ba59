"""Gated Attention Unit (Hua et al. 2022, "Transformer Quality in Linear Time", Sec. 2).

One unit replaces both attention and MLP with a single head and no softmax:

    U = SiLU(X W_u), V = SiLU(X W_v), Z = SiLU(X W_z)           (widths e, e, s)
    Q = g_q * Z + b_q,  K = g_k * Z + b_k                         (per-dim scale and offset)
    A = relu(Q K^T / n)^2,  out = (U * A V) W_o                   (n: the model's max_seq_len)

as in the paper's pseudo-code; causal: A is masked lower-triangular. Positions are RoPE on Q, K
(the paper adds a T5-style relative bias on top, omitted here). Two units have about the params
of one Transformer layer (e = 2d), so n_layers counts units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.common import POSITIONS, Block, CausalLM, ModelConfig, Rotary, hidden_width
from trainer.models.registry import MODELS
from trainer.models.roles import Declarations, Declared, Role, linear
from trainer.registry import check


@dataclass
class GAUConfig(ModelConfig):
    """Gated Attention Unit (Hua et al. 2022, "Transformer Quality in Linear Time"): one head,
    squared-ReLU attention weights gating an expanded SiLU unit, RoPE; e = 2d, s = 128."""

    name: str = "gau"
    n_layers: int = 8  # units: two GAUs hold about the params of one Transformer layer
    qk_dim: int = 128  # s, the shared query/key width (Hua et al. 2022: s = 128)
    mlp_ratio: float = 2.0  # e = 2d (Hua et al. 2022)
    positions: str = "rotary"

    position_choices: ClassVar[tuple[str, ...]] = POSITIONS + ("rotary",)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.qk_dim > 0, "model.qk_dim", self.qk_dim, "> 0")
        if self.positions == "rotary":
            check(
                self.qk_dim % 2 == 0,
                "model.qk_dim",
                self.qk_dim,
                "rotary positions rotate feature pairs: must be even",
            )


class GatedAttentionUnit(nn.Module):
    def __init__(self, cfg: GAUConfig, causal: bool):
        super().__init__()
        self.e, s = hidden_width(cfg), cfg.qk_dim
        self.uv = nn.Linear(cfg.d_model, 2 * self.e, bias=cfg.bias)
        self.qk = nn.Linear(cfg.d_model, s, bias=cfg.bias)
        # Scale and offset start as the identity, so Q = K = Z at init.
        self.qk_scale = nn.Parameter(torch.ones(2, s))
        self.qk_offset = nn.Parameter(torch.zeros(2, s))
        self.proj = nn.Linear(self.e, cfg.d_model, bias=cfg.bias)
        self.rotary = Rotary(s, cfg.max_seq_len) if cfg.positions == "rotary" else None
        self.n, self.causal = cfg.max_seq_len, causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = F.silu(self.uv(x)).chunk(2, dim=-1)
        z = F.silu(self.qk(x)).unsqueeze(-2)  # [B, T, 1, s]
        q, k = (z * self.qk_scale + self.qk_offset).unbind(-2)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        a = F.relu(q @ k.transpose(-1, -2) / self.n).square()
        if self.causal:
            a = a.tril()
        return self.proj(u * (a @ v))

    def param_roles(self) -> Declarations:
        yield from linear(self.uv, (Role.HIDDEN, self.e), (Role.HIDDEN, self.e))  # W_u, W_v
        yield from linear(self.qk, Role.LOGIT)  # Z: only forms Q, K
        yield Declared(self.qk_scale, Role.VECTOR)
        yield Declared(self.qk_offset, Role.VECTOR)
        yield from linear(self.proj, Role.OUTPUT)


class GAUBlock(Block):
    def __init__(self, cfg: GAUConfig, causal: bool):
        super().__init__(cfg, GatedAttentionUnit(cfg, causal))
        self.mixing_width = cfg.qk_dim + hidden_width(cfg)

    def mixing_flops_per_token(self, seq_len: int) -> int:
        # QK^T (2*T*s) and AV (2*T*e) per token forward, x3 for training.
        return 6 * seq_len * self.mixing_width


@MODELS.register(GAUConfig)
def build(cfg: GAUConfig, vocab_size: int, *, causal: bool) -> CausalLM:
    return CausalLM(cfg, vocab_size, [GAUBlock(cfg, causal) for _ in range(cfg.n_layers)])
