"""Hydra discovers plugins only under the `hydra_plugins` namespace and instantiates only classes
defined there; this registers lmsweep's sweeper, implemented in `sweeper/`.

Hydra imports every plugin module on every command (`--help` and `--cfg` included), so this
module imports nothing heavy: torch, mlflow and the sweeper's logic load in `sweep()`, as
Hydra's own launchers defer submitit "to ensure plugin discovery remains fast".
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_loader import ConfigLoader
from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext


@dataclass
class LmsweepSweeperConf:
    _target_: str = "hydra_plugins.lmsweep_sweeper.LmsweepSweeper"
    max_batch_size: Optional[int] = None  # jobs per launcher call (null: all at once)
    # Sweep overrides from a config (experiment presets), or the command line's
    # `+hydra.sweeper.params.seed='0,1'`: a dict by default, as OmegaConf cannot add a key
    # to None (its AssertionError was the command's only output).
    params: Optional[Dict[str, str]] = field(default_factory=dict)
    dry_run: bool = False  # print the plan, launch nothing
    # Run jobs again even when a FINISHED run has their fingerprint. Fingerprints hash the
    # resolved config, not the code: after a code change, rerun (or sweep a new seed).
    rerun: bool = False
    # The plan's GPU-hours: FLOPs / (the GPU's bf16 peak, trainer/perf.py's table, x the MFU).
    # 40% is llm.c's GPT-2 124M baseline on H100s; a cluster preset names its own GPU.
    gpu: str = "A100"
    assumed_mfu: float = 0.4


ConfigStore.instance().store(
    group="hydra/sweeper", name="lmsweep", node=LmsweepSweeperConf, provider="lmsweep"
)


class ComposedOnce(ConfigLoader):
    """The launcher's config loader: Hydra's, except that a job's config the sweeper composed
    for its pre-flight (`keep`) is handed to the launcher once instead of composed again
    (~0.25 s a job on 2 cores, the largest per-job cost of a local sweep's start-up). At most
    KEEP configs wait (~150 KB each), so a sweep of thousands stays small; the others, and
    every other call, go to Hydra's loader. Configs of jobs that are not launched (skipped,
    a dry run) stay until the process ends."""

    KEEP = 64

    def __init__(self, loader: ConfigLoader) -> None:
        self.loader = loader
        self.kept: Dict[tuple, Any] = {}

    def keep(self, master_config: Any, sweep_overrides: List[str], config: Any) -> None:
        if len(self.kept) < self.KEEP:
            self.kept[tuple(sweep_overrides)] = (master_config, config)

    def load_sweep_config(self, master_config: Any, sweep_overrides: List[str]) -> Any:
        kept = self.kept.pop(tuple(sweep_overrides), None)
        if kept is not None and kept[0] is master_config:
            return kept[1]
        return self.loader.load_sweep_config(master_config, sweep_overrides)

    def load_configuration(self, *args: Any, **kwargs: Any) -> Any:
        return self.loader.load_configuration(*args, **kwargs)

    def get_search_path(self) -> Any:
        return self.loader.get_search_path()

    def get_sources(self) -> Any:
        return self.loader.get_sources()

    def list_groups(self, parent_name: str) -> Any:
        return self.loader.list_groups(parent_name)

    def get_group_options(self, *args: Any, **kwargs: Any) -> Any:
        return self.loader.get_group_options(*args, **kwargs)

    def compute_defaults_list(self, *args: Any, **kwargs: Any) -> Any:
        return self.loader.compute_defaults_list(*args, **kwargs)


class LmsweepSweeper(Sweeper):
    def __init__(self, **conf: Any) -> None:
        """Hydra passes LmsweepSweeperConf's fields; its defaults are the only ones."""
        c = LmsweepSweeperConf(**conf)
        self.max_batch_size, self.params = c.max_batch_size, dict(c.params or {})
        self.dry_run, self.rerun = c.dry_run, c.rerun
        self.gpu, self.assumed_mfu = c.gpu, c.assumed_mfu
        self.hydra_context = self.config = self.launcher = self.composer = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.composer = ComposedOnce(hydra_context.config_loader)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=HydraContext(self.composer, hydra_context.callbacks),
            task_function=task_function,
            config=config,
        )

    def sweep(self, arguments: List[str]) -> Any:
        from sweeper.core import run_sweep

        return run_sweep(self, arguments)


# hydra/launcher=lmsweep_slurm (the base of conf/hydra/launcher/slurm.yaml)
from hydra_plugins.lmsweep_sweeper import slurm_launcher as _slurm_launcher  # noqa: E402,F401
