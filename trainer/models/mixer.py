"""MLP-Mixer for language modelling (Tolstikhin et al. 2021), causal by masking.

Token mixing is an MLP along the sequence axis with a hidden size of one unit per position.
Causal: both of its T x T maps are lower-triangular, so hidden unit s sees inputs <= s and
output t sees hidden units <= t, and position t never sees t+1. Bidirectional (MLM): full maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.common import Block, CausalLM, MLPConfig, SequenceMap, make_mlp
from trainer.models.registry import MODELS
from trainer.models.roles import Declarations


@dataclass
class MixerConfig(MLPConfig):
    """MLP-Mixer (Tolstikhin et al. 2021) for LM: T x T token-mixing MLP (lower-triangular when
    causal) + channel MLP, pre-norm, no positions (token mixing is position-aware)."""

    name: str = "mixer"


class TokenMixing(nn.Module):
    """Two T x T maps over positions with a GELU between them."""

    def __init__(self, seq_len: int, causal: bool):
        super().__init__()
        self.w1, self.w2 = SequenceMap(seq_len, causal), SequenceMap(seq_len, causal)
        # Scale each row's init by 1/sqrt(its fan-in), so that under the causal mask early
        # positions are not drowned out and late ones do not blow up.
        if self.w1.weight.is_meta:  # built to be sized (trainer/models/sizing.py: on_meta)
            return
        with torch.no_grad():
            self.w1.weight.normal_().mul_(self.w1.fan_in().rsqrt())
            self.w2.weight.normal_().mul_(self.w2.fan_in().rsqrt() * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, D]
        T = x.size(1)
        return self.w2.matrix(T) @ F.gelu(self.w1.matrix(T) @ x)

    def param_roles(self) -> Declarations:
        yield from self.w1.param_roles()
        yield from self.w2.param_roles()


class MixerBlock(Block):
    def __init__(self, cfg: MixerConfig, causal: bool):
        super().__init__(cfg, TokenMixing(cfg.max_seq_len, causal), make_mlp(cfg))

    def mixing_flops_per_token(self, seq_len: int) -> int:
        # The two T x T maps act once per channel: 2*T*d FLOPs per token each forward
        # (computed densely), x3 for training.
        return 2 * 6 * seq_len * self.d_model


@MODELS.register(MixerConfig)
def build(cfg: MixerConfig, vocab_size: int, *, causal: bool) -> CausalLM:
    return CausalLM(cfg, vocab_size, [MixerBlock(cfg, causal) for _ in range(cfg.n_layers)])
