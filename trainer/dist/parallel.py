"""How a Trainer's step runs across ranks: one object per `dist` option, the Trainer's only
view of distribution.

    par = DISTS.build(job.dist, job)              # after trainer/dist/env.py set up the ranks
    model, opt = par.wrap(model, build_optimizer)  # DDP, FSDP2 or a DeepSpeed engine
    for i in range(micro-batches of this rank):
        w = par.next_batch(sequences, micro_batch)  # this rank's share of the global batch
        with par.accumulating(last=...):          # gradient sync on the last micro-batch only
            par.backward(loss / accumulation)
    loss = par.mean(loss)                          # the global batch's mean loss

Each option's builder (trainer/dist/config.py) names its class here; the class also names the
option's checkpoint format (`checkpoints`, trainer/dist/checkpoint.py). `Parallel` itself is
dist=none and does exactly what the Trainer did before there was a `dist` group, so a
one-process run is unchanged bit for bit.

The global batch of a step is micro-batch x accumulation x ranks. Rank r's i-th micro-batch
is the (i * ranks + r)-th micro-batch a one-process run would read, so together the ranks
read the same windows per step, in the same micro-batches; DDP, FSDP2 and ZeRO average the
gradients over ranks, and each rank divides by its own accumulation: the update is that of
the one-process step. Causal LM losses then match a one-process run to float rounding;
mlm draws its masks per rank (same rate, other positions).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager

import numpy as np
import torch
from torch import nn

from trainer import schema
from trainer.dist import ranks
from trainer.dist.checkpoint import Checkpoints, Sharded
from trainer.dist.config import DistConfig
from trainer.perf import uses_bf16

BuildOptimizer = Callable[[nn.Module], torch.optim.Optimizer]
TAG_PREFIX = schema.TAG_PREFIX + "dist."  # lmsweep.dist.backend, .world_size, .zero_stage
PEAK_MEMORY = "peak_memory_mib"  # per rank: peak_memory_mib_rank_<r>, at the end


class ModelView:
    """What the objective and evaluation see as the model: its attributes (vocab_size, ...),
    with the forward pass through the wrapper (DDP's gradient hooks, FSDP2's and ZeRO-3's
    parameter gathering). CausalLM.loss is its forward, so `loss()` calls the wrapper."""

    def __init__(self, wrapper: Any, model: nn.Module):
        self._wrapper, self._model = wrapper, model

    def loss(self, idx: torch.Tensor, targets: torch.Tensor, *, z_loss: float) -> torch.Tensor:
        return self._wrapper(idx, targets, z_loss)

    @property
    def module(self) -> nn.Module:
        """The model itself (its parameters and state dict)."""
        return self._model

    def train(self, mode: bool = True) -> "ModelView":
        self._wrapper.train(mode)
        return self

    def eval(self) -> "ModelView":
        return self.train(False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class Parallel:
    """dist=none: one process, one device."""

    owns_step = False  # True: the wrapper clips, steps and skips non-finite steps itself
    checkpoints: type[Checkpoints] = Checkpoints  # the format of the job's checkpoints

    def __init__(self, cfg: DistConfig, job: Any = None):
        self.cfg, self.job = cfg, job
        self.rank, self.world = ranks.rank(), ranks.world()

    def wrap(
        self, model: nn.Module, build_optimizer: BuildOptimizer
    ) -> tuple[Any, torch.optim.Optimizer]:
        return model, build_optimizer(model)

    def compile(self, model: Any) -> None:
        """torch.compile the model in place (its state_dict keys unchanged); a wrapper's
        inner module, so that the wrapper's own hooks stay outside the graph."""
        getattr(model, "module", model).compile()

    def next_batch(self, seqs: Any, micro_batch: int) -> np.ndarray:
        """This rank's next micro-batch of the global batch's windows."""
        if self.world == 1:
            return seqs.next(micro_batch)
        return seqs.next_shard(micro_batch * self.world, self.rank, self.world)

    def accumulating(self, last: bool) -> ContextManager:
        """Around a micro-batch's forward and backward: gradients are synchronised on the
        last micro-batch of the step only."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def mean(self, rank_mean: float) -> float:
        """The global batch's mean loss from each rank's mean over its micro-batches."""
        return rank_mean

    def step(self) -> tuple[float, bool]:
        """(grad norm, applied) where the wrapper owns the optimizer step (`owns_step`)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """How the job was distributed: the run's tags `lmsweep.dist.<key>`."""
        return {}

    def tags(self) -> dict[str, Any]:
        return {f"{TAG_PREFIX}{k}": v for k, v in self.describe().items()}

    def memory_metrics(self) -> dict[str, float]:
        """Each rank's peak memory in MiB (a collective: every rank calls it)."""
        return {}

    def local_view(self, opt: Any) -> Any:
        """The optimizer as this rank holds it (its state and parameters as plain tensors:
        trainer/optim/state.py counts their storage)."""
        return opt


class DataParallel(Parallel):
    """What every multi-rank option shares: the loss average, the run's description and
    torch.distributed.checkpoint."""

    checkpoints = Sharded

    def mean(self, rank_mean: float) -> float:
        return ranks.total(rank_mean) / self.world

    def describe(self) -> dict[str, Any]:
        import torch.distributed as dist

        return {"backend": dist.get_backend(), "world_size": self.world}

    def memory_metrics(self) -> dict[str, float]:
        return {
            f"{PEAK_MEMORY}_rank_{r}": b / 2**20 for r, b in enumerate(ranks.peak_memory_bytes())
        }

    def device(self) -> torch.device:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


class DDP(DataParallel):
    def wrap(self, model: nn.Module, build_optimizer: BuildOptimizer):
        from torch.nn.parallel import DistributedDataParallel

        dev = self.device()
        # Buffers (position tables) are computed alike on every rank: no sync per forward.
        self.ddp = DistributedDataParallel(
            model,
            device_ids=[dev.index] if dev.type == "cuda" else None,
            forward_sync_buffers=False,
        )
        return ModelView(self.ddp, model), build_optimizer(model)

    def accumulating(self, last: bool) -> ContextManager:
        return contextlib.nullcontext() if last else self.ddp.no_sync()


class FSDP(DataParallel):
    """FSDP2: each block is one unit (gathered for its forward and backward, resharded after),
    the embeddings, final norm and head the root unit. Gradients are reduce-scattered after
    every micro-batch, so they stay sharded during accumulation (memory over traffic)."""

    def wrap(self, model: nn.Module, build_optimizer: BuildOptimizer):
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(self.device().type, (self.world,))
        kw: dict[str, Any] = {"mesh": mesh, "reshard_after_forward": self.cfg.sharding == "full"}
        if uses_bf16(self.job.train.precision, self.device().type == "cuda"):
            # bf16 gathers and compute, fp32 master weights and gradient reduction
            kw["mp_policy"] = MixedPrecisionPolicy(
                param_dtype=torch.bfloat16, reduce_dtype=torch.float32
            )
        for block in model.blocks:
            fully_shard(block, **kw)
        fully_shard(model, **kw)
        # The optimizer is built on the sharded (DTensor) parameters.
        opt = build_optimizer(model)
        if isinstance(opt, torch.optim.SGD):
            # torch has no DTensor rule for the fused SGD kernel: the same update, foreach
            for group in opt.param_groups:
                group["fused"] = False
        return ModelView(model, model), opt

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "fsdp_sharding": self.cfg.sharding}

    def local_view(self, opt: Any) -> Any:
        from types import SimpleNamespace

        from torch.distributed.tensor import DTensor

        def local(v: Any) -> Any:
            return v.to_local() if isinstance(v, DTensor) else v

        return SimpleNamespace(
            param_groups=[{"params": [local(p) for p in g["params"]]} for g in opt.param_groups],
            state={k: {n: local(v) for n, v in st.items()} for k, st in opt.state.items()},
        )
