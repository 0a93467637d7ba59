"""A local sweep composes each job once: the launcher gets the config the sweeper composed for
its pre-flight, through Hydra's own loader otherwise."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from hydra_plugins.lmsweep_sweeper import ComposedOnce
from tests.conftest import CONF


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
