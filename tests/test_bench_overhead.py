"""bench_overhead.py's start-up parts run against this checkout's own APIs (figures are
printed by the script, never asserted: only that every part ran and took time)."""

from __future__ import annotations

import importlib.util
import os

from tests.conftest import ROOT, SHARED_CACHE


def test_start_up_parts_run_in_a_fresh_process():
    spec = importlib.util.spec_from_file_location(
        "bench_overhead", ROOT / "scripts" / "bench_overhead.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    env = {**os.environ, "LMSWEEP_CACHE": str(SHARED_CACHE), "MLFLOW_TRACKING_URI": ""}
    parts = bench.parts(ROOT, env, rounds=1)
    labels = [label for label, _ in parts]
    assert labels[0] == "hydra" and "dynamo" in labels[-2] and labels[-1].startswith("MLflow")
    assert all(seconds > 0 for _, seconds in parts)
