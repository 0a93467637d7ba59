"""Resumable runs and sweeps, without Slurm: a SIGUSR2 (what Slurm sends before a time limit
or a preemption) checkpoints the run; running the same command again resumes it into the same
MLflow run, and finished jobs are never run twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from mlflow.tracking import MlflowClient

from analysis.load import load_experiment
from tests.conftest import run_launch, start_launch, store_uri, tiny
from trainer import schema

pytestmark = pytest.mark.slow

TINY = tiny(
    "train.eval_every=50", "train.log_every=5", "train.eval_sequences=16", "train.threads=1"
)


def jobs(uri, experiment="lmsweep"):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return client, []
    runs = client.search_runs([exp.experiment_id], run_view_type=3)  # all, deleted included
    return client, [r for r in runs if r.data.tags.get(schema.TAG_ROLE) == schema.ROLE_JOB]


def history(client, run_id, key):
    return [
        (m.step, m.value)
        for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
    ]


def launch_and_signal(args, cwd, env, signum, at_step=40, when="") -> tuple[int, str]:
    """Start `launch.py ARGS`, send `signum` once it prints `when` (default: that a job
    reached `at_step`); its exit code and what it printed after the signal."""
    proc = start_launch(args, cwd, env)
    for line in proc.stdout:
        if (when or f"] step {at_step} ") in line:
            proc.send_signal(signum)
            break
    out = proc.stdout.read()
    return proc.wait(timeout=120), out


def test_preempted_run_resumes_into_the_same_run_bit_exact(tmp_path, env):
    args = [*TINY, "budget.steps=200"]
    ref_dir, dir_ = tmp_path / "ref", tmp_path / "pre"
    ref_dir.mkdir(), dir_.mkdir()
    r = run_launch(*args, cwd=ref_dir, env=env)
    assert r.returncode == 0, r.stderr[-2000:]

    # Checkpointed, then the signal's default action (under submitit: requeue).
    assert launch_and_signal(args, dir_, env, signal.SIGUSR2)[0] == -signal.SIGUSR2

    uri = f"sqlite:///{dir_ / 'mlflow.db'}"
    client, runs = jobs(uri)
    assert len(runs) == 1 and runs[0].info.status == "RUNNING"
    assert runs[0].data.tags[schema.TAG_OUTCOME] == schema.OUTCOME_PREEMPTED
    assert list((tmp_path / "ckpt").rglob("step_*.pt"))

    r = run_launch(*args, cwd=dir_, env=env)  # the same command again
    assert r.returncode == 0, r.stderr[-2000:]
    client, runs = jobs(uri)
    assert len(runs) == 1, "resumed into a new run"
    assert f"resumed run {runs[0].info.run_id} from step " in r.stdout  # the log says so
    run = client.get_run(runs[0].info.run_id)
    assert run.info.status == "FINISHED" and run.data.tags[schema.TAG_RESUMES] == "1"

    ref_client, ref_runs = jobs(f"sqlite:///{ref_dir / 'mlflow.db'}")
    ref = ref_client.get_run(ref_runs[0].info.run_id)
    # CPU, same thread count, same batches and RNG state: bit-exact, not merely close.
    assert run.data.metrics[schema.FINAL_VAL_LOSS] == ref.data.metrics[schema.FINAL_VAL_LOSS]
    for key in (schema.TRAIN_LOSS, schema.TOKENS, schema.VAL_LOSS):
        got, want = history(client, run.info.run_id, key), history(ref_client, ref.info.run_id, key)
        assert got == want, f"{key} history differs across the resume"
    steps = [s for s, _ in history(client, run.info.run_id, schema.TRAIN_LOSS)]
    assert steps == list(range(5, 201, 5))
    assert not list((tmp_path / "ckpt").rglob("step_*.pt")), "finished runs keep no checkpoints"


def test_sigterm_ends_the_run_killed_and_a_rerun_resumes_it(tmp_path, env):
    args = [*TINY, "budget.steps=120"]
    code, out = launch_and_signal(args, tmp_path, env, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    (line,) = [x for x in out.splitlines() if x.startswith("SIGTERM at step ")]
    assert line.endswith("checkpoint saved; run the same command again to resume")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, runs = jobs(uri)
    assert len(runs) == 1 and runs[0].info.status == "KILLED"
    assert runs[0].data.tags[schema.TAG_OUTCOME] == schema.OUTCOME_CANCELLED
    r = run_launch(*args, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    client, runs = jobs(uri)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    steps = [s for s, _ in history(client, runs[0].info.run_id, schema.TRAIN_LOSS)]
    assert steps == list(range(5, 121, 5))


def test_ctrl_c_says_in_one_line_that_the_checkpoint_was_saved(tmp_path, env):
    args = [*TINY, "budget.steps=120"]
    proc = start_launch(args, tmp_path, env, stderr=subprocess.PIPE)
    for line in proc.stdout:
        if "] step 40 " in line:
            proc.send_signal(signal.SIGINT)
            break
    proc.stdout.read()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 130
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if "interrupted" in x]
    assert "checkpoint saved" in line and "run the same command again to resume" in line
    client, runs = jobs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert len(runs) == 1 and runs[0].info.status == "KILLED"
    assert run_launch(*args, cwd=tmp_path, env=env).returncode == 0
    client, runs = jobs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert runs[0].info.status == "FINISHED" and runs[0].data.tags[schema.TAG_RESUMES] == "1"


def test_a_sweep_run_again_after_an_interrupt_owns_the_job_it_resumed(tmp_path, env):
    """The new sweep's status, link and analysis show the job it trained; the run keeps its
    history and says which sweep it started in."""
    args = ["-m", "model=transformer", *TINY, "budget.steps=120"]
    assert launch_and_signal(args, tmp_path, env, signal.SIGTERM)[0] != 0
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, (run,) = jobs(uri)
    first = run.data.tags[schema.TAG_SWEEP_ID]
    r = run_launch(*args, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    client, (run,) = jobs(uri)
    second = run.data.tags[schema.TAG_SWEEP_ID]
    assert second != first and run.data.tags[schema.TAG_EARLIER_SWEEPS] == first
    assert run.info.status == "FINISHED" and run.data.tags[schema.TAG_RESUMES] == "1"
    parent = client.get_run(run.data.tags[schema.PARENT_RUN_TAG])
    assert parent.data.tags[schema.TAG_SWEEP_ID] == second
    status = subprocess.run(
        [sys.executable, "-m", "sweeper", "status", "--sweep-id", second],
        cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert status.returncode == 0 and "model=transformer" in status.stdout, status.stdout
    steps = [s for s, _ in history(client, run.info.run_id, schema.TRAIN_LOSS)]
    assert steps == list(range(5, 121, 5))


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_a_sweep_run_again_takes_in_the_cells_that_finished_before(tmp_path, env, store, request):
    """Interrupted after its first job, then run again (or extended with a new cell): the new
    sweep's table, status and analysis show every cell, those that finished in the first
    sweep too (they were left there: --sweep-id found one of two, --attach refused), and the
    first sweep's status and analysis still find its own runs. `server`: a tracking server,
    as on a cluster (its searches go through the REST API), in an experiment of this test's
    own (the server is the session's)."""
    uri = store_uri(store, tmp_path, request)
    exp = "lmsweep" if store == "sqlite" else f"take_in_{tmp_path.name}"
    # sqlite: nothing set, the default store and experiment of the launch directory
    where = [] if store == "sqlite" else [f"tracking.uri={uri}", f"tracking.experiment={exp}"]
    status_where = [] if store == "sqlite" else ["--tracking-uri", uri, "--experiment", exp]
    cwd_env = dict(cwd=tmp_path, env=env)
    r = run_launch("-m", "seed=0", *TINY, "budget.steps=10", *where, **cwd_env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = run_launch("-m", "seed=0,1", *TINY, "budget.steps=10", *where, **cwd_env)
    assert r.returncode == 0 and "skip (finished)" in r.stdout, r.stderr[-2000:]
    client, runs = jobs(uri, exp)
    first, second = (
        p.data.tags[schema.TAG_SWEEP_ID]
        for p in client.search_runs(
            [runs[0].info.experiment_id],
            f"tags.`{schema.TAG_ROLE}` = '{schema.ROLE_SWEEP}'",
            order_by=["attributes.start_time ASC"],
        )
    )
    table = r.stdout[r.stdout.rindex("outcome") :]  # the sweep's summary table, at the end
    assert "seed=0" in table and "seed=1" in table, r.stdout
    for sweep, cells in ((second, {"seed=0", "seed=1"}), (first, {"seed=0"})):
        status = subprocess.run(
            [sys.executable, "-m", "sweeper", "status", "--sweep-id", sweep, *status_where],
            cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        assert {c for c in ("seed=0", "seed=1") if c in status.stdout} == cells, status.stdout
        loaded = load_experiment(uri, exp, sweep_id=sweep, metrics=None)
        assert set(loaded.runs["seed"]) == {int(c[-1]) for c in cells}
        parent = client.get_run(loaded.parent_run_id())  # where --attach files the outputs
        assert parent.data.tags[schema.TAG_SWEEP_ID] == sweep
    (seed0,) = [x for x in jobs(uri, exp)[1] if x.data.params["seed"] == "0"]
    assert seed0.data.tags[schema.TAG_EARLIER_SWEEPS] == first

    def status(sweep, *more):
        return subprocess.run(
            [sys.executable, "-m", "sweeper", "status", "--sweep-id", sweep, *status_where, *more],
            cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
        ).stdout  # fmt: skip

    assert f"run now in sweep {second}" in status(first)
    # were the later sweep training it, the earlier one's --reconcile must leave it alone (it
    # ended it KILLED); the later sweep's sees its process gone
    client.update_run(seed0.info.run_id, status="RUNNING")
    status(first, "--reconcile")
    assert client.get_run(seed0.info.run_id).info.status == "RUNNING"
    status(second, "--reconcile")
    assert client.get_run(seed0.info.run_id).info.status == "FAILED"


def test_a_sweep_run_again_while_its_job_trains_takes_that_run_in(tmp_path, env):
    """Run again while a cell still trains (another terminal, or a Slurm job of a wait=false
    sweep): the plan said "run", and the second job found the claim taken and ended without a
    run ("no run" for good; --reconcile then failed the sweep). The cell is skipped as running
    and its run taken into the new sweep, whose table shows it finished once it has."""
    budget = [*TINY, "budget=seconds", "budget.seconds=20"]  # the same jobs in both sweeps
    first = start_launch(["-m", "seed=0", *budget], tmp_path, env)
    for line in first.stdout:
        if "] step 10 " in line:
            break
    threading.Thread(target=first.stdout.read, daemon=True).start()  # its pipe never fills
    here = dict(cwd=tmp_path, env=env)
    plan = run_launch("-m", "seed=0", *budget, "hydra.sweeper.dry_run=true", **here)
    assert "skip (running)" in plan.stdout and "0 of 1 jobs to launch" in plan.stdout, plan.stdout
    r = run_launch("-m", "seed=0,1", *budget, **here)
    assert r.returncode == 0 and "skip (running)" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    assert first.wait(timeout=120) == 0
    client, runs = jobs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert sorted(x.data.params["seed"] for x in runs) == ["0", "1"], "seed 0 trained twice"
    assert {x.info.status for x in runs} == {"FINISHED"}
    sweeps = {x.data.params["seed"]: x.data.tags[schema.TAG_SWEEP_ID] for x in runs}
    assert sweeps["0"] == sweeps["1"]  # taken in
    table = r.stdout.split("1 of 2 jobs to launch")[1]
    assert "running elsewhere" not in table and table.count("finished") == 2, table


def test_a_run_whose_process_died_elsewhere_is_not_taken_for_running(tmp_path, env):
    """A job killed without its handler on another node (the OOM killer, a node failure)
    leaves its run RUNNING with a heartbeat that looks fresh for 15 minutes: the claim its
    process held, released by the OS, tells it is dead, so the plan runs the cell again.
    Held, the cell is running."""
    from trainer import checkpoint, contract

    here = dict(cwd=tmp_path, env=env)
    assert run_launch("-m", "seed=0", *TINY, "budget.steps=10", **here).returncode == 0
    client, (run,) = jobs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.update_run(run.info.run_id, status="RUNNING")
    client.set_tag(run.info.run_id, schema.TAG_HOST, "node17")
    client.set_tag(run.info.run_id, schema.TAG_HEARTBEAT, str(time.time()))
    claim = checkpoint.Claim(
        contract.checkpoint_dir(env["LMSWEEP_CHECKPOINTS"], run.data.tags[schema.TAG_FINGERPRINT])
    )
    assert claim.acquire()  # as the killed process did: its lock file is left, unlocked
    claim.release()
    plan = ["-m", "seed=0", *TINY, "budget.steps=10", "hydra.sweeper.dry_run=true"]
    r = run_launch(*plan, **here)
    assert "1 of 1 jobs to launch" in r.stdout and "skip (running)" not in r.stdout, r.stdout
    assert claim.acquire()  # a live process trains it
    try:
        r = run_launch(*plan, **here)
        assert "0 of 1 jobs to launch" in r.stdout and "skip (running)" in r.stdout, r.stdout
    finally:
        claim.release()


def test_rerun_skips_finished_jobs_and_reruns_deleted_ones(tmp_path, env):
    sweep = ["-m", "model=mixer,transformer", *TINY, "budget.steps=10"]
    r = run_launch(*sweep, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, runs = jobs(uri)
    assert len(runs) == 2

    r = run_launch(*sweep, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "nothing to launch" in r.stdout
    assert len(jobs(uri)[1]) == 2

    client.delete_run(runs[0].info.run_id)
    r = run_launch(*sweep, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "1 of 2 jobs to launch" in r.stdout
    _, after = jobs(uri)
    active = [x for x in after if x.info.lifecycle_stage == "active"]
    assert len(after) == 3 and len(active) == 2
    assert {x.info.run_name for x in active} == {"model=mixer", "model=transformer"}


def test_dry_run_prints_the_plan_and_launches_nothing(tmp_path, env):
    r = run_launch(
        "-m",
        "model=mixer,transformer",
        *TINY,
        "budget.steps=10",
        "hydra.sweeper.dry_run=true",
        cwd=tmp_path,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "2 of 2 jobs to launch" in r.stdout and "dry run: nothing launched" in r.stdout
    for name in ("model=mixer", "model=transformer"):
        assert name in r.stdout
    assert not list(tmp_path.glob("mlflow.db*"))  # read-only: no store created (it was)


def test_a_diverging_run_is_recorded_and_its_sibling_finishes(tmp_path, env):
    # lr=1e30 sends the weights past float32 range on the first step: NaN from then on.
    r = run_launch(
        "-m",
        "optim.lr=1e30,3e-3",
        *TINY,
        "budget.steps=30",
        "train.max_bad_steps=3",
        cwd=tmp_path,
        env=env,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    client, runs = jobs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    by_lr = {r.data.params["optim.lr"]: r for r in runs}
    bad, good = by_lr["1e+30"], by_lr["0.003"]
    assert bad.info.status == "FINISHED"
    assert bad.data.tags[schema.TAG_OUTCOME] == schema.OUTCOME_DIVERGED
    assert int(bad.data.tags[schema.TAG_DIVERGED_STEP]) <= 5
    assert bad.data.metrics[schema.SKIPPED_STEPS] == 3
    assert good.data.tags[schema.TAG_OUTCOME] == schema.OUTCOME_FINISHED
    assert "diverged" in r.stdout and "finished" in r.stdout


def runs_of(uri, experiment):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client, (client.search_runs([exp.experiment_id]) if exp else [])


def test_a_checkpoint_whose_run_is_in_another_experiment_is_set_aside_not_continued(tmp_path, env):
    """The same job launched for experiment B after an interrupt in A (the fingerprint leaves
    tracking out) starts its own run in B; the run in A keeps its history as it was."""
    args = [*TINY, "budget.steps=120"]
    code, _ = launch_and_signal([*args, "tracking.experiment=A"], tmp_path, env, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    r = run_launch(*args, "tracking.experiment=B", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "is in experiment 'A', not in tracking.experiment='B'" in r.stdout + r.stderr
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, (a,) = runs_of(uri, "A")
    _, (b,) = runs_of(uri, "B")
    assert a.info.status == "KILLED" and b.info.status == "FINISHED"
    assert schema.TAG_RESUMES not in b.data.tags
    assert [s for s, _ in history(client, a.info.run_id, schema.TRAIN_LOSS)][-1] <= 45
    assert [s for s, _ in history(client, b.info.run_id, schema.TRAIN_LOSS)] == list(
        range(5, 121, 5)
    )


def test_a_checkpoint_of_data_that_changed_since_is_set_aside_not_continued(tmp_path, env):
    """Files added to the data between an interrupt and the next launch: continuing the run
    would train and evaluate it on other documents, so the job starts a new run."""
    from tests.test_data_sources import documents

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(8):
        (corpus / f"{i}.txt").write_text("\n\n".join(documents(30, seed=i)))
    args = [
        *TINY, "data=files", f"data.paths=[{corpus}/*.txt]", "data.sample_by=paragraph",
        "budget.steps=120",
    ]  # fmt: skip
    assert launch_and_signal(args, tmp_path, env, signal.SIGTERM)[0] == 128 + signal.SIGTERM
    r = run_launch(*args, cwd=tmp_path, env=env)  # the same data: resumed
    assert r.returncode == 0 and "trained on other data" not in r.stdout + r.stderr
    client, (run,) = jobs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.data.tags[schema.TAG_RESUMES] == "1"

    args[-1] = "budget.steps=121"  # another job, interrupted, then its data grows
    assert launch_and_signal(args, tmp_path, env, signal.SIGTERM)[0] == 128 + signal.SIGTERM
    (corpus / "8.txt").write_text("\n\n".join(documents(30, seed=8)))
    r = run_launch(*args, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "trained on other data (a data file changed since" in r.stdout + r.stderr
    client, runs = jobs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    grown = sorted(
        (r for r in runs if r.data.params["budget.steps"] == "121"), key=lambda r: r.info.start_time
    )
    assert [r.info.status for r in grown] == ["KILLED", "FINISHED"]
    assert schema.TAG_RESUMES not in grown[1].data.tags


def test_an_interrupted_sweep_keeps_its_table_and_status_lists_the_jobs_never_started(
    tmp_path, env
):
    """Ctrl-C during the second of three jobs: the parent run's summary shows the job that
    finished and the one interrupted (the launcher returned neither), and `status` lists all
    three, the third with no run."""
    args = ["-m", "seed=0,1,2", *TINY, "budget.steps=60"]
    code, out = launch_and_signal(args, tmp_path, env, signal.SIGINT, when="[seed=1] step 20 ")
    assert code == 130, out[-2000:]
    client, runs = jobs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (parent,) = client.search_runs(
        [runs[0].info.experiment_id], f"tags.`{schema.TAG_ROLE}` = '{schema.ROLE_SWEEP}'"
    )
    note = parent.data.tags[schema.NOTE_TAG]
    assert parent.info.status == "FAILED"
    assert [line.split()[0] for line in note.splitlines() if line.startswith("seed=")] == [
        "seed=0",
        "seed=1",
    ]
    assert "finished" in note and "cancelled" in note
    r = subprocess.run(
        [sys.executable, "-m", "sweeper", "status"],
        cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert ": 3 jobs;" in r.stdout and "1 FINISHED, 1 KILLED, 1 no run yet" in r.stdout
