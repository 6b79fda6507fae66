"""Hyperparameters that may be numbers, arrays or schedules, and reading them back.

Every jaxsched transformation resolves its hyperparameters once per update:
a number or array is used as is, a schedule (any callable of the step) is
called with the transformation's update count, so update k (from 0) uses
`schedule(k)`. The values used are recorded in the state's `hyperparams`
dict, which `hyperparams(opt_state)` collects for logging.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Union

import jax
import jax.numpy as jnp

from jaxsched import _checks
from jaxsched._numerics import float_dtype, next_count, zero_count

Array = jax.Array
Hyper = Union[float, Array, Callable[[Array], Array]]

def check(owner: str, name: str, value: Any, **bounds: Any) -> None:
    """Check a hyperparameter: a schedule passes, a number is range-checked."""
    if callable(value) and not isinstance(value, (jax.Array, jax.core.Tracer)):
        return
    _checks.number(owner, name, value, **bounds)


def resolve(value: Hyper, count: Array) -> Array:
    """The hyperparameter's value at update `count`, in the float dtype."""
    if callable(value) and not isinstance(value, (jax.Array, jax.core.Tracer)):
        value = value(count)
    return jnp.asarray(value, dtype=float_dtype())


def resolve_all(hypers: Mapping[str, Hyper], count: Array) -> dict[str, Array]:
    return {k: resolve(v, count) for k, v in hypers.items()}


def _snake(name: str) -> str:
    name = name.removesuffix("State")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def hyperparams(opt_state: Any) -> dict[str, Array]:
    """The hyperparameter values used by the most recent update, as a flat dict.

    Collects the `hyperparams` of every jaxsched transformation in the state
    (also nested in `optax.chain`, `optax.MultiSteps` or
    `optax.inject_hyperparams`, whose injected values are included). Keys are
    the hyperparameter names (`learning_rate`, `b1`, `global_norm`, ...); a
    name used by several transformations is prefixed by the transformation
    (`trace/decay`) and, if still ambiguous, numbered (`scale/factor#1`).

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.adamw(js.cosine_decay(1e-3, 100))
        >>> state = opt.init({"w": jnp.ones(3)})
        >>> sorted(js.hyperparams(state))
        ['b1', 'b2', 'eps', 'eps_root', 'learning_rate', 'weight_decay']
    """
    found: list[tuple[str, str, Array]] = []

    def is_state(x: Any) -> bool:
        return isinstance(x, tuple) and hasattr(x, "_fields") and "hyperparams" in x._fields

    def visit(x: Any) -> None:
        if is_state(x):
            owner = _snake(type(x).__name__)
            for k, v in x.hyperparams.items():
                if isinstance(v, (jax.Array, float, int)) or hasattr(v, "shape"):
                    found.append((owner, k, v))
            for name, child in zip(x._fields, x):
                if name != "hyperparams":
                    visit(child)
        elif isinstance(x, (list, tuple)):
            for child in x:
                visit(child)
        elif isinstance(x, dict):
            for child in x.values():
                visit(child)

    visit(opt_state)
    counts: dict[str, int] = {}
    for _, k, _ in found:
        counts[k] = counts.get(k, 0) + 1
    out: dict[str, Array] = {}
    for owner, k, v in found:
        key = k if counts[k] == 1 else f"{owner}/{k}"
        base, n = key, 1
        while key in out:
            key = f"{base}#{n}"
            n += 1
        out[key] = v
    return out
