"""Adaptive gradient clipping, in a few batched (foreach) kernels instead of ~8 per parameter."""

from __future__ import annotations

from typing import Iterable

import torch


def unit_norms(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Norm per output unit (over every dimension but the first) of each >= 2-D tensor, kept
    broadcastable; the whole norm of a vector (NFNets' unitwise_norm)."""
    return [
        torch.linalg.vector_norm(t, dim=tuple(range(1, t.ndim)), keepdim=True)
        if t.ndim > 1
        else torch.linalg.vector_norm(t)
        for t in tensors
    ]


@torch.no_grad()
def adaptive_clip_(
    params: Iterable[torch.Tensor], clip: float, eps: float = 1e-3, grad_eps: float = 1e-6
) -> None:
    """Unit-wise AGC (Brock et al. 2021, NFNets Sec. 4.1), in place: each unit's gradient G_i
    becomes G_i * min(1, clip * max(|W_i|, eps) / max(|G_i|, grad_eps)), so no unit moves by
    more than `clip` times its weight norm per unit of lr under SGD."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    grads = [p.grad for p in params]
    scales = unit_norms(params)
    torch._foreach_clamp_min_(scales, eps)
    torch._foreach_mul_(scales, clip)  # the largest allowed gradient norm
    g_norms = unit_norms(grads)
    torch._foreach_clamp_min_(g_norms, grad_eps)
    torch._foreach_div_(scales, g_norms)
    torch._foreach_clamp_max_(scales, 1.0)
    torch._foreach_mul_(grads, scales)
