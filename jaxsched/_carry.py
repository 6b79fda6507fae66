"""Transformations that carry tree-level scalars from one update to the next.

`_builder.transformation` lifts a per-array formula whose tree-level values
(`prepare`) are recomputed from each update alone. A few algorithms keep
scalars that accumulate across updates: NAdam's momentum product, the
schedule-free weights, Prodigy's step-size estimate `d`. `transformation`
here is the builder's counterpart for them: the same count, hyperparameter
resolution, tree and dtype checks and buffer dtypes, plus

- `scalars={"name": init(values)}`: state fields holding one value for the
  whole tree, reported by `js.measurements(state)`;
- `prepare(hp, trees)`: tree-level values computed once per update from the
  hyperparameters, the previous scalars (`hp.<scalar>`) and the trees
  (`trees.updates`, `trees.params`, `trees.<buffer>`), given to `step`;
- `finish(hp)`: the new scalars, from what `prepare` computed.

A buffer may start as a copy of the parameters (`Copy()`): the
schedule-free `z`, Prodigy's `p0`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Union

import jax
import jax.numpy as jnp
import optax

from jaxsched import _checks, _hyper, _numerics
from jaxsched._builder import (Buffer, Transformation, Values, begin_update, check_real_floats,
                               describe, state_dtype, structure)
from jaxsched._hyper import Hyper
from jaxsched._numerics import float_dtype

Array = jax.Array
PyTree = Any


@dataclasses.dataclass(frozen=True)
class Copy:
    """A state buffer that starts as a copy of the parameters (in `dtype`, see `Buffer`)."""

    dtype: Any = None


class Trees:
    """The trees of one update, by attribute: `updates`, `params`, and each buffer."""

    def __init__(self, **trees: PyTree):
        self.__dict__.update(trees)


def compute(x: Array) -> Array:
    """`x` in the arithmetic dtype (float32, float64 under x64)."""
    return x.astype(float_dtype())


def tree_sum(fn: Callable[..., Array], *trees: PyTree) -> Array:
    """sum over leaves of fn(leaves...) (each leaf cast to the arithmetic dtype)."""
    leaves = [jax.tree.leaves(t) for t in trees]
    total = jnp.zeros([], float_dtype())
    for parts in zip(*leaves):
        total = total + fn(*(compute(x) for x in parts))
    return total


def scalar_hypers(owner: str, **values: Hyper) -> None:
    """Check hyperparameters that enter a tree-level scalar are scalars."""
    for name, value in values.items():
        if not _hyper.is_schedule(value):
            _checks.custom(owner, name, value, lambda v: jnp.ndim(v) == 0,
                           "be a scalar (it enters a value shared by the whole tree)")


def transformation(owner: str, state: type, hypers: Mapping[str, Hyper],
                   step: Callable[..., Any], *,
                   buffers: Mapping[str, Union[Buffer, Copy]] | None = None,
                   scalars: Mapping[str, Callable[[dict], Array]] | None = None,
                   prepare: Callable[[Values, Trees], dict] | None = None,
                   finish: Callable[[Values], dict] | None = None,
                   needs_params: bool = False) -> Transformation:
    """Lift the per-array `step` to a transformation carrying tree-level scalars.

    `step(hp, g, [p,] *buffers) -> (u, *buffers)` as in `_builder`; `scalars`
    maps each scalar field of `state` to its initial value, a function of
    the hyperparameters resolved at count 0; `prepare` and `finish` are
    described in the module docstring.
    """
    name, owner = owner, _checks.caller(owner)
    buffers = dict(buffers or {})
    scalars = dict(scalars or {})
    hypers = dict(hypers)
    fields = state._fields  # type: ignore[attr-defined]

    def make_state(count: Array, trees: dict, values: dict, carried: dict,
                   like: Any = None) -> Any:
        parts = {"count": count, "hyperparams": _hyper.record(owner, hypers, values, like),
                 **trees, **carried}
        return _hyper.new_state(state, **{f: parts.get(f, ()) for f in fields})

    def init(params: PyTree) -> Any:
        check_real_floats(owner, params, "the parameters")
        count = _numerics.zero_count()
        trees = {}
        for bname, b in buffers.items():
            if isinstance(b, Copy):
                trees[bname] = jax.tree.map(
                    lambda p, b=b: jnp.array(p, dtype=state_dtype(jnp.result_type(p), b.dtype),
                                             copy=True),  # own buffers: donation-safe
                    params)
            else:
                trees[bname] = jax.tree.map(
                    lambda p, b=b: jnp.full_like(p, b.fill,
                                                 dtype=state_dtype(jnp.result_type(p), b.dtype)),
                    params)
        values = _hyper.resolve_all(hypers, count)
        carried = {k: jnp.array(make(values), copy=True) for k, make in scalars.items()}
        return make_state(count, trees, values, carried)

    def update(updates: PyTree, st: Any, params: PyTree = None, **extra_args: Any):
        del extra_args
        values, hp = begin_update(owner, hypers, st, updates, params, tuple(buffers),
                                  needs_params)
        hp.values.update({k: getattr(st, k) for k in scalars})
        trees = Trees(updates=updates, params=params,
                      **{b: getattr(st, b) for b in buffers})
        if prepare is not None:
            hp.values.update(prepare(hp, trees))

        leaves = jax.tree.leaves(updates)
        treedef = structure(updates)
        buffer_leaves = [treedef.flatten_up_to(getattr(st, b)) for b in buffers]
        param_leaves = treedef.flatten_up_to(params) if needs_params else None
        out_u: list = []
        out_b: list[list] = [[] for _ in buffers]
        for i, g in enumerate(leaves):
            olds = [b[i] for b in buffer_leaves]
            args = [compute(g)]
            if param_leaves is not None:
                args.append(compute(param_leaves[i]))
            args.extend(compute(b) for b in olds)
            result = step(hp, *args)
            u, news = (result[0], result[1:]) if buffers else (result, ())
            out_u.append(u.astype(jnp.result_type(g)))
            for j, (old, new) in enumerate(zip(olds, news)):
                out_b[j].append(new.astype(jnp.result_type(old)))
        new_trees = {b: treedef.unflatten(out_b[j]) for j, b in enumerate(buffers)}
        carried = {k: getattr(st, k) for k in scalars}
        if finish is not None:
            carried.update(finish(hp))
        carried = {k: jnp.asarray(v).astype(jnp.result_type(getattr(st, k)))
                   for k, v in carried.items()}
        return treedef.unflatten(out_u), make_state(hp.k, new_trees, values, carried,
                                                    getattr(st, "hyperparams", None))

    # Per element, with tree-level sums that zero padding does not change: the
    # same numbers on flat buffers.
    return describe(optax.GradientTransformationExtraArgs(init, update), name=name,
                    needs_params=needs_params, per_array=False, exact_on_flat=True)
