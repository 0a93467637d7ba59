"""Optimizers (the `optim` group), all from maintained libraries: torch.optim, pytorch-optimizer.

Every default, and where it comes from, is in the config dataclasses (conf/optim/ only names
them). Importing this package registers every optimizer in OPTIMIZERS.
"""

from trainer.optim import elementwise, factored, matrix  # noqa: F401  (registration)
from trainer.optim.base import OPTIMIZERS, OptimConfig, build_optimizer
from trainer.optim.state import state_bytes_per_param

__all__ = ["OPTIMIZERS", "OptimConfig", "build_optimizer", "state_bytes_per_param"]
