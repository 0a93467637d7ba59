"""Pieces every model family shares: the config base, the LM shell, residual branches, MLPs,
position encodings, learned T x T maps over positions, and parameter/FLOP accounting.

A family supplies only the modules inside its residual branches, each declaring the roles of
its parameters (roles.py) and each block its sequence-mixing FLOPs; the shell does embedding,
positions, the residual scheme (norm placement, ReZero, DeepNet), final norm, tied head, loss,
initialisation by role and accounting once for all of them.
"""

from __future__ import annotations

import abc
import functools
import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch import nn

from trainer.models.roles import Declarations, Declared, Role, declarations, linear, norm
from trainer.models.sizing import parse_count
from trainer.registry import check, check_choice

NORMS = ("pre", "post", "none")
# Added to the token embeddings by the shell; families with queries and keys also allow "rotary".
POSITIONS = ("none", "learned", "sinusoidal", "scaled_sinusoidal")


@dataclass
class ModelConfig:
    name: str = MISSING
    d_model: int = 128
    n_layers: int = 4
    max_seq_len: int = 128  # longest sequence the model supports
    params: Optional[str] = None  # target trainable params (10M, 1.5M, 500k): solves d_model
    mlp_ratio: float = 4.0  # hidden width / d_model of the channel unit
    ffn_hidden: Optional[int] = None  # that hidden width itself; null: from mlp_ratio
    bias: bool = False  # Cramming: no biases
    norm: str = "pre"  # pre (Xiong et al. 2020) | post (Vaswani et al. 2017) | none
    positions: str = "none"
    rezero: bool = False  # x + a*f(x), a = 0 at init (Bachlechner et al. 2020)
    deepnet: bool = False  # DeepNorm residual scaling and init (Wang et al. 2022)
    tie_embeddings: bool = True

    position_choices: ClassVar[tuple[str, ...]] = POSITIONS

    def __post_init__(self) -> None:
        check(self.d_model > 0, "model.d_model", self.d_model, "> 0")
        check(self.n_layers > 0, "model.n_layers", self.n_layers, "> 0")
        check(self.max_seq_len > 0, "model.max_seq_len", self.max_seq_len, "> 0")
        check(self.mlp_ratio > 0, "model.mlp_ratio", self.mlp_ratio, "> 0")
        check(
            self.ffn_hidden is None or self.ffn_hidden > 0,
            "model.ffn_hidden",
            self.ffn_hidden,
            "> 0, or null for mlp_ratio * d_model",
        )
        if self.params is not None:
            parse_count(self.params)
        check_choice("model.norm", self.norm, NORMS)
        check_choice("model.positions", self.positions, self.position_choices)
        check(
            not self.deepnet or self.norm == "post",
            "model.deepnet",
            self.deepnet,
            "DeepNorm rescales a post-LN residual: set model.norm=post",
        )
        check(
            not (self.rezero and self.deepnet),
            "model.rezero",
            self.rezero,
            "ReZero and DeepNet are alternative residual schemes: enable at most one",
        )

    def width_multiple(self) -> int:
        """model.params searches d_model over multiples of this (heads must divide it)."""
        return 1


def hidden_width(cfg: ModelConfig, fraction: float = 1.0, align: int = 1) -> int:
    """Width of a channel unit's hidden activation (what its output projection reads):
    model.ffn_hidden as given, else fraction * mlp_ratio * d_model to the nearest `align`."""
    return cfg.ffn_hidden or align * max(1, round(fraction * cfg.mlp_ratio * cfg.d_model / align))


class GatedMLP(nn.Module):
    """GELU-gated linear unit (Shazeer 2020, "GLU Variants"); 2/3 width keeps params at
    ratio*d^2*2, rounded to a multiple of 32 as LLaMA rounds it (Touvron et al. 2023, code's
    multiple_of): 2/3 * 4 * 128 = 341 runs slower than 352.

    Gate and up are two GEMMs, not one fused and chunked: GELU and its backward on a strided
    half ran 2x+ slower on CPU (more for large inputs), which cost more than a second GEMM
    launch saves (scripts/bench_trainer.py: 1.02x against 0.98x of the reference)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        hidden = hidden_width(cfg, 2 / 3, align=32)
        self.gate = nn.Linear(cfg.d_model, hidden, bias=cfg.bias)
        self.up = nn.Linear(cfg.d_model, hidden, bias=cfg.bias)
        self.down = nn.Linear(hidden, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.gate(x)) * self.up(x))

    def param_roles(self) -> Declarations:
        yield from linear(self.gate, Role.HIDDEN)
        yield from linear(self.up, Role.HIDDEN)
        yield from linear(self.down, Role.OUTPUT)


class PlainMLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        hidden = hidden_width(cfg)
        self.up = nn.Linear(cfg.d_model, hidden, bias=cfg.bias)
        self.down = nn.Linear(hidden, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))

    def param_roles(self) -> Declarations:
        yield from linear(self.up, Role.HIDDEN)
        yield from linear(self.down, Role.OUTPUT)


MLPS = {"glu": GatedMLP, "gelu": PlainMLP}


@dataclass
class MLPConfig(ModelConfig):
    """Families whose blocks end in a separate channel MLP (Transformer, Mixer, Synthesizer)."""

    mlp: str = "glu"  # glu (gated, Cramming/PaLM) | gelu (plain)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("model.mlp", self.mlp, tuple(MLPS))


def make_mlp(cfg: MLPConfig) -> nn.Module:
    return MLPS[cfg.mlp](cfg)


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[B, T, D] -> [B, n_heads, T, D / n_heads]."""
    B, T, D = x.shape
    return x.view(B, T, n_heads, D // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, T, d] -> [B, T, H * d]."""
    B, H, T, d = x.shape
    return x.transpose(1, 2).reshape(B, T, H * d)


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """Vaswani et al. 2017, Sec. 3.5: PE(pos, 2i) = sin(pos / 10000^(2i/d)),
    PE(pos, 2i+1) = cos(.)."""
    with torch.device("cpu"):  # a table, whatever the default device (see Rotary)
        pos = torch.arange(n, dtype=torch.float32)[:, None]
        inv = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
        pe = torch.zeros(n, d)
        pe[:, 0::2] = torch.sin(pos * inv)
        pe[:, 1::2] = torch.cos(pos * inv)[:, : d // 2]
    return pe


class Rotary(nn.Module):
    """RoPE (Su et al. 2021): rotate feature pairs of q and k by pos * 10000^(-2i/d), so q.k
    depends only on the relative position. Pairs are (i, i + d/2) rather than (2i, 2i+1): the
    same rotation up to a fixed permutation of features, which the q/k projections absorb."""

    def __init__(self, dim: int, max_seq_len: int):
        super().__init__()
        # Tables computed on the CPU whatever the default device: on the meta device (models
        # built to be sized) these ops would import torch._dynamo, ~2 s; .to(device) moves them.
        with torch.device("cpu"):
            inv = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)
            angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [..., T, dim]
        T = x.size(-2)
        cos, sin = self.cos[:T].to(x.dtype), self.sin[:T].to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


@functools.lru_cache(maxsize=None)
def packed_tril(T: int) -> torch.Tensor:
    """Flat indices (row * T + col) of the entries on or below the diagonal of a T x T matrix;
    built on the CPU once per T (on the meta device, model sizing's, tril_indices is slow)."""
    rows, cols = torch.tril_indices(T, T, device="cpu")
    return rows * T + cols


class SequenceMap(nn.Module):
    """A learned T x T map over positions, one per leading index (e.g. per head).

    Causal: only the T(T+1)/2 entries on or below the diagonal are stored, so the parameter
    count is the honest count of trainable weights (a dense masked matrix would carry T(T-1)/2
    dead ones); `matrix` fills the rest with `fill` (0 for a linear map, -inf for logits).
    Bidirectional: all T^2 entries are weights.
    """

    def __init__(self, seq_len: int, causal: bool, *lead: int):
        super().__init__()
        self.seq_len, self.causal = seq_len, causal
        if causal:
            self.register_buffer(
                "index", packed_tril(seq_len).to(torch.get_default_device()), persistent=False
            )
        self.weight = nn.Parameter(torch.empty(*lead, self.live_entries()))

    def live_entries(self) -> int:
        T = self.seq_len
        return T * (T + 1) // 2 if self.causal else T * T

    def fan_in(self) -> torch.Tensor:
        """Inputs each stored entry's output row sums over: row + 1 when causal, else T."""
        if self.causal:
            return (self.index // self.seq_len + 1).float()
        return torch.full((self.live_entries(),), float(self.seq_len))

    def matrix(self, T: int, fill: float = 0.0) -> torch.Tensor:
        S, lead = self.seq_len, self.weight.shape[:-1]
        full = self.weight
        if self.causal:
            full = full.new_full((*lead, S * S), fill).index_copy(-1, self.index, full)
        return full.view(*lead, S, S)[..., :T, :T]

    def param_roles(self) -> Declarations:
        yield Declared(self.weight, Role.MAP)


class Residual(nn.Module):
    """One residual branch around f, in the placement the config asks for:

        pre  (Xiong et al. 2020):   x + g * f(LN(x))
        post (Vaswani et al. 2017): LN(a * x + g * f(x))
        none:                       x + g * f(x)

    g = 1, or under ReZero (Bachlechner et al. 2020) a learned scalar that starts at 0 so every
    block starts as the identity (as published: norm=none rezero=true). a = 1, or DeepNet's
    up-weighting of the shortcut (set by CausalLM, which knows the depth).
    """

    def __init__(self, cfg: ModelConfig, f: nn.Module):
        super().__init__()
        self.f = f
        self.placement = cfg.norm
        self.norm = None if cfg.norm == "none" else nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.gate = nn.Parameter(torch.zeros(1)) if cfg.rezero else None
        self.alpha = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.f(self.norm(x) if self.placement == "pre" else x)
        if self.gate is not None:
            h = self.gate * h
        if self.placement == "post":
            return self.norm(self.alpha * x + h)
        return x + h

    def param_roles(self) -> Declarations:
        yield from norm(self.norm)
        if self.gate is not None:
            yield Declared(self.gate, Role.VECTOR)
        # A branch module without param_roles declares nothing: `declarations` then names
        # each of its parameters as undeclared.
        yield from getattr(self.f, "param_roles", tuple)()


class Block(nn.Module, metaclass=abc.ABCMeta):
    """One layer: residual branches applied in order; `flops_per_token` is its training cost
    (forward + backward). A family's block must count its own sequence mixing."""

    def __init__(self, cfg: ModelConfig, *branches: nn.Module):
        super().__init__()
        self.d_model = cfg.d_model
        self.branches = nn.ModuleList(Residual(cfg, f) for f in branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for branch in self.branches:
            x = branch(x)
        return x

    def param_roles(self) -> Declarations:
        for branch in self.branches:
            yield from branch.param_roles()

    def flops_per_token(self, seq_len: int) -> int:
        # 6 FLOPs per parameter per token (Kaplan et al. 2020, Sec. 2.1), except maps over
        # positions: those act once per channel, not once per token, and are counted with the
        # rest of the sequence mixing.
        per_token = sum(d.tensor().numel() for d in self.param_roles() if d.role is not Role.MAP)
        return 6 * per_token + self.mixing_flops_per_token(seq_len)

    @abc.abstractmethod
    def mixing_flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token of the work between positions that is not a per-token
        weight (QK^T and AV, T x T maps), at sequence length seq_len."""


class CausalLM(nn.Module):
    """Token embedding (+ positions) -> blocks -> final norm -> (tied) head.

    Named for its default use: the shell has no notion of direction; whether a family's token
    mixing hides the future is decided when its blocks are built (build_model(causal=...)).
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int, blocks: list[Block]):
        super().__init__()
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, cfg.d_model)
        self.pos_embed = (
            nn.Embedding(cfg.max_seq_len, cfg.d_model) if cfg.positions == "learned" else None
        )
        sinusoids = cfg.positions in ("sinusoidal", "scaled_sinusoidal")
        self.register_buffer(
            "pos_table",
            sinusoidal_positions(cfg.max_seq_len, cfg.d_model) if sinusoids else None,
            persistent=False,
        )
        # Scaled sinusoids (Hua et al. 2022; used by Cramming): one learned scalar, init 1/sqrt(d).
        self.pos_scale = (
            nn.Parameter(torch.full((1,), cfg.d_model**-0.5))
            if cfg.positions == "scaled_sinusoidal"
            else None
        )
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.head = nn.Linear(cfg.d_model, vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        branches = [m for m in self.modules() if isinstance(m, Residual)]
        if cfg.deepnet:
            for branch in branches:
                branch.alpha = len(branches) ** 0.25
        with torch.no_grad():
            for d in declarations(self):  # fails on any undeclared parameter
                self._init(d, len(branches))

    def _init(self, d: Declared, n_branches: int) -> None:
        """By role. GPT-2 (Radford et al. 2019, Sec. 2.3): N(0, 0.02), and 0.02/sqrt(2L) for
        the projections into the residual stream, so that it does not grow with depth.

        DeepNet (Wang et al. 2022, Sec. 4 and Fig. 2), decoder-only or encoder-only with N
        layers (2N branches): LN(alpha*x + f(x)) with alpha = (2N)^(1/4), and Xavier init with
        gain beta = (8N)^(-1/4) for value, output and FFN matrices (queries/keys: gain 1), each
        matrix on its own. Written per branch count M = 2N as alpha = M^(1/4),
        beta = (4M)^(-1/4), so families with one branch per block (gMLP, GAU) get the same
        per-branch scaling."""
        w = d.tensor()
        if d.role is Role.BIAS:
            nn.init.zeros_(w)
        elif d.role.hidden_matrix and self.cfg.deepnet:
            beta = 1.0 if d.role is Role.LOGIT else (4 * n_branches) ** -0.25
            nn.init.xavier_normal_(w, gain=beta)
        elif d.role is Role.OUTPUT:
            nn.init.normal_(w, std=0.02 / math.sqrt(2 * self.cfg.n_layers))
        elif d.role.hidden_matrix or d.role is Role.EMBEDDING:
            nn.init.normal_(w, std=0.02)

    def param_roles(self) -> Declarations:
        yield Declared(self.embed.weight, Role.EMBEDDING)
        if self.pos_embed is not None:
            yield Declared(self.pos_embed.weight, Role.EMBEDDING)
        if self.pos_scale is not None:
            yield Declared(self.pos_scale, Role.VECTOR)
        for block in self.blocks:
            yield from block.param_roles()
        yield from norm(self.norm)
        if not self.cfg.tie_embeddings:
            yield Declared(self.head.weight, Role.EMBEDDING)

    def forward(
        self,
        idx: torch.Tensor,
        targets: Optional[torch.Tensor] = None,
        z_loss: Optional[float] = None,
    ) -> torch.Tensor:
        """Logits [B, T, vocab]; given targets and z_loss (`loss`), the loss (one graph for
        torch.compile)."""
        T = idx.size(1)
        x = self.embed(idx)
        if self.pos_embed is not None:
            x = x + self.pos_embed.weight[:T]
        elif self.pos_table is not None:
            pe = self.pos_table[:T].to(x.dtype)
            x = x + (pe if self.pos_scale is None else self.pos_scale * pe)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.norm(x))
        if targets is None:
            return logits
        if z_loss is None:  # one source: TrainConfig.z_loss, passed by the objectives
            raise TypeError("CausalLM(idx, targets) needs z_loss=: use loss(idx, targets, z_loss=)")
        return self._loss(logits, targets, z_loss)

    def loss(self, idx: torch.Tensor, targets: torch.Tensor, *, z_loss: float) -> torch.Tensor:
        """Mean cross-entropy over targets; positions with target -100 are not scored.

        z_loss > 0 adds z_loss * mean(log Z)^2 over scored positions (PaLM, Chowdhery et al.
        2022, Sec. 5), which keeps the softmax normaliser near 1 and the logits from drifting;
        objectives pass it for training micro-batches only."""
        return self(idx, targets, z_loss)

    @staticmethod
    def _loss(logits: torch.Tensor, targets: torch.Tensor, z_loss: float) -> torch.Tensor:
        flat, targets = logits.float().view(-1, logits.size(-1)), targets.reshape(-1)
        loss = F.cross_entropy(flat, targets)
        if z_loss > 0:  # a masked mean: no data-dependent shapes to compile
            scored = (targets != -100).float()
            log_z = torch.logsumexp(flat, dim=-1)
            loss = loss + z_loss * (log_z.pow(2) * scored).sum() / scored.sum()
        return loss

    # --- accounting -------------------------------------------------------------------------
    def embedding_params(self) -> int:
        n = self.embed.weight.numel()
        if self.pos_embed is not None:
            n += self.pos_embed.weight.numel()
        if self.pos_scale is not None:
            n += self.pos_scale.numel()
        if not self.cfg.tie_embeddings:
            n += self.head.weight.numel()
        return n

    def param_counts(self) -> tuple[int, int]:
        """(total trainable, non-embedding); a tied head counts once (Kaplan et al. 2020
        convention)."""
        total = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return total, total - self.embedding_params()

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token: blocks (6N + sequence mixing) + the output projection.

        PaLM (Chowdhery et al. 2022, App. B): 6N + 12*L*H*Q*T; the head's matmul is real
        compute even when its weight is tied to the embedding, so it is counted here.
        """
        head = 6 * self.cfg.d_model * self.vocab_size
        return head + sum(b.flops_per_token(seq_len) for b in self.blocks)
