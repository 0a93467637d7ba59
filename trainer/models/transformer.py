"""Decoder-only Transformer, Cramming-style by default: pre-norm, no biases, gated MLP."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.common import Block, CausalLM, ModelConfig, make_mlp
from trainer.models.registry import MODELS
from trainer.registry import check, check_choice

POSITIONS = ("learned", "sinusoidal")
NORMS = ("pre", "post")


@dataclass
class TransformerConfig(ModelConfig):
    name: str = "transformer"
    n_heads: int = 4
    norm: str = "pre"              # pre (Xiong et al. 2020) | post (Vaswani et al. 2017)
    positions: str = "learned"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_heads > 0 and self.d_model % self.n_heads == 0, "model.n_heads", self.n_heads,
              f"must divide model.d_model={self.d_model}")
        check_choice("model.positions", self.positions, POSITIONS)
        check_choice("model.norm", self.norm, NORMS)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, D // self.n_heads).unbind(2)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class TransformerBlock(Block):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.pre = cfg.norm == "pre"
        self.norm1 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.mlp = make_mlp(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre:
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.mlp(x))

    def flops_per_token(self, seq_len: int) -> int:
        d = self.attn.proj.in_features
        return super().flops_per_token(seq_len) + 12 * seq_len * d  # PaLM App. B: QK^T and AV


@MODELS.register("transformer", TransformerConfig)
def build(cfg: TransformerConfig, vocab_size: int) -> CausalLM:
    blocks = [TransformerBlock(cfg) for _ in range(cfg.n_layers)]
    return CausalLM(cfg, vocab_size, blocks, positions=cfg.positions)
