"""A fake MLflow store for the analysis tests: runs written into a real store exactly as the
trainer names them (trainer/schema.py), without a trainer.

``log_job`` logs one job run under a sweep run from ``start_sweep``; ``demo_store`` logs a small,
realistic IsoFLOP sweep (``demo_jobs``) whose losses follow a known Chinchilla law (Hoffmann et
al. 2022 eq. 2) with noise, plus one diverged run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from trainer import schema
from trainer.contract import MAX_METRICS_PER_BATCH


@dataclass
class JobSpec:
    params: Mapping[str, object]  # flattened config
    history: Mapping[str, np.ndarray]  # metric -> values, one per step in ``steps``
    steps: np.ndarray
    summary: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)  # lmsweep.* tags beyond role/sweep


def start_sweep(client: MlflowClient, experiment: str, sweep_id: str) -> tuple[str, str]:
    """(experiment id, parent run id) of a new sweep run."""
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    parent = client.create_run(
        exp_id,
        run_name=f"sweep {sweep_id}",
        tags={schema.TAG_ROLE: schema.ROLE_SWEEP, schema.TAG_SWEEP_ID: sweep_id},
    )
    return exp_id, parent.info.run_id


def log_job(
    client: MlflowClient, experiment_id: str, parent_run_id: str, sweep_id: str, job: JobSpec
) -> str:
    """One child run with params, tags, metric histories and summary metrics via log_batch."""
    overrides = " ".join(f"{k}={v}" for k, v in job.params.items())
    run = client.create_run(
        experiment_id,
        run_name=overrides,
        tags={
            schema.TAG_ROLE: schema.ROLE_JOB,
            schema.TAG_SWEEP_ID: sweep_id,
            schema.PARENT_RUN_TAG: parent_run_id,
            schema.TAG_OVERRIDES: overrides,
            **job.tags,
        },
    )
    run_id = run.info.run_id
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in job.params.items()])
    metrics = [
        Metric(key, float(v), int(1000 * i), int(step))
        for key, values in job.history.items()
        for i, (step, v) in enumerate(zip(job.steps, values))
    ]
    metrics += [Metric(key, float(v), 0, int(job.steps[-1])) for key, v in job.summary.items()]
    for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + MAX_METRICS_PER_BATCH])
    failed = job.tags.get(schema.TAG_OUTCOME) == schema.OUTCOME_FAILED
    client.set_terminated(run_id, "FAILED" if failed else "FINISHED")
    return run_id


# Demo ground truth per architecture (E, A, B, alpha, beta): Hoffmann et al. 2022's exponents
# and E with A, B scaled down to give small-model losses of 3-4 nats, a slightly worse law for
# the mixer, and achieved FLOP/s per architecture (the mixer runs faster, so it can win at
# equal wall-clock while losing at equal FLOPs).
DEMO_LAWS = {
    "transformer": (1.69, 150.0, 152.0, 0.34, 0.28),
    "mixer": (1.72, 150.0, 152.0, 0.33, 0.28),
}
DEMO_FLOPS_PER_S = {"transformer": 2.0e12, "mixer": 4.0e12}
DEMO_BUDGETS = (3e15, 1e16, 3e16)
DEMO_SIZES = (2e6, 4e6, 8e6, 1.6e7, 3.2e7, 6.4e7)


def demo_jobs(
    seed: int = 0,
    n_steps: int = 12,
    noise: float = 0.004,
    budgets: tuple[float, ...] = DEMO_BUDGETS,
    sizes: tuple[float, ...] = DEMO_SIZES,
) -> list[JobSpec]:
    """An IsoFLOP grid (budgets x model sizes) for each architecture, plus one diverged run."""
    rng = np.random.default_rng(seed)
    jobs = []
    for arch, (E, A, B, alpha, beta) in DEMO_LAWS.items():
        for budget in budgets:
            for n in sizes:
                tokens = budget / (6 * n) * np.arange(1, n_steps + 1) / n_steps
                val = E + A / n**alpha + B / tokens**beta
                val = val * np.exp(noise * rng.standard_normal(n_steps))
                jobs.append(_job(arch, n, budget, tokens, val, rng))
    last = jobs[-1].history  # the same job at 10x the learning rate, diverging half-way
    bad = _job(
        "mixer",
        sizes[-1],
        budgets[-1],
        last[schema.TOKENS].copy(),
        last[schema.VAL_LOSS].copy(),
        rng,
        lr=3e-2,
    )
    bad.history[schema.VAL_LOSS][n_steps // 2 :] = np.nan
    bad.history[schema.TRAIN_LOSS][n_steps // 2 :] = np.nan
    bad.summary = {
        schema.FINAL_VAL_LOSS: np.nan,
        schema.BEST_VAL_LOSS: float(np.nanmin(bad.history[schema.VAL_LOSS])),
    }
    bad.tags = {**bad.tags, schema.TAG_OUTCOME: schema.OUTCOME_DIVERGED}
    return jobs + [bad]


def _job(
    arch: str,
    n: float,
    budget: float,
    tokens: np.ndarray,
    val: np.ndarray,
    rng: np.random.Generator,
    lr: float = 3e-3,
) -> JobSpec:
    steps = np.arange(1, tokens.size + 1) * 100
    flops = 6 * n * tokens
    wall = flops / DEMO_FLOPS_PER_S[arch] * (1 + 0.02 * rng.standard_normal())
    train = val * (1 - 0.01 * rng.random(tokens.size))
    history = {
        schema.TOKENS: tokens,
        schema.FLOPS: flops,
        schema.WALL_CLOCK: wall,
        schema.VAL_LOSS: val,
        schema.TRAIN_LOSS: train,
        schema.LR: lr * 0.5 * (1 + np.cos(np.pi * np.arange(tokens.size) / tokens.size)),
        schema.TOKENS_PER_S: tokens / wall,
        schema.BATCH_TOKENS: np.full(tokens.size, tokens[0]),
        schema.GRAD_NORM: 1.0 / np.sqrt(np.arange(1, tokens.size + 1)),
    }
    size = f"{n:.2g}"
    return JobSpec(
        params={
            "model.name": arch,
            "model.size": size,
            "optim.name": "adam",
            "optim.lr": lr,
            "budget.name": "tokens",
            "budget.tokens": int(tokens[-1]),
            "seed": 0,
        },
        history=history,
        steps=steps,
        summary={
            schema.FINAL_VAL_LOSS: float(val[-1]),
            schema.BEST_VAL_LOSS: float(val.min()),
            schema.UNIGRAM_ENTROPY: 7.5,
            schema.OPTIMIZER_STATE_BYTES_PER_PARAM: 8.0,
        },
        tags={
            schema.TAG_PARAMS_TOTAL: str(int(n * 1.1)),
            schema.TAG_PARAMS_NON_EMBEDDING: str(int(n)),
            schema.TAG_FLOPS_PER_TOKEN: str(6 * n),
            schema.TAG_OUTCOME: schema.OUTCOME_FINISHED,
            schema.TAG_FINGERPRINT: f"{arch}-{size}-{budget:.0e}-{lr}",
        },
    )


def demo_store(
    tracking_uri: str, experiment: str = "lmsweep-demo", sweep_id: str = "demo", **grid: object
) -> str:
    """Log the demo sweep (``grid``: demo_jobs' arguments) into ``tracking_uri``; returns the
    parent (sweep) run id."""
    client = MlflowClient(tracking_uri=tracking_uri)
    exp_id, parent = start_sweep(client, experiment, sweep_id)
    for job in demo_jobs(**grid):
        log_job(client, exp_id, parent, sweep_id, job)
    client.set_terminated(parent, "FINISHED")
    return parent
