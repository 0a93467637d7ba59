"""The sweep's jobs: the cartesian product of the overrides, as Hydra's basic sweeper makes it,
through Hydra's public override parser."""

from __future__ import annotations

import pytest

from sweeper.core import expand, run_names
from trainer.contract import ConfigError


def test_product_in_order_and_a_key_given_twice_takes_the_last_values():
    # A preset's hydra.sweeper.params come first, the command line after: the command line
    # wins, in the preset's position (Hydra's BasicSweeper does the same).
    jobs = expand(["model=a,b", "seed=0", "optim=x,y", "model=c"], None)
    assert jobs == [["model=c", "seed=0", "optim=x"], ["model=c", "seed=0", "optim=y"]]
    assert run_names(jobs) == ["optim=x", "optim=y"]


def test_choice_and_range_are_lists_intervals_are_refused():
    assert expand(["seed=range(0,3)"], None) == [["seed=0"], ["seed=1"], ["seed=2"]]
    assert expand(["seed=choice(4,5)"], None) == [["seed=4"], ["seed=5"]]
    with pytest.raises(ConfigError, match="lists of values"):
        expand(["optim.lr=interval(0.1,1)"], None)
