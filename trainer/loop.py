"""The Trainer: a job's data, model, optimizer, schedule and ramp, and one optimizer step.

Everything needed to continue after a preemption lives in `Trainer.state_dict()`, so a
requeued job resumes with the same batches and (on CPU) the same final loss bit for bit.
The run around it (MLflow, checkpoints, signals) is trainer/job.py.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import asdict, dataclass, field

import torch

from trainer.budgets import BUDGETS, Progress
from trainer.config import JobConfig
from trainer.data.prepare import Sequences, prepare
from trainer.dist.config import DISTS
from trainer.models import build_model
from trainer.objectives import OBJECTIVES
from trainer.optim import build_optimizer
from trainer.optim.clipping import adaptive_clip_
from trainer.perf import configure_device, device_peak, to_device, uses_bf16, wants_compile
from trainer.schedules import SCHEDULES


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(precision: str, device: torch.device):
    if uses_bf16(precision, device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class Window:
    """Sums since the last logged point (a metric point averages its interval)."""

    loss: float = 0.0
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def add(self, loss: float, tokens: int, seconds: float) -> None:
        self.loss += loss
        self.steps += 1
        self.tokens += tokens
        self.seconds += seconds


@dataclass
class LoopState:
    progress: Progress = field(default_factory=Progress)
    window: Window = field(default_factory=Window)
    best_val: float = math.inf
    val_loss: float = math.nan
    bad_steps: int = 0  # consecutive non-finite steps
    skipped_steps: int = 0  # all non-finite steps so far
    eval_seconds: float = 0.0  # this process's validation passes (like logging_s: not saved)


@torch.no_grad()
@torch.compiler.set_stance("force_eager")
def evaluate(model, objective, windows: torch.Tensor, micro_batch: int, amp) -> float:
    """The validation loss, run eagerly under train.compile: no_grad, eval mode and the last
    partial batch are new guards, so the compiled model recompiled at the first evaluation
    (12.9 s of a 75 s demo job on 2 CPU cores), more than a few passes can win back."""
    model.eval()
    total = torch.zeros((), device=windows.device)
    for i in range(0, len(windows), micro_batch):
        w = windows[i : i + micro_batch]
        with amp:
            total += objective(model, w).float() * len(w)
    model.train()
    return total.item() / len(windows)  # one host sync per evaluation


class Trainer:
    def __init__(self, job: JobConfig):
        self.job, tc = job, job.train
        self.device = pick_device(tc.device)
        configure_device(self.device)
        if self.device.type == "cpu":
            # The cores this process may run on (a Slurm allocation), not every core of the node.
            torch.set_num_threads(tc.threads or len(os.sched_getaffinity(0)))
        torch.manual_seed(job.seed)
        self.amp = autocast(tc.precision, self.device)

        self.data = prepare(job.data, job.filter)
        self.seq_len = job.data.seq_len
        self.train_seqs = Sequences(self.data.train, self.seq_len, job.seed, job.order)
        self.val_windows = torch.from_numpy(
            Sequences(self.data.val, self.seq_len, job.seed).evenly_spaced(tc.eval_sequences)
        ).to(self.device)

        self.model = build_model(
            job.model, job.vocab_size(self.data.vocab_size), causal=job.objective.causal
        ).to(self.device)
        self.params_total, self.params_non_emb = self.model.param_counts()
        self.flops_per_token = self.model.flops_per_token(self.seq_len)
        self.objective = OBJECTIVES.build(job.objective, seed=job.seed, z_loss=tc.z_loss)
        # The model and optimizer as the job's `dist` runs them (trainer/dist/parallel.py):
        # DDP, FSDP2 or a DeepSpeed engine across ranks; dist=none leaves them as built.
        self.par = DISTS.build(job.dist, job)
        # MFU's denominator: the peak of every device the job runs on, in the matmuls' precision.
        precision = "fp32" if isinstance(self.amp, contextlib.nullcontext) else "bf16"
        self.peak_flops = (
            device_peak(self.device, precision, job.data.cache_path()).flops * self.par.world
        )
        self.model, self.opt = self.par.wrap(self.model, lambda m: build_optimizer(job.optim, m))
        if job.dist.compiles and wants_compile(tc.compile, self.device):  # in place
            self.par.compile(self.model)
        self.schedule = SCHEDULES.build(job.schedule)
        self.ramp = job.batch_ramp()  # whole micro-batches on every rank, as the plan counts
        self.fraction = BUDGETS.build(job.budget)
        self.state = LoopState()

    # --- checkpointing -------------------------------------------------------------------
    def state_dict(self, run_id: str) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            **self.loop_state(run_id),
        }

    def loop_state(self, run_id: str) -> dict:
        """Everything but the model and optimizer (distributed checkpoints store those in
        their own format: trainer/dist/checkpoint.py)."""
        s = self.state
        return {
            "run_id": run_id,
            "data": self.data.digest,  # a resume on other data is refused (trainer/job.py)
            "progress": asdict(s.progress),
            "window": asdict(s.window),
            "best_val": s.best_val,
            "val_loss": s.val_loss,
            "bad_steps": s.bad_steps,
            "skipped_steps": s.skipped_steps,
            "cursor": self.train_seqs.cursor,
            "rng_cpu": torch.get_rng_state(),
            # This rank's device only: a resume may see fewer GPUs (another node, fewer ranks),
            # and touching CUDA from a CPU job would start a context on GPU 0.
            "rng_cuda": (
                torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
            ),
        }

    def load_state_dict(self, d: dict) -> None:
        self.model.load_state_dict(d["model"])
        self.opt.load_state_dict(d["optimizer"])
        self.load_loop_state(d)

    def load_loop_state(self, d: dict) -> None:
        self.state = LoopState(
            Progress(**d["progress"]),
            Window(**d["window"]),
            d["best_val"],
            d["val_loss"],
            d["bad_steps"],
            d["skipped_steps"],
        )
        self.train_seqs.cursor = d["cursor"]
        torch.set_rng_state(d["rng_cpu"])
        if self.device.type == "cuda" and isinstance(d["rng_cuda"], torch.Tensor):
            torch.cuda.set_rng_state(d["rng_cuda"], self.device)

    # --- one optimizer step ----------------------------------------------------------------
    def step(self) -> tuple[float, int, float, float, bool]:
        """Returns (lr, batch, mean loss, grad norm, finite)."""
        tc, p = self.job.train, self.state.progress
        f = self.fraction(p)
        lr = self.job.optim.lr * self.schedule(f)
        for g in self.opt.param_groups:
            g["lr"] = lr
        batch = self.ramp(f)
        accum = batch // (tc.micro_batch * self.par.world)  # this rank's micro-batches
        loss_sum = torch.zeros((), device=self.device)
        for i in range(accum):
            w = to_device(self.par.next_batch(self.train_seqs, tc.micro_batch), self.device)
            with self.par.accumulating(last=i == accum - 1):  # gradient sync on the last
                with self.amp:
                    loss = self.objective(self.model, w, self.state.progress.steps)
                self.par.backward(loss / accum)
            loss_sum += loss.detach() / accum  # on the device: no sync per micro-batch
        loss_sum = self.par.mean(loss_sum.item())
        if self.par.owns_step:  # DeepSpeed clips, steps and skips non-finite steps itself
            grad_norm, finite = self.par.step()
            return lr, batch, loss_sum, grad_norm, finite and math.isfinite(loss_sum)
        if tc.agc > 0:
            # Unit-wise AGC (Brock et al. 2021, NFNets Sec. 4): clip each row's gradient to
            # agc * its weight norm; 0.003 in the large Mixer/Transformer comparisons.
            adaptive_clip_(self.model.parameters(), tc.agc)
        grad_norm = float(
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip or math.inf)
        )
        finite = math.isfinite(loss_sum) and math.isfinite(grad_norm)
        if finite:  # a non-finite step is skipped, never applied
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return lr, batch, loss_sum, grad_norm, finite
