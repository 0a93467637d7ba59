"""Every option of every group trains a few real steps on the CPU through the trainer.

(`data=files` and `data=hf` need input files: tests/test_data_sources.py trains them.)"""

from __future__ import annotations

import math

import pytest
import torch

from tests.conftest import CONF, compose_job, tiny
from trainer.config import GROUPS
from trainer.loop import Trainer

TINY = tiny("train.threads=1", "train.eval_sequences=8")
NEEDS_INPUTS = {("data", "files"), ("data", "hf")}
OPTIONS = [
    (g, p.stem)
    for g in GROUPS
    for p in sorted((CONF / g).glob("*.yaml"))
    if (g, p.stem) not in NEEDS_INPUTS
]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory, corpus):
    from trainer.data.corpus import corpus_dir

    cache = tmp_path_factory.mktemp("cache")
    corpus_dir(cache).parent.mkdir(parents=True)
    corpus_dir(cache).symlink_to(corpus)
    return cache


@pytest.fixture
def one_rank(monkeypatch):
    """This process as rank 0 of a world of 1: the dist options train without spawning
    (tests/test_dist_*.py run them on several ranks)."""
    from tests.mlflow_server import free_port
    from trainer.dist import env

    for key, value in (
        ("RANK", "0"),
        ("LOCAL_RANK", "0"),
        ("WORLD_SIZE", "1"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", str(free_port())),
    ):
        monkeypatch.setenv(key, value)
    yield env.init
    env.shutdown()


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_trains(group, option, shared_cache, request):
    extra = ["ramp.stages=[[0,8],[0.5,16]]"] if option == "staged" else []
    if group != "schedule":
        extra.append("schedule=constant")  # no warmup: every step has a non-zero lr
    job = compose_job(*TINY, f"{group}={option}", *extra, f"data.cache_dir={shared_cache}")
    if group == "dist" and option != "none":
        request.getfixturevalue("one_rank")(job)
    trainer = Trainer(job)
    trainer.state.progress.steps = 60  # schedules: past the default 10% warmup
    before = [p.detach().clone() for p in trainer.model.parameters()]
    losses = [trainer.step() for _ in range(3)]
    assert all(finite and math.isfinite(loss) for _, _, loss, _, finite in losses)
    moved = sum(not torch.equal(b, p.detach()) for b, p in zip(before, trainer.model.parameters()))
    assert moved > 0, "no parameter was updated"
