"""Constant schedules, piecewise constants, and joining schedules in time."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsched import _checks
from jaxsched._numerics import (INT32_MAX, as_count, as_float, as_step, float_dtype, int_dtype,
                                is_integer)
from jaxsched._schedule import Schedule, as_schedule, schedule_class


@schedule_class("constant")
class Constant(Schedule):
    """A constant learning rate: `value` at every step.

    Args:
      value: the learning rate, >= 0.

    Example:
        >>> import jaxsched as js
        >>> float(js.constant(0.5)(10**9))
        0.5
    """

    value: Any

    def __post_init__(self):
        _checks.number(self.name, "value", self.value, lo=0)
        _checks.float32_range(self.name, "value", self.value)

    def _at(self, t):
        return jnp.broadcast_to(as_float(self.value), t.shape)


def _boundary_array(boundaries: tuple, t) -> Any:
    # as_count: a Python int beyond int32 without x64 is a float, not an overflow.
    if all(is_integer(b) for b in boundaries) and is_integer(t) and all(
            jnp.issubdtype(as_count(b).dtype, jnp.integer) for b in boundaries):
        return jnp.asarray(boundaries, dtype=int_dtype())
    return jnp.asarray(boundaries, dtype=float_dtype())


def _table(entries: tuple, *, boundaries: bool) -> Any:
    """Concrete scalar entries as one NumPy array; the tuple unchanged otherwise.

    Boundaries that are all integers (and fit the integer dtype) give an int64
    table compared exactly with integer steps; other boundaries and the values
    give a float64 table (rounded to float32 where the schedule computes in
    float32, as each scalar was).
    """
    if any(_checks.is_traced(x) or np.ndim(x) != 0 for x in entries):
        return entries
    if boundaries and all(is_integer(x) for x in entries):
        top = max((int(x) for x in entries), default=0)
        if top <= INT32_MAX or jax.config.jax_enable_x64:
            return np.asarray([int(x) for x in entries], np.int64)
    return np.asarray([float(x) for x in entries], np.float64)


@schedule_class("piecewise_constant")
class PiecewiseConstant(Schedule):
    """Piecewise constant values between step boundaries (TensorFlow's rule).

    value = values[0]      if t <= boundaries[0]
            values[i]      if boundaries[i-1] < t <= boundaries[i]
            values[-1]     if t > boundaries[-1]

    The boundary step belongs to the earlier piece, as in
    `tf.compat.v1.train.piecewise_constant`; optax's
    `piecewise_constant_schedule` switches at the boundary itself. Lookup is a
    binary search, O(log n) in the number of boundaries. Concrete boundaries
    and values are kept as two 1-D arrays (two pytree leaves), so building,
    compiling and passing the schedule to `jax.jit` do not grow with their
    number beyond the tables' size; whole-number boundaries stay integers and
    are compared exactly with integer steps.

    Args:
      boundaries: strictly increasing steps, >= 0.
      values: one more value than boundaries, each >= 0.

    Example:
        >>> import jaxsched as js
        >>> s = js.piecewise_constant([10, 20], [1.0, 0.5, 0.1])
        >>> [float(s(t)) for t in (10, 11, 21)]
        [1.0, 0.5, 0.10000000149011612]
    """

    boundaries: Any
    values: Any

    def __post_init__(self):
        n = self.name
        object.__setattr__(self, "boundaries", _checks.sequence(n, "boundaries", self.boundaries))
        object.__setattr__(self, "values", _checks.sequence(n, "values", self.values))
        _checks.increasing(n, "boundaries", self.boundaries)
        for v in self.values:
            _checks.number(n, "values", v, lo=0)
            _checks.float32_range(n, "values", v)
        for v in self.boundaries:
            _checks.float32_range(n, "boundaries", v)
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"`{n}(values=...)` must have len(boundaries) + 1 = "
                f"{len(self.boundaries) + 1} entries, got {len(self.values)}.")
        # Concrete scalars become two array leaves (the tables), so that tracing,
        # compiling and passing the schedule to `jit` cost the same for 10 or
        # 10,000 boundaries. Traced entries (a sweep over one value) stay a tuple.
        object.__setattr__(self, "boundaries", _table(self.boundaries, boundaries=True))
        object.__setattr__(self, "values", _table(self.values, boundaries=False))

    def _at(self, t):
        if isinstance(self.values, tuple):
            values = jnp.stack([as_float(v) for v in self.values])
        else:
            values = as_float(self.values)
        if not len(self.boundaries):
            return jnp.broadcast_to(values[0], t.shape)
        if isinstance(self.boundaries, tuple):
            b = _boundary_array(self.boundaries, t)
        elif jnp.issubdtype(self.boundaries.dtype, jnp.integer) and is_integer(t):
            b = jnp.asarray(self.boundaries, int_dtype())  # exact integer comparison
        else:
            b = as_float(self.boundaries)
        tt = t if jnp.issubdtype(b.dtype, jnp.integer) else t.astype(b.dtype)
        index = jnp.searchsorted(b, tt, side="left")
        return values[index]


@schedule_class("join")
class Join(Schedule):
    """Run `schedules` one after another, each restarting its own step at 0.

    schedules[0] for t < boundaries[0], at step t
    schedules[i] for boundaries[i-1] <= t < boundaries[i], at step t - boundaries[i-1]

    Same semantics as optax's `join_schedules`.

    Args:
      schedules: a list of schedules (any callables of the step).
      boundaries: len(schedules) - 1 strictly increasing steps, >= 0.

    Example:
        >>> import jaxsched as js
        >>> s = js.join([js.constant(1.0), js.cosine_decay(0.5, 10)], [5])
        >>> [float(s(t)) for t in (4, 5)]
        [1.0, 0.5]
    """

    schedules: tuple
    boundaries: tuple

    def __post_init__(self):
        n = self.name
        scheds = _checks.sequence(n, "schedules", self.schedules)
        object.__setattr__(self, "schedules", tuple(as_schedule(n, "schedules", s) for s in scheds))
        object.__setattr__(self, "boundaries", _checks.sequence(n, "boundaries", self.boundaries))
        if not self.schedules:
            raise ValueError(f"`{n}(schedules=...)` must not be empty, got [].")
        _checks.increasing(n, "boundaries", self.boundaries)
        for v in self.boundaries:
            _checks.float32_range(n, "boundaries", v)
        if len(self.boundaries) != len(self.schedules) - 1:
            raise ValueError(
                f"`{n}(boundaries=...)` must have len(schedules) - 1 = "
                f"{len(self.schedules) - 1} entries, got {len(self.boundaries)}.")

    def _at(self, t):
        result = self.schedules[0](t)
        if not self.boundaries:
            return result
        b = _boundary_array(self.boundaries, t)
        tt = t if jnp.issubdtype(b.dtype, jnp.integer) else t.astype(b.dtype)
        for k, schedule in enumerate(self.schedules[1:]):
            start = b[k]
            later = schedule(as_step(tt - start))
            result = jnp.where(tt >= start, later, result)
        return result


constant = Constant
piecewise_constant = PiecewiseConstant
join = Join
