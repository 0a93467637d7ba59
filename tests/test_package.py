"""`pip install .` gives a working lmsweep: the wheel built from this tree, installed into a
fresh virtual environment, runs a sweep with its `lmsweep` command from a directory that is not
the checkout, and `python -m sweeper` / `python -m analysis` work from it.

Offline: the wheel is built with the project venv's setuptools (`--no-build-isolation`) and
installed with `--no-deps`; the new venv sees the project venv's packages (torch, mlflow, ...)
through a .pth line, which does not run that venv's own .pth files, so the editable install of
this checkout stays out of it and every lmsweep module comes from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT
from tests.test_e2e_sweep import TINY
from trainer import schema

pytestmark = pytest.mark.slow

# Not part of what gets built: what the tree holds besides the package's sources.
NOT_BUILT = {
    ".git",
    ".venv",
    ".cache",
    "build",
    "mlruns",
    "multirun",
    "outputs",
    "tests",
    "notebooks",
    "docs",
    "scripts",
    "analysis_out",
    ".pytest_cache",
    "__pycache__",
}


def _run(*args, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{args}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv holding only the lmsweep wheel; its bin directory."""
    tmp = tmp_path_factory.mktemp("package")
    src = tmp / "src"  # a copy: an in-tree build would leave build/ in the checkout
    shutil.copytree(
        ROOT,
        src,
        ignore=lambda d, names: [
            n for n in names if n in NOT_BUILT or n.endswith((".egg-info", ".db", ".lock"))
        ],
    )
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-build-isolation",
        "--no-deps",
        "-q",
        "-w",
        tmp / "dist",
        src,
    )
    wheel = next((tmp / "dist").glob("lmsweep-*.whl"))
    venv = tmp / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    py = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "-q", wheel)
    site = _run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    (Path(site.stdout.strip()) / "project-venv.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    return venv / "bin"


def test_installed_modules_come_from_the_wheel(installed, tmp_path):
    r = _run(
        installed / "python",
        "-c",
        "import launch, trainer, sweeper, analysis, lmsweep_conf;"
        "print(launch.__file__, trainer.__file__, *lmsweep_conf.__path__)",
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
    )
    venv = installed.parent.resolve()
    for path in r.stdout.split():
        assert Path(path).resolve().is_relative_to(venv), path


def test_lmsweep_command_runs_a_sweep_outside_the_checkout(installed, tmp_path, corpus):
    from trainer.data.corpus import corpus_dir

    cache = tmp_path / "cache"
    corpus_dir(cache).parent.mkdir(parents=True)
    corpus_dir(cache).symlink_to(corpus)
    env = {**os.environ, "LMSWEEP_CACHE": str(cache), "MLFLOW_TRACKING_URI": "", "PYTHONPATH": ""}
    steps = ["budget.steps=4", "train.eval_every=4", "train.log_every=2"]
    tiny = [o for o in TINY if o.split("=")[0] not in {s.split("=")[0] for s in steps}]
    r = _run(installed / "lmsweep", "-m", "model=mixer", *tiny, *steps, cwd=tmp_path, env=env)
    assert "final val loss" in r.stdout and "mlflow ui --backend-store-uri sqlite:///" in r.stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lmsweep")
    runs = client.search_runs([exp.experiment_id], f"tags.`{schema.TAG_ROLE}` = 'job'")
    assert [r.info.status for r in runs] == ["FINISHED"]
    assert runs[0].data.params["model.name"] == "mixer"  # composed from the shipped conf
    sweep_id = runs[0].data.tags[schema.TAG_SWEEP_ID]

    status = _run(
        installed / "python",
        "-m",
        "sweeper",
        "status",
        "--sweep-id",
        sweep_id,
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        cwd=tmp_path,
        env=env,
    )
    assert "FINISHED" in status.stdout or "finished" in status.stdout
    usage = _run(installed / "python", "-m", "analysis", "--help", cwd=tmp_path, env=env)
    assert "fit" in usage.stdout and "compare" in usage.stdout


def test_lmsweep_command_shows_the_same_options(installed, tmp_path):
    env = {**os.environ, "PYTHONPATH": ""}
    ours = _run(installed / "lmsweep", "--cfg", "job", "model=mixer", cwd=tmp_path, env=env)
    checkout = _run(
        sys.executable, ROOT / "launch.py", "--cfg", "job", "model=mixer", cwd=tmp_path, env=env
    )
    assert ours.stdout == checkout.stdout and "name: mixer" in ours.stdout
