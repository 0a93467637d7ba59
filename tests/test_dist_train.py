"""Distributed training inside a job (dist=ddp|fsdp|deepspeed), on the CPU with gloo: the ranks
are real processes started by `launch.py` itself. A 2-rank run and a 1-rank run of the same
config and global batch train on the same tokens and give the same loss curve, each as one
MLflow run that records how it was distributed.

DeepSpeed JIT-builds its shm comm op on first use (~30 s on 2 cores) into
.cache/lmsweep/torch_extensions (trainer/dist/env.py), which CI keeps between runs."""

from __future__ import annotations

import math

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_launch, tiny
from trainer import schema

pytestmark = pytest.mark.slow

# 20 steps of 4 micro-batches of 4 windows: 2 micro-batches per rank on 2 ranks. Float rounding
# of the gradient sums (which rank adds which micro-batch) is chaotic over long runs of a
# model this small (about 1e-7 relative after 30 steps, 1e-4 after 50): the curve is short.
TINY = tiny(
    "budget.steps=20",
    "train.log_every=2",
    "train.eval_every=10",
    "train.eval_sequences=16",
    "train.threads=1",
    micro_batch=4,
    batch=16,
)
# dist.nproc is not part of a job's identity (the training is the same on any number of
# ranks), so the sweep of both sizes asks for both runs with rerun=true.
BOTH_SIZES = ["dist.nproc=1,2", "hydra.sweeper.rerun=true"]
CASES = {  # name: (sweep overrides that pick the case's runs, relative tolerance)
    "ddp": ({"dist.name": "ddp"}, 1e-6),
    "fsdp": ({"dist.name": "fsdp"}, 1e-4),
    "zero1": ({"dist.name": "deepspeed", "dist.zero_stage": "1"}, 1e-4),
    "zero2": ({"dist.name": "deepspeed", "dist.zero_stage": "2"}, 1e-4),
    "zero3": ({"dist.name": "deepspeed", "dist.zero_stage": "3"}, 1e-4),
}


def sweep(tmp_path_factory, corpus, *overrides: str) -> str:
    from trainer.data.corpus import corpus_dir

    cwd = tmp_path_factory.mktemp("dist")
    cache = cwd / "cache"
    corpus_dir(cache).parent.mkdir(parents=True)
    corpus_dir(cache).symlink_to(corpus)
    r = run_launch(
        "-m",
        *overrides,
        *BOTH_SIZES,
        *TINY,
        cwd=cwd,
        env={
            "LMSWEEP_CACHE": str(cache),
            "LMSWEEP_CHECKPOINTS": str(cwd / "ckpt"),
            "MLFLOW_TRACKING_URI": "",
        },
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return f"sqlite:///{cwd / 'mlflow.db'}"


@pytest.fixture(scope="module")
def ddp_fsdp(tmp_path_factory, corpus):
    return sweep(tmp_path_factory, corpus, "dist=ddp,fsdp")


@pytest.fixture(scope="module")
def zero(tmp_path_factory, corpus):
    return sweep(tmp_path_factory, corpus, "dist=deepspeed", "dist.zero_stage=1,2,3")


def job_runs(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("lmsweep")
    return [
        r
        for r in client.search_runs([exp.experiment_id])
        if r.data.tags.get(schema.TAG_ROLE) == schema.ROLE_JOB
    ]


def history(uri: str, run, key: str) -> list[tuple[int, float]]:
    return [
        (m.step, m.value)
        for m in sorted(
            MlflowClient(uri).get_metric_history(run.info.run_id, key), key=lambda m: m.step
        )
    ]


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_give_the_one_rank_loss_curve(case, request):
    picks, rel = CASES[case]
    uri = request.getfixturevalue("zero" if case.startswith("zero") else "ddp_fsdp")
    runs = [r for r in job_runs(uri) if all(r.data.params[k] == v for k, v in picks.items())]
    # one MLflow run per job, whatever its number of ranks: only rank 0 talks to MLflow
    by_world = {int(r.data.tags["lmsweep.dist.world_size"]): r for r in runs}
    assert len(runs) == 2 and sorted(by_world) == [1, 2], [r.info.run_name for r in runs]
    one, two = by_world[1], by_world[2]
    assert one.info.status == two.info.status == "FINISHED"

    # the same global batch: the same tokens per step, and the same loss curve
    assert history(uri, two, schema.TOKENS) == history(uri, one, schema.TOKENS)
    assert history(uri, two, schema.BATCH_TOKENS)[0][1] == 16 * 32
    for key in (schema.TRAIN_LOSS, schema.VAL_LOSS):
        want, got = history(uri, one, key), history(uri, two, key)
        assert [s for s, _ in got] == [s for s, _ in want] and got, key
        for (step, a), (_, b) in zip(want, got):
            assert math.isclose(a, b, rel_tol=rel), (key, step, a, b)
    assert [s for s, _ in history(uri, two, schema.TRAIN_LOSS)] == list(range(2, 21, 2))

    # the run records how it was distributed, and each rank's peak memory
    assert two.data.tags["lmsweep.dist.backend"] == "gloo"
    if case.startswith("zero"):
        assert two.data.tags["lmsweep.dist.zero_stage"] == picks["dist.zero_stage"]
    peaks = {k: v for k, v in two.data.metrics.items() if k.startswith("peak_memory_mib_rank_")}
    assert sorted(peaks) == ["peak_memory_mib_rank_0", "peak_memory_mib_rank_1"]
    assert all(v > 10 for v in peaks.values())  # MiB: a Python process with torch


def test_non_finite_steps_are_skipped_alike_on_every_rank(tmp_path, cache_dir):
    """lr=1e30 sends the weights past float32 range on the first step: NaN from then on.
    Every rank sees the same verdict (the loss is averaged over ranks, the gradient norm is
    global; DeepSpeed's own overflow check likewise), so the run ends `diverged` after
    max_bad_steps, as a one-process run does, instead of one rank waiting for another."""
    r = run_launch(
        "-m",
        "dist=ddp,deepspeed",
        "dist.nproc=2",
        "optim.lr=1e30",
        *[o for o in TINY if not o.startswith("budget")],
        "budget.steps=30",
        "train.max_bad_steps=3",
        cwd=tmp_path,
        env={
            "LMSWEEP_CACHE": str(cache_dir),
            "MLFLOW_TRACKING_URI": "",
            "LMSWEEP_CHECKPOINTS": str(tmp_path / "ckpt"),
        },
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    runs = job_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert sorted(x.data.params["dist.name"] for x in runs) == ["ddp", "deepspeed"]
    for run in runs:
        assert run.info.status == "FINISHED", run.info.run_name
        assert run.data.tags[schema.TAG_OUTCOME] == schema.OUTCOME_DIVERGED
        assert int(run.data.tags[schema.TAG_DIVERGED_STEP]) <= 5
        assert run.data.metrics[schema.SKIPPED_STEPS] == 3


def test_bf16_under_zero_is_the_one_process_bf16(tmp_path, cache_dir):
    """train.precision=bf16 on 2 ZeRO-1/2 ranks follows a 1-process bf16 run as fp32 runs do:
    autocast over fp32 weights, gradients summed and reduced in fp32. DeepSpeed's own bf16 mode
    (bf16 weights, micro-batch gradients summed in bf16) drifted 3-4e-4 in 30 steps here."""
    env = {
        "LMSWEEP_CACHE": str(cache_dir),
        "MLFLOW_TRACKING_URI": "",
        "LMSWEEP_CHECKPOINTS": str(tmp_path / "ckpt"),
    }
    common = [*TINY, "train.precision=bf16", "budget.steps=30"]
    for dist in (["dist=none"], ["dist=deepspeed", "dist.zero_stage=1,2", "dist.nproc=2"]):
        r = run_launch("-m", *dist, *common, cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    curves = {
        run.data.params.get("dist.zero_stage", "none"): [
            v for _, v in history(uri, run, schema.TRAIN_LOSS)
        ]
        for run in job_runs(uri)
    }
    assert sorted(curves) == ["1", "2", "none"]
    for stage in ("1", "2"):
        assert curves[stage] == pytest.approx(curves["none"], rel=1.5e-4), stage


def test_compiled_ranks_train_under_ddp_fsdp_and_zero2(tmp_path, cache_dir):
    """train.compile (the default on CUDA) under every option that compiles: DeepSpeed's
    through engine.compile(); ZeRO-3, which cannot, is refused (docs/faults.md's table)."""
    r = run_launch(
        "-m",
        "dist=ddp,fsdp,deepspeed",
        "dist.nproc=2",
        "train.compile=true",
        *(o for o in TINY if not o.startswith("budget.steps")),
        "budget.steps=4",
        cwd=tmp_path,
        env={"LMSWEEP_CACHE": str(cache_dir), "MLFLOW_TRACKING_URI": ""},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    runs = job_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert len(runs) == 3 and all(x.info.status == "FINISHED" for x in runs)
    assert all(math.isfinite(x.data.metrics[schema.FINAL_VAL_LOSS]) for x in runs)
