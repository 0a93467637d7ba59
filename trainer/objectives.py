"""Training objectives (the `objective` group): how a packed window becomes a loss.

An objective is built once per job, `OBJECTIVES.build(cfg, seed=job.seed, z_loss=...)`, and
called as `loss(model, window, step)`: window is [B, T+1] token ids, step the optimizer step for
training micro-batches and None for evaluation. Randomness (mlm's masks) is seeded from
(seed, step), so runs are reproducible, resumed runs see the masks they would have seen, and
every model of a sweep is scored on the same masks. z_loss (train.z_loss, PaLM's auxiliary
loss; CausalLM.loss) is added in training only: evaluation reports plain cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Optional

import numpy as np
import torch
from omegaconf import MISSING

from trainer.dist import ranks
from trainer.registry import Registry, check

# loss(model, window [B, T+1] token ids, step) -> scalar loss
Loss = Callable[[torch.nn.Module, torch.Tensor, Optional[int]], torch.Tensor]
OBJECTIVES: Registry[Callable[..., Loss]] = Registry("objective")
IGNORE = -100  # target id that cross_entropy does not score


@dataclass
class ObjectiveConfig:
    name: str = MISSING
    # Whether the model hides future tokens follows from the objective and is not a field:
    # `objective=clm objective.causal=false` would train a model that sees the next token.
    causal: ClassVar[bool] = True
    extra_tokens: int = 0  # ids appended to the data's vocabulary (mlm: [MASK])

    def __post_init__(self) -> None:
        check(self.extra_tokens >= 0, "objective.extra_tokens", self.extra_tokens, ">= 0")


@dataclass
class CLMConfig(ObjectiveConfig):
    name: str = "clm"


def training_only(z_loss: float, step: Optional[int]) -> float:
    return 0.0 if step is None else z_loss


@OBJECTIVES.register(CLMConfig)
def clm(cfg: CLMConfig, seed: int, *, z_loss: float) -> Loss:
    """Next-token prediction: inputs x[:-1], targets x[1:]."""
    return lambda model, w, step=None: model.loss(
        w[:, :-1], w[:, 1:], z_loss=training_only(z_loss, step)
    )


@dataclass
class MLMConfig(ObjectiveConfig):
    name: str = "mlm"
    causal: ClassVar[bool] = False
    extra_tokens: int = 1
    mask_prob: float = 0.15  # share of positions predicted
    replace_mask: float = 0.8  # of those, share shown as [MASK]
    replace_random: float = 0.1  # ... as a random token; the rest are shown unchanged

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.extra_tokens >= 1,
            "objective.extra_tokens",
            self.extra_tokens,
            ">= 1: the [MASK] id",
        )
        check(0 < self.mask_prob < 1, "objective.mask_prob", self.mask_prob, "in (0, 1)")
        for name in ("replace_mask", "replace_random"):
            check(
                0 <= getattr(self, name) <= 1, f"objective.{name}", getattr(self, name), "in [0, 1]"
            )
        check(
            self.replace_mask + self.replace_random <= 1,
            "objective.replace_random",
            self.replace_random,
            f"replace_mask + replace_random <= 1 (replace_mask={self.replace_mask})",
        )


def mask_tokens(
    x: torch.Tensor, cfg: MLMConfig, mask_id: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking (Devlin et al. 2019, Sec. 3.1 and App. A.1): round(mask_prob * T) positions
    per sequence (at least one), as in BERT's data generation; of those, replace_mask are shown
    as [MASK], replace_random as a random token below mask_id, the rest unchanged. Returns
    (inputs, targets): targets are the original ids there and IGNORE elsewhere."""
    B, T = x.shape
    k = max(1, round(cfg.mask_prob * T))

    def rand() -> torch.Tensor:
        return torch.rand(B, T, generator=generator, device=x.device)

    chosen = torch.zeros_like(x, dtype=torch.bool).scatter_(1, rand().topk(k, dim=1).indices, True)
    u = rand()
    random_ids = torch.randint(0, mask_id, (B, T), generator=generator, device=x.device)
    inputs = torch.where(chosen & (u < cfg.replace_mask), mask_id, x)
    inputs = torch.where(
        chosen & (u >= cfg.replace_mask) & (u < cfg.replace_mask + cfg.replace_random),
        random_ids,
        inputs,
    )
    return inputs, torch.where(chosen, x, IGNORE)


class MaskedLM:
    """The mlm loss. Micro-batches of one step draw in turn from one generator seeded by
    (seed, step, rank): each rank of a distributed job masks its own data its own way, as
    one process drawing the whole batch would. Evaluation re-seeds by seed alone on every
    call, so every evaluation (on every rank) scores the same positions of the same windows."""

    def __init__(self, cfg: MLMConfig, seed: int, *, z_loss: float, rank: int):
        self.cfg, self.seed = cfg, seed % 2**64  # SeedSequence takes entropy >= 0
        self.z_loss, self.rank = z_loss, rank
        self._step: Optional[int] = None
        self._gen: Optional[torch.Generator] = None

    def generator(self, step: Optional[int], device: torch.device) -> torch.Generator:
        key = [self.seed, 0, 0] if step is None else [self.seed, 1, step, self.rank]
        if step is None or step != self._step or self._gen is None:
            seed = int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0])
            self._step, self._gen = step, torch.Generator(device=device).manual_seed(seed)
        return self._gen

    def __call__(
        self, model: torch.nn.Module, w: torch.Tensor, step: Optional[int] = None
    ) -> torch.Tensor:
        x = w[:, :-1]  # the model supports T = seq_len positions
        mask_id = model.vocab_size - self.cfg.extra_tokens
        inputs, targets = mask_tokens(x, self.cfg, mask_id, self.generator(step, x.device))
        return model.loss(inputs, targets, z_loss=training_only(self.z_loss, step))


@OBJECTIVES.register(MLMConfig)
def mlm(cfg: MLMConfig, seed: int, *, z_loss: float) -> Loss:
    # this rank in a distributed job, else 0
    return MaskedLM(cfg, seed, z_loss=z_loss, rank=ranks.rank())
