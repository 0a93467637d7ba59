"""A tracking URI's password never appears in anything lmsweep writes or prints: Hydra's files
(multirun.yaml, .hydra/*), the sweep context, checkpoints, run params, tags and artifacts, the
console, Slurm logs. It reaches the jobs through the environment only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import link_corpus, run_launch, tiny
from trainer import contract

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-pw-9f1c"
TINY = tiny("budget.steps=20", "train.eval_every=10", "train.eval_sequences=8")


def files_holding(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def everything_in_mlflow(client: MlflowClient, tmp_path: Path) -> str:
    out = []
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            out += [str(run.data.params), str(run.data.tags), run.info.run_name or ""]
            for art in client.list_artifacts(run.info.run_id):
                if not art.is_dir:
                    local = client.download_artifacts(run.info.run_id, art.path, str(tmp_path))
                    out.append(Path(local).read_text(errors="replace"))
    return "\n".join(out)


@pytest.mark.parametrize("how", ["command line", "quoted", "environment"])
def test_password_in_the_tracking_uri_is_never_written(how, tmp_path, corpus, mlflow_server):
    host = mlflow_server.uri.removeprefix("http://")
    secret_uri = f"http://alice:{SECRET}@{host}"
    cwd = tmp_path / "launch"
    cwd.mkdir()
    env = {
        "LMSWEEP_CACHE": str(link_corpus(tmp_path / "cache", corpus)),
        "LMSWEEP_CHECKPOINTS": str(tmp_path / "ckpt"),
        "MLFLOW_TRACKING_URI": secret_uri if how == "environment" else "",
    }
    given = {
        "command line": [f"tracking.uri={secret_uri}"],
        "quoted": [f"tracking.uri='{secret_uri}'"],  # Hydra's quoting, as for any value
    }.get(how, [])
    r = run_launch(
        "-m",
        "model=mixer,transformer",
        *TINY,
        *given,
        f"tracking.experiment=secrets-{how.replace(' ', '-')}",
        cwd=cwd,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert SECRET not in r.stdout + r.stderr
    assert "alice:***@" in r.stdout + r.stderr  # what is printed is redacted
    assert files_holding(tmp_path, SECRET) == []
    assert list(cwd.glob("multirun/*/*/*/.hydra/overrides.yaml"))  # Hydra's files were checked
    client = MlflowClient(mlflow_server.uri)
    assert SECRET not in everything_in_mlflow(client, tmp_path / "artifacts")


def test_redaction_and_moving_a_password_to_the_environment(monkeypatch):
    # set, then removed: monkeypatch restores the variable move_secrets writes after the test
    monkeypatch.setenv(contract.TRACKING_URI_ENV, "")
    monkeypatch.delenv(contract.TRACKING_URI_ENV)
    assert (
        contract.redact("postgresql://bob:pw@db:5432/mlflow")
        == "postgresql://bob:***@db:5432/mlflow"
    )
    assert contract.redact("http://host:5000") == "http://host:5000"
    assert contract.redact("sqlite:////tmp/m.db") == "sqlite:////tmp/m.db"
    argv = contract.move_secrets(["-m", "tracking.uri=mysql://u:p%40ss@h/db", "seed=1"])
    assert argv == ["-m", "tracking.uri=mysql://u:***@h/db", "seed=1"]
    assert contract.resolve_uri("mysql://u:***@h/db") == "mysql://u:p%40ss@h/db"
    assert (
        contract.scrub("could not connect: mysql://u:p%40ss@h/db")
        == "could not connect: mysql://u:***@h/db"
    )


@pytest.mark.parametrize(
    "given, shown, moved",
    [
        # Hydra's quoting keeps a comma in a value; the password is hidden whole, and moved
        ("'postgresql://u:a,b@db/m'", "'postgresql://u:***@db/m'", "postgresql://u:a,b@db/m"),
        # unencoded: SQLAlchemy reads "#" and "?" in a password; urlsplit took "p" for it
        ("'postgresql://u:p#s?s@db/m'", "'postgresql://u:***@db/m'", "postgresql://u:p#s?s@db/m"),
        ("'postgresql://u:p@ss@db/m'", "'postgresql://u:***@db/m'", "postgresql://u:p@ss@db/m"),
        ("http://u:h@h:5000", "http://u:***@h:5000", "http://u:h@h:5000"),  # the host unchanged
        ("'http://[::1]:5000/?x=a@b'", "'http://[::1]:5000/?x=a@b'", None),  # no user info
        ("'http://[::1]:5000?x=u:a@b'", "'http://[::1]:5000?x=u:a@b'", None),
        ("http://u@h:5000", "http://u@h:5000", None),  # a user, no password
        # a sweep over stores is refused later: every password hidden, none moved
        ("http://u:p1@h:9,http://h:8", "http://u:***@h:9,http://h:8", None),
    ],
)
def test_a_password_is_found_as_the_store_reads_it(given, shown, moved, monkeypatch):
    monkeypatch.setenv(contract.TRACKING_URI_ENV, "")
    assert contract.move_secrets([f"tracking.uri={given}"]) == [f"tracking.uri={shown}"]
    assert (os.environ[contract.TRACKING_URI_ENV] or None) == moved
    if moved:  # the redacted value given resolves to the one moved
        assert contract.resolve_uri(shown.strip("'")) == moved


def test_a_sweep_over_two_stores_is_refused_without_either_password(tmp_path, corpus):
    env = {"LMSWEEP_CACHE": str(link_corpus(tmp_path / "cache", corpus)), "MLFLOW_TRACKING_URI": ""}
    uris = f"http://alice:{SECRET}@127.0.0.1:9,http://bob:{SECRET}2@127.0.0.1:9"
    r = run_launch("-m", *TINY, f"tracking.uri={uris}", cwd=tmp_path, env=env)
    assert r.returncode != 0 and "one value per sweep" in r.stderr, r.stderr[-3000:]
    assert SECRET not in r.stdout + r.stderr and "Traceback" not in r.stderr
    assert files_holding(tmp_path, SECRET) == []


@pytest.mark.parametrize("how", ["command line", "environment"])
def test_status_against_a_store_that_does_not_answer_says_so_without_the_password(how, tmp_path):
    uri = f"http://alice:{SECRET}@127.0.0.1:9"  # nothing listens on port 9
    given = ["--tracking-uri", uri] if how == "command line" else []
    r = subprocess.run(
        [sys.executable, "-m", "sweeper", "status", *given],
        cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri if how == "environment" else ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    assert (
        "error: tracking.uri='http://alice:***@127.0.0.1:9': no MLflow server answers" in r.stderr
    )
    assert SECRET not in r.stdout + r.stderr and "Traceback" not in r.stderr
