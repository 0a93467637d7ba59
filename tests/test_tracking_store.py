"""A fresh SQLite store is a copy of an empty one made once per MLflow version: the same tables
and migrations as a store MLflow creates itself, the Default experiment under the new store's
own artifact root, and the template made once."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_launch, tiny
from trainer import tracking


def schema_of(db: Path) -> dict:
    """Tables with their columns, indexes, and the migration head (constraint order aside,
    which alembic's batch migrations do not keep)."""
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        return {
            "tables": {t: con.execute(f"pragma table_info('{t}')").fetchall() for t in tables},
            "indexes": sorted(
                con.execute("select name, tbl_name from sqlite_master where type='index'")
            ),
            "head": con.execute("select version_num from alembic_version").fetchall(),
        }
    finally:
        con.close()


def test_a_fresh_store_is_a_copy_of_the_cached_empty_one(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    reference = tmp_path / "reference" / "mlflow.db"
    reference.parent.mkdir()
    monkeypatch.chdir(reference.parent)
    MlflowClient(f"sqlite:///{reference}").search_experiments()  # MLflow's own creation

    first = tmp_path / "first" / "mlflow.db"
    first.parent.mkdir()
    monkeypatch.chdir(first.parent)
    client = tracking.connect(f"sqlite:///{first}", cache_dir=cache)
    template = tracking.empty_store(cache)
    made = template.stat().st_mtime_ns
    assert schema_of(first) == schema_of(reference)
    (default,) = client.search_experiments()
    assert default.name == "Default"
    assert Path(default.artifact_location) == first.parent / "mlruns" / "0"

    exp = tracking.ensure_experiment(client, "lmsweep")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "val_loss", 2.5, step=3)
    client.set_terminated(run.info.run_id)
    assert client.get_metric_history(run.info.run_id, "val_loss")[0].value == 2.5

    second = tmp_path / "second" / "mlflow.db"
    tracking.connect(f"sqlite:///{second}", cache_dir=cache)
    assert template.stat().st_mtime_ns == made  # made once, copied since
    copied = MlflowClient(f"sqlite:///{second}").search_experiments()
    assert [e.name for e in copied] == ["Default"]  # nothing of the first store carried over


def test_a_bug_in_a_store_call_is_raised_at_once_not_retried_as_an_outage(tmp_path):
    """Start-up's calls wait out an outage (tracking.Patient, tested against a real server in
    test_fault_outage.py); a programming error is not one: it surfaces at the first try."""
    client = tracking.Patient(
        MlflowClient(f"sqlite:///{tmp_path / 'm.db'}"),
        limit_s=300,
        uri="sqlite:///m.db",
        what="the job",
    )
    tries = []

    def buggy():
        tries.append(1)
        raise TypeError("a bug")

    started = time.monotonic()
    with pytest.raises(TypeError, match="a bug"):
        tracking.retrying(buggy, 300, "testing")
    with pytest.raises(TypeError, match="no_such_argument"):
        client.create_run(experiment_id="0", no_such_argument=1)
    assert tries == [1] and time.monotonic() - started < 5


def test_an_answer_is_not_waited_for_only_an_outage_is(mlflow_server):
    """Through a real server: "already exists" (two sweeps creating one experiment at once)
    is an answer, raised at once for ensure_experiment to handle, not retried as an outage."""
    from mlflow.exceptions import MlflowException

    name = f"exists-{time.time_ns()}"
    MlflowClient(mlflow_server.uri).create_experiment(name)
    client = tracking.Patient(
        MlflowClient(mlflow_server.uri), limit_s=300, uri=mlflow_server.uri, what="the sweep"
    )
    started = time.monotonic()
    with pytest.raises(MlflowException) as refused:
        client.create_experiment(name)
    assert refused.value.error_code == "RESOURCE_ALREADY_EXISTS"
    assert not tracking.is_outage(refused.value)
    assert tracking.ensure_experiment(client, name)  # found, as after losing the race
    assert time.monotonic() - started < 10


def test_the_allowance_counts_time_spent_waiting_not_time_between_failures():
    """A blip, then a long start-up (data prepared), then another blip: the second is waited
    for too (an allowance counted from the first failure had expired by then)."""
    patience = tracking.Patience(3.5, transient=tracking.is_outage)

    def blip():
        failures = [ConnectionRefusedError("store restarting")]

        def call():
            if failures:
                raise failures.pop()
            return "answered"

        return call

    assert patience.run(blip(), "a blip") == "answered"
    time.sleep(4)  # the model built, the data prepared
    assert patience.run(blip(), "another blip") == "answered"
    assert 1.5 < patience.waited < 3.5


@pytest.mark.parametrize(
    "uri, says",
    [
        # the README's example; its driver is not a dependency (a cluster logs through a server)
        ("postgresql://u:pw@127.0.0.1:9/db", "database driver is not installed (no module"),
        ("'sqlite:///~/lmsweep-test.db'", "'~' is not expanded there; write sqlite:////"),
    ],
)
@pytest.mark.parametrize("dry", ["true", "false"])
def test_a_store_lmsweep_cannot_open_is_one_line_before_anything_runs(
    uri, says, dry, tmp_path, env
):
    args = [*tiny("budget.steps=2"), f"tracking.uri={uri}", f"hydra.sweeper.dry_run={dry}"]
    r = run_launch("-m", *args, cwd=tmp_path, env=env)
    assert r.returncode != 0 and says in r.stderr, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "pw@" not in r.stdout + r.stderr
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "~").exists()


def test_a_deleted_experiment_is_named_with_the_way_out(tmp_path, env):
    """Deleted in the UI, the experiment's name stays taken in MLflow's trash: the next sweep
    said so as a traceback after printing its plan."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = tracking.connect(uri)
    client.delete_experiment(client.create_experiment("gone"))
    for dry in ("true", "false"):
        r = run_launch(
            "-m",
            *tiny("budget.steps=2"),
            f"tracking.uri={uri}",
            "tracking.experiment=gone",
            f"hydra.sweeper.dry_run={dry}",
            cwd=tmp_path,
            env=env,
        )
        assert r.returncode != 0, r.stderr[-3000:]
        assert "tracking.experiment='gone' is invalid: it was deleted" in r.stderr, r.stderr
        assert "mlflow experiments restore --experiment-id" in r.stderr
        assert "Traceback" not in r.stderr
    assert not client.search_runs([client.get_experiment_by_name("gone").experiment_id])
