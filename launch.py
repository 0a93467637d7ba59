"""lmsweep entry point.

    python launch.py                                        # one run with the defaults
    python launch.py -m model=mixer,transformer optim=sm3,adam   # a sweep: one MLflow run per job
    python launch.py --cfg job                              # show the resolved config
"""
import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from trainer.config import SWEEP_OVERRIDES, register_configs

register_configs()


def own_overrides(task_overrides: list[str]) -> str:
    """The job's overrides, less the bookkeeping the sweeper adds."""
    own = [o for o in task_overrides if not o.startswith(SWEEP_OVERRIDES)]
    return " ".join(own) or "defaults"


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    from trainer.config import to_job
    from trainer.loop import train

    hc = HydraConfig.get()
    job = to_job(cfg)
    overrides = own_overrides(list(hc.overrides.task))
    summary = train(job, job.sweep.run_name or overrides, overrides)
    if hc.mode == RunMode.RUN:
        from sweeper.summary import table, ui_hint
        from trainer.tracking import resolve_uri

        print("\n" + table([summary]) + "\n\nMLflow: " + ui_hint(
            resolve_uri(cfg.tracking.uri), "lmsweep"), flush=True)
    return summary


if __name__ == "__main__":
    main()
