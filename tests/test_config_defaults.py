"""One source for every default: the dataclass of each option holds it (with where it comes
from); the option's YAML may only link fields to other groups (interpolations such as
`max_seq_len: ${data.seq_len}`), which a dataclass cannot express. A YAML that restates a
default, or sets a different one behind the dataclass's back, fails here."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from tests.conftest import CONF
from trainer.config import GROUPS

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


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}/{o}" for g, o in OPTIONS])
def test_option_name_is_its_registry_key(group, option):
    """`name` is the one default every option must state, in its dataclass."""
    cls = GROUPS[group][option].config_cls
    assert {f.name: f.default for f in dataclasses.fields(cls)}["name"] == option
