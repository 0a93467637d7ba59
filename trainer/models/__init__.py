"""Model families. Importing this package registers every family in MODELS."""
from trainer.models import mixer, transformer  # noqa: F401  (registration)
from trainer.models.common import CausalLM, ModelConfig
from trainer.models.registry import MODELS

__all__ = ["MODELS", "CausalLM", "ModelConfig", "build_model"]


def build_model(cfg: ModelConfig, vocab_size: int) -> CausalLM:
    return MODELS.build(cfg, vocab_size)
