"""The schedule base class: a frozen dataclass that is a pytree.

A schedule is an immutable object `s` with `s(step) -> learning rate`. Its
numeric hyperparameters are pytree leaves and its structural flags
(`staircase`, `cycle`, modes) are static, so a schedule can be passed into
`jax.jit` as an argument (schedules of the same kind with other values reuse
the compiled program), swept with `jax.vmap`, printed, pickled, compared, and
saved as a JSON-able config.

Subclasses are declared with :func:`schedule_class`; their `__post_init__`
validates concrete values and lets tracers pass. Rebuilding a schedule from
its leaves (what `jit` and `vmap` do) bypasses `__init__`, so tracers never
reach a check.
"""

from __future__ import annotations

import dataclasses
import reprlib
import sys
from typing import Any, Callable, ClassVar, TypeVar

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # type checkers read the 3.11+ branch
    def dataclass_transform(**_: Any) -> Callable[[Any], Any]:
        return lambda f: f

import jax
import jax.numpy as jnp
import numpy as np

from jaxsched import _checks
from jaxsched._numerics import as_step, float_dtype

Array = jax.Array

_REGISTRY: dict[str, type["Schedule"]] = {}
# The key naming the schedule in a config; no schedule has an argument of this name.
CONFIG_KEY = "type"
# The key of an array in a config: {"array": nested lists, "dtype": "float32"}.
ARRAY_KEY = "array"
# The deepest nesting of schedules (a schedule holding a schedule holding ...)
# that constructors, configs and the command line accept: evaluation, repr,
# hashing, equality, pickling and config loading recurse once per level, so a
# bound keeps them clear of Python's recursion limit.
MAX_DEPTH = 32


def static(default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that is part of the pytree structure, not a leaf."""
    return dataclasses.field(default=default, metadata={"static": True})


def optional(default: Any = None, *, is_static: bool = False) -> Any:
    """A field added after a schedule's first release: left out of the repr
    while it holds its default, so existing reprs keep their form."""
    return dataclasses.field(default=default, metadata={"static": is_static, "quiet": True})


def _key_config(key: Array) -> dict:
    return {"prng_key": np.asarray(jax.random.key_data(key)).tolist(),
            "impl": str(jax.random.key_impl(key))}


def _to_config_value(v: Any) -> Any:
    if isinstance(v, Schedule):
        return v.to_config()
    if isinstance(v, (list, tuple)):
        return [_to_config_value(x) for x in v]
    if isinstance(v, (jax.Array, np.ndarray, np.generic)):
        if jnp.issubdtype(v.dtype, jax.dtypes.prng_key):
            return _key_config(v)  # type: ignore[arg-type]
        # The dtype travels with the numbers, so the loaded schedule is equal.
        arr = np.asarray(v)
        return {ARRAY_KEY: arr.tolist(), "dtype": arr.dtype.name}
    return v


def _from_config_value(v: Any, depth: int = 0) -> Any:
    if isinstance(v, dict) and CONFIG_KEY in v:
        return _from_config(v, depth + 1)
    if isinstance(v, dict) and "prng_key" in v:
        data = jnp.asarray(v["prng_key"], dtype=jnp.uint32)
        return jax.random.wrap_key_data(data, impl=v.get("impl"))
    if isinstance(v, dict) and ARRAY_KEY in v:
        return np.asarray(v[ARRAY_KEY], dtype=jnp.dtype(v.get("dtype", "float64")))
    if isinstance(v, list):
        return tuple(_from_config_value(x, depth) for x in v)
    return v


def _leaf_equal(a: Any, b: Any) -> bool:
    if isinstance(a, (jax.core.Tracer,)) or isinstance(b, (jax.core.Tracer,)):
        return a is b
    if isinstance(a, Schedule) or isinstance(b, Schedule):
        return a == b
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return (isinstance(a, (tuple, list)) and isinstance(b, (tuple, list))
                and len(a) == len(b) and all(_leaf_equal(x, y) for x, y in zip(a, b)))
    if callable(a) or callable(b):
        return a is b or a == b
    if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
        a = jax.random.key_data(a)
    if hasattr(b, "dtype") and jnp.issubdtype(b.dtype, jax.dtypes.prng_key):
        b = jax.random.key_data(b)
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _leaf_hash(v: Any) -> int:
    if isinstance(v, (tuple, list)):
        return hash(tuple(_leaf_hash(x) for x in v))
    if isinstance(v, (Schedule, int, float, str)) or v is None:
        return hash(v)
    if isinstance(v, jax.core.Tracer) or callable(v):
        return id(v)
    if hasattr(v, "dtype") and jnp.issubdtype(v.dtype, jax.dtypes.prng_key):
        v = jax.random.key_data(v)
    arr = np.asarray(v)
    # By value, not by bytes: equal leaves of different dtypes (float32 0.5 and
    # float64 0.5, an int 2 and a float 2.0) compare equal, so they hash equal.
    return hash(arr.item()) if arr.ndim == 0 else hash((arr.shape, tuple(arr.ravel().tolist())))


def _show(v: Any) -> str:
    if isinstance(v, jax.core.Tracer):
        return f"<traced {v.dtype}{list(v.shape)}>"
    if isinstance(v, (jax.Array, np.ndarray)):
        if jnp.issubdtype(v.dtype, jax.dtypes.prng_key):
            return f"key({np.asarray(jax.random.key_data(v)).tolist()})"
        arr = np.asarray(v)
        return repr(arr.item()) if arr.ndim == 0 else repr(arr.tolist())
    if isinstance(v, tuple):
        return "(" + ", ".join(_show(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return repr(v)


class Schedule:
    """Base class of every jaxsched schedule: `s(step) -> learning rate`.

    Subclasses are frozen dataclasses registered as pytrees by
    :func:`schedule_class`. Call the public constructors (`cosine_decay`, ...)
    rather than the classes.

    A schedule is differentiable (`jax.grad`, `jax.jacfwd`) in each of its
    float hyperparameters wherever its formula is, with finite derivatives at
    the edges of their ranges (`decay_rate=0`, `alpha=0`, `t_mul=1`, ...).
    Arguments documented as ints (`warmup_steps`, `total_steps`, the phase
    lengths of `warmup_stable_decay`, `seed`) have no derivative; step counts
    that also accept floats (`decay_steps`, `first_decay_steps`, boundaries)
    are differentiable when given as floats. Schedules nest at most
    `MAX_DEPTH = 32` deep (a ValueError beyond).

    Example:
        >>> import jax, jaxsched as js
        >>> s = js.cosine_decay(0.1, 1000)
        >>> isinstance(s, js.Schedule), s
        (True, cosine_decay(learning_rate=0.1, decay_steps=1000, alpha=0.0))
        >>> jax.tree.leaves(s)
        [0.1, 1000, 0.0]
    """

    name: ClassVar[str] = "schedule"
    _static_fields: ClassVar[tuple[str, ...]] = ()
    _leaf_fields: ClassVar[tuple[str, ...]] = ()

    def __call__(self, step: Any) -> Array:
        return self._at(as_step(step)).astype(float_dtype())

    def _at(self, t: Array) -> Array:
        """The schedule at a normalised, non-negative step `t` (see `as_step`)."""
        raise NotImplementedError

    def _fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name)
                for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def __repr__(self) -> str:
        quiet = {f.name: f.default for f in dataclasses.fields(self)  # type: ignore[arg-type]
                 if f.metadata.get("quiet")}
        args = ", ".join(f"{k}={_show(v)}" for k, v in self._fields().items()
                         if not (k in quiet and type(v) is type(quiet[k]) and v == quiet[k]))
        return f"{self.name}({args})"

    def __eq__(self, other: Any) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return all(_leaf_equal(a, b) for a, b in
                   zip(self._fields().values(), other._fields().values()))

    def __hash__(self) -> int:
        return hash((type(self), tuple(_leaf_hash(v) for v in self._fields().values())))

    def to_config(self) -> dict[str, Any]:
        """A JSON-able dict that `schedule_from_config` turns back into `self`."""
        config: dict[str, Any] = {CONFIG_KEY: self.name}
        for k, v in self._fields().items():
            if isinstance(v, jax.core.Tracer):
                raise TypeError(f"{self.name}: cannot save a traced `{k}` in a config.")
            config[k] = _to_config_value(v)
        return config

    def __reduce__(self):
        return (_rebuild, (type(self), self._fields()))

    # Arithmetic lives in _arithmetic; these hooks only dispatch to it. NumPy
    # defers to them (`np.ones(3) * s` is a TypeError, not an object array).
    __array_ufunc__ = None

    def __mul__(self, other: Any) -> "Schedule":
        from jaxsched._arithmetic import multiply
        return multiply(self, other)

    def __rmul__(self, other: Any) -> "Schedule":
        from jaxsched._arithmetic import multiply
        return multiply(other, self)

    def __add__(self, other: Any) -> "Schedule":
        from jaxsched._arithmetic import add_terms
        return add_terms(self, other)

    def __radd__(self, other: Any) -> "Schedule":
        from jaxsched._arithmetic import add_terms
        return add_terms(other, self)


def _rebuild(cls: type, fields: dict[str, Any]) -> Schedule:
    obj: Schedule = object.__new__(cls)
    for k, v in fields.items():
        object.__setattr__(obj, k, v)
    return obj


def schedule_from_config(config: dict[str, Any]) -> Schedule:
    """Rebuild a schedule from `Schedule.to_config()` output.

    Example:
        >>> import jaxsched as js
        >>> s = js.cosine_decay(0.1, 1000, alpha=0.01)
        >>> js.schedule_from_config(s.to_config()) == s
        True
    """
    return _from_config(config, 1)


def _from_config(config: Any, depth: int) -> Schedule:
    if not isinstance(config, dict) or CONFIG_KEY not in config:
        raise ValueError(f"`schedule_from_config(config=...)` must be a dict with a "
                         f"{CONFIG_KEY!r} key, got {_short(config)}.")
    if depth > MAX_DEPTH:
        raise ValueError(f"`schedule_from_config(config=...)` nests schedules more than "
                         f"MAX_DEPTH = {MAX_DEPTH} deep.")
    name = config[CONFIG_KEY]
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"`schedule_from_config(config=...)` names an unknown schedule "
                         f"{_short(name)}; known: {', '.join(sorted(_REGISTRY))}.")
    kwargs = {k: _from_config_value(v, depth) for k, v in config.items() if k != CONFIG_KEY}
    return _REGISTRY[name](**kwargs)


def _short(v: Any) -> str:
    """`repr(v)` cut to 80 characters (a config can be arbitrarily large)."""
    text = reprlib.repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _children(v: Any):
    """The schedules directly inside a field value (a schedule or a tuple of them)."""
    if isinstance(v, Schedule):
        yield v
    elif isinstance(v, (tuple, list)):
        for x in v:
            if isinstance(x, Schedule):
                yield x


def nesting_depth(s: Schedule) -> int:
    """1 for a schedule without inner schedules, 1 + the deepest inner one otherwise."""
    depth = s.__dict__.get("_depth")
    if depth is None:  # rebuilt by unflatten or unpickling: computed once, then kept
        depth = 1 + max((nesting_depth(c) for f in dataclasses.fields(s)  # type: ignore[arg-type]
                         for c in _children(getattr(s, f.name))), default=0)
        object.__setattr__(s, "_depth", depth)
    return depth


def _check_depth(s: Schedule) -> None:
    depth, field = 1, None
    for f in dataclasses.fields(s):  # type: ignore[arg-type]
        for c in _children(getattr(s, f.name)):
            if 1 + nesting_depth(c) > depth:
                depth, field = 1 + nesting_depth(c), f.name
    if depth > MAX_DEPTH:
        raise ValueError(f"`{s.name}({field}=...)` must nest schedules at most MAX_DEPTH = "
                         f"{MAX_DEPTH} deep, got {depth} levels.")
    object.__setattr__(s, "_depth", depth)


def registry() -> dict[str, type[Schedule]]:
    """Every public schedule class by its public name."""
    return dict(_REGISTRY)


_S = TypeVar("_S")


@dataclass_transform(frozen_default=True, eq_default=False, field_specifiers=(static,))
def schedule_class(name: str) -> Callable[[type[_S]], type[_S]]:
    """Declare a schedule: make `cls` a frozen dataclass and a pytree.

    Fields declared with `static()` are structure; all others are children
    (numbers, arrays, nested schedules or tuples of them).
    """

    def wrap(cls: Any) -> Any:
        validate = getattr(cls, "__post_init__", None)

        def __post_init__(self):
            if validate is not None:
                validate(self)
            _check_depth(self)  # after validation, which may wrap inner callables

        cls.__post_init__ = __post_init__
        cls = dataclasses.dataclass(frozen=True, eq=False, repr=False)(cls)
        cls.name = name
        fields = dataclasses.fields(cls)
        cls._static_fields = tuple(f.name for f in fields if f.metadata.get("static"))
        cls._leaf_fields = tuple(f.name for f in fields if not f.metadata.get("static"))

        def flatten_with_keys(s):
            children = tuple((jax.tree_util.GetAttrKey(k), getattr(s, k))
                             for k in cls._leaf_fields)
            return children, tuple(getattr(s, k) for k in cls._static_fields)

        def unflatten(aux, children):
            obj = object.__new__(cls)
            for k, v in zip(cls._leaf_fields, children):
                object.__setattr__(obj, k, v)
            for k, v in zip(cls._static_fields, aux):
                object.__setattr__(obj, k, v)
            return obj

        jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten)
        _REGISTRY[name] = cls
        return cls

    return wrap


@schedule_class("function")
class FunctionSchedule(Schedule):
    """Wraps any callable of the step (an optax schedule, a lambda) as a Schedule.

    The function is static: it is part of the structure, not a leaf. It cannot
    be saved in a config.
    """

    fn: Callable[[Any], Any] = static()

    def _at(self, t: Array) -> Array:
        return jnp.asarray(self.fn(t), dtype=float_dtype())

    def __repr__(self) -> str:
        return repr(self.fn)

    def to_config(self) -> dict[str, Any]:
        raise TypeError(f"Cannot save the function {self.fn!r} in a config; use a "
                        f"jaxsched schedule instead.")


def as_schedule(owner: str, name: str, value: Any) -> Schedule:
    """A schedule argument as a Schedule (wrapping a foreign callable)."""
    if isinstance(value, Schedule):
        return value
    _checks.callable_(owner, name, value)
    return FunctionSchedule(value)  # type: ignore[call-arg]

