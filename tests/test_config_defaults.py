"""One source for every default: the dataclass of each option holds it (with where it comes
from); the option's YAML may only link fields to other groups (interpolations such as
`max_seq_len: ${data.seq_len}`), which a dataclass cannot express; conf/config.yaml sets
none. A YAML that restates a default, or sets a different one behind the dataclass's back,
fails here."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from omegaconf import MISSING, OmegaConf

from tests.conftest import CONF, compose_cfg
from trainer.config import ENV_DEFAULTS, GROUPS, flatten
from trainer.registry import Registry

OPTIONS = [(g, o) for g, registry in GROUPS.items() for o in registry.names()]


def yaml_values(group: str, option: str) -> dict:
    values = yaml.safe_load((CONF / group / f"{option}.yaml").read_text()) or {}
    values.pop("defaults", None)
    return values


def is_link(value) -> bool:
    return isinstance(value, str) and value.startswith("${")


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}/{o}" for g, o in OPTIONS])
def test_option_yaml_holds_no_default(group, option):
    cls = GROUPS[group][option].config_cls
    fields = {f.name for f in dataclasses.fields(cls)}
    for key, value in yaml_values(group, option).items():
        assert key in fields, f"conf/{group}/{option}.yaml: {key} is not a field of {cls.__name__}"
        assert is_link(value), (
            f"conf/{group}/{option}.yaml sets {key}: {value!r}; the default belongs in "
            f"{cls.__module__}.{cls.__name__} (the YAML may only link fields to other groups)"
        )


def test_the_top_config_holds_no_default():
    """conf/config.yaml picks the options and sets Hydra's own settings; a job field it set
    would override every option's dataclass (it is merged last)."""
    keys = set(yaml.safe_load((CONF / "config.yaml").read_text()))
    assert keys <= {"defaults", "hydra"}, f"conf/config.yaml sets {sorted(keys)}"


def dataclass_default(cfg, key: str):
    parent, _, name = key.rpartition(".")
    cls = OmegaConf.get_type(OmegaConf.select(cfg, parent))
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


@pytest.mark.parametrize("data", GROUPS["data"].names())
def test_the_environment_moves_the_defaults_it_names(data, monkeypatch, tmp_path):
    """ENV_DEFAULTS ($LMSWEEP_CACHE, $LMSWEEP_CHECKPOINTS) are read when the job resolves its
    config, not when it is composed (`--cfg job` shows them); without them, the dataclass's
    default holds."""
    for var in ENV_DEFAULTS.values():
        monkeypatch.delenv(var, raising=False)
    cfg = compose_cfg(f"data={data}")
    unresolved = flatten(OmegaConf.to_container(cfg))
    for key, var in ENV_DEFAULTS.items():
        default = dataclass_default(cfg, key)
        assert unresolved[key] == f"${{oc.env:{var},{default}}}"
        assert OmegaConf.select(cfg, key) == default
        monkeypatch.setenv(var, str(tmp_path / var))
        assert OmegaConf.select(cfg, key) == str(tmp_path / var)


def test_an_option_is_registered_by_its_name_default():
    """`name` is the one default every option must state, in its dataclass: the registry keys
    the option by it, and refuses a class without one (a base class) or with a name already
    taken (a subclass that forgot its own inherits its parent's)."""

    @dataclasses.dataclass
    class Base:
        name: str = MISSING

    @dataclasses.dataclass
    class One(Base):
        name: str = "one"

    @dataclasses.dataclass
    class Unnamed(One):
        pass

    things: Registry = Registry("thing")
    things.register(One)(lambda cfg: "built")
    assert things.names() == ["one"] and things.build(One()) == "built"
    with pytest.raises(ValueError, match="Base has no `name` default: not a thing"):
        things.register(Base)
    with pytest.raises(ValueError, match="thing=one is registered twice"):
        things.register(Unnamed)(lambda cfg: "other")
