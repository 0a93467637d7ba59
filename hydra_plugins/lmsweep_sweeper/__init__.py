"""Hydra discovers plugins only under the `hydra_plugins` namespace, and instantiates only
classes defined there; this shim registers lmsweep's sweeper (implemented in `sweeper/`)."""
from hydra.core.config_store import ConfigStore

from sweeper.core import LmsweepSweeper as _Impl
from sweeper.core import LmsweepSweeperConf


class LmsweepSweeper(_Impl):
    pass


ConfigStore.instance().store(group="hydra/sweeper", name="lmsweep", node=LmsweepSweeperConf,
                             provider="lmsweep")

# hydra/launcher=lmsweep_slurm (the base of conf/hydra/launcher/slurm.yaml) and its resolvers
from hydra_plugins.lmsweep_sweeper import slurm_launcher as _slurm_launcher  # noqa: E402,F401
