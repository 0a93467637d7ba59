"""Hydra discovers plugins only under the `hydra_plugins` namespace and instantiates only classes
defined there; this registers lmsweep's sweeper, implemented in `sweeper/`.

Hydra imports every plugin module on every command (`--help` and `--cfg` included), so this
module imports nothing heavy: torch, mlflow and the sweeper's logic load in `sweep()`, as
Hydra's own launchers defer submitit "to ensure plugin discovery remains fast".
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper


@dataclass
class LmsweepSweeperConf:
    _target_: str = "hydra_plugins.lmsweep_sweeper.LmsweepSweeper"
    max_batch_size: Optional[int] = None  # jobs per launcher call (null: all at once)
    params: Optional[Dict[str, str]] = None  # sweep overrides from a config (experiment presets)
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


class LmsweepSweeper(Sweeper):
    def __init__(
        self,
        max_batch_size: Optional[int] = None,
        params: Optional[Dict[str, str]] = None,
        dry_run: bool = False,
        rerun: bool = False,
        gpu: str = "A100",
        assumed_mfu: float = 0.4,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.dry_run, self.rerun = dry_run, rerun
        self.gpu, self.assumed_mfu = gpu, assumed_mfu
        self.hydra_context = self.config = self.launcher = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: List[str]) -> Any:
        from sweeper.core import run_sweep

        return run_sweep(self, arguments)


# hydra/launcher=lmsweep_slurm (the base of conf/hydra/launcher/slurm.yaml)
from hydra_plugins.lmsweep_sweeper import slurm_launcher as _slurm_launcher  # noqa: E402,F401
