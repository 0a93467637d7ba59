"""Benchmark the demo sweep: total wall time, per-job step time, and logging's share of it.

Runs `python launch.py -m model=mixer,transformer optim=sm3,adam` (plus any extra overrides
given on the command line) against a fresh MLflow store in a temporary directory, then reads
the runs back. Figures are printed, not asserted: speed is measured here, not in tests.

    python scripts/bench_demo.py [OVERRIDE ...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["-m", "model=mixer,transformer", "optim=sm3,adam"]


def main(extra: list[str]) -> None:
    from mlflow.tracking import MlflowClient

    from trainer import schema
    from trainer.contract import CACHE_ENV, DEFAULT_CACHE

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/bench.db"
        env = {**os.environ, CACHE_ENV: str(ROOT / DEFAULT_CACHE)}
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "launch.py"),
                *SWEEP,
                *extra,
                f"tracking.uri={uri}",
                f"hydra.sweep.dir={tmp}/multirun",
            ],
            cwd=tmp,
            env=env,
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - t0

        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("lmsweep")
        jobs = [
            r
            for r in client.search_runs([exp.experiment_id])
            if r.data.tags.get(schema.TAG_ROLE) == schema.ROLE_JOB
        ]
        print(f"demo sweep: {len(jobs)} jobs in {wall:.1f} s wall")
        print(
            f"{'run':28s} {'steps':>6s} {'train s':>8s} {'ms/step':>8s} {'tok/s':>8s} "
            f"{'log s':>6s} {'log share':>9s} {'val loss':>8s}"
        )
        for r in sorted(jobs, key=lambda r: r.info.run_name):
            m = r.data.metrics
            steps = int(client.get_metric_history(r.info.run_id, schema.TOKENS)[-1].step)
            train_s, log_s = m[schema.WALL_CLOCK], m[schema.LOGGING_SECONDS]
            share = log_s / (train_s + log_s)
            print(
                f"{r.info.run_name:28s} {steps:6d} {train_s:8.1f} {1e3 * train_s / steps:8.1f} "
                f"{m[schema.TOKENS] / train_s:8.0f} {log_s:6.2f} {share:9.2%} "
                f"{m[schema.FINAL_VAL_LOSS]:8.4f}"
            )
        entropy = jobs[0].data.metrics[schema.UNIGRAM_ENTROPY]
        print(f"unigram-entropy baseline: {entropy:.4f} nats/token")


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        sys.exit(print(__doc__))
    main(sys.argv[1:])
