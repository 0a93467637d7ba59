"""The GPU checks as a lent GPU machine runs them: `scripts/device-kit.sh` gathers what its image
lacks, `scripts/device-check.sh` installs that and runs both GPU benchmarks. Here the machine's
image is imitated by hiding every package it lacks, so a check that needs one the kit does
not carry fails here, not in a GPU lease's few minutes; the benchmarks run their --small
(CPU) shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT, SHARED_CACHE

# lmsweep's dependencies (import names) that the GPU machine's image does not hold, as its
# package list read on 2026-11-17 (/work/.library/device/KINDS.md); torch, numpy, pyarrow,
# tokenizers, filelock, yaml, tqdm, psutil, ninja, msgpack, einops ... are there.
NOT_ON_THE_IMAGE = [
    "hydra",
    "hydra_plugins",
    "omegaconf",
    "antlr4",
    "deepspeed",
    "hjson",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_inspection",
    "mlflow",
    "submitit",
    "pytorch_optimizer",
    "datasets",
    "lmsweep_conf",  # the repository is not installed there: its conf/ is read from the tree
]

# Found only in the kit's install folder and in the checkout (this repository's own
# hydra_plugins), never in this environment's site-packages: first on sys.meta_path.
IMAGE = """
import os, sys
from importlib.machinery import PathFinder

HIDDEN, SITE = set({hidden!r}), os.environ.get("SITE", "")

class GpuImage:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if "." in name or name not in HIDDEN:
            return None  # submodules follow their package, wherever it was found
        here = [p for p in sys.path if p and not p.endswith(("site-packages", "dist-packages"))]
        spec = PathFinder.find_spec(name, [SITE, *here] if SITE else here)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {{name!r}} on the GPU image", name=name)
        return spec

sys.meta_path.insert(0, GpuImage)
"""


@pytest.fixture(scope="module")
def image(tmp_path_factory, corpus):
    root = tmp_path_factory.mktemp("gpu")
    (root / "image").mkdir()
    (root / "image" / "sitecustomize.py").write_text(
        textwrap.dedent(IMAGE.format(hidden=NOT_ON_THE_IMAGE))
    )
    kit = root / "kit"
    env = {
        **os.environ,
        "PY": sys.executable,
        "DEVICE_PYTHON": f"{sys.version_info.major}.{sys.version_info.minor}",
        "LMSWEEP_CACHE": str(SHARED_CACHE),
    }
    r = subprocess.run(
        ["bash", "scripts/device-kit.sh", str(kit)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return root, kit


def gpu_env(root, kit, site) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LMSWEEP_CACHE")}
    return {
        **env,
        "PYTHONPATH": str(root / "image"),
        "PYTHON": sys.executable,
        "KIT": str(kit),
        "SITE": str(site),
    }


def test_the_imitated_image_lacks_what_the_kit_carries(image, tmp_path):
    root, kit = image
    env = gpu_env(root, kit, tmp_path / "empty")
    r = subprocess.run(
        [sys.executable, "-c", "import torch, numpy, pyarrow, tokenizers; import hydra"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "No module named 'hydra' on the GPU image" in r.stderr


def test_device_check_runs_both_benchmarks_from_the_kit_alone(image, tmp_path):
    root, kit = image
    out, site = tmp_path / "out", tmp_path / "site"
    out.mkdir()
    r = subprocess.run(
        ["bash", "scripts/device-check.sh", "--small"],
        cwd=ROOT,
        env={**gpu_env(root, kit, site), "OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "torch" in (out / "device.txt").read_text()
    single = json.loads((out / "bench_gpu.txt").read_text().strip().splitlines()[-1])
    assert single["loss_is_finite"] and single["tokens_per_s"] > 0
    dist = json.loads((out / "bench_dist_gpu.txt").read_text().strip().splitlines()[-1])
    assert sorted(dist["cases"]) == ["ddp", "fsdp", "none", "zero2", "zero3"]
    assert all("error" not in c and c["tokens_per_s"] > 0 for c in dist["cases"].values()), dist
    # what ran came from the kit, installed into SITE; the kit itself was only read
    for package in ("hydra", "omegaconf", "deepspeed", "pydantic"):
        assert (site / package).is_dir(), package
    assert sorted(p.name for p in (kit / "cache").iterdir()) == ["corpus"]
