"""Which optimizer runs under which `dist` option, proved on 2 CPU ranks (gloo): for every
supported pair, a Trainer trains, checkpoints in its format (DCP, DeepSpeed's), and a fresh
Trainer that loads the checkpoint takes the next step bit for bit as the original does. The
pairs lmsweep refuses are refused at composition, naming the alternatives (docs/cluster.md,
"Distributed jobs", has the table)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import compose_job, tiny
from trainer.contract import ConfigError
from trainer.dist.config import ELEMENTWISE_OPTIMIZERS
from trainer.optim import OPTIMIZERS

pytestmark = pytest.mark.slow

TINY = tiny("train.threads=1", micro_batch=4, batch=16)
SUPPORTED = (
    [("ddp", o) for o in OPTIMIZERS.names()]
    + [("fsdp", o) for o in ELEMENTWISE_OPTIMIZERS]
    + [(f"deepspeed dist.zero_stage={z}", o) for z in (1, 2, 3) for o in ELEMENTWISE_OPTIMIZERS]
    + [("deepspeed dist.zero_stage=2 dist.offload_optimizer=true", "adamw")]
)


def roundtrip(cases: list[tuple[str, str]], cache: str, ckpt: str) -> dict[str, str]:
    """In each rank: per case, train 2 steps, save, load into a new Trainer, and compare the
    next step of both. Returns what went wrong per case ("" when nothing did)."""
    from trainer.dist.checkpoint import for_trainer
    from trainer.dist.env import TORCH_EXTENSIONS_DIR
    from trainer.loop import Trainer

    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(TORCH_EXTENSIONS_DIR))
    out = {}
    for i, (dist, optim) in enumerate(cases):
        job = compose_job(
            *f"dist={dist}".split(),
            f"optim={optim}",
            "dist.nproc=2",
            *TINY,
            f"data.cache_dir={cache}",
        )
        try:
            a = Trainer(job)
            a.step(), a.step()
            for_trainer(a, _dir(ckpt, i)).save("run")
            b = Trainer(job)
            store = for_trainer(b, _dir(ckpt, i))
            store.load(store.latest())
            got, want = b.step(), a.step()
            out[f"{dist} {optim}"] = "" if got[2] == want[2] else f"loss {got[2]} != {want[2]}"
        except Exception as e:
            out[f"{dist} {optim}"] = f"{type(e).__name__}: {str(e)[:300]}"
    return out


def _dir(base: str, i: int):
    from pathlib import Path

    return Path(base) / str(i)


def test_every_supported_pair_trains_checkpoints_and_resumes_bit_exact(tmp_path, cache_dir):
    from trainer.dist import spawn
    from trainer.dist.run import rank_main

    first = compose_job("dist=ddp", "dist.nproc=2", *TINY, f"data.cache_dir={cache_dir}")
    got = spawn.start(
        2,
        rank_main,
        (lambda_free_roundtrip, first, SUPPORTED, str(cache_dir), str(tmp_path / "ckpt")),
    )
    failed = {k: v for k, v in got.items() if v}
    assert not failed, failed
    assert len(got) == len(SUPPORTED)


def lambda_free_roundtrip(job, cases, cache, ckpt):  # rank_main calls train(job, *args)
    return roundtrip(cases, cache, ckpt)


@pytest.mark.parametrize("dist", ["fsdp", "deepspeed"])
def test_optimizers_that_need_whole_tensors_are_refused_when_sharded(dist):
    for optim in sorted(set(OPTIMIZERS.names()) - set(ELEMENTWISE_OPTIMIZERS)):
        with pytest.raises(
            ConfigError,
            match=rf"optim='{optim}' is invalid: dist={dist} "
            r"shards every tensor.*use dist=ddp, or one of adam, adamw",
        ):
            compose_job(f"dist={dist}", f"optim={optim}")
    with pytest.raises(ConfigError, match=rf"train.agc=0.003 is invalid.*{dist} shards"):
        compose_job(f"dist={dist}", "train.agc=0.003")
