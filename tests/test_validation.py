"""Bad input is refused before anything runs, with one message naming the value and the valid
choices. The cases are the bad-input table of docs/faults.md, read from the document itself,
so the documentation cannot drift from what the command does."""

from __future__ import annotations

import os
import re

import pytest

from tests.conftest import ROOT, compose_cfg, run_launch
from trainer.contract import ConfigError

DOC = ROOT / "docs" / "faults.md"


def bad_input_rows() -> list[tuple[str, list[str]]]:
    text = DOC.read_text().split("## Bad input", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows.append((cells[0].strip("`"), re.findall(r"`([^`]+)`", cells[1])))
    return rows


ROWS = bad_input_rows()


def fill(text: str, files: dict[str, str]) -> str:
    """The placeholders filled in (not str.format: overrides hold braces of their own)."""
    for key, path in files.items():
        text = text.replace("{" + key + "}", path)
    return text


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("bad_inputs")
    (d / "file").write_text("a regular file\n")
    (d / "empty.txt").write_text("")
    (d / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (d / "latin1.txt").write_bytes("Hello caf\xe9 world\n".encode("latin-1"))
    (d / "notok.json").write_text('{"not": "a tokenizer"}')
    (d / "doc.txt").write_text("One text file is one document.\n\nOf two paragraphs.\n")
    (d / "rows.jsonl").write_text('{"body": "a document", "n": 1}\n')
    (d / "hf").mkdir()  # data=hf's local dataset: a directory of data files
    (d / "hf" / "rows.jsonl").write_text('{"body": "a document", "n": 1}\n')
    readonly = d / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    return {
        "file": str(d / "file"),
        "empty": str(d / "empty.txt"),
        "binary": str(d / "binary.bin"),
        "latin1": str(d / "latin1.txt"),
        "notok": str(d / "notok.json"),
        "doc": str(d / "doc.txt"),
        "rows": str(d / "rows.jsonl"),
        "hfdir": str(d / "hf"),
        "readonly": str(readonly),
    }


def test_the_table_is_long_enough_to_mean_something():
    assert len(ROWS) >= 60


@pytest.mark.parametrize("overrides,needles", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_is_refused_with_the_documented_message(overrides, needles, files, tmp_path):
    from sweeper.preflight import validate

    if "{readonly}" in overrides and os.geteuid() == 0:
        pytest.skip("root writes to read-only directories")
    args = [fill(a, files) for a in overrides.split()]
    if not any(a.startswith(("data.cache_dir=", "train.checkpoint_dir=")) for a in args):
        args += [f"data.cache_dir={tmp_path / 'cache'}", f"train.checkpoint_dir={tmp_path / 'c'}"]
    with pytest.raises(ConfigError) as e:
        validate([args], lambda o: compose_cfg(*o), local=True)
    message = str(e.value)
    assert "1 of 1 jobs have an invalid config; nothing was launched" in message
    for needle in needles:
        assert fill(needle, files) in message, message
    assert not (tmp_path / "cache").exists(), "data was touched"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["tracking.uri=notaurl"], "tracking.uri='notaurl' is invalid: not a URI"),
        (["tracking.uri=foo://bar"], "unknown scheme 'foo'"),
        (["tracking.uri=sqlite:///{file}/m.db"], "is a file, not a directory"),
        (["tracking.uri=http://127.0.0.1:9"], "no MLflow server answers there"),
        (["seed=interval(0,1)"], "lists of values"),
        (["hydra.sweeper.gpu=TPU"], "hydra.sweeper.gpu='TPU' is invalid: a GPU of"),
        (
            ["optim.lr=-1,1", "model=mixer,transformer,gmlp", "model.n_layers=0,1"],
            "9 of 12 jobs have an invalid config",
        ),
    ],
)
def test_the_command_refuses(args, needle, files, tmp_path):
    """Through `python launch.py -m` as a user types it: a compact message, no traceback,
    nothing created (no store, no data cache), quickly."""
    args = [fill(a, files) for a in args]
    r = run_launch(
        "-m",
        *args,
        cwd=tmp_path,
        env={"LMSWEEP_CACHE": str(tmp_path / "cache"), "MLFLOW_TRACKING_URI": ""},
        timeout=120,
    )
    assert r.returncode != 0
    assert fill(needle, files) in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "cache").exists()


def test_a_refused_single_run_leaves_nothing_behind(tmp_path):
    """Without -m the job's values are checked inside Hydra's job, after Hydra made its run
    directory: that directory goes, and the folders it emptied; another run's stays."""
    env = {"LMSWEEP_CACHE": str(tmp_path / "cache"), "MLFLOW_TRACKING_URI": ""}
    r = run_launch("optim.lr=-1", cwd=tmp_path, env=env, timeout=120)
    assert r.returncode != 0 and "optim.lr=-1.0 is invalid" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []  # no outputs/, store or data cache
    other = tmp_path / "outputs" / "day" / "other-run"
    other.mkdir(parents=True)
    r = run_launch("optim.lr=-1", "hydra.run.dir=outputs/day/run", cwd=tmp_path, env=env)
    assert r.returncode != 0
    assert list((tmp_path / "outputs" / "day").iterdir()) == [other]
    (other / "launch.log").write_text("an earlier run's log\n")  # a fixed hydra.run.dir
    r = run_launch("optim.lr=-1", "hydra.run.dir=outputs/day/other-run", cwd=tmp_path, env=env)
    assert r.returncode != 0 and (other / "launch.log").read_text() == "an earlier run's log\n"


def test_a_single_run_against_a_store_that_does_not_answer_leaves_nothing_behind(tmp_path):
    """The URI is checked by the job before it claims its checkpoint directory."""
    env = {"LMSWEEP_CHECKPOINTS": str(tmp_path / "ckpt"), "MLFLOW_TRACKING_URI": ""}
    r = run_launch("tracking.uri=http://127.0.0.1:9", cwd=tmp_path, env=env, timeout=120)
    assert r.returncode != 0 and "no MLflow server answers there" in r.stderr
    assert "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []  # no outputs/, no claim in ckpt/


def test_every_bad_job_of_a_sweep_is_listed(tmp_path):
    r = run_launch(
        "-m",
        "optim.lr=-1,1",
        "model=mixer,transformer",
        "model.n_layers=0,1",
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": ""},
        timeout=120,
    )
    jobs = re.findall(r"^  job #(\d+) \((.*?)\): (.*)$", r.stderr, re.M)
    assert len(jobs) == 6, r.stderr  # every bad one, not only the first
    assert all("optim.lr=-1" in o or "model.n_layers=0" in o for _, o, _ in jobs)


def test_a_path_with_a_quote_character_works(tmp_path, cache_dir):
    """It used to crash Hydra's override parser: run names were built as quoted overrides."""
    odd = tmp_path / 'it\'s a "corpus"'
    odd.mkdir()
    (odd / "doc.txt").write_text(
        "".join(f"Paragraph {i}: to be, or not to be. " * 30 + "\n\n" for i in range(100))
    )
    quoted = str(odd / "doc.txt").replace("'", "\\'")  # Hydra's quoting of a quote
    r = run_launch(
        "-m",
        "data=files",
        f"data.paths=['{quoted}']",
        "data.sample_by=paragraph",
        "model.d_model=32",
        "model.n_layers=1",
        "data.seq_len=32",
        "train.micro_batch=8",
        "ramp.start=8",
        "budget.steps=5",
        cwd=tmp_path,
        env={"LMSWEEP_CACHE": str(cache_dir), "MLFLOW_TRACKING_URI": ""},
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "finished" in r.stdout
