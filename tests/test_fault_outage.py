"""The tracking server goes away mid-sweep. Training goes on and nothing logged is lost: back
within the limit, every history is complete, in order and without duplicates; gone past it,
the job checkpoints, says so naming the URI, and the next launch finishes the run."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import start_launch
from tests.mlflow_server import MlflowServer, StallingProxy
from trainer import schema

pytestmark = pytest.mark.slow

# ~10-20 ms per step on one thread: the first job is still training when the server dies.
SHAPE = [
    "model.d_model=64",
    "model.n_layers=2",
    "data.seq_len=64",
    "train.micro_batch=8",
    "ramp.start=8",
    "train.eval_every=100",
    "train.log_every=10",
    "train.eval_sequences=16",
    "train.threads=1",
]
STEPS = 600


def read_until(proc: subprocess.Popen, marker: str, out: list[str]) -> None:
    for line in proc.stdout:
        out.append(line)
        if marker in line:
            return
    raise AssertionError(f"never saw {marker!r}:\n{''.join(out)[-3000:]}")


def assert_complete(client: MlflowClient, run_id: str, steps: int) -> None:
    """Every logged step present once, from the first to the last."""
    for key, every in ((schema.TRAIN_LOSS, 10), (schema.VAL_LOSS, 100), (schema.TOKENS, 10)):
        got = [m.step for m in client.get_metric_history(run_id, key)]
        assert sorted(got) == list(range(every, steps + 1, every)), f"{key}: {sorted(got)}"


def finish_once_back(server: MlflowServer, args, cwd, env):
    """The store is back and the same command runs again: it finishes the one run, resumed,
    with every step of its history."""
    server.start()
    proc = start_launch(args, cwd, env)
    text = proc.stdout.read()
    assert proc.wait(timeout=300) == 0, text[-3000:]
    client = MlflowClient(server.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("lmsweep").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags[schema.TAG_RESUMES] == "1"
    assert_complete(client, run.info.run_id, STEPS)
    return run


SECRET = "s3cr3t-pw-0utage"


def test_server_killed_mid_sweep_and_restarted_loses_nothing(tmp_path, env):
    server = MlflowServer(tmp_path / "server").start()
    try:
        proc = start_launch(
            [
                "-m",
                "model=mixer,transformer",
                *SHAPE,
                f"budget.steps={STEPS}",
                f"tracking.uri={server.uri}",
            ],
            tmp_path,
            env,
        )
        out: list[str] = []
        read_until(proc, "[model=mixer] step 100 ", out)
        server.stop()  # mid-training of the first job
        read_until(proc, "[model=mixer] step 300 ", out)
        time.sleep(3)
        server.start()
        out.append(proc.stdout.read())
        assert proc.wait(timeout=300) == 0, "".join(out)[-3000:]
    finally:
        server.stop()
    server.start()
    try:
        client = MlflowClient(server.uri)
        exp = client.get_experiment_by_name("lmsweep")
        runs = client.search_runs([exp.experiment_id])
        jobs = [r for r in runs if r.data.tags.get(schema.TAG_ROLE) == schema.ROLE_JOB]
        assert sorted(r.info.run_name for r in jobs) == ["model=mixer", "model=transformer"]
        assert {r.info.status for r in runs} == {"FINISHED"}  # parent included
        for r in jobs:
            assert_complete(client, r.info.run_id, STEPS)
            assert r.data.metrics[schema.FINAL_VAL_LOSS] > 0
    finally:
        server.stop()


def test_outage_past_the_limit_checkpoints_and_the_next_launch_finishes(tmp_path, env):
    server = MlflowServer(tmp_path / "server").start()
    host = server.uri.removeprefix("http://")
    args = [
        *SHAPE,
        f"budget.steps={STEPS}",
        f"tracking.uri=http://alice:{SECRET}@{host}",  # the message names it, redacted
        "tracking.outage_limit_s=4",
    ]
    try:
        proc = start_launch(args, tmp_path, env)
        out: list[str] = []
        read_until(proc, "] step 50 ", out)
        server.stop()
        out.append(proc.stdout.read())
        text = "".join(out)
        assert proc.wait(timeout=300) != 0, text[-3000:]
        assert f"tracking.uri='http://alice:***@{host}' has not answered for" in text
        assert SECRET not in text  # nor in the store's error it quotes
        assert "checkpoint saved at step" in text and "Run the same command again" in text
        assert "Traceback" not in text
        assert list((tmp_path / "ckpt").rglob("step_*.pt"))
        assert list((tmp_path / "ckpt").rglob("metrics_spill.jsonl"))

        finish_once_back(server, args, tmp_path, env)
        assert not list((tmp_path / "ckpt").rglob("metrics_spill.jsonl"))
    finally:
        server.stop()


def test_store_gone_at_a_distributed_run_s_end_saves_on_every_rank_and_resumes(tmp_path, env):
    """The store goes away during the last steps: the loop ends within the outage limit, then
    rank 0's writer fails to close. Saving is collective, so every rank saves (before, rank 0
    alone did and the ranks waited on each other until the collective timeout); the next
    launch finishes the run."""
    server = MlflowServer(tmp_path / "server").start()
    args = [
        *(a for a in SHAPE if not a.startswith("ramp.start")),
        "ramp.start=16",  # a micro-batch on each rank
        "dist=ddp",
        "dist.nproc=2",
        f"budget.steps={STEPS}",
        f"tracking.uri={server.uri}",
        "tracking.outage_limit_s=30",  # longer than the last 100 steps take
    ]
    try:
        proc = start_launch(args, tmp_path, env)
        out: list[str] = []
        read_until(proc, f"] step {STEPS - 100} ", out)
        server.stop()
        out.append(proc.stdout.read())
        text = "".join(out)
        assert proc.wait(timeout=300) != 0, text[-3000:]
        assert f"checkpoint saved at step {STEPS} " in text, text[-3000:]  # the finish's
        assert "Traceback" not in text, text[-6000:]

        run = finish_once_back(server, args, tmp_path, env)
        assert run.data.metrics[schema.FINAL_VAL_LOSS] > 0
    finally:
        server.stop()


def job_runs(uri: str) -> list:
    client = MlflowClient(uri)
    return client.search_runs([client.get_experiment_by_name("lmsweep").experiment_id])


def test_store_stalling_as_a_distributed_job_starts_is_waited_for(tmp_path, env):
    """The store answers 503 from the run's creation on for 15 s (MLflow's own retries give up
    after a few): rank 0 waits it out, the other rank waits for rank 0, and the one run
    finishes with its whole history."""
    server = MlflowServer(tmp_path / "server").start()
    proxy = StallingProxy(server.uri, "runs/create", stall_s=15)
    steps = 100
    try:
        proc = start_launch(
            [
                *(a for a in SHAPE if not a.startswith("ramp.start")),
                "ramp.start=16",
                "dist=ddp",
                "dist.nproc=2",
                f"budget.steps={steps}",
                f"tracking.uri={proxy.uri}",
            ],
            tmp_path,
            env,
        )
        text = proc.stdout.read()
        assert proc.wait(timeout=300) == 0, text[-3000:]
        assert "starting the job (create_run): the tracking store does not answer" in text
        assert proxy.stalled >= 2, proxy.stalled  # MLflow's retries, then ours
        (run,) = job_runs(server.uri)
        assert run.info.status == "FINISHED"
        assert_complete(MlflowClient(server.uri), run.info.run_id, steps)
    finally:
        proxy.close()
        server.stop()


def test_store_stalling_as_a_sweep_starts_is_waited_for(tmp_path, env):
    """The sweep's own set-up (its parent run) meets the stall: it waits, then runs its job.
    The server receives every create and only the answers are lost: each try made a run, and
    the sweep keeps one parent run (the others, twins holding nothing, are deleted)."""
    server = MlflowServer(tmp_path / "server").start()
    proxy = StallingProxy(server.uri, "runs/create", stall_s=15, lose_answers=True)
    try:
        proc = start_launch(
            ["-m", "model=mixer", *SHAPE, "budget.steps=20", f"tracking.uri={proxy.uri}"],
            tmp_path,
            env,
        )
        text = proc.stdout.read()
        assert proc.wait(timeout=300) == 0, text[-3000:]
        assert "starting the sweep (create_run): the tracking store does not answer" in text
        assert proxy.stalled >= 2  # runs the server created, whose answers were lost
        runs = job_runs(server.uri)  # the active ones
        assert sorted(r.data.tags[schema.TAG_ROLE] for r in runs) == [
            schema.ROLE_JOB,
            schema.ROLE_SWEEP,
        ]
        assert {r.info.status for r in runs} == {"FINISHED"}
    finally:
        proxy.close()
        server.stop()


def test_store_stalling_past_the_limit_as_a_job_starts_is_one_line(tmp_path, env):
    """Past tracking.outage_limit_s the job stops with one line naming the URI (redacted);
    once the store answers, the same command trains the job's one run."""
    server = MlflowServer(tmp_path / "server").start()
    proxy = StallingProxy(server.uri, "runs/create", stall_s=600)
    host = proxy.uri.removeprefix("http://")
    args = [
        *SHAPE,
        "budget.steps=50",
        f"tracking.uri=http://alice:{SECRET}@{host}",
        "tracking.outage_limit_s=4",
    ]
    try:
        proc = start_launch(args, tmp_path, env)
        text = proc.stdout.read()
        assert proc.wait(timeout=300) != 0, text[-3000:]
        assert f"tracking.uri='http://alice:***@{host}' stopped answering as the job started" in (
            text
        ), text[-3000:]
        assert SECRET not in text and "Traceback" not in text, text[-3000:]
        # The first wait quotes the error (a store failing for good, HTTP 500 to every call,
        # says so at once, not outage_limit_s later).
        waits = [line for line in text.splitlines() if "does not answer" in line]
        assert "(create_run)" in waits[0] and "too many 503 error responses" in waits[0], text
        assert not job_runs(server.uri)

        proxy.stall_s = 0  # the store is back
        proc = start_launch(args, tmp_path, env)
        text = proc.stdout.read()
        assert proc.wait(timeout=300) == 0, text[-3000:]
        (run,) = job_runs(server.uri)
        assert run.info.status == "FINISHED"
    finally:
        proxy.close()
        server.stop()


def test_a_stop_signal_ends_the_wait_for_a_stalling_store(tmp_path, env):
    """scancel (SIGTERM) while the job waits for the store at its start: it stops waiting
    (its handler only records a signal, for the loop to save first) and says why."""
    server = MlflowServer(tmp_path / "server").start()
    proxy = StallingProxy(server.uri, "runs/create", stall_s=600)
    try:
        proc = start_launch([*SHAPE, "budget.steps=50", f"tracking.uri={proxy.uri}"], tmp_path, env)
        out: list[str] = []
        read_until(proc, "the tracking store does not answer", out)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out.append(proc.stdout.read())
        text = "".join(out)
        assert proc.wait(timeout=60) != 0 and time.monotonic() - signalled < 30, text[-3000:]
        assert "stopped answering as the job started (waiting stopped by a signal" in text
        assert "Traceback" not in text, text[-3000:]
    finally:
        proxy.close()
        server.stop()
