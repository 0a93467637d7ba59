"""End to end: `python launch.py -m ...` trains real models and records them in MLflow, both in
the default SQLite file of the launch directory and on a real tracking server."""

from __future__ import annotations

import math

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import link_corpus, run_launch, store_uri, tiny
from trainer import schema

pytestmark = pytest.mark.slow

TINY = tiny(
    "budget.steps=40", "train.eval_every=20", "train.log_every=5", "train.eval_sequences=16"
)


@pytest.fixture(scope="module", params=["sqlite", "server"])
def sweep(request, tmp_path_factory, corpus):
    cwd = tmp_path_factory.mktemp(f"sweep_{request.param}")
    uri = store_uri(request.param, cwd, request)
    # sqlite: nothing set, the default store of the launch directory; server: tracking.uri.
    where = [f"tracking.uri={uri}"] if request.param == "server" else []
    r = run_launch(
        "-m",
        "model=mixer,transformer",
        *TINY,
        *where,
        f"tracking.experiment={EXP}",
        cwd=cwd,
        env={"LMSWEEP_CACHE": str(link_corpus(cwd / "cache", corpus)), "MLFLOW_TRACKING_URI": ""},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r, MlflowClient(uri)


EXP = "e2e"


def job_runs(client, experiment: str = EXP):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    return [r for r in runs if r.data.tags.get(schema.TAG_ROLE) == schema.ROLE_JOB], runs


def test_two_finished_runs_nested_under_one_sweep(sweep):
    _, client = sweep
    jobs, runs = job_runs(client)
    assert len(jobs) == 2 and {r.info.status for r in jobs} == {"FINISHED"}
    parents = [r for r in runs if r.data.tags.get(schema.TAG_ROLE) == schema.ROLE_SWEEP]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    sweep_id = parents[0].data.tags[schema.TAG_SWEEP_ID]
    for r in jobs:
        assert r.data.tags[schema.PARENT_RUN_TAG] == parents[0].info.run_id
        assert r.data.tags[schema.TAG_SWEEP_ID] == sweep_id
    assert sorted(r.info.run_name for r in jobs) == ["model=mixer", "model=transformer"]


def test_params_tags_and_config_artifact(sweep):
    _, client = sweep
    jobs, _ = job_runs(client)
    for r in jobs:
        p, t = r.data.params, r.data.tags
        assert p["model.name"] in ("mixer", "transformer")
        assert p["optim.name"] == "adam" and p["budget.steps"] == "40" and p["seed"] == "0"
        assert p["data.seq_len"] == "32" and p["model.max_seq_len"] == "32"
        for tag in (schema.TAG_FINGERPRINT, schema.TAG_GIT_COMMIT, schema.TAG_OVERRIDES):
            assert t[tag]
        total, non_emb = int(t[schema.TAG_PARAMS_TOTAL]), int(t[schema.TAG_PARAMS_NON_EMBEDDING])
        assert 0 < non_emb < total
        assert int(t[schema.TAG_FLOPS_PER_TOKEN]) > 6 * non_emb
        assert t[schema.TAG_OUTCOME] == schema.OUTCOME_FINISHED
        arts = [a.path for a in client.list_artifacts(r.info.run_id)]
        assert schema.CONFIG_ARTIFACT in arts


def test_metric_histories_exist_and_the_loss_fell(sweep):
    _, client = sweep
    jobs, _ = job_runs(client)
    for r in jobs:
        rid = r.info.run_id
        hist = {
            m: client.get_metric_history(rid, m)
            for m in (
                schema.TRAIN_LOSS,
                schema.VAL_LOSS,
                schema.LR,
                schema.TOKENS,
                schema.FLOPS,
                schema.WALL_CLOCK,
                schema.TOKENS_PER_S,
                schema.BATCH_TOKENS,
                schema.GRAD_NORM,
            )
        }
        assert len(hist[schema.TRAIN_LOSS]) == 8  # every 5 of 40 steps
        assert [m.step for m in hist[schema.VAL_LOSS]] == [20, 40]
        assert hist[schema.TOKENS][-1].value == 40 * 8 * 32
        assert all(m.value == 8 * 32 for m in hist[schema.BATCH_TOKENS])
        train = [m.value for m in sorted(hist[schema.TRAIN_LOSS], key=lambda m: m.step)]
        assert train[-1] < train[0] - 0.5
        m = r.data.metrics
        assert m[schema.FINAL_VAL_LOSS] == hist[schema.VAL_LOSS][-1].value
        assert m[schema.FINAL_VAL_LOSS] < math.log(257)  # below uniform
        # Adam: 2 fp32 moments per parameter
        assert m[schema.OPTIMIZER_STATE_BYTES_PER_PARAM] == pytest.approx(8, rel=0.01)
        assert 2.5 < m[schema.UNIGRAM_ENTROPY] < 4


def test_summary_table_and_ui_hint_printed(sweep):
    r, _ = sweep
    assert "final val loss" in r.stdout and "unigram-entropy baseline" in r.stdout
    assert "model=mixer" in r.stdout and "model=transformer" in r.stdout
    assert "MLflow: " in r.stdout
