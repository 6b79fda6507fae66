"""Numerics shared by schedules and transformations: dtypes, steps and counters.

Schedules and hyperparameter arithmetic run in float32 (float64 under
`jax_enable_x64`) whatever the parameter dtype. Steps are exact integers
where they can be; counters are int32 and saturate at `INT32_MAX`, never
wrap.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

INT32_MAX = 2**31 - 1


def x64() -> bool:
    """Whether `jax_enable_x64` is on."""
    return bool(jax.config.read("jax_enable_x64"))


def float_dtype() -> jnp.dtype:
    """float64 when `jax_enable_x64` is on, float32 otherwise."""
    return jnp.dtype(jnp.float64 if x64() else jnp.float32)


def int_dtype() -> jnp.dtype:
    return jnp.dtype(jnp.int64 if x64() else jnp.int32)


def as_float(x: Any) -> Array:
    """A hyperparameter as an array of the schedule float dtype."""
    return jnp.asarray(x, dtype=float_dtype())


def is_integer(x: Any) -> bool:
    """Whether a value (step or hyperparameter) has an integer dtype."""
    if isinstance(x, bool):
        return False
    if isinstance(x, int):
        return True
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jnp.integer)


def as_count(x: Any) -> Array:
    """An integer-valued hyperparameter (a step count) in its exact dtype.

    Python and array ints become the default integer dtype so they can be
    compared with integer steps exactly; floats become the float dtype.
    """
    if is_integer(x):
        if isinstance(x, int) and not x64() and x > INT32_MAX:
            return as_float(x)
        return jnp.asarray(x, dtype=int_dtype())
    return as_float(x)


def as_step(step: Any) -> Array:
    """Normalise a step: integers stay exact integers, floats use the float dtype.

    Negative steps count as step 0. A Python int or int64 array beyond int32
    without x64 becomes a float (rounded to float32), never a wrapped int.
    """
    if isinstance(step, bool) or (hasattr(step, "dtype") and step.dtype == bool):
        raise TypeError(f"A schedule's step must be a number, got {step!r}.")
    if not isinstance(step, (jax.Array, jax.core.Tracer)):
        arr = np.asarray(step)
        if arr.dtype.kind in "iu" and not x64():
            if arr.size and (arr.max() > INT32_MAX or arr.min() < -INT32_MAX):
                arr = arr.astype(np.float64)
        elif arr.dtype.kind not in "iuf" and arr.dtype != jnp.bfloat16:
            raise TypeError(f"A schedule's step must be a number, got {step!r}.")
        step = arr
    step = jnp.asarray(step)
    if jnp.issubdtype(step.dtype, jnp.integer):
        idt = int_dtype()
        if jnp.issubdtype(step.dtype, jnp.unsignedinteger):
            step = jnp.minimum(step, jnp.iinfo(idt).max)
        return jnp.maximum(step.astype(idt), 0)
    return jnp.maximum(step.astype(float_dtype()), 0)


def split_period(t: Array, period: Any) -> tuple[Array, Array]:
    """Return `(k, r)` with `t = k * period + r`, `0 <= r < period`.

    Exact integer arithmetic when both `t` and `period` are integers, so a
    periodic schedule stays exact at step 2**31 - 1 in float32; float floor
    division otherwise. `k` and `r` share the dtype of the arithmetic.
    """
    if is_integer(t) and is_integer(period):
        p = as_count(period)
        if jnp.issubdtype(p.dtype, jnp.integer):
            p = jnp.maximum(p, 1)
            k = t // p
            return k, t - k * p
    tf = t.astype(float_dtype())
    p = as_float(period)
    k = jnp.floor(tf / p)
    # Rounding at large steps can put `tf - k * p` just outside [0, p). Clamp
    # with `where`, not `clip`: at r == 0 exactly, `clip` would send half the
    # derivative to its bound.
    r = tf - k * p
    return k, jnp.where(r < 0, 0, jnp.where(r > p, p, r))


def ratio(num: Array, den: Any) -> Array:
    """`num / den` in the float dtype (after any exact integer subtraction)."""
    return num.astype(float_dtype()) / as_float(den)


def zero_count() -> Array:
    """An int32 update counter at 0."""
    return jnp.zeros([], jnp.int32)


def next_count(count: Array) -> Array:
    """count + 1, saturating at 2**31 - 1 (never wraps)."""
    return jnp.where(count < INT32_MAX, count + 1, count).astype(jnp.int32)


def computed_after(value: Array, earlier: Array) -> Array:
    """`value`, made to depend on `earlier`: value * 1, each 1 read from earlier's bits.

    A data dependency that orders XLA's work where the formula does not:
    - in place: XLA updates a donated buffer in place only when every reader
      of its old value runs before the writer, and otherwise copies it first
      (a full read and write). Passing the new value of a reader as `earlier`
      makes the writer of `value` run second, and the copy goes (ADOPT);
    - for the cache: a loop that must come after a reduction reads that
      reduction's scalar here (Prodigy's moments after the sum of |s|).
    `earlier` has value's shape (or is a scalar) and is read element by
    element, so on a sharded buffer each device reads its own shard (its
    first element alone would need a collective). Exact for every value
    (x * 1 == x); if XLA ever folds the 1 away, only the order is lost.
    """
    bits = jax.lax.bitcast_convert_type(jnp.asarray(earlier).astype(jnp.float32), jnp.uint32)
    return value * (1 + ((bits >> 31) >> 1)).astype(value.dtype)
