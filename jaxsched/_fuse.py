"""Run a transformation on a bucketed flat view of the tree.

XLA:CPU spends a few microseconds per kernel and compiles in time that grows
faster than linearly with the number of top-level fused ops, so an optimizer
that touches every array separately is slow for trees of many small arrays.
`fuse` concatenates the arrays into a few flat buffers ("buckets", grouped by
dtype and weight-decay mask, at most `bucket_size` arrays each), runs the
inner transformation once per bucket, and slices the result back into the
tree. The inner state then holds one buffer per bucket.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsched import _checks
from jaxsched._builder import Transformation, check_real_floats, resolve_mask

PyTree = Any


class FuseState(NamedTuple):
    """State of `fuse`: the inner transformation's state over the bucket buffers.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> state = js.fuse(js.adam(1e-3)).init({"a": jnp.zeros(2), "b": jnp.zeros(3)})
        >>> [m.shape for m in state.inner[0].mu]
        [(5,)]
    """

    inner: Any  # the inner transformation's state over the tuple of bucket buffers


class _Layout(NamedTuple):
    treedef: Any
    paths: tuple  # keystr of every leaf, in tree order
    shapes: tuple  # shape of every leaf
    dtypes: tuple  # dtype of every leaf
    buckets: tuple  # tuple of tuples of leaf indices
    masks: tuple  # per masked member: tuple of bools per bucket


def _members(tx: Any) -> list:
    """The transformations of a (nested) jaxsched chain, in order."""
    if isinstance(tx, Transformation) and tx.members:
        return [m for t in tx.members for m in _members(t)]
    return [tx]


def _masked(tx: Any) -> bool:
    return isinstance(tx, Transformation) and tx.mask is not None and tx.with_mask is not None


def _layout(tree: PyTree, masked: list, bucket_size: int, max_fused_size: int) -> _Layout:
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    paths = tuple(jax.tree_util.keystr(p) for p, _ in flat)
    shapes = tuple(tuple(np.shape(x)) for _, x in flat)
    dtypes = tuple(jnp.result_type(x) for _, x in flat)
    mask_bits = []
    for tx in masked:
        mtree = resolve_mask(tx.name, tx.mask, tree)
        mask_bits.append([bool(b) for b in jax.tree.leaves(mtree)])
    groups: dict = {}
    buckets = []
    for i in range(len(flat)):
        if math.prod(shapes[i]) > max_fused_size:
            buckets.append((i,))  # large: updated on its own, no copy
            continue
        key = (str(dtypes[i]),) + tuple(bits[i] for bits in mask_bits)
        groups.setdefault(key, []).append(i)
    for key in groups:
        idx = groups[key]
        for start in range(0, len(idx), bucket_size):
            buckets.append(tuple(idx[start:start + bucket_size]))
    masks = tuple(tuple(bits[b[0]] for b in buckets) for bits in mask_bits)
    return _Layout(treedef, paths, shapes, dtypes, tuple(buckets), masks)


def _rebuild(tx: Any, masked: list, masks: tuple) -> Any:
    """The inner transformation with bucket-level masks in place of tree masks."""
    if isinstance(tx, Transformation) and tx.members:
        from jaxsched._transforms import chain
        return chain(*(_rebuild(t, masked, masks) for t in tx.members))
    for tx_masked, bucket_mask in zip(masked, masks):
        if tx is tx_masked:
            return tx.with_mask(bucket_mask)
    return tx


def _concat(leaves: list, bucket: tuple) -> jax.Array:
    parts = [jnp.ravel(leaves[i]) for i in bucket]
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts)


def fuse(transform: optax.GradientTransformation, bucket_size: int = 8,
         max_fused_size: int = 4096) -> optax.GradientTransformationExtraArgs:
    """Run `transform` on flat buffers, a few arrays at a time: fast for many arrays.

    Arrays of at most `max_fused_size` elements are grouped by dtype (and by
    weight-decay mask), concatenated in buckets of at most `bucket_size`
    arrays, updated by `transform` one bucket at a time, and sliced back into
    the tree; larger arrays are updated on their own, without a copy (for
    them a kernel launch costs less than the concatenation would). The numbers are those of
    `transform` on the tree; the run time and compile time of trees of many
    small arrays drop several-fold (see benchmarks/update.py); where the code
    can hold its parameters as `flat_params`, that is faster still, since
    the parameters need no concatenation or slicing at all. The state holds
    one buffer per bucket, so it is not sharded like the parameters: keep
    sharded (FSDP-style) parameters on the unfused transformation.

    `transform` may be any chain of elementwise transformations and global
    reductions (every jaxsched transformation except `clip_by_norm`, and
    optax's elementwise ones); `add_decayed_weights` masks are supported.

    Args:
      transform: the transformation to run on the flat view.
      bucket_size: the most arrays in one buffer, an int >= 1. Small buckets
        keep compile time low (XLA is slow with many slices of one buffer).
      max_fused_size: arrays with more elements are not concatenated, an int
        >= 0 (0 updates every array on its own).

    Raises:
      TypeError: if `transform` contains a per-array transformation.

    Example:
        >>> import jax.numpy as jnp, jaxsched as js
        >>> opt = js.fuse(js.chain(js.clip_by_global_norm(1.0), js.adam(0.1)))
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
    members = _members(transform)
    for m in members:
        if getattr(m, "per_array", False):
            raise TypeError(f"`fuse(transform=...)` cannot fuse {m.name}, which treats each array "
                            f"separately (a per-array norm would become a per-bucket one).")
    masked = [m for m in members if _masked(m)]
    needs_params = any(not isinstance(m, Transformation) or m.needs_params for m in members)
    cache: dict = {}
    initialised: dict = {}  # treedef -> layout, for every tree given to init

    def prepare(tree: PyTree) -> tuple[_Layout, Any]:
        treedef = jax.tree.structure(tree)
        key = (treedef, tuple(tuple(np.shape(x)) for x in jax.tree.leaves(tree)),
               tuple(str(jnp.result_type(x)) for x in jax.tree.leaves(tree)))
        if key not in cache:
            layout = _layout(tree, masked, bucket_size, max_fused_size)
            inner = optax.with_extra_args_support(_rebuild(transform, masked, layout.masks))
            cache[key] = (layout, inner)
        return cache[key]

    def bucketed(layout: _Layout, tree: PyTree) -> tuple:
        leaves = jax.tree.leaves(tree)
        # Materialise each concatenation once: fused into its consumers, a
        # concatenate is re-evaluated per element with a branch per operand.
        return jax.lax.optimization_barrier(tuple(_concat(leaves, b) for b in layout.buckets))

    def init(params):
        check_real_floats("fuse", params, "the parameters")
        layout, inner = prepare(params)
        initialised[layout.treedef] = layout
        return FuseState(inner=inner.init(bucketed(layout, params)))

    def update(updates, state, params=None, **extra_args):
        treedef = jax.tree.structure(updates)
        if initialised and treedef not in initialised:
            reference = next(reversed(initialised.values()))
            got = {jax.tree_util.keystr(p) for p, _ in
                   jax.tree_util.tree_flatten_with_path(updates)[0]}
            want = set(reference.paths)
            raise ValueError(
                "`fuse`: the tree passed to update does not match one given to init "
                f"(only in the updates: {sorted(got - want)[:5]}; only at init: "
                f"{sorted(want - got)[:5]}).")
        layout, inner = prepare(updates)
        g = bucketed(layout, updates)
        p = bucketed(layout, params) if (needs_params and params is not None) else None
        u, inner_state = inner.update(g, state.inner, p, **extra_args)
        out = [None] * len(layout.paths)
        for bucket, flat in zip(layout.buckets, u):
            offset = 0
            for i in bucket:
                size = math.prod(layout.shapes[i])
                piece = flat if len(bucket) == 1 else flat[offset:offset + size]
                out[i] = piece.reshape(layout.shapes[i])
                offset += size
        return jax.tree.unflatten(layout.treedef, out), FuseState(inner=inner_state)

    return optax.GradientTransformationExtraArgs(init, update)
