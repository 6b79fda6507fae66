"""Build a transformation from its per-array formula.

A jaxsched transformation is written as the formula for one array, as jax's
`example_libraries.optimizers` lets one write one array's math:

    step(hp, g, *buffers) -> u                 (no buffers)
    step(hp, g, *buffers) -> (u, *buffers)     (with buffers)

(`step(hp, g, p, *buffers)` when it reads the parameters). `transformation`
lifts it to pytrees and owns everything else: the saturating int32 update
count, resolving the hyperparameters at that count (`hp.b1`, and `hp.k`, the
update number from 1), the state's buffers and their dtype, the checks of
the tree, dtypes and hyperparameter shapes, and recording the values used.

The state keeps the count only where it is used: a hyperparameter is a
schedule, or the formula reads `hp.k` (found by tracing it once on small
arrays); otherwise `count` holds (), as optax's `trace` and `scale` keep no
count. Hyperparameters given as numbers are recorded in the state's class
(`_hyper.new_state`), part of its structure, not as leaves: a jitted update
reads and writes nothing for them.

Arithmetic is done in float32 (float64 under x64) whatever the parameter
dtype; updates come back in the gradients' dtype, buffers in their own
(float32 for parameters narrower than float32, unless asked otherwise).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsched import _checks, _flat, _hyper, _numerics
from jaxsched._hyper import Hyper
from jaxsched._numerics import float_dtype

Array = jax.Array
PyTree = Any
MaskOrFn = Optional[Union[PyTree, Callable[[PyTree], PyTree]]]


class Transformation(optax.GradientTransformationExtraArgs):
    """An `optax.GradientTransformationExtraArgs` that says what it does per array.

    `per_array` is True when the update of an array reduces over that array
    (a norm), so concatenating arrays would change it; `needs_params` when
    its update reads the parameters; `members` lists the
    parts of a chain; `mask` and `with_mask` let `fuse` regroup a mask.
    `exact_on_flat` is True when it gives its per-array numbers on
    `FlatParams` buffers (every builder-made transformation: a per-array
    formula reduces per original array there); `wrapped` lists the
    transformations it runs inside (`skip_nonfinite`'s inner), which the
    flat layer checks in its place.
    """

    name: str = "transformation"
    per_array: bool = False
    needs_params: bool = False
    members: tuple = ()
    mask: Any = None
    with_mask: Optional[Callable[[Any], "Transformation"]] = None
    exact_on_flat: bool = False
    wrapped: tuple = ()
    spec: Any = None


@dataclasses.dataclass(frozen=True, eq=False)
class Spec:
    """What `transformation` was given: how a builder-made transformation is made.

    Parameter groups sharing a buffer (`_shared_groups`) run the same `step`
    for several groups at once from it.
    """

    name: str
    state: type
    hypers: Mapping[str, Hyper]
    step: Callable[..., Any]
    buffers: Mapping[str, Buffer]
    needs_params: bool
    prepare: Any
    measured: Mapping[str, Any]
    mask: Any
    per_array: bool
    finish: Any


def describe(tx: optax.GradientTransformation, **attributes: Any) -> Transformation:
    """`tx` as a `Transformation` carrying `attributes`."""
    out = Transformation(tx.init, tx.update)
    for k, v in attributes.items():
        setattr(out, k, v)
    return out


@dataclasses.dataclass(frozen=True)
class Buffer:
    """A state buffer like the parameters: its initial value and dtype.

    dtype None: float32 for parameters narrower than float32, else theirs.
    """

    fill: float = 0.0
    dtype: Any = None


class Values:
    """Resolved hyperparameters by attribute (`hp.b1`), the update number `hp.k`
    (from 1) and tree-level values such as the global norm.

    `hp.array_sum(x)` is the sum of `x` over the array (a scalar); on a flat
    buffer, for a formula declared with `segment_sums=True`, it is the sum
    over each original array, at every element of it. `hp.per_array(fn, *xs)`
    is `fn` of such sums, computed once per array where it can be.
    """

    def __init__(self, values: dict[str, Array], k: Optional[Array],
                 array_reduce: Optional[tuple[Callable[[Array], Array],
                                              Callable[[Array], Array]]] = None):
        self.values = dict(values)
        self._k = k
        self._reduce = array_reduce

    @property
    def k(self) -> Array:
        if self._k is None:
            raise RuntimeError("this transformation's state keeps no update count (its formula "
                               "did not read `hp.k` when traced on small arrays), yet it read "
                               "it: read `hp.k` whatever the arrays' shapes.")
        return self._k

    def array_sum(self, x: Array) -> Array:
        if self._reduce is None:
            return jnp.sum(x)
        sums, spread = self._reduce
        return spread(sums(x))

    def per_array(self, fn: Callable[..., Array], *xs: Array) -> Array:
        """`fn(sum of xs[0] over the array, sum of xs[1], ...)`, broadcastable to the array.

        `fn` must be elementwise in the sums. On a flat buffer it runs on the
        small vector of the original arrays' sums and each element gets its
        array's value (one value read per element, instead of `fn`'s
        arithmetic at every element); with a hyperparameter that is not a
        scalar (`fn` may read it elementwise) it runs on `array_sum`s. `fn`
        also sees the gaps between arrays, with sums of 0 (its value there
        must be finite).
        """
        if self._reduce is None:
            return fn(*(jnp.sum(x) for x in xs))
        sums, spread = self._reduce
        if all(jnp.ndim(v) == 0 for v in self.values.values()):
            return spread(fn(*(sums(x) for x in xs)))
        return fn(*(spread(sums(x)) for x in xs))

    def array_size(self, x: Array) -> Any:
        """The number of elements of the array (of each original array on a flat buffer,
        at each of its elements; 0 nowhere but in the gaps between arrays)."""
        if self._reduce is None:
            return x.size
        # A barrier, so that XLA does not constant-fold a segment sum over the whole buffer.
        return self.array_sum(jax.lax.optimization_barrier(jnp.ones_like(x)))

    def segmented(self, array_reduce: tuple[Callable[[Array], Array],
                                            Callable[[Array], Array]]) -> "Values":
        return Values(self.values, self._k, array_reduce)

    def __getattr__(self, name: str) -> Array:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None


def state_dtype(param_dtype: Any, requested: Any = None) -> jnp.dtype:
    """The dtype of a buffer for parameters of `param_dtype`."""
    if requested is not None:
        return jnp.dtype(requested)
    dtype = jnp.dtype(param_dtype)
    return jnp.dtype(jnp.float32) if dtype.itemsize < 4 else dtype


def keystr(path: tuple) -> str:
    return jax.tree_util.keystr(path) or "the root"


def describe_difference(a: PyTree, b: PyTree, a_name: str = "the updates",
                        b_name: str = "the state") -> str:
    paths_a = {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(a)[0]}
    paths_b = {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(b)[0]}
    only_a, only_b = sorted(paths_a - paths_b), sorted(paths_b - paths_a)
    parts = []
    if only_a:
        parts.append(f"only in {a_name}: {', '.join(only_a[:5])}")
    if only_b:
        parts.append(f"only in {b_name}: {', '.join(only_b[:5])}")
    if not parts:
        parts.append(f"structures differ: {jax.tree.structure(a)} vs {jax.tree.structure(b)}")
    return "; ".join(parts)


def structure(tree: PyTree) -> Any:
    """`jax.tree.structure`, typed loosely (jaxlib's PyTreeDef has no stubs here)."""
    return jax.tree.structure(tree)


def check_same_tree(owner: str, tree: PyTree, reference: PyTree,
                    what: str = "the state") -> None:
    """Raise a ValueError naming the difference if two trees differ in structure."""
    if structure(tree) != structure(reference):
        head = ("the tree passed to update does not match the one given to init"
                if what == "the state" else f"the updates do not match {what}")
        raise ValueError(f"`{owner}`: {head} "
                         f"({describe_difference(tree, reference, b_name=what)}).")


def check_real_floats(owner: str, tree: PyTree, what: str) -> None:
    """TypeError for a leaf that is not a real floating-point array."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            kind = "complex" if jnp.issubdtype(dtype, jnp.complexfloating) else "non-float"
            raise TypeError(f"`{owner}`: {what} must be real floating-point arrays, got "
                            f"{kind} {dtype} at {keystr(path)} (cast it, or keep it out of "
                            f"the optimizer with a mask or a frozen group).")


def check_broadcast(owner: str, values: Mapping[str, Array], tree: PyTree) -> None:
    """ValueError for an array hyperparameter that would change a leaf's shape."""
    shaped = {k: jnp.shape(v) for k, v in values.items() if jnp.ndim(v) > 0}
    if not shaped:
        return
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        shape = jnp.shape(leaf)
        for name, hshape in shaped.items():
            try:
                ok = np.broadcast_shapes(hshape, shape) == tuple(shape)
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"{_checks.where(owner, name)} has shape {tuple(hshape)}, "
                                 f"which does not broadcast to the shape {tuple(shape)} of the "
                                 f"parameter at {keystr(path)}.")


def resolve_mask(owner: str, mask: MaskOrFn, params: PyTree) -> PyTree:
    """The mask as a tree of bools like `params` (a function is called on them).

    On a `FlatParams` a mask speaks of the original arrays: a function is
    called on the original tree (of `jax.ShapeDtypeStruct`s), and a mask
    like the original tree becomes one bool per buffer, which must hold for
    every array in the buffer (group the arrays by the mask).
    """
    if isinstance(params, _flat.FlatParams):
        layout = params.layout
        tree = mask(_flat.skeleton(layout)) if callable(mask) else mask
        if structure(tree) != structure(params):
            if structure(tree) != layout.treedef:
                raise ValueError(
                    f"{_checks.where(owner, 'mask')} must have the structure of the parameters "
                    f"or of the flat buffers ({describe_difference(tree, _flat.skeleton(layout), 'the mask', 'the parameters')}).")
            bits: dict = {}
            paths = layout.paths()
            for i, ((b, _), bit) in enumerate(zip(layout.places, jax.tree.leaves(tree))):
                bit = bool(bit)
                if bits.setdefault(b, bit) != bit:
                    raise ValueError(f"{_checks.where(owner, 'mask')} differs within one flat "
                                     f"buffer (at {paths[i]}): group the arrays by the mask "
                                     f"(`flat_params(group=...)`).")
            tree = _flat.FlatParams(tuple(bits.get(b, False) for b in range(len(layout.sizes))),
                                    layout)
    else:
        tree = mask(params) if callable(mask) else mask
    if structure(tree) != structure(params):
        raise ValueError(f"{_checks.where(owner, 'mask')} must have the structure of the "
                         f"parameters ({describe_difference(tree, params, 'the mask', 'the parameters')}).")
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if not isinstance(leaf, (bool, np.bool_)) and getattr(leaf, "dtype", None) != jnp.bool_:
            raise TypeError(f"{_checks.where(owner, 'mask')} must hold bools, got {leaf!r} at "
                            f"{jax.tree_util.keystr(path)}.")
    return tree


def begin_update(owner: str, hypers: Mapping[str, Hyper], st: Any, updates: PyTree,
                 params: PyTree, buffers: tuple, needs_params: bool) -> tuple[dict, Values]:
    """The checks every update starts with, and the hyperparameters at this count.

    The updates must have the tree of the state's first buffer (and of the
    parameters, when they are read), be real floats, and every array
    hyperparameter must broadcast to them; returns the resolved values and
    `hp` (the values by attribute and the update number `hp.k`).
    """
    if buffers:
        check_same_tree(owner, updates, getattr(st, buffers[0]))
    if needs_params:
        if params is None:
            raise ValueError(f"`{owner}` needs the parameters: call "
                             f"update(updates, state, params).")
        check_same_tree(owner, updates, params, what="the params")
    check_real_floats(owner, updates, "the updates")
    if isinstance(st.count, tuple):
        scheduled = [k for k, v in hypers.items() if _hyper.is_schedule(v)]
        if scheduled:
            raise ValueError(f"`{owner}`: the state keeps no update count (it was built by init "
                             f"with no schedule), but update got {', '.join(scheduled)} as a "
                             f"schedule: build the state with the same schedule.")
    values = _hyper.resolve_all(hypers, st.count)
    check_broadcast(owner, values, updates)
    counted = not isinstance(st.count, tuple)
    return values, Values(values, _numerics.next_count(st.count) if counted else None)


def reads_count(step: Callable[..., Any], hypers: Mapping[str, Hyper], arrays: int,
                prepare: Any = None, finish: Any = None, with_buffers: bool = False) -> bool:
    """Whether a formula reads the update number `hp.k`: traced once (abstractly) on
    small matrices; True if that trace fails, so a count is dropped only when the
    formula was seen not to read it."""
    read: list = []

    class Probe(Values):
        @property
        def k(self) -> Array:
            read.append(True)
            return jnp.ones((), jnp.int32)

    def run() -> None:
        x = jnp.ones((2, 2), float_dtype())
        hp = Probe({k: jnp.ones((), float_dtype()) for k in hypers}, None)
        if prepare is not None:
            hp.values.update(prepare(hp, {"x": x}))
        out = step(hp, *([x] * arrays))
        if finish is not None:
            finish(hp, out[0] if with_buffers else out)

    try:
        jax.eval_shape(run)
    except Exception:  # noqa: BLE001 - a formula that cannot be probed keeps its count
        return True
    return bool(read)


def _compute(x: Array) -> Array:
    return x.astype(float_dtype())


def transformation(owner: str, state: type, hypers: Mapping[str, Hyper],
                   step: Callable[..., Any], *, buffers: Mapping[str, Buffer] | None = None,
                   needs_params: bool = False,
                   prepare: Callable[[Values, PyTree], dict[str, Array]] | None = None,
                   measured: Mapping[str, Callable[[], Array]] | None = None,
                   mask: MaskOrFn = None, per_array: bool = False,
                   segment_sums: bool = False,
                   finish: Callable[[Values, Array], Array] | None = None,
                   batch_as: Callable[[tuple], Optional[tuple]] | None = None
                   ) -> Transformation:
    """Lift the per-array `step` to a transformation whose state is `state`.

    Args:
      owner: the primitive's name; errors name the caller instead when the
        transformation is built inside `_checks.calling`.
      state: the `<Name>State` NamedTuple: `count`, the buffers, measured
        fields and `hyperparams` (fields it has that are not used hold `()`).
      hypers: hyperparameters by name, each a number, array or schedule.
      step: the per-array formula, see the module docstring.
      buffers: the state buffers like the parameters, in `step`'s order.
      needs_params: `step` reads the parameter array.
      prepare: tree-level values computed once per update from the
        hyperparameters and the updates (a global norm), given to `step`
        through `hp` and stored in the state when named in `measured`.
      measured: state fields filled by `prepare`, with their initial value.
      mask: a tree of bools like the parameters, or a function of them;
        False leaves pass through unchanged and keep their buffers.
      per_array: the formula reduces over each array. On `FlatParams`
        buffers it then runs on the view of each original array (in its
        shape), and the results are concatenated back.
      segment_sums: (with per_array) the formula reduces over the array
        only through `hp.array_sum(x)` and is elementwise otherwise; on flat
        buffers it then runs on whole buffers, `hp.array_sum` giving each
        array's sum at each of its elements (segment sums: much faster than
        one view per array).
      finish: `finish(hp, x) -> u`, a per-array formula applied to the
        update `step` returns; `step` must then be elementwise (it runs on
        whole flat buffers), and `finish` runs on each array (each original
        array's view on a flat buffer, in its shape). Muon: `step` is the
        momentum, `finish` the orthogonalization.
      batch_as: (with finish) `shape -> shape or None`: `finish` on an array
        gives the same result as on the array reshaped to `batch_as(its
        shape)` (then reshaped back). The arrays with the same such shape are
        stacked and run through one `jax.vmap(finish)`, so that the program's
        size grows with the number of distinct shapes, not of arrays. None:
        the array runs alone (so does every array when a hyperparameter
        value is not a scalar). Stacking copies the group's inputs once; the
        results are sliced back (one small copy per array).
    """
    name, owner = owner, _checks.caller(owner)
    buffers = dict(buffers or {})
    measured = dict(measured or {})
    hypers = dict(hypers)
    fields = state._fields  # type: ignore[attr-defined]

    def make_state(count: Any, buffer_trees: dict, hp_values: Any, extra: dict) -> Any:
        parts = {"count": count, "hyperparams": hp_values, **buffer_trees, **extra}
        return _hyper.new_state(state, **{f: parts.get(f, ()) for f in fields})

    def run_step(hp: Values, args: list, place: Any) -> Any:
        """`step` on one array, or per original array on a flat buffer."""
        if place is None:
            return step(hp, *args)
        layout, b = place
        if segment_sums:
            return step(hp.segmented(layout.array_reduce(b)), *args)
        n_in = len(args) - len(buffers)  # g (and p): the update's gaps are 0

        def one(*views: Array) -> tuple:
            result = step(hp, *views)
            return tuple(result) if buffers else (result,)

        outs = _flat.map_arrays(layout, b, one, args, [None] + list(args[n_in:]))
        return tuple(outs) if buffers else outs[0]

    def run_finish(hp: Values, jobs: list) -> list:
        """`finish` on each array of every (x, place) job, equal `batch_as` shapes stacked."""
        assert finish is not None
        tail = finish
        units: list = []  # per array: its view of x
        spans: list = []  # per job: (first unit, number of units)
        for x, place in jobs:
            whole = place is None or place[0].whole[place[1]]
            arrays = [x] if whole else _flat.array_views(place[0], place[1], x)
            spans.append((len(units), len(arrays)))
            units.extend(arrays)
        by_shape: dict = {}
        scalars = all(jnp.ndim(v) == 0 for v in hp.values.values())
        for u, view in enumerate(units):
            key = None if batch_as is None or not scalars else batch_as(tuple(view.shape))
            by_shape.setdefault(None if key is None else (tuple(key), str(view.dtype)),
                                []).append(u)
        results: list = [None] * len(units)
        for key, members in by_shape.items():
            if key is None or len(members) == 1:
                for u in members:
                    results[u] = tail(hp, units[u])
                continue
            stacked = jnp.stack([units[u].reshape(key[0]) for u in members])
            out = jax.vmap(lambda v: tail(hp, v))(stacked)
            for n, u in enumerate(members):
                results[u] = out[n].reshape(units[u].shape)
        done = []
        for (x, place), (first, count) in zip(jobs, spans):
            mine = results[first:first + count]
            whole = place is None or place[0].whole[place[1]]
            done.append(mine[0] if whole else
                        _flat.assemble(place[0], place[1], mine, None, x.dtype))
        return done

    def keep_flags(params: PyTree) -> list:
        if mask is None:
            return [True] * len(jax.tree.leaves(params))
        return [bool(b) for b in jax.tree.leaves(resolve_mask(owner, mask, params))]

    counted: list = []  # [bool], decided at the first init

    def keeps_count() -> bool:
        """A count is kept when a hyperparameter is a schedule or the formula reads `hp.k`."""
        if not counted:
            counted.append(any(_hyper.is_schedule(v) for v in hypers.values())
                           or reads_count(step, hypers, 1 + needs_params + len(buffers),
                                          prepare, finish, bool(buffers)))
        return counted[0]

    def init(params: PyTree) -> Any:
        check_real_floats(owner, params, "the parameters")
        if mask is not None:
            resolve_mask(owner, mask, params)
        count: Any = _numerics.zero_count() if keeps_count() else ()
        trees = {name: jax.tree.map(
            lambda p, b=b: jnp.full_like(p, b.fill, dtype=state_dtype(jnp.result_type(p), b.dtype)),
            params) for name, b in buffers.items()}
        extra = {k: make() for k, make in measured.items()}
        values = _hyper.record(owner, hypers, _hyper.resolve_all(hypers, count))
        return make_state(count, trees, values, extra)

    def update(updates: PyTree, st: Any, params: PyTree = None, **extra_args: Any):
        del extra_args
        values, hp = begin_update(owner, hypers, st, updates, params, tuple(buffers),
                                  needs_params)
        extra = prepare(hp, updates) if prepare is not None else {}
        hp.values.update(extra)

        leaves = jax.tree.leaves(updates)
        treedef = structure(updates)
        buffer_leaves = [treedef.flatten_up_to(getattr(st, name)) for name in buffers]
        param_leaves = treedef.flatten_up_to(params) if needs_params else None
        keep = keep_flags(params if needs_params else updates)
        places = _flat.buffer_places(updates) if per_array else [None] * len(leaves)
        jobs: dict = {}
        for i, g in enumerate(leaves):
            if keep[i]:
                args = [_compute(g)]
                if param_leaves is not None:
                    args.append(_compute(param_leaves[i]))
                args.extend(_compute(b[i]) for b in buffer_leaves)
                jobs[i] = (args, places[i])
        if finish is None:
            results = {i: run_step(hp, args, place) for i, (args, place) in jobs.items()}
        else:  # `step` is elementwise: it runs on whole buffers, `finish` per array
            results = {i: step(hp, *args) for i, (args, _) in jobs.items()}
            firsts = [(r[0] if buffers else r, jobs[i][1]) for i, r in results.items()]
            for i, u in zip(list(results), run_finish(hp, firsts)):
                results[i] = (u, *results[i][1:]) if buffers else u
        out_u: list = []
        out_b: list[list] = [[] for _ in buffers]
        for i, g in enumerate(leaves):
            olds = [b[i] for b in buffer_leaves]
            if not keep[i]:
                out_u.append(g)
                for j, old in enumerate(olds):
                    out_b[j].append(old)
                continue
            result = results[i]
            u, news = (result[0], result[1:]) if buffers else (result, ())
            out_u.append(u.astype(jnp.result_type(g)))
            for j, (old, new) in enumerate(zip(olds, news)):
                out_b[j].append(new.astype(jnp.result_type(old)))
        trees = {name: treedef.unflatten(out_b[j]) for j, name in enumerate(buffers)}
        recorded = _hyper.record(owner, hypers, values, getattr(st, "hyperparams", None))
        new_state = make_state(() if hp._k is None else hp._k, trees, recorded,
                               {k: extra[k] for k in measured})
        return treedef.unflatten(out_u), new_state

    def with_mask(new_mask: Any) -> Transformation:
        return transformation(name, state, hypers, step, buffers=buffers,
                              needs_params=needs_params, prepare=prepare, measured=measured,
                              mask=new_mask, per_array=per_array, segment_sums=segment_sums,
                              finish=finish, batch_as=batch_as)

    spec = Spec(name, state, hypers, step, buffers, needs_params, prepare, measured, mask,
                per_array, finish)
    return describe(optax.GradientTransformationExtraArgs(init, update), per_array=per_array,
                    name=name, needs_params=needs_params, mask=mask, with_mask=with_mask,
                    exact_on_flat=True, spec=spec)
