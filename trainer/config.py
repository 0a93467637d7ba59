"""The typed job config: one dataclass per config group, composed by Hydra, validated early.

Every option of every group is a dataclass registered in its group's Registry; here they are
stored in Hydra's ConfigStore as `schema_<group>_<option>`, which the YAML files in conf/
extend (configs, not a group: `--help` lists only the groups a user picks from). The
dataclass holds every default (with where it comes from); an option's YAML lists only what
differs from it, and why (tests/test_config_defaults.py checks this).

Checks come in two tiers. Cheap and pure: composition type-checks every field and rejects
unknown keys, and `__post_init__` (run by OmegaConf.to_object) checks values and cross-field
limits. `preflight()` then does what reads files, builds meta-device models or asks the
machine: the sweeper runs it for every job before any job starts or any run is created.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    InterpolationResolutionError,
    OmegaConfBaseException,
)

from trainer.budgets import BUDGETS, BudgetConfig
from trainer.contract import (
    CACHE_ENV,
    CHECKPOINTS_ENV,
    DEFAULT_CHECKPOINTS,
    DEFAULT_EXPERIMENT,
    ConfigError,
    has_secret,
)
from trainer.data.filters import FILTERS, FilterConfig
from trainer.data.order import ORDERS, OrderConfig
from trainer.data.sources import SOURCES, DataConfig
from trainer.dist.config import DISTS, DistConfig
from trainer.dist.config import check_job as check_dist
from trainer.models import MODELS, ModelConfig, solve_width
from trainer.objectives import OBJECTIVES, ObjectiveConfig
from trainer.optim import OPTIMIZERS, OptimConfig
from trainer.ramps import RAMPS, Ramp, RampConfig
from trainer.registry import Registry, check, check_choice
from trainer.schedules import SCHEDULES, ScheduleConfig

PRECISIONS = ("auto", "fp32", "bf16")
DEVICE = re.compile(r"cpu|cuda(:\d+)?")


@dataclass
class TrainConfig:
    micro_batch: int = 16  # sequences per forward/backward; ramps accumulate these
    eval_every: int = 50  # optimizer steps between validation passes (and at the end)
    eval_sequences: int = 64  # fixed validation windows per pass
    log_every: int = 10  # optimizer steps between metric points
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    agc: float = 0.0  # unit-wise adaptive gradient clipping, e.g. 0.003; 0 disables
    z_loss: float = 0.0  # PaLM's auxiliary log(Z)^2 loss, e.g. 1e-4; 0 disables
    max_bad_steps: int = 5  # consecutive non-finite (skipped) steps before `diverged`
    checkpoint_every: int = 0  # optimizer steps between checkpoints; 0: by time only
    # Wall-clock seconds between checkpoints (evaluation included): a node crash or kill -9
    # costs at most this much training. 0: only on signals and checkpoint_every.
    checkpoint_every_s: float = 600.0
    keep_checkpoints: int = 2
    checkpoint_dir: str = DEFAULT_CHECKPOINTS  # one subdirectory per job fingerprint
    precision: str = "auto"  # auto: bf16 autocast on CUDA where supported, else fp32
    # torch.compile the model: null = on CUDA only, where the dist option compiles (not ZeRO-3)
    # (on a 2-core CPU it paid ~1.02-1.1x after ~30 s of compiling: trainer/perf.py);
    # validation runs eagerly
    compile: Optional[bool] = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads on CPU; 0 = all cores

    def __post_init__(self) -> None:
        check(self.micro_batch > 0, "train.micro_batch", self.micro_batch, "> 0 sequences")
        check(self.eval_every > 0, "train.eval_every", self.eval_every, "> 0 steps")
        check(self.eval_sequences > 0, "train.eval_sequences", self.eval_sequences, "> 0")
        check(self.log_every > 0, "train.log_every", self.log_every, "> 0 steps")
        check(self.grad_clip >= 0, "train.grad_clip", self.grad_clip, ">= 0 (0 disables)")
        check(self.agc >= 0, "train.agc", self.agc, ">= 0 (0 disables)")
        check(self.z_loss >= 0, "train.z_loss", self.z_loss, ">= 0 (0 disables)")
        check(self.max_bad_steps > 0, "train.max_bad_steps", self.max_bad_steps, "> 0")
        check(self.threads >= 0, "train.threads", self.threads, ">= 0 (0: every core)")
        check(
            self.checkpoint_every >= 0,
            "train.checkpoint_every",
            self.checkpoint_every,
            ">= 0 (0: by time only)",
        )
        check(
            self.checkpoint_every_s >= 0,
            "train.checkpoint_every_s",
            self.checkpoint_every_s,
            ">= 0 seconds (0: only on signals and checkpoint_every)",
        )
        check(self.keep_checkpoints > 0, "train.keep_checkpoints", self.keep_checkpoints, "> 0")
        check_choice("train.precision", self.precision, PRECISIONS)
        check(
            self.device == "auto" or DEVICE.fullmatch(self.device) is not None,
            "train.device",
            self.device,
            "auto, cpu, cuda or cuda:N",
        )


@dataclass
class TrackingConfig:
    uri: Optional[str] = None  # None: $MLFLOW_TRACKING_URI, else <launch dir>/mlflow.db
    experiment: str = DEFAULT_EXPERIMENT
    # Seconds the store may stay unreachable mid-run (training goes on, points are kept);
    # past it the job checkpoints and stops, and the next launch finishes it.
    outage_limit_s: float = 300.0

    def __post_init__(self) -> None:
        check(
            bool(self.experiment.strip()),
            "tracking.experiment",
            self.experiment,
            "a non-empty experiment name",
        )
        check(
            self.uri is None or not has_secret(self.uri),
            "tracking.uri",
            "<with a password>",
            "never put a password in a config file: give the URI on the command line (lmsweep "
            "moves the password to the environment) or set $MLFLOW_TRACKING_URI, or "
            "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD",
        )
        check(self.outage_limit_s > 0, "tracking.outage_limit_s", self.outage_limit_s, "> 0 s")


@dataclass
class JobConfig:
    # data first: it is validated first, so data.seq_len=0 is blamed on itself rather than on
    # model.max_seq_len, which follows it (${data.seq_len})
    data: DataConfig = MISSING
    model: ModelConfig = MISSING
    objective: ObjectiveConfig = MISSING
    optim: OptimConfig = MISSING
    schedule: ScheduleConfig = MISSING
    filter: FilterConfig = MISSING
    order: OrderConfig = MISSING  # the order training windows are visited in
    ramp: RampConfig = MISSING
    budget: BudgetConfig = MISSING
    dist: DistConfig = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        # torch.manual_seed takes [-2^63, 2^64) and numpy's generators (the data order) only >= 0
        check(0 <= self.seed < 2**64, "seed", self.seed, "a whole number in [0, 2^64)")
        check(
            self.data.seq_len <= self.model.max_seq_len,
            "data.seq_len",
            self.data.seq_len,
            f"model={self.model.name} supports at most model.max_seq_len={self.model.max_seq_len}",
        )
        # Every anchor of the ramp, not just its ends: rounding one down to whole micro-batches
        # would silently train on another batch size.
        for size in self.ramp.batch_sizes():
            check(
                size % self.train.micro_batch == 0,
                f"ramp={self.ramp.name} batch size",
                size,
                f"must be a multiple of train.micro_batch={self.train.micro_batch}",
            )
        check_dist(self)  # ranks x micro-batches, and what the dist option can run

    def batch_ramp(self) -> Ramp:
        """The global batch (sequences) at each budget fraction, in whole micro-batches on
        every rank: micro-batch x ranks is its step (trainer/loop.py builds the same ramp,
        and a plan counts its tokens with this one)."""
        return RAMPS.build(self.ramp, self.train.micro_batch * self.dist.world_size)

    def vocab_size(self, data_vocab: Optional[int] = None) -> int:
        """The model's vocabulary: the tokenizer's declared size, what plans and model.params
        count with before any data is prepared (a BPE that learns fewer tokens on a small
        corpus leaves rows unused, as GPT-2's 50,257 are padded to 50,304), or the data's if
        larger; plus the objective's extra ids (mlm's [MASK])."""
        declared = self.data.tokenizer.expected_vocab_size()
        return max(data_vocab or 0, declared) + self.objective.extra_tokens


GROUPS: dict[str, Registry] = {
    "model": MODELS,
    "objective": OBJECTIVES,
    "optim": OPTIMIZERS,
    "schedule": SCHEDULES,
    "data": SOURCES,
    "filter": FILTERS,
    "order": ORDERS,
    "ramp": RAMPS,
    "budget": BUDGETS,
    "dist": DISTS,
}


# The defaults the environment may move, and the variable that does: the schemas hold them as
# ${oc.env:VARIABLE,<the dataclass default>}, which `--cfg job` shows and each job resolves in
# its own process (a Slurm job on its node). Neither field is in a fingerprint.
ENV_DEFAULTS = {"data.cache_dir": CACHE_ENV, "train.checkpoint_dir": CHECKPOINTS_ENV}


def register_configs() -> None:
    cs = ConfigStore.instance()
    share_config_store()
    cs.store(name="job_schema", node=stored_node(JobConfig))
    for group, registry in GROUPS.items():
        for name in registry.names():
            cs.store(
                name=f"schema_{group}_{name}", node=stored_node(registry[name].config_cls, group)
            )


def stored_node(cls: type, group: str = "") -> Any:
    """What the ConfigStore holds for `cls` (the job's, or an option's of `group`): the dataclass,
    or, where it has a field of ENV_DEFAULTS, a node whose default reads the environment first."""
    moved: dict[str, str] = {}
    for key, var in ENV_DEFAULTS.items():
        head, _, rest = key.partition(".")
        if head == group:  # a group's field: in each option's schema
            moved[rest] = var
        elif not group and head not in GROUPS:  # the job's own: a group's is in its options
            moved[key] = var
    if not moved:
        return cls
    node = OmegaConf.structured(cls)
    for key, var in moved.items():
        OmegaConf.update(node, key, f"${{oc.env:{var},{OmegaConf.select(node, key)}}}")
    return node


def share_config_store() -> None:
    """Copies of the ConfigStore are the store itself. hydra-core 1.3.8 deep-copies it with its
    config repository for every composition and every group `--help` lists (173 copies of 10-25
    ms: `launch.py --help` took 4 s instead of 2; a sweep pays it per job). Hydra's own fix,
    facebookresearch/hydra#2928 (merged, not in 1.3.8: its config source reads the live
    singleton instead of copying it), has this effect; hydra-zen#769 reports the same cost.
    Nothing mutates a copy: the repository is copied so that re-initialising its sources does
    not touch the original, and sources only read the store. Pickling (Slurm jobs) is unchanged."""
    ConfigStore.__deepcopy__ = lambda self, memo: self


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
NOT_IN_FINGERPRINT = (
    "tracking",
    "train.device",
    "train.threads",
    "train.compile",
    "train.checkpoint_every",
    "train.checkpoint_every_s",
    "train.keep_checkpoints",
    "train.checkpoint_dir",
    "data.cache_dir",
    # how many ranks: the global batch, and so the training, is the same on
    # any number, and a ddp/fsdp checkpoint resumes on another (DCP reshards)
    "dist.nproc",
    "dist.nodes",
    "dist.backend",
)


def fingerprint(job: JobConfig) -> str:
    """Identity of a job: a hash of its resolved config less launcher and location fields.
    A re-run sweep skips FINISHED runs and resumes interrupted ones by this key."""
    kept = {
        k: v
        for k, v in flatten(asdict(job)).items()
        if not any(k == f or k.startswith(f + ".") for f in NOT_IN_FINGERPRINT)
    }
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def to_job(cfg: DictConfig) -> JobConfig:
    """Resolve and validate a composed config; a `hydra` node (sweeper side) is dropped."""
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.pop("hydra", None)
    refuse_unknown_keys(cfg)
    return OmegaConf.to_object(cfg)


def refuse_unknown_keys(cfg: DictConfig, prefix: str = "") -> None:
    """`+model.foo=1` adds a key to a typed node (Hydra's `+` opens it), and to_object would
    then drop it without a word: refuse it like `model.foo=1`."""
    cls = OmegaConf.get_type(cfg)
    if dataclasses.is_dataclass(cls):
        names = [f.name for f in dataclasses.fields(cls)]
        for key in cfg.keys():
            if key not in names:
                where = f"{prefix}{key}"
                owner = (
                    f"{prefix.rstrip('.')}={cfg.get('name')}"
                    if "name" in names
                    else (prefix.rstrip(".") or "the job config")
                )
                raise ConfigError(
                    f"{where} is not a field of {owner}; valid fields: {', '.join(sorted(names))}"
                )
    for key in cfg.keys():
        # an interpolation stays unresolved here: what it names is checked where that lives
        if OmegaConf.is_missing(cfg, key) or OmegaConf.is_interpolation(cfg, key):
            continue
        value = cfg[key]
        if isinstance(value, DictConfig):  # not None, nor a plain value
            refuse_unknown_keys(value, f"{prefix}{key}.")


# What composing, type-checking and pre-flighting a config can raise about the config itself.
CONFIG_ERRORS = (HydraException, OmegaConfBaseException, ValueError, KeyError, TypeError)


def checked_job(cfg: DictConfig, local: bool = True) -> JobConfig:
    """`to_job` then `preflight`: the job, or one ConfigError line saying what is wrong."""
    try:
        job = to_job(cfg)
        preflight(job, local=local)
        return job
    except CONFIG_ERRORS as e:
        raise ConfigError(in_one_line(e)) from None


def in_one_line(e: BaseException) -> str:
    """A composition error in one line: Hydra's message without its config search path, every
    option it lists, and for a key that does not exist the fields that do."""
    head = str(e).partition("Config search path:")[0]
    lines = [line.strip() for line in head.splitlines() if line.strip()]
    listed = next((i for i, line in enumerate(lines) if line.startswith("Available options")), None)
    if listed is not None:
        return " ".join(lines[:listed]) + f"; {lines[listed]} {', '.join(lines[listed + 1 :])}"
    cause = e
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__ or cause.__context__
    missing = isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and not isinstance(
        cause, InterpolationResolutionError
    )
    if missing and cause.key and dataclasses.is_dataclass(cause.object_type):
        said = str(cause.msg).splitlines()[0]  # already in the first line when e wraps it
        first = lines[0].replace(said, "").rstrip(": .") or said
        fields = ", ".join(f.name for f in dataclasses.fields(cause.object_type))
        kind = cause.object_type.__name__
        return f"{first}: {kind} has no field {cause.key!r}; its fields: {fields}"
    # A wrong type or value: what Hydra and OmegaConf said and of which key, not their types.
    said = [line.strip() for line in str(cause or "").splitlines() if line.strip()]
    parts = [line for line in lines + said if not re.match(r"\w+_type=", line)]
    return " | ".join(dict.fromkeys(p for p in parts if not any(p in q for q in parts if q != p)))


def preflight(job: JobConfig, local: bool = True) -> None:
    """The checks that cost more than a comparison, for one job, before anything runs: the data
    (files, encodings, the tokenizer file), model.params solved into a width (meta-device
    models: so plans, fingerprints and MLflow see the real d_model), the directories the job
    writes, and, when it runs on this machine, the device it asks for and what its ranks need
    here (a Slurm launch checks those on its nodes)."""
    job.data.preflight()
    job.model = solve_width(job.model, job.vocab_size(), causal=job.objective.causal)
    for field_name, path in (
        ("train.checkpoint_dir", job.train.checkpoint_dir),
        ("data.cache_dir", job.data.cache_dir),
    ):
        check_writable(field_name, Path(path).expanduser().resolve())
    if local and job.train.device.startswith("cuda"):
        import torch

        check(
            torch.cuda.is_available(),
            "train.device",
            job.train.device,
            "CUDA is not available on this machine: use train.device=auto or cpu",
        )
    if local:  # ranks started here: one node, a GPU per rank, a backend this machine has
        from trainer.dist.run import check_here  # imports this module

        check_here(job)


def check_writable(field_name: str, path: Path) -> None:
    """The directory exists and is writable, or can be created under one that is."""
    existing = next(p for p in [path, *path.parents] if p.exists())
    check(existing.is_dir(), field_name, str(path), f"{existing} is a file, not a directory")
    check(
        os.access(existing, os.W_OK | os.X_OK), field_name, str(path), f"{existing} is not writable"
    )
