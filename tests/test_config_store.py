"""Hydra's config repository shares the ConfigStore instead of deep-copying it per composition
(trainer/config.py, share_config_store): composition and `--help` must still see every config,
including one registered after a repository was built."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra

from tests.conftest import CONF, run_launch
from trainer.config import GROUPS
from trainer.models.transformer import TransformerConfig


def test_a_config_registered_after_the_repository_is_copied_still_composes():
    """Hydra's regression test for that fix (its PR 3301), on lmsweep's config: a repository
    copied (as every composition copies it) before a config is stored still finds it."""
    from hydra._internal.config_repository import CachingConfigRepository  # what Hydra builds

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        copied = CachingConfigRepository(loader.repository)
        assert "late" not in loader.get_group_options("model")
        ConfigStore.instance().store(group="model", name="late", node=TransformerConfig(d_model=64))
        try:
            assert copied.load_config("model/late") is not None
            assert compose(config_name="config", overrides=["model=late"]).model.d_model == 64
        finally:
            del ConfigStore.instance().repo["model"]


def test_help_lists_every_group_s_options_and_no_schema(tmp_path):
    shown = run_launch("--help", cwd=tmp_path, timeout=120)
    assert shown.returncode == 0, shown.stderr
    groups = shown.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    for group, registry in GROUPS.items():
        line = next(x for x in groups.splitlines() if x.startswith(f"{group}: "))
        assert set(line.split(": ", 1)[1].split(", ")) == set(registry.names()), line
    # The typed schemas the YAML files extend are configs, not groups a user picks from.
    assert "schema" not in groups
