"""The scaling preset (conf/experiment/scaling.yaml): `-m +experiment=scaling` alone plans the
whole parameter-matched grid, and a shrunken copy of it trains and fits an L(N) per architecture."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys

import pandas as pd
import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF, ROOT, run_launch
from trainer.models.sizing import parse_count

pytestmark = pytest.mark.slow

PRESET = OmegaConf.load(CONF / "experiment" / "scaling.yaml")
AXES = {k: str(v).split(",") for k, v in PRESET.hydra.sweeper.params.items()}
SIZE_AXIS = "+experiment/scaling_size"
SIZES = {
    s: OmegaConf.load(CONF / "experiment" / "scaling_size" / f"{s}.yaml") for s in AXES[SIZE_AXIS]
}
SUFFIX = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}


def env(cache_dir) -> dict[str, str]:
    return {"LMSWEEP_CACHE": str(cache_dir), "MLFLOW_TRACKING_URI": ""}


def plan_rows(stdout: str) -> dict[str, float]:
    """run name -> total parameters, from the pre-flight plan table."""
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"^\d+\s+(model=.*?)\s{2,}([\d.]+)([kMG]?)\s", line)
        if m:
            rows[m.group(1)] = float(m.group(2)) * SUFFIX[m.group(3)]
    return rows


def test_the_preset_sweeps_architectures_sizes_and_budgets():
    assert set(AXES) == {"model", SIZE_AXIS, "budget.tokens"}
    assert len(AXES["model"]) >= 2 and len(AXES["budget.tokens"]) >= 2
    targets = [parse_count(SIZES[s].model.params) for s in AXES[SIZE_AXIS]]
    assert len(targets) >= 4 and max(targets) / min(targets) >= 10
    # the lr rule: 1e-2 * (N / 50k)^-1/2, to 2 significant digits
    for size, target in zip(AXES[SIZE_AXIS], targets):
        assert SIZES[size].optim.lr == pytest.approx(1e-2 * (target / 50e3) ** -0.5, rel=0.02)
    assert PRESET.tracking.experiment == "scaling"


def test_dry_run_plans_every_job_parameter_matched(tmp_path, cache_dir):
    r = run_launch(
        "-m",
        "+experiment=scaling",
        "hydra.sweeper.dry_run=true",
        cwd=tmp_path,
        env=env(cache_dir),
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    jobs = list(itertools.product(AXES["model"], AXES[SIZE_AXIS], AXES["budget.tokens"]))
    assert f"{len(jobs)} of {len(jobs)} jobs to launch" in r.stdout
    assert "dry run: nothing launched" in r.stdout
    rows = plan_rows(r.stdout)
    assert len(rows) == len(jobs), rows
    for model, size, tokens in jobs:
        name = f"model={model} {SIZE_AXIS}={size} budget.tokens={tokens}"
        assert name in rows, (name, sorted(rows))
        target = parse_count(SIZES[size].model.params)
        # the table shows 2 decimals (50.01k): 1% of the target plus that rounding
        assert abs(rows[name] - target) <= 0.01 * target + 0.0005 * rows[name], (name, rows[name])


def test_a_shrunken_preset_trains_and_fits_an_l_of_n_per_architecture(tmp_path, cache_dir):
    archs = AXES["model"][:2]
    r = run_launch(
        "-m",
        "+experiment=scaling",
        f"model={','.join(archs)}",
        f"{SIZE_AXIS}={AXES[SIZE_AXIS][0]}",
        "model.params=10k,20k,40k,80k",
        "budget.tokens=40000",
        "model.n_layers=2",
        "data.seq_len=32",
        "train.micro_batch=8",
        "ramp.start=8",
        "train.eval_every=50",
        "train.log_every=10",
        "train.eval_sequences=32",
        "train.threads=1",
        cwd=tmp_path,
        env=env(cache_dir),
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "8 of 8 jobs to launch" in r.stdout
    out = tmp_path / "analysis"
    fit = subprocess.run(
        [
            sys.executable,
            "-m",
            "analysis",
            "fit",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--experiment",
            "scaling",
            "--group-by",
            "model.name",
            "--x",
            "params",
            "--bootstrap",
            "100",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert fit.returncode == 0, fit.stdout[-3000:] + fit.stderr[-3000:]
    table = pd.read_csv(out / "fit_params.csv")
    alpha = table[table["quantity"] == "alpha"]
    assert sorted(alpha["group"]) == sorted(archs)  # one row per architecture
    assert (alpha["n_points"] == 4).all()  # E + A N^-alpha needs 4 points
    assert (alpha["lo"] <= alpha["estimate"]).all() and (alpha["estimate"] <= alpha["hi"]).all()
    assert (out / "fit_params.png").stat().st_size > 0
