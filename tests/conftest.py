"""Shared fixtures. The real corpus is fetched once (by `make setup`, or here) and shared;
everything a test writes (data caches, MLflow stores) goes under its own tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from tests.mlflow_server import MlflowServer
from trainer.config import register_configs, to_job
from trainer.contract import cache_root
from trainer.data.corpus import corpus_dir, ensure_corpus

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_CACHE = cache_root(ROOT).resolve()

register_configs()


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


@pytest.fixture(scope="session", autouse=True)
def checkout_untouched():
    """Nothing a test records lands in the checkout: a store made while the working directory
    is the checkout puts its artifacts in its ./mlruns (MLflow's default artifact root), beside
    what the user's own runs there hold."""
    before = _files(ROOT / "mlruns")
    yield
    added = sorted(_files(ROOT / "mlruns") - before)
    assert not added, f"tests wrote {len(added)} files into {ROOT / 'mlruns'}: {added[:3]}"


@pytest.fixture(scope="session")
def corpus() -> Path:
    return ensure_corpus(SHARED_CACHE)


@pytest.fixture
def cache_dir(tmp_path: Path, corpus: Path) -> Path:
    """A fresh data cache that reuses the downloaded corpus."""
    return link_corpus(tmp_path / "cache", corpus)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """One real tracking server for the session; tests that share it use their own experiment."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow_server")).start()
    yield server
    server.stop()


def store_uri(kind: str, cwd: Path, request) -> str:
    """`sqlite`: the default store of the launch directory; `server`: the session's server."""
    if kind == "sqlite":
        return f"sqlite:///{cwd / 'mlflow.db'}"
    return request.getfixturevalue("mlflow_server").uri


def link_corpus(cache: Path, corpus: Path) -> Path:
    """A fresh data cache under `cache` that reuses the downloaded corpus."""
    corpus_dir(cache).parent.mkdir(parents=True)
    corpus_dir(cache).symlink_to(corpus)
    return cache


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def compose_job(*overrides: str):
    return to_job(compose_cfg(*overrides))


def tiny(*more: str, micro_batch: int = 8, batch: int | None = None) -> list[str]:
    """Overrides for the smallest model a launch test trains (one layer of width 32 on
    32-token windows), `micro_batch` sequences per micro-step and a global batch of `batch`
    (default: one micro-batch), then `more`."""
    return [
        "model.d_model=32",
        "model.n_layers=1",
        "data.seq_len=32",
        f"train.micro_batch={micro_batch}",
        f"ramp.start={batch or micro_batch}",
        *more,
    ]


@pytest.fixture
def env(tmp_path: Path, cache_dir: Path) -> dict:
    """What a launch test runs `launch.py` with: its own data cache (the corpus linked in),
    checkpoints under tmp_path, and no MLFLOW_TRACKING_URI from the shell running pytest."""
    return {
        "LMSWEEP_CACHE": str(cache_dir),
        "LMSWEEP_CHECKPOINTS": str(tmp_path / "ckpt"),
        "MLFLOW_TRACKING_URI": "",
    }


def start_launch(args, cwd: Path, env: dict, stderr=subprocess.STDOUT) -> subprocess.Popen:
    """`python launch.py ARGS` started as a user would, from `cwd`, its output read as it comes."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "launch.py"), *args],
        cwd=cwd,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


def run_launch(*args: str, cwd: Path, env: dict | None = None, timeout: int = 600):
    """Run `python launch.py ARGS` as a user would, from `cwd`."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "launch.py"), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- Slurm (tests/test_slurm.py) -------------------------------------------------------------
def _slurm_unreachable() -> str | None:
    """Why no Slurm cluster can be used from here, or None when sinfo and sacct both answer."""
    import shutil

    for tool, args in (("sinfo", ["-h", "-o", "%P %a"]), ("sacct", ["-n", "-X", "-j", "1"])):
        if shutil.which(tool) is None:
            return f"`{tool}` not found"
        try:
            r = subprocess.run([tool, *args], capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            return f"`{tool}` timed out"
        if r.returncode != 0 or (tool == "sinfo" and not r.stdout.strip()):
            return f"`{tool}` failed: {(r.stderr or r.stdout).strip()[:200] or 'no output'}"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """Used by the tests marked `slurm`: skips them when no Slurm cluster is reachable, and
    FAILS them instead when LMSWEEP_REQUIRE_SLURM=1 (.ci/run sets it in CI, where it starts
    the local cluster first), so CI cannot pass by skipping them."""
    why = _slurm_unreachable()
    if why is None:
        return
    msg = (
        f"no reachable Slurm cluster ({why}); start the local test cluster with "
        "`bash scripts/local-slurm.sh` (as root)"
    )
    if os.environ.get("LMSWEEP_REQUIRE_SLURM") == "1":
        pytest.fail(f"LMSWEEP_REQUIRE_SLURM=1 but {msg}", pytrace=False)
    pytest.skip(msg)
