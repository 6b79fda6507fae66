"""Schedule arithmetic: products and sums of schedules and numbers.

`s * c`, `c * s`, `s1 * s2`, `s + c` and `s1 + s2` build a `product` or an
`add` schedule, which is a pytree like every other schedule: its numbers are
leaves (so `jax.vmap` can sweep a factor), it prints as the jaxsched call,
round-trips through a config and compares equal to an equal expression.
"""

from __future__ import annotations

import functools
import numbers
import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsched import _checks
from jaxsched._numerics import as_float
from jaxsched._schedule import Schedule, schedule_class


def _is_number(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, numbers.Real):
        return True
    if isinstance(value, (jax.Array, np.ndarray, np.generic, jax.core.Tracer)):
        dtype = value.dtype
        return np.ndim(value) == 0 and (jnp.issubdtype(dtype, jnp.integer)
                                        or jnp.issubdtype(dtype, jnp.floating))
    return False


def _terms(owner: str, name: str, values: Any) -> tuple:
    """Check every term is a schedule or a finite real scalar."""
    values = _checks.sequence(owner, name, values)
    if not values:
        raise ValueError(f"`{owner}({name}=...)` must not be empty, got [].")
    for v in values:
        if isinstance(v, Schedule):
            continue
        if not _is_number(v):
            raise TypeError(f"`{owner}({name}=...)` must hold schedules and numbers, "
                            f"got {type(v).__name__} {v!r}.")
        _checks.number(owner, name, v)
    return values


def _value(term: Any, t: Any) -> jax.Array:
    if isinstance(term, Schedule):
        return term(t)
    return as_float(term)


@schedule_class("product")
class Product(Schedule):
    """The product of schedules and numbers, step by step.

    value = f_0(t) * f_1(t) * ...  (f_i = factors[i])     (a number is the same at every step)

    `s * c`, `c * s` and `s1 * s2` build this; products of products are
    flattened. Evaluating it costs the sum of its factors.

    Args:
      factors: a non-empty list of schedules and finite real numbers.

    Raises:
      TypeError: a factor is neither a schedule nor a real number.

    Example:
        >>> import jaxsched as js
        >>> s = js.cosine_decay(1.0, 100) * 0.5
        >>> s
        product(factors=(cosine_decay(learning_rate=1.0, decay_steps=100, alpha=0.0), 0.5))
        >>> float(s(0)), s == js.product([js.cosine_decay(1.0, 100), 0.5])
        (0.5, True)
    """

    factors: tuple

    def __post_init__(self):
        object.__setattr__(self, "factors", _terms(self.name, "factors", self.factors))

    def _at(self, t):
        return _fold(operator.mul, self.factors, t)


@schedule_class("add")
class Add(Schedule):
    """The sum of schedules and numbers, step by step.

    value = s_0(t) + s_1(t) + ...  (s_i = terms[i])     (a number is the same at every step)

    `s + c`, `c + s` and `s1 + s2` build this; sums of sums are flattened.

    Args:
      terms: a non-empty list of schedules and finite real numbers.

    Raises:
      TypeError: a term is neither a schedule nor a real number.

    Example:
        >>> import jaxsched as js
        >>> s = js.cosine_decay(0.9, 100) + 0.1
        >>> [round(float(s(t)), 6) for t in (0, 100)]
        [1.0, 0.1]
    """

    terms: tuple

    def __post_init__(self):
        object.__setattr__(self, "terms", _terms(self.name, "terms", self.terms))

    def _at(self, t):
        return _fold(operator.add, self.terms, t)


def _fold(op: Any, parts: tuple, t: Any) -> Any:
    """`op` over the parts' values at `t`, left to right, in `t`'s shape."""
    return jnp.broadcast_to(functools.reduce(op, (_value(p, t) for p in parts)), t.shape)


def _flat(cls: type, field: str, a: Any, b: Any) -> tuple:
    out: list = []
    for x in (a, b):
        out.extend(getattr(x, field) if type(x) is cls else (x,))
    return tuple(out)


def _operand(op: str, other: Any) -> None:
    if not (isinstance(other, Schedule) or _is_number(other)):
        raise TypeError(f"A schedule can only be combined with `{op}` with a number or a "
                        f"schedule, got {type(other).__name__} {other!r}.")


def multiply(a: Any, b: Any) -> Product:
    """`a * b` for a schedule and a number or two schedules."""
    _operand("*", b if isinstance(a, Schedule) else a)
    return Product(_flat(Product, "factors", a, b))


def add_terms(a: Any, b: Any) -> Add:
    """`a + b` for a schedule and a number or two schedules."""
    _operand("+", b if isinstance(a, Schedule) else a)
    return Add(_flat(Add, "terms", a, b))


product = Product
add = Add
