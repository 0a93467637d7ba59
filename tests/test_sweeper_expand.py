"""The sweep's jobs: the cartesian product of the overrides, as Hydra's basic sweeper makes it,
through Hydra's public override parser."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sweeper.core import expand, run_names
from tests.conftest import run_launch
from trainer.contract import ConfigError


def test_product_in_order_and_a_key_given_twice_takes_the_last_values():
    # A preset's hydra.sweeper.params come first, the command line after: the command line
    # wins, in the preset's position (Hydra's BasicSweeper does the same).
    jobs = expand(["model=a,b", "seed=0", "optim=x,y", "model=c"], None)
    assert jobs == [["model=c", "seed=0", "optim=x"], ["model=c", "seed=0", "optim=y"]]
    assert run_names(jobs) == ["optim=x", "optim=y"]


def test_choice_and_range_are_lists_intervals_are_refused():
    assert expand(["seed=range(0,3)"], None) == [["seed=0"], ["seed=1"], ["seed=2"]]
    assert expand(["seed=choice(4,5)"], None) == [["seed=4"], ["seed=5"]]
    with pytest.raises(ConfigError, match="lists of values"):
        expand(["optim.lr=interval(0.1,1)"], None)


def test_an_empty_sweep_says_so():
    with pytest.raises(ConfigError, match=r"the sweep has no jobs: seed=range\(0,0\) gives no"):
        expand(["model=a,b", "seed=range(0,0)"], None)


def test_a_name_without_varying_overrides_is_readable():
    (name,) = run_names([["seed=0", "tracking.uri=sqlite\\:////tmp/m.db"]])
    assert name == "seed=0"
    # where it runs is not part of the name (a Slurm one-job sweep's was every launcher option)
    job = ["+cluster=local", "hydra/launcher=slurm", "hydra.launcher.timeout_min=30", "seed=1"]
    assert run_names([job]) == ["seed=1"]


@pytest.mark.parametrize(
    "sweep",
    [
        ["seed=0,0"],
        ["train.threads=1,2"],  # not in the fingerprint: the same training
        ["model.params=200k", "model.d_model=64,512"],  # d_model is solved from params
    ],
)
def test_jobs_that_are_one_run_are_refused_before_anything_runs(sweep, tmp_path, env):
    """The plan said "run" for each, then the first trained and the others skipped it as
    "finished elsewhere"; status showed them as "no run yet" for good."""
    r = run_launch("-m", *sweep, f"tracking.uri=sqlite:///{tmp_path}/m.db", cwd=tmp_path, env=env)
    assert r.returncode != 0 and "#0 (" in r.stderr and "= #1 (" in r.stderr, r.stderr[-2000:]
    assert "one run (one fingerprint), trained once" in r.stderr and "Traceback" not in r.stderr
    if (tmp_path / "m.db").exists():  # connecting made the store: nothing in it
        client = MlflowClient(f"sqlite:///{tmp_path}/m.db")
        experiments = [e.experiment_id for e in client.search_experiments()]
        assert not client.search_runs(experiments)


def test_one_job_at_several_sizes_is_a_rerun_in_turn(tmp_path, env):
    """docs/cluster.md's scaling-efficiency sweep: with hydra.sweeper.rerun=true the basic
    launcher trains each in turn (its checkpoints cleared after each), so it is planned."""
    sweep = ["dist=ddp", "dist.nproc=1,2", "train.micro_batch=8", "hydra.sweeper.rerun=true"]
    args = [*sweep, f"tracking.uri=sqlite:///{tmp_path}/m.db", "hydra.sweeper.dry_run=true"]
    r = run_launch("-m", *args, cwd=tmp_path, env=env)
    assert r.returncode == 0 and "2 of 2 jobs to launch" in r.stdout, r.stderr[-2000:]


def test_a_cluster_sweep_is_planned_on_a_machine_without_slurm(tmp_path, env):
    """A dry run of a Slurm sweep on a laptop prints its plan and GPU-hours (it failed: no
    sinfo); submitting still needs Slurm."""
    no_slurm = {**env, "PATH": str(Path(sys.executable).parent)}
    args = ["-m", "+cluster=example_gpu", f"tracking.uri=sqlite:///{tmp_path}/m.db"]
    r = run_launch(*args, "hydra.sweeper.dry_run=true", cwd=tmp_path, env=no_slurm)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "request was not checked against the nodes: hydra/launcher=slurm, but `sinfo`" in (
        r.stdout
    )
    assert "est. GPU-h" in r.stdout and "dry run: nothing launched" in r.stdout
    r = run_launch(*args, cwd=tmp_path, env=no_slurm)
    assert r.returncode != 0 and "`sinfo` is not on PATH" in r.stderr, r.stderr[-2000:]


def test_sweep_params_from_the_command_line_are_swept(tmp_path, env):
    """`+hydra.sweeper.params.seed=...` (what a preset's `hydra.sweeper.params` says, given on
    the command line) adds to the sweep; it was an OmegaConf AssertionError."""
    args = ["+hydra.sweeper.params.seed='0,1'", f"tracking.uri=sqlite:///{tmp_path}/m.db"]
    r = run_launch("-m", *args, "hydra.sweeper.dry_run=true", cwd=tmp_path, env=env)
    assert r.returncode == 0 and "2 of 2 jobs to launch" in r.stdout, r.stderr[-2000:]
    args = ["hydra.sweeper.params=null", "seed=0,1", f"tracking.uri=sqlite:///{tmp_path}/m.db"]
    r = run_launch("-m", *args, "hydra.sweeper.dry_run=true", cwd=tmp_path, env=env)
    assert r.returncode == 0 and "2 of 2 jobs to launch" in r.stdout, r.stderr[-2000:]


@pytest.mark.parametrize("show", ["--cfg", "--cfg=hydra", "--info"])
def test_a_sweeps_config_is_one_line_naming_the_dry_run(tmp_path, env, show):
    args = ["-m", "model=mixer,transformer", *([show, "job"] if show == "--cfg" else [show])]
    (here := tmp_path / "here").mkdir()
    r = run_launch(*args, cwd=here, env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    (line,) = r.stderr.strip().splitlines()
    assert f"{show} shows one job and cannot be combined with -m" in line
    assert "hydra.sweeper.dry_run=true" in line and not any(here.iterdir())
