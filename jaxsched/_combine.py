"""Constant schedules, piecewise constants and interpolation, and joining and shifting
schedules in time."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxsched import _checks
from jaxsched._numerics import (INT32_MAX, x64, as_count, as_float, as_step, float_dtype, int_dtype,
                                is_integer)
from jaxsched._schedule import Schedule, as_schedule, schedule_class, static


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
        if top <= INT32_MAX or x64():
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


@schedule_class("piecewise_interpolate")
class PiecewiseInterpolate(Schedule):
    """Interpolate between accumulated scales at step boundaries (optax's rule).

    v_0 = init_value;  v_i = v_{i-1} * scales[i-1]     (the scales accumulate)
    b_0 = 0;  b_i = boundaries[i-1]
    for b_i <= t < b_{i+1}:  p = (t - b_i) / max(b_{i+1} - b_i, 1)
      linear: v_i + (v_{i+1} - v_i) * p
      cosine: v_i + (v_{i+1} - v_i) * (1 - cos(pi p)) / 2
    for t >= b_last:  v_last

    Same values as optax's `piecewise_interpolate_schedule(interpolate_type,
    init_value, dict(zip(boundaries, scales)))`.

    Args:
      init_value: value at step 0, >= 0.
      boundaries: strictly increasing steps, >= 0.
      scales: one factor per boundary, each >= 0.
      interpolate_type: "linear" or "cosine".

    Example:
        >>> import jaxsched as js
        >>> s = js.piecewise_interpolate(1.0, [4, 8], [0.1, 0.1])
        >>> [round(float(s(t)), 6) for t in (0, 2, 4, 6, 8, 10)]
        [1.0, 0.55, 0.1, 0.055, 0.01, 0.01]
    """

    init_value: Any
    boundaries: tuple
    scales: tuple
    interpolate_type: str = static(default="linear")

    def __post_init__(self):
        n = self.name
        object.__setattr__(self, "boundaries", _checks.sequence(n, "boundaries", self.boundaries))
        object.__setattr__(self, "scales", _checks.sequence(n, "scales", self.scales))
        _checks.number(n, "init_value", self.init_value, lo=0)
        _checks.increasing(n, "boundaries", self.boundaries)
        for v in self.scales:
            _checks.number(n, "scales", v, lo=0)
        if len(self.scales) != len(self.boundaries):
            raise ValueError(f"`{n}(scales=...)` must have len(boundaries) = "
                             f"{len(self.boundaries)} entries, got {len(self.scales)}.")
        _checks.choice(n, "interpolate_type", self.interpolate_type, ("linear", "cosine"))

    def _at(self, t):
        values = jnp.cumprod(jnp.stack([as_float(self.init_value)]
                                       + [as_float(v) for v in self.scales]))
        if not self.boundaries:
            return jnp.broadcast_to(values[0], t.shape)
        b = _boundary_array((0,) + self.boundaries, t)
        tt = t if jnp.issubdtype(b.dtype, jnp.integer) else t.astype(b.dtype)
        i = jnp.searchsorted(b, tt, side="right") - 1  # last boundary <= t
        last = i >= len(self.boundaries)
        j = jnp.minimum(i, len(self.boundaries) - 1)
        start, stop = b[j], b[j + 1]
        pct = (tt - start).astype(float_dtype()) / jnp.maximum(stop - start, 1).astype(float_dtype())
        lo, hi = values[j], values[j + 1]
        if self.interpolate_type == "cosine":
            pct = (1 - jnp.cos(jnp.pi * pct)) / 2
        return jnp.where(last, values[-1], lo + (hi - lo) * pct)


@schedule_class("shift")
class Shift(Schedule):
    """Run `schedule` `offset` steps ahead: `schedule(max(t + offset, 0))`.

    A positive offset resumes a schedule part-way (a run restarted at step 0
    that should continue at `offset`); a negative one delays it, holding
    `schedule(0)` for the first `-offset` steps. Integer steps saturate at the
    largest integer, never wrap.

    Args:
      schedule: any schedule (a callable of the step).
      offset: an int, steps to add.

    Example:
        >>> import jaxsched as js
        >>> s = js.shift(js.cosine_decay(1.0, 100), 50)
        >>> round(float(s(0)), 6)
        0.5
    """

    schedule: Any
    offset: Any

    def __post_init__(self):
        n = self.name
        object.__setattr__(self, "schedule", as_schedule(n, "schedule", self.schedule))
        _checks.integer(n, "offset", self.offset, lo=-(2**63))

    def _at(self, t):
        off = as_count(self.offset)
        if jnp.issubdtype(t.dtype, jnp.integer) and jnp.issubdtype(off.dtype, jnp.integer):
            top = jnp.iinfo(t.dtype).max
            moved = jnp.where(t > top - jnp.maximum(off, 0), top, t + off)
        else:
            moved = t.astype(float_dtype()) + off.astype(float_dtype())
        return self.schedule(as_step(moved))


constant = Constant
piecewise_constant = PiecewiseConstant
join = Join
piecewise_interpolate = PiecewiseInterpolate
shift = Shift
