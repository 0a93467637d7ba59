"""Model families. Importing this package registers every family in MODELS."""
from trainer.models import mixer, transformer  # noqa: F401  (registration)
from trainer.models.common import CausalLM, ModelConfig
from trainer.models.registry import MODELS

__all__ = ["MODELS", "CausalLM", "ModelConfig", "build_model"]


def build_model(cfg: ModelConfig, vocab_size: int, causal: bool = True) -> CausalLM:
    if not causal:
        raise ValueError(f"model={cfg.name} has no bidirectional (non-causal) variant yet")
    return MODELS.build(cfg, vocab_size)
