"""Argument checks shared by every public constructor.

Every check names the public function the user called, the argument and the
value, in one format::

    ValueError: `cosine_decay(decay_steps=...)` must be > 0, got 0.

Traced values (inside `jit`, `vmap`, `optax.inject_hyperparams`) pass
unchecked; concrete arrays are checked element by element.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Iterable

import jax
import numpy as np


def _where(owner: str, name: str) -> str:
    return f"`{owner}({name}=...)`"


def _show(value: Any) -> str:
    if isinstance(value, (np.ndarray, jax.Array)) and np.ndim(value) > 0:
        return np.array2string(np.asarray(value), threshold=8)
    if isinstance(value, (np.generic, jax.Array)):
        return repr(np.asarray(value).item())
    return repr(value)


def is_traced(value: Any) -> bool:
    """True for a JAX tracer (a value known only inside a transformation)."""
    return isinstance(value, jax.core.Tracer)


def _numeric_array(owner: str, name: str, value: Any) -> np.ndarray | None:
    """Concrete values as a float64 array; None for a tracer; TypeError else."""
    if is_traced(value):
        return None
    if isinstance(value, bool) or isinstance(value, np.bool_):
        raise TypeError(f"{_where(owner, name)} must be a number, got {value!r}.")
    if isinstance(value, numbers.Real):
        try:
            return np.asarray(float(value))
        except OverflowError:  # an int beyond float64: infinite for the range checks
            return np.asarray(np.inf if value > 0 else -np.inf)
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        dtype = np.asarray(value).dtype if not isinstance(value, jax.Array) else value.dtype
        if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)
                or dtype == jax.numpy.bfloat16):
            raise TypeError(
                f"{_where(owner, name)} must be a number, got an array of dtype {dtype}.")
        return np.asarray(value, dtype=np.float64)
    raise TypeError(
        f"{_where(owner, name)} must be a number, got {type(value).__name__} {value!r}.")


def number(owner: str, name: str, value: Any, *, lo: float | None = None,
           hi: float | None = None, lo_open: bool = False,
           hi_open: bool = False) -> None:
    """Check a real number (or every element of an array) lies in a range.

    NaN is always rejected; infinities only where the range excludes them.
    """
    arr = _numeric_array(owner, name, value)
    if arr is None:
        return
    where = _where(owner, name)
    if np.isnan(arr).any():
        raise ValueError(f"{where} must not be NaN, got {_show(value)}.")
    if lo is not None:
        bad = arr <= lo if lo_open else arr < lo
        if bad.any():
            op = ">" if lo_open else ">="
            raise ValueError(f"{where} must be {op} {lo:g}, got {_show(value)}.")
    if hi is not None:
        bad = arr >= hi if hi_open else arr > hi
        if bad.any():
            op = "<" if hi_open else "<="
            raise ValueError(f"{where} must be {op} {hi:g}, got {_show(value)}.")
    if lo is None or hi is None:
        if np.isinf(arr).any():
            raise ValueError(f"{where} must be finite, got {_show(value)}.")


def integer(owner: str, name: str, value: Any, *, lo: int = 0,
            hi: int | None = None) -> None:
    """Check an integer count (a Python or NumPy int, or an integer array) >= lo.

    With `hi`, also <= hi (`INT32_MAX` for a count kept in int32).
    """
    if is_traced(value):
        return
    where = _where(owner, name)
    is_int = (isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))) or (
        isinstance(value, (np.ndarray, jax.Array)) and np.issubdtype(value.dtype, np.integer))
    if not is_int:
        raise TypeError(f"{where} must be an integer, got {type(value).__name__} {value!r}.")
    arr = np.asarray(value) if not isinstance(value, numbers.Integral) else None
    if (value < lo) if arr is None else (arr < lo).any():
        raise ValueError(f"{where} must be >= {lo}, got {_show(value)}.")
    if hi is not None and ((value > hi) if arr is None else (arr > hi).any()):
        raise ValueError(f"{where} must be <= {hi}, got {_show(value)}.")


def choice(owner: str, name: str, value: Any, choices: Iterable[str]) -> None:
    """Check a string flag is one of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{_where(owner, name)} must be one of {listed}, got {value!r}.")


def boolean(owner: str, name: str, value: Any) -> None:
    """Check a structural flag is a Python bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{_where(owner, name)} must be a bool, got {value!r}.")


def callable_(owner: str, name: str, value: Any) -> None:
    """Check a schedule-like argument is callable."""
    if not callable(value):
        raise TypeError(
            f"{_where(owner, name)} must be a schedule (a callable of the step), "
            f"got {type(value).__name__} {value!r}.")


def sequence(owner: str, name: str, value: Any) -> tuple:
    """Return a list/tuple/1-D array argument as a tuple, TypeError otherwise."""
    if isinstance(value, (list, tuple)):
        return tuple(value)
    if isinstance(value, (np.ndarray, jax.Array)) and np.ndim(value) == 1:
        return tuple(np.asarray(value).tolist())
    raise TypeError(f"{_where(owner, name)} must be a list or tuple, got {value!r}.")


def increasing(owner: str, name: str, values: tuple, *, lo: float = 0) -> None:
    """Check concrete boundaries are numbers >= lo, strictly increasing."""
    for v in values:
        _numeric_array(owner, name, v)
    if any(is_traced(v) for v in values):
        return
    arr = np.asarray(values, dtype=np.float64)
    where = _where(owner, name)
    if np.isnan(arr).any() or np.isinf(arr).any():
        raise ValueError(f"{where} must be finite, got {list(values)!r}.")
    if (arr < lo).any():
        raise ValueError(f"{where} must be >= {lo:g}, got {list(values)!r}.")
    if (np.diff(arr) <= 0).any():
        raise ValueError(f"{where} must be strictly increasing (sorted, no duplicates), "
                         f"got {list(values)!r}.")


def custom(owner: str, name: str, value: Any, condition: Callable[[Any], bool],
           requirement: str) -> None:
    """Check a concrete value against a condition described by `requirement`."""
    if is_traced(value):
        return
    if not condition(value):
        raise ValueError(f"{_where(owner, name)} must {requirement}, got {_show(value)}.")


# The largest finite float32 and the smallest positive normal float32: a
# hyperparameter used in float32 arithmetic must lie within them.
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
INT32_MAX = 2**31 - 1


def count_max() -> int:
    """The largest step count: int32's (2**31 - 1), int64's under `jax_enable_x64`."""
    return 2**63 - 1 if jax.config.jax_enable_x64 else INT32_MAX


def float32_range(owner: str, name: str, value: Any, *, divisor: bool = False) -> None:
    """Check a number (or every element) is representable in float32.

    `|value| <= FLOAT32_MAX` (3.40282e+38); with `divisor` (a value that
    divides, such as a step count), a non-zero value must also be >=
    FLOAT32_TINY (1.17549e-38) in magnitude so that its reciprocal is finite.
    Run it after `number` (which refuses NaN and the wrong kind).
    """
    arr = _numeric_array(owner, name, value)
    if arr is None:
        return
    where = _where(owner, name)
    with np.errstate(invalid="ignore"):
        mag = np.abs(arr)
        if (mag > FLOAT32_MAX).any():
            raise ValueError(f"{where} must be <= {FLOAT32_MAX:g} in magnitude (float32), "
                             f"got {_show(value)}.")
        if divisor and ((mag > 0) & (mag < FLOAT32_TINY)).any():
            raise ValueError(f"{where} must be >= {FLOAT32_TINY:g} (its reciprocal must be "
                             f"finite in float32), got {_show(value)}.")


def seed(owner: str, name: str, value: Any) -> None:
    """Check an integer PRNG seed fits 64 bits: in [-2**63, 2**64 - 1]."""
    integer(owner, name, value, lo=-(2**63), hi=2**64 - 1)
