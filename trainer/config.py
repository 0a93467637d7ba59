"""The typed job config: one dataclass per config group, composed by Hydra, validated early.

Every option of every group is a dataclass registered in its group's Registry; here they are
stored in Hydra's ConfigStore as `schema/<group>/<option>`, which the YAML files in conf/
extend. Composition therefore type-checks every field and rejects unknown keys, and
`JobConfig.__post_init__` (run by OmegaConf.to_object) checks values and cross-field limits
before any data is touched.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict

from trainer.budgets import BUDGETS, BudgetConfig
from trainer.data.filters import FILTERS, FilterConfig
from trainer.data.order import ORDERS, OrderConfig
from trainer.data.sources import SOURCES, DataConfig
from trainer.models import MODELS, ModelConfig, solve_width
from trainer.objectives import OBJECTIVES, ObjectiveConfig
from trainer.optim import OPTIMIZERS, OptimConfig
from trainer.ramps import RAMPS, RampConfig
from trainer.registry import Registry, check, check_choice
from trainer.schedules import SCHEDULES, ScheduleConfig

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class TrainConfig:
    micro_batch: int = 16           # sequences per forward/backward; ramps accumulate these
    eval_every: int = 100           # optimizer steps between validation passes (and at the end)
    eval_sequences: int = 64        # fixed validation windows per pass
    log_every: int = 10             # optimizer steps between metric points
    grad_clip: float = 1.0          # max global grad norm; 0 disables
    agc: float = 0.0                # adaptive (unit-wise) gradient clipping ratio, e.g. 0.003; 0 disables
    z_loss: float = 0.0             # PaLM's auxiliary log(Z)^2 loss, e.g. 1e-4; 0 disables
    max_bad_steps: int = 5          # consecutive non-finite steps (skipped) before the run is `diverged`
    checkpoint_every: int = 0       # optimizer steps between checkpoints; 0: only on preemption
    keep_checkpoints: int = 2
    checkpoint_dir: str = ".cache/lmsweep/checkpoints"   # one subdirectory per job fingerprint
    precision: str = "auto"         # auto: bf16 autocast on CUDA where supported, else fp32
    device: str = "auto"            # auto | cpu | cuda | cuda:N
    threads: int = 0                # torch intra-op threads on CPU; 0 = all cores

    def __post_init__(self) -> None:
        check(self.micro_batch > 0, "train.micro_batch", self.micro_batch, "> 0 sequences")
        check(self.eval_every > 0, "train.eval_every", self.eval_every, "> 0 steps")
        check(self.eval_sequences > 0, "train.eval_sequences", self.eval_sequences, "> 0")
        check(self.log_every > 0, "train.log_every", self.log_every, "> 0 steps")
        check(self.grad_clip >= 0, "train.grad_clip", self.grad_clip, ">= 0 (0 disables)")
        check(self.agc >= 0, "train.agc", self.agc, ">= 0 (0 disables)")
        check(self.z_loss >= 0, "train.z_loss", self.z_loss, ">= 0 (0 disables)")
        check(self.max_bad_steps > 0, "train.max_bad_steps", self.max_bad_steps, "> 0")
        check(self.checkpoint_every >= 0, "train.checkpoint_every", self.checkpoint_every,
              ">= 0 (0: only on preemption)")
        check(self.keep_checkpoints > 0, "train.keep_checkpoints", self.keep_checkpoints, "> 0")
        check_choice("train.precision", self.precision, PRECISIONS)


@dataclass
class TrackingConfig:
    uri: Optional[str] = None       # None: $MLFLOW_TRACKING_URI, else sqlite:///<launch dir>/mlflow.db
    experiment: str = "lmsweep"


@dataclass
class SweepContext:
    """Filled in by the lmsweep sweeper for each job; empty for a single run."""

    id: str = ""
    experiment_id: str = ""
    parent_run_id: str = ""
    run_name: str = ""              # the overrides that vary across the sweep


# Overrides the sweeper appends to every job: bookkeeping, not part of a run's identity or name.
SWEEP_OVERRIDES = ("sweep.", "tracking.uri=")


@dataclass
class JobConfig:
    model: ModelConfig = MISSING
    objective: ObjectiveConfig = MISSING
    optim: OptimConfig = MISSING
    schedule: ScheduleConfig = MISSING
    data: DataConfig = MISSING
    filter: FilterConfig = MISSING
    order: OrderConfig = MISSING    # the order training windows are visited in
    ramp: RampConfig = MISSING
    budget: BudgetConfig = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    sweep: SweepContext = field(default_factory=SweepContext)
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.data.seq_len <= self.model.max_seq_len, "data.seq_len", self.data.seq_len,
              f"model={self.model.name} supports at most model.max_seq_len={self.model.max_seq_len}")
        # Every anchor of the ramp, not just its ends: rounding one down to whole micro-batches
        # would silently train on another batch size.
        for size in self.ramp.batch_sizes():
            check(size % self.train.micro_batch == 0, f"ramp={self.ramp.name} batch size", size,
                  f"must be a multiple of train.micro_batch={self.train.micro_batch}")
        # model.params: solve d_model here, so pre-flight, fingerprints and MLflow see it.
        vocab = self.data.tokenizer.expected_vocab_size() + self.objective.extra_tokens
        self.model = solve_width(self.model, vocab, causal=self.objective.causal)


GROUPS: dict[str, Registry] = {
    "model": MODELS, "objective": OBJECTIVES, "optim": OPTIMIZERS, "schedule": SCHEDULES, "data": SOURCES,
    "filter": FILTERS, "order": ORDERS, "ramp": RAMPS, "budget": BUDGETS,
}


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="job_schema", node=JobConfig)
    for group, registry in GROUPS.items():
        for name in registry.names():
            cs.store(group=f"schema/{group}", name=name, node=registry[name].config_cls)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"d_model": 128}} -> {"model.d_model": 128} (MLflow params, fingerprints)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# Fields that say where or on what a job runs, not what it computes.
NOT_IN_FINGERPRINT = ("sweep", "tracking", "train.device", "train.threads", "train.checkpoint_every",
                      "train.keep_checkpoints", "train.checkpoint_dir", "data.cache_dir")


def fingerprint(job: JobConfig) -> str:
    """Identity of a job: a hash of its resolved config less launcher and location fields.
    A re-run sweep skips FINISHED runs and resumes interrupted ones by this key."""
    kept = {k: v for k, v in flatten(asdict(job)).items()
            if not any(k == f or k.startswith(f + ".") for f in NOT_IN_FINGERPRINT)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def to_job(cfg: DictConfig) -> JobConfig:
    """Resolve and validate a composed config; a `hydra` node (sweeper side) is dropped."""
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return OmegaConf.to_object(cfg)
