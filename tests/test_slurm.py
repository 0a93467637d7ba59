"""Slurm dispatch (hydra/launcher=slurm) against a real cluster: the local one of
scripts/local-slurm.sh (CI starts it; elsewhere these tests skip when `sinfo` cannot reach a
cluster, and fail instead under LMSWEEP_REQUIRE_SLURM=1: see `slurm_cluster` in conftest.py).
The tests at the end need no cluster: the pre-flight's parsing and arithmetic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sweeper import slurm
from tests.conftest import link_corpus, run_launch, tiny
from trainer import schema
from trainer.contract import ConfigError

TINY = tiny("budget.steps=10", "train.eval_every=5")
SLURM = ["hydra/launcher=slurm", "+cluster=local"]
ENV = {"MLFLOW_TRACKING_URI": ""}


def on_slurm(f):
    """Marked `slurm` (and `slow`: they train), gated by the `slurm_cluster` fixture."""
    return pytest.mark.slurm(pytest.mark.slow(pytest.mark.usefixtures("slurm_cluster")(f)))


def status(cwd: Path, uri: str, sweep_id: str, *extra: str) -> str:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sweeper",
            "status",
            "--sweep-id",
            sweep_id,
            "--tracking-uri",
            uri,
            *extra,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def status_line(out: str, slurm_job_id: str) -> str:
    return next(line for line in out.splitlines() if f" {slurm_job_id} " in line)


def slurm_jobs_from(workdir: Path) -> list[str]:
    """Every Slurm job (queued, running or in accounting) submitted from `workdir`."""
    ids = []
    for cmd in (
        ["squeue", "-h", "-o", "%i|%Z"],
        ["sacct", "-a", "-X", "-n", "-P", "-o", "JobID,WorkDir", "-S", "2020-01-01"],
    ):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        ids += [
            line.split("|")[0]
            for line in r.stdout.splitlines()
            if line.split("|")[-1].rstrip("/") == str(workdir)
        ]
    return ids


def sweep_record(cwd: Path) -> dict:
    (path,) = cwd.glob(f"multirun/*/*/{slurm.RECORD_FILE}")
    return json.loads(path.read_text())


def wait_for(what: str, check, timeout: float = 180, every: float = 2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- the used-by sweep, 2x2 on Slurm, into the SQLite file and into a tracking server -------
SECRET = "pw-7c2e91"


@pytest.fixture(scope="module", params=["sqlite", "server"])
def sweep_2x2(request, tmp_path_factory, corpus, slurm_cluster):
    """On the server, the URI carries a password: it must reach the jobs on the nodes (through
    the environment) and appear in no file of the launch directory."""
    cwd = tmp_path_factory.mktemp(f"slurm_sweep_{request.param}")
    uri = f"sqlite:///{cwd / 'm.db'}"
    given = uri
    if request.param == "server":
        uri = request.getfixturevalue("mlflow_server").uri
        given = uri.replace("http://", f"http://bob:{SECRET}@")
    r = run_launch(
        "-m",
        *SLURM,
        "model=mixer,transformer",
        "optim=sm3,adam",
        *TINY,
        f"tracking.uri={given}",
        f"tracking.experiment=slurm-{request.param}",
        cwd=cwd,
        env={**ENV, "LMSWEEP_CACHE": str(link_corpus(cwd / "cache", corpus))},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert SECRET not in r.stdout + r.stderr
    leaks = [p for p in cwd.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == [], "the password was written to these files"
    return cwd, uri, r, f"slurm-{request.param}"


@on_slurm
def test_2x2_sweep_on_slurm_ends_with_four_finished_runs(sweep_2x2):
    cwd, uri, _, experiment = sweep_2x2
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    jobs = [r for r in runs if r.data.tags.get(schema.TAG_ROLE) == schema.ROLE_JOB]
    (parent,) = [r for r in runs if r.data.tags.get(schema.TAG_ROLE) == schema.ROLE_SWEEP]
    assert sorted(r.info.run_name for r in jobs) == sorted(
        f"model={m} optim={o}" for m in ("mixer", "transformer") for o in ("sm3", "adam")
    )
    assert {r.info.status for r in jobs} == {"FINISHED"} and parent.info.status == "FINISHED"

    # one job array, recorded in the sweep dir and on the parent run
    rec = sweep_record(cwd)
    assert rec["sweep_id"] == parent.data.tags[schema.TAG_SWEEP_ID]
    assert len(rec["jobs"]) == 4 and len(rec["arrays"]) == 1
    assert {j["slurm_job_id"] for j in rec["jobs"]} == {f"{rec['arrays'][0]}_{i}" for i in range(4)}
    assert parent.data.tags[schema.TAG_SLURM_JOB_IDS] == rec["arrays"][0]
    assert slurm.RECORD_FILE in [a.path for a in client.list_artifacts(parent.info.run_id)]


@on_slurm
def test_submitit_logs_are_artifacts_of_each_run(sweep_2x2):
    cwd, uri, _, experiment = sweep_2x2
    client = MlflowClient(uri)
    by_name = {j["run_name"]: j["slurm_job_id"] for j in sweep_record(cwd)["jobs"]}
    runs = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id],
        f"tags.`{schema.TAG_ROLE}` = '{schema.ROLE_JOB}'",
    )
    for run in runs:
        jid = by_name[run.info.run_name]
        arts = sorted(a.path for a in client.list_artifacts(run.info.run_id, "submitit"))
        assert arts == [f"submitit/{jid}_0_log.err", f"submitit/{jid}_0_log.out"]
        out = Path(
            client.download_artifacts(
                run.info.run_id, f"submitit/{jid}_0_log.out", str(cwd / "dl" / jid)
            )
        ).read_text()
        assert f"[{run.info.run_name}] step 10" in out  # the trainer's progress line


@on_slurm
def test_status_of_a_finished_sweep(sweep_2x2):
    cwd, uri, _, experiment = sweep_2x2
    rec = sweep_record(cwd)
    out = status(cwd, uri, rec["sweep_id"], "--experiment", experiment)
    for job in rec["jobs"]:
        line = status_line(out, job["slurm_job_id"])
        assert job["run_name"] in line
        assert "COMPLETED" in line and "FINISHED" in line and " 10 " in line  # last step 10
    assert "4 COMPLETED" in out


# --- re-running a sweep submits only what has no FINISHED run ----------------------------------
@on_slurm
def test_rerun_submits_nothing_then_exactly_the_deleted_job(tmp_path, cache_dir):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    args = ["-m", *SLURM, "model=mixer,transformer", *TINY, f"tracking.uri={uri}"]
    env = {**ENV, "LMSWEEP_CACHE": str(cache_dir)}
    r = run_launch(*args, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    submitted = set(slurm_jobs_from(tmp_path))
    assert submitted

    r = run_launch(*args, cwd=tmp_path, env=env)
    assert r.returncode == 0 and "nothing to launch" in r.stdout, r.stdout[-3000:]
    assert set(slurm_jobs_from(tmp_path)) == submitted  # nothing went to Slurm

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("lmsweep")
    mixer = client.search_runs([exp.experiment_id], "attributes.run_name = 'model=mixer'")[0]
    client.delete_run(mixer.info.run_id)
    r = run_launch(*args, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert len(set(slurm_jobs_from(tmp_path)) - submitted) == 1  # exactly one new job
    names = sorted(
        x.info.run_name
        for x in client.search_runs(
            [exp.experiment_id], f"tags.`{schema.TAG_ROLE}` = '{schema.ROLE_JOB}'"
        )
    )
    assert names == ["model=mixer", "model=transformer"]


# --- pre-flight: requests no node can hold -------------------------------------------------
@on_slurm
def test_oversized_request_is_refused_before_anything_is_submitted(tmp_path, cache_dir):
    shapes = slurm.partitions_from_sinfo()["debug*"].values()
    gpus, cpus = max(s.gpus for s in shapes) + 1, max(s.cpus for s in shapes) + 1
    r = run_launch(
        "-m",
        *SLURM,
        "model=mixer,transformer",
        *TINY,
        f"hydra.launcher.gpus_per_node={gpus}",
        f"hydra.launcher.cpus_per_task={cpus}",
        f"tracking.uri=sqlite:///{tmp_path / 'm.db'}",
        cwd=tmp_path,
        env={**ENV, "LMSWEEP_CACHE": str(cache_dir)},
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "the Slurm request cannot be met" in out and "Traceback" not in out
    assert f"asks for {gpus} GPUs, {cpus} CPUs" in out
    assert "partition 'debug' has 1 node (localhost) with" in out and "Nothing was submitted" in out
    assert slurm_jobs_from(tmp_path) == []
    assert not list(tmp_path.glob("multirun/*/*/.submitit"))


@on_slurm
@pytest.mark.parametrize(
    "override, says",
    [
        # sbatch --time=0 is "no limit" (a pending-forever job where partitions have MaxTime),
        # and submitit then counts every preemption as a time-out: it was submitted silently
        ("hydra.launcher.timeout_min=0", "hydra.launcher.timeout_min=0 is invalid"),
        ("hydra.launcher.timeout_min=-5", "hydra.launcher.timeout_min=-5 is invalid"),
        # SIGUSR2 signal_delay_s=120 s before a 1-minute limit: at once, every attempt
        ("hydra.launcher.timeout_min=1", "must be longer than hydra.launcher.signal_delay_s"),
        # replaced by dist.nodes without a word, as tasks_per_node is by dist.nproc
        ("hydra.launcher.nodes=2", "hydra.launcher.nodes=2 is invalid"),
    ],
)
def test_bad_time_limit_or_nodes_is_refused_before_anything_is_submitted(
    tmp_path, cache_dir, override, says
):
    r = run_launch(
        "-m",
        *SLURM,
        "model=mixer,transformer",
        *TINY,
        override,
        f"tracking.uri=sqlite:///{tmp_path / 'm.db'}",
        cwd=tmp_path,
        env={**ENV, "LMSWEEP_CACHE": str(cache_dir)},
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    assert says in out and "Nothing was submitted" in out and "Traceback" not in out, out[-3000:]
    assert slurm_jobs_from(tmp_path) == []


@on_slurm
def test_a_request_sbatch_refuses_is_one_line_not_a_traceback(tmp_path, cache_dir):
    """What only sbatch can judge (a node feature, an account or QOS the site enforces) was
    a 40-line traceback ending in submitit's FailedJobError."""
    r = run_launch(
        "-m",
        *SLURM,
        "model=mixer,transformer",
        *TINY,
        "hydra.launcher.constraint=no_such_feature",
        f"tracking.uri=sqlite:///{tmp_path / 'm.db'}",
        cwd=tmp_path,
        env={**ENV, "LMSWEEP_CACHE": str(cache_dir)},
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "Traceback" not in out, out[-3000:]
    assert "sbatch refused" in out and "Invalid feature specification" in out, out[-3000:]
    assert "Nothing was submitted" in out
    assert slurm_jobs_from(tmp_path) == []


@on_slurm
def test_a_job_that_fails_on_the_node_before_its_run_says_why_in_its_log_and_status(
    tmp_path, cache_dir
):
    """A value only the node sees (here its data cache, from the batch script's setup) fails
    the job before it has an MLflow run. Hydra hands the error back as the job's result, so
    submitit logged "Job completed successfully", Slurm said COMPLETED and `status` "no run
    yet": with wait=false nothing told the user the job had failed, or why."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    setup = (
        "hydra.launcher.setup=['export PYTHONPATH=${lmsweep.root:}:$PYTHONPATH',"
        "'export LMSWEEP_CACHE=/proc/no_such_cache']"
    )
    r = run_launch(
        "-m",
        *SLURM,
        *TINY,
        setup,
        f"tracking.uri={uri}",
        cwd=tmp_path,
        env={**ENV, "LMSWEEP_CACHE": str(cache_dir)},
    )
    assert r.returncode != 0 and "FileNotFoundError" in r.stdout + r.stderr
    rec = sweep_record(tmp_path)
    (job,) = rec["jobs"]
    err = Path(job["stderr"]).read_text()
    assert "FileNotFoundError" in err and "/proc/no_such_cache" in err, err
    out = status(tmp_path, uri, rec["sweep_id"])
    line = status_line(out, job["slurm_job_id"])
    assert "no run yet" not in line and "no run" in line, out
    assert f"ended without an MLflow run: see {job['stderr']}" in out, out


# --- hydra.launcher.wait=false, status, scancel --------------------------------------------
@on_slurm
def test_nonblocking_submission_then_status_shows_running_and_cancelled_jobs(tmp_path, cache_dir):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    endless = [o for o in TINY if not o.startswith(("budget.steps", "train.eval_every"))] + [
        "budget.steps=10000000",
        "train.eval_every=1000",
        "train.log_every=10",
    ]
    r = run_launch(
        "-m",
        *SLURM,
        "hydra.launcher.wait=false",
        "model=mixer,transformer",
        *endless,
        f"tracking.uri={uri}",
        cwd=tmp_path,
        env={**ENV, "LMSWEEP_CACHE": str(cache_dir)},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rec = sweep_record(tmp_path)
    ids = [j["slurm_job_id"] for j in rec["jobs"]]
    try:
        # it returned while the (endless) jobs are queued or running, and said how to follow them
        assert not any(s.terminal for s in slurm.job_states(ids).values())
        assert f"python -m sweeper status --sweep-id {rec['sweep_id']}" in r.stdout + r.stderr
        out = status(tmp_path, uri, rec["sweep_id"])
        for jid in ids:
            assert any(s in status_line(out, jid) for s in ("PENDING", "RUNNING"))

        # once job 0 trains (its MLflow run exists), cancel it
        client = MlflowClient(uri)
        wait_for(
            "job 0's MLflow run",
            lambda: client.search_runs(
                [rec["experiment_id"]],
                f"attributes.run_name = '{rec['jobs'][0]['run_name']}' and "
                "attributes.status = 'RUNNING'",
            ),
        )
        subprocess.run(["scancel", ids[0]], check=True)
        wait_for(
            "job 0 CANCELLED in Slurm accounting",
            lambda: (
                slurm.job_states([ids[0]]).get(ids[0], slurm.SlurmState("")).state == "CANCELLED"
            ),
            every=1,
        )
        out = status(tmp_path, uri, rec["sweep_id"])
        assert "CANCELLED" in status_line(out, ids[0])
        assert any(s in status_line(out, ids[1]) for s in ("PENDING", "RUNNING"))

        # the run is closed: by the trainer (SIGTERM within KillWait), else by --reconcile
        line = status_line(status(tmp_path, uri, rec["sweep_id"], "--reconcile"), ids[0])
        assert "CANCELLED" in line and "KILLED" in line and " running " not in line
    finally:
        subprocess.run(["scancel", rec["arrays"][0]], check=False)


# --- no cluster needed ---------------------------------------------------------------------
def test_a_failed_jobs_error_in_its_log_has_no_password(monkeypatch, capsys):
    """The log is uploaded with the run: the store's password is scrubbed from it."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://u:s3cret-pw@mlflow.example:5000")
    try:
        raise RuntimeError("connecting to http://u:s3cret-pw@mlflow.example:5000 failed")
    except RuntimeError as e:
        slurm.log_job_error(e)
    err = capsys.readouterr().err
    assert "the job failed:" in err and "Traceback" in err and "s3cret-pw" not in err


def test_gres_and_memory_parsing():
    assert slurm.gres_gpus("gpu:2") == 2
    assert slurm.gres_gpus("gpu:a100:4(S:0-1)") == 4
    assert slurm.gres_gpus("gpu:a100:4(S:0-1),gpu:v100:2,shard:8") == 6
    assert slurm.gres_gpus("(null)") == 0 and slurm.gres_gpus(None) == 0
    assert slurm.parse_mem_mb("4G") == 4096 and slurm.parse_mem_mb(500) == 500
    assert slurm._expand("12_[0-2,5%4]") == ["12_0", "12_1", "12_2", "12_5"]


def test_a_distributed_job_asks_for_each_rank_s_resources_per_node():
    one_rank = {"gpus_per_node": None, "gres": "gpu:a100:1,shard:2", "mem_gb": 32}
    got = slurm.rank_scaled(one_rank, nodes=2, nproc=4)
    assert got["tasks_per_node"] == 4 and got["nodes"] == 2 and got["mem_gb"] == 128
    assert got["gres"] == "gpu:a100:4,shard:2"  # was gpu:a100:1: ranks 1-3 had no GPU
    assert slurm.requested(got).gpus == 4
    assert slurm.scale_gres("gpu", 2) == "gpu:2" and slurm.scale_gres("gpu:2", 3) == "gpu:6"


def test_check_resources_against_a_parsed_sinfo():
    parts = slurm.parse_sinfo(
        "gpu*|n1|64|512000|gpu:a100:8(S:0-1)\ngpu*|n2|64|512000|gpu:a100:8\n"
        "cpu|c1|128|256000|(null)\n"
    )
    cfg = {
        "_target_": "hydra_plugins.lmsweep_sweeper.slurm_launcher.LmsweepSlurmLauncher",
        "partition": None,
        "gpus_per_node": 8,
        "cpus_per_task": 8,
        "tasks_per_node": 8,
        "mem_gb": 400,
        "nodes": 2,
    }
    slurm.check_resources(cfg, parts)  # fits: default partition
    slurm.check_resources(
        {
            **cfg,
            "_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
            "gpus_per_node": 99,
        },
        parts,
    )  # not Slurm: no check
    with pytest.raises(
        ConfigError,
        match=r"asks for 9 GPUs, 64 CPUs, 409600 MB memory "
        r"per node on 2 nodes.*'gpu' has 2 nodes \(n1, n2\) with 64 CPUs, "
        r"512000 MB memory, 8 GPUs",
    ):
        slurm.check_resources({**cfg, "gpus_per_node": 9}, parts)
    with pytest.raises(ConfigError, match="'cpu' has 1 node"):
        slurm.check_resources({**cfg, "partition": "cpu", "gpus_per_node": 1}, parts)
    with pytest.raises(ConfigError, match="no partition named big.*partitions: cpu, gpu"):
        slurm.check_resources({**cfg, "partition": "big"}, parts)
    with pytest.raises(ConfigError, match="on 3 nodes"):
        slurm.check_resources({**cfg, "nodes": 3}, parts)


def test_scheduler_tag_from_the_slurm_environment(monkeypatch):
    from trainer.tracking import process_tags

    def slurm_tag():
        return process_tags().get(schema.TAG_SLURM_JOB_ID)

    for var in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(var, raising=False)
    assert slurm_tag() is None
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    assert slurm_tag() == "41"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "40")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert slurm_tag() == "40_1"
    assert os.environ["SLURM_JOB_ID"] == "41"


# --- preemption and cancellation: checkpoint, requeue or re-launch, resume -------------------
LONG = [o for o in TINY if not o.startswith(("budget.steps", "train.eval_every"))] + [
    "budget.steps=1500",
    "train.eval_every=500",
    "train.log_every=10",
    "train.threads=1",
]


def launch_and_wait_for_step(tmp_path, cache_dir, uri, step=200):
    """Submit one LONG job without waiting; return its Slurm id once its log shows `step`."""
    r = run_launch(
        "-m",
        *SLURM,
        "hydra.launcher.wait=false",
        *LONG,
        f"tracking.uri={uri}",
        cwd=tmp_path,
        env={**ENV, "LMSWEEP_CACHE": str(cache_dir)},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    jid = sweep_record(tmp_path)["jobs"][0]["slurm_job_id"]

    def reached():
        return any(
            f"] step {step} " in p.read_text(errors="replace")
            for p in tmp_path.rglob(f"{jid}_0_log.out")
        )

    wait_for(f"job {jid} to reach step {step}", reached, every=0.5)
    return jid


def only_job_run(uri):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("lmsweep")
    runs = [
        r
        for r in client.search_runs([exp.experiment_id])
        if r.data.tags.get(schema.TAG_ROLE) == schema.ROLE_JOB
    ]
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return client, runs[0]


def history(client, run_id, key):
    return [
        (m.step, m.value)
        for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
    ]


@on_slurm
def test_preempted_job_checkpoints_requeues_and_resumes_bit_exact(tmp_path, cache_dir):
    ref_dir, work = tmp_path / "ref", tmp_path / "slurm"
    ref_dir.mkdir(), work.mkdir()
    ref_uri, uri = f"sqlite:///{ref_dir / 'm.db'}", f"sqlite:///{work / 'm.db'}"
    r = run_launch(
        *LONG,
        f"tracking.uri={ref_uri}",
        cwd=ref_dir,  # uninterrupted, locally
        env={**ENV, "LMSWEEP_CACHE": str(cache_dir), "LMSWEEP_CHECKPOINTS": str(ref_dir)},
    )
    assert r.returncode == 0, r.stderr[-3000:]

    jid = launch_and_wait_for_step(work, cache_dir, uri)
    try:
        subprocess.run(["scancel", "--signal=USR2", jid], check=True)  # what preemption sends
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("lmsweep")
        wait_for(
            "the requeued job to finish its run",
            lambda: client.search_runs(
                [exp.experiment_id],
                "attributes.status = 'FINISHED' and "
                f"tags.`{schema.TAG_ROLE}` = '{schema.ROLE_JOB}'",
            ),
            timeout=300,
        )
    finally:
        subprocess.run(["scancel", jid], check=False)
    client, run = only_job_run(uri)
    assert run.data.tags[schema.TAG_RESUMES] == "1"
    ref_client, ref = only_job_run(ref_uri)
    assert run.data.metrics[schema.FINAL_VAL_LOSS] == ref.data.metrics[schema.FINAL_VAL_LOSS]
    for key in (schema.TRAIN_LOSS, schema.VAL_LOSS, schema.TOKENS):
        got = history(client, run.info.run_id, key)
        assert got == history(ref_client, ref.info.run_id, key), key  # no gap, no duplicate
    assert [s for s, _ in history(client, run.info.run_id, schema.TRAIN_LOSS)] == list(
        range(10, 1501, 10)
    )


@on_slurm
def test_cancelled_job_is_killed_and_the_next_launch_resumes_it(tmp_path, cache_dir):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    jid = launch_and_wait_for_step(tmp_path, cache_dir, uri)
    subprocess.run(["scancel", jid], check=True)
    client = MlflowClient(uri)
    wait_for("the cancelled run to be closed", lambda: only_job_run(uri)[1].info.status == "KILLED")
    assert only_job_run(uri)[1].data.tags[schema.TAG_OUTCOME] == schema.OUTCOME_CANCELLED

    r = run_launch(
        "-m",
        *SLURM,
        *LONG,
        f"tracking.uri={uri}",
        cwd=tmp_path,  # the same sweep
        env={**ENV, "LMSWEEP_CACHE": str(cache_dir)},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resume" in r.stdout and "1 of 1 jobs to launch" in r.stdout
    client, run = only_job_run(uri)
    assert run.info.status == "FINISHED" and run.data.tags[schema.TAG_RESUMES] == "1"
    assert [s for s, _ in history(client, run.info.run_id, schema.TRAIN_LOSS)] == list(
        range(10, 1501, 10)
    )
