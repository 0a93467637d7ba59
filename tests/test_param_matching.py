"""model.params: the width is solved at validation so that every family lands within 1% of
the target, counted exactly as the trained model is."""

from dataclasses import replace

import pytest

from tests.conftest import compose_job
from trainer.config import GROUPS, preflight
from trainer.models import count_params, solve_width
from trainer.models.sizing import ALIGNMENTS, parse_count

VOCAB = 257
FAMILIES = GROUPS["model"].names()


@pytest.mark.parametrize(
    "text,count",
    [
        ("1000000", 1_000_000),
        ("1e6", 1_000_000),
        ("10M", 10_000_000),
        ("1.5M", 1_500_000),
        ("500k", 500_000),
        ("500K", 500_000),
        ("2B", 2_000_000_000),
        (123, 123),
    ],
)
def test_parse_count(text, count):
    assert parse_count(text) == count


@pytest.mark.parametrize("text", ["ten", "1.5X", "-1M", "0", "k"])
def test_parse_count_refuses_non_counts(text):
    with pytest.raises(ValueError, match="model.params=.*is invalid: a positive count"):
        parse_count(text)


@pytest.fixture(scope="module")
def base():
    """Each family at 2 layers and seq_len 32 (solving is a few dozen meta-device builds)."""
    return {
        name: compose_job(f"model={name}", "model.n_layers=2", "data.seq_len=32").model
        for name in FAMILIES
    }


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_matches_three_targets_within_one_percent(base, name):
    for target in ("200k", "1M", "4M"):
        cfg = solve_width(replace(base[name], params=target), VOCAB, causal=True)
        n = parse_count(target)
        assert abs(count_params(cfg, VOCAB, causal=True) - n) <= 0.01 * n, (target, cfg)
        assert cfg.n_layers == 2 and cfg.d_model % cfg.width_multiple() == 0


def test_heads_divide_the_solved_width_and_the_ffn_closes_the_gap(base):
    cfg = solve_width(
        replace(base["transformer"], params="200k", n_heads=8, positions="rotary"),
        VOCAB,
        causal=True,
    )
    assert cfg.d_model % 16 == 0  # 8 heads of even size, for RoPE
    assert cfg.ffn_hidden is not None  # widths step by 16: too coarse alone


@pytest.mark.parametrize("target", ["200k", "1M", "4M"])
def test_a_solved_hidden_width_is_as_aligned_as_the_tolerance_allows(base, target):
    """GEMM-friendly widths: on no coarser grid of ALIGNMENTS is there a width within 1%."""
    cfg = solve_width(replace(base["transformer"], params=target), VOCAB, causal=True)
    assert cfg.ffn_hidden is not None, "the case needs the hidden width to close the gap"
    n, h = parse_count(target), cfg.ffn_hidden
    for align in (a for a in ALIGNMENTS if a > max(a for a in ALIGNMENTS if h % a == 0)):
        for other in (align * (h // align), align * (h // align + 1)):
            assert (
                abs(count_params(replace(cfg, ffn_hidden=other), VOCAB, causal=True) - n) > 0.01 * n
            )


def test_bidirectional_models_are_sized_as_built(base):
    cfg = solve_width(replace(base["mixer"], params="1M"), VOCAB + 1, causal=False)
    assert abs(count_params(cfg, VOCAB + 1, causal=False) - 1_000_000) <= 10_000


def test_too_small_a_target_fails_clearly(base):
    with pytest.raises(
        ValueError,
        match=r"model.params='1k' is invalid: the smallest "
        r"model=transformer with model.n_layers=2 .* already has",
    ):
        solve_width(replace(base["transformer"], params="1k"), VOCAB, causal=True)


def solved(*overrides):
    """The job as pre-flight leaves it: model.params solved into the width (composition only
    parses the target, so validation stays cheap)."""
    job = compose_job("model.n_layers=2", "data.seq_len=32", *overrides)
    preflight(job, local=False)
    return job


def test_preflight_carries_the_solved_width_into_the_job():
    job = solved("model=mixer", "model.params=1M")
    assert job.model.params == "1M"
    assert abs(count_params(job.model, VOCAB, causal=True) - 1_000_000) <= 10_000
    # a plain MLP: a GLU's width steps by 32 (GatedMLP), which could hide the difference
    mlm = solved("model=mixer", "model.params=1M", "objective=mlm", "model.mlp=gelu")
    clm = solved("model=mixer", "model.params=1M", "model.mlp=gelu")
    assert abs(count_params(mlm.model, VOCAB + 1, causal=False) - 1_000_000) <= 10_000
    assert mlm.model.d_model < clm.model.d_model  # full T x T maps leave less for the width


def test_heads_need_not_divide_the_placeholder_width_when_params_is_set():
    assert solved("model.n_heads=3", "model.params=200k").model.d_model % 3 == 0


def test_a_bad_target_fails_at_composition():
    with pytest.raises(Exception, match="model.params='lots' is invalid"):
        compose_job("model.params=lots")


def test_a_bpe_that_learns_fewer_tokens_than_declared_trains_the_planned_model(tmp_path):
    """The plan and model.params count the declared vocabulary (no data is prepared before a
    sweep); a small corpus leaves the BPE short of it, and the model trained keeps the planned
    rows: the run records the size the plan showed, and the warning says why."""
    from mlflow.tracking import MlflowClient

    from tests.conftest import run_launch
    from tests.test_data_sources import documents, write_jsonl
    from trainer import schema

    write_jsonl(tmp_path / "d.jsonl", [{"text": t} for t in documents(80)])
    overrides = [
        "data=files", f"data.paths=[{tmp_path / 'd.jsonl'}]", "data.tokenizer.name=bpe",
        "data.tokenizer.vocab_size=4000", "model.params=300k", f"data.cache_dir={tmp_path}",
        "train.micro_batch=4", "ramp.start=4",
    ]  # fmt: skip
    job = compose_job(*overrides)
    preflight(job, local=False)  # the plan's figure
    planned = count_params(job.model, job.vocab_size(), causal=job.objective.causal)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = run_launch(
        "-m", *overrides, "budget.steps=2", "train.eval_sequences=4", f"tracking.uri={uri}",
        cwd=tmp_path,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "data.tokenizer.vocab_size=4000: the BPE learned" in out
    client = MlflowClient(uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("lmsweep").experiment_id],
        f"tags.`{schema.TAG_ROLE}` = '{schema.ROLE_JOB}'",
    )
    assert int(run.data.params["data.stats.vocab_size"]) < 4000  # the corpus held fewer merges
    assert int(run.data.tags[schema.TAG_PARAMS_TOTAL]) == planned
    assert abs(planned - 300_000) <= 3_000
