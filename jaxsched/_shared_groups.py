"""Parameter groups sharing one flat buffer: one pass of the update for all of them.

`js.flat_params(tree, group=js.group_labels(groups), share=True)` places
the trainable groups' arrays in one buffer per dtype, each group a
contiguous segment. A grouped optimizer then runs each primitive's
per-array formula once over the buffer, not once per group's buffer (on
XLA:CPU every loop over a buffer is a kernel launch, so three groups in
three buffers cost three times the loops).

How, exactly: the formula `step(hp, g, *buffers)` is traced to a jaxpr.
Its equations that read only hyperparameters and the update count (the
bias corrections, `1 - b1 ** k`) are evaluated once per group, on that
group's values, as separate buffers would evaluate them; every per-group
scalar an elementwise equation reads becomes a per-element value chosen
by segment

    x[e] = x_g   for e in the segment of group g

(a comparison of the element's index with the segment starts, which XLA
fuses into the loop). Only formulas that are elementwise in the arrays can
run this way; anything else (a reduction over the buffer, a per-array
norm, a formula that differs between groups in more than its
hyperparameter values) is refused at `init`, naming what it met.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jcore

from jaxsched import _builder, _hyper, _numerics

Array = jax.Array

# Primitives that act element by element (operands of the output's shape, or scalars).
ELEMENTWISE = frozenset({
    "abs", "acos", "acosh", "add", "and", "asin", "asinh", "atan", "atan2", "atanh",
    "bitcast_convert_type", "cbrt",
    "ceil", "clamp", "convert_element_type", "copy", "copy_p", "cos", "cosh", "div", "eq",
    "erf", "erf_inv", "erfc", "exp", "exp2", "expm1", "floor", "ge", "gt", "integer_pow",
    "is_finite", "le", "lgamma", "log", "log1p", "logistic", "lt", "max", "min", "mul", "ne",
    "neg", "nextafter", "not", "or", "pow", "reduce_precision", "rem", "round", "rsqrt",
    "select_n", "shift_left", "shift_right_arithmetic", "shift_right_logical", "sign", "sin",
    "sinh", "sqrt", "square", "sub", "tan", "tanh", "xor",
})
_CALLS = frozenset({"pjit", "jit", "closed_call"})


class NotShareable(ValueError):
    """The groups cannot share a buffer exactly; the message says why."""


# ---------------------------------------------------------------- the interpreter

def _same(a: Any, b: Any) -> bool:
    """The same value: one object, or two known (not traced) equal values."""
    if a is b:
        return True
    if isinstance(a, jax.core.Tracer) or isinstance(b, jax.core.Tracer):
        return False
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b))


def piecewise(values: Sequence[Any], starts: Sequence[int], shape: tuple, dtype: Any) -> Array:
    """x[e] = values[g] for starts[g] <= e < starts[g + 1] (starts[0] is 0), of `shape`.

    Neighbouring segments with the same value are one segment (one select fewer
    at every element)."""
    runs = [(values[0], 0)]
    for value, start in zip(values[1:], starts[1:]):
        if not _same(value, runs[-1][0]):
            runs.append((value, start))
    out = jnp.broadcast_to(jnp.asarray(runs[0][0], dtype), shape)
    if len(runs) > 1:
        index = lax.broadcasted_iota(jnp.int32, shape, len(shape) - 1)
        for value, start in runs[1:]:
            out = jnp.where(index >= start, jnp.asarray(value, dtype), out)
    return out


def _tag(values: list) -> tuple:
    """("S", v) when every group has the same value, else ("P", values)."""
    if all(_same(v, values[0]) for v in values[1:]):
        return ("S", values[0])
    return ("P", values)


def _bind(eqn: Any, args: list) -> list:
    out = eqn.primitive.bind(*args, **eqn.primitive.get_bind_params(eqn.params))
    return list(out) if eqn.primitive.multiple_results else [out]


def _evaluate(jaxpr: Any, consts: Sequence[Any], inputs: list, starts: Sequence[int]) -> list:
    """Run `jaxpr` on tagged inputs: ("S", x) the same for every group, ("P", [x_g]) one
    value per group, ("E", x) an array over the whole buffer. Returns tagged outputs.
    A per-group equation is evaluated once per distinct combination of its inputs."""
    groups = len(starts)
    env: dict = {}
    pieces: dict = {}

    def read(v: Any) -> tuple:
        if isinstance(v, jcore.Literal):
            return ("S", v.val)
        return env[v]

    for v, c in zip(jaxpr.constvars, consts):
        env[v] = ("S", c)
    for v, x in zip(jaxpr.invars, inputs):
        env[v] = x
    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        kinds = {k for k, _ in ins}
        if "E" in kinds:
            outs = _elementwise(eqn, ins, starts, pieces)
        elif "P" in kinds:
            memo: dict = {}
            per = []
            for g in range(groups):
                args = [x[g] if k == "P" else x for k, x in ins]
                key = tuple(id(a) for a in args)
                if key not in memo:
                    memo[key] = _bind(eqn, args)
                per.append(memo[key])
            outs = [_tag([per[g][j] for g in range(groups)]) for j in range(len(per[0]))]
        else:
            outs = [("S", x) for x in _bind(eqn, [x for _, x in ins])]
        for v, out in zip(eqn.outvars, outs):
            if not isinstance(v, jcore.DropVar):
                env[v] = out
    return [read(v) for v in jaxpr.outvars]


def _elementwise(eqn: Any, ins: list, starts: Sequence[int], pieces: dict) -> list:
    name = eqn.primitive.name
    if name in _CALLS:
        closed = eqn.params["jaxpr"]
        return _evaluate(closed.jaxpr, closed.consts, ins, starts)
    shape = tuple(eqn.outvars[0].aval.shape)
    if name not in ELEMENTWISE or any(tuple(v.aval.shape) != shape for v in eqn.outvars):
        raise NotShareable(f"its formula uses `{name}` on the parameters' arrays, which is not "
                           f"elementwise")
    args = []
    for v, (kind, x) in zip(eqn.invars, ins):
        if kind == "P":
            key = (id(v), shape)
            if key not in pieces:
                pieces[key] = piecewise(x, starts, shape, v.aval.dtype)
            x = pieces[key]
        elif kind == "E" and tuple(jnp.shape(x)) != shape:
            raise NotShareable(f"its formula broadcasts an array in `{name}`")
        args.append(x)
    return [("E", out) for out in _bind(eqn, args)]


def run_formula(fn: Callable[..., Any], scalars: Sequence[Sequence[Any]], arrays: list,
                starts: Sequence[int]) -> Any:
    """`fn(*scalars_g, *arrays)` for every group g at once, on arrays shared by segment.

    `scalars[g]` are group g's scalar inputs (the same dtypes in every group),
    `arrays` the buffers (over all the groups' segments), `starts[g]` where
    group g's segment begins. The result has the structure of `fn`'s.
    """
    specs = [jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)) for x in scalars[0]]
    specs += [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in arrays]
    closed, shape_tree = jax.make_jaxpr(fn, return_shape=True)(*specs)
    n = len(scalars[0])
    inputs = [_tag([s[i] for s in scalars]) for i in range(n)] + [("E", a) for a in arrays]
    outs = _evaluate(closed.jaxpr, closed.consts, inputs, starts)
    leaves = []
    for (kind, x), spec in zip(outs, jax.tree.leaves(shape_tree)):
        if kind == "P":
            x = piecewise(x, starts, tuple(spec.shape), spec.dtype)
        leaves.append(jnp.broadcast_to(x, spec.shape).astype(spec.dtype))
    return jax.tree.unflatten(jax.tree.structure(shape_tree), leaves)


# ---------------------------------------------------------------- the groups' primitives

def _same_closure(a: Callable, b: Callable) -> bool:
    """Two functions built by the same code from the same captured values."""
    if a is b:
        return True
    if not (isinstance(a, types.FunctionType) and isinstance(b, types.FunctionType)):
        return False
    if a.__code__ is not b.__code__ or a.__defaults__ != b.__defaults__:
        return False
    for ca, cb in zip(a.__closure__ or (), b.__closure__ or ()):
        x, y = ca.cell_contents, cb.cell_contents
        if x is y:
            continue
        if callable(x) and callable(y) and _same_closure(x, y):
            continue
        if type(x) is type(y) and isinstance(x, (bool, int, float, str, type(None), tuple)):
            if x == y:
                continue
        if isinstance(x, jnp.dtype) or isinstance(y, jnp.dtype):
            if x == y:
                continue
        return False
    return True


def specs_of(tx: Any) -> list:
    """The builder specs of `tx`'s primitives, in order (a chain's members, flattened)."""
    spec = getattr(tx, "spec", None)
    if spec is not None:
        return [spec]
    members = getattr(tx, "members", ())
    if members:
        return [s for m in members for s in specs_of(m)]
    raise NotShareable(f"`{getattr(tx, 'name', type(tx).__name__)}` is not built from "
                       f"per-array formulas")


def check_specs(names: Sequence[str], per_group: Sequence[list]) -> None:
    """NotShareable unless every group runs the same primitives, differing in values only."""
    base = per_group[0]
    for name, specs in zip(names[1:], per_group[1:]):
        if len(specs) != len(base) or any(
                a.name != b.name or a.state is not b.state or a.buffers != b.buffers
                or a.needs_params != b.needs_params or set(a.hypers) != set(b.hypers)
                or not _same_closure(a.step, b.step) for a, b in zip(base, specs)):
            raise NotShareable(f"group {name!r} runs other primitives, or the same ones with "
                               f"other arguments than hyperparameter values")
    for spec in base:
        for what in ("prepare", "measured", "mask", "finish"):
            if getattr(spec, what):
                raise NotShareable(f"`{spec.name}` has a {what}")
        if spec.per_array:
            raise NotShareable(f"`{spec.name}` reduces over each array")


@dataclasses.dataclass(frozen=True)
class SharedState:
    """State of the groups sharing flat buffers: the primitives' states, each with the
    count and hyperparameter values of every group stacked on a last axis (group
    order: `names`), and buffers over the whole shared buffers."""

    states: tuple
    fresh: Array  # bool [groups]: re-initialise the group at its next update (`reset_group`)
    names: tuple = dataclasses.field(metadata={"static": True})
    # True while no group was reset alone: every group's count is the same, so the
    # values that depend only on the count are computed once for all groups.
    uniform: bool = dataclasses.field(default=True, metadata={"static": True})


jax.tree_util.register_dataclass(SharedState)


def pick(state: Any, g: int) -> Any:
    """Group `g`'s view of a primitive state: its count and values (the buffers stay whole)."""
    fields = {"count": state.count[..., g]} if "count" in state._fields else {}
    if "hyperparams" in state._fields:
        fields["hyperparams"] = {k: v[..., g] for k, v in state.hyperparams.items()}
    return state._replace(**fields)


class Leaf(NamedTuple):
    position: int  # in the flattened updates
    groups: tuple  # positions in `names` of the groups in this buffer, in buffer order
    starts: tuple  # where each of them begins


def _resolve(spec: Any, names: Sequence[str], per_group: Sequence[Mapping[str, Any]],
             counts: Sequence[Array]) -> list:
    """Each group's values at its count, each hyperparameter object resolved once per count
    (NotShareable for a value that is not a scalar)."""
    cache: dict = {}
    values = []
    for name, hypers, count in zip(names, per_group, counts):
        v = {}
        for k, value in hypers.items():
            key = (id(value), id(count))
            if key not in cache:
                cache[key] = (value, _hyper.resolve(value, count))  # `value` kept: its id
            v[k] = cache[key][1]
            if jnp.ndim(v[k]) != 0:
                raise NotShareable(f"group {name!r}'s {k} of `{spec.name}` is not a scalar "
                                   f"(shape {jnp.shape(v[k])})")
        values.append(v)
    return values


def _state(spec: Any, count: Array, values: list, buffers: dict) -> Any:
    """A primitive's `<Name>State`: the count, each group's values stacked on a last axis,
    the buffers."""
    parts = {"count": count, "hyperparams": {k: jnp.stack([v[k] for v in values], -1)
                                            for k in spec.hypers}, **buffers}
    return spec.state(**{f: parts.get(f, ()) for f in spec.state._fields})


def init(names: Sequence[str], per_group: Sequence[list], leaves: list) -> SharedState:
    """Each primitive's state over the shared buffers `leaves`: counts 0, the values at
    count 0."""
    states = []
    for j, spec in enumerate(per_group[0]):
        count = jnp.zeros([len(names)], jnp.int32)  # one array per state (donation)
        values = _resolve(spec, names, [specs[j].hypers for specs in per_group],
                          [_numerics.zero_count()] * len(names))
        buffers = {b: [jnp.full_like(x, spec.buffers[b].fill,
                                     dtype=_builder.state_dtype(x.dtype, spec.buffers[b].dtype))
                       for x in leaves] for b in spec.buffers}
        states.append(_state(spec, count, values, buffers))
    return SharedState(tuple(states), jnp.zeros([len(names)], jnp.bool_), tuple(names))


def reset(state: SharedState, name: str) -> SharedState:
    """Mark group `name` for re-initialisation at its next update (its count restarts
    alone, so the state is no longer uniform)."""
    g = state.names.index(name)
    return SharedState(state.states, state.fresh.at[..., g].set(True), state.names, False)


def update(owner: str, per_group: Sequence[list], state: SharedState, updates: list,
           params: list | None, leaves: Sequence[Leaf]) -> tuple[list, SharedState]:
    """Every primitive in turn over the shared buffers, re-initialising the groups marked
    `fresh` (marks exist only once the state is no longer uniform)."""
    fresh = state.fresh
    new_states = []
    groups = len(state.names)
    for j, spec in enumerate(per_group[0]):
        st = state.states[j]
        if state.uniform:
            counts = [st.count[..., 0]] * groups
            ks = [_numerics.next_count(counts[0])] * groups
            new_count = jnp.broadcast_to(ks[0][..., None], st.count.shape)
        else:
            count = jnp.where(fresh, 0, st.count).astype(jnp.int32)
            new_count = _numerics.next_count(count)
            counts = [count[..., g] for g in range(groups)]
            ks = [new_count[..., g] for g in range(groups)]
        values = _resolve(spec, state.names, [specs[j].hypers for specs in per_group], counts)
        names = list(spec.hypers)
        out_u: list = []
        out_b: dict[str, list] = {b: [] for b in spec.buffers}
        for n, leaf in enumerate(leaves):
            g_arr = updates[n]
            args = [g_arr.astype(_numerics.float_dtype())]
            if spec.needs_params:
                if params is None:
                    raise ValueError(f"`{owner}` needs the parameters: call "
                                     f"update(updates, state, params).")
                args.append(params[n].astype(_numerics.float_dtype()))
            olds = [getattr(st, b)[n] for b in spec.buffers]
            if olds and not state.uniform:  # the marked groups' segments start afresh
                anew = piecewise([fresh[..., g] for g in leaf.groups], leaf.starts,
                                 g_arr.shape, jnp.bool_)
            for b, old in zip(spec.buffers, olds):
                if not state.uniform:
                    old = jnp.where(anew, jnp.asarray(spec.buffers[b].fill, old.dtype), old)
                args.append(old.astype(_numerics.float_dtype()))

            def formula(*xs: Any, spec: Any = spec, names: list = names) -> Any:
                hp = _builder.Values(dict(zip(names, xs[:len(names)])), xs[len(names)])
                return spec.step(hp, *xs[len(names) + 1:])

            scalars = [[values[g][k] for k in names] + [ks[g]] for g in leaf.groups]
            result = run_formula(formula, scalars, args, leaf.starts)
            u, news = (result[0], result[1:]) if spec.buffers else (result, ())
            out_u.append(u.astype(g_arr.dtype))
            for b, old, new in zip(spec.buffers, olds, news):
                out_b[b].append(new.astype(old.dtype))
        updates = out_u
        new_states.append(_state(spec, new_count, values, out_b))
    return updates, SharedState(tuple(new_states), jnp.zeros_like(fresh), state.names,
                                state.uniform)
