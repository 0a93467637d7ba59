"""MLP-Mixer for causal language modelling (Tolstikhin et al. 2021, made causal).

Token mixing is an MLP along the sequence axis whose two weight matrices are masked
lower-triangular, with a hidden size of one unit per position: hidden unit s sees inputs <= s
and output t sees hidden units <= t, so position t never sees t+1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.common import Block, CausalLM, ModelConfig, make_mlp
from trainer.models.registry import MODELS


@dataclass
class MixerConfig(ModelConfig):
    name: str = "mixer"


class CausalTokenMixing(nn.Module):
    """Two lower-triangular T x T maps with a GELU between them.

    Only the T(T+1)/2 live entries are stored, so the parameter count is the honest count of
    trainable weights (a dense masked matrix would carry T(T-1)/2 dead ones).
    """

    def __init__(self, seq_len: int):
        super().__init__()
        rows, cols = torch.tril_indices(seq_len, seq_len)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.seq_len = seq_len
        # Row s has s+1 live inputs: scale its init by 1/sqrt(s+1) so early positions are not
        # drowned out and late ones do not blow up.
        scale = (rows.float() + 1).rsqrt()
        self.w1 = nn.Parameter(torch.randn(rows.numel()) * scale)
        self.w2 = nn.Parameter(torch.randn(rows.numel()) * scale * 0.02)

    def _matrix(self, packed: torch.Tensor, T: int, dtype: torch.dtype) -> torch.Tensor:
        full = packed.new_zeros(self.seq_len, self.seq_len).index_put((self.rows, self.cols), packed)
        return full[:T, :T].to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, D]
        T = x.size(1)
        h = F.gelu(self._matrix(self.w1, T, x.dtype) @ x)
        return self._matrix(self.w2, T, x.dtype) @ h


class MixerBlock(Block):
    def __init__(self, cfg: MixerConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.tokens = CausalTokenMixing(cfg.max_seq_len)
        self.norm2 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.channels = make_mlp(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.tokens(self.norm1(x))
        return x + self.channels(self.norm2(x))

    def flops_per_token(self, seq_len: int) -> int:
        # The T x T maps act once per channel, not once per token: each costs 2*T*d FLOPs per
        # token forward (computed densely), x3 for training, in place of 6 per weight.
        d = self.norm1.normalized_shape[0]
        token_params = self.tokens.w1.numel() + self.tokens.w2.numel()
        return super().flops_per_token(seq_len) - 6 * token_params + 2 * 6 * seq_len * d


@MODELS.register("mixer", MixerConfig)
def build(cfg: MixerConfig, vocab_size: int) -> CausalLM:
    return CausalLM(cfg, vocab_size, [MixerBlock(cfg) for _ in range(cfg.n_layers)], positions=None)
