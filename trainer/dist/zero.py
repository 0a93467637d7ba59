"""dist=deepspeed: DeepSpeed ZeRO stage 1, 2 or 3 around lmsweep's own optimizer.

The DeepSpeed config is generated from the job's config (`ds_config`), never written by
hand: micro-batch, accumulation, gradient clipping, bf16, the ZeRO stage and offload. The
ranks exist before `deepspeed.initialize` (trainer/dist/env.py), so DeepSpeed's launcher
(pdsh/ssh) is never involved.

Gradient accumulation is lmsweep's: the ramp changes the number of micro-batches per step,
so DeepSpeed runs with `managed_gradient_accumulation: false` (every `engine.step()` is an
accumulation boundary) and each micro-batch's loss is already divided by the rank's
accumulation. The engine clips, applies the update, and skips a step whose gradients are not
finite (its overflow check, with a global norm: every rank skips alike).
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import nn

from trainer.dist.checkpoint import DeepSpeedCheckpoints
from trainer.dist.parallel import BuildOptimizer, DataParallel, ModelView
from trainer.perf import uses_bf16


def ds_config(job: Any, world: int, cuda: bool) -> dict[str, Any]:
    """The DeepSpeed config of a job. `gradient_accumulation_steps` is the ramp's first
    step's (DeepSpeed checks train_batch_size = micro x accumulation x ranks); the ramp's
    later sizes need no change, as lmsweep owns accumulation."""
    micro = job.train.micro_batch
    first = job.ramp.batch_sizes()[0]
    zero: dict[str, Any] = {"stage": job.dist.zero_stage, "overlap_comm": False}
    if job.dist.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu"}
    return {
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": first // (micro * world),
        "train_batch_size": first,
        "managed_gradient_accumulation": False,
        "gradient_clipping": job.train.grad_clip,
        # bf16 as every other dist option runs it: autocast over fp32 weights, gradients summed
        # over micro-batches and reduced in fp32 (FSDP's reduce_dtype). DeepSpeed's "bf16"
        # section would hold bf16 weights, sum gradients in bf16 and turn lmsweep's autocast
        # off; no module's gradients are sent in bf16 (lower_precision_safe_modules: none).
        "torch_autocast": {
            "enabled": uses_bf16(job.train.precision, cuda),
            "dtype": "bfloat16",
            "lower_precision_safe_modules": [],
        },
        "zero_optimization": zero,
        # lmsweep's optimizers are not DeepSpeed's own: allowed, on the CPU too (offload)
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 2**62,
        "wall_clock_breakdown": False,
    }


class DeepSpeed(DataParallel):
    owns_step = True
    checkpoints = DeepSpeedCheckpoints  # its own save and load, in step_<n>/zero/

    def wrap(self, model: nn.Module, build_optimizer: BuildOptimizer):
        import deepspeed

        cuda = self.device().type == "cuda"
        self.config = ds_config(self.job, self.world, cuda)
        if cuda:
            # Its GPU as trainer/dist/env.py chose it: DeepSpeed (the engine, ZeRO-3's
            # zero.Init) takes LOCAL_RANK's, which a task Slurm bound to one GPU does not have.
            os.environ["LOCAL_RANK"] = str(torch.cuda.current_device())
        self.engine, opt, _, _ = deepspeed.initialize(
            model=model,
            optimizer=build_optimizer(model),
            config=self.config,
            dist_init_required=False,
        )
        return ModelView(self.engine, self.engine.module), opt

    def compile(self, model: Any) -> None:
        # DeepSpeed's own API: its module compiled in place once the nvtx ranges that would
        # break the graph are off. Stages 1-2 only: ZeRO-3 does not compile (dist.compiles).
        self.engine.compile()

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss, scale_wrt_gas=False)

    def step(self) -> tuple[float, bool]:
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        norm = math.nan if norm is None else float(norm)
        return norm, self.engine.was_step_applied() and math.isfinite(norm)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "zero_stage": self.cfg.zero_stage,
            "offload_optimizer": self.cfg.offload_optimizer,
        }
