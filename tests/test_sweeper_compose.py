"""A local sweep composes each job once: the launcher gets the config the sweeper composed for
its pre-flight, through Hydra's own loader otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from mlflow.tracking import MlflowClient

from hydra_plugins.lmsweep_sweeper import ComposedOnce
from tests.conftest import CONF, ROOT, link_corpus
from tests.test_e2e_sweep import TINY, job_runs


def test_a_kept_config_is_handed_over_once_then_composed_by_hydra(monkeypatch):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        master = compose(config_name="config", return_hydra_config=True)
        loader = GlobalHydra.instance().config_loader()
        composer = ComposedOnce(loader)
        kept = loader.load_sweep_config(master, ["seed=3"])
        composer.keep(master, ["seed=3"], kept)
        assert composer.load_sweep_config(master, ["seed=3"]) is kept
        again = composer.load_sweep_config(master, ["seed=3"])  # handed over once only
        assert again is not kept and again.seed == 3

        # Another sweep config (not the one it was composed from) is composed afresh.
        composer.keep(master, ["seed=4"], loader.load_sweep_config(master, ["seed=4"]))
        other = master.copy()
        assert composer.load_sweep_config(other, ["seed=4"]).seed == 4
        assert not composer.kept

        # At most KEEP wait: the rest are composed when launched.
        monkeypatch.setattr(ComposedOnce, "KEEP", 2)
        for seed in (5, 6, 7):
            composer.keep(
                master, [f"seed={seed}"], loader.load_sweep_config(master, [f"seed={seed}"])
            )
        assert sorted(composer.kept) == [("seed=5",), ("seed=6",)]
        assert composer.load_sweep_config(master, ["seed=7"]).seed == 7
        assert composer.get_search_path() is loader.get_search_path()


def test_a_local_sweep_keeps_what_its_pre_flight_composed_for_its_launcher(tmp_path, monkeypatch):
    """The sweeper as Hydra sets it up and runs it (a dry run: planned, not launched): its
    launcher reads configs through the sweeper's ComposedOnce, and the pre-flight left each
    job's composed config there for it."""
    from hydra.types import HydraContext

    from hydra_plugins.lmsweep_sweeper import LmsweepSweeper

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LMSWEEP_CHECKPOINTS", str(tmp_path / "ckpt"))
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        master = compose(config_name="config", return_hydra_config=True)
        loader = GlobalHydra.instance().config_loader()
        sweeper = LmsweepSweeper(dry_run=True)
        sweeper.setup(
            hydra_context=HydraContext(loader, None), task_function=lambda cfg: None, config=master
        )
        assert sweeper.launcher.hydra_context.config_loader is sweeper.composer
        uri = f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"
        assert sweeper.sweep(["seed=1,2", uri]) == []
    first, second = sorted(sweeper.composer.kept)  # the overrides as the sweep expanded them
    assert (first[0], second[0]) == ("seed=1", "seed=2")
    handed = sweeper.composer.load_sweep_config(master, list(second))
    assert handed.seed == 2 and list(sweeper.composer.kept) == [first]


# Counts every job composition of a real `launch.py -m` run: Hydra's loader is wrapped in the
# process before launch.py runs (only a test may do this), and the count is written at exit.
COUNTING_LAUNCH = """
import atexit, json, os, runpy, sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl

composed = []
hydras = ConfigLoaderImpl.load_sweep_config

def load_sweep_config(self, master_config, sweep_overrides):
    composed.append(list(sweep_overrides))
    return hydras(self, master_config, sweep_overrides)

ConfigLoaderImpl.load_sweep_config = load_sweep_config
atexit.register(lambda: open(os.environ["COUNT_TO"], "w").write(json.dumps(composed)))
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_real_local_sweep_composes_each_job_once(tmp_path, corpus):
    """The README's path (`launch.py -m`, local, trained and logged): two jobs, two
    compositions, both by the sweeper's pre-flight; the launcher composes none again."""
    count = tmp_path / "composed.json"
    env = {
        **os.environ,
        "LMSWEEP_CACHE": str(link_corpus(tmp_path / "cache", corpus)),
        "MLFLOW_TRACKING_URI": "",
        "COUNT_TO": str(count),
    }
    args = ["-m", "seed=1,2", *TINY, "budget.steps=10", "tracking.experiment=once"]
    r = subprocess.run(
        [sys.executable, "-c", COUNTING_LAUNCH, str(ROOT / "launch.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    jobs, _ = job_runs(MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}"), "once")
    assert sorted(j.data.params["seed"] for j in jobs if j.info.status == "FINISHED") == ["1", "2"]
    composed = json.loads(count.read_text())
    assert sorted(o for job in composed for o in job if o.startswith("seed=")) == [
        "seed=1",
        "seed=2",
    ]
