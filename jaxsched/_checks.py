"""Argument checks shared by every public constructor.

Every check names the public function the user called, the argument and the
value, in one format::

    ValueError: `cosine_decay(decay_steps=...)` must be > 0, got 0.

A primitive checks its own arguments under its own name. An optimizer that
builds primitives does so inside `calling("adamw")`, so the same checks name
the function the user called (and the argument as that function spells it).
Traced values (inside `jit`, `vmap`, `optax.inject_hyperparams`) pass
unchecked; concrete arrays are checked element by element.
"""

from __future__ import annotations

import contextlib
import contextvars
import numbers
from typing import Any, Callable, Iterable, Iterator

import jax
import numpy as np

from jaxsched._numerics import x64 as _x64

# (owner, {primitive argument name: the owner's argument name}) of the public
# function being built, set by `calling`; None outside any.
_CALLER: contextvars.ContextVar[tuple[str, dict[str, str]] | None] = contextvars.ContextVar(
    "jaxsched_caller", default=None)
# The parameter group being built (`adamw(groups={name: group(...)})`), set by `in_group`.
_GROUP: contextvars.ContextVar[str | None] = contextvars.ContextVar("jaxsched_group",
                                                                   default=None)


@contextlib.contextmanager
def calling(owner: str, **renames: str) -> Iterator[None]:
    """Name `owner` in every check made inside (the outermost caller wins).

    `renames` maps a primitive's argument name to the caller's, e.g.
    `calling("momentum", decay="momentum")`.
    """
    token = _CALLER.set((owner, renames)) if _CALLER.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _CALLER.reset(token)


@contextlib.contextmanager
def in_group(name: str | None) -> Iterator[None]:
    """Name the parameter group `name` in every check made inside (None: no group)."""
    token = _GROUP.set(name)
    try:
        yield
    finally:
        _GROUP.reset(token)


def caller(default: str) -> str:
    """The public function being built: the outermost `calling`, else `default`."""
    current = _CALLER.get()
    return default if current is None else current[0]


def where(owner: str, name: str) -> str:
    """"`owner(name=...)`", as the user called it."""
    current = _CALLER.get()
    if current is not None:
        owner, renames = current[0], current[1]
        name = renames.get(name, name)
    group = _GROUP.get()
    if group is not None:
        return f"`{owner}(groups={{{group!r}: group({name}=...)}})`"
    return f"`{owner}({name}=...)`"


_where = where


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
            return np.asarray(np.inf if value > 0 else -np.inf)  # type: ignore[operator]
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


def transformation(owner: str, name: str, value: Any) -> None:
    """Check an argument is an optax GradientTransformation."""
    import optax
    if not isinstance(value, optax.GradientTransformation):
        raise TypeError(f"{where(owner, name)} must be an optax GradientTransformation, "
                        f"got {type(value).__name__} {value!r}.")


def same_length(owner: str, name: str, value: tuple, other: str, length: int) -> None:
    """Check a sequence argument has the length of another."""
    if len(value) != length:
        raise ValueError(f"{where(owner, name)} must have one entry per {other} ({length}), "
                         f"got {len(value)}.")
# The largest finite float32 and the smallest positive normal float32: a
# hyperparameter used in float32 arithmetic must lie within them.
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
INT32_MAX = 2**31 - 1


def count_max() -> int:
    """The largest step count: int32's (2**31 - 1), int64's under `jax_enable_x64`."""
    return 2**63 - 1 if _x64() else INT32_MAX


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
