"""What each parameter is, declared by the module that owns it: the one source of its
initialisation, its weight decay and its optimizer kind (nanoGPT's `configure_optimizers`,
declared per family instead of inferred from module names or tensor shapes).

A module yields `Declared(param, role, rows)` from `param_roles()` for the parameters it
creates (rows: a slice of a fused weight, so each projection of a fused QKV keeps its own
role and init) and delegates to the modules it contains. `param_kinds` checks that every
parameter of a model is declared, every row exactly once, so a new family cannot silently
get the wrong init or optimizer grouping: building it fails and names what is missing.
"""

from __future__ import annotations

import enum
from typing import Iterator, NamedTuple

from torch import nn


class Role(enum.Enum):
    EMBEDDING = "embedding"  # token/position tables, an untied head: N(0, 0.02)
    HIDDEN = "hidden"  # matrices that read the residual stream: N(0, 0.02)
    OUTPUT = "output"  # matrices that write into it: GPT-2's N(0, 0.02 / sqrt(2L))
    LOGIT = "logit"  # matrices that only form attention logits (q, k)
    MAP = "map"  # learned maps over positions: the family initialises them
    VECTOR = "vector"  # gains, scales, offsets, gates: their module initialises them
    BIAS = "bias"  # additive biases: zeros

    @property
    def decayed(self) -> bool:
        """Decoupled weight decay shrinks weights, not gains, gates or biases (GPT-2/nanoGPT)."""
        return self not in (Role.VECTOR, Role.BIAS)

    @property
    def hidden_matrix(self) -> bool:
        """What Muon orthogonalises (Jordan et al. 2024): the matrices inside the blocks;
        embeddings, head, maps over positions and vectors take AdamW."""
        return self in (Role.HIDDEN, Role.OUTPUT, Role.LOGIT)


class Declared(NamedTuple):
    param: nn.Parameter
    role: Role
    rows: slice = slice(None)

    def tensor(self):
        """The declared rows, a view that initialisation writes through."""
        return self.param[self.rows]


class Kind(NamedTuple):
    """What an optimizer needs to know of a parameter."""

    decayed: bool
    hidden_matrix: bool


Declarations = Iterator[Declared]


def linear(layer: nn.Linear, *roles: tuple[Role, int] | Role) -> Declarations:
    """A linear map's weight in one role, or fused: (role, rows) blocks stacked in order, e.g.
    linear(qkv, (Role.LOGIT, d), (Role.LOGIT, d), (Role.HIDDEN, d)); its bias zeroed."""
    start = 0
    for role in roles:
        role, n = role if isinstance(role, tuple) else (role, layer.out_features)
        yield Declared(layer.weight, role, slice(start, start + n))
        start += n
    yield from bias(layer)


def norm(layer: nn.LayerNorm | None) -> Declarations:
    if layer is not None and layer.weight is not None:
        yield Declared(layer.weight, Role.VECTOR)
    yield from bias(layer)


def bias(layer: nn.Module | None) -> Declarations:
    if layer is not None and getattr(layer, "bias", None) is not None:
        yield Declared(layer.bias, Role.BIAS)


def declarations(model: nn.Module) -> list[Declared]:
    """model.param_roles(), checked: every parameter declared, each row exactly once."""
    declared = list(model.param_roles())
    names = {p: name for name, p in model.named_parameters()}
    rows: dict[nn.Parameter, list[int]] = {p: [] for p in names}
    problems = []
    for d in declared:
        if d.param not in rows:
            problems.append(
                f"a declared {d.role.value} tensor {tuple(d.param.shape)} is not a "
                f"parameter of the model"
            )
            continue
        rows[d.param] += range(*d.rows.indices(len(d.param)))
    for p, seen in rows.items():
        if sorted(seen) != list(range(len(p))):
            why = "has no declared role" if not seen else "has rows declared twice or not at all"
            problems.append(f"{names[p]} {why}")
    if problems:
        raise TypeError(
            f"{type(model).__name__}: every parameter needs exactly one role, "
            f"declared in its module's param_roles() (trainer/models/roles.py): "
            + "; ".join(problems)
        )
    return declared


def param_kinds(model: nn.Module) -> dict[nn.Parameter, Kind]:
    """Each parameter's optimizer kind, in model.parameters() order. The parts of a fused
    weight may differ in role (q/k vs v) but not in kind."""
    kinds: dict[nn.Parameter, Kind] = {}
    for d in declarations(model):
        kind = Kind(d.role.decayed, d.role.hidden_matrix)
        if kinds.setdefault(d.param, kind) != kind:
            raise TypeError(
                f"{type(model).__name__}: the parts of one parameter "
                f"{tuple(d.param.shape)} must share weight decay and optimizer kind"
            )
    order = {p: i for i, p in enumerate(model.parameters())}
    return dict(sorted(kinds.items(), key=lambda kv: order[kv[0]]))
