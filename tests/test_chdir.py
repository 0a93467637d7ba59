"""hydra.job.chdir=true (Hydra runs each job inside its output directory): lmsweep's relative
paths still mean the launch directory, where the sweep's pre-flight planned and fingerprinted
the jobs. One data cache, one store, one checkpoint folder; a re-run finds what the first
launch left (finished runs skipped, an interrupted one resumed)."""

from __future__ import annotations

import shutil
import signal

import pytest

from tests.conftest import link_corpus, run_launch, tiny
from tests.test_resume import jobs, launch_and_signal
from trainer import schema

pytestmark = pytest.mark.slow

TINY = tiny("train.eval_every=50", "train.log_every=5", "train.eval_sequences=16")
CHDIR = "hydra.job.chdir=true"


@pytest.fixture
def launch_dir(tmp_path, corpus, monkeypatch):
    """A launch directory whose default cache (.cache/lmsweep, no LMSWEEP_CACHE) holds the
    corpus, so a job that looked elsewhere would fetch it again, and say so."""
    for var in ("LMSWEEP_CACHE", "LMSWEEP_CHECKPOINTS"):  # the defaults, relative, are tested
        monkeypatch.delenv(var, raising=False)
    cwd = tmp_path / "launch"
    link_corpus(cwd / ".cache" / "lmsweep", corpus)
    return cwd


def nothing_in(job_dirs):
    """What a job wrote into its output directory besides Hydra's own files (.hydra, its log)."""
    return sorted(
        str(p)
        for p in job_dirs.rglob("*")
        if p.name in (".cache", "mlruns", "checkpoints") or p.suffix == ".db"
    )


def test_a_sweep_under_chdir_shares_the_launch_dirs_cache_store_and_checkpoints(launch_dir):
    env = {"MLFLOW_TRACKING_URI": ""}
    # A relative store as a user writes it: the sweeper opens it in the launch directory.
    args = ["-m", *TINY, "budget.steps=120", "seed=0,1", "tracking.uri=sqlite:///store/runs.db"]
    code, out = launch_and_signal(
        [*args, CHDIR], launch_dir, env, signal.SIGINT, when="[seed=1] step 20 "
    )
    assert code == 130, out[-3000:]
    uri = f"sqlite:///{launch_dir / 'store' / 'runs.db'}"
    assert len(jobs(uri)[1]) == 2
    cache = launch_dir / ".cache" / "lmsweep"
    assert list((cache / "checkpoints").rglob("step_*")), "seed=1's checkpoint"
    assert nothing_in(launch_dir / "multirun") == []

    r = run_launch(*args, CHDIR, cwd=launch_dir, env=env)  # the same command again
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = [line.split(maxsplit=2) for line in r.stdout.splitlines()]
    plan = {row[1]: row[2] for row in rows if len(row) == 3 and row[1] in ("seed=0", "seed=1")}
    assert plan["seed=0"].endswith("skip (finished)") and plan["seed=1"].endswith("resume"), plan
    assert "fetching the default corpus" not in r.stdout + r.stderr
    client, runs = jobs(uri)
    assert len(runs) == 2 and {run.info.status for run in runs} == {"FINISHED"}
    (resumed,) = [run for run in runs if run.info.run_name == "seed=1"]
    assert resumed.data.tags[schema.TAG_RESUMES] == "1"
    built = [p for p in (cache / "data").iterdir() if p.suffix != ".lock"]
    assert len(built) == 1, f"one data cache, built once: {built}"
    assert nothing_in(launch_dir / "multirun") == []
    assert not list((cache / "checkpoints").rglob("step_*")), "finished: checkpoints cleared"


def test_a_single_run_under_chdir_reads_and_records_in_the_launch_dir(launch_dir, corpus):
    """The default store <launch dir>/mlflow.db (its artifacts beside it) and a data file given
    relative to the launch directory."""
    (launch_dir / "texts").mkdir()
    shutil.copy(next(corpus.glob("*_gut.txt")), launch_dir / "texts")
    args = [*TINY, "budget.steps=20", "data=files", "data.paths=[texts/*.txt]"]
    r = run_launch(
        *args, "data.sample_by=paragraph", CHDIR, cwd=launch_dir, env={"MLFLOW_TRACKING_URI": ""}
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    client, runs = jobs(f"sqlite:///{launch_dir / 'mlflow.db'}")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert list((launch_dir / "mlruns").rglob("config.yaml"))
    assert (launch_dir / ".cache" / "lmsweep" / "data").is_dir()
    assert nothing_in(launch_dir / "outputs") == []
