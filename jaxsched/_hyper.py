"""Hyperparameters that may be numbers, arrays or schedules, and reading them back.

Every jaxsched transformation resolves its hyperparameters once per update:
a number or array is used as is, a schedule (any callable of the step) is
called with the transformation's update count, so update k (from 0) uses
`schedule(k)`. The values used are recorded in the state: those of numbers in
the state's class (`new_state`: no leaves to pass through a jitted update, no
node to rebuild after it), the others as arrays.

A state class declares what it carries with `@carries(owner, measured=...)`:
its `hyperparams` dict (if it has that field) holds hyperparameters, and the
fields named in `measured` hold values measured during the update (the
global norm, the plateau scale, skip counters). `hyperparams(state)` and
`measurements(state)` read the two apart.
"""

from __future__ import annotations

import math
import threading
import weakref

from typing import Any, Callable, Mapping, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsched import _checks
from jaxsched._numerics import float_dtype

Array = jax.Array
Hyper = Union[float, Array, Callable[[Array], Array]]


def is_schedule(value: Any) -> bool:
    """A callable of the step (not an array, which is also callable in some JAX versions)."""
    return callable(value) and not isinstance(value, (jax.Array, jax.core.Tracer))


def check(owner: str, name: str, value: Any, **bounds: Any) -> None:
    """Check a hyperparameter: a schedule passes, a number is range-checked and
    must be representable in float32 (the arithmetic's dtype without x64);
    infinity only where the bounds allow it (`hi=math.inf`)."""
    if not is_schedule(value):
        _checks.number(owner, name, value, **bounds)
        if bounds.get("hi") != math.inf:
            _checks.float32_range(owner, name, value)


def resolve(value: Hyper, count: Array) -> Array:
    """The hyperparameter's value at update `count`, in the float dtype."""
    if is_schedule(value):
        value = value(count)  # type: ignore[operator]
    # A copy, so that a state never shares a buffer with an argument (donation).
    return jnp.array(value, dtype=float_dtype(), copy=True)


def resolve_all(hypers: Mapping[str, Hyper], count: Array) -> dict[str, Array]:
    return {k: resolve(v, count) for k, v in hypers.items()}


class Constants(tuple):
    """A state's hyperparameters given as numbers, read by name like a dict
    (`state.hyperparams["b1"]`, a Python float); `hyperparams(state)` reports
    the values as arrays of the float dtype. `Mixed` holds them beside arrays.

    Numbers are fixed when the optimizer is built, so a compiled update has
    nothing to read or write for them: each leaf would cost a jitted call
    about 1.5 us and an output copy. A state keeps them in its class
    (`new_state`); a hyperparameter recorded here must stay a number at update
    (`record` raises otherwise): give `init` the kinds `update` will get.

    `Constants(names, numbers)` is an empty named tuple of a class made once
    per (names, numbers), which holds them. Two of them are equal exactly when
    their names and numbers are.
    """

    _fields: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    numbers: tuple[float, ...] = ()

    def __new__(cls, names: tuple[str, ...], numbers: tuple[float, ...]) -> "Constants":
        return tuple.__new__(_constants_class(tuple(names), tuple(numbers)))

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            try:
                return self.numbers[self.names.index(key)]
            except ValueError:
                raise KeyError(key) from None
        return tuple.__getitem__(self, key)

    def keys(self) -> tuple[str, ...]:
        return self.names

    def items(self) -> list[tuple[str, float]]:
        return list(zip(self.names, self.numbers))

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self.names else default

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __ne__(self, other: object) -> bool:
        return type(self) is not type(other)

    def __hash__(self) -> int:
        return hash((self.names, self.numbers))

    def __repr__(self) -> str:
        return f"Constants({', '.join(f'{k}={v!r}' for k, v in self.items())})"

    def __reduce__(self) -> tuple:
        return Constants, (self.names, self.numbers)


# Held while anything (a state, a tree structure, a cache) refers to the class,
# so that a sweep over many numbers in one process does not keep a class per number.
_CONSTANTS_CLASSES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_CONSTANTS_LOCK = threading.Lock()


def _constants_class(names: tuple[str, ...], numbers: tuple[float, ...]) -> type:
    """The class of `Constants(names, numbers)`: one per names and numbers (by value
    and type, so that 1 and 1.0, 0.0 and -0.0 stay apart)."""
    key = (names, tuple((type(x), repr(x)) for x in numbers))
    with _CONSTANTS_LOCK:  # two threads must not make two classes for one key
        return _CONSTANTS_CLASSES.get(key) or _new_constants_class(key, names, numbers)


def _new_constants_class(key: tuple, names: tuple[str, ...], numbers: tuple[float, ...]) -> type:
    # `__new__` is tuple's: JAX rebuilds the node by calling the class with no
    # arguments, which then runs no Python code. The name shows the numbers where
    # JAX prints a tree's structure.
    shown = ", ".join(f"{k}={v!r}" for k, v in zip(names, numbers))
    cls = type(f"Constants({shown})", (Constants,),
               {"names": names, "numbers": numbers, "__new__": tuple.__new__,
                "__slots__": (), "__module__": __name__})
    _CONSTANTS_CLASSES[key] = cls
    return cls


def is_number(value: Any) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


class Mixed(NamedTuple):
    """A state's hyperparameters when some are numbers and some arrays or schedules:
    the numbers as `Constants` (no leaves), the others as a dict of arrays. Read
    by name like a dict."""

    constants: Constants
    arrays: dict

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return self.arrays[key] if key in self.arrays else self.constants[key]
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self.constants.names) + list(self.arrays)

    def items(self) -> list[tuple[str, Any]]:
        return self.constants.items() + list(self.arrays.items())

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self.arrays or key in self.constants.names else default


def record(owner: str, hypers: Mapping[str, Hyper], values: Mapping[str, Array],
           like: Any = None) -> Any:
    """What a state keeps of its hyperparameters: the numbers in `Constants` (held
    by the state's class, `new_state`), the arrays and schedules' values as a
    dict of arrays; `Mixed` when there are both.

    `like`: the recorded hyperparameters of the state being updated; the new
    record has its structure: a hyperparameter recorded as an array stays one
    (a number is recorded as an array there), and one recorded as a number
    must still be a number, else ValueError (the structure would change under
    `jit`, `lax.scan` or a group's reset).
    """
    if like is None:
        fixed = [k for k, v in hypers.items() if is_number(v)]
    else:
        fixed = list(like.names if isinstance(like, Constants) else
                     like.constants.names if isinstance(like, Mixed) else ())
        given = [k for k in fixed if not is_number(hypers[k])]
        if given:
            raise ValueError(
                f"`{owner}`: the state was built (init) with a number for "
                f"{', '.join(given)}, a constant of its structure, but update got an array "
                f"or schedule. Build the state with the same kinds, e.g. `init` of the "
                f"optimizer made with jnp.asarray(...) values, to change them between calls "
                f"without recompiling.")
    constants = Constants(tuple(fixed), tuple(float(hypers[k]) for k in fixed))  # type: ignore[arg-type]
    arrays = {k: v for k, v in values.items() if k not in fixed}
    if not arrays:
        return constants
    return Mixed(constants, arrays) if fixed else arrays


def new_state(cls: type, **fields: Any) -> Any:
    """`cls(**fields)`, a state whose recorded numbers (`fields["hyperparams"]`, as
    `record` gives it) are held by its class instead of a node of its structure.

    Such a state is an instance of a subclass of `cls`, one per class and
    numbers (`_with_constants`), named as `cls`, whose `hyperparams` field holds
    `()` (or, beside arrays, the dict of arrays) and reads back the
    `Constants` (or `Mixed`) as recorded. JAX flattens and rebuilds the state
    at every jitted call, and a node fewer costs it less: measured, adamax's
    state flattens and rebuilds in 2.0 us against 2.3 us with a `Constants`
    node in each of its two states (optax's: 1.6 us), and a jitted adamax
    update of 10 parameters took 1.04x optax's time per call, against 1.07x.
    Two states of the same class and numbers have the same pytree structure;
    other numbers give another one (a jitted update recompiles).
    """
    recorded = fields.get("hyperparams")
    constants = (recorded if isinstance(recorded, Constants) else
                 recorded.constants if isinstance(recorded, Mixed) else None)
    base = untyped(cls)
    if constants is None or not constants.names:
        return base(**fields)
    fields["hyperparams"] = recorded.arrays if isinstance(recorded, Mixed) else ()
    return _with_constants(base, constants)(**fields)


# Held while a state or tree structure refers to the class (as `_CONSTANTS_CLASSES`).
_TYPED_STATES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _with_constants(base: type, constants: Constants) -> type:
    """The subclass of the state class `base` holding `constants`."""
    key = (base, type(constants))
    with _CONSTANTS_LOCK:
        cls = _TYPED_STATES.get(key)
        if cls is None:
            cls = _TYPED_STATES[key] = _new_typed_state(base, constants)
    return cls


def _rebuild_state(base: type, names: tuple, numbers: tuple, stored: tuple) -> Any:
    """Unpickle a state made by `new_state`."""
    return _with_constants(base, Constants(names, numbers))(*stored)


def _new_typed_state(base: type, constants: Constants) -> type:
    # JAX flattens the subclass as the named tuple it is and rebuilds it by calling
    # the class with its fields as stored: `hyperparams` holds `()` or the arrays.
    fields: tuple[str, ...] = base._fields  # type: ignore[attr-defined]
    slot = fields.index("hyperparams")

    # `__new__` takes the fields by name, as the named tuple's own does: JAX calls it
    # at every rebuild, and a generic `*args` signature would cost it 0.2 us.
    # A record (`Constants`, `Mixed`) given for `hyperparams`, as flax's
    # `from_state_dict` or a `_replace` passes it, makes the state of its numbers.
    names = ", ".join(fields)
    scope: dict[str, Any] = {
        "_records": (Constants, Mixed), "_tuple_new": tuple.__new__,
        "_remake": lambda values: new_state(base, **dict(zip(fields, values)))}
    source = (f"def __new__(_cls, {names}):\n"
              f"    if isinstance(hyperparams, _records):\n"
              f"        return _remake(({names},))\n"
              f"    return _tuple_new(_cls, ({names},))\n")
    exec(compile(source, f"<jaxsched {base.__name__}.__new__>", "exec"), scope)  # noqa: S102
    __new__ = scope["__new__"]
    __new__.__defaults__ = getattr(base.__new__, "__defaults__", None)

    def hyperparams(self: Any) -> Any:
        stored = tuple.__getitem__(self, slot)
        return Mixed(constants, stored) if isinstance(stored, dict) else constants

    def _make(cls: type, iterable: Any) -> Any:
        return cls(*iterable)

    def _asdict(self: Any) -> dict:
        return {f: getattr(self, f) for f in fields}

    def __repr__(self: Any) -> str:
        return f"{base.__name__}({', '.join(f'{k}={v!r}' for k, v in _asdict(self).items())})"

    def __reduce__(self: Any) -> tuple:
        return _rebuild_state, (base, constants.names, constants.numbers, tuple(self))

    # Named as `base`; the numbers show where a type is printed (a structure mismatch).
    shown = ", ".join(f"{k}={v!r}" for k, v in constants.items())
    return type(base.__name__, (base,), {
        "__slots__": (), "__module__": base.__module__, "__doc__": base.__doc__,
        "__qualname__": f"{base.__qualname__}[{shown}]",
        "_untyped": base, "_constants": constants, "__new__": __new__,
        "hyperparams": property(hyperparams, doc="The hyperparameters used last."),
        "_make": classmethod(_make), "_asdict": _asdict, "__repr__": __repr__,
        "__reduce__": __reduce__})


def untyped(cls: type) -> type:
    """The state class `cls` is (or was made from by `new_state`)."""
    return getattr(cls, "_untyped", cls)


def held_constants(state: Any) -> Constants | None:
    """The numbers a state made by `new_state` holds in its class, else None."""
    return getattr(type(state), "_constants", None)


def rename(recorded: Any, new_name: Callable[[str], str]) -> Any:
    """Recorded hyperparameters under other names, of the same kind."""
    if isinstance(recorded, Constants):
        return Constants(tuple(new_name(k) for k in recorded.names), recorded.numbers)
    if isinstance(recorded, Mixed):
        return Mixed(rename(recorded.constants, new_name), rename(recorded.arrays, new_name))
    return {new_name(k): v for k, v in recorded.items()}


def _reported(value: Any) -> Any:
    """A recorded value as `hyperparams` reports it: an array."""
    return jnp.asarray(value, float_dtype()) if isinstance(value, (int, float)) else value


class _Carrier(NamedTuple):
    owner: str  # the primitive's name, the key prefix when a name is ambiguous
    measured: tuple[str, ...]  # state fields holding measured values


_CARRIERS: dict[type, _Carrier] = {}


def carries(owner: str, measured: tuple[str, ...] = ()) -> Callable[[type], type]:
    """Declare a state class as carrying hyperparameters and/or measured values."""

    def register(cls: type) -> type:
        _CARRIERS[cls] = _Carrier(owner, tuple(measured))
        return cls

    return register


# State classes holding one state per parameter group: class -> (the field
# holding {group name: state}, the name of the group reported without prefix,
# a function giving more (group name, state) pairs, or None).
_GROUPED: dict[type, tuple[str, str, Any]] = {}


def holds_groups(field: str, unprefixed: str,
                 more: Callable[[Any], list] | None = None) -> Callable[[type], type]:
    """Declare a state class whose `field` maps group names to states.

    Values found in a group's state are reported as `<group>/<name>`, those
    of the group `unprefixed` under their plain names; `more(state)` lists
    further (group name, state) pairs (groups sharing a buffer).
    """

    def register(cls: type) -> type:
        _GROUPED[cls] = (field, unprefixed, more)
        return cls

    return register


# optax's injected hyperparameters are reported like ours.
carries("inject_hyperparams")(optax.InjectHyperparamsState)
carries("inject_hyperparams")(optax.InjectStatefulHyperparamsState)


def _collect(opt_state: Any, measured: bool) -> list[tuple[str, str, str, Any]]:
    """(group prefix, owner, name, value) of every value in the state."""
    found: list[tuple[str, str, str, Any]] = []

    def visit(x: Any, prefix: str = "") -> None:
        grouped = _GROUPED.get(type(x))
        if grouped is not None:
            field, unprefixed, more = grouped
            pairs = list(getattr(x, field).items()) + (more(x) if more is not None else [])
            for name, child in pairs:
                visit(child, prefix if name == unprefixed else f"{prefix}{name}/")
            return
        carrier = _CARRIERS.get(untyped(type(x)))
        if carrier is not None:
            if measured:
                # A field a configuration does not measure holds ().
                found.extend((prefix, carrier.owner, k, getattr(x, k)) for k in carrier.measured
                             if not (isinstance(getattr(x, k), tuple) and getattr(x, k) == ()))
            elif "hyperparams" in x._fields:
                found.extend((prefix, carrier.owner, k, _reported(v))
                             for k, v in x.hyperparams.items() if not is_schedule(v))
            children = [c for f, c in zip(x._fields, x) if f != "hyperparams"]
        elif isinstance(x, (list, tuple)):
            children = list(x)
        elif isinstance(x, dict):
            children = list(x.values())
        else:
            return
        for child in children:
            visit(child, prefix)

    visit(opt_state)
    return found


def find_states(opt_state: Any, classes: type | tuple[type, ...]) -> list:
    """The parts of an optimizer state that are instances of `classes`, depth first
    (through tuples, NamedTuples, lists and dict values; not inside a match)."""
    found: list = []

    def visit(x: Any) -> None:
        if isinstance(x, classes):
            found.append(x)
        elif isinstance(x, (list, tuple)):
            for child in x:
                visit(child)
        elif isinstance(x, dict):
            for child in x.values():
                visit(child)

    visit(opt_state)
    return found


def _keyed(found: list[tuple[str, str, str, Any]]) -> dict[str, Any]:
    """Bare names where unique, `owner/name` where shared, numbered if still shared;
    a parameter group's values prefixed by `<group>/`."""
    counts: dict[tuple[str, str], int] = {}
    for prefix, _, k, _ in found:
        counts[prefix, k] = counts.get((prefix, k), 0) + 1
    out: dict[str, Any] = {}
    for prefix, owner, k, v in found:
        key = prefix + (k if counts[prefix, k] == 1 else f"{owner}/{k}")
        base, n = key, 1
        while key in out:
            key = f"{base}#{n}"
            n += 1
        out[key] = v
    return out


def _lookup(what: str, values: dict[str, Any], name: str) -> Any:
    if name in values:
        return values[name]
    matches = [k for k in values if k.split("#")[0].rsplit("/", 1)[-1] == name]
    if len(matches) == 1:
        return values[matches[0]]
    if matches:
        raise KeyError(f"`{what}(state, {name!r})` is ambiguous: the state has "
                       f"{', '.join(matches)}.")
    raise KeyError(f"`{what}(state, {name!r})`: no such value; the state has "
                   f"{', '.join(values) or 'none'}.")


def hyperparams(opt_state: Any, name: str | None = None) -> Any:
    """The hyperparameter values used by the most recent update, as a flat dict.

    Collects the hyperparameters of every jaxsched transformation in the state
    (also nested in `optax.chain`, `optax.MultiSteps` or
    `optax.inject_hyperparams`, whose injected values are included). Keys are
    the hyperparameter names (`learning_rate`, `b1`, ...); a name used by
    several transformations is prefixed by the transformation
    (`trace/decay`) and, if still ambiguous, numbered (`scale/factor#1`).
    With parameter groups (`groups=`), each group's values are keyed
    `<group>/<name>` (`head/learning_rate`) and those of the parameters no
    group matched by their plain names; a frozen group has none.
    Values measured during the update (the global norm, the plateau scale,
    skip counts) are not hyperparameters: `measurements(state)` has them.

    Args:
      opt_state: an optimizer state.
      name: return only this value: a key of the dict, or a bare name that
        ends exactly one key (`"decay"` for `"trace/decay"`).

    Raises:
      KeyError: for a `name` that matches no key, or several.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.adamw(js.cosine_decay(1e-3, 100))
        >>> state = opt.init({"w": jnp.ones(3)})
        >>> sorted(js.hyperparams(state))
        ['b1', 'b2', 'eps', 'eps_root', 'learning_rate', 'weight_decay']
        >>> float(js.hyperparams(state, "learning_rate"))
        0.0010000000474974513
    """
    values = _keyed(_collect(opt_state, measured=False))
    return values if name is None else _lookup("hyperparams", values, name)


def measurements(opt_state: Any, name: str | None = None) -> Any:
    """Values measured by the most recent update, as a flat dict.

    `global_norm` (the pre-clip global norm, from `clip_by_global_norm`),
    `scale` (the scale in force, from `reduce_on_plateau`), `total_skips` and
    `consecutive_skips` (from `skip_nonfinite`); keyed as `hyperparams` keys
    its values.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.chain(js.clip_by_global_norm(1.0), js.sgd(0.1))
        >>> _, state = opt.update(jnp.array([3.0, 4.0]), opt.init(jnp.zeros(2)))
        >>> float(js.measurements(state)["global_norm"])
        5.0
    """
    values = _keyed(_collect(opt_state, measured=True))
    return values if name is None else _lookup("measurements", values, name)
