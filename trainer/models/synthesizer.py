"""Synthesizer (Tay et al. 2021): a Transformer whose attention weights are synthesized
instead of computed from query-key dot products; values and the MLP are unchanged.

    dense:  B_h(x_i) = W2 ReLU(W1 x_i)   one logit per key position, from the query token alone
    random: B_h = R_h                    a learned T x T logit matrix per head, input-independent
    Y = softmax(B) X W_v, per head

Causal: logits of future keys are -inf before the softmax (random: not even stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from trainer.models.common import (
    POSITIONS,
    Block,
    CausalLM,
    SequenceMap,
    make_mlp,
    merge_heads,
    split_heads,
)
from trainer.models.registry import MODELS
from trainer.models.roles import Declarations, Role, linear
from trainer.models.transformer import TransformerConfig
from trainer.registry import check_choice

SYNTHESES = ("dense", "random")


@dataclass
class SynthesizerConfig(TransformerConfig):
    """Synthesizer (Tay et al. 2021): the Transformer above with attention weights synthesized
    per query token (dense) or learned outright (random), causally masked before the softmax."""

    name: str = "synthesizer"
    synthesis: str = "dense"

    position_choices: ClassVar[tuple[str, ...]] = POSITIONS  # no queries/keys to rotate

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("model.synthesis", self.synthesis, SYNTHESES)


class SynthesizedAttention(nn.Module):
    def __init__(self, cfg: SynthesizerConfig, causal: bool):
        super().__init__()
        H, T, d = cfg.n_heads, cfg.max_seq_len, cfg.d_model
        self.n_heads, self.max_len, self.causal = H, T, causal
        if cfg.synthesis == "dense":
            self.logits = nn.Sequential(
                nn.Linear(d, d, bias=cfg.bias), nn.ReLU(), nn.Linear(d, H * T, bias=cfg.bias)
            )
        else:
            self.logits = SequenceMap(T, causal, H)
            nn.init.normal_(self.logits.weight, std=0.02)
        self.v = nn.Linear(d, d, bias=cfg.bias)
        self.proj = nn.Linear(d, d, bias=cfg.bias)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Attention logits, [B or 1, H, T (queries), T (keys)], future keys at -inf if causal."""
        B, T, _ = x.shape
        if isinstance(self.logits, SequenceMap):
            return self.logits.matrix(T, fill=float("-inf")).unsqueeze(0)
        a = self.logits(x).view(B, T, self.n_heads, self.max_len)[..., :T].transpose(1, 2)
        if self.causal:
            future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            a = a.masked_fill(future, float("-inf"))
        return a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.scores(x).softmax(dim=-1)
        return self.proj(merge_heads(weights @ split_heads(self.v(x), self.n_heads)))

    def param_roles(self) -> Declarations:
        if isinstance(self.logits, SequenceMap):
            yield from self.logits.param_roles()
        else:
            yield from linear(self.logits[0], Role.LOGIT)
            yield from linear(self.logits[2], Role.LOGIT)
        yield from linear(self.v, Role.HIDDEN)
        yield from linear(self.proj, Role.OUTPUT)


class SynthesizerBlock(Block):
    def __init__(self, cfg: SynthesizerConfig, causal: bool):
        super().__init__(cfg, SynthesizedAttention(cfg, causal), make_mlp(cfg))

    def mixing_flops_per_token(self, seq_len: int) -> int:
        # Mixing the values (AV): 2*T*d per token forward, x3. Dense logits are a per-token
        # linear map (6 per weight, counted by Block); random ones act per sequence.
        return 6 * seq_len * self.d_model


@MODELS.register(SynthesizerConfig)
def build(cfg: SynthesizerConfig, vocab_size: int, *, causal: bool) -> CausalLM:
    return CausalLM(cfg, vocab_size, [SynthesizerBlock(cfg, causal) for _ in range(cfg.n_layers)])
