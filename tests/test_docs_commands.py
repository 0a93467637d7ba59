"""Every `python launch.py ...` the README and docs show composes into jobs that pass every
check: each is run as a dry run (`-m ... hydra.sweeper.dry_run=true`: every job composed,
sized and checked, nothing trained). A cluster preset (the placeholder `mycluster` is the
user's) runs as the shipped example, planned as on a laptop: with no Slurm on PATH, whose
test cluster has no GPUs to fit the requests; the jobs' configs are checked all the same,
as for a Slurm launch (several nodes allowed)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_launch

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, str]]:
    """(where, command) for each indented `python launch.py` line, continuations joined;
    lines with `...` (elided on purpose) left out."""
    found = []
    for doc in DOCS:
        text = re.sub(r"\\\n\s*", " ", doc.read_text())
        for line in text.splitlines():
            command = line.strip().split("  #")[0].strip()
            if line.startswith("    python launch.py") and "..." not in command:
                found.append((doc.name, command))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_launch_commands():
    assert len(COMMANDS) >= 8, COMMANDS


@pytest.mark.parametrize("where,command", COMMANDS, ids=[c for _, c in COMMANDS])
def test_documented_launch_command_passes_every_check(where, command, tmp_path, cache_dir):
    args = [
        "+cluster=example_gpu" if a == "+cluster=mycluster" else a
        for a in shlex.split(command)[2:]
        if a != "-m"
    ]
    r = run_launch(
        "-m",
        *args,
        "hydra.sweeper.dry_run=true",
        cwd=tmp_path,
        env={
            "MLFLOW_TRACKING_URI": "",
            "LMSWEEP_CACHE": str(cache_dir),
            "PATH": str(Path(sys.executable).parent),  # no sinfo: planned as on a laptop
        },
    )
    assert r.returncode == 0, f"{where}: {command}\n{r.stdout[-2000:]}{r.stderr[-2000:]}"
