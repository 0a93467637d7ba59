"""Every analysis command in the README's Analysis section and in docs/analysis.md, and the
fit_experiment notebook (by the command docs/analysis.md gives), run against the store of a
real tiny sweep: the demo's shape (MLP-Mixer and Transformer, SM3 and Adam, several val points
per run) over four widths, a second or so of training per job."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from mlflow.tracking import MlflowClient

from analysis.cli import main
from tests.conftest import run_launch
from trainer import schema

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "analysis.md"
# 60 steps of 256 tokens, val loss every 10 steps (6 points per run, like the demo's 300 / 50)
SWEEP = [
    "-m",
    "model=mixer,transformer",
    "optim=sm3,adam",
    "model.d_model=8,16,24,32",
    "budget=tokens",
    "budget.tokens=15360",
    "model.n_layers=1",
    "data.seq_len=32",
    "train.micro_batch=8",
    "ramp.start=8",
    "train.eval_every=10",
    "train.log_every=5",
    "train.eval_sequences=16",
    "train.threads=1",
]
# The documented runs-based IsoFLOP command needs a sweep whose losses have a minimum over model
# size at some FLOP budget; at equal FLOPs the smallest of these tiny models is always best, so
# here it must stop with its diagnosis instead (IsoFLOP fits on published data: the CSV commands).
NO_INTERIOR_MINIMUM = "IsoFLOP fit needs >= 2 budgets with an interior loss minimum"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, corpus):
    from trainer.data.corpus import corpus_dir

    cwd = tmp_path_factory.mktemp("sweep")
    cache = cwd / "cache"
    corpus_dir(cache).parent.mkdir(parents=True)
    corpus_dir(cache).symlink_to(corpus)
    r = run_launch(*SWEEP, cwd=cwd, env={"LMSWEEP_CACHE": str(cache), "MLFLOW_TRACKING_URI": ""})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("lmsweep").experiment_id])
    jobs = [r for r in runs if r.data.tags.get(schema.TAG_ROLE) == schema.ROLE_JOB]
    assert len(jobs) == 16 and {r.info.status for r in jobs} == {"FINISHED"}
    assert all(
        len(client.get_metric_history(r.info.run_id, schema.VAL_LOSS)) >= 6 for r in jobs[:2]
    )
    return cwd, jobs[0].data.tags[schema.TAG_SWEEP_ID]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Analysis") :]
    section = section[: section.index("\n## ", 1)]
    return [
        line.split("  #")[0].strip()
        for line in section.splitlines()
        if line.strip().startswith("python -m analysis")
    ]


def _docs_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", DOCS.read_text(), flags=re.S)


def _docs_commands() -> list[str]:
    return [
        line.strip()
        for block in _docs_blocks()
        for line in block.splitlines()
        if line.strip().startswith("python -m analysis")
    ]


def test_the_docs_list_the_commands():
    assert len(_readme_commands()) == 3
    assert len(_docs_commands()) >= 12 and all("--out" not in c for c in _docs_commands())


def _argv(command: str, sweep_id: str) -> list[str]:
    """The command's arguments for this store: placeholder sweep ids filled in, the scaling
    preset's experiment name mapped to this sweep's, repository paths made absolute."""
    argv = shlex.split(command)[3:]
    fill = {"SWEEP": sweep_id, "ID": sweep_id, "scaling": "lmsweep"}
    return [str(ROOT / a) if a.startswith("tests/data/") else fill.get(a, a) for a in argv]


@pytest.mark.parametrize("command", list(dict.fromkeys(_readme_commands() + _docs_commands())))
def test_documented_command_runs_on_a_real_sweep(sweep, command, tmp_path, monkeypatch, capsys):
    cwd, sweep_id = sweep
    monkeypatch.chdir(cwd)  # as the docs say: from the launch directory
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "out"
    code = main([*_argv(command, sweep_id), "--out", str(out)])
    printed = capsys.readouterr()
    if code == 2 and " isoflop " in f" {command} " and "--csv" not in command:
        assert NO_INTERIOR_MINIMUM in printed.err and printed.err.count("\n") == 1
        assert "best measured size at the edge of its grid: widen the grid" in printed.err
        return
    assert code == 0, printed.err
    written = {p.suffix for p in out.iterdir()}
    assert {".csv", ".png"} <= written and "Traceback" not in printed.err


def test_fit_experiment_notebook_by_the_documented_command(sweep, tmp_path):
    cwd, _ = sweep
    command = next(
        line.strip()
        for block in _docs_blocks()
        for line in block.splitlines()
        if "jupyter execute" in line
    )
    # the docs' command as written, run from the launch directory: the notebook path made
    # absolute, `jupyter` the venv's, the executed copy written here
    command = (
        command.replace("notebooks/", f"{ROOT}/notebooks/")
        .replace("jupyter ", f"{Path(sys.executable).parent}/jupyter ")
        .replace("$PWD/analysis_out/", f"{tmp_path}/")
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    r = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    nb = nbformat.read(next(tmp_path.glob("*.ipynb")), as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "TqdmWarning" not in text and "IProgress" not in text
    assert "16 runs (0 diverged)" in text and "every job run is FINISHED" in text
    assert "mixer: L = " in text and "transformer: L = " in text  # frontier laws
