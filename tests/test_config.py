"""Composition of every option of every group, and the promised errors for bad input."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf.errors import ValidationError

from tests.conftest import CONF, compose_job, run_launch
from trainer.config import GROUPS, JobConfig


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_every_yaml_option_has_a_registered_schema_and_vice_versa():
    for group, registry in GROUPS.items():
        assert options(group) == registry.names(), group


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_into_a_typed_job(group, option):
    job = compose_job(f"{group}={option}")
    assert isinstance(job, JobConfig)
    assert getattr(job, group).name == option
    assert isinstance(getattr(job, group), GROUPS[group][option].config_cls)


def test_defaults_resolve_interpolations():
    job = compose_job("data.seq_len=64")
    assert job.model.max_seq_len == 64


@pytest.mark.parametrize("group", list(GROUPS))
def test_unknown_option_names_the_valid_choices(group):
    with pytest.raises(MissingConfigException) as e:
        compose_job(f"{group}=no_such_option")
    msg = str(e.value)
    assert f"Could not find '{group}/no_such_option'" in msg
    for option in options(group):
        assert option in msg


BAD_VALUES = [
    # (override, text the error must contain)
    ("model.d_model=abc", "model.d_model"),  # wrong type
    ("model.n_layers=-2", "model.n_layers=-2"),
    ("model.mlp=swish", "valid choices: glu, gelu"),
    ("model=transformer model.n_heads=3", "must divide model.d_model=128"),
    ("optim.lr=-0.1", "optim.lr=-0.1"),
    ("optim=sm3 optim.momentum=1.5", "optim.momentum=1.5"),
    ("schedule.warmup=0.9", "schedule.warmup+cooldown"),
    ("data.seq_len=0", "seq_len=0"),  # model.max_seq_len follows it
    ("data.tokenizer.name=sentencepiece", "valid choices: bpe, byte"),
    ("filter=compressibility filter.threshold=2", "filter.threshold=2"),
    ("ramp=linear ramp.start=64 ramp.end=16", "ramp.end=16"),
    ("budget.steps=0", "budget.steps=0"),
    ("budget=tokens budget.tokens=-5", "budget.tokens=-5"),
    ("train.precision=fp8", "valid choices: auto, fp32, bf16"),
    ("train.threads=-1", r"train.threads=-1 is invalid: >= 0"),  # was torch's error
    ("model.no_such_field=1", "no_such_field"),  # unknown key
]


@pytest.mark.parametrize("overrides,needle", BAD_VALUES)
def test_bad_value_fails_at_composition_naming_the_field(overrides, needle):
    with pytest.raises((ValueError, ValidationError, ConfigCompositionException)) as e:
        compose_job(*overrides.split())
    assert needle in str(e.value) + str(e.value.__cause__)


def test_seq_len_beyond_the_model_is_refused():
    with pytest.raises(ValueError, match=r"data.seq_len=256.*model.max_seq_len=128"):
        compose_job("model.max_seq_len=128", "data.seq_len=256")


def test_ramp_batch_must_be_whole_micro_batches():
    with pytest.raises(ValueError, match="multiple of train.micro_batch=16"):
        compose_job("ramp=linear", "ramp.end=40")


def test_launch_rejects_a_bad_sweep_before_any_job(tmp_path):
    r = run_launch(
        "-m",
        "model=mixer,transformer",
        "optim.lr=0.001,-1",
        "tracking.uri=sqlite:///" + str(tmp_path / "m.db"),
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode != 0
    assert "2 of 4 jobs have an invalid config; nothing was launched" in r.stderr
    assert "optim.lr=-1.0 is invalid" in r.stderr
    assert not (tmp_path / "m.db").exists()  # no MLflow store touched
    assert not (tmp_path / "multirun").exists() or not any((tmp_path / "multirun").rglob("*.log"))


def test_a_sweep_s_misspelt_option_or_key_names_every_valid_one(tmp_path):
    r = run_launch(
        "-m", "model=mixer,transfomer", "optim.lrr=1e-3,3e-3", "hydra.sweeper.dry_run=true",
        cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert r.returncode != 0
    assert (
        "Could not find 'model/transfomer'; Available options in 'model': "
        "gau, gmlp, mixer, synthesizer, transformer" in r.stderr
    )  # was cut after 'gau'
    assert "AdamConfig has no field 'lrr'; its fields: name, lr," in r.stderr


def test_a_sweep_s_value_of_the_wrong_type_is_named_as_such_not_as_a_missing_field(tmp_path):
    r = run_launch(
        "-m", "budget=tokens", "budget.tokens=1000000,2e6", "seed=1,abc",
        "hydra.sweeper.dry_run=true", cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert r.returncode != 0
    assert (
        "Error merging override budget.tokens=2000000.0 | Value '2000000.0' of type 'float' "
        "could not be converted to Integer | full_key: budget.tokens" in r.stderr
    )
    assert (
        "Value 'abc' of type 'str' could not be converted to Integer | full_key: seed" in r.stderr
    )
    assert "has no field" not in r.stderr  # both fields exist: the values were wrong


@pytest.mark.parametrize(
    "overrides,why",
    [
        (
            ["tracking.experiment=a,b"],
            "tracking.experiment='a,b' is invalid: one value per sweep",
        ),
        (
            ["tracking.uri=sqlite:///a.db,sqlite:///b.db"],
            "tracking.uri='sqlite:///a.db,sqlite:///b.db' is invalid: one value per sweep",
        ),
        (
            ["seed=0,1", "hydra.sweeper.max_batch_size=-1"],
            "hydra.sweeper.max_batch_size=-1 is invalid: null (every job at once) or > 0",
        ),
    ],
)
def test_a_sweep_over_where_runs_go_or_a_batch_below_one_is_refused_before_anything(
    tmp_path, overrides, why
):
    """One sweep has one parent run, one plan of what finished and one URL: sweeping the
    experiment or store would file every run under the first one."""
    r = run_launch("-m", *overrides, cwd=tmp_path, timeout=120)
    assert r.returncode != 0 and why in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert not list(tmp_path.glob("*.db")) and not (tmp_path / "multirun").exists()


def test_a_dry_run_without_m_is_refused_rather_than_run(tmp_path):
    r = run_launch("hydra.sweeper.dry_run=true", cwd=tmp_path, timeout=120)
    assert r.returncode != 0
    assert "hydra.sweeper.dry_run=true plans a sweep and launches nothing: add -m" in r.stderr
    assert not list(tmp_path.iterdir())  # no store, no outputs/


def test_cfg_job_shows_the_resolved_config(tmp_path):
    r = run_launch(
        "--cfg", "job", "--resolve", "model=mixer", "data.seq_len=64", cwd=tmp_path, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert "name: mixer" in r.stdout and "max_seq_len: 64" in r.stdout
