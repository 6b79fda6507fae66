"""Run a transformation on flat buffers of the tree: the flat layer for code that keeps a tree.

XLA:CPU spends a few microseconds per kernel and compiles in time that grows
faster than linearly with the number of top-level fused ops, so an optimizer
that touches every array separately is slow for trees of many small arrays.
`fuse` places the arrays in the layout of `flat_params` (buffers per dtype,
weight-decay mask and sharding, at most `bucket_size` arrays each), runs the
transformation on that `FlatParams`, and slices the result back into the
tree. Per-array formulas reduce per original array there, so the numbers
are the transformation's own; a transformation whose behaviour on flat
buffers cannot be known is refused.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec

from jaxsched import _checks, _flat
from jaxsched._builder import Transformation, check_real_floats, resolve_mask

PyTree = Any


class FuseState(NamedTuple):
    """State of `fuse`: the inner transformation's state over the flat buffers (a `FlatParams`).

    Example:
        >>> import jax, jax.numpy as jnp, jaxsched as js
        >>> state = js.fuse(js.adam(1e-3)).init({"a": jnp.zeros(2), "b": jnp.zeros(3)})
        >>> [m.shape for m in jax.tree.leaves(state.inner[0].mu)]
        [(5,)]
    """

    inner: Any  # the inner transformation's state over the FlatParams buffers


# optax transformations that act element by element (or through one value for
# the whole tree: clip_by_global_norm's norm, unchanged by zero padding, and
# reduce_on_plateau's scale), read in
# optax 0.2.8's source. Matched by the module and name of their update function.
OPTAX_ELEMENTWISE = frozenset({
    "add_decayed_weights", "clip", "clip_by_global_norm", "ema", "identity",
    "keep_params_nonnegative", "reduce_on_plateau", "scale", "scale_by_adam", "scale_by_adamax",
    "scale_by_amsgrad", "scale_by_belief", "scale_by_lion", "scale_by_rms",
    "scale_by_schedule", "scale_by_sign", "scale_by_stddev", "scale_by_yogi", "trace",
    "zero_nans",
})


def _optax_problem(fn: Any) -> Optional[str]:
    """None if the optax update function `fn` is known to be elementwise, else why not."""
    module = getattr(fn, "__module__", "") or ""
    qualname = getattr(fn, "__qualname__", "") or ""
    name = qualname.split(".<locals>")[0]
    cells = [c.cell_contents for c in (getattr(fn, "__closure__", None) or ())]
    if module.startswith("optax.") and name == "chain":
        parts = [f for c in cells if isinstance(c, tuple) for f in c if callable(f)]
        for f in parts:
            problem = _optax_problem(f)
            if problem:
                return problem
        return None if parts else "optax.chain of unknown parts"
    if module.startswith("optax.") and name == "with_extra_args_support":
        inner = [c for c in cells if isinstance(c, optax.GradientTransformation)]
        return _problem(inner[0]) if inner else "an unknown optax wrapper"
    if module.startswith("optax.") and name in OPTAX_ELEMENTWISE:
        return None
    if module.startswith("jaxsched."):
        return ("a jaxsched transformation inside optax.chain, where its per-array "
                "behaviour cannot be seen (use js.chain)")
    what = f"optax.{name}" if module.startswith("optax.") else f"{module}.{qualname}"
    return (f"{what}, which is not known to act element by element (it may reduce per "
            f"array, e.g. a norm, a trust ratio or a factored moment)")


def _problem(tx: Any) -> Optional[str]:
    """None if `tx` gives its own numbers on flat buffers, else what is not known."""
    if isinstance(tx, Transformation):
        if tx.members or tx.wrapped:
            for part in tuple(tx.members) + tuple(tx.wrapped):
                problem = _problem(part)
                if problem:
                    return problem
            return None
        if tx.exact_on_flat:
            return None
    return _optax_problem(tx.update)


def _parts(tx: Any) -> list:
    """The jaxsched transformations of a (nested) chain or wrapper, in order."""
    if isinstance(tx, Transformation) and (tx.members or tx.wrapped):
        return [m for t in tuple(tx.members) + tuple(tx.wrapped) for m in _parts(t)]
    return [tx]


def _shards(sharding: Any) -> int:
    """How many pieces `sharding` cuts a 1-D buffer into."""
    spec = tuple(sharding.spec)
    axes = spec[0] if spec else None
    if axes is None:
        return 1
    axes = (axes,) if isinstance(axes, str) else tuple(axes)
    return int(np.prod([sharding.mesh.shape[a] for a in axes]))


def _place(x: jax.Array, sharding: Any) -> jax.Array:
    if isinstance(x, jax.core.Tracer):
        return jax.lax.with_sharding_constraint(x, sharding)
    return jax.device_put(x, sharding)


def _shard_pieces(layout: _flat.Layout, b: int, shards: int) -> list:
    """For each shard of buffer `b`: its pieces, (leaf index, start, stop) of the
    raveled leaf, or (None, 0, n) for n zeros (gaps and padding)."""
    size = layout.padded[b] // shards
    members = sorted((offset, int(np.prod(shape)), i) for i, (shape, (bb, offset))
                     in enumerate(zip(layout.shapes, layout.places)) if bb == b)
    out = []
    for k in range(shards):
        lo, hi = k * size, (k + 1) * size
        pieces: list = []
        position = lo
        for offset, n, i in members:
            start, stop = max(offset, lo), min(offset + n, hi)
            if start >= stop:
                continue
            if start > position:
                pieces.append((None, 0, start - position))
            pieces.append((i, start - offset, stop - offset))
            position = stop
        if hi > position:
            pieces.append((None, 0, hi - position))
        out.append(pieces)
    return out


def _sharded_buffers(layout: _flat.Layout, leaves: list, buffers: tuple, sharding: Any,
                     shards: int) -> tuple:
    """The flat buffers placed with `sharding`, each device concatenating only its
    own slice from the (replicated) leaves.

    Concatenating the whole buffer and then slicing it, which is what XLA's
    partitioner makes of a sharded concatenation, copies every buffer on
    every device.
    """
    spec = tuple(sharding.spec)
    if shards == 1 or not spec or spec[0] is None:
        return tuple(x if whole else _place(x, sharding)
                     for x, whole in zip(buffers, layout.whole))
    axes = spec[0]
    mesh = sharding.mesh
    out = list(buffers)
    for b, whole in enumerate(layout.whole):
        if whole:
            continue
        per_shard = _shard_pieces(layout, b, shards)
        used = sorted({i for pieces in per_shard for i, _, _ in pieces if i is not None})
        dtype = layout.dtypes[b]

        def build(pieces, *args, used=used, dtype=dtype):
            where = {i: k for k, i in enumerate(used)}
            parts = [jnp.zeros((stop,), dtype) if i is None
                     else jnp.ravel(args[where[i]]).astype(dtype)[start:stop]
                     for i, start, stop in pieces]
            return parts[0] if len(parts) == 1 else jnp.concatenate(parts)

        def local(*args, per_shard=per_shard, build=build):
            branches = [functools.partial(build, pieces) for pieces in per_shard]
            return jax.lax.switch(jax.lax.axis_index(axes), branches, *args)

        args = [jnp.asarray(leaves[i]) for i in used]
        out[b] = jax.shard_map(local, mesh=mesh, in_specs=tuple(PartitionSpec() for _ in args),
                               out_specs=PartitionSpec(axes), check_vma=False)(*args)
    return tuple(out)


def fuse(transform: optax.GradientTransformation, bucket_size: int = 8,
         max_fused_size: int = 4096, *, elementwise: bool = False,
         sharding: Any = None) -> optax.GradientTransformationExtraArgs:
    """Run `transform` on flat buffers of the tree: fast for many arrays, same numbers.

    The arrays are placed as `flat_params` places them: grouped by dtype,
    weight-decay mask and sharding, concatenated into buffers of at most
    `bucket_size` arrays; an array of more than `max_fused_size` elements,
    or sharded across devices (not fully replicated), is a buffer of its
    own in its own shape (no copy; it keeps its sharding, and so does its
    state). `transform` runs once on that `FlatParams`, and the result is
    sliced back into the tree. Elementwise formulas and global norms run on
    the buffers unchanged; jaxsched's per-array transformations
    (`clip_by_norm`, ...) reduce per original array; so the numbers are
    those of `transform` on the tree, and the run and compile times of
    trees of many small arrays drop several-fold (benchmarks/update.py).
    Where the code can hold its parameters as `flat_params`, that is faster
    still: the parameters then need no concatenation or slicing.

    `transform` may be any jaxsched transformation or chain, with optax
    transformations that are known to act element by element (the
    `OPTAX_ELEMENTWISE` list, also inside `optax.chain`, e.g. `optax.adamw`
    without a mask). Anything else (`optax.lamb`, `optax.adafactor`, a
    user's transformation) is refused, unless `elementwise=True` declares
    that it acts element by element.

    With `sharding` (a `NamedSharding` of a 1-D buffer, e.g.
    `NamedSharding(mesh, P("data"))`) the flat buffers, and so the inner
    state and the update, are split across the devices of that mesh axis:
    each device updates its slice (ZeRO stage 1/2) and XLA gathers the
    updates back into the tree's arrays. Buffers are padded with zeros to a
    multiple of the number of shards; the padding never enters the arrays.
    Arrays that are already sharded (tensor parallel) keep their own
    sharding and are not resharded.

    Args:
      transform: the transformation to run on the flat buffers.
      bucket_size: the most arrays in one buffer, an int >= 1. Small buckets
        keep compile time low (XLA is slow with many slices of one buffer).
      max_fused_size: arrays with more elements are not concatenated, an int
        >= 0 (0 updates every array on its own). Ignored with `sharding`:
        every replicated array is concatenated and sharded.
      elementwise: declare that `transform` acts element by element (or by
        norms of the whole tree), so that it runs on flat buffers unchecked.
      sharding: a `jax.sharding.NamedSharding` for the flat buffers, or None.

    Raises:
      TypeError: if `transform` holds a transformation not known to give its
        own numbers on flat buffers (naming it), or `sharding` is not a
        NamedSharding of one dimension.
      ValueError: at `update`, if the tree matches no tree given to `init`
        (naming the first differing path).

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.fuse(js.chain(js.clip_by_norm(1.0), js.adam(0.1)))
        >>> params = {"a": jnp.zeros(2), "b": jnp.zeros((2, 2))}
        >>> u, state = opt.update({"a": jnp.ones(2), "b": jnp.ones((2, 2))}, opt.init(params))
        >>> [round(x, 4) for x in u["a"].tolist()]
        [-0.1, -0.1]
    """
    if not isinstance(transform, optax.GradientTransformation):
        raise TypeError(f"`fuse(transform=...)` must be an optax GradientTransformation, "
                        f"got {type(transform).__name__} {transform!r}.")
    _checks.integer("fuse", "bucket_size", bucket_size, lo=1)
    _checks.integer("fuse", "max_fused_size", max_fused_size, lo=0)
    _checks.boolean("fuse", "elementwise", elementwise)
    if sharding is not None and not (isinstance(sharding, jax.sharding.NamedSharding)
                                     and len(tuple(sharding.spec)) <= 1):
        raise TypeError(f"`fuse(sharding=...)` must be a jax.sharding.NamedSharding of a 1-D "
                        f"buffer (e.g. NamedSharding(mesh, P('data'))), got {sharding!r}.")
    if not elementwise:
        problem = _problem(transform)
        if problem:
            raise TypeError(f"`fuse(transform=...)` cannot be run on flat buffers exactly: "
                            f"it holds {problem}. Pass `elementwise=True` only if it acts "
                            f"element by element.")
    parts = _parts(transform)
    masked = [m for m in parts if isinstance(m, Transformation) and m.mask is not None]
    needs_params = any(not isinstance(m, Transformation) or m.needs_params for m in parts)
    shards = 1 if sharding is None else _shards(sharding)
    inner = optax.with_extra_args_support(transform)
    layouts: dict = {}  # (treedef, shapes, dtypes) -> Layout, for every tree given to init
    placements: dict = {}  # the same key -> the sharding of every leaf given to init

    def key_of(tree: PyTree) -> tuple:
        leaves = jax.tree.leaves(tree)
        return (jax.tree.structure(tree), tuple(tuple(np.shape(x)) for x in leaves),
                tuple(str(jnp.result_type(x)) for x in leaves))

    def make_layout(tree: PyTree) -> _flat.Layout:
        labels = None
        if masked:
            bits = [[bool(b) for b in jax.tree.leaves(resolve_mask(m.name, m.mask, tree))]
                    for m in masked]
            labels = [tuple(col) for col in zip(*bits)] if bits[0] else []
        return _flat.build_layout(
            "fuse", tree, labels, multiple_of=shards, max_arrays=bucket_size,
            max_flat_size=None if sharding is not None else max_fused_size)

    def lookup(tree: PyTree) -> _flat.Layout:
        layout = layouts.get(key_of(tree))
        if layout is None:
            if not layouts:
                raise ValueError("`fuse`: update before init.")
            same = [lay for k, lay in layouts.items() if k[0] == jax.tree.structure(tree)]
            reference = same[-1] if same else next(reversed(layouts.values()))
            _flat.check_matches("fuse", reference, tree,
                                "the tree passed to update (one given to init)")
            raise ValueError("`fuse`: the tree passed to update matches no tree given to init "
                             "(dtypes differ).")
        return layout

    def flat(layout: _flat.Layout, tree: PyTree) -> _flat.FlatParams:
        buffers = _flat.flatten(layout, tree).buffers
        if sharding is not None:
            buffers = _sharded_buffers(layout, jax.tree.leaves(tree), buffers, sharding, shards)
        # Materialise each concatenation once: fused into its consumers, a
        # concatenate is re-evaluated per element with a branch per operand.
        buffers = jax.lax.optimization_barrier(buffers)
        return _flat.FlatParams(buffers, layout)

    def init(params):
        check_real_floats("fuse", params, "the parameters")
        layout = make_layout(params)
        layouts[key_of(params)] = layout
        if sharding is not None:  # on the mesh: as placed there, else replicated
            devices = set(sharding.mesh.devices.flat)
            replicated = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
            placements[key_of(params)] = [
                x.sharding if (isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer)
                               and x.sharding.device_set == devices) else replicated
                for x in jax.tree.leaves(params)]
        return FuseState(inner=inner.init(flat(layout, params)))

    def update(updates, state, params=None, **extra_args):
        layout = lookup(updates)
        g = flat(layout, updates)
        p = flat(layout, params) if (needs_params and params is not None) else None
        u, inner_state = inner.update(g, state.inner, p, **extra_args)
        if not isinstance(u, _flat.FlatParams) or u.layout is not layout:
            raise TypeError("`fuse(transform=...)` returned updates that are not the flat "
                            "buffers it was given.")
        buffers = u.buffers
        if sharding is not None:  # one all-gather per buffer, then free slices
            whole_mesh = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
            buffers = tuple(x if w else jax.lax.with_sharding_constraint(x, whole_mesh)
                            for x, w in zip(buffers, layout.whole))
        out = _flat._views(layout, buffers)
        if sharding is not None:  # the updates come back placed as the parameters were
            out = [x if where is None else jax.lax.with_sharding_constraint(x, where)
                   for x, where in zip(out, placements.get(key_of(updates), [None] * len(out)))]
        return jax.tree.unflatten(layout.treedef, out), FuseState(inner=inner_state)

    return optax.GradientTransformationExtraArgs(init, update)
