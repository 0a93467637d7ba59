"""analysis.load / analysis.collapse against a real MLflow SQLite store written as the trainer
does."""

import math
import os
import tempfile

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from analysis.collapse import collapse_seeds, min_over
from analysis.errors import AnalysisError
from analysis.load import describe_unfinished, load_experiment
from trainer import schema

STEPS = [10, 20, 30]


def _log_job(client, exp_id, parent, sweep, *, arch, lr, seed, n, losses, outcome="finished"):
    run = client.create_run(exp_id, run_name=f"model={arch} optim.lr={lr} seed={seed}")
    tokens = [1000.0 * s for s in STEPS]
    metrics = []
    for i, step in enumerate(STEPS):
        for key, value in {
            schema.TOKENS: tokens[i],
            schema.FLOPS: 6 * n * tokens[i],
            schema.WALL_CLOCK: 2.0 * step,
            schema.VAL_LOSS: losses[i],
            schema.TRAIN_LOSS: losses[i] + 0.1,
            schema.LR: lr,
        }.items():
            metrics.append(Metric(key, value, 1000 + i, step))
    final = losses[-1]
    metrics += [
        Metric(schema.FINAL_VAL_LOSS, final, 2000, STEPS[-1]),
        Metric(schema.BEST_VAL_LOSS, float(np.nanmin(losses)), 2000, STEPS[-1]),
    ]
    tags = {
        schema.TAG_ROLE: schema.ROLE_JOB,
        schema.TAG_SWEEP_ID: sweep,
        schema.PARENT_RUN_TAG: parent,
        schema.TAG_OVERRIDES: f"model={arch} optim.lr={lr} seed={seed}",
        schema.TAG_OUTCOME: outcome,
        schema.TAG_PARAMS_TOTAL: str(int(1.2 * n)),
        schema.TAG_PARAMS_NON_EMBEDDING: str(n),
        schema.TAG_FLOPS_PER_TOKEN: str(6 * n),
        schema.TAG_FINGERPRINT: f"{arch}{lr}{seed}",
    }
    params = {
        "model.name": arch,
        "optim.name": "adam",
        "optim.lr": lr,
        "seed": seed,
        "budget.name": "steps",
    }
    client.log_batch(
        run.info.run_id,
        metrics=metrics,
        params=[Param(k, str(v)) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    client.set_terminated(run.info.run_id)
    return run.info.run_id


@pytest.fixture
def ram_dir():
    """A directory for a throwaway store, RAM-backed where available (SQLite's per-commit
    fsyncs make a disk store several times slower)."""
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        yield tmp


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("exp")
    parent = client.create_run(
        exp_id, tags={schema.TAG_ROLE: schema.ROLE_SWEEP, schema.TAG_SWEEP_ID: "s1"}
    )
    pid = parent.info.run_id
    # mixer: two lrs x two seeds; transformer: one lr, one seed diverged (NaN then inf)
    for lr, base in ((1e-3, 3.0), (3e-3, 2.8)):
        for seed, jitter in ((0, 0.0), (1, 0.02)):
            _log_job(
                client,
                exp_id,
                pid,
                "s1",
                arch="mixer",
                lr=lr,
                seed=seed,
                n=1000,
                losses=[base + 1 + jitter, base + 0.5 + jitter, base + jitter],
            )
    _log_job(
        client,
        exp_id,
        pid,
        "s1",
        arch="transformer",
        lr=1e-3,
        seed=0,
        n=2000,
        losses=[3.5, 3.0, 2.5],
    )
    _log_job(
        client,
        exp_id,
        pid,
        "s1",
        arch="transformer",
        lr=1e-3,
        seed=1,
        n=2000,
        losses=[3.5, float("nan"), float("inf")],
        outcome="diverged",
    )
    # another sweep and a non-job run must not leak in
    other = client.create_run(
        exp_id, tags={schema.TAG_ROLE: schema.ROLE_SWEEP, schema.TAG_SWEEP_ID: "s2"}
    )
    _log_job(
        client,
        exp_id,
        other.info.run_id,
        "s2",
        arch="mixer",
        lr=1e-3,
        seed=0,
        n=1000,
        losses=[9, 9, 9],
    )
    client.create_run(exp_id, tags={"note": "not an lmsweep run"})
    return uri, pid


def test_runs_table(store):
    uri, parent = store
    exp = load_experiment(uri, "exp", sweep_id="s1")
    runs = exp.runs
    assert len(runs) == 6 and set(runs["sweep_id"]) == {"s1"}
    assert set(runs["parent_run_id"]) == {parent} and exp.parent_run_id() == parent
    assert {"model.name", "optim.lr", "seed", "budget.name"} <= set(exp.param_columns)
    assert runs["optim.lr"].dtype.kind == "f" and runs["seed"].dtype.kind == "i"
    row = runs[(runs["model.name"] == "transformer") & (runs["seed"] == 0)].iloc[0]
    assert row["params_total"] == 2400 and row["params_non_embedding"] == 2000
    assert row[schema.TOKENS] == 30000 and row[schema.FLOPS] == 6 * 2000 * 30000
    assert row[schema.WALL_CLOCK] == 60 and row[schema.FINAL_VAL_LOSS] == 2.5
    assert row["outcome"] == "finished" and not row["diverged"]


def test_diverged_run_is_flagged_and_inf_survives_sql(store):
    runs = load_experiment(store[0], "exp", sweep_id="s1").runs
    bad = runs[runs["outcome"] == "diverged"].iloc[0]
    assert bad["diverged"]
    assert math.isinf(bad[schema.FINAL_VAL_LOSS])  # SQL stores inf as float max; we map it back
    assert runs["diverged"].sum() == 1


def test_histories_long_table(store):
    exp = load_experiment(
        store[0], "exp", sweep_id="s1", metrics=[schema.VAL_LOSS, schema.TRAIN_LOSS]
    )
    h = exp.histories
    assert list(h.columns) == [
        "run_id",
        "step",
        schema.TOKENS,
        schema.FLOPS,
        schema.WALL_CLOCK,
        "metric",
        "value",
    ]
    assert len(h) == 6 * 3 * 2 and set(h["metric"]) == {schema.VAL_LOSS, schema.TRAIN_LOSS}
    one = h[(h["metric"] == schema.VAL_LOSS) & (h["step"] == 20)].iloc[0]
    assert one[schema.TOKENS] == 20000 and one[schema.WALL_CLOCK] == 40
    bad_id = exp.runs.loc[exp.runs["diverged"], "run_id"].iloc[0]
    bad = h[(h["run_id"] == bad_id) & (h["metric"] == schema.VAL_LOSS)].sort_values("step")["value"]
    assert bad.iloc[0] == 3.5 and np.isnan(bad.iloc[1]) and np.isinf(bad.iloc[2])


def test_whole_experiment_and_errors(store):
    uri, _ = store
    exp = load_experiment(uri, "exp", metrics=None)
    assert len(exp.runs) == 7 and exp.histories.empty
    with pytest.raises(AnalysisError, match="2 sweeps"):
        exp.parent_run_id()
    with pytest.raises(AnalysisError, match=r"unknown experiment 'nope'; valid: .*exp"):
        load_experiment(uri, "nope")
    with pytest.raises(AnalysisError, match=r"'s9'; valid: s1, s2"):
        load_experiment(uri, "exp", sweep_id="s9")


def test_collapse_seeds_and_min_over_lr(store):
    exp = load_experiment(store[0], "exp", sweep_id="s1", metrics=None)
    config = [c for c in exp.param_columns if c != "seed"]
    cells = collapse_seeds(exp.runs, config)
    assert len(cells) == 3
    mixer = cells[(cells["model.name"] == "mixer") & (cells["optim.lr"] == 3e-3)].iloc[0]
    assert mixer[schema.FINAL_VAL_LOSS] == pytest.approx(2.81)
    assert mixer[f"{schema.FINAL_VAL_LOSS}_sem"] == pytest.approx(0.01)  # std 0.01414 / sqrt 2
    assert mixer["n_seeds"] == 2 and mixer["n_diverged"] == 0
    tr = cells[cells["model.name"] == "transformer"].iloc[0]
    assert tr[schema.FINAL_VAL_LOSS] == 2.5 and tr["n_seeds"] == 1 and tr["n_diverged"] == 1
    assert not tr["diverged"]

    best = min_over(cells, "optim.lr", [c for c in config if c != "optim.lr"])
    assert len(best) == 2
    m = best[best["model.name"] == "mixer"].iloc[0]
    assert m["optim.lr"] == 3e-3 and m["n_optim.lr"] == 2 and m["optim.lr_at_edge"]
    assert m[schema.FINAL_VAL_LOSS] == pytest.approx(2.81)


def test_unfinished_runs_are_left_out_unless_asked_for(ram_dir):
    uri = f"sqlite:///{ram_dir}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("exp")
    pid = client.create_run(
        exp_id, tags={schema.TAG_ROLE: schema.ROLE_SWEEP, schema.TAG_SWEEP_ID: "s"}
    ).info.run_id
    done = _log_job(
        client, exp_id, pid, "s", arch="mixer", lr=1e-3, seed=0, n=1000, losses=[3, 2.5, 2]
    )
    dead = _log_job(
        client, exp_id, pid, "s", arch="mixer", lr=1e-3, seed=1, n=1000, losses=[3, 2.6, 2.1]
    )
    client.update_run(dead, status="RUNNING")  # its process died mid-run
    killed = _log_job(
        client, exp_id, pid, "s", arch="mixer", lr=3e-3, seed=0, n=1000, losses=[3, 3, 3]
    )
    client.set_terminated(killed, "KILLED")
    exp = load_experiment(uri, "exp")
    assert exp.runs["run_id"].tolist() == [done]
    assert set(exp.histories["run_id"]) == {done}
    assert sorted(exp.unfinished["status"]) == ["KILLED", "RUNNING"]
    line = describe_unfinished(exp.unfinished)
    assert line.startswith(
        "left out 2 runs whose MLflow status is not FINISHED (1 KILLED, 1 RUNNING"
    )
    assert "model=mixer optim.lr=0.001 seed=1 (RUNNING)" in line and "--include-unfinished" in line
    everything = load_experiment(uri, "exp", include_unfinished=True)
    assert len(everything.runs) == 3 and describe_unfinished(everything.unfinished) is None
    client.set_terminated(done, "FAILED")
    with pytest.raises(AnalysisError, match="none of the 3 job runs is FINISHED"):
        load_experiment(uri, "exp")


def test_a_missing_sqlite_store_is_an_error_and_is_not_created(tmp_path):
    path = tmp_path / "nowhere" / "mlflow.db"
    with pytest.raises(
        AnalysisError, match=r"no MLflow store at .*mlflow\.db.*--tracking-uri.*--csv"
    ):
        load_experiment(f"sqlite:///{path}", "lmsweep")
    assert not path.exists() and not path.parent.exists()


def test_min_over_on_a_sweep_mixing_optimizers():
    # SM3 runs have optim.momentum, Adam runs optim.beta1: each is NaN on the others' rows
    runs = pd.DataFrame(
        {
            "model.name": ["mixer"] * 4 + ["transformer"] * 2,
            "optim.name": ["sm3", "sm3", "adam", "adam", "adam", "adam"],
            "optim.momentum": [0.9, 0.9, np.nan, np.nan, np.nan, np.nan],
            "optim.beta1": [np.nan, np.nan, 0.9, 0.9, 0.9, 0.9],
            "optim.lr": [1e-2, 3e-2, 1e-3, 3e-3, 1e-3, 3e-3],
            schema.FINAL_VAL_LOSS: [2.6, 2.5, 2.4, 2.45, 2.3, np.nan],
        }
    )
    cells = ["model.name", "optim.name", "optim.momentum", "optim.beta1"]
    best = min_over(runs, "optim.lr", cells).set_index(["model.name", "optim.name"])
    assert best["optim.lr"].to_dict() == {
        ("mixer", "sm3"): 3e-2,
        ("mixer", "adam"): 1e-3,
        ("transformer", "adam"): 1e-3,
    }
    assert best["n_optim.lr"].tolist() == [2, 2, 2] and best["optim.lr_at_edge"].all()
    assert np.isnan(best.loc[("mixer", "adam"), "optim.momentum"])
