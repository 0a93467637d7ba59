"""Pieces every model family shares: the config base, the LM shell, norms, MLPs, counting.

A family supplies only its blocks (and whether it wants position embeddings); the shell does
embedding, final norm, tied head, loss, parameter and FLOP accounting once for all of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch import nn

from trainer.registry import check, check_choice


@dataclass
class ModelConfig:
    name: str = MISSING
    d_model: int = 128
    n_layers: int = 4
    max_seq_len: int = 128         # longest sequence the model supports
    mlp: str = "glu"               # glu (gated, Cramming/PaLM) | gelu (plain)
    mlp_ratio: float = 4.0         # hidden width / d_model; a GLU gets 2/3 of it per branch
    bias: bool = False             # Cramming: no biases
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        check(self.d_model > 0, "model.d_model", self.d_model, "> 0")
        check(self.n_layers > 0, "model.n_layers", self.n_layers, "> 0")
        check(self.max_seq_len > 0, "model.max_seq_len", self.max_seq_len, "> 0")
        check(self.mlp_ratio > 0, "model.mlp_ratio", self.mlp_ratio, "> 0")
        check_choice("model.mlp", self.mlp, MLPS)


class Block(nn.Module):
    """A residual block; `flops_per_token` is its training cost (forward + backward)."""

    def flops_per_token(self, seq_len: int) -> int:
        # 6 FLOPs per parameter per token (Kaplan et al. 2020, Sec. 2.1); families add
        # the sequence-mixing work that is not a per-token parameter use.
        return 6 * sum(p.numel() for p in self.parameters())


class GatedMLP(nn.Module):
    """GELU-gated linear unit (Shazeer 2020, "GLU Variants"); 2/3 width keeps params at ratio*d^2*2."""

    def __init__(self, d: int, ratio: float, bias: bool):
        super().__init__()
        hidden = int(round(2 * ratio * d / 3))
        self.gate_up = nn.Linear(d, 2 * hidden, bias=bias)
        self.down = nn.Linear(hidden, d, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.gelu(gate) * up)


class PlainMLP(nn.Module):
    def __init__(self, d: int, ratio: float, bias: bool):
        super().__init__()
        hidden = int(round(ratio * d))
        self.up = nn.Linear(d, hidden, bias=bias)
        self.down = nn.Linear(hidden, d, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


MLPS = {"glu": GatedMLP, "gelu": PlainMLP}


def make_mlp(cfg: ModelConfig) -> nn.Module:
    return MLPS[cfg.mlp](cfg.d_model, cfg.mlp_ratio, cfg.bias)


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """Vaswani et al. 2017, Sec. 3.5: PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(.)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    inv = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * inv)
    pe[:, 1::2] = torch.cos(pos * inv)[:, : d // 2]
    return pe


# Parameter names of the linear maps that write into the residual stream.
RESIDUAL_OUTPUTS = ("proj.weight", "down.weight")


class CausalLM(nn.Module):
    """Token embedding (+ optional positions) -> blocks -> final norm -> (tied) head."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, blocks: list[Block],
                 positions: Optional[str]):
        super().__init__()
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, cfg.d_model)
        self.pos_embed = None
        if positions == "learned":
            self.pos_embed = nn.Embedding(cfg.max_seq_len, cfg.d_model)
        elif positions == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal_positions(cfg.max_seq_len, cfg.d_model),
                                 persistent=False)
        self.positions = positions
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.head = nn.Linear(cfg.d_model, vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        self.apply(self._init)
        # GPT-2 (Radford et al. 2019, Sec. 2.3): scale the init of each residual branch's output
        # projection by 1/sqrt(2L) so the residual stream does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith(RESIDUAL_OUTPUTS):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.size(1)
        x = self.embed(idx)
        if self.pos_embed is not None:
            x = x + self.pos_embed.weight[:T]
        elif self.positions == "sinusoidal":
            x = x + self.pos_table[:T].to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self(idx)
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))

    # --- accounting -------------------------------------------------------------------------
    def embedding_params(self) -> int:
        n = self.embed.weight.numel()
        if self.pos_embed is not None:
            n += self.pos_embed.weight.numel()
        if not self.cfg.tie_embeddings:
            n += self.head.weight.numel()
        return n

    def param_counts(self) -> tuple[int, int]:
        """(total trainable, non-embedding); a tied head counts once (Kaplan et al. 2020 convention)."""
        total = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return total, total - self.embedding_params()

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token: blocks (6N + sequence mixing) + the output projection.

        PaLM (Chowdhery et al. 2022, App. B): 6N + 12*L*H*Q*T; the head's matmul is real
        compute even when its weight is tied to the embedding, so it is counted here.
        """
        head = 6 * self.cfg.d_model * self.vocab_size
        return head + sum(b.flops_per_token(seq_len) for b in self.blocks)
