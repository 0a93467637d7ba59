"""Model families. Importing this package registers every family in MODELS."""

from trainer.models import gau, gmlp, mixer, synthesizer, transformer  # noqa: F401  (registration)
from trainer.models.common import CausalLM, ModelConfig
from trainer.models.registry import MODELS
from trainer.models.sizing import count_params, solve_width

__all__ = ["MODELS", "CausalLM", "ModelConfig", "build_model", "count_params", "solve_width"]


def build_model(cfg: ModelConfig, vocab_size: int, *, causal: bool) -> CausalLM:
    """causal: the objective's (ObjectiveConfig.causal); False: every family's token mixing
    sees the whole sequence (for MLM)."""
    return MODELS.build(cfg, vocab_size, causal=causal)
