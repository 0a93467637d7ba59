"""The training loop: one JobConfig in, one MLflow run and a Summary out.

Everything the loop needs to continue after a preemption lives in `Trainer.state_dict()`,
so a requeued job resumes into the same MLflow run with the same batches, and (on CPU) the
same final loss bit for bit.
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf
from pytorch_optimizer.optimizer.agc import agc

from trainer import checkpoint, schema
from trainer.budgets import BUDGETS, Progress
from trainer.config import JobConfig, fingerprint, flatten
from trainer.data.prepare import Sequences, prepare
from trainer.models import build_model
from trainer.objectives import OBJECTIVES
from trainer.optim import build_optimizer, state_bytes_per_param
from trainer.progress import report
from trainer.ramps import RAMPS
from trainer.schedules import SCHEDULES
from trainer.tracking import RunLogger, ensure_experiment, resolve_uri, scheduler_tags

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True,
                              text=True).stdout.strip()

    try:
        head = git("rev-parse", "HEAD") or "unknown"
        return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except OSError:
        return "unknown"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(precision: str, device: torch.device):
    bf16 = precision == "bf16" or (
        precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    if bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class Summary:
    run_id: str
    name: str
    outcome: str
    params_total: int
    params_non_embedding: int
    steps: int
    tokens: int
    wall_clock_s: float
    final_val_loss: float
    unigram_entropy: float


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
    bad_steps: int = 0              # consecutive non-finite steps
    skipped_steps: int = 0          # all non-finite steps so far


@torch.no_grad()
def evaluate(model, objective, windows: torch.Tensor, micro_batch: int, amp) -> float:
    model.eval()
    total = 0.0
    for i in range(0, len(windows), micro_batch):
        w = windows[i: i + micro_batch]
        with amp:
            total += objective(model, w).item() * len(w)
    model.train()
    return total / len(windows)


class Trainer:
    def __init__(self, job: JobConfig):
        self.job, tc = job, job.train
        self.device = pick_device(tc.device)
        if self.device.type == "cpu":
            # The cores this process may run on (a Slurm allocation), not every core of the node.
            torch.set_num_threads(tc.threads or len(os.sched_getaffinity(0)))
        torch.manual_seed(job.seed)
        self.amp = autocast(tc.precision, self.device)

        self.data = prepare(job.data, job.filter)
        self.seq_len = job.data.seq_len
        self.train_seqs = Sequences(self.data.train, self.seq_len, job.seed, job.order)
        self.val_windows = torch.from_numpy(Sequences(self.data.val, self.seq_len, job.seed)
                                            .evenly_spaced(tc.eval_sequences)).to(self.device)

        self.model = build_model(job.model, self.data.vocab_size + job.objective.extra_tokens,
                                 causal=job.objective.causal).to(self.device)
        self.model.z_loss = tc.z_loss
        self.params_total, self.params_non_emb = self.model.param_counts()
        self.flops_per_token = self.model.flops_per_token(self.seq_len)
        self.objective = OBJECTIVES.build(job.objective, seed=job.seed)
        self.opt = build_optimizer(job.optim, self.model)
        self.schedule = SCHEDULES.build(job.schedule)
        self.ramp = RAMPS.build(job.ramp, tc.micro_batch)
        self.fraction = BUDGETS.build(job.budget)
        self.state = LoopState()

    # --- checkpointing -------------------------------------------------------------------
    def state_dict(self, run_id: str) -> dict:
        s = self.state
        return {
            "run_id": run_id,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "progress": asdict(s.progress), "window": asdict(s.window),
            "best_val": s.best_val, "val_loss": s.val_loss,
            "bad_steps": s.bad_steps, "skipped_steps": s.skipped_steps,
            "cursor": self.train_seqs.cursor,
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, d: dict) -> None:
        self.model.load_state_dict(d["model"])
        self.opt.load_state_dict(d["optimizer"])
        self.state = LoopState(Progress(**d["progress"]), Window(**d["window"]), d["best_val"],
                               d["val_loss"], d["bad_steps"], d["skipped_steps"])
        self.train_seqs.cursor = d["cursor"]
        torch.set_rng_state(d["rng_cpu"])
        if d["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(d["rng_cuda"])

    # --- one optimizer step ----------------------------------------------------------------
    def step(self) -> tuple[float, int, float, float, bool]:
        """Returns (lr, batch, mean loss, grad norm, finite)."""
        tc, p = self.job.train, self.state.progress
        f = self.fraction(p)
        lr = self.job.optim.lr * self.schedule(f)
        for g in self.opt.param_groups:
            g["lr"] = lr
        batch = self.ramp(f)
        accum = batch // tc.micro_batch
        loss_sum = 0.0
        for _ in range(accum):
            w = torch.from_numpy(self.train_seqs.next(tc.micro_batch)).to(self.device)
            with self.amp:
                loss = self.objective(self.model, w, self.state.progress.steps)
            (loss / accum).backward()
            loss_sum += loss.item() / accum
        if tc.agc > 0:
            # Unit-wise AGC (Brock et al. 2021, NFNets Sec. 4): clip each row's gradient to
            # agc * its weight norm; 0.003 in the large Mixer/Transformer comparisons.
            for param in self.model.parameters():
                if param.grad is not None:
                    param.grad.copy_(agc(param, param.grad, agc_clip_val=tc.agc))
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                         tc.grad_clip or math.inf))
        finite = math.isfinite(loss_sum) and math.isfinite(grad_norm)
        if finite:                    # a non-finite step is skipped, never applied
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return lr, batch, loss_sum, grad_norm, finite


def _open_run(client, job: JobConfig, trainer: Trainer, key: str, run_name: str, overrides: str,
              saved: dict | None) -> RunLogger:
    """Continue the checkpoint's run, or start one (params, config, baseline logged once)."""
    if saved is not None:
        trainer.load_state_dict(saved)
        run = RunLogger(client, saved["run_id"])
        run.resume()
        # The sweep id stays the one that started it; the outcome was preempted or cancelled.
        run.set_tags({**scheduler_tags(), schema.TAG_OUTCOME: schema.OUTCOME_RUNNING})
        return run
    experiment_id = job.sweep.experiment_id or ensure_experiment(client, job.tracking.experiment)
    run = RunLogger.start(client, experiment_id, run_name, parent_run_id=job.sweep.parent_run_id,
                          tags={
                              schema.TAG_ROLE: schema.ROLE_JOB,
                              schema.TAG_SWEEP_ID: job.sweep.id,
                              schema.TAG_OVERRIDES: overrides,
                              schema.TAG_FINGERPRINT: key,
                              schema.TAG_GIT_COMMIT: git_commit(),
                              schema.TAG_PARAMS_TOTAL: trainer.params_total,
                              schema.TAG_PARAMS_NON_EMBEDDING: trainer.params_non_emb,
                              schema.TAG_FLOPS_PER_TOKEN: trainer.flops_per_token,
                              schema.TAG_OUTCOME: schema.OUTCOME_RUNNING,
                              **scheduler_tags(),
                          })
    run.log_params(flatten(asdict(job)))
    run.log_params({f"data.stats.{k}": v for k, v in trainer.data.params().items()})
    run.log_text(OmegaConf.to_yaml(OmegaConf.structured(job)), schema.CONFIG_ARTIFACT)
    run.log_metrics({schema.UNIGRAM_ENTROPY: trainer.data.stats["unigram_entropy"]}, step=0)
    return run


def train(job: JobConfig, run_name: str, overrides: str) -> Summary:
    from mlflow.tracking import MlflowClient

    trainer = Trainer(job)
    key = fingerprint(job)
    ckpt_dir = Path(job.train.checkpoint_dir).expanduser().resolve() / key
    saved = checkpoint.latest(ckpt_dir)
    client = MlflowClient(resolve_uri(job.tracking.uri))
    # Installed before the run exists, so no signal can leave an orphan RUNNING run.
    stop = checkpoint.StopSignals()
    try:
        run = _open_run(client, job, trainer, key, run_name, overrides, saved)
        try:
            outcome = _loop(trainer, run, run_name, stop, ckpt_dir)
            if outcome is None:            # a stop signal: the state is saved
                _stop(trainer, run, stop)
            _finish(trainer, run, outcome)
            checkpoint.clear(ckpt_dir)
        except BaseException as e:
            if not stop.handed_over and run.status == "RUNNING":
                run.set_tags({schema.TAG_OUTCOME: schema.OUTCOME_FAILED})
                run.end("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
            raise
    finally:
        stop.restore()
    s = trainer.state
    return Summary(run.run_id, run_name, outcome, trainer.params_total, trainer.params_non_emb,
                   s.progress.steps, s.progress.tokens, s.progress.seconds, s.val_loss,
                   trainer.data.stats["unigram_entropy"])


def _finish(trainer: Trainer, run: RunLogger, outcome: str) -> None:
    s = trainer.state
    run.flush()
    run.log_metrics({schema.FINAL_VAL_LOSS: s.val_loss, schema.BEST_VAL_LOSS: s.best_val,
                     schema.LOGGING_SECONDS: run.seconds}, step=s.progress.steps)
    tags = {schema.TAG_OUTCOME: outcome}
    if outcome == schema.OUTCOME_DIVERGED:
        tags[schema.TAG_DIVERGED_STEP] = s.progress.steps
    run.set_tags(tags)
    # Divergence is a result, not a crash: the run is FINISHED and tagged `diverged`.
    run.end("FINISHED")


def _stop(trainer: Trainer, run: RunLogger, stop: checkpoint.StopSignals) -> None:
    """After a checkpoint on a signal: requeue (preemption) or end the run as KILLED."""
    step = trainer.state.progress.steps
    run.flush()
    if stop.signum == stop.REQUEUE:
        run.set_tags({schema.TAG_OUTCOME: schema.OUTCOME_PREEMPTED})
        stop.hand_over()                 # submitit requeues and exits (rank 0)
        raise SystemExit(f"preempted at step {step}; checkpoint saved")   # any other rank
    run.set_tags({schema.TAG_OUTCOME: schema.OUTCOME_CANCELLED})
    run.end("KILLED")
    if stop.signum == signal.SIGINT:
        raise KeyboardInterrupt(f"interrupted at step {step}; checkpoint saved")
    raise SystemExit(128 + stop.signum)


def _loop(trainer: Trainer, run: RunLogger, name: str, stop: checkpoint.StopSignals,
          ckpt_dir: Path) -> str | None:
    """Train to the end of the budget. Returns the outcome, or None after a stop signal."""
    tc, s = trainer.job.train, trainer.state
    p = s.progress
    while trainer.fraction(p) < 1.0:
        t0 = time.perf_counter()
        lr, batch, loss, grad_norm, finite = trainer.step()
        dt = time.perf_counter() - t0
        if p.steps == 0 and finite:       # the state exists once the first update is applied
            run.log_metrics({schema.OPTIMIZER_STATE_BYTES_PER_PARAM:
                             state_bytes_per_param(trainer.opt)}, step=0)
        p.steps += 1
        p.tokens += batch * trainer.seq_len
        p.seconds += dt
        s.bad_steps = 0 if finite else s.bad_steps + 1
        s.skipped_steps += 0 if finite else 1
        if finite:
            s.window.add(loss, batch * trainer.seq_len, dt)
        if s.bad_steps >= tc.max_bad_steps:
            run.log_metrics({schema.SKIPPED_STEPS: s.skipped_steps, schema.TRAIN_LOSS: loss},
                            step=p.steps)
            return schema.OUTCOME_DIVERGED

        done = trainer.fraction(p) >= 1.0
        evaluate_now = p.steps % tc.eval_every == 0 or done
        if (p.steps % tc.log_every == 0 or evaluate_now) and s.window.steps:
            w = s.window
            metrics = {
                schema.TRAIN_LOSS: w.loss / w.steps, schema.LR: lr, schema.TOKENS: p.tokens,
                schema.FLOPS: p.tokens * trainer.flops_per_token, schema.WALL_CLOCK: p.seconds,
                schema.TOKENS_PER_S: w.tokens / w.seconds,
                schema.BATCH_TOKENS: batch * trainer.seq_len, schema.GRAD_NORM: grad_norm,
                schema.SKIPPED_STEPS: s.skipped_steps,
            }
            if evaluate_now:
                s.val_loss = evaluate(trainer.model, trainer.objective, trainer.val_windows,
                                      tc.micro_batch, trainer.amp)
                s.best_val = min(s.best_val, s.val_loss)
                metrics[schema.VAL_LOSS] = s.val_loss
            run.log_metrics(metrics, step=p.steps)
            report(name, p.steps, trainer.fraction(p), metrics[schema.TRAIN_LOSS],
                   metrics[schema.TOKENS_PER_S], p.seconds, s.val_loss if evaluate_now else None)
            s.window = Window()
        if done:
            break
        if stop.requested or (tc.checkpoint_every and p.steps % tc.checkpoint_every == 0):
            checkpoint.save(ckpt_dir, p.steps, trainer.state_dict(run.run_id), tc.keep_checkpoints)
            if stop.requested:
                return None
    return schema.OUTCOME_FINISHED
