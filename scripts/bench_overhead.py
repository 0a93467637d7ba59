"""What orchestration costs around training: command start-up, and a sweep's wall-clock against
the training seconds its runs record, phase by phase. Figures are printed, never asserted.

    python scripts/bench_overhead.py [--baseline REV] [--seconds 60] [--jobs 4] [--skip-sweeps]
                                     [--sweep-baseline REV]

Start-up (`launch.py --help`, `--cfg job`) is timed for this checkout and for `--baseline`
(default: the commit before the lazy plugin imports, checked out into a temporary worktree)
in the same run, interleaved. Sweeps use a fresh SQLite store and a warm data cache:
a 1-job sweep of `--seconds` of training (goal: <= 5 s of overhead in all), and a sweep of
`--jobs` such jobs (goal: <= 3% per job), for this checkout and, with --sweep-baseline, for
REV too, alternating. Phases come from the runs' own timestamps:

    start -> parent run   imports, pre-flight (every job composed, sized, checked), MLflow set-up
    parent -> job run     launcher, the job's data cache and model
    job run -> its end    minus the training and evaluation seconds: logging, checkpoints
    job end -> exit       closing the sweep: summary, parent run, process exit

The first two are split further by measuring, in fresh processes of the same checkout, the
imports a sweep makes (in its order, the garbage collector paused as `launch.py` pauses it)
and MLflow's set-up of a fresh store (connect, experiment, parent run) on their own.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "067e59d"  # main before this work: the plugin shim imported torch and mlflow


def timed(cmd: list[str], cwd: Path, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """`rev` in a temporary worktree (the repository's own worktree is left alone)."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), rev],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True
            )


def startup(baseline: str, old: Path, rounds: int = 3) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": ""}
    print(f"start-up, median of {rounds} (baseline {baseline} vs this checkout):")
    for args in (["--help"], ["--cfg", "job"]):
        times = {"baseline": [], "now": []}
        for _ in range(rounds):  # interleaved: load drifts affect both
            for label, root in (("baseline", old), ("now", ROOT)):
                times[label].append(
                    timed([sys.executable, str(root / "launch.py"), *args], old.parent, env)
                )
        b, n = statistics.median(times["baseline"]), statistics.median(times["now"])
        print(f"  launch.py {' '.join(args):10s} {b:6.2f} s -> {n:6.2f} s  ({b / n:.1f}x faster)")


# Run in a fresh process of the checkout under test: (label, seconds) per phase, one JSON line.
PARTS = r"""
import gc, json, sys, tempfile, time
from pathlib import Path
gc.disable()  # as launch.py's cli() does (trainer/startup_gc.py)
times, t = [], time.perf_counter()
def done(label):
    global t
    now = time.perf_counter()
    times.append((label, now - t))
    t = now
import hydra, omegaconf; done("hydra")
from trainer.config import register_configs; register_configs(); done("torch + lmsweep's configs")
import mlflow.tracking; done("mlflow")
import mlflow.store.tracking.sqlalchemy_store; done("mlflow's SQL store")
import torch._dynamo; done("torch._dynamo (when the first optimizer is built)")
from trainer import tracking
from trainer.data.sources import DataConfig
with tempfile.TemporaryDirectory() as tmp:
    t = time.perf_counter()
    client = tracking.connect(f"sqlite:///{tmp}/mlflow.db", cache_dir=DataConfig().cache_path())
    experiment = tracking.ensure_experiment(client, "lmsweep")
    tracking.start_sweep_run(client, experiment, "bench", "bench", 1).end("FINISHED")
    done("MLflow set-up: fresh store, experiment, parent run")
print(json.dumps(times))
"""


def parts(root: Path, env: dict, rounds: int = 3) -> list[tuple[str, float]]:
    """Median seconds of each of PARTS' phases over `rounds` fresh processes."""
    import json

    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", PARTS],
                cwd=root,
                env={**env, "PYTHONPATH": str(root)},
                check=True,
                capture_output=True,
                text=True,
            ).stdout.splitlines()[-1]
        )
        for _ in range(rounds)
    ]
    return [
        (label, statistics.median(r[i][1] for r in runs)) for i, (label, _) in enumerate(runs[0])
    ]


def sweep(jobs: int, seconds: float, root: Path = ROOT, label: str = "this checkout") -> None:
    from mlflow.tracking import MlflowClient

    from trainer import schema
    from trainer.contract import CACHE_ENV, CHECKPOINTS_ENV, DEFAULT_CACHE

    models = ",".join(["transformer"] * 1 + ["mixer", "gmlp", "synthesizer", "gau"][: jobs - 1])
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            CACHE_ENV: str(ROOT / DEFAULT_CACHE),
            "MLFLOW_TRACKING_URI": "",
            CHECKPOINTS_ENV: f"{tmp}/ckpt",
        }
        t0 = time.time()
        subprocess.run(
            [
                sys.executable,
                str(root / "launch.py"),
                "-m",
                f"model={models}",
                "budget=seconds",
                f"budget.seconds={seconds}",
            ],
            cwd=tmp,
            env=env,
            check=True,
            capture_output=True,
        )
        t1 = time.time()
        client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
        runs = client.search_runs([client.get_experiment_by_name("lmsweep").experiment_id])
        (parent,) = [r for r in runs if r.data.tags.get(schema.TAG_ROLE) == schema.ROLE_SWEEP]
        children = sorted((r for r in runs if r is not parent), key=lambda r: r.info.start_time)
        train = sum(r.data.metrics[schema.WALL_CLOCK] for r in children)
        # eval_s is recorded since this benchmark's own commit: before, evaluation is overhead
        evals = sum(r.data.metrics.get(schema.EVAL_SECONDS, 0.0) for r in children)
        wall = t1 - t0
        over = wall - train - evals
        print(
            f"\n{label}: {len(children)}-job sweep of {seconds:g} s budgets: {wall:.1f} s wall, "
            f"{train:.1f} s training, {evals:.1f} s evaluating (the job's own validation "
            f"passes), overhead {over:.1f} s ({over / len(children):.1f} s = "
            f"{over / train:.1%} per job; {(over + evals) / train:.1%} with evaluation)"
        )
        s = parent.info.start_time / 1e3
        print(f"  start -> parent run      {s - t0:6.2f} s, of which, measured alone:")
        phases = parts(root, env)
        for name, secs in phases:
            print(f"    {name:52s} {secs:5.2f} s")
        # The parts ran in other processes at other moments: on a loaded machine the
        # difference can come out below zero.
        dynamo = next(secs for name, secs in phases if "dynamo" in name)  # in the first job
        known = sum(secs for _, secs in phases) - dynamo
        print(
            f"    {'by difference: pre-flight (every job composed, checked), plan':52s} "
            f"{s - t0 - known:5.2f} s"
        )
        prev = s
        for r in children:
            start, end = r.info.start_time / 1e3, r.info.end_time / 1e3
            evaluating = r.data.metrics.get(schema.EVAL_SECONDS, 0.0)
            other = (end - start) - r.data.metrics[schema.WALL_CLOCK] - evaluating
            print(
                f"  {r.info.run_name:24s} before {start - prev:5.2f} s, in the run neither "
                f"training nor evaluating {other:5.2f} s (evaluating {evaluating:.2f} s)"
            )
            if prev == s:  # the first job: the sweep's first optimizer imports torch._dynamo
                print(f"    of which torch._dynamo, measured alone {dynamo:5.2f} s")
            prev = end
        print(f"  last job end -> exit     {t1 - prev:6.2f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", default=BASELINE)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--skip-sweeps", action="store_true")
    p.add_argument(
        "--sweep-baseline",
        metavar="REV",
        help="also run the sweeps on REV, alternating with this checkout's",
    )
    args = p.parse_args()
    with checkout(args.baseline) as old:
        startup(args.baseline, old)
    if args.skip_sweeps:
        return
    with contextlib.ExitStack() as stack:
        trees = [(ROOT, "this checkout")]
        if args.sweep_baseline:
            before = stack.enter_context(checkout(args.sweep_baseline))
            trees.insert(0, (before, args.sweep_baseline))
        for jobs in (1, args.jobs):
            for root, label in trees:
                sweep(jobs, args.seconds, root, label)


if __name__ == "__main__":
    main()
