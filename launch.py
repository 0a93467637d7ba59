"""lmsweep entry point (installed, the `lmsweep` command: the same app and options).

python launch.py                                        # one run with the defaults
python launch.py -m model=mixer,transformer optim=sm3,adam   # a sweep: one MLflow run per job
python launch.py --cfg job                              # show the resolved config
"""

import contextlib
import os
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from trainer import startup_gc
from trainer.contract import SweepContext, move_secrets

# conf/ beside this file in a checkout (an editable install included), by absolute path: a
# relative one is resolved against the calling module, which the `lmsweep` command is not
# run as. An installed package ships conf/ as the package `lmsweep_conf` (setup.py).
CONF = Path(__file__).resolve().parent / "conf"
CONF = str(CONF) if CONF.is_dir() else "pkg://lmsweep_conf"


@hydra.main(version_base="1.3", config_path=CONF, config_name="config")
def main(cfg: DictConfig):
    from trainer import contract
    from trainer.config import checked_job
    from trainer.dist.run import run
    from trainer.job import train
    from trainer.report import run_hint, table

    hc = HydraConfig.get()
    with in_launch_dir(Path(hc.runtime.cwd)):
        try:
            if hc.mode == RunMode.RUN and hc.sweeper.get("dry_run"):
                raise contract.ConfigError(
                    "hydra.sweeper.dry_run=true plans a sweep and launches nothing: add -m "
                    "(python launch.py -m ...); without it, the job would run"
                )
            job = checked_job(cfg)  # a bad config: one clean line, without a traceback
            overrides = " ".join(hc.overrides.task) or "defaults"
            context = SweepContext.load() if hc.mode == RunMode.MULTIRUN else None
            name = (context.run_name(hc.job.num) if context else "") or overrides
            summary = run(train, job, name, overrides, context)  # dist: every rank (trainer/dist)
        except contract.ConfigError:  # e.g. a tracking.uri that does not answer, checked first
            if hc.mode == RunMode.RUN:  # -m refuses before Hydra makes any directory
                discard_run_dir(Path(hc.runtime.output_dir), hc.job.name)
            raise
        if hc.mode == RunMode.RUN:
            uri = contract.resolve_uri(job.tracking.uri)
            print("\n" + table([summary]) + "\n\nMLflow: " + run_hint(uri, summary), flush=True)
    return summary


@contextlib.contextmanager
def in_launch_dir(launch_dir: Path):
    """The job runs in the directory it was launched from (Hydra's hydra.runtime.cwd), whatever
    hydra.job.chdir says. Its relative paths (data.cache_dir, train.checkpoint_dir, data files,
    a sqlite:///x.db or file: tracking.uri, the default <launch dir>/mlflow.db and the ./mlruns
    of an experiment it creates) then name what the sweep's pre-flight checked, planned and
    fingerprinted there. Under chdir=true (Hydra's chdir into each job's output directory, on
    a Slurm node too) each job fetched its own corpus, built its own data cache, wrote its
    checkpoints where a re-run never looked, and a single run made a store of its own.
    Resolving the paths in the config instead would miss those it does not hold (./mlruns) and
    change the fingerprint of a relative data path. Ranks (trainer/dist) start from here."""
    job_dir = Path.cwd()
    os.chdir(launch_dir)
    try:
        yield
    finally:
        if job_dir.is_dir():  # gone if discard_run_dir removed a refused run's directory
            os.chdir(job_dir)


def discard_run_dir(run_dir: Path, job_name: str) -> None:
    """A refused run leaves nothing behind: Hydra made its directory (config, overrides, an
    empty log) before the job's values could be checked. Removed only if that is all it
    holds, its log is empty (a fixed hydra.run.dir keeps an earlier run's) and it is not
    where the command runs; with the folders above that this emptied."""
    run_dir = run_dir.resolve()
    here = Path.cwd().resolve()
    log = run_dir / f"{job_name}.log"
    if (
        run_dir in (here, *here.parents)
        or not set(run_dir.iterdir()) <= {run_dir / ".hydra", log}
        or (log.exists() and log.stat().st_size > 0)
    ):
        return
    shutil.rmtree(run_dir)
    for folder in run_dir.parents:  # outputs/<date>, outputs: those this emptied, below here
        if here not in folder.parents:
            break
        try:
            folder.rmdir()
        except OSError:  # not empty: other runs
            break


def refuse_cfg_of_sweep(args: list[str]) -> None:
    """Hydra refuses `-m` with `--cfg` (or `--info`) in a ValueError raised outside its own
    error report, so a traceback was the answer; say instead what shows a sweep's jobs."""
    sweep = any(a in ("-m", "--multirun") for a in args)
    show = next((a for a in args if a.split("=")[0] in ("-c", "--cfg", "-i", "--info")), None)
    if sweep and show:
        sys.exit(
            f"lmsweep: {show} shows one job and cannot be combined with -m (Hydra). A sweep's "
            "jobs: add hydra.sweeper.dry_run=true to the -m command (the plan, nothing "
            "launched); one job's config: drop -m and give one value per option, e.g. "
            "python launch.py model=mixer --cfg job"
        )


def cli() -> None:
    """`python launch.py ...` and the `lmsweep` command. A password in `tracking.uri=` moves to
    the environment before Hydra records the command line; Ctrl-C ends with one line."""
    startup_gc.pause()  # until start-up is over: trainer/startup_gc.py
    # torch (the config classes live beside the models), so here: importing `launch` (a
    # Slurm job unpickling `main`) neither registers nor pauses anything.
    from trainer.config import register_configs

    register_configs()
    sys.argv[1:] = move_secrets(sys.argv[1:])
    refuse_cfg_of_sweep(sys.argv[1:])
    try:
        main()
        startup_gc.before_exit()
    except KeyboardInterrupt as e:
        print(
            f"\ninterrupted ({e or 'before training'}): run the same command again to resume",
            file=sys.stderr,
        )
        sys.exit(130)


if __name__ == "__main__":
    cli()
