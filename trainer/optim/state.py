"""Optimizer-state memory, the quantity memory-efficient optimizers (SM3, Adafactor) trade for."""

from __future__ import annotations

import enum
from typing import Any, Iterator

import torch


def _tensors(value: Any, seen: set[int]) -> Iterator[torch.Tensor]:
    """Every tensor reachable from a state value. SOAP keeps lists of per-dimension matrices,
    ScalableShampoo preconditioner and graft objects holding tensors and lists of them."""
    if id(value) in seen:
        return
    seen.add(id(value))
    if torch.is_tensor(value):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v, seen)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v, seen)
    elif hasattr(value, "__dict__") and not isinstance(value, (type, enum.Enum)):
        yield from _tensors(vars(value), seen)


def state_bytes_per_param(opt: torch.optim.Optimizer) -> float:
    """Optimizer-state memory per trainable parameter (call after the first step).

    Counted by storage, so a buffer reachable twice (an alias, a view) counts once.
    """
    n_params = sum(p.numel() for g in opt.param_groups for p in g["params"])
    storages = {}
    for t in _tensors(list(opt.state.values()), set()):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
    return sum(storages.values()) / max(n_params, 1)
