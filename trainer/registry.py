"""A registry per config group: name -> (typed config class, builder).

Hydra composes configs by name; the trainer builds objects by the same name. Keeping both in
one table means adding an option is one decorator, and an unknown name fails with the list of
valid choices instead of falling through an if/elif chain. An option's name is written once,
as its config class's `name` default, which is also its key here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from omegaconf import MISSING

from trainer.contract import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    config_cls: type
    build: T


class Registry(Generic[T]):
    def __init__(self, group: str):
        self.group = group
        self._entries: dict[str, Entry[T]] = {}

    def register(self, config_cls: type) -> Callable[[T], T]:
        """Register `build` as the option named by `config_cls.name`'s default."""
        name = config_cls.name
        if name == MISSING:  # a base class, or an option that forgot to name itself
            raise ValueError(f"{config_cls.__name__} has no `name` default: not a {self.group}")

        def deco(build: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.group}={name} is registered twice")
            self._entries[name] = Entry(config_cls, build)
            return build

        return deco

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __getitem__(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.group}={name!r}; valid choices: {', '.join(self.names())}"
            ) from None

    def build(self, cfg: Any, *args: Any, **kwargs: Any) -> Any:
        return self[cfg.name].build(cfg, *args, **kwargs)


def check(cond: bool, field: str, value: Any, why: str) -> None:
    """Raise a ConfigError (a ValueError Hydra prints without a traceback) that names the
    field, the bad value and what is allowed."""
    if not cond:
        raise ConfigError(f"{field}={value!r} is invalid: {why}")


def check_choice(field: str, value: Any, choices: list[str] | tuple[str, ...]) -> None:
    check(value in choices, field, value, f"valid choices: {', '.join(map(str, choices))}")
