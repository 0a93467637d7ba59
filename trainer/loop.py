"""The training loop: one JobConfig in, one MLflow run and a summary dict out."""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from trainer import schema
from trainer.budgets import BUDGETS, Progress
from trainer.config import JobConfig
from trainer.data.prepare import Sequences, prepare
from trainer.models import build_model
from trainer.objectives import OBJECTIVES
from trainer.optim import build_optimizer, state_bytes_per_param
from trainer.progress import report
from trainer.ramps import RAMPS
from trainer.schedules import SCHEDULES
from trainer.tracking import RunLogger, ensure_experiment, flatten, resolve_uri

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Fields that say where or on what a job runs, not what it computes.
NOT_IN_FINGERPRINT = ("sweep", "tracking", "train.device", "train.threads", "data.cache_dir")


def fingerprint(job: JobConfig) -> str:
    flat = flatten(asdict(job))
    kept = {k: v for k, v in flat.items()
            if not any(k == f or k.startswith(f + ".") for f in NOT_IN_FINGERPRINT)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


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


def train(job: JobConfig, run_name: str, overrides: str) -> Summary:
    tc = job.train
    device = pick_device(tc.device)
    if device.type == "cpu":
        torch.set_num_threads(tc.threads or os.cpu_count() or 1)
    torch.manual_seed(job.seed)
    amp = autocast(tc.precision, device)

    data = prepare(job.data, job.filter)
    seq_len = job.data.seq_len
    train_seqs = Sequences(data.train, seq_len, job.seed)
    val_windows = torch.from_numpy(
        Sequences(data.val, seq_len, job.seed).evenly_spaced(tc.eval_sequences)).to(device)

    model = build_model(job.model, data.vocab_size, causal=job.objective.causal).to(device)
    objective = OBJECTIVES.build(job.objective)
    params_total, params_non_emb = model.param_counts()
    flops_per_token = model.flops_per_token(seq_len)
    opt = build_optimizer(job.optim, model)
    schedule = SCHEDULES.build(job.schedule)
    ramp = RAMPS.build(job.ramp, tc.micro_batch)
    fraction = BUDGETS.build(job.budget)

    client_uri = resolve_uri(job.tracking.uri)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(client_uri)
    experiment_id = job.sweep.experiment_id or ensure_experiment(client, job.tracking.experiment)
    run = RunLogger.start(client, experiment_id, run_name, parent_run_id=job.sweep.parent_run_id,
                          tags={
                              schema.TAG_ROLE: schema.ROLE_JOB,
                              schema.TAG_SWEEP_ID: job.sweep.id,
                              schema.TAG_OVERRIDES: overrides,
                              schema.TAG_FINGERPRINT: fingerprint(job),
                              schema.TAG_GIT_COMMIT: git_commit(),
                              schema.TAG_PARAMS_TOTAL: params_total,
                              schema.TAG_PARAMS_NON_EMBEDDING: params_non_emb,
                              schema.TAG_FLOPS_PER_TOKEN: flops_per_token,
                              schema.TAG_OUTCOME: schema.OUTCOME_RUNNING,
                          })
    try:
        run.log_params(flatten(asdict(job)))
        run.log_params({f"data.stats.{k}": v for k, v in data.stats.items() if k != "config"})
        run.log_text(OmegaConf.to_yaml(OmegaConf.structured(job)), schema.CONFIG_ARTIFACT)
        run.log_metrics({schema.UNIGRAM_ENTROPY: data.stats["unigram_entropy"]}, step=0)

        p = Progress()
        best_val, val_loss = math.inf, math.nan
        window_loss, window_steps, window_tokens, window_seconds = 0.0, 0, 0, 0.0
        while (f := fraction(p)) < 1.0:
            lr = job.optim.lr * schedule(f)
            for g in opt.param_groups:
                g["lr"] = lr
            batch = ramp(f)
            accum = batch // tc.micro_batch
            t0 = time.perf_counter()
            step_loss = 0.0
            for _ in range(accum):
                w = torch.from_numpy(train_seqs.next(tc.micro_batch)).to(device, non_blocking=True)
                with amp:
                    loss = objective(model, w)
                (loss / accum).backward()
                step_loss += loss.item() / accum
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip or math.inf)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if p.steps == 0:
                opt_bytes = state_bytes_per_param(opt)
                run.log_metrics({schema.OPTIMIZER_STATE_BYTES_PER_PARAM: opt_bytes}, step=0)
            dt = time.perf_counter() - t0
            p.steps += 1
            p.tokens += batch * seq_len
            p.seconds += dt
            window_loss += step_loss
            window_steps += 1
            window_tokens += batch * seq_len
            window_seconds += dt

            done = fraction(p) >= 1.0
            evaluate_now = p.steps % tc.eval_every == 0 or done
            if p.steps % tc.log_every == 0 or evaluate_now:
                metrics = {
                    schema.TRAIN_LOSS: window_loss / window_steps,
                    schema.LR: lr,
                    schema.TOKENS: p.tokens,
                    schema.FLOPS: p.tokens * flops_per_token,
                    schema.WALL_CLOCK: p.seconds,
                    schema.TOKENS_PER_S: window_tokens / window_seconds,
                    schema.BATCH_TOKENS: batch * seq_len,
                    schema.GRAD_NORM: float(grad_norm),
                }
                if evaluate_now:
                    val_loss = evaluate(model, objective, val_windows, tc.micro_batch, amp)
                    best_val = min(best_val, val_loss)
                    metrics[schema.VAL_LOSS] = val_loss
                run.log_metrics(metrics, step=p.steps)
                report(run_name, p.steps, fraction(p), metrics[schema.TRAIN_LOSS],
                       metrics[schema.TOKENS_PER_S], p.seconds,
                       val_loss if evaluate_now else None)
                window_loss, window_steps, window_tokens, window_seconds = 0.0, 0, 0, 0.0

        run.flush()
        run.log_metrics({schema.FINAL_VAL_LOSS: val_loss, schema.BEST_VAL_LOSS: best_val,
                         schema.LOGGING_SECONDS: run.seconds}, step=p.steps)
        run.set_tags({schema.TAG_OUTCOME: schema.OUTCOME_FINISHED})
        run.end("FINISHED")
    except BaseException as e:
        run.set_tags({schema.TAG_OUTCOME: schema.OUTCOME_FAILED})
        run.end("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    return Summary(run.run_id, run_name, schema.OUTCOME_FINISHED, params_total, params_non_emb,
                   p.steps, p.tokens, p.seconds, val_loss, data.stats["unigram_entropy"])
